//! OTLP/HTTP ingest in process (issue 15): when every ingest slot is busy,
//! both OTLP paths Dify 1.20 uses answer 503 with `Retry-After` (Dify
//! retries 408/429/5xx and honours it), and the request is stored once a
//! slot is free.

use std::time::Duration;

use axum::body::Body;
use loupe_api::admission::IngestGate;
use loupe_backend::SpanReader as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use tonic::codegen::http;
use tower::ServiceExt as _;

mod support;

use support::{SECRET, state};

fn body() -> Vec<u8> {
    let start = u64::try_from(loupe_model::time::now_ns()).expect("positive") - 1_000_000_000;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![9; 8],
                    name: "root".into(),
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 1_000,
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

fn post(path: &str) -> http::Request<Body> {
    http::Request::post(path)
        .header("content-type", "application/x-protobuf")
        .header("authorization", format!("Bearer {SECRET}"))
        .body(Body::from(body()))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_answers_503_with_retry_after_on_both_otlp_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = IngestGate::new(1, Duration::from_millis(50));
    let (state, store) = state(dir.path(), gate.clone());
    let router = loupe_api::router(state);
    let held = gate.admit().await.expect("the one slot");
    for path in ["/v1/traces", "/api/public/otel/v1/traces"] {
        let response = router.clone().oneshot(post(path)).await.expect("answer");
        assert_eq!(response.status(), 503, "{path}");
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        assert!(retry.is_some_and(|s| s >= 1), "{path}: {retry:?}");
    }
    assert_eq!(gate.refused_total(), 2);
    drop(held);
    let response = router
        .oneshot(post("/api/public/otel/v1/traces"))
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let project = loupe_model::ProjectId::new("p").expect("project");
    let trace = store
        .trace(&project, &hex::encode([7u8; 16]))
        .await
        .expect("read");
    assert_eq!(trace.len(), 1);
}
