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

/// A tag rule added after the data arrived, applied to history with
/// `POST /api/v1/tags/apply`: every span of the old runs (in Parquet parts
/// after a restart) gets the tag, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tag_rule_is_applied_to_stored_runs_on_demand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    for trace in [7u128, 8] {
        let input = format!(r#"{{"category": "cat-{trace}"}}"#);
        let root = otel_span(
            trace,
            trace as u64 * 100,
            None,
            "workflow",
            &[
                ("input.value", &input),
                ("openinference.span.kind", "CHAIN"),
            ],
        );
        let tool = otel_span(
            trace,
            trace as u64 * 100 + 1,
            Some(trace as u64 * 100),
            "inventory",
            &[("openinference.span.kind", "TOOL")],
        );
        let req = request(vec![root, tool]);
        assert_eq!(server.post_otlp(encode(&req)).await.status(), 200);
    }
    server.stop();

    let config = dir.path().join("loupe.toml");
    std::fs::write(&config, "[[tags]]\nname = \"category\"\nfrom = \"input\"\n").expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let apply = || async {
        let r = server
            .client
            .post(format!("{}/api/v1/tags/apply", server.http))
            .json(&serde_json::json!({"from": "2026-01-01T00:00:00Z"}))
            .send()
            .await
            .expect("apply");
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("json")
    };
    let done = apply().await;
    assert_eq!(done["runs_scanned"], 2, "{done}");
    assert_eq!(done["runs_tagged"], 2, "{done}");
    for trace in [7u128, 8] {
        let (status, body) = server
            .get_json(&format!(
                "/api/v1/traces/{}",
                hex::encode(trace.to_be_bytes())
            ))
            .await;
        assert_eq!(status, 200);
        let spans = body["spans"].as_array().expect("spans");
        assert_eq!(spans.len(), 2);
        for s in spans {
            assert_eq!(s["tags"]["category"], format!("cat-{trace}"), "{s}");
        }
    }
    // Tags a run has are never changed: a second pass tags nothing.
    let again = apply().await;
    assert_eq!(again["runs_tagged"], 0, "{again}");
    server.stop();
}
