//! `[redaction]` end to end (issue 14): PII in OTLP and Langfuse traffic is
//! replaced before the WAL, so after flushes and a compaction no byte of
//! the data directory holds a raw value; the same traffic without rules
//! leaves the values in the WAL (so the byte search can see them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, encode, otel_span, request};

/// Distinctive lower-case pieces of each raw value (the text index
/// lower-cases and splits on punctuation, so whole values are not enough).
const NEEDLES: &[&str] = &[
    "wangfangxyzzy",
    "13987654321",
    "11010519491231002x",
    "e2esecretabcdefghijklmnop",
    "e2etokenabcdefgh123",
    "attrsecretqq",
    "6222020200112233445",
];

/// `[store]` flushing every second; compaction held back (phase one) or
/// eager (phase two).
fn config_text(compaction_min_parts: usize) -> String {
    format!(
        "[store]\nflush_age = \"1s\"\nmaintenance_interval = \"1s\"\n\
         compaction_min_parts = {compaction_min_parts}\n{RULES}"
    )
}

const RULES: &str = r#"
[[redaction.rules]]
name = "email"
builtin = "email"
[[redaction.rules]]
name = "mobile"
builtin = "cn_mobile"
[[redaction.rules]]
name = "id"
builtin = "cn_id_card"
[[redaction.rules]]
name = "key"
builtin = "api_key"
[[redaction.rules]]
name = "token"
builtin = "bearer_token"
[[redaction.rules]]
name = "secret-attr"
attributes = ["app.secret"]
[[redaction.rules]]
name = "card"
json_paths = ["inputs.card"]
"#;

fn pii_input() -> String {
    json!({
        "inputs": {"card": "6222020200112233445", "query": "hi"},
        "text": "我是王芳 WangFangXyzzy@bank-example.cn 电话13987654321 身份证11010519491231002X"
    })
    .to_string()
}

fn otlp(batch: u64) -> Vec<u8> {
    let id = 100 * batch;
    let input = pii_input();
    let mut span = otel_span(
        u128::from(id),
        id,
        None,
        "llm",
        &[
            ("openinference.span.kind", "LLM"),
            ("input.value", &input),
            ("output.value", "use key sk-e2eSECRETabcdefghijklmnop"),
            ("app.secret", "AttrSecretQQ"),
            (
                "http.request.header.authorization",
                "Bearer e2eTOKENabcdefgh123",
            ),
        ],
    );
    if let Some(s) = span.status.as_mut() {
        s.code = 2;
        s.message = "mail to wangfangxyzzy@bank-example.cn failed".into();
    }
    encode(&request(vec![span]))
}

fn langfuse(batch: u64) -> Value {
    json!({"batch": [{
        "id": format!("ev-{batch}"),
        "type": "trace-create",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "body": {
            "id": format!("lf-trace-{batch}"),
            "name": "chat",
            "input": pii_input(),
            "output": "call 13987654321",
        }
    }]})
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every (file, needle) whose bytes, lower-cased, contain a needle.
fn raw_values_on_disk(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut all = Vec::new();
    files(dir, &mut all);
    let mut found = Vec::new();
    for path in all {
        let bytes = std::fs::read(&path)
            .expect("read file")
            .to_ascii_lowercase();
        for needle in NEEDLES {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                found.push((path.clone(), *needle));
            }
        }
    }
    found
}

/// Live parts per the manifest (replaced files linger for a grace period).
fn parquet_count(data: &Path) -> usize {
    std::fs::read(data.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|m| m["parts"].as_array().map(Vec::len))
        .unwrap_or(0)
}

async fn wait_until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send(server: &Server, batch: u64) {
    let r = server.post_otlp(otlp(batch)).await;
    assert_eq!(r.status().as_u16(), 200);
    let r = server
        .client
        .post(format!("{}/api/public/ingestion", server.http))
        .json(&langfuse(batch))
        .send()
        .await
        .expect("langfuse");
    assert_eq!(r.status().as_u16(), 207);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["errors"], json!([]), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redacted_values_are_nowhere_on_disk_after_flush_and_compaction() {
    // Control: the same traffic, no rules, killed before any flush: the
    // WAL holds every raw value, so the byte search below can see them.
    let control = tempfile::tempdir().expect("tempdir");
    let server = Server::start(control.path(), &[]).await;
    send(&server, 1).await;
    server.kill9();
    let seen: std::collections::BTreeSet<&str> = raw_values_on_disk(control.path())
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        seen.len(),
        NEEDLES.len(),
        "the control run must show every raw value: {seen:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(&config, config_text(1000)).expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    // Three flushes, each its own parts.
    for batch in 1..=3 {
        let before = parquet_count(&data);
        send(&server, batch).await;
        wait_until("a flush", || parquet_count(&data) > before).await;
    }
    let parts = parquet_count(&data);
    assert!(parts >= 3, "several parts were written: {parts}");

    // Through the API: replaced, the rest intact.
    let (status, run) = server
        .get_json(&format!("/api/v1/traces/{:032x}", 100))
        .await;
    assert_eq!(status, 200, "{run}");
    let span = &run["spans"][0];
    let input = span["input"].as_str().expect("input");
    assert!(input.contains("[REDACTED:card]"), "{input}");
    assert!(input.contains("[REDACTED:email]"), "{input}");
    assert!(input.contains("[REDACTED:mobile]"), "{input}");
    assert!(input.contains("[REDACTED:id]"), "{input}");
    assert!(input.contains("我是王芳"), "{input}");
    assert_eq!(span["output"], "use key [REDACTED:key]");
    assert_eq!(
        span["error_message"], "mail to [REDACTED:email] failed",
        "{span}"
    );
    server.stop();

    // Restart with eager compaction until it leaves fewer parts.
    std::fs::write(&config, config_text(2)).expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    wait_until("compaction", || parquet_count(&data) < parts).await;
    server.stop();

    let found = raw_values_on_disk(&data);
    assert!(found.is_empty(), "raw values on disk: {found:?}");
}
