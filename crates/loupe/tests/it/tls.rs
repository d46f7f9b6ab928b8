//! `[server.tls]` end to end (issue 14): HTTP and OTLP/gRPC over TLS with a
//! self-signed certificate made here (rcgen), plain connections refused,
//! and the certificate reloaded on SIGHUP and on file change without a
//! restart.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Server, encode, otel_span, request};

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn self_signed() -> Cert {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("self-signed certificate");
    Cert {
        pem: made.cert.pem(),
        key: made.signing_key.serialize_pem(),
        der: made.cert.der().to_vec(),
    }
}

/// Replaces `path` atomically (as a certificate renewal tool would).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn client(certs: &[&Cert], http2: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder().tls_info(true);
    for c in certs {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(c.pem.as_bytes()).expect("pem"));
    }
    if http2 {
        b = b.http2_prior_knowledge();
    }
    b.build().expect("client")
}

/// The DER of the certificate the server presents now.
async fn presented(url: &str, certs: &[&Cert]) -> Option<Vec<u8>> {
    let resp = client(certs, false).get(url).send().await.ok()?;
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_grpc_serve_tls_and_reload_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = self_signed();
    replace(&cert_file, &first.pem);
    replace(&key_file, &first.key);
    let args = [
        "--tls-cert",
        cert_file.to_str().expect("utf-8"),
        "--tls-key",
        key_file.to_str().expect("utf-8"),
    ];
    let data = dir.path().join("data");
    let server = Server::start_tls(&data, &args, client(&[&first], false)).await;
    assert!(server.http.starts_with("https://"));

    // Plain HTTP to the TLS port gets no answer.
    let plain = server.http.replacen("https://", "http://", 1);
    assert!(
        reqwest::get(format!("{plain}/healthz")).await.is_err(),
        "plain HTTP must not be served"
    );

    // OTLP/HTTP over TLS.
    let r = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .body(encode(&request(vec![otel_span(
            1,
            1,
            None,
            "over-https",
            &[],
        )])))
        .send()
        .await
        .expect("otlp over https");
    assert_eq!(r.status().as_u16(), 200);

    // OTLP/gRPC over TLS (HTTP/2 with ALPN h2): a length-prefixed message.
    let msg = encode(&request(vec![otel_span(2, 2, None, "over-grpcs", &[])]));
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(msg.len()).expect("len").to_be_bytes());
    framed.extend_from_slice(&msg);
    let r = client(&[&first], true)
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            server.grpc
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(framed)
        .send()
        .await
        .expect("grpc over tls");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let _ = r.bytes().await;
    for (trace, name) in [(1u128, "over-https"), (2, "over-grpcs")] {
        let (status, body) = server
            .get_json(&format!("/api/v1/traces/{trace:032x}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["spans"][0]["name"], name);
    }
    let url = format!("{}/healthz", server.http);
    assert_eq!(presented(&url, &[&first]).await, Some(first.der.clone()));

    // A renewal: new files, then SIGHUP; the next handshakes present it.
    let second = self_signed();
    replace(&key_file, &second.key);
    replace(&cert_file, &second.pem);
    server.hup();
    let deadline = Instant::now() + Duration::from_secs(20);
    while presented(&url, &[&first, &second]).await != Some(second.der.clone()) {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken renewal is refused and the current certificate kept; a
    // good one is picked up from the file change alone (no signal).
    replace(&cert_file, "not a certificate");
    server.hup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        presented(&url, &[&first, &second]).await,
        Some(second.der.clone())
    );
    let third = self_signed();
    replace(&key_file, &third.key);
    replace(&cert_file, &third.pem);
    let deadline = Instant::now() + Duration::from_secs(20);
    while presented(&url, &[&second, &third]).await != Some(third.der.clone()) {
        assert!(
            Instant::now() < deadline,
            "the file change did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop();
}
