//! Alerting through a running `loupe serve`: rules from the config file and
//! the HTTP API, OTLP traffic in, notices out to a capture webhook (axum on
//! 127.0.0.1), active alerts and silences over the API, and the API rule
//! surviving a restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtelStatus;
use serde_json::{Value, json};

use crate::support::{Server, encode, otel_span, request};

type Hits = Arc<Mutex<Vec<Value>>>;

async fn capture_webhook(hits: Hits) -> String {
    async fn hook(State(hits): State<Hits>, body: String) -> &'static str {
        hits.lock()
            .expect("lock")
            .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
        "ok"
    }
    let app = axum::Router::new().fallback(hook).with_state(hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

/// `n` finished tool spans of `tool` ending now, each its own trace.
fn tool_calls(first_id: u64, tool: &str, n: u64, failed: bool) -> Vec<u8> {
    let now_ns = u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    let spans = (0..n)
        .map(|i| {
            let id = first_id + i;
            let mut s = otel_span(
                u128::from(id),
                id,
                None,
                tool,
                &[("openinference.span.kind", "TOOL"), ("tool.name", tool)],
            );
            s.start_time_unix_nano = now_ns - 300_000_000 + i * 1000;
            s.end_time_unix_nano = now_ns - 100_000_000 + i * 1000;
            if let Some(st) = s.status.as_mut() {
                st.code = if failed {
                    OtelStatus::Error as i32
                } else {
                    OtelStatus::Ok as i32
                };
                if failed {
                    st.message = "HTTP 500 from inventory service".into();
                }
            }
            s
        })
        .collect();
    encode(&request(spans))
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_from_config_and_api_fire_through_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hits = Hits::default();
    let hook = capture_webhook(hits.clone()).await;
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\ninterval = '1s'\nbase_url = 'http://loupe.test'\n\
             [[alerts.channels]]\nname = 'hook'\ntype = 'webhook'\nurl = '{hook}'\nretries = 0\n\
             [[alerts.rules]]\nname = 'tool-3-failures'\nproject = 'default'\ntype = 'event'\nconsecutive = 3\n\
             within = '10m'\ngroup_by = ['tool_name']\nfilters = {{ span_kind = 'tool' }}\nnotify = ['hook']\n"
        ),
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let url = |p: &str| format!("{}{p}", server.http);

    // A rule through the API: validated (400 names the problem), listed
    // beside the config's.
    let bad = server
        .client
        .post(url("/api/v1/alerts/rules"))
        .json(&json!({"name": "x", "metric": "failure_rate"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status().as_u16(), 400);
    let text = bad.text().await.expect("text");
    assert!(
        text.contains("metric") && text.contains("threshold"),
        "{text}"
    );
    let created = server
        .client
        .post(url("/api/v1/alerts/rules"))
        .json(&json!({
            "name": "tool-failure-rate", "metric": "failure_rate", "threshold": "50%",
            "window": "5m", "group_by": ["tool_name"], "filters": {"span_kind": "tool"},
            "notify": ["hook"], "summary": "tool failing"
        }))
        .send()
        .await
        .expect("post");
    assert_eq!(created.status().as_u16(), 201);
    let (_, rules) = server.get_json("/api/v1/alerts/rules").await;
    let listed: Vec<(String, String)> = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("tool-3-failures".to_owned(), "config".to_owned()),
            ("tool-failure-rate".to_owned(), "api".to_owned())
        ]
    );

    // Traffic: payment healthy, inventory failing three times.
    assert!(
        server
            .post_otlp(tool_calls(1, "payment", 4, false))
            .await
            .status()
            .is_success()
    );
    assert!(
        server
            .post_otlp(tool_calls(100, "inventory", 3, true))
            .await
            .status()
            .is_success()
    );

    let notices = wait_for("both rules to notify", async || {
        let h = hits.lock().expect("lock").clone();
        (h.len() >= 2).then_some(h)
    })
    .await;
    let mut by_rule: Vec<(String, String)> = notices
        .iter()
        .map(|n| {
            (
                n["rule"].as_str().unwrap_or_default().to_owned(),
                n["group"]["tool_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    by_rule.sort();
    assert_eq!(
        by_rule,
        [
            ("tool-3-failures".to_owned(), "inventory".to_owned()),
            ("tool-failure-rate".to_owned(), "inventory".to_owned())
        ],
        "{notices:?}"
    );
    assert!(
        notices.iter().all(|n| n["state"] == "firing"),
        "{notices:?}"
    );

    let (status, alerts) = server.get_json("/api/v1/alerts").await;
    assert_eq!(status, 200);
    let firing: Vec<&Value> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["phase"] == "firing")
        .collect();
    assert_eq!(firing.len(), 2, "{alerts}");
    assert!(
        firing
            .iter()
            .all(|a| a["group"]["tool_name"] == "inventory")
    );

    // The history lists both notices with each channel's result, newest
    // first, and survives a restart (below).
    let (status, history) = server.get_json("/api/v1/alerts/history").await;
    assert_eq!(status, 200);
    let entries = history["history"].as_array().expect("history");
    assert_eq!(entries.len(), 2, "{history}");
    for e in entries {
        assert_eq!(e["state"], "firing");
        assert_eq!(e["reminder"], false);
        assert_eq!(
            e["deliveries"],
            json!([{"target": "hook", "kind": "channel", "result": "sent"}]),
            "{e}"
        );
    }
    let (status, _) = server.get_json("/api/v1/alerts/history?limit=0").await;
    assert_eq!(status, 400);

    // Silences over the API.
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let s = server
        .client
        .post(url("/api/v1/alerts/silences"))
        .json(
            &json!({"matchers": {"tool_name": "inventory"}, "ends_at": ends, "comment": "fixing"}),
        )
        .send()
        .await
        .expect("post silence");
    assert_eq!(s.status().as_u16(), 201);
    let id = s.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("silence id")
        .to_owned();
    let (_, silences) = server.get_json("/api/v1/alerts/silences").await;
    assert_eq!(silences["silences"][0]["id"], id.as_str());
    let del = server
        .client
        .delete(url(&format!("/api/v1/alerts/silences/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status().as_u16(), 204);

    // The API rule persists across a restart; deleting it twice is a 404.
    server.stop();
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let (_, rules) = server.get_json("/api/v1/alerts/rules").await;
    assert_eq!(rules["rules"].as_array().map(Vec::len), Some(2), "{rules}");
    let (_, kept) = server.get_json("/api/v1/alerts/history").await;
    assert!(
        kept["history"].as_array().map_or(0, Vec::len) >= 2,
        "{kept}"
    );
    for expected in [204, 404] {
        let r = server
            .client
            .delete(format!(
                "{}/api/v1/alerts/rules/tool-failure-rate",
                server.http
            ))
            .send()
            .await
            .expect("delete rule");
        assert_eq!(r.status().as_u16(), expected);
    }
    server.stop();
}

/// A tool span of `tool` that started `minutes_ago` minutes before `now_ns`
/// and took half a second.
fn past_call(id: u64, tool: &str, now_ns: u64, minutes_ago: u64, failed: bool) -> Span {
    let mut s = otel_span(
        u128::from(id),
        id,
        None,
        tool,
        &[("openinference.span.kind", "TOOL"), ("tool.name", tool)],
    );
    s.start_time_unix_nano = now_ns - minutes_ago * 60_000_000_000 + 1_000_000;
    s.end_time_unix_nano = s.start_time_unix_nano + 500_000_000;
    if let Some(st) = s.status.as_mut() {
        st.code = if failed {
            OtelStatus::Error as i32
        } else {
            OtelStatus::Ok as i32
        };
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_preview_counts_past_firings_and_a_channel_test_reaches_the_webhook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hits = Hits::default();
    let hook = capture_webhook(hits.clone()).await;
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\ninterval = '1h'\nbase_url = 'http://loupe.test'\n\
             [[alerts.channels]]\nname = 'hook'\ntype = 'webhook'\nurl = '{hook}'\nretries = 0\n\
             [[alerts.channels]]\nname = 'dead'\ntype = 'slack'\nurl = 'http://127.0.0.1:1/hook'\nretries = 0\ntimeout = '2s'\n"
        ),
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    let url = |p: &str| format!("{}{p}", server.http);
    // Three hours of inventory calls, one a minute: failing from 120 to 101
    // minutes ago (20 minutes) and from 60 to 51 minutes ago (10 minutes).
    // The search tool fails all the time (another tool: never selected).
    let now = chrono::Utc::now();
    let now_ns = u64::try_from(now.timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    let mut spans = Vec::new();
    for m in 1..=180u64 {
        let failing = (101..=120).contains(&m) || (51..=60).contains(&m);
        spans.push(past_call(10_000 + m, "inventory", now_ns, m, failing));
        spans.push(past_call(20_000 + m, "search", now_ns, m, true));
    }
    let resp = server.post_otlp(encode(&request(spans))).await;
    assert_eq!(resp.status().as_u16(), 200);

    let preview = |rule: Value, hours: u64| {
        let client = server.client.clone();
        let u = url("/api/v1/alerts/rules/preview");
        let now = now.to_rfc3339();
        async move {
            let r = client
                .post(u)
                .json(&json!({"rule": rule, "hours": hours, "now": now}))
                .send()
                .await
                .expect("preview");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let rule = json!({"name": "inventory-failing", "metric": "failure_rate", "threshold": "50%",
        "window": "5m", "filters": {"tool_name": "inventory"}});
    let (status, body) = preview(rule.clone(), 4).await;
    assert_eq!(status, 200, "{body}");
    let p = &body["preview"];
    assert_eq!(p["spans"], 180, "only the inventory spans are read: {body}");
    assert_eq!(
        (p["fired"].as_u64(), p["resolved"].as_u64()),
        (Some(2), Some(2)),
        "{body}"
    );
    assert_eq!(p["step_ms"], 60_000);
    assert_eq!(p["threshold"], 0.5);
    let first = &p["transitions"][0];
    assert_eq!(first["state"], "firing");
    let fired_ago = (now.timestamp_millis() - first["at_ms"].as_i64().expect("at")) / 60_000;
    assert!(
        (114..=118).contains(&fired_ago),
        "fired {fired_ago} minutes ago: {body}"
    );
    assert_eq!(p["evaluations"], 241);
    let points = p["series"].as_array().expect("series").len();
    assert!((100..=240).contains(&points), "{points} points");
    // `for` applies: the 10-minute burst never holds for 15 minutes.
    let mut slow = rule.clone();
    slow["for"] = json!("15m");
    let (_, body) = preview(slow, 4).await;
    assert_eq!(body["preview"]["fired"], 1, "{body}");
    // Groups: the search tool fires once and stays firing.
    let (_, body) = preview(
        json!({"name": "any-tool", "metric": "failure_rate", "threshold": "50%", "window": "5m",
            "filters": {"span_kind": "tool"}, "group_by": ["tool_name"]}),
        4,
    )
    .await;
    assert_eq!(body["preview"]["fired"], 3, "{body}");
    assert_eq!(body["preview"]["firing_at_end"], 1, "{body}");
    // Nothing is stored by a preview.
    let (_, rules) = server.get_json("/api/v1/alerts/rules").await;
    assert_eq!(rules["rules"], json!([]));
    // Bad input is a 400 naming the problem.
    for (rule, hours, needle) in [
        (
            json!({"name": "x", "metric": "failure_rate"}),
            4,
            "threshold",
        ),
        (rule.clone(), 0, "hours"),
        (rule.clone(), 1000, "hours"),
        (
            json!({"name": "x", "metric": "count", "threshold": 1, "group_by": ["tags.nope"]}),
            4,
            "nope",
        ),
        (
            json!({"name": "x", "metric": "count", "threshold": 1, "notify": ["pager"]}),
            4,
            "pager",
        ),
        (json!({"name": "x", "metirc": "count"}), 4, "metirc"),
    ] {
        let (status, body) = preview(rule, hours).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.to_string().contains(needle),
            "{body} should name {needle}"
        );
    }

    // Channels: names and types only (a URL carries a token).
    let (status, channels) = server.get_json("/api/v1/alerts/channels").await;
    assert_eq!(status, 200);
    assert_eq!(
        channels["channels"],
        json!([{"name": "hook", "type": "webhook"}, {"name": "dead", "type": "slack"}])
    );
    assert!(!channels.to_string().contains("127.0.0.1"));
    let test = |name: &str| {
        let client = server.client.clone();
        let u = url(&format!("/api/v1/alerts/channels/{name}/test"));
        async move {
            let r = client.post(u).json(&json!({})).send().await.expect("test");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = test("hook").await;
    assert_eq!(status, 200, "{body}");
    let got = hits.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].to_string().contains("loupe-test"), "{got:?}");
    let (status, body) = test("dead").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("dead"),
        "{body}"
    );
    let (status, _) = test("nope").await;
    assert_eq!(status, 404);
    server.stop();
}
