//! Shared test support: the fixture location (written once), replay helpers
//! and the expected-span check.

use std::path::PathBuf;

use loupe_ingest::otlp::{Encoding, normalise_request};
use loupe_model::{INGEST_VERSION, Span, SpanKind, Status};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Decodes a body with the default `[ingest]` limits, asserting that every
/// span decoded (tests of per-span rejection call `decode_request`).
pub fn decode(
    body: &[u8],
    encoding: Encoding,
    gzip: bool,
    limit: usize,
) -> Result<ExportTraceServiceRequest, loupe_ingest::otlp::DecodeError> {
    let decoded = loupe_ingest::otlp::decode_request(
        body,
        encoding,
        gzip,
        limit,
        &loupe_ingest::IngestLimits::default(),
    )?;
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    Ok(decoded.request)
}

/// Generous decode limit for fixtures.
pub const LIMIT: usize = 16 << 20;

/// Project used for every replay.
pub const PROJECT: &str = "it";

/// The shared fixture directory (`shared/fixtures` beside the checkout).
pub fn fixtures_dir() -> PathBuf {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixture directory {} is missing: clone the `shared` repository beside this checkout",
        dir.display()
    );
    dir
}

/// Bytes of a fixture file, by path relative to the fixture directory.
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = fixtures_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Decodes a protobuf fixture body.
pub fn request(relative: &str) -> ExportTraceServiceRequest {
    decode(&fixture(relative), Encoding::Protobuf, false, LIMIT)
        .unwrap_or_else(|e| panic!("{relative} does not decode: {e}"))
}

/// Normalises a request, asserting no span is rejected.
pub fn normalise_all(request: ExportTraceServiceRequest) -> Vec<Span> {
    let out = normalise_request(PROJECT, request);
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    out.spans
}

/// Decodes and normalises protobuf fixture bodies, in order, as one server
/// does: one id cache across the requests (Dify's providers send a span per
/// request, and later spans are placed by what earlier ones said).
pub fn replay(files: &[String]) -> Vec<Span> {
    let ids = loupe_normalise::otel::IdCache::default();
    files
        .iter()
        .flat_map(|f| {
            let out = loupe_ingest::otlp::normalise_with(
                PROJECT,
                request(f).into(),
                &loupe_ingest::IngestLimits::default(),
                None,
                Some(&ids),
            );
            assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
            out.spans
        })
        .collect()
}

/// `dify-1.14.1/{prefix}_{01..=last}.bin`.
pub fn numbered(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range
        .map(|n| format!("dify-1.14.1/{prefix}_{n:02}.bin"))
        .collect()
}

/// What one span must look like.
pub struct Expect<'a> {
    pub span_id: &'a str,
    pub name: &'a str,
    pub kind: SpanKind,
    pub node_type: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub status: Status,
    pub raw_status: &'a str,
}

/// The span with `span_id`.
pub fn by_id<'a>(spans: &'a [Span], span_id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.span_id == span_id)
        .unwrap_or_else(|| panic!("no span {span_id}"))
}

/// Text of attribute `key`.
pub fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.get(key).map(String::as_str)
}

/// Checks that `spans` of `trace_id` are exactly `expected`, field by field.
pub fn check(spans: &[Span], trace_id: &str, expected: &[Expect<'_>]) {
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id.as_deref() == Some(trace_id))
        .collect();
    assert_eq!(
        in_trace.len(),
        expected.len(),
        "span count of trace {trace_id}"
    );
    for want in expected {
        let got = by_id(spans, want.span_id);
        let what = format!("span {} ({})", want.span_id, want.name);
        assert_eq!(got.project, PROJECT, "{what}");
        assert_eq!(got.trace_id.as_deref(), Some(trace_id), "{what}");
        assert_eq!(got.name.as_deref(), Some(want.name), "{what}");
        assert_eq!(got.span_kind, Some(want.kind), "{what}");
        assert_eq!(got.node_type.as_deref(), want.node_type, "{what}");
        assert_eq!(got.parent_span_id.as_deref(), want.parent, "{what}");
        assert_eq!(got.run_id.as_deref(), want.run_id, "{what}");
        assert_eq!(got.status, Some(want.status), "{what}");
        assert_eq!(got.raw_status.as_deref(), Some(want.raw_status), "{what}");
        assert_eq!(got.source.as_deref(), Some("otlp"), "{what}");
        assert_eq!(got.ingest_version, Some(INGEST_VERSION), "{what}");
        assert!(got.start_time.is_some() && got.end_time.is_some(), "{what}");
        if want.status != Status::Error {
            assert_eq!(
                (&got.error_message, &got.error_class),
                (&None, &None),
                "{what}"
            );
        }
    }
}
