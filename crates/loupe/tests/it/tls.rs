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

/// A CA, a client certificate it signed, and one it did not.
struct ClientCerts {
    ca_pem: String,
    signed: String,
    stranger: String,
}

fn client_certs() -> ClientCerts {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let identity = |signer: Option<&Issuer<'_, KeyPair>>| {
        let mut params = CertificateParams::new(vec!["dify-worker".to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("key");
        let cert = match signer {
            Some(issuer) => params.signed_by(&key, issuer),
            None => params.self_signed(&key),
        }
        .expect("client certificate");
        format!("{}{}", cert.pem(), key.serialize_pem())
    };
    ClientCerts {
        ca_pem: ca.pem(),
        signed: identity(Some(&issuer)),
        stranger: identity(None),
    }
}

/// A client trusting `server` that presents `identity` (cert + key PEM).
fn mtls_client(server: &Cert, identity: Option<&str>, http2: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(server.pem.as_bytes()).expect("pem"));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    if http2 {
        b = b.http2_prior_knowledge();
    }
    b.build().expect("client")
}

/// Mutual TLS (`[server.tls] client_ca_file`): with `client_auth =
/// "required"` only clients presenting a certificate the CA signed are
/// served, over HTTP and gRPC; with `"optional"` a client may present
/// none, but never one the CA did not sign.
#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_required_or_optional_as_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server_cert = self_signed();
    let clients = client_certs();
    let (cert_file, key_file, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("clients-ca.pem"),
    );
    replace(&cert_file, &server_cert.pem);
    replace(&key_file, &server_cert.key);
    replace(&ca_file, &clients.ca_pem);
    for mode in ["required", "optional"] {
        let config = dir.path().join(format!("{mode}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\nclient_auth = \"{mode}\"\n",
                cert_file.display().to_string(),
                key_file.display().to_string(),
                ca_file.display().to_string(),
            ),
        )
        .expect("config");
        let server = Server::start_tls_with_config(
            &dir.path().join(mode),
            &config,
            mtls_client(&server_cert, Some(&clients.signed), false),
        )
        .await;
        let health = |identity: Option<&str>| {
            let client = mtls_client(&server_cert, identity, false);
            let url = format!("{}/healthz", server.http);
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        };
        assert_eq!(
            health(Some(&clients.signed)).await.ok(),
            Some(200),
            "{mode}"
        );
        assert!(
            health(Some(&clients.stranger)).await.is_err(),
            "{mode}: a certificate the CA did not sign is refused"
        );
        let anonymous = health(None).await;
        match mode {
            "required" => assert!(anonymous.is_err(), "required: no certificate is refused"),
            _ => assert_eq!(
                anonymous.ok(),
                Some(200),
                "optional: no certificate is served"
            ),
        }
        // gRPC: the same handshake.
        let msg = encode(&request(vec![otel_span(3, 3, None, "mtls", &[])]));
        let mut framed = vec![0u8];
        framed.extend_from_slice(&u32::try_from(msg.len()).expect("len").to_be_bytes());
        framed.extend_from_slice(&msg);
        let export = |identity: Option<&str>| {
            let client = mtls_client(&server_cert, identity, true);
            let url = format!(
                "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                server.grpc
            );
            let body = framed.clone();
            async move {
                client
                    .post(url)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        };
        assert_eq!(
            export(Some(&clients.signed)).await.ok(),
            Some(200),
            "{mode}"
        );
        assert!(export(Some(&clients.stranger)).await.is_err(), "{mode}");
        if mode == "required" {
            assert!(
                export(None).await.is_err(),
                "required: gRPC without a certificate"
            );
        }
        server.stop();
    }
}
