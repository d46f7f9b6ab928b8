//! The Dify database's health in `loupe serve` (issue 21), against a real
//! PostgreSQL 15 with Dify 1.14.1's schema: `/api/v1/dify/health` reports
//! what PostgreSQL reports, a `loupe dify cleanup` beside the server shows
//! up in `/api/v1/dify/cleanups` and `loupe dify cleanups`, the
//! `dify_database_*` families on `/metrics` pass `promtool check metrics`,
//! and the shipped rules fire in `promtool test rules`.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Server, assert_ok};

const TENANT: &str = "c620c103-fd6c-4fef-a6d5-07deeb985b15";
const APP: &str = "4f3a79b4-ea93-49ef-80c2-fad1a9001a14";
const WORKFLOW: &str = "37059656-d740-4323-8168-9c55beede6c8";
const END_USER: &str = "9a0d6a59-51d9-4c0b-a8a5-4a3e3f1c0d11";

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

fn promtool() -> String {
    std::env::var("LOUPE_TEST_PROMTOOL").unwrap_or_else(|_| {
        panic!("LOUPE_TEST_PROMTOOL is not set: run `eval \"$(bash scripts/peers/prometheus.sh)\"` first")
    })
}

/// `runs` finished runs 40 days old, `nodes` node executions each.
async fn generate(db: &tokio_postgres::Client, runs: usize, nodes: usize) {
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{APP}', '{TENANT}', 'Shop', 'workflow');
         WITH r AS (
           INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
             graph, inputs, status, outputs, elapsed_time, total_tokens, total_steps,
             created_by_role, created_by, created_at, finished_at, exceptions_count)
           SELECT gen_random_uuid(), '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow', 'app-run', 'v1',
             '{{}}', '{{}}', 'succeeded', '{{}}', 0.5, 10, {nodes}, 'end_user', '{END_USER}',
             (now() AT TIME ZONE 'UTC') - interval '40 days' - g * interval '1 second',
             (now() AT TIME ZONE 'UTC') - interval '40 days' - g * interval '1 second' + interval '500 milliseconds', 0
           FROM generate_series(1, {runs}) g
           RETURNING id, created_at)
         INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
           workflow_run_id, index, node_execution_id, node_id, node_type, title, inputs, outputs,
           status, elapsed_time, created_at, created_by_role, created_by, finished_at)
         SELECT gen_random_uuid(), '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow-run', r.id, n, NULL,
           'node-' || n, 'code', 'n' || n, '{{}}', '{{}}', 'succeeded', 0.01,
           r.created_at + n * interval '1 millisecond', 'end_user', '{END_USER}',
           r.created_at + n * interval '1 millisecond' + interval '10 milliseconds'
         FROM r, generate_series(1, {nodes}) n;
         ANALYZE workflow_runs; ANALYZE workflow_node_executions;"
    ))
    .await
    .expect("generate rows");
}

async fn wait_for(
    server: &Server,
    path: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server.get_json_as(path, "shop").await;
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scrape(server: &Server) -> String {
    server
        .client
        .get(format!("{}/metrics", server.http))
        .header("x-loupe-project", "shop")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

/// The value of the sample `name{labels}` (labels as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_the_dify_database_health_cleanups_and_metrics_promtool_accepts() {
    let (dsn, db) = crate::support::dify_database().await;
    generate(&db, 60, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nretention_days = 0\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n\
             health_interval = \"1s\"\nrecommend_older_than = \"30d\"\n\n\
             [alerts]\ninterval = '1s'\n\
             [[alerts.rules]]\nname = 'node-table-big'\nproject = 'shop'\ntype = 'gauge'\n\
             gauge = 'dify_database_table_size_bytes'\nthreshold = 1000\n\
             filters = {{ table = 'workflow_node_executions' }}\ngroup_by = ['table']\n"
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;

    // Health: sizes as PostgreSQL reports them.
    let health = wait_for(&server, "/api/v1/dify/health", |b| {
        b["sample"]["tables"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    })
    .await;
    assert_eq!(health["configured"], true, "{health}");
    let nodes = health["sample"]["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "workflow_node_executions"))
        .cloned()
        .expect("node table");
    let size: i64 = db
        .query_one(
            "SELECT pg_total_relation_size('workflow_node_executions'::regclass)",
            &[],
        )
        .await
        .expect("size")
        .get(0);
    assert_eq!(nodes["total_bytes"], size, "{nodes}");
    assert!(nodes["oldest_row"].as_f64().is_some(), "{nodes}");
    let rec = &health["sample"]["recommendation"];
    assert_eq!(rec["table"], "workflow_node_executions", "{health}");
    assert_eq!(rec["older_than_days"], 30, "{health}");
    assert!(!health.to_string().contains(&dsn), "the DSN is never shown");
    let before = scrape(&server).await;
    // A gauge alert rule on the same families fires in the sync's project.
    let alerts = wait_for(&server, "/api/v1/alerts", |b| {
        b["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["phase"] == "firing"))
    })
    .await;
    let firing = &alerts["alerts"][0];
    assert_eq!(firing["rule"], "node-table-big", "{alerts}");
    assert_eq!(
        firing["group"]["table"], "workflow_node_executions",
        "{alerts}"
    );
    let (_, other) = server.get_json_as("/api/v1/dify/health", "default").await;
    assert_eq!(other, serde_json::json!({"configured": false}));
    let (status, bad) = server
        .get_json_as("/api/v1/dify/cleanups?limit=0", "shop")
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("limit"), "{bad}");

    // Wait until the sync has every run, then clean up beside the server.
    wait_for(&server, "/api/v1/dify/status", |b| {
        b["totals"]["passes"].as_u64().unwrap_or(0) >= 1
            && b["last_pass"]["rows_total"]["workflow_runs"].as_u64() == Some(60)
    })
    .await;
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "dify",
            "cleanup",
            "--dsn",
            &dsn,
            "--older-than",
            "30d",
            "--scope",
            "nodes",
            "--batch",
            "25",
        ])
        .args(["--server", &server.http])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("loupe dify cleanup");
    assert_ok(&out);
    let cleanups = wait_for(&server, "/api/v1/dify/cleanups", |b| b["total"] == 1).await;
    let run = &cleanups["runs"][0];
    assert_eq!(run["source"], "cli", "{run}");
    assert_eq!(
        run["report"]["deleted"]["workflow_node_executions"], 300,
        "{run}"
    );
    assert_eq!(run["report"]["verified"], 60, "{run}");
    assert_eq!(run["report"]["batches"], 3, "{run}");
    assert_eq!(run["report"]["db_latency"]["samples"], 3, "{run}");
    assert!(
        run["report"]["estimated_bytes_freed"].as_u64().unwrap_or(0) > 0,
        "{run}"
    );
    assert_eq!(cleanups["rows_deleted"], 300);
    // The health report lists it too, with the totals.
    let health = wait_for(&server, "/api/v1/dify/health", |b| {
        b["cleanup_totals"]["runs"] == 1
    })
    .await;
    assert_eq!(health["cleanup_totals"]["rows_deleted"], 300, "{health}");

    // The CLI reads the same history.
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["dify", "cleanups", "--json"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("loupe dify cleanups");
    assert_ok(&out);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        listed[0]["report"]["deleted"]["workflow_node_executions"],
        300
    );
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["dify", "health", "--dsn", &dsn])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("loupe dify health");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ok(&out);
    assert!(text.contains("workflow_node_executions"), "{text}");
    assert!(text.contains("recent cleanups:"), "{text}");

    // /metrics: the families, with the values PostgreSQL and the cleanup
    // gave, accepted by promtool.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&server).await;
        if text.contains("dify_database_cleanup_last_deleted_rows") {
            break text;
        }
        assert!(Instant::now() < deadline, "no cleanup metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        value(
            &text,
            "dify_database_cleanup_last_deleted_rows{table=\"workflow_node_executions\"}"
        ),
        Some(300.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "dify_database_table_size_bytes{table=\"workflow_node_executions\"}"
        )
        .is_some()
    );
    assert_eq!(
        value(&text, "dify_database_lock_waits{table=\"workflow_runs\"}"),
        Some(0.0)
    );
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool check metrics");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every dify_database_* name the shipped rules and the dashboard use
    // is served.
    let served: BTreeSet<&str> = text
        .lines()
        .chain(before.lines())
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for file in [
        "deploy/prometheus/rules.yml",
        "deploy/grafana/dify-database.json",
    ] {
        let shipped = std::fs::read_to_string(repo().join(file)).expect("read");
        for name in shipped
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("dify_database_") && w.len() > "dify_database_".len())
        {
            assert!(
                served.contains(name),
                "{file} uses {name}, not served:\n{text}"
            );
        }
    }
    server.stop();
}

#[test]
fn the_shipped_rules_pass_promtool_and_the_correlation_alert_fires() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules.test.yml"],
    ] {
        let out = Command::new(promtool())
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Polls the console's cleanup job until it has ended.
async fn job_ended(server: &Server) -> serde_json::Value {
    wait_for(server, "/api/v1/dify/cleanups/job", |b| {
        matches!(b["job"]["phase"].as_str(), Some("finished" | "failed"))
    })
    .await["job"]
        .clone()
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

/// A cleanup started from the console (issue 16 item 6): the server's own
/// cleaner with the CLI's refusals (Loupe's retention, a held cleanup
/// lock, bad values), a dry run that deletes nothing, a stop that leaves
/// the rest for a resume, a real run that finishes the job, and every run
/// recorded in the history as `console`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_dry_stops_and_resumes_a_cleanup_with_the_clis_guarantees() {
    let (dsn, db) = crate::support::dify_database().await;
    generate(&db, 300, 2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nretention_days = 90\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n\
             health_interval = \"0s\"\n"
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    wait_for(&server, "/api/v1/dify/status", |b| {
        b["last_pass"]["rows_total"]["workflow_runs"] == 300
    })
    .await;
    const JOB: &str = "/api/v1/dify/cleanups/job";
    let (_, status) = server.get_json_as("/api/v1/dify/status", "shop").await;
    assert_eq!(
        status["cleanups"], true,
        "the sync's project may clean: {status}"
    );
    let (status, none) = server.get_json_as(JOB, "shop").await;
    assert_eq!(
        (status, none.clone()),
        (200, serde_json::json!({"job": null}))
    );

    // Refusals, before anything runs.
    let (status, body) = server
        .post_json_as(JOB, "default", &serde_json::json!({"older_than": "30d"}))
        .await;
    assert_eq!(status, 404, "not the sync's project: {body}");
    for (bad, want, says) in [
        (serde_json::json!({"older_than": "soon"}), 422, "older_than"),
        (
            serde_json::json!({"older_than": "30d", "scope": "all"}),
            422,
            "scope",
        ),
        (
            serde_json::json!({"older_than": "30d", "batch": 0}),
            422,
            "batch",
        ),
        (
            serde_json::json!({"older_than": "30d", "dsn": "postgres://x"}),
            400,
            "dsn",
        ),
        // 120 days reach past the 90 days Loupe keeps: Dify's last copy.
        (serde_json::json!({"older_than": "120d"}), 422, "retention"),
    ] {
        let (status, body) = server.post_json_as(JOB, "shop", &bad).await;
        assert_eq!(status, want, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(says),
            "{bad}: {body}"
        );
    }
    // Another cleanup (the CLI) holds the lock: a deleting run is refused.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data.join("dify-cleanup.lock"))
        .expect("lock file");
    lock.try_lock().expect("take the cleanup lock");
    let (status, body) = server
        .post_json_as(JOB, "shop", &serde_json::json!({"older_than": "30d"}))
        .await;
    assert_eq!(status, 409, "{body}");
    lock.unlock().expect("unlock");
    drop(lock);
    let (status, body) = server.get_json_as(JOB, "shop").await;
    assert_eq!(
        (status, body["job"].clone()),
        (200, serde_json::Value::Null)
    );

    // A dry run counts and deletes nothing.
    let (status, started) = server
        .post_json_as(
            JOB,
            "shop",
            &serde_json::json!({"older_than": "30d", "dry_run": true}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let dry = job_ended(&server).await;
    assert_eq!(dry["phase"], "finished", "{dry}");
    assert_eq!(dry["report"]["dry_run"], true, "{dry}");
    assert_eq!(dry["report"]["verified"], 300, "{dry}");
    assert_eq!(dry["report"]["deleted"]["workflow_runs"], 300, "{dry}");
    assert_eq!(
        dry["report"]["deleted"]["workflow_node_executions"], 600,
        "{dry}"
    );
    assert_eq!(count(&db, "workflow_runs").await, 300);

    // A real run in batches of one, stopped at once: it ends after the
    // batch in flight, deleting only what it verified.
    let (status, started) = server
        .post_json_as(
            JOB,
            "shop",
            &serde_json::json!({"older_than": "30d", "batch": 1}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let (status, again) = server
        .post_json_as(JOB, "shop", &serde_json::json!({"older_than": "30d"}))
        .await;
    assert_eq!(status, 409, "one at a time: {again}");
    // Stopped once a batch is done (300 batches of one take seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = server.get_json_as(JOB, "shop").await;
        if body["job"]["done"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no batch done: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = server
        .client
        .delete(format!("{}{JOB}", server.http))
        .header("x-loupe-project", "shop")
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let stopped = job_ended(&server).await;
    assert_eq!(stopped["phase"], "finished", "{stopped}");
    assert_eq!(stopped["report"]["complete"], false, "{stopped}");
    assert!(
        stopped["report"]["stopped"]
            .as_str()
            .unwrap_or("")
            .contains("on request"),
        "{stopped}"
    );
    let deleted = stopped["report"]["deleted"]["workflow_runs"]
        .as_i64()
        .unwrap_or(0);
    let left = count(&db, "workflow_runs").await;
    assert!(left > 0, "stopped before the end: {stopped}");
    assert_eq!(left, 300 - deleted, "{stopped}");

    // Nothing runs now: stopping again is a conflict.
    let r = server
        .client
        .delete(format!("{}{JOB}", server.http))
        .header("x-loupe-project", "shop")
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 409);

    // The next run resumes and finishes.
    let (status, started) = server
        .post_json_as(JOB, "shop", &serde_json::json!({"older_than": "30d"}))
        .await;
    assert_eq!(status, 202, "{started}");
    let done = job_ended(&server).await;
    assert_eq!(done["report"]["complete"], true, "{done}");
    assert_eq!(done["report"]["resumed"], true, "{done}");
    assert_eq!(count(&db, "workflow_runs").await, 0, "{done}");
    assert_eq!(count(&db, "workflow_node_executions").await, 0, "{done}");

    // Every run is in the cleanup history, as the console's.
    let history = wait_for(&server, "/api/v1/dify/cleanups", |b| {
        b["runs"].as_array().is_some_and(|c| c.len() == 3)
    })
    .await;
    for c in history["runs"].as_array().expect("list") {
        assert_eq!(c["source"], "console", "{c}");
    }
    server.stop();
}
