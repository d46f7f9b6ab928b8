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

/// A tag rule added over the API (the console's Settings page): previewed
/// on stored runs before it is saved, tagging new runs at once and after a
/// restart, applied to history on demand, refused when invalid or set in
/// `loupe.toml`, kept to its project, and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_added_over_the_api_is_previewed_saved_applied_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(&config, "[[tags]]\nname = \"category\"\nfrom = \"input\"\n").expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    push(&server, 11, "gold").await;
    push(&server, 12, "silver").await;

    let (status, listed) = server.get_json("/api/v1/tags/rules").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["editable"], true, "{listed}");
    // The config's rule, then the two built-in workspace rules.
    assert_eq!(
        listed["rules"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert_eq!(listed["rules"][0]["source"], "config", "{listed}");
    assert_eq!(listed["rules"][1]["source"], "builtin", "{listed}");
    assert_eq!(listed["rules"][2]["name"], "workspace", "{listed}");

    // Preview: what the rule would tag, nothing written.
    let (status, preview) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/tags/rules/preview",
        Some(serde_json::json!({"name": "tier", "rule": {"from": "input"}, "from": "2026-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["runs_scanned"], 2, "{preview}");
    assert_eq!(preview["runs_tagged"], 2, "{preview}");
    assert_eq!(
        preview["values"].as_array().map(Vec::len),
        Some(2),
        "{preview}"
    );
    assert_eq!(
        tier_of(&server, 11).await,
        Value::Null,
        "a preview writes nothing"
    );

    // Refusals change nothing.
    for (body, path, want) in [
        (serde_json::json!({"from": "input"}), "category", 409),
        (
            serde_json::json!({"from": "input", "regex": "("}),
            "tier",
            422,
        ),
        (serde_json::json!({"from": "nowhere"}), "tier", 400),
        (
            serde_json::json!({"from": "input", "project": "other"}),
            "tier",
            422,
        ),
        (serde_json::json!({"from": "input"}), "bad name!", 422),
    ] {
        let (status, answer) = send(
            &server,
            reqwest::Method::PUT,
            &format!("/api/v1/tags/rules/{}", path.replace(' ', "%20")),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, want, "{path} {body}: {answer}");
    }
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/api/v1/tags/rules/category",
        None,
    )
    .await;
    assert_eq!(status, 409, "set in loupe.toml");

    // Saved: new runs are tagged at once; stored ones on demand.
    let (status, saved) = send(
        &server,
        reqwest::Method::PUT,
        "/api/v1/tags/rules/tier",
        Some(serde_json::json!({"from": "input", "regex": "^(gold|silver|bronze)$"})),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["rules"][1]["source"], "console", "{saved}");
    assert_eq!(saved["rules"][1]["project"], "default", "{saved}");
    push(&server, 13, "bronze").await;
    assert_eq!(tier_of(&server, 13).await, "bronze");
    assert_eq!(tier_of(&server, 11).await, Value::Null);
    let (status, applied) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/tags/apply",
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["runs_tagged"], 2, "{applied}");
    assert_eq!(tier_of(&server, 11).await, "gold");

    // Another project does not see or get it.
    let (_, other) = server.get_json_as("/api/v1/tags/rules", "other").await;
    assert_eq!(other["rules"].as_array().map(Vec::len), Some(3), "{other}");

    // Kept across a restart.
    server.stop();
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let (_, listed) = server.get_json("/api/v1/tags/rules").await;
    assert_eq!(
        listed["rules"].as_array().map(Vec::len),
        Some(4),
        "{listed}"
    );
    push(&server, 14, "gold").await;
    assert_eq!(tier_of(&server, 14).await, "gold");

    // Removed: the next run is not tagged.
    let (status, left) = send(
        &server,
        reqwest::Method::DELETE,
        "/api/v1/tags/rules/tier",
        None,
    )
    .await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(left["rules"].as_array().map(Vec::len), Some(3), "{left}");
    push(&server, 15, "gold").await;
    assert_eq!(tier_of(&server, 15).await, Value::Null);
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/api/v1/tags/rules/tier",
        None,
    )
    .await;
    assert_eq!(status, 404);
    server.stop();
}

/// One run whose input carries a category and `tier`.
async fn push(server: &Server, trace: u128, tier: &str) {
    let input = format!(r#"{{"category": "phone", "tier": "{tier}"}}"#);
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
    let req = request(vec![root]);
    assert_eq!(server.post_otlp(encode(&req)).await.status(), 200);
}

/// The `tier` tag of a run's root span (null when untagged).
async fn tier_of(server: &Server, trace: u128) -> Value {
    let (status, body) = server
        .get_json(&format!(
            "/api/v1/traces/{}",
            hex::encode(trace.to_be_bytes())
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["spans"][0]["tags"]["tier"].clone()
}

/// Any method with an optional JSON body; (status, JSON or null).
async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = server
        .client
        .request(method, format!("{}{path}", server.http));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}
