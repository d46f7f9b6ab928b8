//! Business tags configured in `loupe.toml` reach every span of a run,
//! whether the run's root arrives first or last.

use serde_json::Value;

use crate::support::{Server, encode, otel_span, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_from_the_run_input_reaches_every_span_in_any_arrival_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[[tags]]\nname = \"category\"\nfrom = \"input\"\n\n[[tags]]\nname = \"tier\"\nfrom = \"input\"\npath = \"inputs.profile.tier\"\n",
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    let input = r#"{"category": "phone", "profile": {"tier": "gold"}}"#;
    let root = |trace: u128| {
        otel_span(
            trace,
            trace as u64 * 100,
            None,
            "workflow",
            &[("input.value", input), ("openinference.span.kind", "CHAIN")],
        )
    };
    let tool = |trace: u128, i: u64| {
        otel_span(
            trace,
            trace as u64 * 100 + i,
            Some(trace as u64 * 100),
            "inventory",
            &[
                ("openinference.span.kind", "TOOL"),
                ("tool.name", "inventory"),
            ],
        )
    };

    // Trace 1: root first. Trace 2: root last, after its children.
    for req in [
        request(vec![root(1)]),
        request(vec![tool(1, 1), tool(1, 2)]),
        request(vec![tool(2, 1)]),
        request(vec![tool(2, 2)]),
        request(vec![root(2)]),
    ] {
        assert_eq!(server.post_otlp(encode(&req)).await.status(), 200);
    }
    let check = |body: &Value, trace: u128| {
        let spans = body["spans"].as_array().expect("spans");
        assert_eq!(spans.len(), 3, "trace {trace}");
        for s in spans {
            assert_eq!(
                s["tags"]["category"], "phone",
                "trace {trace} span {}",
                s["name"]
            );
            assert_eq!(
                s["tags"]["tier"], "gold",
                "trace {trace} span {}",
                s["name"]
            );
        }
    };
    for trace in [1u128, 2] {
        let (_, body) = server
            .get_json(&format!(
                "/api/v1/traces/{}",
                hex::encode(trace.to_be_bytes())
            ))
            .await;
        check(&body, trace);
    }
    // The same after a restart (rows now in Parquet parts).
    server.stop();
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    for trace in [1u128, 2] {
        let (_, body) = server
            .get_json(&format!(
                "/api/v1/traces/{}",
                hex::encode(trace.to_be_bytes())
            ))
            .await;
        check(&body, trace);
    }
}
