//! Dify 1.14.1's Arize provider (OTLP/gRPC; the fixtures are the request
//! message bytes): an `api_check` span, then one workflow run.

use loupe_model::SpanKind;

use crate::dify_phoenix::{DifyRun, check_api_check};
use crate::support::{numbered, replay};

const HELLO: DifyRun = DifyRun {
    otlp_trace: "a661cdf165434710080e4f13e2322dff",
    run_id: "fdebadd2-0a3f-4827-bfe4-8bdf04040ec7",
    root: "42972ba94636fbce",
    workflow: "22f4f646e42a1c01",
    nodes: &[
        (
            "ffa43d65-b216-40cc-aa3a-782654024618",
            "b96363f648322b6c",
            "Start",
            "start",
            SpanKind::Chain,
        ),
        (
            "fd0d5677-55fc-4cfa-8cba-f16ff8167459",
            "aef7220a5fc3e1ad",
            "End (hello)",
            "end",
            SpanKind::Chain,
        ),
        (
            "607207bc-474c-411c-99fa-815cc26c8321",
            "66abfd4b8d69103a",
            "IF/ELSE",
            "if-else",
            SpanKind::Branch,
        ),
        (
            "06f62650-ba5f-44b5-afbf-51bdda489bdf",
            "1b0e02a751343908",
            "HTTP Request",
            "http-request",
            SpanKind::Http,
        ),
    ],
};

#[test]
fn arize_grpc_api_check_is_accepted_but_not_stored() {
    check_api_check(&numbered("dify_otlp_arize_grpc", 1..=1)[0]);
}

#[test]
fn arize_grpc_run_maps_root_workflow_and_nodes() {
    let spans = replay(&numbered("dify_otlp_arize_grpc", 2..=7));
    HELLO.check(&spans);
}
