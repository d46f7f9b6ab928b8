//! Dify 1.14.1's Phoenix provider (OTLP/HTTP protobuf, one span per request):
//! an `api_check` span, then two workflow runs.

use loupe_model::{Span, SpanKind, Status};

use crate::support::{Expect, PROJECT, attr, by_id, check, numbered, replay, request};

pub const APP_ID: &str = "4f3a79b4-ea93-49ef-80c2-fad1a9001a14";
pub const WORKFLOW_ID: &str = "37059656-d740-4323-8168-9c55beede6c8";
pub const VERSION: &str = "2026-11-24 18:54:52.149589";

/// One recorded Dify run: its root, workflow and node spans.
///
/// Stored under Dify's ids, as the database sync stores the same run: the
/// trace is the run id, the workflow span is the run id, a node is its
/// execution id (the provider's `metadata.node_id`) and hangs under the
/// run. The provider's per-trace root keeps its OTLP span id.
pub struct DifyRun {
    /// The OTLP trace id as sent.
    pub otlp_trace: &'static str,
    pub run_id: &'static str,
    /// The root span's OTLP id (kept: the database has no such span).
    pub root: &'static str,
    /// The workflow span's OTLP id.
    pub workflow: &'static str,
    /// `(execution id, OTLP span id, title, node type, kind)`.
    pub nodes: &'static [(
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        SpanKind,
    )],
}

impl DifyRun {
    /// Checks every span of the run, the run-level fields of the workflow
    /// span, and the node-level fields and kept attributes of each node.
    pub fn check(&self, spans: &[Span]) {
        let mut expected = vec![
            Expect {
                span_id: self.root,
                name: self.run_id,
                kind: SpanKind::Chain,
                node_type: None,
                parent: None,
                run_id: Some(self.run_id),
                status: Status::Ok,
                raw_status: "STATUS_CODE_OK",
            },
            Expect {
                span_id: self.run_id,
                name: "workflow",
                kind: SpanKind::Workflow,
                node_type: None,
                parent: Some(self.root),
                run_id: Some(self.run_id),
                status: Status::Ok,
                raw_status: "succeeded",
            },
        ];
        for &(exec_id, _, title, node_type, kind) in self.nodes {
            expected.push(Expect {
                span_id: exec_id,
                name: title,
                kind,
                node_type: Some(node_type),
                parent: Some(self.run_id),
                run_id: Some(self.run_id),
                status: Status::Ok,
                raw_status: "succeeded",
            });
        }
        check(spans, self.run_id, &expected);
        let sent = |span: &Span, key: &str| attr(span, key).map(str::to_owned);
        for span in spans {
            assert_eq!(
                sent(span, "otel.trace_id").as_deref(),
                Some(self.otlp_trace),
                "{}: the OTLP trace id is kept",
                span.span_id
            );
        }
        let workflow = by_id(spans, self.run_id);
        assert_eq!(attr(workflow, "otel.span_id"), Some(self.workflow));
        assert_eq!(
            attr(workflow, "otel.span_name"),
            Some(format!("workflow_{}", self.run_id).as_str())
        );
        for &(exec_id, otlp_id, ..) in self.nodes {
            assert_eq!(attr(by_id(spans, exec_id), "otel.span_id"), Some(otlp_id));
        }

        let root = by_id(spans, self.root);
        assert_eq!(attr(root, "dify_project_name"), Some("dify-capture"));
        assert_eq!(attr(root, "openinference.span.kind"), Some("CHAIN"));
        assert_eq!(attr(root, "dify_trace_id"), None, "consumed into run_id");
        assert!(
            root.input
                .as_deref()
                .is_some_and(|i| i.contains(self.run_id))
        );

        assert_eq!(workflow.workflow_id.as_deref(), Some(WORKFLOW_ID));
        assert_eq!(workflow.workflow_version.as_deref(), Some(VERSION));
        assert_eq!(workflow.user_id.as_deref(), Some("probe-user-1"));
        assert_eq!(workflow.app_id.as_deref(), Some(APP_ID));
        assert_eq!(workflow.app_name, None, "Dify sends an empty app_name");
        assert_eq!(workflow.session_id.as_deref(), Some(self.run_id));
        assert_eq!(workflow.total_tokens, None);
        assert_eq!(
            attr(workflow, "metadata.workflow_run_id"),
            Some(self.run_id)
        );
        assert_eq!(attr(workflow, "metadata.triggered_from"), Some("app-run"));
        assert_eq!(attr(workflow, "metadata.total_tokens"), Some("0"));
        assert_eq!(attr(workflow, "output.mime_type"), Some("application/json"));

        for &(exec_id, _, title, node_type, _) in self.nodes {
            let node = by_id(spans, exec_id);
            assert_eq!(node.app_id.as_deref(), Some(APP_ID), "{title}");
            assert_eq!(
                node.app_name, None,
                "{title}: app_name is the title on nodes"
            );
            assert_eq!(node.session_id.as_deref(), Some(self.run_id), "{title}");
            assert!(node.input.is_some() && node.output.is_some(), "{title}");
            assert_eq!((node.model_name.as_ref(), node.total_tokens), (None, None));
            assert_eq!(
                attr(node, "otel.span_name"),
                Some(format!("{node_type}_{title}").as_str())
            );
            assert_eq!(attr(node, "metadata.app_name"), Some(title));
            assert_eq!(attr(node, "metadata.node_type"), Some(node_type));
            assert_eq!(attr(node, "metadata.node_id"), Some(exec_id), "{title}");
            assert_eq!(
                attr(node, "metadata.tenant_id"),
                Some("c620c103-fd6c-4fef-a6d5-07deeb985b15")
            );
            assert_eq!(attr(node, "metadata.status_message"), Some(""));
            assert_eq!(
                attr(node, "openinference.span.kind"),
                Some("CHAIN"),
                "{title}"
            );
            assert_eq!(attr(node, "input.mime_type"), Some("application/json"));
            assert_eq!(attr(node, "otel.span_kind"), Some("internal"));
            assert_eq!(
                attr(node, "resource.openinference.project.name"),
                Some("dify-capture")
            );
            assert_eq!(attr(node, "resource.model_id"), Some("dify-capture"));
            assert_eq!(
                attr(node, "otel.scope.name"),
                Some("arize_phoenix_tracer_dify-capture")
            );
            assert_eq!(attr(node, "metadata"), None, "flattened");
        }
    }
}

/// The `api_check` span Dify sends when the provider is saved is a
/// connectivity check: accepted (not rejected, so Dify saves the config),
/// counted, and not stored as a run (issue 13).
pub fn check_api_check(file: &str) {
    let out = loupe_ingest::otlp::normalise_request(PROJECT, request(file));
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    assert_eq!(out.checks, 1, "one connectivity check");
    assert!(out.spans.is_empty(), "not stored: {:?}", out.spans);
}

const HELLO: DifyRun = DifyRun {
    otlp_trace: "2aef93c0cc1b500d6fd0c4f8158076c4",
    run_id: "1590fdac-061c-4f7f-81ee-08eb6df54b42",
    root: "0f42bd6096a818fb",
    workflow: "7ced2183e2d7ea5a",
    nodes: &[
        (
            "65cb45dd-03f7-45d7-bfa4-ea11c13f16b8",
            "d827114703c8bd63",
            "Start",
            "start",
            SpanKind::Chain,
        ),
        (
            "5be6ac7b-ce1e-4cdb-84bd-d74e92c4d9f8",
            "89556451d0e1013e",
            "IF/ELSE",
            "if-else",
            SpanKind::Branch,
        ),
        (
            "8e5cae17-84d0-495d-9f40-e2ba843119a2",
            "a04194fe554cf804",
            "HTTP Request",
            "http-request",
            SpanKind::Http,
        ),
        (
            "b983312e-4e95-4e65-a505-a45786efcfc9",
            "df3ca1b44169433d",
            "End (hello)",
            "end",
            SpanKind::Chain,
        ),
    ],
};

const PLAIN: DifyRun = DifyRun {
    otlp_trace: "cf056ec8cc96baff143cd4d5ca20be10",
    run_id: "12907337-db2e-4f45-ab81-8a8b83734195",
    root: "2255b8e5fbcd3dfb",
    workflow: "dafd5607e7c67996",
    nodes: &[
        (
            "7d5dfe0c-ddf2-4dc9-a728-98aaf3cb726f",
            "abcde9bc04f94f15",
            "Start",
            "start",
            SpanKind::Chain,
        ),
        (
            "14cbb60f-8b53-452f-bbe5-2bf66f1a846a",
            "e334fa920340bf0e",
            "Variable Aggregator",
            "variable-aggregator",
            SpanKind::Chain,
        ),
        (
            "bb5bdd1b-d7e8-422d-81f1-352caa8a5e4a",
            "4b2b7f1c7fc2f7a0",
            "End (other)",
            "end",
            SpanKind::Chain,
        ),
        (
            "0b8905f4-4db9-4412-a11a-76118a81c221",
            "355b0a53f115db31",
            "IF/ELSE",
            "if-else",
            SpanKind::Branch,
        ),
    ],
};

#[test]
fn phoenix_api_check_is_accepted_but_not_stored() {
    check_api_check(&numbered("dify_otlp_phoenix", 1..=1)[0]);
}

#[test]
fn phoenix_http_branch_run_maps_root_workflow_and_nodes() {
    let spans = replay(&numbered("dify_otlp_phoenix", 2..=7));
    HELLO.check(&spans);
}

#[test]
fn phoenix_aggregator_branch_run_maps_root_workflow_and_nodes() {
    let spans = replay(&numbered("dify_otlp_phoenix", 8..=13));
    PLAIN.check(&spans);
}

#[test]
fn phoenix_fixture_has_exactly_one_span_per_request() {
    let spans = replay(&numbered("dify_otlp_phoenix", 1..=13));
    // 13 requests: the api_check (answered, not stored) and 12 run spans.
    assert_eq!(spans.len(), 12);
}
