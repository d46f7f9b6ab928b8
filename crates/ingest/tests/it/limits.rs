//! Issue 14: bodies that are small on the wire but huge once decoded are
//! refused before anything is built, naming the `[ingest]` cap; per-span
//! caps and the accepted time window cost only the span over them.

use std::io::Write as _;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use loupe_ingest::otlp::{DecodeError, Encoding, decode_request, normalise_with};
use loupe_ingest::{IngestLimits, OverLimit};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

use crate::support::PROJECT;

/// 2026-11-17T00:00:00Z, the clock of the time-window checks.
const NOW: i64 = 1_794_873_600_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
const MAX_DECOMPRESSED: usize = 64 << 20;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// A protobuf length-delimited field.
fn field(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(payload);
    out
}

/// `n` empty spans in one scope, as raw protobuf.
fn empty_spans(n: usize) -> Vec<u8> {
    let spans = [0x12u8, 0x00].repeat(n);
    field(1, &field(2, &spans))
}

fn over(err: DecodeError) -> OverLimit {
    match err {
        DecodeError::OverLimit(over) => over,
        other => panic!("not an over-limit error: {other}"),
    }
}

/// Peak resident memory of this process, KiB (Linux).
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_gzip_body_of_thirty_million_empty_spans_is_refused_cheaply() {
    let raw = empty_spans(30_000_000);
    let body = gzip(&raw);
    drop(raw);
    assert!(body.len() < 100 << 10, "small on the wire: {}", body.len());
    let before = peak_kib();
    let started = Instant::now();
    let err = decode_request(
        &body,
        Encoding::Protobuf,
        true,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect_err("refused");
    let over = over(err);
    assert_eq!(over.setting, "max_spans_per_request");
    assert_eq!(over.limit, 50_000);
    assert!(
        over.to_string()
            .contains("ingest.max_spans_per_request = 50000"),
        "{over}"
    );
    // Decoding used to build 30M spans (gigabytes); now the inflated body
    // (60 MB) is the cost.
    let grown_mib = peak_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 256, "peak memory grew by {grown_mib} MiB");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_json_body_of_empty_spans_is_counted_not_built() {
    let spans = vec!["{}"; 60_000].join(",");
    let body = format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#);
    let err = decode_request(
        body.as_bytes(),
        Encoding::Json,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect_err("refused");
    assert_eq!(over(err).setting, "max_spans_per_request");
    // Empty objects anywhere count as elements.
    let attrs = vec!["{}"; 1_100].join(",");
    let body = format!(r#"{{"resourceSpans":[{{"resource":{{"attributes":[{attrs}]}}}}]}}"#);
    let tight = IngestLimits {
        max_elements_per_request: 1_000,
        ..IngestLimits::default()
    };
    let err = decode_request(
        body.as_bytes(),
        Encoding::Json,
        false,
        MAX_DECOMPRESSED,
        &tight,
    )
    .expect_err("refused");
    assert_eq!(over(err).setting, "max_elements_per_request");
    // A resource's attributes are copied onto each of its spans: 100
    // attributes over 20,000 spans is two million copies.
    let attrs = vec![r#"{"key":"k","value":{"stringValue":"v"}}"#; 100].join(",");
    let spans = vec!["{}"; 20_000].join(",");
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{attrs}]}},"scopeSpans":[{{"spans":[{spans}]}}]}}]}}"#
    );
    let err = decode_request(
        body.as_bytes(),
        Encoding::Json,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect_err("refused");
    let over = over(err);
    assert_eq!(over.setting, "max_elements_per_request");
    assert!(over.what.contains("resource attributes"), "{over}");
}

#[test]
fn dify_sized_requests_pass() {
    // 2,050 spans of ~40 attributes each, as one long Dify run sends.
    let attributes: Vec<KeyValue> = (0..40)
        .map(|i| KeyValue {
            key: format!("k{i}"),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".into())),
            }),
            ..KeyValue::default()
        })
        .collect();
    let spans: Vec<Span> = (0..2_050u64)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: (i + 1).to_be_bytes().to_vec(),
            start_time_unix_nano: NOW as u64,
            attributes: attributes.clone(),
            ..Span::default()
        })
        .collect();
    let body = request(spans).encode_to_vec();
    let decoded = decode_request(
        &body,
        Encoding::Protobuf,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect("under every cap");
    let out = normalise_with(PROJECT, decoded, &IngestLimits::default(), Some(NOW), None);
    assert_eq!((out.spans.len(), out.rejected.len()), (2_050, 0));
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

#[test]
fn attribute_bombs_and_deep_values_are_refused_before_decoding() {
    // One span with two million empty attributes (4 MB on the wire).
    let attrs = [0x4au8, 0x00].repeat(2_000_000);
    let body = field(1, &field(2, &field(2, &attrs)));
    let err = decode_request(
        &body,
        Encoding::Protobuf,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect_err("refused");
    assert_eq!(over(err).setting, "max_elements_per_request");
    // A resource with many attributes over many spans: each span gets a
    // copy of them, so that product counts too.
    let resource = field(1, &[0x0au8, 0x00].repeat(1_000));
    let scope = field(2, &[0x12u8, 0x00].repeat(20_000));
    let body = field(1, &[resource, scope].concat());
    let err = decode_request(
        &body,
        Encoding::Protobuf,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect_err("refused");
    assert_eq!(over(err).setting, "max_elements_per_request");
    // Values nested 17 deep.
    let mut value = AnyValue::default();
    for _ in 0..17 {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let span = Span {
        attributes: vec![KeyValue {
            key: "deep".into(),
            value: Some(value),
            ..KeyValue::default()
        }],
        ..Span::default()
    };
    let body = request(vec![span]).encode_to_vec();
    let err = decode_request(
        &body,
        Encoding::Protobuf,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect_err("refused");
    assert_eq!(over(err).setting, "max_value_depth");
}

fn span(id: u64, start: i64) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: id.to_be_bytes().to_vec(),
        name: format!("s{id}"),
        start_time_unix_nano: u64::try_from(start).unwrap_or(0),
        end_time_unix_nano: u64::try_from(start + 1_000).unwrap_or(0),
        ..Span::default()
    }
}

#[test]
fn spans_over_the_per_span_caps_or_outside_the_time_window_are_rejected_alone() {
    let mut wide = span(2, NOW);
    wide.attributes = (0..1_025)
        .map(|i| KeyValue {
            key: format!("k{i}"),
            ..KeyValue::default()
        })
        .collect();
    // 2255-01-01, eight hours ahead (a timezone bug), 1970.
    let far_future = 8_993_721_600 * 1_000_000_000;
    let spans = vec![
        span(1, NOW),
        wide,
        span(3, far_future),
        span(4, NOW + 8 * HOUR),
        span(5, 1_000),
        span(6, NOW + HOUR / 2),
        span(7, NOW - 30 * 24 * HOUR),
    ];
    let decoded = decode_request(
        &request(spans).encode_to_vec(),
        Encoding::Protobuf,
        false,
        MAX_DECOMPRESSED,
        &IngestLimits::default(),
    )
    .expect("decodes");
    let out = normalise_with(PROJECT, decoded, &IngestLimits::default(), Some(NOW), None);
    let kept: Vec<_> = out.spans.iter().filter_map(|s| s.name.clone()).collect();
    assert_eq!(
        kept,
        ["s1", "s6", "s7"],
        "good spans in the same request are kept"
    );
    let rejected: Vec<(&str, &str)> = out
        .rejected
        .iter()
        .map(|e| (e.field.as_str(), e.reason.as_str()))
        .collect();
    let path = "resourceSpans[0].scopeSpans[0].spans";
    assert_eq!(rejected[0].0, format!("{path}[1].attributes"));
    assert!(
        rejected[0]
            .1
            .contains("ingest.max_attributes_per_span = 1024")
    );
    assert_eq!(rejected[1].0, format!("{path}[2].startTimeUnixNano"));
    assert!(
        rejected[1].1.contains("2255-01-01T00:00:00Z"),
        "{}",
        rejected[1].1
    );
    assert!(
        rejected[1].1.contains("ingest.max_future_skew"),
        "{}",
        rejected[1].1
    );
    assert_eq!(rejected[2].0, format!("{path}[3].startTimeUnixNano"));
    assert_eq!(rejected[3].0, format!("{path}[4].startTimeUnixNano"));
    assert!(
        rejected[3].1.contains("ingest.max_past"),
        "{}",
        rejected[3].1
    );
    assert_eq!(rejected.len(), 4);
}
