//! Unit tests of decoding and of the protobuf → OtelSpan conversion.

use loupe_model::{SpanKind, Status};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as ProtoSpan};

use super::*;
use crate::IngestLimits;

const LIMIT: usize = 1 << 20;

const JSON_BODY: &str = r#"{"resourceSpans":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
  "scopeSpans":[{"scope":{"name":"s","version":"1.0"},"spans":[{
    "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"",
    "name":"root","kind":2,
    "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
    "attributes":[
      {"key":"llm.token_count.prompt","value":{"intValue":"12"}},
      {"key":"n","value":{"intValue":7}},
      {"key":"unknownField","value":{"stringValue":"x"}, "ignored": true}
    ],
    "status":{"code":2,"message":"boom"}}]}]}]}"#;

fn proto_span(span_id: Vec<u8>) -> ProtoSpan {
    ProtoSpan {
        trace_id: vec![7; 16],
        span_id,
        name: "s".into(),
        start_time_unix_nano: 10,
        end_time_unix_nano: 20,
        ..ProtoSpan::default()
    }
}

fn request(spans: Vec<ProtoSpan>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![
                ScopeSpans::default(),
                ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                },
            ],
            ..ResourceSpans::default()
        }],
    }
}

#[test]
fn otlp_json_takes_hex_ids_and_int64_as_strings_or_numbers() {
    let request = decode_request(
        JSON_BODY.as_bytes(),
        Encoding::Json,
        false,
        LIMIT,
        &IngestLimits::default(),
    )
    .expect("valid OTLP/JSON");
    let out = normalise_request("p", request);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let span = &out.spans[0];
    assert_eq!(
        span.trace_id.as_deref(),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(span.span_id, "eee19b7ec3c1b174");
    assert_eq!(span.parent_span_id, None);
    assert_eq!(span.start_time, Some(1_544_712_660_000_000_000));
    assert_eq!(span.end_time, Some(1_544_712_661_000_000_000));
    assert_eq!(span.input_tokens, Some(12));
    assert_eq!(span.attributes.get("n").map(String::as_str), Some("7"));
    assert_eq!(
        span.attributes.get("otel.span_kind").map(String::as_str),
        Some("server")
    );
    assert_eq!(
        span.attributes
            .get("otel.scope.version")
            .map(String::as_str),
        Some("1.0")
    );
    assert_eq!(span.status, Some(Status::Error));
    assert_eq!(span.error_message.as_deref(), Some("boom"));
    assert_eq!(span.span_kind, Some(SpanKind::Workflow));
    assert_eq!(span.app_id.as_deref(), Some("svc"));
}

#[test]
fn rejected_spans_are_named_by_their_path_in_the_request() {
    let out = normalise_request(
        "p",
        request(vec![
            proto_span(vec![1; 8]),
            proto_span(vec![]),
            proto_span(vec![2; 8]),
        ]),
    );
    assert_eq!(out.spans.len(), 2);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        out.rejected[0].field,
        "resourceSpans[0].scopeSpans[1].spans[1].spanId"
    );
}

#[test]
fn unknown_span_kind_and_status_codes_read_as_unspecified_and_unset() {
    let mut odd = proto_span(vec![1; 8]);
    odd.kind = 42;
    odd.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        code: 9,
        message: String::new(),
    });
    let out = normalise_request("p", request(vec![odd]));
    let span = &out.spans[0];
    assert_eq!(span.status, Some(Status::Unset));
    assert_eq!(span.attributes.get("otel.span_kind"), None);
}

#[test]
fn an_uncompressed_body_over_the_limit_is_too_large() {
    let err = decode_request(
        &[0; 64],
        Encoding::Protobuf,
        false,
        63,
        &IngestLimits::default(),
    )
    .expect_err("over limit");
    assert!(matches!(err, DecodeError::TooLarge { limit: 63 }), "{err}");
}

#[test]
fn json_errors_carry_line_and_column_once() {
    let err = decode_request(
        b"{\n  \"resourceSpans\": [x]",
        Encoding::Json,
        false,
        LIMIT,
        &IngestLimits::default(),
    )
    .expect_err("invalid JSON");
    let DecodeError::Json {
        line,
        column,
        message,
    } = &err
    else {
        panic!("not a JSON error: {err}");
    };
    assert_eq!((*line, *column), (2, 21));
    assert!(!message.contains("line"), "{message}");
    assert_eq!(
        err.to_string(),
        format!("invalid OTLP JSON at line 2, column 21: {message}")
    );
}
