//! The Langfuse-compatible API end to end: recorded Dify 1.14.1 and SDK v2
//! traffic replayed over HTTP, API keys and project isolation, batch edge
//! cases, and the real Python Langfuse SDKs (v2 as Dify ≤ 1.13.2 links it,
//! v4 driven the way Dify 1.14 calls its ingestion client).
//!
//! The Python interpreters come from `scripts/peers/python-clients.sh`
//! (`LOUPE_TEST_LANGFUSE2_PYTHON`, `LOUPE_TEST_LANGFUSE4_PYTHON`); a missing
//! one fails the test and names the script.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Server, assert_ok, fixtures};

/// A key pair made by `loupe keys create`.
struct Key {
    public: String,
    secret: String,
}

fn create_key(data_dir: &Path, project: &str) -> Key {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "keys",
            "create",
            "--json",
            "--project",
            project,
            "--scope",
            "admin",
            "--data-dir",
        ])
        .arg(data_dir)
        .output()
        .expect("run loupe keys create");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("keys create prints JSON");
    let keys_file = std::fs::read_to_string(data_dir.join("keys.json")).expect("keys.json");
    let secret = v["secret_key"].as_str().expect("secret").to_owned();
    assert!(
        !keys_file.contains(&secret),
        "secrets are stored hashed only"
    );
    Key {
        public: v["public_key"].as_str().expect("public").to_owned(),
        secret,
    }
}

async fn post(server: &Server, key: Option<&Key>, body: Vec<u8>) -> (u16, Value) {
    let mut req = server
        .client
        .post(format!("{}/api/public/ingestion", server.http))
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = key {
        req = req.basic_auth(&k.public, Some(&k.secret));
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(server: &Server, key: Option<&Key>, path: &str) -> (u16, Value) {
    let mut req = server.client.get(format!("{}{path}", server.http));
    if let Some(k) = key {
        req = req.basic_auth(&k.public, Some(&k.secret));
    }
    let resp = req.send().await.expect("get");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Posts a batch and asserts every event succeeded.
async fn ingest_ok(server: &Server, key: Option<&Key>, body: &Value) {
    let (status, reply) = post(server, key, serde_json::to_vec(body).expect("encode")).await;
    assert_eq!(status, 207, "{reply}");
    assert_eq!(reply["errors"], json!([]), "{reply}");
    let sent = body["batch"].as_array().map_or(0, Vec::len);
    assert_eq!(
        reply["successes"].as_array().map(Vec::len),
        Some(sent),
        "{reply}"
    );
}

fn capture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn observation<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["observations"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no observation {name:?} in {trace}"))
}

#[tokio::test]
async fn dify_langfuse_traffic_replays_into_runs_readable_through_both_apis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let files = [
        "dify-1.14.1/dify_langfuse_workflow_failed_http.json",
        "dify-1.14.1/dify_langfuse_workflow_success_aggregator_branch.json",
        "dify-1.14.1/dify_langfuse_workflow_success_http_branch.json",
        "dify-1.14.1/dify_langfuse_workflow_success_streaming_mode.json",
    ];
    for file in files {
        let c = capture(file);
        for request in c["requests"].as_array().expect("requests") {
            ingest_ok(&server, None, &request["body"]).await;
        }
    }
    // Open mode: Dify's auth check with any key pair succeeds.
    let auth = capture("dify-1.14.1/dify_langfuse_auth_check.json");
    let header = auth["requests"][0]["headers"]["Authorization"]
        .as_str()
        .expect("auth header");
    let resp = server
        .client
        .get(format!("{}/api/public/projects", server.http))
        .header("authorization", header)
        .send()
        .await
        .expect("projects");
    assert_eq!(resp.status().as_u16(), 200);
    let projects: Value = resp.json().await.expect("json");
    assert_eq!(projects["data"][0]["id"], "default");
    assert!(projects["data"][0]["organization"]["id"].is_string());

    let failed = capture(files[0]);
    let run = failed["workflow_run_id"].as_str().expect("run id");
    let (status, trace) = get(&server, None, &format!("/api/public/traces/{run}")).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["name"], "workflow");
    assert_eq!(trace["userId"], "probe-user-1");
    assert_eq!(trace["tags"], json!(["workflow"]));
    assert_eq!(trace["status"], "error");
    assert_eq!(trace["errorMessage"], "[Errno 111] Connection refused");
    assert_eq!(trace["metadata"]["status"], "failed");
    assert_eq!(trace["observations"].as_array().map(Vec::len), Some(3));
    for name in ["Start", "IF/ELSE"] {
        let node = observation(&trace, name);
        assert_eq!(node["status"], "ok", "{name}");
        assert_eq!(node["level"], "DEFAULT", "{name}");
        assert_eq!(node["parentObservationId"], Value::Null, "{name}");
    }
    let http = observation(&trace, "HTTP Request");
    assert_eq!(http["status"], "error");
    assert_eq!(http["level"], "ERROR");
    assert_eq!(http["nodeType"], "http-request");
    assert_eq!(http["statusMessage"], "[Errno 111] Connection refused");

    // The Loupe API sees the run with run-level fields on every node.
    let (status, run_view) = server.get_json(&format!("/api/v1/traces/{run}")).await;
    assert_eq!(status, 200, "{run_view}");
    let spans = run_view["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 4);
    for span in spans {
        assert_eq!(span["run_id"], run, "{span}");
        assert_eq!(span["user_id"], "probe-user-1", "{span}");
        assert_eq!(span["source"], "langfuse");
    }
    let http = spans
        .iter()
        .find(|s| s["name"] == "HTTP Request")
        .expect("http node");
    assert_eq!(http["error_message"], "[Errno 111] Connection refused");
    let start = spans
        .iter()
        .find(|s| s["name"] == "Start")
        .expect("start node");
    assert_eq!(
        start["error_message"],
        Value::Null,
        "the run's error is not the node's"
    );

    let (status, list) = get(
        &server,
        None,
        "/api/public/traces?userId=probe-user-1&limit=2",
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["meta"]["totalItems"], 3);
    assert_eq!(list["meta"]["totalPages"], 2);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let (_, page2) = get(
        &server,
        None,
        "/api/public/traces?userId=probe-user-1&limit=2&page=2",
    )
    .await;
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(1));
    let (_, by_tag) = get(&server, None, "/api/public/traces?tags=workflow&tags=nope").await;
    assert_eq!(by_tag["meta"]["totalItems"], 0);
    let (_, obs) = get(
        &server,
        None,
        &format!("/api/public/observations?traceId={run}&name=Start"),
    )
    .await;
    assert_eq!(obs["data"].as_array().map(Vec::len), Some(1), "{obs}");
    assert_eq!(obs["data"][0]["type"], "SPAN");
}

#[tokio::test]
async fn sdk_v2_batch_re_sent_and_out_of_order_updates_merge_to_one_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let batch = capture("clients/langfuse_v2_ingestion.json");
    // The v2 SDK re-sends a whole batch after a partial failure.
    ingest_ok(&server, None, &batch).await;
    ingest_ok(&server, None, &batch).await;
    let trace_id = "cc5f6b10-2e19-44c6-b888-42bd92e1be81";
    let (status, trace) = get(&server, None, &format!("/api/public/traces/{trace_id}")).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["output"], json!({"answer": "hello!"}));
    assert_eq!(trace["sessionId"], "sess-1");
    assert_eq!(
        trace["observations"].as_array().map(Vec::len),
        Some(2),
        "{trace}"
    );
    assert_eq!(trace["scores"].as_array().map(Vec::len), Some(1));
    assert_eq!(trace["scores"][0]["value"], 0.9);
    let llm = observation(&trace, "llm-node");
    assert_eq!(llm["type"], "GENERATION");
    assert_eq!(
        llm["usage"],
        json!({"input": 12, "output": 34, "total": 46, "unit": "TOKENS"})
    );
    assert_eq!(llm["model"], "gpt-4o");

    // An update in one request, its create in a later one.
    let update = json!({"batch": [{"id": "u1", "type": "span-update", "timestamp": "2026-11-24T10:00:02Z",
        "body": {"id": "late-span", "traceId": trace_id, "output": "done", "endTime": "2026-11-24T10:00:02Z"}}]});
    let create = json!({"batch": [{"id": "c1", "type": "span-create", "timestamp": "2026-11-24T10:00:01Z",
        "body": {"id": "late-span", "traceId": trace_id, "name": "late", "startTime": "2026-11-24T10:00:01Z", "input": "go"}}]});
    ingest_ok(&server, None, &update).await;
    ingest_ok(&server, None, &create).await;
    let (_, trace) = get(&server, None, &format!("/api/public/traces/{trace_id}")).await;
    let late = observation(&trace, "late");
    assert_eq!(late["output"], "done");
    assert_eq!(late["input"], "go");
    assert_eq!(late["latency"], 1.0);
}

#[tokio::test]
async fn keys_decide_the_project_and_bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alpha = create_key(dir.path(), "alpha"); // server stopped
    let server = Server::start(dir.path(), &[]).await;
    let beta = create_key(dir.path(), "beta"); // server running

    let (status, body) = get(&server, None, "/api/public/projects").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].is_string());
    let wrong = Key {
        public: alpha.public.clone(),
        secret: "sk-lf-wrong".into(),
    };
    assert_eq!(
        get(&server, Some(&wrong), "/api/public/projects").await.0,
        401
    );
    assert_eq!(get(&server, None, "/api/v1/spans").await.0, 401);
    assert_eq!(server.get_json("/healthz").await.0, 200);
    assert_eq!(server.get_json("/readyz").await.0, 200);
    let (_, projects) = get(&server, Some(&beta), "/api/public/projects").await;
    assert_eq!(projects["data"][0]["id"], "beta");

    let batch = json!({"batch": [
        {"id": "e1", "type": "trace-create", "timestamp": "2026-11-24T10:00:00Z", "body": {"id": "secret-trace", "name": "a"}},
        {"id": "e2", "type": "mystery-create", "timestamp": "2026-11-24T10:00:00Z", "body": {}},
        {"id": "e3", "type": "span-create", "timestamp": "not a time", "body": {"id": "s"}},
        {"id": "e4", "type": "span-create", "timestamp": "2026-11-24T10:00:01Z", "body": {"id": "s1", "traceId": "secret-trace"}}
    ]});
    let (status, reply) = post(
        &server,
        Some(&alpha),
        serde_json::to_vec(&batch).expect("encode"),
    )
    .await;
    assert_eq!(status, 207);
    let ok: Vec<&str> = reply["successes"]
        .as_array()
        .expect("successes")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ok, ["e1", "e4"]);
    let errors = reply["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .all(|e| e["status"] == 400 && e["message"].is_string() && e["error"].is_string())
    );

    assert_eq!(
        get(&server, Some(&alpha), "/api/public/traces/secret-trace")
            .await
            .0,
        200
    );
    assert_eq!(
        get(&server, Some(&beta), "/api/public/traces/secret-trace")
            .await
            .0,
        404
    );
    let (_, beta_list) = get(&server, Some(&beta), "/api/public/traces").await;
    assert_eq!(beta_list["meta"]["totalItems"], 0);
    let (status, _) = server.get_json("/api/v1/traces/secret-trace").await;
    assert_eq!(status, 401, "no key, no data");

    let (status, reply) = post(&server, Some(&alpha), b"{\"batch\": 5}".to_vec()).await;
    assert_eq!(status, 400, "{reply}");
    let huge = format!(
        "{{\"batch\": [], \"metadata\": \"{}\"}}",
        "x".repeat(5 << 20)
    );
    let (status, reply) = post(&server, Some(&alpha), huge.into_bytes()).await;
    assert_eq!(status, 413, "{reply}");
    assert!(reply["error"].as_str().is_some_and(|e| e.contains("limit")));
}

/// The interpreter of a venv made by `scripts/peers/python-clients.sh`.
fn python(var: &str) -> String {
    match std::env::var(var) {
        Ok(p) if Path::new(&p).exists() => p,
        _ => panic!(
            "{var} is not set to a Python interpreter: run `eval \"$(scripts/peers/python-clients.sh)\"` first"
        ),
    }
}

fn run_python(python: &str, script: &str, server: &Server, key: &Key) -> Value {
    let out = Command::new(python)
        .args(["-c", script])
        .env("HOST", &server.http)
        .env("PK", &key.public)
        .env("SK", &key.secret)
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

const SDK_V2: &str = r#"
import json, os
from langfuse import Langfuse
lf = Langfuse(public_key=os.environ["PK"], secret_key=os.environ["SK"], host=os.environ["HOST"], max_retries=1)
assert lf.auth_check()
trace = lf.trace(id="sdk2-trace", name="sdk-v2", user_id="u2", session_id="s2", input={"q": "hi"}, tags=["sdk", "v2"])
span = trace.span(id="sdk2-span", name="retrieve", input={"q": "hi"})
span.end(output={"docs": 1})
gen = trace.generation(id="sdk2-gen", name="llm", model="gpt-4o", input=[{"role": "user", "content": "hi"}])
gen.end(output="hello", usage={"input": 3, "output": 5, "unit": "TOKENS"})
trace.update(output={"answer": "hello"})
trace.score(name="quality", value=0.8, comment="good")
lf.flush()
t = lf.fetch_trace("sdk2-trace").data
listed = lf.fetch_traces(user_id="u2").data
obs = lf.fetch_observations(trace_id="sdk2-trace").data
lf.shutdown()
print(json.dumps({"name": t.name, "observations": sorted(o.name for o in t.observations),
                  "scores": [s.name for s in t.scores], "listed": [x.id for x in listed],
                  "obs": len(obs), "output": t.output}))
"#;

#[tokio::test]
async fn python_sdk_v2_traces_spans_generations_and_scores_round_trip() {
    let py = python("LOUPE_TEST_LANGFUSE2_PYTHON");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = create_key(dir.path(), "sdk");
    let server = Server::start(dir.path(), &[]).await;
    let got = run_python(&py, SDK_V2, &server, &key);
    assert_eq!(got["name"], "sdk-v2");
    assert_eq!(got["observations"], json!(["llm", "retrieve"]));
    assert_eq!(got["scores"], json!(["quality"]));
    assert_eq!(got["listed"], json!(["sdk2-trace"]));
    assert_eq!(got["obs"], 2);
    assert_eq!(got["output"], json!({"answer": "hello"}));
    let (_, trace) = get(&server, Some(&key), "/api/public/traces/sdk2-trace").await;
    let llm = observation(&trace, "llm");
    assert_eq!(llm["usage"]["total"], 8);
    assert_eq!(trace["tags"], json!(["sdk", "v2"]));
}

const SDK_V4: &str = r#"
import datetime, json, os, uuid
from langfuse import Langfuse
from langfuse.api import (CreateGenerationBody, CreateSpanBody, IngestionEvent_GenerationCreate,
    IngestionEvent_ScoreCreate, IngestionEvent_SpanCreate, IngestionEvent_TraceCreate, ScoreBody, TraceBody)
lf = Langfuse(public_key=os.environ["PK"], secret_key=os.environ["SK"], host=os.environ["HOST"])
assert lf.auth_check()
now = lambda: datetime.datetime.now(datetime.timezone.utc).isoformat()
t0 = datetime.datetime(2026, 11, 24, 10, 0, 0, tzinfo=datetime.timezone.utc)
sec = lambda s: t0 + datetime.timedelta(seconds=s)
run = "sdk4-run"
def send(event):
    # Dify >= 1.13.3: one event per synchronous batch call.
    reply = lf.api.ingestion.batch(batch=[event])
    assert not reply.errors, reply.errors
meta = {"workflow_run_id": run, "tenant_id": "t1", "app_id": "app-4"}
send(IngestionEvent_TraceCreate(id=str(uuid.uuid4()), timestamp=now(), body=TraceBody(
    id=run, name="workflow", user_id="u4", input={"query": "hi"}, output={},
    metadata={**meta, "status": "failed", "workflow_id": "wf-4", "version": "draft"}, tags=["workflow"])))
send(IngestionEvent_SpanCreate(id=str(uuid.uuid4()), timestamp=now(), body=CreateSpanBody(
    id="sdk4-start", trace_id=run, name="Start", start_time=sec(0), end_time=sec(1), input={}, output={},
    metadata={**meta, "node_type": "start", "status": "succeeded"}, level="DEFAULT", status_message="rate limited")))
send(IngestionEvent_GenerationCreate(id=str(uuid.uuid4()), timestamp=now(), body=CreateGenerationBody(
    id="sdk4-llm", trace_id=run, name="LLM", start_time=sec(1), end_time=sec(3), model="gpt-4o-mini",
    usage={"input": 7, "output": 9, "total": 16, "unit": "TOKENS"},
    metadata={**meta, "node_type": "llm", "status": "failed", "model_provider": "openai", "total_price": "0.002"},
    level="ERROR", status_message="rate limited")))
send(IngestionEvent_ScoreCreate(id=str(uuid.uuid4()), timestamp=now(), body=ScoreBody(
    trace_id=run, name="feedback", value=1, data_type="BOOLEAN", comment="thumbs up")))
t = lf.api.trace.get(run)
listed = lf.api.trace.list(user_id="u4", fields="core")
lf.shutdown()
print(json.dumps({"observations": sorted(o.name for o in t.observations),
                  "scores": [[s.name, s.data_type] for s in t.scores], "listed": [x.id for x in listed.data]}))
"#;

#[tokio::test]
async fn python_sdk_v4_ingestion_client_as_dify_calls_it() {
    let py = python("LOUPE_TEST_LANGFUSE4_PYTHON");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = create_key(dir.path(), "dify");
    let server = Server::start(dir.path(), &[]).await;
    let got = run_python(&py, SDK_V4, &server, &key);
    assert_eq!(got["observations"], json!(["LLM", "Start"]));
    assert_eq!(got["scores"], json!([["feedback", "BOOLEAN"]]));
    assert_eq!(got["listed"], json!(["sdk4-run"]));

    let (_, run) = get(&server, Some(&key), "/api/public/traces/sdk4-run").await;
    assert_eq!(run["status"], "error");
    assert_eq!(run["errorMessage"], "rate limited");
    let start = observation(&run, "Start");
    assert_eq!(start["status"], "ok");
    let llm = observation(&run, "LLM");
    assert_eq!(llm["status"], "error");
    assert_eq!(llm["statusMessage"], "rate limited");
    assert_eq!(
        llm["usage"],
        json!({"input": 7, "output": 9, "total": 16, "unit": "TOKENS"})
    );
    assert_eq!(llm["calculatedTotalCost"], 0.002);
    assert_eq!(llm["latency"], 2.0);
    let (_, spans) = get(&server, Some(&key), "/api/v1/traces/sdk4-run").await;
    let llm = spans["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "LLM"))
        .expect("llm span");
    assert_eq!(llm["model_provider"], "openai");
    assert_eq!(llm["app_id"], "app-4");
    assert_eq!(
        llm["workflow_id"], "wf-4",
        "run context filled from the root"
    );
}

/// A Langfuse-only Dify run with an iteration, shaped as Dify 1.14's
/// provider sends it (every node's `parentObservationId` empty; the nodes
/// inside name the container's graph id as `metadata.iteration_id`): the
/// run has its duration from `elapsed_time`, and in the run view the
/// iteration's nodes hang off the iteration.
#[tokio::test]
async fn a_langfuse_only_run_has_its_duration_and_its_iteration_nesting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let run = "0b7c6a52-1f0e-4d7e-9a53-3f5a1c2b9d10";
    let base = loupe_model::time::now_ns() / 1_000_000_000 - 600;
    let at = |s: i64, ms: i64| {
        chrono::DateTime::from_timestamp(base + s, (ms * 1_000_000) as u32)
            .expect("instant")
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    };
    let meta = |id: &str, node_type: &str, iteration: Option<&str>| {
        let mut m = json!({
            "workflow_run_id": run,
            "node_execution_id": id,
            "node_type": node_type,
            "node_name": node_type,
            "status": "succeeded",
        });
        if let Some(g) = iteration {
            m["iteration_id"] = json!(g);
            m["iteration_index"] = json!(0);
        }
        m
    };
    let node =
        |id: &str, node_type: &str, s: (i64, i64), e: (i64, i64), iteration: Option<&str>| {
            json!({
                "id": format!("ev-{id}"),
                "type": "span-create",
                "timestamp": at(s.0, s.1),
                "body": {
                    "id": id, "traceId": run, "name": node_type,
                    "startTime": at(s.0, s.1), "endTime": at(e.0, e.1),
                    "input": {}, "output": {}, "level": "DEFAULT",
                    "metadata": meta(id, node_type, iteration),
                }
            })
        };
    let batch = json!({"batch": [
        {"id": "ev-trace", "type": "trace-create", "timestamp": at(0, 0), "body": {
            "id": run, "name": "workflow", "timestamp": at(0, 0),
            "input": {"query": "q"}, "output": {"answer": "a"},
            "metadata": {"workflow_run_id": run, "status": "succeeded", "elapsed_time": 3.5,
                         "workflow_id": "wf-1", "app_id": "app-1", "tenant_id": "t-1"}
        }},
        node("n-start", "start", (0, 10), (0, 20), None),
        node("n-iter", "iteration", (0, 30), (3, 0), None),
        node("n-llm-0", "llm", (0, 40), (1, 0), Some("1733000000001")),
        node("n-llm-1", "llm", (1, 10), (2, 0), Some("1733000000001")),
        node("n-code-1", "code", (2, 10), (2, 900), Some("1733000000001")),
        node("n-end", "end", (3, 100), (3, 200), None),
    ]});
    ingest_ok(&server, None, &batch).await;
    let (status, body) = get(&server, None, &format!("/api/v1/traces/{run}")).await;
    assert_eq!(status, 200, "{body}");
    let spans = body["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 7, "{body}");
    let by_id = |id: &str| {
        spans
            .iter()
            .find(|s| s["span_id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {body}"))
    };
    let root = by_id(run);
    assert_eq!(root["span_kind"], "workflow");
    assert_eq!(
        root["end_time"]
            .as_i64()
            .zip(root["start_time"].as_i64())
            .map(|(e, s)| e - s),
        Some(3_500_000_000),
        "the duration from elapsed_time: {root}"
    );
    for inside in ["n-llm-0", "n-llm-1", "n-code-1"] {
        assert_eq!(by_id(inside)["parent_span_id"], "n-iter", "{inside}");
    }
    for top in ["n-start", "n-iter", "n-end"] {
        assert_eq!(by_id(top)["parent_span_id"], run, "{top}");
    }
    // Tree order: the container before its children.
    let pos = |id: &str| spans.iter().position(|s| s["span_id"] == id).expect("span");
    assert!(pos("n-iter") < pos("n-llm-0"));
    // The built-in workspace tag: Dify 1.14's Langfuse provider names the
    // tenant in the trace's metadata only; every node of the run has it.
    for s in spans {
        assert_eq!(s["tags"]["workspace"], "t-1", "{s}");
    }
    server.stop();
}
