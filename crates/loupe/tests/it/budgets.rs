//! `[[budgets]]` through a running `loupe serve` (issue 20): LLM spans with
//! a cost pushed over OTLP; each threshold of the month's budget reaches a
//! capture webhook exactly once, and a restart does not repeat them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use serde_json::{Value, json};

use reqwest::Method;

use crate::support::{Server, assert_ok, encode, otel_span, request};

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
    notices_of(hits, "llm-month")
}

/// The notices naming budget `name`, in the order they came.
fn notices_of(hits: &Hits, name: &str) -> Vec<Value> {
    hits.lock()
        .expect("lock")
        .iter()
        .filter(|h| h.to_string().contains(name))
        .cloned()
        .collect()
}

async fn wait_for_notices(hits: &Hits, n: usize) -> Vec<Value> {
    wait_for_notices_of(hits, "llm-month", n).await
}

async fn wait_for_notices_of(hits: &Hits, name: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = notices_of(hits, name);
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

/// A capture webhook, and a `loupe.toml` in a temp dir that checks every
/// second and has it as the channel `hook`, then `budgets` (TOML).
async fn with_hook(budgets: &str) -> (Hits, tempfile::TempDir, std::path::PathBuf) {
    let hits: Hits = Arc::default();
    let hook = capture_webhook(hits.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\ninterval = \"1s\"\n\n[[alerts.channels]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{hook}\"\nretries = 0\n\n{budgets}"
        ),
    )
    .expect("config");
    (hits, dir, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_budget_threshold_notifies_once_and_a_restart_does_not_repeat_it() {
    let (hits, dir, config) = with_hook(
        "[[budgets]]\nname = \"llm-month\"\namount = 1.0\nthresholds = [0.5, 1.0]\nnotify = [\"hook\"]\n",
    )
    .await;
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
    assert_eq!(other["budgets"], serde_json::json!([]), "{other}");
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

/// The budgets of a project, by name: (source, editable, notified).
async fn listed(server: &Server, project: &str) -> (Value, Vec<(String, Value, Value, Value)>) {
    let (status, body) = server.get_json_as("/api/v1/budgets", project).await;
    assert_eq!(status, 200, "{body}");
    let rows = body["budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .map(|b| {
            (
                b["budget"]["name"].as_str().unwrap_or_default().to_owned(),
                b["source"].clone(),
                b["editable"].clone(),
                b["notified"].clone(),
            )
        })
        .collect();
    (body, rows)
}

/// Budgets added over the API (the console's form): refusals that change
/// nothing, notices once per threshold through the same channels as
/// `loupe.toml`'s, a change of thresholds keeps what was sent, a change of
/// amount starts afresh, a restart repeats nothing, another project sees
/// and removes nothing, and a removed budget is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_added_over_the_api_notify_once_and_survive_a_restart() {
    let (hits, dir, config) =
        with_hook("[[budgets]]\nname = \"toml-month\"\namount = 1000.0\nnotify = [\"hook\"]\n")
            .await;
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let put = |name: &'static str, body: &'static str| {
        let server = &server;
        async move {
            server
                .send_as(
                    Method::PUT,
                    &format!("/api/v1/budgets/{name}"),
                    "default",
                    Some(body),
                )
                .await
        }
    };

    let (status, body) = put(
        "api-cost",
        r#"{"amount": 1.0, "period": "month", "thresholds": [0.5, 1.0], "notify": ["hook"]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["budget"]["currency"], "USD",
        "[costs] currency: {body}"
    );
    assert_eq!(body["budget"]["project"], "default", "{body}");

    // Refused, each naming the problem; nothing changes.
    for (name, bad, want, says) in [
        ("toml-month", r#"{"amount": 5}"#, 409, "loupe.toml"),
        (
            "x",
            r#"{"amount": 5, "notify": ["nowhere"]}"#,
            422,
            "nowhere",
        ),
        ("x", r#"{"amount": -1}"#, 422, "amount"),
        ("x", r#"{"amount": 5, "per": "planet"}"#, 422, "planet"),
        ("x", r#"{"amount": 5, "colour": "red"}"#, 422, "colour"),
        ("x", r#"{"amount": 5, "project": "other"}"#, 400, "project"),
        ("x", r#"{"amount": 5, "name": "y"}"#, 400, "name"),
        ("x", "[1, 2]", 400, "expected a budget"),
        ("x", "{not json", 400, "expected a budget"),
        (
            "x",
            r#"{"amount": 5, "notify": ["hook", "hook"]}"#,
            422,
            "twice",
        ),
        ("%01x", r#"{"amount": 5}"#, 422, "control characters"),
    ] {
        let (status, body) = server
            .send_as(
                Method::PUT,
                &format!("/api/v1/budgets/{name}"),
                "default",
                Some(bad),
            )
            .await;
        assert_eq!(status, want, "{bad}: {body}");
        assert!(body["error"].to_string().contains(says), "{bad}: {body}");
    }
    let (status, body) = server
        .send_as(
            Method::DELETE,
            "/api/v1/budgets/toml-month",
            "default",
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server
        .send_as(Method::DELETE, "/api/v1/budgets/api-cost", "other", None)
        .await;
    assert_eq!(status, 404, "another project removes nothing: {body}");
    let (body, rows) = listed(&server, "default").await;
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["toml-month", "api-cost"], "{body}");
    assert_eq!(
        (&rows[0].1, &rows[0].2),
        (&json!("loupe.toml"), &json!(false))
    );
    assert_eq!((&rows[1].1, &rows[1].2), (&json!("console"), &json!(true)));
    assert_eq!(body["channels"], json!(["hook"]), "{body}");
    assert!(
        listed(&server, "other").await.1.is_empty(),
        "another project sees none"
    );
    // loupe.toml's budgets are its project's: another project may use the
    // name, and learns nothing of them.
    let (status, body) = server
        .send_as(
            Method::PUT,
            "/api/v1/budgets/toml-month",
            "other",
            Some(r#"{"amount": 5}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server
        .send_as(Method::DELETE, "/api/v1/budgets/toml-month", "other", None)
        .await;
    assert_eq!(status, 204);

    // Notices: once per threshold, through the channel.
    assert_eq!(server.post_otlp(llm_call(1, "0.6")).await.status(), 200);
    let first = wait_for_notices_of(&hits, "api-cost", 1).await;
    assert!(first[0].to_string().contains("50%"), "{first:#?}");
    assert_eq!(server.post_otlp(llm_call(2, "0.6")).await.status(), 200);
    let both = wait_for_notices_of(&hits, "api-cost", 2).await;
    assert!(both[1].to_string().contains("100%"), "{both:#?}");

    // A third threshold: what was sent stays sent, the new one fires.
    let (status, body) = put(
        "api-cost",
        r#"{"amount": 1.0, "period": "month", "thresholds": [0.5, 1.0, 1.5], "notify": ["hook"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["created"], false, "{body}");
    assert_eq!(server.post_otlp(llm_call(3, "0.6")).await.status(), 200);
    let three = wait_for_notices_of(&hits, "api-cost", 3).await;
    assert!(three[2].to_string().contains("150%"), "{three:#?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(notices_of(&hits, "api-cost").len(), 3, "once per threshold");
    server.stop();

    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        notices_of(&hits, "api-cost").len(),
        3,
        "a restart does not repeat them"
    );
    let (body, rows) = listed(&server, "default").await;
    assert_eq!(rows[1].0, "api-cost", "{body}");
    assert_eq!(rows[1].3, json!({"": [0.5, 1.0, 1.5]}), "{body}");
    let spent = body["budgets"][1]["spent"][0]["spent"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((spent - 1.8).abs() < 1e-9, "{body}");

    // A new amount counts afresh: what fired resolves, and 1.8 of 10 is
    // below every threshold, until more is spent.
    let (status, body) = server
        .send_as(
            Method::PUT,
            "/api/v1/budgets/api-cost",
            "default",
            Some(r#"{"amount": 10.0, "period": "month", "notify": ["hook"]}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (body, rows) = listed(&server, "default").await;
    assert_eq!(rows[1].3, json!({}), "nothing notified: {body}");
    let four = wait_for_notices_of(&hits, "api-cost", 4).await;
    assert!(
        four[3].to_string().contains("removed or changed"),
        "{four:#?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(notices_of(&hits, "api-cost").len(), 4, "{body}");
    // After the restart the checker still runs: 8.3 of 10 is 80 %.
    assert_eq!(server.post_otlp(llm_call(4, "6.5")).await.status(), 200);
    let five = wait_for_notices_of(&hits, "api-cost", 5).await;
    assert!(five[4].to_string().contains("80%"), "{five:#?}");

    let (status, _) = server
        .send_as(Method::DELETE, "/api/v1/budgets/api-cost", "default", None)
        .await;
    assert_eq!(status, 204);
    // Removed: its firing alert resolves.
    let six = wait_for_notices_of(&hits, "api-cost", 6).await;
    assert!(
        six[5].to_string().contains("removed or changed"),
        "{six:#?}"
    );
    let (status, _) = server
        .send_as(Method::DELETE, "/api/v1/budgets/api-cost", "default", None)
        .await;
    assert_eq!(status, 404);
    let (body, rows) = listed(&server, "default").await;
    assert_eq!(rows.len(), 1, "{body}");

    // The CLI does the same through the API.
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args(["analytics", "budgets"])
            .args(args)
            .args(["--server", &server.http])
            .output()
            .expect("run loupe analytics budgets")
    };
    let out = cli(&[
        "set",
        "客服 月度",
        "--amount",
        "2",
        "--filter",
        "app_name=Shop",
        "--per",
        "user",
        "--thresholds",
        "50,100",
        "--notify",
        "hook",
    ]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("added"));
    let (body, _) = listed(&server, "default").await;
    let added = &body["budgets"][1]["budget"];
    assert_eq!(
        (
            &added["name"],
            &added["filter"],
            &added["per"],
            &added["thresholds"]
        ),
        (
            &json!("客服 月度"),
            &json!({"app_name": "Shop"}),
            &json!("user"),
            &json!([0.5, 1.0])
        ),
        "{body}"
    );
    let out = cli(&["list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && table.contains("客服 月度")
            && table.contains("console")
            && table.contains("toml-month"),
        "{table}"
    );
    let out = cli(&["set", "x", "--amount", "1", "--notify", "nowhere"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nowhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["remove", "客服 月度"]);
    assert_ok(&out);
    assert_eq!(listed(&server, "default").await.1.len(), 1);
    server.stop();
    let kept: Value = serde_json::from_slice(
        &std::fs::read(data.join("budget-rules.json")).expect("budget-rules.json"),
    )
    .expect("json");
    assert_eq!(kept["budgets"], json!([]), "{kept}");
}
