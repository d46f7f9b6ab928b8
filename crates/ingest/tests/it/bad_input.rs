//! Malformed bodies fail with a decode error that names the problem, never a
//! panic; one bad span in a good request costs only itself.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use loupe_ingest::otlp::{DecodeError, Encoding, decode_request, normalise_request};
use prost::Message as _;

use crate::support::{LIMIT, PROJECT, fixture, request};

const CLIENT: &str = "clients/otlp_traces.bin";

#[test]
fn truncated_protobuf_body_is_a_decode_error() {
    let body = fixture("dify-1.14.1/dify_otlp_phoenix_07.bin");
    for cut in [1, body.len() / 2, body.len() - 1] {
        let err = decode_request(&body[..cut], Encoding::Protobuf, false, LIMIT)
            .expect_err("truncated body");
        assert!(
            matches!(err, DecodeError::Protobuf(_)),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn empty_protobuf_body_is_an_empty_request() {
    let request = decode_request(&[], Encoding::Protobuf, false, LIMIT).expect("empty is valid");
    assert!(normalise_request(PROJECT, request).spans.is_empty());
}

#[test]
fn invalid_json_reports_line_and_column() {
    let body = b"{\"resourceSpans\": [\n  {\"scopeSpans\": [}\n]}";
    let err = decode_request(body, Encoding::Json, false, LIMIT).expect_err("invalid JSON");
    match &err {
        DecodeError::Json { line, column, .. } => {
            assert_eq!((*line, *column), (2, 19), "the stray brace")
        }
        other => panic!("not a JSON error: {other}"),
    }
    assert!(err.to_string().contains("line 2, column 19"), "{err}");
}

#[test]
fn wrongly_typed_json_field_reports_a_position() {
    let body = br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}"#;
    let err = decode_request(body, Encoding::Json, false, LIMIT).expect_err("name is a number");
    let DecodeError::Json {
        line,
        column,
        message,
    } = &err
    else {
        panic!("not a JSON error: {err}");
    };
    assert!(*line == 1 && *column > 0, "{err}");
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn odd_length_hex_id_in_json_fails_the_body() {
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc","spanId":"0102030405060708"}]}]}]}"#;
    let err = decode_request(body, Encoding::Json, false, LIMIT).expect_err("odd hex");
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
    let err = decode_request(&body, Encoding::Protobuf, false, LIMIT).expect_err("bad UTF-8");
    assert!(matches!(err, DecodeError::Protobuf(_)), "{err}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn invalid_utf8_in_a_json_body_is_a_decode_error() {
    let body = b"{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [{\"name\": \"\xff\"}]}]}]}";
    let err = decode_request(body, Encoding::Json, false, LIMIT).expect_err("bad UTF-8");
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
    let err = decode_request(&bomb, Encoding::Protobuf, true, 1 << 20).expect_err("bomb");
    assert!(
        matches!(err, DecodeError::TooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn body_declared_gzip_that_is_not_gzip_is_rejected() {
    let err =
        decode_request(&fixture(CLIENT), Encoding::Protobuf, true, LIMIT).expect_err("not gzip");
    assert!(matches!(err, DecodeError::Gzip(_)), "{err}");
}

#[test]
fn a_three_byte_span_id_rejects_only_that_span() {
    let mut bad = request(CLIENT);
    bad.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let json = serde_json::to_vec(&bad).expect("serialise OTLP/JSON");
    let from_json = decode_request(&json, Encoding::Json, false, LIMIT).expect("valid JSON");
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
