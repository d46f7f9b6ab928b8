//! The OTLP/gRPC service, called as a tower service (issue 14): the key is
//! checked before the message body is read, a message over the `[ingest]`
//! caps or not decoding is `INVALID_ARGUMENT` naming the problem (prost's
//! codec said `INTERNAL`), and a good message is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use axum::body::Body;
use bytes::Bytes;
use loupe_api::admission::IngestGate;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use tonic::codegen::http;
use tower::Service as _;

mod support;

use support::{READ_SECRET, SECRET, state};

const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A gRPC frame around `message`.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// A body that notes whether it was ever read.
fn watched_body(bytes: Vec<u8>, read: Arc<AtomicBool>) -> Body {
    let mut chunk = Some(Bytes::from(bytes));
    Body::from_stream(futures::stream::poll_fn(move |_| {
        read.store(true, Ordering::SeqCst);
        Poll::Ready(chunk.take().map(Ok::<_, std::io::Error>))
    }))
}

fn request(body: Body, key: Option<&str>) -> http::Request<Body> {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://loupe{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    builder.body(body).expect("request")
}

/// The grpc-status and message of a response (headers, then trailers).
async fn status(response: http::Response<tonic::body::Body>) -> (i32, String) {
    use http_body_util_shim::collect_trailers;
    let headers = response.headers().clone();
    let from = |h: &http::HeaderMap| {
        let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = h
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        Some((code, message))
    };
    if let Some(found) = from(&headers) {
        return found;
    }
    let trailers = collect_trailers(response.into_body()).await;
    from(&trailers).unwrap_or((-1, String::new()))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a tonic body to its end and returns its trailers.
mod http_body_util_shim {
    use tonic::codegen::Body as _;
    use tonic::codegen::http::HeaderMap;

    pub async fn collect_trailers(mut body: tonic::body::Body) -> HeaderMap {
        let mut trailers = HeaderMap::new();
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(frame) = frame
                && let Ok(t) = frame.into_trailers()
            {
                trailers.extend(t);
            }
        }
        trailers
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_checked_before_the_message_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, _store) = state(dir.path(), IngestGate::unlimited());
    let mut service = loupe_api::grpc::trace_service(state);
    for key in [None, Some("sk-lf-wrong")] {
        let read = Arc::new(AtomicBool::new(false));
        // 16 MB of empty spans: decoding this used to OOM the process.
        let spans = [0x12u8, 0x00].repeat(8 << 20);
        let body = watched_body(frame(&spans), read.clone());
        let response = service.call(request(body, key)).await.expect("infallible");
        let (code, message) = status(response).await;
        assert_eq!(
            code,
            tonic::Code::Unauthenticated as i32,
            "{key:?}: {message}"
        );
        assert!(!read.load(Ordering::SeqCst), "{key:?}: the body was read");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_key_may_not_export_and_is_refused_before_the_message_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, _store) = state(dir.path(), IngestGate::unlimited());
    let mut service = loupe_api::grpc::trace_service(state);
    let read = Arc::new(AtomicBool::new(false));
    let body = watched_body(frame(&export(Vec::new())), read.clone());
    let response = service
        .call(request(body, Some(READ_SECRET)))
        .await
        .expect("infallible");
    let (code, message) = status(response).await;
    assert_eq!(code, tonic::Code::PermissionDenied as i32, "{message}");
    assert!(message.contains("`ingest`"), "{message}");
    assert!(!read.load(Ordering::SeqCst), "the body was read");
}

fn export(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_oversized_messages_are_invalid_argument_and_good_ones_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, store) = state(dir.path(), IngestGate::unlimited());
    let mut service = loupe_api::grpc::trace_service(state);
    let too_many = export(vec![Span::default(); 50_001]);
    let not_protobuf = vec![0xffu8; 64];
    for (what, message, needle) in [
        (
            "over the span cap",
            too_many,
            "ingest.max_spans_per_request",
        ),
        ("not protobuf", not_protobuf, "invalid OTLP protobuf"),
    ] {
        let read = Arc::new(AtomicBool::new(false));
        let body = watched_body(frame(&message), read);
        let response = service
            .call(request(body, Some(SECRET)))
            .await
            .expect("infallible");
        let (code, text) = status(response).await;
        assert_eq!(code, tonic::Code::InvalidArgument as i32, "{what}: {text}");
        assert!(text.contains(needle), "{what}: {text}");
    }
    let now_ns = loupe_ingest::otlp::now_ns();
    let good = export(vec![Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "ok".into(),
        start_time_unix_nano: u64::try_from(now_ns).expect("after 1970"),
        end_time_unix_nano: u64::try_from(now_ns + 1_000).expect("after 1970"),
        ..Span::default()
    }]);
    let body = watched_body(frame(&good), Arc::new(AtomicBool::new(false)));
    let response = service
        .call(request(body, Some(SECRET)))
        .await
        .expect("infallible");
    let (code, text) = status(response).await;
    assert_eq!(code, tonic::Code::Ok as i32, "{text}");
    let project = loupe_model::ProjectId::new("p").expect("project");
    let spans = store
        .trace_spans(&project, "01010101010101010101010101010101")
        .await
        .expect("trace");
    assert_eq!(spans.len(), 1);
}
