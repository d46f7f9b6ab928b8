//! Replays every recorded OTLP body (Dify 1.14.1's Phoenix provider over
//! HTTP protobuf, its Arize provider over gRPC, the Python SDK) into a real
//! server, and checks each trace comes back complete through the read API:
//! the same span ids, parents and names the decoded JSON shows, one run id
//! for every span of a Dify run, and the same result for OTLP/JSON and gzip.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use serde_json::Value;

use crate::support::{Server, fixtures};

/// (span id, parent id, raw OTel name) as sent, all hex, per trace as
/// stored: Dify's trace id (the root span's `dify_trace_id`) for Dify's
/// runs, the OTLP trace id for everything else.
type Expected = BTreeMap<String, BTreeSet<(String, Option<String>, String)>>;

fn b64_hex(v: &Value) -> String {
    hex::encode(
        STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("base64 id"),
    )
}

fn expected_from_decoded(file: &str) -> Expected {
    let text =
        std::fs::read_to_string(fixtures().join("dify-1.14.1").join(file)).expect("decoded json");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let mut by_sent = Expected::new();
    let mut dify_trace: BTreeMap<String, String> = BTreeMap::new();
    for req in doc["requests"].as_array().expect("requests") {
        for rs in req["decoded"]["resourceSpans"]
            .as_array()
            .expect("resourceSpans")
        {
            for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
                for s in ss["spans"].as_array().expect("spans") {
                    // Dify's connectivity check is answered, not stored.
                    if s["name"] == "api_check" {
                        continue;
                    }
                    let trace = b64_hex(&s["traceId"]);
                    for a in s["attributes"].as_array().into_iter().flatten() {
                        if a["key"] == "dify_trace_id" {
                            let id = a["value"]["stringValue"].as_str().expect("dify trace");
                            dify_trace.insert(trace.clone(), id.to_owned());
                        }
                    }
                    let parent = s.get("parentSpanId").map(b64_hex);
                    by_sent.entry(trace).or_default().insert((
                        b64_hex(&s["spanId"]),
                        parent,
                        s["name"].as_str().expect("name").to_owned(),
                    ));
                }
            }
        }
    }
    by_sent
        .into_iter()
        .map(|(trace, spans)| (dify_trace.get(&trace).cloned().unwrap_or(trace), spans))
        .collect()
}

async fn check_traces(server: &Server, expected: &Expected) {
    for (trace, spans) in expected {
        let (status, body) = server.get_json(&format!("/api/v1/traces/{trace}")).await;
        assert_eq!(status, 200, "trace {trace}: {body}");
        let stored = body["spans"].as_array().expect("spans");
        // Dify's spans are stored under Dify's ids, the ids as sent kept
        // as `otel.span_id`: compare what was sent.
        let sent_id = |id: &str| -> String {
            stored
                .iter()
                .find(|s| s["span_id"] == id)
                .and_then(|s| s["attributes"]["otel.span_id"].as_str())
                .unwrap_or(id)
                .to_owned()
        };
        let got: BTreeSet<_> = stored
            .iter()
            .map(|s| {
                (
                    sent_id(s["span_id"].as_str().expect("span_id")),
                    s["parent_span_id"].as_str().map(sent_id),
                    s["attributes"]["otel.span_name"]
                        .as_str()
                        .or(s["name"].as_str())
                        .expect("name")
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(&got, spans, "trace {trace}");
        // Tree order: every parent present comes before its children.
        let order: Vec<&str> = stored
            .iter()
            .map(|s| s["span_id"].as_str().unwrap_or(""))
            .collect();
        for (i, s) in stored.iter().enumerate() {
            if let Some(p) = s["parent_span_id"].as_str()
                && let Some(pi) = order.iter().position(|id| *id == p)
            {
                assert!(pi < i, "parent {p} after child in trace {trace}");
            }
        }
        // A Dify run: every span carries the run id of its workflow span.
        if let Some(wf) = stored.iter().find(|s| {
            s["span_kind"] == "workflow"
                && s["node_type"].is_null()
                && s["attributes"]["otel.span_name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("workflow_"))
        }) {
            let run = wf["run_id"].as_str().expect("workflow run id");
            assert_eq!(
                wf["span_id"].as_str(),
                Some(run),
                "the run span is the run id"
            );
            for s in stored {
                assert_eq!(
                    s["run_id"].as_str(),
                    Some(run),
                    "span {} of trace {trace}",
                    s["span_id"]
                );
                assert_eq!(s["workflow_id"], wf["workflow_id"], "span {}", s["span_id"]);
            }
        }
    }
}

fn phoenix_bodies() -> Vec<Vec<u8>> {
    (1..=13)
        .map(|i| {
            std::fs::read(fixtures().join(format!("dify-1.14.1/dify_otlp_phoenix_{i:02}.bin")))
                .expect("fixture")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dify_phoenix_traffic_over_http_protobuf_comes_back_as_complete_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    for body in phoenix_bodies() {
        let r = server.post_otlp(body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/x-protobuf")
        );
    }
    let expected = expected_from_decoded("dify_otlp_phoenix_decoded.json");
    assert_eq!(expected.len(), 2, "two runs (the api_check is not stored)");
    check_traces(&server, &expected).await;
    // The failed-free http branch run: node kinds and statuses.
    let (_, body) = server
        .get_json("/api/v1/traces/1590fdac-061c-4f7f-81ee-08eb6df54b42")
        .await;
    let kinds: BTreeSet<(String, String)> = body["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter_map(|s| {
            Some((
                s["node_type"].as_str()?.to_owned(),
                s["span_kind"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("start", "chain"),
        ("if-else", "branch"),
        ("http-request", "http"),
        ("end", "chain"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(kinds, want);
    // The Langfuse read API finds the run by Dify's run id too (issue 13).
    let (status, body) = server
        .get_json("/api/public/traces/1590fdac-061c-4f7f-81ee-08eb6df54b42")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["observations"].as_array().map(Vec::len),
        Some(5),
        "the workflow span and its four nodes: {body}"
    );

    // Same data after a restart (flushed on shutdown, read from Parquet).
    server.stop();
    let server = Server::start(dir.path(), &[]).await;
    check_traces(&server, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dify_arize_traffic_over_grpc_comes_back_as_complete_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let mut client = TraceServiceClient::connect(server.grpc.clone())
        .await
        .expect("grpc connect");
    for i in 1..=7 {
        let bytes =
            std::fs::read(fixtures().join(format!("dify-1.14.1/dify_otlp_arize_grpc_{i:02}.bin")))
                .expect("fixture");
        let req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("fixture decodes");
        let resp = client.export(req).await.expect("export").into_inner();
        assert!(resp.partial_success.is_none(), "{resp:?}");
    }
    check_traces(
        &server,
        &expected_from_decoded("dify_otlp_arize_grpc_decoded.json"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_and_gzip_bodies_store_the_same_spans_as_protobuf() {
    let sdk = std::fs::read(fixtures().join("clients/otlp_traces.bin")).expect("fixture");
    let req = ExportTraceServiceRequest::decode(sdk.as_slice()).expect("decodes");
    let json = serde_json::to_vec(&req).expect("otlp json");

    let mut views = Vec::new();
    for (content_type, gzip, body) in [
        ("application/x-protobuf", false, sdk.clone()),
        ("application/json", false, json.clone()),
        ("application/x-protobuf", true, sdk.clone()),
        ("application/json", true, json),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(dir.path(), &[]).await;
        let body = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&body).expect("gzip");
            enc.finish().expect("gzip")
        } else {
            body
        };
        let mut r = server
            .client
            .post(format!("{}/v1/traces", server.http))
            .header("content-type", content_type)
            .body(body);
        if gzip {
            r = r.header("content-encoding", "gzip");
        }
        let resp = r.send().await.expect("post");
        assert_eq!(resp.status(), 200, "{content_type} gzip={gzip}");
        let mut spans = server.all_spans().await;
        spans.sort_by(|a, b| a["span_id"].as_str().cmp(&b["span_id"].as_str()));
        assert_eq!(spans.len(), 3);
        views.push(spans);
    }
    for v in &views[1..] {
        assert_eq!(v, &views[0]);
    }
    let tool = views[0]
        .iter()
        .find(|s| s["span_kind"] == "tool")
        .expect("tool span");
    assert_eq!(tool["status"], "error");
}
