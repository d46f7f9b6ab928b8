//! The `logs` source of the query language end to end against a real
//! `loupe serve`: records sent through `/es/_bulk` (some flushed into parts
//! by a restart, some only in the memtable), then asked through
//! `POST /api/v1/query` and `loupe query` (server and `--data-dir`); every
//! answer is compared with the same question answered by brute force over
//! what was sent. A second project's records never show.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Key, Server, create_key};

/// One record as sent, with what the store must make of it.
#[derive(Debug, Clone)]
struct Sent {
    time_ns: i64,
    severity: i64,
    body: String,
    service: Option<&'static str>,
    stream: &'static str,
    status: i64,
}

/// `n` records, one every 3 s ending at `end_ns`, of every level, service,
/// stream and a few bodies (some with "connection reset" in any case).
fn records(n: usize, end_ns: i64, salt: u64) -> Vec<Sent> {
    let mut x = salt.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    let services = [Some("api"), Some("worker"), Some("plugin_daemon"), None];
    let bodies = [
        "request served",
        "upstream Connection RESET by peer",
        "plugin call timeout after 30s",
        "connection reset while reading; timeout",
        "cache miss",
    ];
    (0..n)
        .map(|i| Sent {
            time_ns: end_ns - (i as i64) * 3_000_000_000,
            severity: [1, 5, 9, 13, 17, 21][next(6) as usize],
            body: format!("{} #{i}", bodies[next(5) as usize]),
            service: services[next(4) as usize],
            stream: ["dify-api", "dify-worker"][next(2) as usize],
            status: [200, 404, 500, 503][next(4) as usize],
        })
        .collect()
}

fn level_word(n: i64) -> &'static str {
    match n {
        1 => "trace",
        5 => "debug",
        9 => "info",
        13 => "WARNING",
        17 => "ERROR",
        _ => "fatal",
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn bulk(server: &Server, key: &Key, sent: &[Sent]) {
    let mut body = String::new();
    for r in sent {
        body.push_str(&json!({"index": {"_index": r.stream}}).to_string());
        body.push('\n');
        let mut doc = json!({
            "@timestamp": rfc3339(r.time_ns),
            "message": r.body,
            "level": level_word(r.severity),
            "http": {"status": r.status},
        });
        if let Some(s) = r.service {
            doc["service"] = json!(s);
        }
        body.push_str(&doc.to_string());
        body.push('\n');
    }
    let reply: Value = server
        .client
        .post(format!("{}/es/_bulk", server.http))
        .basic_auth(&key.public, Some(&key.secret))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("bulk")
        .json()
        .await
        .expect("bulk reply");
    assert_eq!(reply["errors"], false, "{reply}");
}

async fn ask(server: &Server, key: &Key, q: &str, now: &str) -> (u16, Value) {
    let r = server
        .client
        .post(format!("{}/api/v1/query", server.http))
        .basic_auth(&key.public, Some(&key.secret))
        .json(&json!({"q": q, "now": now}))
        .send()
        .await
        .expect("query");
    (r.status().as_u16(), r.json().await.expect("json answer"))
}

/// The rows of an answer as `column → value` maps.
fn rows(answer: &Value) -> Vec<BTreeMap<String, Value>> {
    let names: Vec<String> = answer["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();
    answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            names
                .iter()
                .cloned()
                .zip(r.as_array().expect("row").iter().cloned())
                .collect()
        })
        .collect()
}

/// `(group key, count)` pairs of an answer grouped by one key.
fn counts(answer: &Value, key: &str) -> BTreeMap<String, i64> {
    rows(answer)
        .iter()
        .map(|r| {
            let k = match &r[key] {
                Value::Null => "<null>".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k, r["count()"].as_i64().expect("count"))
        })
        .collect()
}

fn brute_counts<'a>(
    sent: impl Iterator<Item = &'a Sent>,
    key: impl Fn(&Sent) -> String,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for r in sent {
        *out.entry(key(r)).or_insert(0) += 1;
    }
    out
}

/// The listing's `(time, body)` in answer order.
fn listed(answer: &Value) -> Vec<(i64, String)> {
    rows(answer)
        .iter()
        .map(|r| {
            (
                r["time"].as_i64().expect("time ns"),
                r["body"].as_str().expect("body").to_owned(),
            )
        })
        .collect()
}

fn newest<'a>(sent: impl Iterator<Item = &'a Sent>, n: usize) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = sent.map(|r| (r.time_ns, r.body.clone())).collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.0));
    v.truncate(n);
    v
}

fn reset(r: &Sent) -> bool {
    r.body.to_lowercase().contains("connection reset")
}

fn cli(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .env_remove("LOUPE_SERVER")
        .env_remove("LOUPE_PUBLIC_KEY")
        .env_remove("LOUPE_SECRET_KEY")
        .output()
        .expect("run loupe query");
    assert!(
        out.status.success(),
        "loupe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints the answer")
}

#[tokio::test]
async fn the_logs_source_answers_as_brute_force_over_what_was_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let (shop_in, shop) = (
        create_key(data, "shop", "ingest"),
        create_key(data, "shop", "read"),
    );
    let (other_in, other) = (
        create_key(data, "other", "ingest"),
        create_key(data, "other", "read"),
    );
    // Whole seconds: `@timestamp` carries milliseconds.
    let end = loupe_model::time::now_ns() / 1_000_000_000 * 1_000_000_000 - 60_000_000_000;
    let now = rfc3339(end + 120_000_000_000);
    // 900 records over 45 minutes: the older 500 end up in parts (a clean
    // stop flushes), the newer 400 only in the memtable.
    let all = records(900, end, 7);
    let (newer, older) = all.split_at(400);
    let server = Server::start(data, &[]).await;
    bulk(&server, &shop_in, older).await;
    bulk(&server, &other_in, &records(50, end, 99)).await;
    server.stop();
    let server = Server::start(data, &[]).await;
    bulk(&server, &shop_in, newer).await;

    // Groups: errors and worse mentioning "connection reset", by service.
    let q = r#"logs | severity>=error "connection reset" | by service | count()"#;
    let (status, answer) = ask(&server, &shop, q, &now).await;
    assert_eq!(status, 200, "{answer}");
    let want = brute_counts(all.iter().filter(|r| r.severity >= 17 && reset(r)), |r| {
        r.service.unwrap_or("<null>").to_owned()
    });
    assert!(want.values().sum::<i64>() > 20, "the data has matches");
    assert_eq!(counts(&answer, "service"), want);
    assert!(
        answer["stats"]["parts_scanned"].as_u64() >= Some(1),
        "{answer}"
    );

    // A listing without `limit`: newest first, 100 rows.
    let (status, answer) = ask(&server, &shop, "logs | severity<=info", &now).await;
    assert_eq!(status, 200, "{answer}");
    let quiet = || all.iter().filter(|r| r.severity <= 12);
    assert!(quiet().count() > 100);
    assert_eq!(listed(&answer), newest(quiet(), 100));

    // Text and a field, one page and the next by keyset on time.
    let q = r#"logs | service=plugin_daemon "timeout" | limit 40"#;
    let (status, answer) = ask(&server, &shop, q, &now).await;
    assert_eq!(status, 200, "{answer}");
    let matching = || {
        all.iter().filter(|r| {
            r.service == Some("plugin_daemon") && r.body.to_lowercase().contains("timeout")
        })
    };
    assert!(matching().count() > 50, "more matches than one page");
    assert_eq!(listed(&answer), newest(matching(), 40));
    let first = &rows(&answer)[0];
    assert_eq!(first["service"], "plugin_daemon");
    assert!(first["attributes"]["http.status"].is_string(), "{first:?}");
    let last = listed(&answer)[39].0;
    let q = format!(
        r#"logs | service=plugin_daemon "timeout" time<{} | limit 30"#,
        rfc3339(last)
    );
    let (_, page2) = ask(&server, &shop, &q, &now).await;
    assert_eq!(
        listed(&page2),
        newest(matching().filter(|r| r.time_ns < last), 30)
    );

    // Severity by name is a range; ascending order; map values as numbers.
    let q =
        "logs | severity=warn stream=dify-worker attributes.http.status>=500 | sort time | limit 7";
    let (_, answer) = ask(&server, &shop, q, &now).await;
    let mut want: Vec<(i64, String)> = all
        .iter()
        .filter(|r| r.severity == 13 && r.stream == "dify-worker" && r.status >= 500)
        .map(|r| (r.time_ns, r.body.clone()))
        .collect();
    want.sort();
    want.truncate(7);
    assert_eq!(listed(&answer), want);
    assert!(
        rows(&answer)
            .iter()
            .all(|r| r["severity"] == 13 && r["severity_text"] == "WARNING")
    );

    // Several aggregates by a time bucket, over a window.
    let q = "logs | last 30m severity<error | by bucket(10m), stream | count(), max(severity)";
    let (status, answer) = ask(&server, &shop, q, &now).await;
    assert_eq!(status, 200, "{answer}");
    let now_ns = end + 120_000_000_000;
    let ten = 600_000_000_000i64;
    let mut want: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
    for r in all
        .iter()
        .filter(|r| r.severity < 17 && r.time_ns >= now_ns - 1_800_000_000_000)
    {
        let e = want
            .entry((r.time_ns.div_euclid(ten) * ten, r.stream.to_owned()))
            .or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(r.severity);
    }
    let got: BTreeMap<(i64, String), (i64, i64)> = rows(&answer)
        .iter()
        .map(|r| {
            (
                (
                    r["bucket"].as_i64().expect("bucket"),
                    r["stream"].as_str().expect("stream").to_owned(),
                ),
                (
                    r["count()"].as_i64().expect("count"),
                    r["max(severity)"].as_i64().expect("max"),
                ),
            )
        })
        .collect();
    assert_eq!(got, want);

    // Another project's key sees only its own records.
    let (_, mine) = ask(&server, &other, "logs | count()", &now).await;
    assert_eq!(rows(&mine)[0]["count()"], 50);
    let (_, theirs) = ask(&server, &shop, "logs | count()", &now).await;
    assert_eq!(rows(&theirs)[0]["count()"], 900);

    // Unknown fields are a 4xx naming the field and the valid ones.
    let (status, err) = ask(&server, &shop, "logs | sevrity>=error", &now).await;
    assert_eq!(status, 422, "{err}");
    let message = err["error"].as_str().expect("error");
    assert!(
        message.contains("unknown log field `sevrity`") && message.contains("severity, "),
        "{err}"
    );
    assert_eq!(err["suggestion"], "did you mean `severity`?");
    let (status, err) = ask(&server, &shop, "logs | run has (severity=error)", &now).await;
    assert_eq!(status, 422, "{err}");

    // The CLI answers the same, from the server and from the data
    // directory (read-only, beside the running server, WAL included).
    let q = r#"logs | severity>=error "connection reset" | by service | count()"#;
    let (_, api) = ask(&server, &shop, q, &now).await;
    let remote = cli(&[
        "query",
        q,
        "--json",
        "--now",
        &now,
        "--server",
        &server.http,
        "--public-key",
        &shop.public,
        "--secret-key",
        &shop.secret,
    ]);
    let data_dir = data.to_str().expect("utf-8 path");
    let local = |q: &str| {
        let args = ["--now", &now, "--data-dir", data_dir, "--project", "shop"];
        cli(&[&["query", q, "--json"][..], &args[..]].concat())
    };
    assert_eq!(remote["rows"], api["rows"]);
    assert_eq!(local(q)["rows"], api["rows"]);
    let q = "logs | service=api | limit 40";
    let (_, api) = ask(&server, &shop, q, &now).await;
    let local = local(q);
    assert_eq!(listed(&local), listed(&api));
    assert_eq!(
        listed(&api),
        newest(all.iter().filter(|r| r.service == Some("api")), 40)
    );
}
