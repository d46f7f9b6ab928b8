//! Dify 1.20 against a real `loupe serve` (issue 15): its Langfuse provider
//! posting OTLP to `/api/public/otel/v1/traces` with Basic pk:sk, the
//! generic OpenTelemetry provider posting to `/v1/traces`, the empty export
//! Dify sends when a config is saved, OTLP metrics, bad credentials and
//! bodies; and the same runs from both providers and the `[dify]` database
//! sync (real PostgreSQL 15 with Dify's schema) merging into one run each,
//! field by field, whichever arrives first.
//!
//! The requests are built by `loupe_gen::dify_export` from the description
//! of Dify 1.20's export (no recording of a real 1.20 exists).

use std::io::Write as _;
use std::time::{Duration, Instant};

use loupe_gen::dify_export::{Dialect, ExportNode, ExportRun, ExportUsage, request};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use prost::Message;
use serde_json::{Value, json};

use crate::support::{Server, assert_ok, dify_database};

const TENANT: &str = "c620c103-fd6c-4fef-a6d5-07deeb985b15";
const APP: &str = "4f3a79b4-ea93-49ef-80c2-fad1a9001a14";
const WORKFLOW: &str = "37059656-d740-4323-8168-9c55beede6c8";
const END_USER: &str = "9a0d6a59-51d9-4c0b-a8a5-4a3e3f1c0d11";
const S: i64 = 1_000_000_000;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// A key pair made by `loupe keys create` for `project` with `scope`:
/// (public, secret).
fn create_key(data: &std::path::Path, project: &str, scope: &str) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "keys",
            "create",
            "--json",
            "--project",
            project,
            "--scope",
            scope,
            "--data-dir",
        ])
        .arg(data)
        .output()
        .expect("loupe keys create");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    (
        v["public_key"].as_str().expect("pk").to_owned(),
        v["secret_key"].as_str().expect("sk").to_owned(),
    )
}

fn now_s() -> i64 {
    loupe_model::time::now_ns() / S
}

/// A finished run, one hour old (whole seconds, as the database keeps
/// them), with a start node, an LLM call and a failing tool.
fn run_facts(run_id: &str, llm: &str, tool: &str, start: &str) -> ExportRun {
    let t0 = (now_s() - 3_600) * S;
    let node = |exec: &str, kind: &str, title: &str, at: i64| ExportNode {
        exec_id: exec.into(),
        node_id: format!("node-{kind}"),
        node_type: kind.into(),
        title: title.into(),
        parent_exec: None,
        start: at,
        end: at + S,
        status: "ok".into(),
        error: None,
        // What the providers send is a copy, truncated by Dify at 64 KiB.
        inputs: json!({"query": "where is my pho[truncated]"}),
        outputs: json!({"text": "copy"}),
        usage: None,
    };
    let mut llm = node(llm, "llm", "Write answer", t0 + S);
    llm.usage = Some(ExportUsage {
        model: "gpt-4o".into(),
        provider: "openai".into(),
        prompt: 12,
        completion: 30,
        price: 0.0021,
    });
    let mut tool = node(tool, "tool", "Inventory", t0 + 2 * S);
    tool.status = "error".into();
    tool.error = Some("Inventory API timeout after 10s".into());
    ExportRun {
        tenant_id: TENANT.into(),
        app_id: APP.into(),
        app_name: "Shop".into(),
        workflow_id: WORKFLOW.into(),
        version: "v1".into(),
        run_id: run_id.into(),
        message_id: None,
        conversation_id: None,
        user: "user-1".into(),
        start: t0,
        end: t0 + 4 * S,
        error: Some("Inventory API timeout after 10s".into()),
        inputs: json!({"query": "where is my pho[truncated]"}),
        outputs: json!({}),
        nodes: vec![node(start, "start", "Start", t0), llm, tool],
    }
}

/// The same run as rows of Dify's database (full payloads).
async fn insert_run(db: &tokio_postgres::Client, run: &ExportRun) {
    let at = |ns: i64| format!("to_timestamp({}) AT TIME ZONE 'UTC'", ns / S);
    for (i, n) in run.nodes.iter().enumerate() {
        let (status, error) = match &n.error {
            Some(e) => ("failed", format!("'{e}'")),
            None => ("succeeded", "NULL".to_owned()),
        };
        let (process, meta) = match &n.usage {
            Some(u) => (
                format!(
                    "'{{\"model_name\": \"{}\", \"model_provider\": \"{}\", \"usage\": {{\"prompt_tokens\": {}, \"completion_tokens\": {}}}}}'",
                    u.model, u.provider, u.prompt, u.completion
                ),
                format!(
                    "'{{\"total_tokens\": {}, \"total_price\": \"{}\", \"currency\": \"USD\"}}'",
                    u.prompt + u.completion,
                    u.price
                ),
            ),
            None => ("NULL".to_owned(), "NULL".to_owned()),
        };
        db.batch_execute(&format!(
            "INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
               workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title,
               inputs, process_data, outputs, status, error, elapsed_time, execution_metadata,
               created_at, created_by_role, created_by, finished_at)
             VALUES ('{id}', '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow-run', '{run}', {i},
               NULL, NULL, '{node_id}', '{kind}', '{title}', '{{\"query\": \"where is my phone, full text\"}}',
               {process}, '{{\"text\": \"full\"}}', '{status}', {error}, 1.0, {meta},
               {start}, 'end_user', '{END_USER}', {end})",
            id = n.exec_id,
            run = run.run_id,
            node_id = n.node_id,
            kind = n.node_type,
            title = n.title,
            start = at(n.start),
            end = at(n.end),
        ))
        .await
        .expect("insert node");
    }
    db.batch_execute(&format!(
        "INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
           graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
           created_by_role, created_by, created_at, finished_at, exceptions_count)
         VALUES ('{run}', '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow', 'app-run', 'v1',
           '{{}}', '{{\"query\": \"where is my phone, full text\"}}', 'failed', '{{}}',
           'Inventory API timeout after 10s', 4.0, 42, 3,
           'end_user', '{END_USER}', {start}, {end}, 0)",
        run = run.run_id,
        start = at(run.start),
        end = at(run.end),
    ))
    .await
    .expect("insert run");
}

async fn seed_app(db: &tokio_postgres::Client) {
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{APP}', '{TENANT}', 'Shop', 'workflow');
         INSERT INTO end_users (id, tenant_id, app_id, type, session_id, external_user_id)
           VALUES ('{END_USER}', '{TENANT}', '{APP}', 'service-api', 'user-1', 'ext-1');"
    ))
    .await
    .expect("seed app");
}

/// Posts one run in `dialect` to the path its provider uses; asserts a
/// clean OTLP success.
async fn export(server: &Server, run: &ExportRun, dialect: Dialect, project: &str) {
    let path = match dialect {
        Dialect::OpenTelemetry => "/v1/traces",
        Dialect::Langfuse => "/api/public/otel/v1/traces",
    };
    let r = server
        .client
        .post(format!("{}{path}", server.http))
        .header("content-type", "application/x-protobuf")
        .header("x-loupe-project", project)
        .header("x-langfuse-ingestion-version", "4")
        .body(request(run, dialect).encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let reply = ExportTraceServiceResponse::decode(r.bytes().await.expect("body")).expect("reply");
    assert_eq!(
        reply.partial_success, None,
        "nothing may be reported rejected"
    );
}

/// The run's spans once `want` of them are there (the sync runs every
/// second).
async fn spans_of(server: &Server, run: &str, project: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server
            .get_json_as(&format!("/api/v1/traces/{run}"), project)
            .await;
        let spans = body["spans"].as_array().cloned().unwrap_or_default();
        let synced = spans.iter().any(|s| s["source"] == "dify_db");
        if status == 200 && spans.len() >= want && synced {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} not complete: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn span<'a>(spans: &'a [Value], id: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["span_id"] == id)
        .unwrap_or_else(|| panic!("no span {id}: {spans:#?}"))
}

/// One run per Dify run, with the database's facts, the providers' extras,
/// and every token counted once.
fn assert_one_merged_run(spans: &[Value], run: &ExportRun) {
    assert_eq!(
        spans.len(),
        4,
        "the run and its three nodes, once each: {spans:#?}"
    );
    let root = span(spans, &run.run_id);
    assert_eq!(root["name"], "workflow");
    assert_eq!(root["span_kind"], "workflow");
    assert_eq!(root["trace_id"], run.run_id.as_str());
    assert_eq!(root["status"], "error");
    assert_eq!(root["source"], "dify_db", "the database's version stays");
    assert!(
        root["input"]
            .as_str()
            .is_some_and(|i| i.contains("full text")),
        "the full input, not the provider's truncated copy: {root}"
    );
    assert!(
        root["attributes"]["otel.span_id"].is_string(),
        "the providers' copy merged in: {root}"
    );
    assert!(root["total_tokens"].is_null(), "{root}");
    let llm = span(spans, &run.nodes[1].exec_id);
    assert_eq!(llm["parent_span_id"], run.run_id.as_str());
    assert_eq!(llm["name"], "Write answer");
    assert_eq!(llm["model_name"], "gpt-4o");
    assert_eq!(llm["input_tokens"], 12);
    assert_eq!(llm["output_tokens"], 30);
    assert_eq!(llm["total_tokens"], 42);
    assert_eq!(llm["attributes"]["dify.node_id"], "node-llm");
    assert!(llm["attributes"]["otel.span_id"].is_string(), "{llm}");
    let tool = span(spans, &run.nodes[2].exec_id);
    assert_eq!(tool["status"], "error");
    assert_eq!(tool["error_message"], "Inventory API timeout after 10s");
    assert_eq!(tool["tool_name"], "Inventory");
    let tokens: i64 = spans
        .iter()
        .filter_map(|s| s["total_tokens"].as_i64())
        .sum();
    assert_eq!(tokens, 42, "each token once");
    assert!(
        spans.iter().all(|s| s["tags"]["workspace"] == TENANT),
        "the built-in workspace tag on every span: {spans:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_providers_and_the_database_sync_merge_into_one_run_each() {
    let (dsn, db) = dify_database().await;
    seed_app(&db).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!("[store]\nretention_days = 0\n\n[dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n"),
    )
    .expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let uuid = || uuid::Uuid::new_v4().to_string();

    // 1. The database first: the sync writes the run, then both providers'
    //    copies arrive.
    let first = run_facts(&uuid(), &uuid(), &uuid(), &uuid());
    insert_run(&db, &first).await;
    spans_of(&server, &first.run_id, "shop", 4).await;
    export(&server, &first, Dialect::OpenTelemetry, "shop").await;
    export(&server, &first, Dialect::Langfuse, "shop").await;

    // 2. The providers first; the sync comes after.
    let second = run_facts(&uuid(), &uuid(), &uuid(), &uuid());
    export(&server, &second, Dialect::Langfuse, "shop").await;
    export(&server, &second, Dialect::OpenTelemetry, "shop").await;
    insert_run(&db, &second).await;

    for run in [&first, &second] {
        let spans = spans_of(&server, &run.run_id, "shop", 4).await;
        // The sync may be mid-pass: wait until the run span is the
        // database's.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut spans = spans;
        while span(&spans, &run.run_id)["source"] != "dify_db" {
            assert!(Instant::now() < deadline, "{spans:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            spans = spans_of(&server, &run.run_id, "shop", 4).await;
        }
        assert_one_merged_run(&spans, run);
    }

    // One run per Dify run in the aggregates too.
    let r = server
        .client
        .post(format!("{}/api/v1/query", server.http))
        .header("x-loupe-project", "shop")
        .json(&json!({"q": "span_kind=workflow | count()"}))
        .send()
        .await
        .expect("query");
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[2]]), "{body}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_langfuse_otlp_endpoint_takes_basic_keys_gzip_and_the_empty_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // The key pasted in Dify's Langfuse settings sends only; another reads.
    let (pk, sk) = create_key(&data, "shop", "ingest");
    let (read_pk, read_sk) = create_key(&data, "shop", "read");
    let server = Server::start(&data, &[]).await;
    let url = format!("{}/api/public/otel/v1/traces", server.http);
    let post = |body: Vec<u8>, auth: Option<(&str, &str)>| {
        let mut req = server
            .client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .header("x-langfuse-ingestion-version", "4")
            .body(body);
        if let Some((user, pass)) = auth {
            req = req.basic_auth(user, Some(pass));
        }
        req.send()
    };

    // Saving the config in Dify: an empty export must be a 2xx.
    let empty =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default();
    let r = post(empty.encode_to_vec(), Some((&pk, &sk)))
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let reply = ExportTraceServiceResponse::decode(r.bytes().await.expect("body")).expect("reply");
    assert_eq!(reply, ExportTraceServiceResponse::default());

    // Bad or missing credentials: 401, never stored.
    let run = run_facts("0b5e3c1a-8f7d-4e2b-9a6c-1d0f3e5b7a92", "e1", "e2", "e3");
    let body = request(&run, Dialect::Langfuse).encode_to_vec();
    for auth in [Some((pk.as_str(), "sk-lf-wrong")), None] {
        let r = post(body.clone(), auth).await.expect("post");
        assert_eq!(r.status(), 401);
        let err: Value = r.json().await.expect("json error");
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{err}"
        );
    }

    // A malformed body: 400 naming the problem.
    let r = post(b"\x0a\xff\xff\xff".to_vec(), Some((&pk, &sk)))
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.expect("json error");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("protobuf")),
        "{err}"
    );

    // The run, gzip, with the key pasted in Dify's Langfuse settings.
    let r = server
        .client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .basic_auth(&pk, Some(&sk))
        .body(gzip(&body))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let reply = ExportTraceServiceResponse::decode(r.bytes().await.expect("body")).expect("reply");
    assert_eq!(reply.partial_success, None);
    let r = server
        .client
        .get(format!("{}/api/v1/traces/{}", server.http, run.run_id))
        .basic_auth(&read_pk, Some(&read_sk))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let trace: Value = r.json().await.expect("json");
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 4, "{trace}");
    assert!(
        spans
            .iter()
            .all(|s| s["project"] == "shop" && s["trace_id"] == run.run_id.as_str())
    );
    server.stop();
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_are_accepted_and_relayed_to_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let now = u64::try_from(loupe_model::time::now_ns()).expect("positive");
    let labels = vec![kv("dify.tenant_id", TENANT), kv("dify.app_id", APP)];
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: None,
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![
                    Metric {
                        name: "gen_ai.client.token.usage".into(),
                        unit: "{token}".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![NumberDataPoint {
                                attributes: labels.clone(),
                                time_unix_nano: now,
                                value: Some(number_data_point::Value::AsInt(42)),
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "gen_ai.client.operation.duration".into(),
                        unit: "s".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: labels.clone(),
                                time_unix_nano: now,
                                count: 1,
                                sum: Some(1.5),
                                bucket_counts: vec![0, 1, 0],
                                explicit_bounds: vec![1.0, 2.0],
                                ..Default::default()
                            }],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                        })),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    for path in ["/v1/metrics", "/api/public/otel/v1/metrics"] {
        let r = server
            .client
            .post(format!("{}{path}", server.http))
            .header("content-type", "application/x-protobuf")
            .body(metrics.encode_to_vec())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200, "{path}");
        let reply =
            ExportMetricsServiceResponse::decode(r.bytes().await.expect("body")).expect("reply");
        assert_eq!(reply.partial_success, None);
    }
    let text = server.metrics_text().await;
    let series = format!(r#"dify_app_id="{APP}",dify_tenant_id="{TENANT}",project="default""#);
    assert!(
        text.contains(&format!("gen_ai_client_token_usage_total{{{series}}} 84")),
        "two deltas of 42 add up: {text}"
    );
    assert!(
        text.contains(&format!(
            r#"gen_ai_client_operation_duration_bucket{{{series},le="2.0"}} 2"#
        )),
        "{text}"
    );

    // Over gRPC too (Dify's exporter may use it, default port 4317).
    let mut client = opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient::connect(server.grpc.clone())
        .await
        .expect("grpc connect");
    let reply = client
        .export(metrics.clone())
        .await
        .expect("grpc export")
        .into_inner();
    assert_eq!(reply.partial_success, None);
    let text = server.metrics_text().await;
    assert!(
        text.contains(&format!("gen_ai_client_token_usage_total{{{series}}} 126")),
        "a third delta of 42: {text}"
    );

    // An unsupported point is rejected alone, naming the metric.
    let mut bad = metrics.clone();
    bad.resource_metrics[0].scope_metrics[0].metrics[1].data = Some(metric::Data::Summary(
        opentelemetry_proto::tonic::metrics::v1::Summary::default(),
    ));
    let r = server
        .client
        .post(format!("{}/v1/metrics", server.http))
        .header("content-type", "application/x-protobuf")
        .body(bad.encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let reply =
        ExportMetricsServiceResponse::decode(r.bytes().await.expect("body")).expect("reply");
    let partial = reply.partial_success.expect("partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial
            .error_message
            .contains("gen_ai.client.operation.duration"),
        "{partial:?}"
    );
    server.stop();
}
