//! Logs end to end against a real `loupe serve`: the official Python
//! Elasticsearch clients (7.17 and 8.x, `helpers.bulk`, gzip, an API key)
//! through the `/es` API, bad items refused alone, a run's logs by its
//! trace id, and acknowledged records surviving kill -9.
//!
//! The clients come from `scripts/peers/python-logs.sh`
//! (`LOUPE_TEST_ES7_PYTHON`, `LOUPE_TEST_ES8_PYTHON`); a missing one fails
//! the test naming the script.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Key, Server, encode, otel_span, request};

/// The trace id of the run the logs point at.
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn create_key(data_dir: &Path, scope: &str) -> Key {
    crate::support::create_key(data_dir, "shop", scope)
}

fn python(var: &str) -> String {
    match std::env::var(var) {
        Ok(p) if Path::new(&p).exists() => p,
        _ => panic!(
            "{var} is not set to a Python interpreter: run `eval \"$(scripts/peers/python-logs.sh)\"` first"
        ),
    }
}

fn run_python(python: &str, script: &str, server: &Server, key: &Key, major: &str) -> Value {
    let out = Command::new(python)
        .args(["-c", script])
        .env("HOST", &server.http)
        .env("PK", &key.public)
        .env("SK", &key.secret)
        .env("ES_MAJOR", major)
        .env("TRACE", TRACE)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn search(server: &Server, key: &Key, path_and_query: &str) -> Value {
    let r = server
        .client
        .get(format!("{}{path_and_query}", server.http))
        .basic_auth(&key.public, Some(&key.secret))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200, "{path_and_query}");
    r.json().await.expect("json")
}

fn bodies(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The same script drives both client majors: what differs is the import
/// and the keyword the index call takes its document by.
const CLIENT: &str = r#"
import datetime, json, os
major = int(os.environ["ES_MAJOR"])
if major == 7:
    from elasticsearch7 import Elasticsearch, helpers
else:
    from elasticsearch import Elasticsearch, helpers
trace = os.environ["TRACE"]
es = Elasticsearch(os.environ["HOST"] + "/es", api_key=(os.environ["PK"], os.environ["SK"]),
                   http_compress=True)
info = es.info()
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
docs = [{"_index": "dify-api", "_source": {"@timestamp": now, "message": f"request {i} served",
         "level": "info", "service": "api"}} for i in range(500)]
ok, errors = helpers.bulk(es, docs)
mixed = [
    {"_index": "dify-api", "_source": {"@timestamp": now, "message": "plugin daemon: connection reset",
     "level": "ERROR", "service": "plugin-daemon", "trace_id": trace}},
    {"_index": "dify-api", "_source": {"@timestamp": "not a time", "message": "bad time"}},
    {"_index": "dify-api", "_source": {"message": f"POST /v1/workflows/run 502 3.1s {trace}", "level": "WARNING"}},
]
ok2, errors2 = helpers.bulk(es, mixed, raise_on_error=False)
raw = ['{"index":{"_index":"dify-api"}}', '{"message":"raw good one"}',
       '{"index":{"_index":"dify-api"}}', '{"message": broken']
resp = es.bulk(body=raw) if major == 7 else es.bulk(operations=raw)
one = (es.index(index="dify-worker", body={"message": "one doc", "level": "debug"}) if major == 7
       else es.index(index="dify-worker", document={"message": "one doc", "level": "debug"}))
print(json.dumps({
    "version": info["version"]["number"], "ok": ok, "errors": errors, "ok2": ok2,
    "errors2": [e["index"]["status"] for e in errors2],
    "reason2": [e["index"]["error"]["reason"] for e in errors2],
    "raw_errors": resp["errors"], "raw_status": [i["index"]["status"] for i in resp["items"]],
    "one": one["result"],
}))
"#;

async fn python_client_round_trip(var: &str, major: &str) {
    let py = python(var);
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = create_key(dir.path(), "ingest");
    let read = create_key(dir.path(), "read");
    let server = Server::start(dir.path(), &[]).await;
    // The run the logs belong to, as an OTLP trace.
    let run = otel_span(
        u128::from_str_radix(TRACE, 16).expect("hex"),
        1,
        None,
        "workflow",
        &[],
    );
    let sent = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .basic_auth(&ingest.public, Some(&ingest.secret))
        .header("content-type", "application/x-protobuf")
        .body(encode(&request(vec![run])))
        .send()
        .await
        .expect("post trace");
    assert!(sent.status().is_success());

    let got = run_python(&py, CLIENT, &server, &ingest, major);
    assert_eq!(got["version"], "8.17.0");
    assert_eq!(got["ok"], 500);
    assert_eq!(got["errors"], json!([]));
    assert_eq!(got["ok2"], 2, "{got}");
    assert_eq!(got["errors2"], json!([400]), "{got}");
    assert!(
        got["reason2"][0]
            .as_str()
            .unwrap_or_default()
            .contains("@timestamp"),
        "{got}"
    );
    assert_eq!(got["raw_errors"], true);
    assert_eq!(got["raw_status"], json!([201, 400]));
    assert_eq!(got["one"], "created");

    let all = search(&server, &read, "/api/v1/logs?stream=dify-api&limit=10000").await;
    assert_eq!(
        all["records"].as_array().map(Vec::len),
        Some(503),
        "500 + 2 + 1 good items"
    );
    let worker = search(&server, &read, "/api/v1/logs?stream=dify-worker").await;
    assert_eq!(bodies(&worker), vec!["one doc"]);
    let errors = search(
        &server,
        &read,
        "/api/v1/logs?severity=warn&q=%22connection%20reset%22",
    )
    .await;
    assert_eq!(bodies(&errors), vec!["plugin daemon: connection reset"]);
    assert_eq!(errors["records"][0]["service"], "plugin-daemon");

    // The run's view: its spans, and its logs by the same id (the field
    // `trace_id`, and the trace id at the end of Dify's request line).
    let trace = search(&server, &read, &format!("/api/v1/traces/{TRACE}")).await;
    assert!(trace.to_string().contains("workflow"), "{trace}");
    let logs = search(&server, &read, &format!("/api/v1/traces/{TRACE}/logs")).await;
    let mut found = bodies(&logs);
    found.sort();
    assert_eq!(
        found,
        vec![
            format!("POST /v1/workflows/run 502 3.1s {TRACE}"),
            "plugin daemon: connection reset".to_owned(),
        ]
    );
    // The ingest key the shipper holds cannot read what it sent.
    let refused = server
        .client
        .get(format!("{}/api/v1/logs", server.http))
        .basic_auth(&ingest.public, Some(&ingest.secret))
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status().as_u16(), 403);
}

#[tokio::test]
async fn python_elasticsearch_client_7_bulk_loads_logs_linked_to_the_run() {
    python_client_round_trip("LOUPE_TEST_ES7_PYTHON", "7").await;
}

#[tokio::test]
async fn python_elasticsearch_client_8_bulk_loads_logs_linked_to_the_run() {
    python_client_round_trip("LOUPE_TEST_ES8_PYTHON", "8").await;
}

#[tokio::test]
async fn acknowledged_bulk_items_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let mut body = String::new();
    for i in 0..2_000 {
        body.push_str("{\"index\":{\"_index\":\"crash\"}}\n");
        body.push_str(&format!("{{\"message\":\"line {i}\"}}\n"));
    }
    let r = server
        .client
        .post(format!("{}/es/_bulk", server.http))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("bulk");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("x-elastic-product")
            .and_then(|v| v.to_str().ok()),
        Some("Elasticsearch")
    );
    let reply: Value = r.json().await.expect("json");
    assert_eq!(reply["errors"], false);
    // The counts of what was acknowledged, on /metrics.
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains(
            r#"log_records_total{project="default",service="",severity="unspecified"} 2000"#
        ),
        "{metrics}"
    );
    server.kill9();
    let server = Server::start(dir.path(), &[]).await;
    let (status, page) = server
        .get_json("/api/v1/logs?stream=crash&limit=10000")
        .await;
    assert_eq!(status, 200);
    let mut got = bodies(&page);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 2_000, "every acknowledged line, once");
}

/// The OpenTelemetry Python SDK's logging bridge and OTLP/HTTP log
/// exporter (protobuf, gzip), a log line emitted inside a span.
const OTEL: &str = r#"
import json, logging, os
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

provider = LoggerProvider(resource=Resource.create({"service.name": "dify-worker"}))
exporter = OTLPLogExporter(endpoint=os.environ["HOST"] + "/v1/logs",
                           headers={"authorization": "Bearer " + os.environ["SK"]},
                           compression=Compression.Gzip)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
log = logging.getLogger("app.workflow")
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
log.setLevel(logging.DEBUG)
tracer = TracerProvider().get_tracer("e2e")
with tracer.start_as_current_span("run") as span:
    ctx = span.get_span_context()
    log.error("tool failed: connection reset", extra={"workflow_run_id": "run-otel-1"})
log.info("plain info")
provider.force_flush()
provider.shutdown()
print(json.dumps({"trace": format(ctx.trace_id, "032x"), "span": format(ctx.span_id, "016x")}))
"#;

#[tokio::test]
async fn opentelemetry_python_sdk_sends_logs_over_otlp_http() {
    let py = python("LOUPE_TEST_OTEL_PYTHON");
    let dir = tempfile::tempdir().expect("tempdir");
    let ingest = create_key(dir.path(), "ingest");
    let read = create_key(dir.path(), "read");
    let server = Server::start(dir.path(), &[]).await;
    let got = run_python(&py, OTEL, &server, &ingest, "");
    let trace = got["trace"].as_str().expect("trace id");
    let all = search(&server, &read, "/api/v1/logs?stream=otlp").await;
    assert_eq!(
        bodies(&all),
        vec!["plain info", "tool failed: connection reset"]
    );
    let run = search(&server, &read, &format!("/api/v1/traces/{trace}/logs")).await;
    let r = &run["records"][0];
    assert_eq!(run["records"].as_array().map(Vec::len), Some(1), "{run}");
    assert_eq!(r["severity"], "error");
    assert_eq!(r["severity_text"], "ERROR");
    assert_eq!(r["service"], "dify-worker");
    assert_eq!(r["span_id"], got["span"]);
    assert_eq!(r["run_id"], "run-otel-1");
    assert_eq!(r["attributes"]["otel.scope.name"], "app.workflow");
    let by_run = search(&server, &read, "/api/v1/traces/run-otel-1/logs").await;
    assert_eq!(bodies(&by_run), vec!["tool failed: connection reset"]);
}

#[tokio::test]
async fn otlp_grpc_logs_are_stored_and_a_bad_record_is_rejected_alone() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let record = |body: &str, severity: i32| LogRecord {
        severity_number: severity,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.to_owned())),
        }),
        trace_id: u128::from_str_radix(TRACE, 16)
            .expect("hex")
            .to_be_bytes()
            .to_vec(),
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record("over grpc", 13), record("bad severity", 99)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut client = LogsServiceClient::connect(server.grpc.clone())
        .await
        .expect("connect");
    let reply = client.export(request).await.expect("export").into_inner();
    let partial = reply.partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("logRecords[1]"),
        "{}",
        partial.error_message
    );
    let (status, page) = server
        .get_json(&format!("/api/v1/traces/{TRACE}/logs"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(bodies(&page), vec!["over grpc"]);
    assert_eq!(page["records"][0]["severity"], "warn");
}

#[tokio::test]
async fn logs_send_imports_files_in_batches_and_fails_naming_refused_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let jsonl = dir.path().join("api.jsonl");
    let mut text: String = (0..12)
        .map(|i| format!("{{\"message\":\"json {i}\",\"level\":\"info\"}}\n"))
        .collect();
    text.push_str("{\"message\":\"bad\",\"@timestamp\":\"bogus\"}\n\n");
    std::fs::write(&jsonl, text).expect("write");
    let plain = dir.path().join("Worker.log");
    std::fs::write(&plain, "started\nready\nstopping\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["logs", "send", "--batch", "5", "--server", &server.http])
        .arg(&jsonl)
        .arg(&plain)
        .output()
        .expect("run loupe logs send");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a refused line fails the command");
    assert!(stdout.contains("15 lines stored, 1 refused"), "{stdout}");
    assert!(stderr.contains("@timestamp"), "{stderr}");
    let (_, api) = server
        .get_json("/api/v1/logs?stream=api.jsonl&limit=100")
        .await;
    assert_eq!(api["records"].as_array().map(Vec::len), Some(12));
    let (_, worker) = server.get_json("/api/v1/logs?stream=worker.log").await;
    let mut got = bodies(&worker);
    got.sort();
    assert_eq!(got, vec!["ready", "started", "stopping"]);
}

#[tokio::test]
async fn shipper_probes_and_single_documents_get_elasticsearch_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let call = |method: reqwest::Method, path: &str, body: &str| {
        server
            .client
            .request(method, format!("{}/es{path}", server.http))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    use reqwest::Method;
    for (method, path, body, status) in [
        (Method::GET, "/_license", "", 200),
        (Method::GET, "/_xpack", "", 200),
        (Method::GET, "/_cat/health", "", 200),
        (Method::GET, "/_index_template/filebeat-8", "", 404),
        (Method::PUT, "/_index_template/filebeat-8", "{}", 200),
        (Method::HEAD, "/dify-api", "", 200),
        (Method::PUT, "/dify-api", "{}", 200),
        (Method::PUT, "/Dify-API", "{}", 400),
    ] {
        let r = call(method.clone(), path, body).await.expect("request");
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            r.headers()
                .get("x-elastic-product")
                .and_then(|v| v.to_str().ok()),
            Some("Elasticsearch"),
            "{method} {path}"
        );
    }
    let bad = call(Method::POST, "/dify-api/_doc", "[1, 2]")
        .await
        .expect("doc");
    assert_eq!(bad.status().as_u16(), 400);
    let err: Value = bad.json().await.expect("json");
    assert_eq!(err["error"]["type"], "mapper_parsing_exception", "{err}");
    assert_eq!(err["status"], 400);
    let good = call(Method::PUT, "/dify-api/_doc/abc", r#"{"message":"by id"}"#)
        .await
        .expect("doc");
    assert_eq!(good.status().as_u16(), 201);
    let reply: Value = good.json().await.expect("json");
    assert_eq!(
        (reply["_id"].as_str(), reply["result"].as_str()),
        (Some("abc"), Some("created"))
    );
    let (_, page) = server.get_json("/api/v1/logs?stream=dify-api").await;
    assert_eq!(bodies(&page), vec!["by id"]);
}

#[tokio::test]
async fn a_gauge_rule_fires_on_error_lines_of_one_service_in_five_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[alerts]\ninterval = '1s'\n\
         [[alerts.rules]]\nname = 'plugin-daemon-errors'\nproject = 'default'\ntype = 'gauge'\n\
         gauge = 'log_records_last_5m'\nthreshold = 3\ngroup_by = ['service']\n\
         filters = { service = 'plugin_daemon', severity = 'error' }\n\
         [[alerts.rules]]\nname = 'worker-errors'\nproject = 'default'\ntype = 'gauge'\n\
         gauge = 'log_records_last_5m'\nthreshold = 3\n\
         filters = { service = 'worker', severity = 'error' }\n",
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    let mut body = String::new();
    for (service, n) in [("plugin_daemon", 5), ("worker", 2)] {
        for i in 0..n {
            body.push_str("{\"index\":{\"_index\":\"dify\"}}\n");
            body.push_str(&format!(
                "{{\"service\":\"{service}\",\"level\":\"ERROR\",\"message\":\"failure {i}\"}}\n"
            ));
        }
    }
    let r = server
        .client
        .post(format!("{}/es/_bulk", server.http))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("bulk");
    assert_eq!(r.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let firing = loop {
        let (status, alerts) = server.get_json("/api/v1/alerts").await;
        assert_eq!(status, 200);
        let firing: Vec<Value> = alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|a| a["phase"] == "firing")
            .cloned()
            .collect();
        if !firing.is_empty() {
            break firing;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alert fired: {alerts}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // Give the other rule the same evaluations to prove it stays quiet.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let (_, alerts) = server.get_json("/api/v1/alerts").await;
    let names: Vec<&str> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["phase"] == "firing")
        .filter_map(|a| a["rule"].as_str())
        .collect();
    assert_eq!(names, vec!["plugin-daemon-errors"], "{alerts}");
    assert_eq!(firing[0]["group"]["service"], "plugin_daemon", "{firing:?}");
}

/// `_id`s are kept: a re-sent item is not stored twice (per project and
/// stream), `index` answers `updated`, `create` a 409, across a restart.
#[tokio::test]
async fn a_resent_document_id_is_stored_once_and_answered_as_elasticsearch_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bulk_body = "{\"index\":{\"_index\":\"dify-api\",\"_id\":\"a\"}}\n{\"message\":\"item a\"}\n\
                     {\"create\":{\"_index\":\"dify-api\",\"_id\":\"b\"}}\n{\"message\":\"item b\"}\n\
                     {\"index\":{\"_index\":\"dify-api\"}}\n{\"message\":\"no id\"}\n";
    let send = |server: &Server, method: reqwest::Method, path: &str, body: &str| {
        server
            .client
            .request(method, format!("{}/es{path}", server.http))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let results = |reply: &Value| -> Vec<(String, u64)> {
        reply["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| {
                let (_, entry) = item
                    .as_object()
                    .expect("item")
                    .iter()
                    .next()
                    .expect("entry");
                let what = entry["result"]
                    .as_str()
                    .or(entry["error"]["type"].as_str())
                    .unwrap_or_default();
                (
                    what.to_owned(),
                    entry["status"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    };
    use reqwest::Method;
    let server = Server::start(dir.path(), &[]).await;
    let first: Value = send(&server, Method::POST, "/_bulk", bulk_body)
        .await
        .expect("bulk")
        .json()
        .await
        .expect("json");
    let created = ("created".to_owned(), 201);
    assert_eq!(results(&first), vec![created.clone(); 3], "{first}");
    let again: Value = send(&server, Method::POST, "/_bulk", bulk_body)
        .await
        .expect("bulk")
        .json()
        .await
        .expect("json");
    let resent = vec![
        ("updated".to_owned(), 200),
        ("version_conflict_engine_exception".to_owned(), 409),
        created.clone(),
    ];
    assert_eq!(results(&again), resent, "{again}");
    assert_eq!(again["errors"], true);
    for (method, path, status) in [
        (Method::PUT, "/dify-api/_doc/c", 201),
        (Method::PUT, "/dify-api/_doc/c", 200),
        (Method::PUT, "/dify-api/_create/c", 409),
        (Method::POST, "/dify-api/_create/d", 201),
        (Method::PUT, "/other/_create/c", 201),
    ] {
        let r = send(&server, method.clone(), path, r#"{"message":"single"}"#)
            .await
            .expect("doc");
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        if status == 409 {
            let err: Value = r.json().await.expect("json");
            assert_eq!(err["error"]["type"], "version_conflict_engine_exception");
        }
    }
    // After a restart (the records now in parts), the ids still hold.
    server.stop();
    let server = Server::start(dir.path(), &[]).await;
    let after: Value = send(&server, Method::POST, "/_bulk", bulk_body)
        .await
        .expect("bulk")
        .json()
        .await
        .expect("json");
    assert_eq!(results(&after), resent, "{after}");
    let r = send(&server, Method::PUT, "/dify-api/_create/c", "{}")
        .await
        .expect("doc");
    assert_eq!(r.status().as_u16(), 409);
    let (_, page) = server
        .get_json("/api/v1/logs?stream=dify-api&limit=100")
        .await;
    let mut got = bodies(&page);
    got.sort();
    assert_eq!(
        got,
        [
            "item a", "item b", "no id", "no id", "no id", "single", "single"
        ]
    );
    let (_, other) = server.get_json("/api/v1/logs?stream=other").await;
    assert_eq!(bodies(&other), ["single"]);
}
