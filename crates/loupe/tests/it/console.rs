//! The web console in a real browser: Debian's chromium, driven headless by
//! playwright-core (`crates/console/tests/console.test.mjs`), against a real
//! `loupe serve` holding the recorded Dify 1.14.1 traffic, generated runs
//! and a 2,000-span run. Checks that every page renders without console
//! errors, the failed run's waterfall and error, that the query bar and a
//! chart click give exactly the API's rows, export, both languages, and
//! (keys enforced) sign-in and that project A's key never sees project B.
//!
//! chromium and playwright-core come from `scripts/peers/chromium.sh`
//! (`LOUPE_TEST_CHROMIUM`, `LOUPE_TEST_NODE_MODULES`); a missing one fails
//! the test and names the script.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, encode, fixtures, otel_span, request};

const FAILED: &str = "dify-1.14.1/dify_langfuse_workflow_failed_http.json";
const SUCCESS: &str = "dify-1.14.1/dify_langfuse_workflow_success_http_branch.json";

fn env_or_fail(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: the console tests need Debian's chromium and playwright-core; \
             run `eval \"$(bash scripts/peers/chromium.sh)\"` first (scripts/test.sh does)"
        ),
    }
}

fn capture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Replays a recorded Langfuse capture, with a key or openly.
async fn replay(server: &Server, file: &str, key: Option<(&str, &str)>) {
    for req in capture(file)["requests"].as_array().expect("requests") {
        let mut r = server
            .client
            .post(format!("{}/api/public/ingestion", server.http))
            .json(&req["body"]);
        if let Some((pk, sk)) = key {
            r = r.basic_auth(pk, Some(sk));
        }
        let resp = r.send().await.expect("ingest");
        assert_eq!(resp.status().as_u16(), 207, "{file}");
    }
}

fn loupe(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .output()
        .expect("run loupe");
    assert!(
        out.status.success(),
        "loupe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn create_key(data_dir: &Path, project: &str) -> (String, String) {
    let dir = data_dir.to_str().expect("utf-8 path");
    let out = loupe(&[
        "keys",
        "create",
        "--json",
        "--project",
        project,
        "--scope",
        "admin",
        "--data-dir",
        dir,
    ]);
    let v: Value = serde_json::from_slice(&out).expect("keys create JSON");
    let s = |k: &str| v[k].as_str().expect("key field").to_owned();
    (s("public_key"), s("secret_key"))
}

/// A run of 2,000 spans: a root, 37 iterations of 53 steps each, and a
/// last node under the root.
async fn big_run(server: &Server) -> (String, usize, String) {
    let trace: u128 = 0x10ad_2000;
    let mut spans = vec![otel_span(
        trace,
        1,
        None,
        "bulk workflow",
        &[("openinference.span.kind", "CHAIN")],
    )];
    for i in 1..=37u64 {
        let it = 1000 * i;
        spans.push(otel_span(
            trace,
            it,
            Some(1),
            &format!("iteration {i}"),
            &[("openinference.span.kind", "CHAIN")],
        ));
        for j in 1..=53u64 {
            spans.push(otel_span(
                trace,
                it + j,
                Some(it),
                &format!("step {i}.{j}"),
                &[("openinference.span.kind", "TOOL"), ("tool.name", "lookup")],
            ));
        }
    }
    // A large prompt: the console gets it cut and loads it on demand.
    let prompt = "lorem ipsum dolor sit amet ".repeat(1_700);
    spans.push(otel_span(
        trace,
        999_999,
        Some(1),
        "answer",
        &[
            ("openinference.span.kind", "LLM"),
            ("input.value", prompt.as_str()),
        ],
    ));
    let total = spans.len();
    assert_eq!(total, 2000);
    while !spans.is_empty() {
        let chunk: Vec<_> = spans.drain(..spans.len().min(500)).collect();
        let resp = server.post_otlp(encode(&request(chunk))).await;
        assert_eq!(resp.status().as_u16(), 200);
    }
    (format!("{trace:032x}"), total, "answer".to_owned())
}

fn node_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../console/tests/console.test.mjs")
}

/// Runs the browser checks with `config`; panics with their output on failure.
async fn browser(config: Value) {
    env_or_fail("LOUPE_TEST_CHROMIUM");
    env_or_fail("LOUPE_TEST_NODE_MODULES");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(node_script())
        .env("LOUPE_CONSOLE_TEST", config.to_string())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the browser checks finish within 300 s")
        .expect("run node (Node.js 20 or later must be installed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("console: all checks passed"), "{stdout}");
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn first_value(server: &Server, q: &str) -> String {
    let resp = server
        .client
        .post(format!("{}/api/v1/query", server.http))
        .json(&json!({ "q": q }))
        .send()
        .await
        .expect("query");
    let body: Value = resp.json().await.expect("json");
    body["rows"][0][0]
        .as_str()
        .unwrap_or_else(|| panic!("{q}: {body}"))
        .to_owned()
}

#[tokio::test]
async fn the_console_is_served_with_types_cache_headers_and_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    let get = |path: &str| {
        let url = format!("{}{path}", server.http);
        let client = server.client.clone();
        async move { client.get(url).send().await.expect("get") }
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    // Deep links answer the page; the page names versioned assets.
    let mut asset_base = String::new();
    for path in [
        "/",
        "/runs",
        "/runs/abc-123",
        "/sessions/s1",
        "/users/u1",
        "/alerts",
        "/dify",
        "/settings",
        "/login",
    ] {
        let r = get(path).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&r, "cache-control"), "no-cache");
        assert!(header(&r, "content-security-policy").contains("script-src 'self'"));
        let html = r.text().await.expect("html");
        let at = html.find("/assets/").expect("asset base");
        let url = html[at..].split('"').next().expect("quoted URL");
        asset_base = url
            .rsplit_once('/')
            .expect("a file in the base")
            .0
            .to_owned();
        assert!(html.contains(&format!("{asset_base}/app.js")), "{html}");
    }
    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("pages/run.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = get(&format!("{asset_base}/{file}")).await;
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(header(&r, "content-type"), ty, "{file}");
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        let etag = header(&r, "etag");
        let again = server
            .client
            .get(format!("{}{asset_base}/{file}", server.http))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("revalidate");
        assert_eq!(again.status().as_u16(), 304, "{file}");
    }
    // An old version's URL still works but is not cached under that name.
    let old = get("/assets/000000000000/app.js").await;
    assert_eq!(old.status().as_u16(), 200);
    assert_eq!(header(&old, "cache-control"), "no-cache");
    assert_eq!(
        get(&format!("{asset_base}/nope.js"))
            .await
            .status()
            .as_u16(),
        404
    );
    assert_eq!(get("/nowhere").await.status().as_u16(), 404);

    // Open mode: no sign-in needed.
    let (status, who) = server.get_json("/api/v1/session").await;
    assert_eq!(status, 200);
    assert_eq!(who["enforced"], false);
    assert_eq!(who["authenticated"], true);

    // Once a key exists: a wrong key is a 401, a right one sets the cookie,
    // the cookie reads the key's project, sign-out ends it.
    let (pk, sk) = create_key(&data, "alpha");
    let login = |body: Value| {
        let client = server.client.clone();
        let url = format!("{}/api/v1/session", server.http);
        async move { client.post(url).json(&body).send().await.expect("login") }
    };
    let bad = login(json!({"public_key": pk, "secret_key": "sk-lf-nope"})).await;
    assert_eq!(bad.status().as_u16(), 401);
    let bad_body = login(json!({"secret": sk})).await;
    assert_eq!(bad_body.status().as_u16(), 400);
    let ok = login(json!({"secret_key": sk})).await;
    assert_eq!(ok.status().as_u16(), 200);
    let set = header(&ok, "set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("cookie").to_owned();
    let with_cookie = |path: &str| {
        server
            .client
            .get(format!("{}{path}", server.http))
            .header("cookie", &cookie)
            .send()
    };
    let who: Value = with_cookie("/api/v1/session")
        .await
        .expect("who")
        .json()
        .await
        .expect("json");
    assert_eq!(who["project"], "alpha", "{who}");
    assert_eq!(who["via"], "session");
    let spans = with_cookie("/api/v1/spans?limit=1").await.expect("spans");
    assert_eq!(spans.status().as_u16(), 200);
    // Changing state on the cookie needs the console header.
    let query = |console: bool| {
        let mut r = server
            .client
            .post(format!("{}/api/v1/query", server.http))
            .header("cookie", &cookie)
            .json(&json!({"q": "last 1h | count()"}));
        if console {
            r = r.header("x-loupe-console", "1");
        }
        r.send()
    };
    assert_eq!(query(false).await.expect("q").status().as_u16(), 403);
    assert_eq!(query(true).await.expect("q").status().as_u16(), 200);
    let out = server
        .client
        .delete(format!("{}/api/v1/session", server.http))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status().as_u16(), 204);
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    let gone = with_cookie("/api/v1/spans?limit=1").await.expect("spans");
    assert_eq!(gone.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_shows_runs_waterfalls_and_dashboards() {
    env_or_fail("LOUPE_TEST_CHROMIUM");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    // A webhook the console's channel test reaches, and one that is down.
    let hits = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook = capture_webhook(hits.clone()).await;
    std::fs::write(
        &config,
        format!("[[tags]]\nname = \"category\"\nfrom = \"input\"\npath = \"category\"\n\n\
         [[tags]]\nname = \"channel\"\nfrom = \"input\"\npath = \"channel\"\n\n[metrics]\nlabels = [\"category\"]\n\n\
         [dify]\nweb_url = \"https://dify.example.com\"\n\n\
         [alerts]\nenabled = true\ninterval = \"1s\"\n\n\
         [[alerts.channels]]\nname = \"ops-hook\"\ntype = \"webhook\"\nurl = \"{hook}\"\nretries = 0\n\n\
         [[alerts.channels]]\nname = \"dead-hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/down\"\nretries = 0\ntimeout = \"2s\"\n\n\
         [[alerts.rules]]\nname = \"inventory-failing\"\nproject = \"default\"\nmetric = \"failure_rate\"\nthreshold = \"10%\"\nwindow = \"3h\"\n\
         severity = \"critical\"\nsummary = \"Inventory tool failing\"\nfilters = {{ tool_name = \"inventory\" }}\n\n\
         [[alerts.rules]]\nname = \"never-slow\"\nproject = \"default\"\nmetric = \"p95_latency\"\nthreshold = \"500s\"\nwindow = \"1h\"\n\
         filters = {{ span_kind = \"workflow\" }}\n\n\
         [[budgets]]\nname = \"llm-month\"\namount = 5.0\n"),
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    for file in [
        FAILED,
        SUCCESS,
        "dify-1.14.1/dify_langfuse_workflow_success_aggregator_branch.json",
        "dify-1.14.1/dify_langfuse_workflow_success_streaming_mode.json",
    ] {
        replay(&server, file, None).await;
    }
    // A day of generated runs, the inventory tool failing often.
    let now = chrono::Utc::now();
    crate::support::run_gen(&[
        "--otlp",
        &server.http,
        "--runs",
        "600",
        "--days",
        "1",
        "--fault",
        "tool=inventory,error_rate=0.7",
    ]);
    let (big, big_spans, big_last) = big_run(&server).await;
    // A run whose parent links form a loop (bad input from some sender).
    let looped: u128 = 0x10ad_3000;
    let resp = server
        .post_otlp(encode(&request(vec![
            // Span ids are unique per project: these differ from the big run's.
            otel_span(looped, 7_000_001, Some(7_000_002), "loop a", &[]),
            otel_span(looped, 7_000_002, Some(7_000_001), "loop b", &[]),
            otel_span(looped, 7_000_003, Some(7_000_001), "under a", &[]),
        ])))
        .await;
    assert_eq!(resp.status().as_u16(), 200);

    let failed_run = capture(FAILED)["workflow_run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let (status, trace) = server
        .get_json(&format!("/api/v1/traces/{failed_run}"))
        .await;
    assert_eq!(status, 200, "{trace}");
    // A log line of the failed run (Dify's JSON log, by its run id), shown
    // in the run view and on the log search page.
    let log_line = "plugin daemon: connection refused while calling the HTTP node";
    let bulk = format!(
        "{{\"index\":{{\"_index\":\"dify-api\"}}}}\n{}\n",
        json!({"severity": "ERROR", "service": "api", "message": log_line,
               "attributes": {"workflow_run_id": failed_run}})
    );
    let resp = server
        .client
        .post(format!("{}/es/_bulk", server.http))
        .header("content-type", "application/x-ndjson")
        .body(bulk)
        .send()
        .await
        .expect("bulk");
    assert_eq!(resp.status().as_u16(), 200);
    let nodes: Vec<String> = trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (from, to) = (
        rfc3339(now - chrono::Duration::days(2)),
        rfc3339(now + chrono::Duration::hours(1)),
    );
    let window = format!("from {from} to {to}");
    let user = first_value(
        &server,
        &format!("span_kind=workflow user_id exists {window} | by user_id | count() as n | sort n desc | limit 1"),
    )
    .await;
    let session = first_value(
        &server,
        &format!("span_kind=workflow session_id exists {window} | by session_id | count() as n | sort n desc | limit 1"),
    )
    .await;

    browser(json!({
        "mode": "open",
        "url": server.http,
        "from": from,
        "to": to,
        "failedRun": failed_run,
        "failedNodes": nodes,
        "failingNode": "HTTP Request",
        "failingError": "[Errno 111] Connection refused",
        "logLine": log_line,
        "bigRun": big,
        "bigRunSpans": big_spans,
        "bigRunLast": big_last,
        "loopRun": format!("{looped:032x}"),
        "user": user,
        "session": session,
    }))
    .await;
    // The console's channel test reached the webhook (the rule made in the
    // console notifies it too).
    let got = hits.lock().expect("lock").clone();
    assert_eq!(
        got.iter().filter(|b| b.contains("loupe-test")).count(),
        1,
        "{got:?}"
    );
}

/// An HTTP server on 127.0.0.1 that records every body it is sent.
async fn capture_webhook(hits: Arc<Mutex<Vec<String>>>) -> String {
    async fn hook(
        axum::extract::State(hits): axum::extract::State<Arc<Mutex<Vec<String>>>>,
        body: String,
    ) -> &'static str {
        hits.lock().expect("lock").push(body);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_a_key_and_keeps_projects_apart() {
    env_or_fail("LOUPE_TEST_CHROMIUM");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let (a_pk, a_sk) = create_key(&data, "alpha");
    let (b_pk, b_sk) = create_key(&data, "beta");
    let server = Server::start(&data, &[]).await;
    replay(&server, FAILED, Some((&a_pk, &a_sk))).await;
    replay(&server, SUCCESS, Some((&b_pk, &b_sk))).await;
    let run = |file: &str| {
        capture(file)["workflow_run_id"]
            .as_str()
            .expect("run id")
            .to_owned()
    };
    // Without a key the API refuses; the console's page itself is public.
    let resp = server
        .client
        .get(format!("{}/api/v1/traces/{}", server.http, run(FAILED)))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    let page = server
        .client
        .get(format!("{}/runs/{}", server.http, run(FAILED)))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(!html.contains(&run(FAILED)), "the page holds no data");

    browser(json!({
        "mode": "auth",
        "url": server.http,
        "a": {"public": a_pk, "secret": a_sk, "run": run(FAILED)},
        "b": {"run": run(SUCCESS), "public": b_pk},
    }))
    .await;
}
