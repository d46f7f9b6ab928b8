//! Channels over TLS, against local servers holding a certificate from a
//! CA minted per test (rcgen): HTTPS capture servers for the chat robots
//! (the real services are HTTPS only), and an SMTP sink speaking STARTTLS
//! and implicit TLS (a real SMTP conversation, upgraded with tokio-rustls).
//! Without the CA in `ca_file` the same delivery must fail: verification
//! is on.

mod support;

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use loupe_alerts::channels::{Channel, ChannelConfig};
use loupe_alerts::eval::{Notice, NoticeState};
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

use support::{SinkTls, smtp_sink};

const NOW: i64 = 1_800_000_123_456;

/// A CA (its PEM, written to a file) and a TLS acceptor whose certificate
/// for 127.0.0.1 the CA signed.
struct Pki {
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    acceptor: TlsAcceptor,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Loupe test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");

    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf cert");

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    Pki {
        _dir: dir,
        ca_file,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

type Hits = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

/// An HTTPS server recording each request and answering like the chat
/// robots do on success.
async fn https_capture(acceptor: TlsAcceptor, hits: Hits) -> String {
    async fn hook(
        State(hits): State<Hits>,
        uri: axum::http::Uri,
        RawQuery(q): RawQuery,
        body: String,
    ) -> &'static str {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        hits.lock().push((uri.path().to_owned(), q, v));
        r#"{"errcode":0,"errmsg":"ok","code":0}"#
    }
    let app = axum::Router::new().fallback(hook).with_state(hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(app),
                    )
                    .await;
            });
        }
    });
    format!("https://{addr}")
}

fn notice() -> Notice {
    Notice {
        rule: "tool-failure-rate".into(),
        project: None,
        state: NoticeState::Firing,
        labels: [("alertname".to_owned(), "tool-failure-rate".to_owned())].into(),
        group: [("tool_name".to_owned(), "payment".to_owned())].into(),
        metric: "failure_rate".into(),
        op: ">".into(),
        value: Some(0.12),
        threshold: 0.05,
        summary: "payment failing".into(),
        runs_url: "http://loupe/api/v1/spans?tool_name=payment".into(),
        rca_url: String::new(),
        starts_at_ms: 1_800_000_000_000,
        ends_at_ms: None,
        silenced: false,
        notify: vec![],
        actions: vec![],
    }
}

fn channel(text: &str) -> Channel {
    let cfg: ChannelConfig = toml::from_str(text).expect("channel config");
    cfg.validate().expect("valid");
    Channel::new(cfg).expect("channel")
}

fn toml_path(p: &std::path::Path) -> String {
    p.display().to_string().replace('\\', "/")
}

#[tokio::test]
async fn chat_robots_over_https_trust_the_configured_ca() {
    let pki = pki();
    let hits = Hits::default();
    let base = https_capture(pki.acceptor.clone(), hits.clone()).await;
    let ca = toml_path(&pki.ca_file);
    for (kind, path, extra) in [
        ("dingtalk", "/robot/send?access_token=T", "secret='SECabc'"),
        ("wecom", "/cgi-bin/webhook/send?key=K", ""),
        ("feishu", "/open-apis/bot/v2/hook/X", "secret='fs'"),
        ("slack", "/services/A/B/C", ""),
        ("webhook", "/hook", ""),
    ] {
        let ch = channel(&format!(
            "name='{kind}'\ntype='{kind}'\nurl='{base}{path}'\nca_file='{ca}'\nretries=0\n{extra}"
        ));
        let attempts = ch
            .send(&notice(), NOW)
            .await
            .unwrap_or_else(|e| panic!("{kind} over HTTPS: {e}"));
        assert_eq!(attempts, 1, "{kind}");
    }
    let hits = hits.lock().clone();
    let paths: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/robot/send",
            "/cgi-bin/webhook/send",
            "/open-apis/bot/v2/hook/X",
            "/services/A/B/C",
            "/hook"
        ]
    );
    // DingTalk's signature travels in the query, over TLS like the rest.
    let query = hits[0].1.clone().unwrap_or_default();
    assert!(query.contains("access_token=T") && query.contains("&timestamp=1800000123456&sign="));
    assert_eq!(hits[0].2["msgtype"], "markdown");
    assert_eq!(hits[1].2["msgtype"], "markdown");
    assert!(
        hits[3].2["text"]
            .as_str()
            .is_some_and(|t| t.contains("payment"))
    );
}

#[tokio::test]
async fn https_without_the_ca_is_refused() {
    let pki = pki();
    let hits = Hits::default();
    let base = https_capture(pki.acceptor.clone(), hits.clone()).await;
    let ch = channel(&format!(
        "name='s'\ntype='slack'\nurl='{base}/services/A'\nretries=0"
    ));
    let err = ch.send(&notice(), NOW).await.expect_err("untrusted cert");
    let text = err.to_string();
    assert!(
        text.contains("s: ") && text.contains("certificate"),
        "{text}"
    );
    assert!(
        hits.lock().is_empty(),
        "nothing may reach an unverified server"
    );
}

#[test]
fn a_bad_ca_file_is_a_config_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello").expect("write");
    for path in [bad, dir.path().join("missing.pem")] {
        let cfg: ChannelConfig = toml::from_str(&format!(
            "name='s'\ntype='slack'\nurl='https://hooks.slack.com/x'\nca_file='{}'",
            toml_path(&path)
        ))
        .expect("config");
        let err = Channel::new(cfg).expect_err("bad CA file").to_string();
        assert!(
            err.contains("ca_file") && err.contains(&path.display().to_string()),
            "{err}"
        );
    }
}

fn mail_channel(port: u16, tls: &str, ca_file: &std::path::Path) -> Channel {
    channel(&format!(
        "name='mail'\ntype='email'\nsmtp_host='127.0.0.1'\nsmtp_port={port}\nsmtp_tls='{tls}'\n\
         ca_file='{}'\nfrom='loupe@example.com'\nto=['oncall@example.com']\nretries=0",
        toml_path(ca_file)
    ))
}

#[tokio::test]
async fn email_upgrades_with_starttls_before_the_envelope() {
    let pki = pki();
    for tls in ["starttls", "auto"] {
        let mut sink = smtp_sink(Some(pki.acceptor.clone()), SinkTls::Starttls).await;
        mail_channel(sink.port, tls, &pki.ca_file)
            .send(&notice(), NOW)
            .await
            .unwrap_or_else(|e| panic!("smtp_tls={tls}: {e}"));
        let conv = sink.wait_for_message().await;
        assert!(conv.contains("plain STARTTLS\n"), "{tls}: {conv}");
        assert!(
            conv.contains("tls MAIL FROM:<loupe@example.com>")
                && conv.contains("tls RCPT TO:<oncall@example.com>"),
            "{tls}: the envelope must travel encrypted: {conv}"
        );
        assert!(!conv.contains("plain MAIL FROM"), "{tls}: {conv}");
    }
}

#[tokio::test]
async fn email_over_implicit_tls() {
    let pki = pki();
    let mut sink = smtp_sink(Some(pki.acceptor.clone()), SinkTls::Implicit).await;
    mail_channel(sink.port, "tls", &pki.ca_file)
        .send(&notice(), NOW)
        .await
        .expect("sent over SMTPS");
    let conv = sink.wait_for_message().await;
    assert!(conv.starts_with("tls EHLO"), "{conv}");
    assert!(conv.contains("tls DATA"), "{conv}");
}

#[tokio::test]
async fn required_starttls_refuses_a_plain_server() {
    let pki = pki();
    let sink = smtp_sink(Some(pki.acceptor.clone()), SinkTls::Plain).await;
    let err = mail_channel(sink.port, "starttls", &pki.ca_file)
        .send(&notice(), NOW)
        .await
        .expect_err("no STARTTLS offered");
    assert!(err.to_string().contains("mail: SMTP"), "{err}");
    assert!(
        !sink.transcript().contains("MAIL FROM"),
        "the envelope must not be sent in plain text"
    );
}
