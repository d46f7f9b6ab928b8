//! Each channel against a local capture server (axum on 127.0.0.1:0),
//! checking the exact payload of that service (DingTalk and Feishu
//! signatures recomputed), retries, the rate limit, and email against the
//! tests' SMTP sink (`support`: a real SMTP conversation, EHLO, MAIL,
//! RCPT, DATA, QUIT).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use loupe_alerts::channels::{Channel, ChannelConfig, dingtalk, feishu};
use loupe_alerts::eval::{Notice, NoticeState};
use parking_lot::Mutex;
use serde_json::{Value, json};

type Hits = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

#[derive(Clone, Default)]
struct Capture {
    hits: Hits,
    fail_first: Arc<Mutex<u32>>,
}

async fn capture_server(cap: Capture) -> String {
    async fn hook(
        State(cap): State<Capture>,
        uri: axum::http::Uri,
        RawQuery(q): RawQuery,
        body: String,
    ) -> (StatusCode, String) {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        cap.hits.lock().push((uri.path().to_owned(), q, v));
        let mut f = cap.fail_first.lock();
        if *f > 0 {
            *f -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "busy".into());
        }
        (StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#.into())
    }
    let app = axum::Router::new().fallback(hook).with_state(cap);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn notice() -> Notice {
    Notice {
        rule: "inventory-avg-latency".into(),
        project: None,
        state: NoticeState::Firing,
        labels: BTreeMap::from([
            ("alertname".into(), "inventory-avg-latency".into()),
            ("severity".into(), "warning".into()),
            ("tool_name".into(), "inventory".into()),
        ]),
        group: BTreeMap::from([("tool_name".into(), "inventory".into())]),
        metric: "avg_latency".into(),
        op: ">".into(),
        value: Some(1.5),
        threshold: 1.0,
        summary: "库存工具平均耗时>1s".into(),
        runs_url: "http://loupe/api/v1/spans?tool_name=inventory&limit=20".into(),
        rca_url: "http://loupe/rca?target=duration%3E1000ms".into(),
        starts_at_ms: 1_800_000_000_000,
        ends_at_ms: None,
        silenced: false,
        notify: vec![],
        actions: vec![],
    }
}

fn channel(kind: &str, url: &str, extra: &str) -> Channel {
    let text = format!("name='c'\ntype='{kind}'\nurl='{url}'\nretry_backoff='10ms'\n{extra}");
    let cfg: ChannelConfig = toml::from_str(&text).expect("channel config");
    cfg.validate().expect("valid");
    Channel::new(cfg).expect("channel")
}

const NOW: i64 = 1_800_000_123_456;

async fn send_one(kind: &str, path_query: &str, extra: &str) -> (String, Option<String>, Value) {
    let cap = Capture::default();
    let base = capture_server(cap.clone()).await;
    let ch = channel(kind, &format!("{base}{path_query}"), extra);
    ch.send(&notice(), NOW).await.expect("sent");
    let hits = cap.hits.lock().clone();
    assert_eq!(hits.len(), 1);
    hits.into_iter().next().expect("one hit")
}

#[tokio::test]
async fn dingtalk_markdown_with_a_verified_signature() {
    let (path, query, body) =
        send_one("dingtalk", "/robot/send?access_token=T", "secret='SECabc'").await;
    assert_eq!(path, "/robot/send");
    let q: BTreeMap<String, String> = serde_urlencoded_parse(&query.unwrap_or_default());
    assert_eq!(q.get("access_token").map(String::as_str), Some("T"));
    assert_eq!(
        q.get("timestamp").map(String::as_str),
        Some(NOW.to_string().as_str())
    );
    // Recompute as DingTalk does: HMAC-SHA256(secret, "ts\nsecret"), base64.
    let expected = dingtalk::sign(NOW, "SECabc");
    assert_eq!(q.get("sign"), Some(&expected));
    let mac = loupe_alerts_hmac(b"SECabc", format!("{NOW}\nSECabc").as_bytes());
    assert_eq!(expected, mac);
    assert_eq!(body["msgtype"], "markdown");
    let text = body["markdown"]["text"].as_str().unwrap_or_default();
    assert!(
        body["markdown"]["title"]
            .as_str()
            .unwrap_or_default()
            .starts_with("[FIRING] inventory-avg-latency")
    );
    assert!(text.contains("avg_latency: 1.500s (> 1.000s)"), "{text}");
    assert!(
        text.contains("tool_name=inventory")
            && text.contains("http://loupe/api/v1/spans?tool_name=inventory"),
        "{text}"
    );
}

#[tokio::test]
async fn wecom_feishu_slack_payloads() {
    let (_, query, body) = send_one("wecom", "/cgi-bin/webhook/send?key=K", "").await;
    assert_eq!(query.as_deref(), Some("key=K"));
    assert_eq!(body["msgtype"], "markdown");
    assert!(
        body["markdown"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("库存工具平均耗时>1s")
    );

    let (_, _, body) = send_one("feishu", "/open-apis/bot/v2/hook/x", "secret='fs'").await;
    assert_eq!(body["msg_type"], "text");
    let ts = (NOW / 1000).to_string();
    assert_eq!(body["timestamp"], json!(ts));
    assert_eq!(body["sign"], json!(feishu::sign(NOW / 1000, "fs")));
    assert_eq!(
        body["sign"],
        json!(loupe_alerts_hmac(format!("{ts}\nfs").as_bytes(), b""))
    );
    assert!(
        body["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("[FIRING] inventory-avg-latency")
    );
    let (_, _, body) = send_one("feishu", "/hook", "").await;
    assert!(body.get("sign").is_none(), "no secret, no signature");

    let (_, _, body) = send_one("slack", "/services/T/B/X", "").await;
    let text = body["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("<http://loupe/api/v1/spans?tool_name=inventory&limit=20|example runs>")
            && text.contains("<http://loupe/rca?target=duration%3E1000ms|what changed (根因分析)>"),
        "{text}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1));
}

#[tokio::test]
async fn webhook_template_and_alertmanager_v2() {
    let tpl = r#"body='{"alert":"{{rule}}","state":"{{state}}","value":"{{value}}","group":"{{group}}","runs":"{{runs_url}}","why":"{{summary}}"}'"#;
    let (_, _, body) = send_one("webhook", "/hook", tpl).await;
    assert_eq!(
        body,
        json!({"alert":"inventory-avg-latency","state":"firing","value":"1.500s","group":"tool_name=inventory",
               "runs":"http://loupe/api/v1/spans?tool_name=inventory&limit=20","why":"库存工具平均耗时>1s"})
    );
    let (path, _, body) = send_one("alertmanager", "", "").await;
    assert_eq!(path, "/api/v2/alerts");
    let a = &body[0];
    assert_eq!(
        a["labels"],
        json!({"alertname":"inventory-avg-latency","severity":"warning","tool_name":"inventory"})
    );
    assert_eq!(a["startsAt"], "2027-01-15T08:00:00.000Z");
    assert_eq!(
        a["generatorURL"],
        "http://loupe/api/v1/spans?tool_name=inventory&limit=20"
    );
    assert!(a.get("endsAt").is_none());
}

#[tokio::test]
async fn retries_with_backoff_then_succeeds_and_the_rate_limit_drops() {
    let cap = Capture::default();
    *cap.fail_first.lock() = 2;
    let base = capture_server(cap.clone()).await;
    let ch = channel("slack", &format!("{base}/h"), "retries=3");
    let attempts = ch.send(&notice(), NOW).await.expect("sent");
    assert_eq!(attempts, 3);
    *cap.fail_first.lock() = 10;
    let err = ch.send(&notice(), NOW).await;
    assert!(err.is_err(), "gives up after 1 + 3 attempts");
    let limited = channel("slack", &format!("{base}/h"), "max_per_minute=2");
    assert!(limited.admit(NOW) && limited.admit(NOW + 1));
    assert!(!limited.admit(NOW + 2));
    assert!(limited.admit(NOW + 60_000));
}

#[tokio::test]
async fn email_reaches_a_local_smtp_sink() {
    let mut sink = support::smtp_sink(None, support::SinkTls::Plain).await;
    let port = sink.port;
    let text = format!(
        "name='mail'\ntype='email'\nsmtp_host='127.0.0.1'\nsmtp_port={port}\nfrom='loupe@example.com'\nto=['oncall@example.com']\nretries=0"
    );
    let cfg: ChannelConfig = toml::from_str(&text).expect("config");
    Channel::new(cfg)
        .expect("channel")
        .send(&notice(), NOW)
        .await
        .expect("sent");
    // The whole message, up to its end-of-data line.
    let conv = sink.wait_for_message().await;
    assert!(conv.contains("MAIL FROM:<loupe@example.com>"), "{conv}");
    assert!(conv.contains("RCPT TO:<oncall@example.com>"), "{conv}");
    assert!(
        conv.contains("Subject: [FIRING] inventory-avg-latency")
            || conv.contains("Subject: =?utf-8?"),
        "{conv}"
    );
    assert!(
        conv.contains("Content-Transfer-Encoding: quoted-printable")
            && conv.contains("example runs: http://loupe/api/v1/spans?tool_name=3Dinventory"),
        "{conv}"
    );
}

fn serde_urlencoded_parse(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An independent HMAC-SHA256 + base64 (sha2 directly) to check signatures.
fn loupe_alerts_hmac(key: &[u8], msg: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(msg.iter().copied())
        .collect();
    let inner = Sha256::digest(&ipad);
    let opad: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner.iter().copied())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&opad))
}
