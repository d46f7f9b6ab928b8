//! The same recorded requests as OTLP/JSON (hex ids, int64 as strings) and
//! gzip bodies must normalise exactly as the protobuf originals; the decoded
//! JSON beside the Dify fixtures must agree with our protobuf decoding.

use std::io::Write as _;

use base64::Engine as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use loupe_ingest::otlp::{Encoding, normalise_request};
use serde_json::Value;

use crate::support::{
    LIMIT, PROJECT, decode, fixture, fixtures_dir, normalise_all, numbered, request,
};

fn every_fixture() -> Vec<String> {
    let mut files = numbered("dify_otlp_phoenix", 1..=13);
    files.extend(numbered("dify_otlp_arize_grpc", 1..=7));
    files.push("clients/otlp_traces.bin".to_owned());
    files
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

#[test]
fn otlp_json_variants_of_every_fixture_normalise_identically() {
    for file in every_fixture() {
        let original = request(&file);
        let expected = normalise_all(original.clone());
        let json = serde_json::to_string(&original).expect("serialise OTLP/JSON");
        // (A connectivity check normalises to no span.)
        if let Some(first) = expected.first() {
            // Dify's spans are stored under Dify's ids; the ids as sent
            // are kept beside them.
            let trace_hex = first
                .attributes
                .get("otel.trace_id")
                .or(first.trace_id.as_ref())
                .cloned()
                .expect("trace id");
            assert!(
                json.contains(&format!(r#""traceId":"{trace_hex}""#)),
                "{file}: ids as hex"
            );
        }
        let decoded = decode(json.as_bytes(), Encoding::Json, false, LIMIT)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(decoded, original, "{file}: JSON round trip");
        assert_eq!(normalise_all(decoded), expected, "{file}");
    }
}

#[test]
fn gzip_variants_of_every_fixture_normalise_identically() {
    for file in every_fixture() {
        let body = fixture(&file);
        let expected = normalise_all(request(&file));
        let zipped = decode(&gzip(&body), Encoding::Protobuf, true, LIMIT)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(normalise_all(zipped), expected, "{file}: gzip protobuf");

        let json = serde_json::to_vec(&request(&file)).expect("serialise OTLP/JSON");
        let zipped = decode(&gzip(&json), Encoding::Json, true, LIMIT)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(normalise_all(zipped), expected, "{file}: gzip JSON");
    }
}

#[test]
fn decoded_json_beside_the_dify_fixtures_agrees_with_protobuf_decoding() {
    for index in [
        "dify_otlp_phoenix_decoded.json",
        "dify_otlp_arize_grpc_decoded.json",
    ] {
        let path = fixtures_dir().join("dify-1.14.1").join(index);
        let text = std::fs::read_to_string(&path).expect("decoded JSON fixture");
        let doc: Value = serde_json::from_str(&text).expect("decoded JSON parses");
        let requests = doc["requests"].as_array().expect("requests array");
        assert!(!requests.is_empty(), "{index}");
        for entry in requests {
            let file = entry["file"].as_str().expect("file name");
            let out = normalise_request(PROJECT, request(&format!("dify-1.14.1/{file}")));
            let want: Vec<&Value> = entry["decoded"]["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
                .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
                // Dify's connectivity check is answered, not stored.
                .filter(|s| s["name"] != "api_check")
                .collect();
            assert_eq!(out.spans.len(), want.len(), "{file}");
            for (got, want) in out.spans.iter().zip(want) {
                let hex = |key: &str| {
                    let b64 = want[key].as_str().unwrap_or_default();
                    hex::encode(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .expect("b64"),
                    )
                };
                // The ids as sent (Dify's spans are stored under Dify's
                // ids, with the OTLP ones kept as attributes).
                let sent = |key: &str, stored: Option<&String>| {
                    got.attributes.get(key).or(stored).cloned()
                };
                assert_eq!(
                    sent("otel.span_id", Some(&got.span_id)),
                    Some(hex("spanId")),
                    "{file}"
                );
                assert_eq!(
                    sent("otel.trace_id", got.trace_id.as_ref()),
                    Some(hex("traceId")),
                    "{file}"
                );
                let parent = Some(hex("parentSpanId")).filter(|p| !p.is_empty());
                assert_eq!(got.parent_span_id, parent, "{file}");
                let start = want["startTimeUnixNano"]
                    .as_str()
                    .and_then(|s| s.parse().ok());
                assert_eq!(got.start_time, start, "{file}");
                assert_eq!(
                    got.attributes.get("otel.span_name").or(got.name.as_ref()),
                    want["name"].as_str().map(str::to_owned).as_ref(),
                    "{file}"
                );
            }
        }
    }
}
