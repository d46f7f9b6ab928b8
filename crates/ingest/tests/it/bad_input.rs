//! Malformed bodies fail with a decode error that names the problem, never a
//! panic; one bad span in a good request costs only itself.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use loupe_ingest::IngestLimits;
use loupe_ingest::otlp::{
    DecodeError, Encoding, decode_request, normalise_request, normalise_with,
};
use prost::Message as _;

use crate::support::{LIMIT, PROJECT, decode, fixture, request};

const CLIENT: &str = "clients/otlp_traces.bin";

/// The clock the per-span checks run against: 2026-11-17T00:00:00Z.
const NOW: i64 = 1_794_873_600_000_000_000;

#[test]
fn truncated_protobuf_body_is_a_decode_error() {
    let body = fixture("dify-1.14.1/dify_otlp_phoenix_07.bin");
    for cut in [1, body.len() / 2, body.len() - 1] {
        let err =
            decode(&body[..cut], Encoding::Protobuf, false, LIMIT).expect_err("truncated body");
        assert!(
            matches!(err, DecodeError::Protobuf(_) | DecodeError::Malformed(_)),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("invalid OTLP protobuf"), "{err}");
    }
}

#[test]
fn empty_protobuf_body_is_an_empty_request() {
    let request = decode(&[], Encoding::Protobuf, false, LIMIT).expect("empty is valid");
    assert!(normalise_request(PROJECT, request).spans.is_empty());
}

#[test]
fn invalid_json_reports_line_and_column() {
    let body = b"{\"resourceSpans\": [\n  {\"scopeSpans\": [}\n]}";
    let err = decode(body, Encoding::Json, false, LIMIT).expect_err("invalid JSON");
    match &err {
        DecodeError::Json { line, column, .. } => {
            assert_eq!((*line, *column), (2, 19), "the stray brace")
        }
        other => panic!("not a JSON error: {other}"),
    }
    assert!(err.to_string().contains("line 2, column 19"), "{err}");
}

/// Issue 14: one bad value in OTLP/JSON used to reject the whole request
/// (0 of 99 good spans kept); now it costs only its span, named by path.
#[test]
fn a_wrongly_typed_json_span_is_rejected_alone() {
    let good = |i: usize| {
        format!(
            r#"{{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"{i:016x}","name":"s{i}","startTimeUnixNano":"{NOW}"}}"#
        )
    };
    let mut spans: Vec<String> = (1..=100).map(good).collect();
    spans[41] =
        r#"{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"00000000000000aa","name":5}"#
            .into();
    spans[77] = r#"{"traceId":"abc","spanId":"0102030405060708"}"#.into();
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let decoded = decode_request(
        body.as_bytes(),
        Encoding::Json,
        false,
        LIMIT,
        &IngestLimits::default(),
    )
    .expect("the envelope is valid");
    let out = normalise_with(PROJECT, decoded, &IngestLimits::default(), Some(NOW), None);
    assert_eq!(out.spans.len(), 98, "the good spans are kept");
    let fields: Vec<&str> = out.rejected.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "resourceSpans[0].scopeSpans[0].spans[41]",
            "resourceSpans[0].scopeSpans[0].spans[77]"
        ]
    );
    assert!(
        out.rejected[0].reason.contains("invalid type"),
        "{}",
        out.rejected[0]
    );
    // Later spans keep their paths as sent: span 99 is still named 99.
    let names: Vec<_> = out.spans.iter().filter_map(|s| s.name.clone()).collect();
    assert_eq!(names.last().map(String::as_str), Some("s100"));
}

#[test]
fn a_broken_json_envelope_still_fails_the_body() {
    let body = br#"{"resourceSpans": {"scopeSpans": []}}"#;
    let err = decode(body, Encoding::Json, false, LIMIT).expect_err("not an array");
    assert!(matches!(err, DecodeError::Json { .. }), "{err}");
}

#[test]
fn invalid_utf8_in_a_protobuf_string_is_a_decode_error() {
    let mut request = request(CLIENT);
    request.resource_spans[0].scope_spans[0].spans[0].name = "XXXXXXXX".to_owned();
    let mut body = request.encode_to_vec();
    let at = body
        .windows(8)
        .position(|w| w == b"XXXXXXXX")
        .expect("name in body");
    body[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    let err = decode(&body, Encoding::Protobuf, false, LIMIT).expect_err("bad UTF-8");
    assert!(matches!(err, DecodeError::Protobuf(_)), "{err}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn invalid_utf8_in_a_json_body_is_a_decode_error() {
    let body = b"{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [{\"name\": \"\xff\"}]}]}]}";
    let err = decode(body, Encoding::Json, false, LIMIT).expect_err("bad UTF-8");
    assert!(matches!(err, DecodeError::Json { line: 1, .. }), "{err}");
}

#[test]
fn gzip_bomb_over_the_limit_is_rejected() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        encoder.write_all(&zeros).expect("gzip in memory");
    }
    let bomb = encoder.finish().expect("gzip in memory");
    assert!(bomb.len() < 64 << 10, "a bomb is small on the wire");
    let err = decode(&bomb, Encoding::Protobuf, true, 1 << 20).expect_err("bomb");
    assert!(
        matches!(err, DecodeError::TooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn body_declared_gzip_that_is_not_gzip_is_rejected() {
    let err = decode(&fixture(CLIENT), Encoding::Protobuf, true, LIMIT).expect_err("not gzip");
    assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
}

#[test]
fn a_three_byte_span_id_rejects_only_that_span() {
    let mut bad = request(CLIENT);
    bad.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let json = serde_json::to_vec(&bad).expect("serialise OTLP/JSON");
    let from_json = decode(&json, Encoding::Json, false, LIMIT).expect("valid JSON");
    for request in [bad, from_json] {
        let out = normalise_request(PROJECT, request);
        assert_eq!(out.spans.len(), 2, "good spans kept");
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(
            out.rejected[0].field,
            "resourceSpans[0].scopeSpans[0].spans[1].spanId"
        );
        assert!(
            out.rejected[0].reason.contains("8 bytes, got 3"),
            "{}",
            out.rejected[0]
        );
    }
}
