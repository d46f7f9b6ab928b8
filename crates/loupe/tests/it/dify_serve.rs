//! `[dify]` in `loupe serve` and `loupe dify cleanup` beside it, against a
//! real PostgreSQL 15 with Dify 1.14.1's schema (`scripts/peers/postgres.sh`):
//! the server syncs into its configured project, and cleanup, which cannot
//! open the data directory the server owns, verifies through the server's
//! API and deletes only what Loupe holds (issue 13).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Server, assert_ok};

const TENANT: &str = "c620c103-fd6c-4fef-a6d5-07deeb985b15";
const APP: &str = "4f3a79b4-ea93-49ef-80c2-fad1a9001a14";
const WORKFLOW: &str = "37059656-d740-4323-8168-9c55beede6c8";
const END_USER: &str = "9a0d6a59-51d9-4c0b-a8a5-4a3e3f1c0d11";

/// A fresh database with Dify's tables and one finished run, three days
/// old, with two node executions. Returns its DSN and the run id.
pub(crate) async fn dify_database() -> (String, tokio_postgres::Client, String) {
    let (dsn, db) = crate::support::dify_database().await;
    let run = uuid::Uuid::new_v4().to_string();
    let at = "((now() AT TIME ZONE 'UTC') - interval '3 days')";
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{APP}', '{TENANT}', 'Shop', 'workflow');
         INSERT INTO end_users (id, tenant_id, app_id, type, session_id, external_user_id)
           VALUES ('{END_USER}', '{TENANT}', '{APP}', 'service-api', 'user-1', 'ext-1');"
    ))
    .await
    .expect("seed app");
    for (i, node) in ["start", "llm"].iter().enumerate() {
        db.batch_execute(&format!(
            "INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
               workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title,
               inputs, process_data, outputs, status, error, elapsed_time, execution_metadata,
               created_at, created_by_role, created_by, finished_at)
             VALUES (gen_random_uuid(), '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow-run', '{run}', {i},
               NULL, NULL, 'node-{node}', '{node}', '{node}', '{{}}', NULL, '{{}}', 'succeeded', NULL,
               0.001, NULL, {at}, 'end_user', '{END_USER}', {at} + interval '1 millisecond')"
        ))
        .await
        .expect("insert node");
    }
    db.batch_execute(&format!(
        "INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
           graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
           created_by_role, created_by, created_at, finished_at, exceptions_count)
         VALUES ('{run}', '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow', 'app-run', 'v1',
           '{{}}', '{{\"category\": \"phone\"}}', 'succeeded', '{{}}', NULL, 0.087, 0, 2,
           'end_user', '{END_USER}', {at}, {at} + interval '87 milliseconds', 0)"
    ))
    .await
    .expect("insert run");
    (dsn, db, run)
}

/// The sync's status once a pass has finished. A run is visible as soon as
/// its batch is written, but the checkpoint cleanup needs is saved after
/// the write: a test that stops the server on seeing the run can stop it
/// in between (the pass is dropped and would re-read the batch), and
/// cleanup then rightly refuses a database the sync has not read yet.
pub(crate) async fn finished_pass(server: &Server, project: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get_json_as("/api/v1/dify/status", project).await;
        assert_eq!(status, 200, "{body}");
        if body["totals"]["passes"].as_u64().unwrap_or(0) >= 1 {
            return body;
        }
        assert!(Instant::now() < deadline, "no finished pass: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_into_its_project_and_cleanup_verifies_through_the_running_server() {
    let (dsn, db, run) = dify_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nretention_days = 0\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n\
             web_url = \"https://dify.example.com\"\n\n\
             [[tags]]\nname = \"category\"\nfrom = \"input\"\n"
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;

    // The run arrives in project `shop`, tagged, every node with it.
    let path = format!("/api/v1/traces/{run}");
    let spans = server.wait_for_trace(&run, "shop").await;
    assert_eq!(spans.len(), 3, "the run and its two nodes");
    for s in &spans {
        assert_eq!(s["tags"]["category"], "phone", "{s}");
    }
    let (status, _) = server.get_json_as(&path, "default").await;
    assert_eq!(status, 404, "not in the default project");

    // The sync's status (the console's Dify page), for its project only.
    let sync = finished_pass(&server, "shop").await;
    assert_eq!(sync["configured"], true, "{sync}");
    assert_eq!(sync["running"], true, "{sync}");
    assert_eq!(
        sync["last_pass"]["rows_total"]["workflow_runs"], 1,
        "{sync}"
    );
    assert_eq!(sync["totals"]["spans"], 3, "{sync}");
    assert!(sync["lag_seconds"].as_i64().is_some(), "{sync}");
    assert!(
        sync["last_pass"]["ended_unix_ms"].as_i64().unwrap_or(0) > 0,
        "{sync}"
    );
    assert_eq!(
        sync["last_pass"]["error"],
        serde_json::Value::Null,
        "{sync}"
    );
    assert_eq!(sync["totals"]["skipped_older_than_retention"], 0, "{sync}");
    assert!(
        !sync.to_string().contains(&dsn),
        "the DSN (and its password) is never shown"
    );
    let (_, other) = server.get_json_as("/api/v1/dify/status", "default").await;
    assert_eq!(other, serde_json::json!({"configured": false}));
    let (_, settings) = server.get_json_as("/api/v1/settings", "shop").await;
    assert_eq!(
        settings["dify"]["web_url"], "https://dify.example.com",
        "{settings}"
    );
    assert_eq!(settings["tag_rules"][0]["name"], "category", "{settings}");
    let (_, settings) = server.get_json_as("/api/v1/settings", "default").await;
    assert_eq!(
        settings["dify"]["web_url"],
        serde_json::Value::Null,
        "{settings}"
    );

    // The batch read cleanup verifies through: the same spans as the run's
    // trace, with the columns asked for; nothing of other projects.
    let ask = serde_json::json!({
        "ids": [run, "no-such-run"],
        "columns": ["raw_status", "end_time", "attributes"],
    });
    let (status, batch) = server.post_json_as("/api/v1/traces", "shop", &ask).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["truncated"], false, "{batch}");
    let ids = |spans: &[serde_json::Value]| {
        let mut v: Vec<(String, String)> = spans
            .iter()
            .map(|s| {
                (
                    s["span_id"].as_str().unwrap_or_default().to_owned(),
                    s["raw_status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let got = batch["spans"].as_array().cloned().unwrap_or_default();
    assert_eq!(ids(&got), ids(&spans), "{batch}");
    assert!(
        got.iter()
            .all(|s| s["attributes"]["dify.elapsed_time"].is_string()),
        "{batch}"
    );
    let (status, other) = server.post_json_as("/api/v1/traces", "default", &ask).await;
    assert_eq!(
        (status, other["spans"].clone()),
        (200, serde_json::json!([]))
    );
    let (status, tight) = server
        .post_json_as(
            "/api/v1/traces",
            "shop",
            &serde_json::json!({"ids": [run], "max_spans": 2}),
        )
        .await;
    assert_eq!(
        (status, tight["truncated"].clone()),
        (200, serde_json::json!(true))
    );
    for bad in [
        serde_json::json!({"ids": [run], "colums": []}),
        serde_json::json!({"ids": [run], "columns": ["nope"]}),
        serde_json::json!({"ids": ["x".repeat(300)]}),
        serde_json::json!({"ids": [run], "max_spans": 10_000_000}),
    ] {
        let (status, body) = server.post_json_as("/api/v1/traces", "shop", &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Cleanup beside the running server.
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "dify",
            "cleanup",
            "--dsn",
            &dsn,
            "--older-than",
            "1d",
            "--json",
        ])
        .args(["--server", &server.http])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("loupe dify cleanup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("verifying through its API"), "{stderr}");
    let left: i64 = db
        .query_one("SELECT count(*) FROM workflow_runs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        left,
        0,
        "the verified run was deleted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let nodes: i64 = db
        .query_one("SELECT count(*) FROM workflow_node_executions", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(nodes, 0);
    server.stop();
}

/// `[[dify.projects]]` in `loupe serve`: a second Dify workspace lands in
/// its own project, and each project's key sees only its own runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dify_workspaces_land_in_two_projects_each_key_sees_its_own() {
    const TENANT_B: &str = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
    const APP_B: &str = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
    let (dsn, db, run_a) = dify_database().await;
    let run_b = uuid::Uuid::new_v4().to_string();
    let at = "((now() AT TIME ZONE 'UTC') - interval '2 days')";
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{APP_B}', '{TENANT_B}', 'Team B', 'workflow');
         INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
           graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
           created_by_role, created_by, created_at, finished_at, exceptions_count)
         VALUES ('{run_b}', '{TENANT_B}', '{APP_B}', '{WORKFLOW}', 'workflow', 'app-run', 'v1',
           '{{}}', '{{}}', 'succeeded', '{{}}', NULL, 0.1, 0, 0,
           'account', '{END_USER}', {at}, {at} + interval '100 milliseconds', 0)"
    ))
    .await
    .expect("workspace b");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let key = |project: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args([
                "keys",
                "create",
                "--json",
                "--project",
                project,
                "--scope",
                "read",
                "--data-dir",
            ])
            .arg(&data)
            .output()
            .expect("keys create");
        assert_ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["secret_key"].as_str().expect("secret").to_owned()
    };
    let (key_a, key_b) = (key("shop"), key("team-b"));
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nretention_days = 0\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n\n\
             [[dify.projects]]\ntenant = \"{TENANT_B}\"\nproject = \"team-b\"\n"
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let status = |run: String, key: String| {
        let server = &server;
        async move {
            server
                .client
                .get(format!("{}/api/v1/traces/{run}", server.http))
                .bearer_auth(key)
                .send()
                .await
                .expect("get")
                .status()
                .as_u16()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(run_b.clone(), key_b.clone()).await != 200 {
        assert!(Instant::now() < deadline, "workspace B's run never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(run_a.clone(), key_a.clone()).await, 200);
    assert_eq!(
        status(run_a, key_b).await,
        404,
        "team-b's key cannot see shop's run"
    );
    assert_eq!(
        status(run_b, key_a).await,
        404,
        "shop's key cannot see team-b's run"
    );
    server.stop();
}
