//! Issue 14's security half against the real binary: key scopes (the key
//! pasted into Dify sends and passes Dify's key check but reads nothing),
//! alerting per project, failing closed when `keys.json` is lost, and open
//! mode's loopback, `Host`, `Origin` and content-type checks.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Server, assert_ok, encode, fixtures, otel_span, request};

/// `loupe keys create --scope …`: (public key, secret key).
pub fn create_key(data_dir: &Path, project: &str, scope: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "keys",
            "create",
            "--json",
            "--project",
            project,
            "--scope",
            scope,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run loupe keys create");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("keys create prints JSON");
    assert_eq!(v["scope"], scope);
    let s = |k: &str| v[k].as_str().expect("key field").to_owned();
    (s("public_key"), s("secret_key"))
}

fn capture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Sends a request with a Basic key pair; returns (status, body text).
async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: &(String, String),
    body: Option<Value>,
) -> (u16, String) {
    let mut req = server
        .client
        .request(method, format!("{}{path}", server.http))
        .basic_auth(&key.0, Some(&key.1));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("send");
    (
        resp.status().as_u16(),
        resp.text().await.expect("body text"),
    )
}

fn otlp_body(id: u64) -> Vec<u8> {
    encode(&request(vec![otel_span(
        u128::from(id),
        id,
        None,
        "scoped",
        &[],
    )]))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ingest_key_sends_and_passes_difys_key_check_but_reads_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let ingest = create_key(data, "shop", "ingest");
    let read = create_key(data, "shop", "read");
    let admin = create_key(data, "shop", "admin");
    let server = Server::start(data, &[]).await;
    use reqwest::Method;

    // Dify's Langfuse provider: the key check (recorded: GET
    // /api/public/projects, twice), then its ingestion batches.
    let check = capture("dify-1.14.1/dify_langfuse_auth_check.json");
    for r in check["requests"].as_array().expect("requests") {
        let path = r["path"].as_str().expect("path");
        let (status, body) = call(&server, Method::GET, path, &ingest, None).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["data"][0]["id"], "shop", "{v}");
    }
    let (status, _) = call(&server, Method::GET, "/api/public/health", &ingest, None).await;
    assert_eq!(status, 200);
    let run = capture("dify-1.14.1/dify_langfuse_workflow_success_http_branch.json");
    for r in run["requests"].as_array().expect("requests") {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/public/ingestion",
            &ingest,
            Some(r["body"].clone()),
        )
        .await;
        assert_eq!(status, 207, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["errors"], json!([]), "{v}");
    }
    let otlp = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .bearer_auth(&ingest.1)
        .body(otlp_body(1))
        .send()
        .await
        .expect("otlp");
    assert_eq!(otlp.status().as_u16(), 200);

    // The same key reads nothing and changes nothing: 403 naming the scope.
    let trace_id = run["workflow_run_id"].as_str().expect("run id");
    let reads = [
        (Method::GET, format!("/api/public/traces/{trace_id}"), None),
        (Method::GET, "/api/public/traces".to_owned(), None),
        (Method::GET, "/api/public/observations".to_owned(), None),
        (Method::GET, format!("/api/v1/traces/{trace_id}"), None),
        (Method::GET, "/api/v1/spans".to_owned(), None),
        (Method::GET, "/api/v1/users/probe-user-1".to_owned(), None),
        (Method::GET, "/metrics".to_owned(), None),
        (
            Method::POST,
            "/api/v1/query".to_owned(),
            Some(json!({"q": "count()"})),
        ),
        (
            Method::POST,
            "/api/v1/sql".to_owned(),
            Some(json!({"sql": "select input from spans"})),
        ),
        (Method::GET, "/api/v1/alerts/rules".to_owned(), None),
    ];
    for (method, path, body) in reads {
        let (status, text) = call(&server, method.clone(), &path, &ingest, body).await;
        assert_eq!(status, 403, "{method} {path}: {text}");
        assert!(
            text.contains("scope is `ingest`") && text.contains("`read`"),
            "{text}"
        );
        assert!(!text.contains("hello langfuse"), "{text}");
    }
    let rule = json!({"name": "r", "metric": "count", "threshold": 1});
    let (status, text) = call(
        &server,
        Method::POST,
        "/api/v1/alerts/rules",
        &ingest,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("`admin`"), "{text}");
    // An ingest key cannot sign in to the console either.
    let login = server
        .client
        .post(format!("{}/api/v1/session", server.http))
        .json(&json!({"public_key": ingest.0, "secret_key": ingest.1}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status().as_u16(), 403);

    // A read key reads, but neither sends nor changes alerting.
    let (status, text) = call(
        &server,
        Method::GET,
        &format!("/api/public/traces/{trace_id}"),
        &read,
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("hello langfuse"), "{text}");
    let otlp = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .basic_auth(&read.0, Some(&read.1))
        .body(otlp_body(2))
        .send()
        .await
        .expect("otlp");
    assert_eq!(otlp.status().as_u16(), 403);
    assert!(
        otlp.text().await.expect("text").contains("`ingest`"),
        "names the scope"
    );
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/alerts/rules",
        &read,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 403);

    // An admin key does all of it.
    let (status, text) = call(
        &server,
        Method::POST,
        "/api/v1/alerts/rules",
        &admin,
        Some(rule),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = call(
        &server,
        Method::POST,
        "/api/v1/query",
        &admin,
        Some(json!({"q": "count()"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn alerting_belongs_to_a_project() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let marker = dir.path().join("action-ran");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\ninterval = '1s'\n\
             [[alerts.actions]]\nname = 'restart'\ntype = 'command'\ncommand = ['touch', '{}']\n",
            marker.display()
        ),
    )
    .expect("config");
    let a = create_key(&data, "a", "admin");
    let b = create_key(&data, "b", "admin");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    use reqwest::Method;
    let rule = |name: &str, extra: Value| {
        let mut r = json!({"name": name, "metric": "count", "threshold": 0, "op": ">="});
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    };
    let (status, text) = call(
        &server,
        Method::POST,
        "/api/v1/alerts/rules",
        &a,
        Some(rule("a-rule", json!({}))),
    )
    .await;
    assert_eq!(status, 201, "{text}");

    // b sees none of a's, cannot delete it, and may use the same name.
    let (_, text) = call(&server, Method::GET, "/api/v1/alerts/rules", &b, None).await;
    let rules: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(rules["rules"], json!([]), "{rules}");
    let (status, _) = call(
        &server,
        Method::DELETE,
        "/api/v1/alerts/rules/a-rule",
        &b,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, text) = call(
        &server,
        Method::POST,
        "/api/v1/alerts/rules",
        &b,
        Some(rule("a-rule", json!({}))),
    )
    .await;
    assert_eq!(status, 201, "{text}");

    // A rule cannot reach another project's data, nor run a command action.
    for (body, needle) in [
        (
            rule("peek", json!({"filters": {"project": "a"}})),
            "outside the rule's project",
        ),
        (
            rule("peek2", json!({"project": "a"})),
            "not this key's project",
        ),
        (rule("run", json!({"actions": ["restart"]})), "config file"),
    ] {
        let (status, text) = call(
            &server,
            Method::POST,
            "/api/v1/alerts/rules",
            &b,
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(needle), "{text}");
    }

    // A silence needs a positive matcher, and is its project's only.
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for matchers in [
        json!({"alertname": "!__none__"}),
        json!({"alertname": ""}),
        json!({}),
    ] {
        let (status, text) = call(
            &server,
            Method::POST,
            "/api/v1/alerts/silences",
            &b,
            Some(json!({"matchers": matchers, "ends_at": ends})),
        )
        .await;
        assert_eq!(status, 400, "{matchers}: {text}");
        assert!(text.contains("positive matcher"), "{text}");
    }
    let (status, text) = call(
        &server,
        Method::POST,
        "/api/v1/alerts/silences",
        &a,
        Some(json!({"matchers": {"alertname": "a-rule"}, "ends_at": ends})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<Value>(&text).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, text) = call(&server, Method::GET, "/api/v1/alerts/silences", &b, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["silences"],
        json!([])
    );
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/alerts/silences/{id}"),
        &b,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Both projects' `count >= 0` rules fire; each key sees its own alert,
    // whichever project made the rule of that name first.
    let probe = async |key: &(String, String)| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, text) = call(&server, Method::GET, "/api/v1/alerts", key, None).await;
            let v: Value = serde_json::from_str(&text).expect("json");
            let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
            if alerts.iter().any(|x| x["phase"] == "firing") {
                return alerts;
            }
            assert!(std::time::Instant::now() < deadline, "no firing alert: {v}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    for (key, project) in [(&a, "a"), (&b, "b")] {
        let alerts = probe(key).await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["project"], project, "{alerts:?}");
    }
    assert!(!marker.exists(), "no API rule ran the command action");
    server.stop();
}

fn serve_output(data: &Path, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // A refusal exits at once; give up (and kill) after 20 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.success(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (true, "still running".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_keys_file_is_an_error_at_start_not_open_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let _key = create_key(data, "shop", "admin");
    std::fs::remove_file(data.join("keys.json")).expect("lose keys.json");
    let (ok, err) = serve_output(
        data,
        &["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"],
    );
    assert!(!ok, "serve must refuse to start: {err}");
    assert!(
        err.contains("keys.json")
            && err.contains("keys existed")
            && err.contains("mode = \"open\""),
        "{err}"
    );
    // Emptied instead of deleted: the same.
    std::fs::write(data.join("keys.json"), r#"{"version":1,"keys":[]}"#).expect("empty");
    let (ok, err) = serve_output(
        data,
        &["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"],
    );
    assert!(!ok && err.contains("keys existed"), "{err}");

    // Chosen explicitly, open mode runs (on loopback).
    let server = Server::start(data, &["--auth-mode", "open"]).await;
    let (status, _) = server.get_json("/api/v1/spans").await;
    assert_eq!(status, 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn open_mode_is_loopback_only_and_refuses_cross_site_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // No key, listening on every interface: refused.
    let (ok, err) = serve_output(
        &data,
        &["--http-addr", "0.0.0.0:0", "--grpc-addr", "127.0.0.1:0"],
    );
    assert!(!ok, "{err}");
    assert!(err.contains("not a loopback address"), "{err}");

    let server = Server::start(&data, &[]).await;
    let ingestion = format!("{}/api/public/ingestion", server.http);
    let batch = json!({"batch": [{
        "id": "e1", "type": "trace-create",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "body": {"id": "csrf-trace", "name": "planted"}
    }]})
    .to_string();
    // What a web page can send without a preflight: text/plain, forms.
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = server
            .client
            .post(&ingestion)
            .header("content-type", ct)
            .header("origin", "http://evil.example")
            .body(batch.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 403, "{ct}");
        let r = server
            .client
            .post(&ingestion)
            .header("content-type", ct)
            .body(batch.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 415, "{ct}");
    }
    // DNS rebinding: a page on evil.example resolved to 127.0.0.1.
    let r = server
        .client
        .get(format!("{}/api/v1/spans", server.http))
        .header("host", "evil.example:4318")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 403);
    let (status, body) = server.get_json("/api/v1/traces/csrf-trace").await;
    assert_eq!(status, 404, "nothing was planted: {body}");

    // The real clients still work: JSON from curl-likes, the console page.
    let r = server
        .client
        .post(&ingestion)
        .header("content-type", "application/json")
        .body(batch)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 207);
    let page = server
        .client
        .get(format!("{}/", server.http))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_is_refused_by_the_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let ingest = create_key(data, "shop", "ingest");
    let admin = create_key(data, "shop", "admin");
    let server = Server::start(data, &[]).await;
    let loupe = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .output()
            .expect("run loupe")
    };
    let list = loupe(&["keys", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        text.contains(&format!("shop\t{}\tingest", ingest.0)),
        "{text}"
    );
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        "/api/public/projects",
        &ingest,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let out = loupe(&["keys", "revoke", &ingest.0]);
    assert_ok(&out);
    let out = loupe(&["keys", "revoke", "pk-lf-unknown"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key"));
    // The server re-reads keys.json at most once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = call(
            &server,
            reqwest::Method::GET,
            "/api/public/projects",
            &ingest,
            None,
        )
        .await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key is still accepted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _) = call(
        &server,
        reqwest::Method::GET,
        "/api/public/projects",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    server.stop();
}
