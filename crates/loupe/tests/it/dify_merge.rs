//! One run per Dify run on the real path (issue 13): the recorded traffic
//! of a real Dify 1.14.1's Langfuse provider (`shared/fixtures/`) plus the
//! same runs' rows in a real PostgreSQL with Dify's schema (written from the
//! fixtures' ids and values), synced by `[dify]` in `loupe serve`, in every
//! order: pushed then synced, synced then pushed, interleaved. Every run is
//! exactly Dify's: each node once, one trace id, the database's exact start
//! and end, statuses, the failing node's own error; and the aggregates equal
//! Dify's.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, dify_database, fixtures};

/// How a fixture's pushes and its rows' sync are ordered.
#[derive(Debug, Clone, Copy)]
enum Order {
    PushThenSync,
    SyncThenPush,
    Interleaved,
}

/// One recorded run: its Langfuse requests and what Dify's database holds.
struct Recorded {
    run_id: String,
    requests: Vec<Value>,
    nodes: Vec<Value>,
    trace: Value,
}

fn recorded(file: &str) -> Recorded {
    let path = fixtures().join("dify-1.14.1").join(file);
    let text = std::fs::read_to_string(&path).expect("fixture");
    let v: Value = serde_json::from_str(&text).expect("fixture json");
    let requests: Vec<Value> = v["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| r["body"].clone())
        .collect();
    let mut nodes = Vec::new();
    let mut trace = Value::Null;
    for body in &requests {
        for event in body["batch"].as_array().expect("batch") {
            match event["type"].as_str() {
                Some("trace-create") => trace = event["body"].clone(),
                Some("span-create" | "generation-create") => nodes.push(event["body"].clone()),
                _ => {}
            }
        }
    }
    Recorded {
        run_id: v["workflow_run_id"].as_str().expect("run id").to_owned(),
        requests,
        nodes,
        trace,
    }
}

fn micros(iso: &str) -> i64 {
    loupe_model::time::parse_instant(iso).expect("instant") / 1_000
}

fn sql_text(v: &Value) -> String {
    format!("'{}'", v.to_string().replace('\'', "''"))
}

/// The run's rows as Dify's database holds them. The run starts 1.5 ms
/// before its first node, at microsecond precision: the exact values the
/// Langfuse provider rounds to seconds (`sys.timestamp`).
async fn insert_rows(db: &tokio_postgres::Client, r: &Recorded) -> (i64, i64) {
    let meta = &r.trace["metadata"];
    let first = r
        .nodes
        .iter()
        .map(|n| micros(n["startTime"].as_str().expect("start")))
        .min()
        .expect("a node");
    let start_us = first - 1_500;
    let elapsed = meta["elapsed_time"].as_f64().expect("elapsed");
    let end_us = start_us + (elapsed * 1e6).round() as i64;
    let ts = |us: i64| format!("to_timestamp({us} / 1e6) AT TIME ZONE 'UTC'");
    let status = meta["status"].as_str().expect("status");
    let mut run_error = "NULL".to_owned();
    for (i, n) in r.nodes.iter().enumerate() {
        let node_status = n["metadata"]["status"].as_str().expect("node status");
        let error = if node_status == "failed" {
            let e = format!(
                "'{}'",
                n["statusMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\'', "''")
            );
            run_error.clone_from(&e);
            e
        } else {
            "NULL".to_owned()
        };
        let s = micros(n["startTime"].as_str().expect("start"));
        let e = micros(n["endTime"].as_str().expect("end"));
        db.batch_execute(&format!(
            "INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
               workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title,
               inputs, process_data, outputs, status, error, elapsed_time, execution_metadata,
               created_at, created_by_role, created_by, finished_at)
             VALUES ('{id}', '{tenant}', '{app}', '{wf}', 'workflow-run', '{run}', {index}, NULL, NULL,
               'node-{index}', '{kind}', '{title}', {inputs}, NULL, {outputs}, '{node_status}', {error},
               {elapsed}, NULL, {start}, 'end_user', '{user}', {end})",
            id = n["id"].as_str().expect("id"),
            tenant = meta["tenant_id"].as_str().expect("tenant"),
            app = meta["app_id"].as_str().expect("app"),
            wf = meta["workflow_id"].as_str().expect("workflow"),
            run = r.run_id,
            index = i + 1,
            kind = n["metadata"]["node_type"].as_str().expect("type"),
            title = n["name"].as_str().expect("title").replace('\'', "''"),
            inputs = sql_text(&n["input"]),
            outputs = sql_text(&n["output"]),
            elapsed = (e - s) as f64 / 1e6,
            start = ts(s),
            end = ts(e),
            user = END_USER,
        ))
        .await
        .expect("insert node");
    }
    db.batch_execute(&format!(
        "INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
           graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
           created_by_role, created_by, created_at, finished_at, exceptions_count)
         VALUES ('{run}', '{tenant}', '{app}', '{wf}', 'workflow', 'app-run', '{version}', '{{}}',
           {inputs}, '{status}', {outputs}, {run_error}, {elapsed}, 0, {steps}, 'end_user', '{user}',
           {start}, {end}, 0)",
        run = r.run_id,
        tenant = meta["tenant_id"].as_str().expect("tenant"),
        app = meta["app_id"].as_str().expect("app"),
        wf = meta["workflow_id"].as_str().expect("workflow"),
        version = meta["version"].as_str().expect("version"),
        inputs = sql_text(&r.trace["input"]),
        outputs = sql_text(&r.trace["output"]),
        steps = r.nodes.len(),
        start = ts(start_us),
        end = ts(end_us),
        user = END_USER,
    ))
    .await
    .expect("insert run");
    (start_us * 1_000, end_us * 1_000)
}

const END_USER: &str = "9a0d6a59-51d9-4c0b-a8a5-4a3e3f1c0d11";

async fn push(server: &Server, batch: &Value) {
    let r = server
        .client
        .post(format!("{}/api/public/ingestion", server.http))
        .header("x-loupe-project", "shop")
        .json(batch)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errors"], json!([]), "{body}");
}

async fn trace(server: &Server, run: &str) -> (u16, Vec<Value>) {
    let (status, body) = server
        .get_json_as(&format!("/api/v1/traces/{run}"), "shop")
        .await;
    (
        status,
        body["spans"].as_array().cloned().unwrap_or_default(),
    )
}

/// Waits until the run's database rows are in Loupe (its run span is the
/// database's version).
async fn synced(server: &Server, run: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, spans) = trace(server, run).await;
        if status == 200
            && spans
                .iter()
                .any(|s| s["span_id"] == run && s["source"] == "dify_db")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} never synced: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_langfuse_traffic_and_the_database_sync_give_difys_runs_in_every_order() {
    let (dsn, db) = dify_database().await;
    // In the order Dify created them: its rows are synced by creation time.
    let runs = [
        (
            "dify_langfuse_workflow_success_http_branch.json",
            Order::PushThenSync,
        ),
        (
            "dify_langfuse_workflow_success_aggregator_branch.json",
            Order::SyncThenPush,
        ),
        (
            "dify_langfuse_workflow_failed_http.json",
            Order::Interleaved,
        ),
    ]
    .map(|(file, order)| (recorded(file), order));
    let app = runs[0].0.trace["metadata"]["app_id"].as_str().expect("app");
    let tenant = runs[0].0.trace["metadata"]["tenant_id"]
        .as_str()
        .expect("tenant");
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{app}', '{tenant}', 'Probe', 'workflow');
         INSERT INTO end_users (id, tenant_id, app_id, type, session_id, external_user_id)
           VALUES ('{END_USER}', '{tenant}', '{app}', 'service-api', 'probe-user-1', 'ext-1');"
    ))
    .await
    .expect("seed app");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!("[store]\nretention_days = 0\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n"),
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;

    let mut exact = Vec::new();
    for (r, order) in &runs {
        let times = match order {
            Order::PushThenSync => {
                for b in &r.requests {
                    push(&server, b).await;
                }
                let t = insert_rows(&db, r).await;
                synced(&server, &r.run_id).await;
                t
            }
            Order::SyncThenPush => {
                let t = insert_rows(&db, r).await;
                synced(&server, &r.run_id).await;
                for b in &r.requests {
                    push(&server, b).await;
                }
                t
            }
            Order::Interleaved => {
                let (first, rest) = r.requests.split_at(r.requests.len() / 2);
                for b in first {
                    push(&server, b).await;
                }
                let t = insert_rows(&db, r).await;
                synced(&server, &r.run_id).await;
                for b in rest {
                    push(&server, b).await;
                }
                t
            }
        };
        exact.push(times);
    }

    let mut failed_nodes = 0;
    for ((r, order), (start, end)) in runs.iter().zip(&exact) {
        let (status, spans) = trace(&server, &r.run_id).await;
        assert_eq!(status, 200);
        assert_eq!(
            spans.len(),
            1 + r.nodes.len(),
            "{order:?}: each node once: {spans:#?}"
        );
        assert!(
            spans.iter().all(|s| s["trace_id"] == r.run_id.as_str()),
            "{order:?}: one trace id"
        );
        assert!(
            spans.iter().all(|s| s["tags"]["workspace"] == tenant),
            "{order:?}: every span has the run's workspace: {spans:#?}"
        );
        let root = spans
            .iter()
            .find(|s| s["span_id"] == r.run_id.as_str())
            .expect("run span");
        assert_eq!(
            root["start_time"], *start,
            "{order:?}: the database's exact start"
        );
        assert_eq!(
            root["end_time"], *end,
            "{order:?}: the database's exact end"
        );
        assert_eq!(root["source"], "dify_db", "{order:?}");
        let run_status = r.trace["metadata"]["status"].as_str().expect("status");
        assert_eq!(
            root["status"],
            if run_status == "failed" {
                "error"
            } else {
                "ok"
            },
            "{order:?}"
        );
        for n in &r.nodes {
            let id = n["id"].as_str().expect("id");
            let span = spans
                .iter()
                .find(|s| s["span_id"] == id)
                .expect("node span");
            assert_eq!(span["parent_span_id"], r.run_id.as_str(), "{order:?}");
            assert_eq!(
                span["start_time"],
                micros(n["startTime"].as_str().expect("start")) * 1_000
            );
            if n["metadata"]["status"] == "failed" {
                failed_nodes += 1;
                assert_eq!(span["status"], "error");
                assert_eq!(span["error_message"], n["statusMessage"], "{order:?}");
            } else {
                assert_eq!(span["status"], "ok", "{order:?}: {span}");
                assert!(
                    span["error_message"].is_null(),
                    "{order:?}: the run's error is not the node's: {span}"
                );
            }
        }
    }

    // The aggregates are Dify's: three runs, one of them failed.
    let query = |q: &str| {
        let server = &server;
        let q = q.to_owned();
        async move {
            let r = server
                .client
                .post(format!("{}/api/v1/query", server.http))
                .header("x-loupe-project", "shop")
                .json(&json!({"q": q, "now": loupe_model::time::now_ns()}))
                .send()
                .await
                .expect("query");
            let body: Value = r.json().await.expect("json");
            body["rows"].clone()
        }
    };
    assert_eq!(
        query("last 30d span_kind=workflow | count()").await,
        json!([[3]])
    );
    assert_eq!(
        query("last 30d span_kind=workflow status=error | count()").await,
        json!([[1]])
    );
    assert_eq!(
        query("last 30d span_kind=workflow | by tags.workspace | count()").await,
        json!([[tenant, 3]])
    );
    assert_eq!(
        query("last 30d span_kind!=workflow status=error | count()").await,
        json!([[failed_nodes]])
    );
    server.stop();
}

/// One run the Phoenix/Arize provider recorded: its protobuf requests (one
/// span each) and the spans as decoded beside them.
struct Otlp {
    run_id: String,
    bodies: Vec<Vec<u8>>,
    workflow: Value,
    nodes: Vec<Value>,
}

/// Attributes of a decoded OTLP/JSON span, as plain JSON values.
fn otlp_attrs(span: &Value) -> serde_json::Map<String, Value> {
    span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let value = a["value"].as_object()?.values().next()?.clone();
            Some((a["key"].as_str()?.to_owned(), value))
        })
        .collect()
}

fn otlp_meta(span: &Value) -> Value {
    otlp_attrs(span)
        .get("metadata")
        .and_then(Value::as_str)
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null)
}

/// The requests of one run in `{prefix}_decoded.json` (every file from the
/// root span's to the workflow span's).
fn recorded_otlp(prefix: &str, files: std::ops::RangeInclusive<u32>) -> Otlp {
    let dir = fixtures().join("dify-1.14.1");
    let text =
        std::fs::read_to_string(dir.join(format!("{prefix}_decoded.json"))).expect("fixture");
    let doc: Value = serde_json::from_str(&text).expect("fixture json");
    let mut out = Otlp {
        run_id: String::new(),
        bodies: Vec::new(),
        workflow: Value::Null,
        nodes: Vec::new(),
    };
    for n in files {
        let file = format!("{prefix}_{n:02}.bin");
        out.bodies
            .push(std::fs::read(dir.join(&file)).expect("fixture body"));
        let entry = doc["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .find(|r| r["file"] == file.as_str())
            .expect("decoded request");
        let spans = entry["decoded"]["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .expect("spans");
        for span in spans {
            let meta = otlp_meta(span);
            if meta["trace_entity_type"] == "workflow" {
                out.run_id = meta["workflow_run_id"].as_str().expect("run").to_owned();
                out.workflow = span.clone();
            } else if meta["node_id"].is_string() {
                out.nodes.push(span.clone());
            }
        }
    }
    out
}

fn ns(v: &Value) -> i64 {
    v.as_str().and_then(|s| s.parse().ok()).expect("unix nanos")
}

/// The run's rows as Dify's database holds them: the same instants at
/// microsecond precision (the provider sent them through a float).
async fn insert_otlp_rows(db: &tokio_postgres::Client, r: &Otlp) -> (i64, i64) {
    let meta = otlp_meta(&r.workflow);
    let attrs = otlp_attrs(&r.workflow);
    let ts = |us: i64| format!("to_timestamp({us} / 1e6) AT TIME ZONE 'UTC'");
    let us = |v: &Value| ns(v) / 1_000;
    for (i, n) in r.nodes.iter().enumerate() {
        let m = otlp_meta(n);
        let a = otlp_attrs(n);
        let (s, e) = (us(&n["startTimeUnixNano"]), us(&n["endTimeUnixNano"]));
        let text = |k: &str| {
            let raw = a.get(k).and_then(Value::as_str).unwrap_or("{}");
            format!("'{}'", raw.replace('\'', "''"))
        };
        db.batch_execute(&format!(
            "INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
               workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title,
               inputs, process_data, outputs, status, error, elapsed_time, execution_metadata,
               created_at, created_by_role, created_by, finished_at)
             VALUES ('{id}', '{tenant}', '{app}', '{wf}', 'workflow-run', '{run}', {index}, NULL, NULL,
               'node-{index}', '{kind}', '{title}', {inputs}, NULL, {outputs}, '{status}', NULL,
               {elapsed}, NULL, {start}, 'end_user', '{user}', {end})",
            id = m["node_id"].as_str().expect("id"),
            tenant = m["tenant_id"].as_str().expect("tenant"),
            app = m["app_id"].as_str().expect("app"),
            wf = meta["workflow_id"].as_str().expect("workflow"),
            run = r.run_id,
            index = i + 1,
            kind = m["node_type"].as_str().expect("type"),
            title = m["app_name"].as_str().expect("title").replace('\'', "''"),
            inputs = text("input.value"),
            outputs = text("output.value"),
            status = m["status"].as_str().expect("status"),
            elapsed = (e - s) as f64 / 1e6,
            start = ts(s),
            end = ts(e),
            user = END_USER,
        ))
        .await
        .expect("insert node");
    }
    let (start, end) = (
        us(&r.workflow["startTimeUnixNano"]),
        us(&r.workflow["endTimeUnixNano"]),
    );
    let text = |k: &str| {
        attrs
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("{}")
            .replace('\'', "''")
    };
    db.batch_execute(&format!(
        "INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
           graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
           created_by_role, created_by, created_at, finished_at, exceptions_count)
         VALUES ('{run}', '{tenant}', '{app}', '{wf}', 'workflow', 'app-run', '{version}', '{{}}',
           '{inputs}', '{status}', '{outputs}', NULL, {elapsed}, 0, {steps}, 'end_user', '{user}',
           {start}, {end}, 0)",
        run = r.run_id,
        tenant = meta["tenant_id"].as_str().expect("tenant"),
        app = meta["app_id"].as_str().expect("app"),
        wf = meta["workflow_id"].as_str().expect("workflow"),
        version = meta["version"].as_str().expect("version"),
        inputs = text("input.value"),
        outputs = text("output.value"),
        status = meta["status"].as_str().expect("status"),
        elapsed = (end - start) as f64 / 1e6,
        steps = r.nodes.len(),
        start = ts(start),
        end = ts(end),
        user = END_USER,
    ))
    .await
    .expect("insert run");
    (start * 1_000, end * 1_000)
}

async fn push_otlp(server: &Server, body: &[u8]) {
    let r = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("x-loupe-project", "shop")
        .header("content-type", "application/x-protobuf")
        .body(body.to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// Issue 13 item 4 on the Phoenix/Arize path: Dify ≤ 1.18's provider names
/// each node's execution id (`metadata.node_id`) and the run id, so its runs
/// are stored under Dify's ids and merge with the database's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_phoenix_and_arize_traffic_and_the_database_sync_give_difys_runs_in_every_order() {
    let (dsn, db) = dify_database().await;
    let runs = [
        (
            recorded_otlp("dify_otlp_phoenix", 2..=7),
            Order::PushThenSync,
        ),
        (
            recorded_otlp("dify_otlp_phoenix", 8..=13),
            Order::SyncThenPush,
        ),
        (
            recorded_otlp("dify_otlp_arize_grpc", 2..=7),
            Order::Interleaved,
        ),
    ];
    let meta = otlp_meta(&runs[0].0.workflow);
    let (app, tenant) = (
        meta["app_id"].as_str().expect("app"),
        meta["tenant_id"].as_str().expect("tenant"),
    );
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{app}', '{tenant}', 'Probe', 'workflow');
         INSERT INTO end_users (id, tenant_id, app_id, type, session_id, external_user_id)
           VALUES ('{END_USER}', '{tenant}', '{app}', 'service-api', 'probe-user-1', 'ext-1');"
    ))
    .await
    .expect("seed app");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!("[store]\nretention_days = 0\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n"),
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;

    let mut exact = Vec::new();
    for (r, order) in &runs {
        let times = match order {
            Order::PushThenSync => {
                for b in &r.bodies {
                    push_otlp(&server, b).await;
                }
                let t = insert_otlp_rows(&db, r).await;
                synced(&server, &r.run_id).await;
                t
            }
            Order::SyncThenPush => {
                let t = insert_otlp_rows(&db, r).await;
                synced(&server, &r.run_id).await;
                for b in &r.bodies {
                    push_otlp(&server, b).await;
                }
                t
            }
            Order::Interleaved => {
                let (first, rest) = r.bodies.split_at(r.bodies.len() / 2);
                for b in first {
                    push_otlp(&server, b).await;
                }
                let t = insert_otlp_rows(&db, r).await;
                synced(&server, &r.run_id).await;
                for b in rest {
                    push_otlp(&server, b).await;
                }
                t
            }
        };
        exact.push(times);
    }

    for ((r, order), (start, end)) in runs.iter().zip(&exact) {
        let (status, spans) = trace(&server, &r.run_id).await;
        assert_eq!(status, 200);
        // The run, each node once, and the provider's per-trace root span
        // (which the database has no row for).
        assert_eq!(
            spans.len(),
            2 + r.nodes.len(),
            "{order:?}: each node once: {spans:#?}"
        );
        assert!(
            spans.iter().all(|s| s["trace_id"] == r.run_id.as_str()),
            "{order:?}: one trace id: {spans:#?}"
        );
        let run = spans
            .iter()
            .find(|s| s["span_id"] == r.run_id.as_str())
            .expect("run span");
        assert_eq!(run["start_time"], *start, "{order:?}: the database's start");
        assert_eq!(run["end_time"], *end, "{order:?}: the database's end");
        assert_eq!(run["source"], "dify_db", "{order:?}");
        assert_eq!(run["span_kind"], "workflow", "{order:?}");
        assert_eq!(run["status"], "ok", "{order:?}");
        let marker: Vec<&Value> = spans
            .iter()
            .filter(|s| s["span_id"] != r.run_id.as_str() && s["node_type"].is_null())
            .collect();
        assert_eq!(
            marker.len(),
            1,
            "{order:?}: the provider's root: {marker:#?}"
        );
        assert_eq!(marker[0]["span_kind"], "chain", "{order:?}");
        for n in &r.nodes {
            let id = otlp_meta(n)["node_id"].as_str().expect("id").to_owned();
            let span = spans
                .iter()
                .find(|s| s["span_id"] == id.as_str())
                .unwrap_or_else(|| panic!("{order:?}: node {id} missing: {spans:#?}"));
            assert_eq!(span["parent_span_id"], r.run_id.as_str(), "{order:?}");
            assert_eq!(span["run_id"], r.run_id.as_str(), "{order:?}");
            assert_eq!(span["source"], "dify_db", "{order:?}");
            assert_eq!(
                span["start_time"],
                ns(&n["startTimeUnixNano"]) / 1_000 * 1_000,
                "{order:?}: the database's start"
            );
            assert_eq!(span["status"], "ok", "{order:?}");
        }
    }
    let r = server
        .client
        .post(format!("{}/api/v1/query", server.http))
        .header("x-loupe-project", "shop")
        .json(&json!({"q": "last 3650d span_kind=workflow | count()", "now": loupe_model::time::now_ns()}))
        .send()
        .await
        .expect("query");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["rows"], json!([[3]]), "one run per Dify run");
    server.stop();
}
