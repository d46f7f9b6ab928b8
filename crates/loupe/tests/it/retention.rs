//! Retention changed from the console (issue 16, Settings): through a real
//! `loupe serve`, a project's retention is previewed, refused without a
//! confirmation when it would delete data, set, applied by the next
//! maintenance pass, kept across a restart and recorded for the CLIs; a
//! project `loupe.toml` names cannot be changed, and another project is
//! untouched.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, encode, otel_span, request};

const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// `n` spans of one trace, `age_days` ago, in `project`.
async fn ingest(server: &Server, project: &str, trace: u128, age_days: u64, n: u64) {
    let start = loupe_model::time::now_ns() as u64 - age_days * DAY_NS;
    let spans = (0..n)
        .map(|i| {
            // Span ids are global (OTLP): each trace has its own.
            let id = (((trace >> 64) as u64) << 40) | ((trace as u64) << 16) | (i + 1);
            let mut s = otel_span(trace, id, (i > 0).then_some(id - i), "node", &[]);
            s.start_time_unix_nano = start + i * 1_000_000;
            s.end_time_unix_nano = start + i * 1_000_000 + 500_000;
            s
        })
        .collect();
    let r = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .header("x-loupe-project", project)
        .body(encode(&request(spans)))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
}

async fn count(server: &Server, project: &str) -> u64 {
    let (status, body) = server
        .post_json_as(
            "/api/v1/sql",
            project,
            &json!({ "sql": "SELECT count(*) AS n FROM spans" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["rows"][0][0].as_u64().expect("count")
}

async fn put(server: &Server, project: &str, body: Value) -> (u16, Value) {
    let r = server
        .client
        .put(format!("{}/api/v1/settings/retention", server.http))
        .header("x-loupe-project", project)
        .json(&body)
        .send()
        .await
        .expect("put");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

async fn settings(server: &Server, project: &str) -> Value {
    let (status, body) = server.get_json_as("/api/v1/settings", project).await;
    assert_eq!(status, 200, "{body}");
    body["retention"].clone()
}

/// Waits until the parts of days before the cutoff are gone (flushed
/// first: the old spans must be in a part for retention to drop them).
async fn wait_for_count(server: &Server, project: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count(server, project).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{project}: {n} spans, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_retention_is_previewed_confirmed_applied_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[store]\nretention_days = 30\nflush_age = \"1s\"\nmaintenance_interval = \"1s\"\n\
         retention_days_by_project = { fixed = 30 }\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    // 20 days old and today, in two projects.
    for (i, project) in ["default", "other"].into_iter().enumerate() {
        let base = (i as u128) << 64;
        ingest(&server, project, base + 1, 20, 40).await;
        ingest(&server, project, base + 2, 0, 10).await;
    }
    // Flushed into parts (the old day's part is what retention drops, and
    // what the preview counts).
    let deadline = Instant::now() + Duration::from_secs(30);
    let preview = loop {
        let (status, preview) = server
            .post_json_as(
                "/api/v1/settings/retention/preview",
                "default",
                &json!({"days": 10}),
            )
            .await;
        assert_eq!(status, 200, "{preview}");
        if preview["drops"]["spans"] == 40 {
            break preview;
        }
        assert!(
            Instant::now() < deadline,
            "the old day never reached a part: {preview}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count(&server, "default").await, 50);

    let ret = settings(&server, "default").await;
    assert_eq!(
        (
            ret["days"].clone(),
            ret["source"].clone(),
            ret["editable"].clone()
        ),
        (json!(30), json!("default"), json!(true)),
        "{ret}"
    );

    // The preview counts the old run, and wrote nothing.
    assert_eq!(preview["current_days"], 30, "{preview}");
    // A longer retention drops nothing.
    let (_, longer) = server
        .post_json_as(
            "/api/v1/settings/retention/preview",
            "default",
            &json!({"days": 60}),
        )
        .await;
    assert_eq!(longer["drops"]["spans"], 0, "{longer}");

    // Refusals: unconfirmed drop (409 with the preview), out of range
    // (422), a body that is not the shape (400), a project loupe.toml
    // names (409). Nothing changed.
    let (status, body) = put(&server, "default", json!({"days": 10})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["preview"]["drops"]["spans"], 40, "{body}");
    let (status, body) = put(&server, "default", json!({"days": 99_999_999})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = put(&server, "default", json!({"days": "ten"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put(&server, "fixed", json!({"days": 5, "confirm": true})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("loupe.toml"),
        "{body}"
    );
    assert_eq!(settings(&server, "fixed").await["editable"], false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&server, "default").await, 50, "nothing was dropped");

    // Confirmed: the next maintenance pass drops the old day, in this
    // project only.
    let (status, body) = put(&server, "default", json!({"days": 10, "confirm": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retention"]["source"], "console", "{body}");
    wait_for_count(&server, "default", 10).await;
    assert_eq!(
        count(&server, "other").await,
        50,
        "another project keeps its data"
    );
    assert_eq!(settings(&server, "other").await["days"], 30);
    server.stop();

    // Kept across a restart, and recorded for the CLIs (settings.json).
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(data.join("settings.json")).expect("settings"))
            .expect("json");
    assert_eq!(
        recorded["retention_days_by_project"],
        json!({"default": 10, "fixed": 30}),
        "{recorded}"
    );
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let ret = settings(&server, "default").await;
    assert_eq!(
        (ret["days"].clone(), ret["source"].clone()),
        (json!(10), json!("console")),
        "{ret}"
    );
    // Back to the default (longer: no confirmation needed).
    let (status, body) = put(&server, "default", json!({"days": null})).await;
    assert_eq!(status, 200, "{body}");
    let ret = settings(&server, "default").await;
    assert_eq!(
        (ret["days"].clone(), ret["source"].clone()),
        (json!(30), json!("default")),
        "{ret}"
    );
    server.stop();
}
