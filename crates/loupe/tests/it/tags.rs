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

/// `loupe tags apply`, run as a user would: into a data directory no server
/// holds (with `serve`'s config, whose rules apply), then through a running
/// server, where a second pass tags nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loupe_tags_apply_tags_stored_runs_in_a_data_dir_and_through_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    for trace in [17u128, 18] {
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
        assert_eq!(
            server
                .post_otlp(encode(&request(vec![root, tool])))
                .await
                .status(),
            200
        );
    }
    server.stop();

    let loupe = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args(["tags", "apply"])
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run loupe tags apply");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data_arg = data.to_str().expect("utf-8 path");
    // Without the rules there is nothing to apply: said, not guessed.
    let (ok, _, err) = loupe(&["--data-dir", data_arg]);
    assert!(!ok);
    assert!(err.contains("--config"), "{err}");

    let config = dir.path().join("loupe.toml");
    std::fs::write(&config, "[[tags]]\nname = \"category\"\nfrom = \"input\"\n").expect("config");
    let config_arg = config.to_str().expect("utf-8 path");
    let (ok, out, err) = loupe(&["--data-dir", data_arg, "--config", config_arg, "--json"]);
    assert!(ok, "{err}");
    let done: Value = serde_json::from_str(&out).expect("json answer");
    assert_eq!(done["runs_scanned"], 2, "{done}");
    assert_eq!(done["runs_tagged"], 2, "{done}");

    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    for trace in [17u128, 18] {
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
    let (ok, out, err) = loupe(&["--server", &server.http]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "2 runs read, 0 gained tags");
    server.stop();
}
