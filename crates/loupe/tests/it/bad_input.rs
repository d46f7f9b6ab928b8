//! Bad input gets a clear 4xx naming the problem, never a panic, and the good
//! spans of a mixed batch are stored.

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde_json::Value;

use crate::support::{Server, encode, otel_span, request};

/// (what, content type, content encoding, body, expected status, word the message names)
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

async fn post(
    server: &Server,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut r = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        r = r.header("content-encoding", e);
    }
    let resp = r.send().await.expect("post");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn error_of(body: &str) -> String {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("error body is not JSON: {body}"));
    v["error"].as_str().expect("error field").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bad_body_gets_a_4xx_that_names_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[server]\nmax_body_bytes = 20000\nmax_decompressed_bytes = 100000\n",
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    let good = encode(&request(vec![otel_span(1, 1, None, "ok", &[])]));

    let cases: Vec<Case> = vec![
        (
            "wrong content type",
            "text/plain",
            None,
            good.clone(),
            415,
            "content type",
        ),
        (
            "unknown encoding",
            "application/x-protobuf",
            Some("br"),
            good.clone(),
            415,
            "content encoding",
        ),
        (
            "truncated protobuf",
            "application/x-protobuf",
            None,
            good[..good.len() - 3].to_vec(),
            400,
            "protobuf",
        ),
        (
            "invalid json",
            "application/json",
            None,
            b"{\"resourceSpans\": [\n  {oops}]}".to_vec(),
            400,
            "line 2",
        ),
        (
            "wrong json types",
            "application/json",
            None,
            br#"{"resourceSpans": "nope"}"#.to_vec(),
            400,
            "JSON",
        ),
        (
            "not gzip",
            "application/x-protobuf",
            Some("gzip"),
            good.clone(),
            400,
            "gzip",
        ),
        (
            "oversize body",
            "application/x-protobuf",
            None,
            vec![0u8; 30_000],
            413,
            "limit",
        ),
        (
            "gzip bomb",
            "application/x-protobuf",
            Some("gzip"),
            gzip(&vec![0u8; 5_000_000]),
            413,
            "limit",
        ),
        (
            "invalid utf-8",
            "application/x-protobuf",
            None,
            invalid_utf8_name(),
            400,
            "UTF-8",
        ),
    ];
    for (what, ct, enc, body, status, needle) in cases {
        let (got, text) = post(&server, ct, enc, body).await;
        assert_eq!(got, status, "{what}: {text}");
        let message = error_of(&text);
        assert!(
            message.to_lowercase().contains(&needle.to_lowercase()),
            "{what}: message {message:?} should mention {needle:?}"
        );
    }

    for (path, status, needle) in [
        (
            "/api/v1/spans?status=exploded",
            400,
            "ok, error, running, unset",
        ),
        ("/api/v1/spans?span_kind=robot", 400, "workflow"),
        ("/api/v1/spans?limit=0", 400, "limit"),
        ("/api/v1/spans?from=yesterday", 400, "RFC 3339"),
        ("/api/v1/spans?cursor=garbage!", 400, "cursor"),
        ("/api/v1/spans?colour=red", 400, "colour"),
        ("/api/v1/traces/does-not-exist", 404, "does-not-exist"),
    ] {
        let (got, body) = server.get_json(path).await;
        assert_eq!(got, status, "{path}: {body}");
        let message = body["error"].as_str().expect("error");
        assert!(
            message.contains(needle),
            "{path}: {message:?} should mention {needle:?}"
        );
    }

    // Still alive and still ingesting after all of that.
    let (code, _) = post(&server, "application/x-protobuf", None, good).await;
    assert_eq!(code, 200);
    let (code, _) = server.get_json("/healthz").await;
    assert_eq!(code, 200);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

/// A valid request whose span name bytes are not UTF-8.
fn invalid_utf8_name() -> Vec<u8> {
    let mut body = encode(&request(vec![otel_span(1, 1, None, "XXXX", &[])]));
    let at = body
        .windows(4)
        .position(|w| w == b"XXXX")
        .expect("name bytes");
    body[at] = 0xff;
    body[at + 1] = 0xfe;
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_stores_the_good_spans_and_reports_the_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let mut bad = otel_span(9, 2, Some(1), "bad", &[]);
    bad.span_id = vec![1, 2, 3];
    let req = request(vec![
        otel_span(9, 1, None, "good root", &[]),
        bad,
        otel_span(9, 3, Some(1), "good child", &[]),
    ]);
    let resp = server.post_otlp(encode(&req)).await;
    assert_eq!(resp.status(), 200);
    let reply = ExportTraceServiceResponse::decode(resp.bytes().await.expect("body").as_ref())
        .expect("reply");
    let partial = reply.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("spans[1].spanId"),
        "{}",
        partial.error_message
    );
    let names: Vec<_> = server
        .all_spans()
        .await
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"good root".to_owned()) && names.contains(&"good child".to_owned()));
}
