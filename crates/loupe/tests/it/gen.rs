//! `loupe gen` end to end: the binary sends a generated workload to a
//! running `loupe serve` over OTLP and over the Langfuse API, and writes one
//! straight into a data directory; every span arrives.

use std::process::Command;

use serde_json::Value;

use crate::support::{Server, assert_ok};

fn run_gen(args: &[&str]) {
    let mut all = vec!["--seed", "9", "--start", "2026-01-01T00:00:00Z"];
    all.extend_from_slice(args);
    crate::support::run_gen(&all);
}

fn expected_spans(runs: usize, fault: Option<&str>) -> usize {
    let start = loupe_gen::DEFAULT_START_NS;
    let day = 86_400_000_000_000;
    let config = loupe_gen::GenConfig {
        seed: 9,
        runs,
        start_ns: start,
        spread_ns: day,
        faults: fault
            .map(|f| loupe_gen::Fault::parse(f, (start, start + day)).expect("fault"))
            .into_iter()
            .collect(),
        ..loupe_gen::GenConfig::default()
    };
    loupe_gen::runs(&config).map(|r| r.spans.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_over_otlp_delivers_every_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    run_gen(&["--runs", "60", "--batch", "7", "--otlp", &server.http]);
    let spans = server.all_spans().await;
    assert_eq!(spans.len(), expected_spans(60, None));
    let runs: std::collections::HashSet<_> = spans.iter().map(|s| s["run_id"].clone()).collect();
    assert_eq!(runs.len(), 60, "run ids are filled on every span");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_over_langfuse_delivers_every_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    run_gen(&["--runs", "20", "--langfuse", &server.http]);
    let spans = server.all_spans().await;
    // Langfuse has no provider root span: one trace plus one span per node.
    assert_eq!(spans.len(), expected_spans(20, None) - 20);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_into_a_data_dir_is_served_afterwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    let fault = "tool=inventory,error_rate=1,latency=1s";
    run_gen(&["--runs", "30", "--data-dir", data_arg, "--fault", fault]);
    let server = Server::start(&data, &[]).await;
    let spans = server.all_spans().await;
    assert_eq!(spans.len(), expected_spans(30, Some(fault)));
    assert!(
        spans.iter().any(|s| s["tags"]["category"].is_string()),
        "tags applied"
    );
    assert!(spans.iter().any(|s| s["tool_name"] == "inventory"
        && s["error_message"] == "inventory service timed out after 5s"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_users_match_the_generated_runs() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    run_gen(&["--runs", "400", "--data-dir", data.to_str().expect("utf-8")]);
    let config = loupe_gen::GenConfig {
        seed: 9,
        runs: 400,
        ..loupe_gen::GenConfig::default()
    };
    // Brute force: (session or user) → [(run id, failed, tokens)] in time order.
    let mut sessions: BTreeMap<String, Vec<(String, bool, i64)>> = BTreeMap::new();
    let mut users: BTreeMap<String, Vec<(String, bool, i64)>> = BTreeMap::new();
    for run in loupe_gen::runs(&config) {
        let wf = run
            .spans
            .iter()
            .find(|s| s.span_kind == Some(loupe_model::SpanKind::Workflow))
            .expect("workflow span");
        let failed = wf.status == Some(loupe_model::Status::Error);
        let tokens: i64 = run.spans.iter().filter_map(|s| s.total_tokens).sum();
        let entry = (run.run_id.clone(), failed, tokens);
        sessions
            .entry(wf.session_id.clone().expect("session"))
            .or_default()
            .push(entry.clone());
        users
            .entry(wf.user_id.clone().expect("user"))
            .or_default()
            .push(entry);
    }
    let server = Server::start(&data, &[]).await;
    let (session, expected) = sessions
        .iter()
        .max_by_key(|(_, runs)| runs.len())
        .expect("sessions");
    assert!(expected.len() >= 2, "a conversation with several runs");
    let (status, body) = server
        .get_json(&format!("/api/v1/sessions/{session}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let runs = body["runs"].as_array().expect("runs");
    let got: Vec<(String, bool, i64)> = runs
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap_or("").to_owned(),
                r["status"] == "error",
                r["total_tokens"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(&got, expected);
    assert!(runs.iter().all(|r| r["latency_ns"].as_i64() > Some(0)));

    let (user, expected) = users
        .iter()
        .max_by_key(|(_, runs)| runs.len())
        .expect("users");
    let (status, body) = server.get_json(&format!("/api/v1/users/{user}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"].as_u64(), Some(expected.len() as u64));
    let failed = expected.iter().filter(|r| r.1).count() as u64;
    assert_eq!(body["failed"].as_u64(), Some(failed));
    let tokens: i64 = expected.iter().map(|r| r.2).sum();
    assert_eq!(body["total_tokens"].as_i64(), Some(tokens));
    assert!(body["p50_latency_ns"].as_i64() <= body["p95_latency_ns"].as_i64());
    let (status, _) = server.get_json("/api/v1/users/nobody").await;
    assert_eq!(status, 404);
    server.stop();
}

/// Issue 13: a CLI opened a server's data directory with default settings
/// (30-day retention) and deleted the history the server keeps forever. Now
/// the directory records the server's settings and the CLI adopts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_adopts_the_settings_the_server_recorded_with_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[store]\nretention_days = 0\n\n[metrics]\nlabels = [\"category\", \"user_tier\"]\n",
    )
    .expect("config");
    Server::start_with_config(&data, &[], Some(&config))
        .await
        .stop();
    let recorded = |what: &str| -> Value {
        let text = std::fs::read_to_string(data.join("settings.json")).expect("settings.json");
        serde_json::from_str::<Value>(&text).expect("json")[what].clone()
    };
    assert_eq!(recorded("retention_days"), 0);

    // Without --config: 60-day-old history into the server's directory.
    let start =
        loupe_model::time::format_instant(loupe_model::time::now_ns() - 60 * 86_400e9 as i64);
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["gen", "--runs", "5", "--start", &start, "--data-dir"])
        .arg(&data)
        .output()
        .expect("run loupe gen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("store.retention_days = 0 (forever)") && stderr.contains("metrics.labels"),
        "the adopted settings are named: {stderr}"
    );
    assert_eq!(
        recorded("retention_days"),
        0,
        "the CLI kept the server's retention"
    );
    assert_eq!(
        recorded("metrics_labels"),
        serde_json::json!(["category", "user_tier"])
    );

    // And every generated span is there to read.
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "query",
            "--json",
            "--now",
            &loupe_model::time::format_instant(loupe_model::time::now_ns()),
        ])
        .arg("last 90d | count()")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run loupe query");
    assert_ok(&out);
    let answer: Value = serde_json::from_slice(&out.stdout).expect("json answer");
    let generated: usize = loupe_gen::runs(&loupe_gen::GenConfig {
        seed: 42,
        runs: 5,
        start_ns: loupe_model::time::parse_instant(&start).expect("start"),
        spread_ns: 86_400_000_000_000,
        ..loupe_gen::GenConfig::default()
    })
    .map(|r| r.spans.len())
    .sum();
    assert_eq!(answer["rows"][0][0], generated as i64, "{answer}");
}
