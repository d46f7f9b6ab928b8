//! `[[budgets]]` through a running `loupe serve` (issue 20): LLM spans with
//! a cost pushed over OTLP; each threshold of the month's budget reaches a
//! capture webhook exactly once, and a restart does not repeat them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use serde_json::Value;

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

/// One LLM span costing `cost`, a second ago.
fn llm_call(id: u64, cost: &str) -> Vec<u8> {
    let now_ns = u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    let mut s = otel_span(
        u128::from(id),
        id,
        None,
        "llm",
        &[
            ("openinference.span.kind", "LLM"),
            ("llm.model_name", "gpt-4o-mini"),
            ("llm.cost.total", cost),
        ],
    );
    s.start_time_unix_nano = now_ns - 1_000_000_000;
    s.end_time_unix_nano = now_ns - 500_000_000;
    encode(&request(vec![s]))
}

fn budget_notices(hits: &Hits) -> Vec<Value> {
    hits.lock()
        .expect("lock")
        .iter()
        .filter(|h| h.to_string().contains("llm-month"))
        .cloned()
        .collect()
}

async fn wait_for_notices(hits: &Hits, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = budget_notices(hits);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{n} budget notices never came: {got:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_budget_threshold_notifies_once_and_a_restart_does_not_repeat_it() {
    let hits: Hits = Arc::default();
    let hook = capture_webhook(hits.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\ninterval = \"1s\"\n\n[[alerts.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook}\"\nretries = 0\n\n\
             [[budgets]]\nname = \"llm-month\"\namount = 1.0\nthresholds = [0.5, 1.0]\nnotify = [\"hook\"]\n"
        ),
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    assert_eq!(server.post_otlp(llm_call(1, "0.6")).await.status(), 200);
    let first = wait_for_notices(&hits, 1).await;
    assert!(first[0].to_string().contains("50%"), "{first:#?}");
    assert_eq!(server.post_otlp(llm_call(2, "0.6")).await.status(), 200);
    let both = wait_for_notices(&hits, 2).await;
    assert!(both[1].to_string().contains("100%"), "{both:#?}");
    // Still spending: nothing more this month.
    assert_eq!(server.post_otlp(llm_call(3, "0.6")).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(budget_notices(&hits).len(), 2, "once per threshold");
    server.stop();

    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        budget_notices(&hits).len(),
        2,
        "a restart does not repeat them"
    );
    // The API (the console's Analytics page): the spend of this period and
    // what was notified; another project has no budgets.
    let (status, listed) = server.get_json("/api/v1/budgets").await;
    assert_eq!(status, 200, "{listed}");
    let b = &listed["budgets"][0];
    assert_eq!(b["budget"]["name"], "llm-month", "{listed}");
    let spent = b["spent"][0]["spent"].as_f64().unwrap_or(0.0);
    assert!((spent - 1.8).abs() < 1e-9, "{listed}");
    assert!(
        (b["spent"][0]["share"].as_f64().unwrap_or(0.0) - 1.8).abs() < 1e-9,
        "{listed}"
    );
    assert_eq!(b["notified"][""], serde_json::json!([0.5, 1.0]), "{listed}");
    let (_, other) = server.get_json_as("/api/v1/budgets", "other").await;
    assert_eq!(other, serde_json::json!({"budgets": []}));
    server.stop();

    // A budget naming a channel that does not exist is refused at start.
    std::fs::write(
        &config,
        "[[budgets]]\nname = \"x\"\namount = 1.0\nnotify = [\"nowhere\"]\n",
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run loupe serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nowhere"), "{err}");
}

/// A Dify LLM node over OTLP (the `metadata` dialect of Dify's tracing
/// providers), priced `price` in `currency`, a second ago.
fn dify_llm_node(id: u64, price: f64, currency: &str) -> Vec<u8> {
    let metadata = serde_json::json!({
        "node_id": format!("n-{id}"), "node_type": "llm", "node_status": "succeeded",
        "app_id": "app-1", "app_name": "Shop", "status": "succeeded",
        "total_tokens": 30, "total_price": price, "currency": currency,
    })
    .to_string();
    let now_ns = u64::try_from(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).unwrap_or(0);
    let mut s = otel_span(
        u128::from(id),
        id,
        Some(id + 1000),
        "llm_Copy",
        &[
            ("openinference.span.kind", "CHAIN"),
            ("metadata", &metadata),
        ],
    );
    s.start_time_unix_nano = now_ns - 1_000_000_000;
    s.end_time_unix_nano = now_ns - 500_000_000;
    encode(&request(vec![s]))
}

/// `[costs]`: Dify prices some models in RMB. A currency with a rate is
/// stored converted (the original kept), one without stays apart, and a
/// budget counts only its own currency while listing the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_are_converted_at_ingest_and_a_budget_never_adds_currencies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[costs]\ncurrency = \"USD\"\nrates = { CNY = 0.5 }\n\n\
         [[budgets]]\nname = \"all-month\"\namount = 10.0\n",
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    // 1 USD (OpenInference), 4 RMB (= 2 USD at the rate), 3 EUR (no rate).
    assert_eq!(server.post_otlp(llm_call(1, "1.0")).await.status(), 200);
    assert_eq!(
        server
            .post_otlp(dify_llm_node(2, 4.0, "RMB"))
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .post_otlp(dify_llm_node(3, 3.0, "EUR"))
            .await
            .status(),
        200
    );
    let (status, body) = server
        .post_json_as(
            "/api/v1/query",
            "default",
            &serde_json::json!({ "q": "last 1h exists cost | by currency | sum(cost) as c | sort c desc" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<(Value, f64)> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| (r[0].clone(), r[1].as_f64().unwrap_or(f64::NAN)))
        .collect();
    // OpenInference says USD (its convention), the RMB node is now 2 USD,
    // EUR is kept as it came.
    let of = |c: &str| rows.iter().find(|r| r.0 == c).map(|r| r.1);
    assert_eq!(of("USD"), Some(3.0), "{body}");
    assert_eq!(of("EUR"), Some(3.0), "{body}");
    assert_eq!(rows.len(), 2, "{body}");
    // The converted span keeps what its source said.
    let (status, body) = server.get_json(&format!("/api/v1/traces/{:032x}", 2)).await;
    assert_eq!(status, 200, "{body}");
    let attrs = &body["spans"][0]["attributes"];
    assert_eq!(attrs["loupe.cost_original"], "4", "{body}");
    assert_eq!(attrs["loupe.currency_original"], "CNY", "{body}");

    let (status, listed) = server.get_json("/api/v1/budgets").await;
    assert_eq!(status, 200, "{listed}");
    let b = &listed["budgets"][0];
    assert_eq!(b["budget"]["currency"], "USD", "{listed}");
    let spent = b["spent"][0]["spent"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (spent - 3.0).abs() < 1e-9,
        "1 + 2 USD, not the EUR: {listed}"
    );
    assert_eq!(
        b["other_currencies"],
        serde_json::json!([{"currency": "EUR", "spent": 3.0}]),
        "{listed}"
    );
    server.stop();

    // A bad rate stops `serve` at start, naming it.
    std::fs::write(&config, "[costs]\nrates = { CNY = -1 }\n").expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run loupe serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rates.CNY"), "{err}");
}
