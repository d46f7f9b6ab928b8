//! Test support: start/stop `loupe serve`, wait for readiness, build OTLP
//! requests, read the shared fixtures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;

/// Fails the test, with the command's status and stderr, unless it
/// exited successfully.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "loupe failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key pair made by `loupe keys create`.
pub struct Key {
    pub public: String,
    pub secret: String,
}

/// Creates a key of `project` with `scope` in `data_dir` (before the server
/// opens it).
pub fn create_key(data_dir: &Path, project: &str, scope: &str) -> Key {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["keys", "create", "--json", "--project", project])
        .args(["--scope", scope, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run loupe keys create");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("keys create prints JSON");
    Key {
        public: v["public_key"].as_str().expect("public").to_owned(),
        secret: v["secret_key"].as_str().expect("secret").to_owned(),
    }
}

/// The shared fixture directory (the checkout sits beside `shared/`).
pub fn fixtures() -> PathBuf {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../../shared/fixtures");
    assert!(
        dir.is_dir(),
        "fixtures not found at {}: the checkout must sit beside shared/",
        dir.display()
    );
    dir
}

pub use loupe_fsutil::ports::free_port;

/// Runs `loupe gen` with `args` (after the subcommand); fails the test,
/// with its stderr, when it fails.
pub fn run_gen(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("gen")
        .args(args)
        .output()
        .expect("run loupe gen");
    assert!(
        out.status.success(),
        "loupe gen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `loupe serve`.
pub struct Server {
    child: Option<Child>,
    pub http: String,
    pub grpc: String,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts a server on `data_dir` with extra CLI args and waits for /readyz.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_config(data_dir, extra, None).await
    }

    /// As `start`, with a config file.
    pub async fn start_with_config(
        data_dir: &Path,
        extra: &[&str],
        config: Option<&Path>,
    ) -> Server {
        Self::launch(data_dir, extra, config, "http", reqwest::Client::new()).await
    }

    /// As `start_with_config`, with environment variables for the child.
    pub async fn start_with_env(
        data_dir: &Path,
        config: Option<&Path>,
        envs: &[(&str, &str)],
    ) -> Server {
        Self::launch_env(data_dir, &[], config, "http", reqwest::Client::new(), envs).await
    }

    /// As `start`, serving TLS (the caller passes `--tls-cert`/`--tls-key`
    /// in `extra`); `client` must trust the certificate.
    pub async fn start_tls(data_dir: &Path, extra: &[&str], client: reqwest::Client) -> Server {
        Self::launch(data_dir, extra, None, "https", client).await
    }

    /// As `start_tls`, the TLS settings in a config file (`[server.tls]`).
    pub async fn start_tls_with_config(
        data_dir: &Path,
        config: &Path,
        client: reqwest::Client,
    ) -> Server {
        Self::launch(data_dir, &[], Some(config), "https", client).await
    }

    async fn launch(
        data_dir: &Path,
        extra: &[&str],
        config: Option<&Path>,
        scheme: &str,
        client: reqwest::Client,
    ) -> Server {
        Self::launch_env(data_dir, extra, config, scheme, client, &[]).await
    }

    async fn launch_env(
        data_dir: &Path,
        extra: &[&str],
        config: Option<&Path>,
        scheme: &str,
        client: reqwest::Client,
        envs: &[(&str, &str)],
    ) -> Server {
        // A child that exits before it is ready (a port taken between
        // `free_port` and its bind) is started again on other ports.
        let mut last = None;
        for _ in 0..3 {
            let (http_addr, grpc_addr) = (
                format!("127.0.0.1:{}", free_port()),
                format!("127.0.0.1:{}", free_port()),
            );
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_loupe"));
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--http-addr", &http_addr, "--grpc-addr", &grpc_addr])
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            if let Some(c) = config {
                cmd.arg("--config").arg(c);
            }
            cmd.envs(envs.iter().copied());
            let child = cmd.spawn().expect("spawn loupe");
            let mut server = Server {
                child: Some(child),
                http: format!("{scheme}://{http_addr}"),
                grpc: format!("{scheme}://{grpc_addr}"),
                client: client.clone(),
            };
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(status) => last = Some(status),
            }
        }
        panic!(
            "loupe exited before it was ready, three times (last: {last:?}; its stderr is above)"
        )
    }

    /// Polls /readyz until it answers, the child exits (its status is
    /// returned) or 60 s pass (a panic).
    async fn wait_ready(&mut self) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(status);
            }
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.http))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "loupe did not become ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Sends SIGHUP (reload the TLS certificate).
    pub fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }

    /// SIGKILL: no flush, no WAL sync.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("reap");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        if let Some(mut c) = self.child.take() {
            let code = c.wait().expect("wait");
            assert!(code.success(), "loupe exited with {code}");
        }
    }

    /// POSTs an OTLP protobuf body.
    pub async fn post_otlp(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/traces", self.http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("post")
    }

    /// GET a JSON API path; returns (status, body).
    /// GET as `get_json`, in open mode's project `project`
    /// (`x-loupe-project`).
    pub async fn get_json_as(&self, path: &str, project: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.http))
            .header("x-loupe-project", project)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    /// POST a JSON body in open mode's project `project`; returns
    /// (status, body).
    pub async fn post_json_as(&self, path: &str, project: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.http))
            .header("x-loupe-project", project)
            .json(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    /// Any method with a raw body (`None`: none) in open mode's project
    /// `project`; returns (status, body; `null` when empty).
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        project: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.http))
            .header("x-loupe-project", project);
        if let Some(body) = body {
            r = r
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let r = r.send().await.expect("send");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, value)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json body"))
    }

    /// The `/metrics` body (no key needed: tests serve openly).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The spans of trace or run `id` in `project`, once the API finds it
    /// (a sync or an ingest still in flight); fails after 60 s.
    pub async fn wait_for_trace(&self, id: &str, project: &str) -> Vec<Value> {
        let path = format!("/api/v1/traces/{id}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get_json_as(&path, project).await;
            if status == 200 {
                return body["spans"].as_array().cloned().unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "{id} never arrived in {project}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every span of the default project, by paging /api/v1/spans.
    pub async fn all_spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/spans?limit=1000&cursor={c}"),
                None => "/api/v1/spans?limit=1000".to_owned(),
            };
            let (status, body) = self.get_json(&path).await;
            assert_eq!(status, 200, "{body}");
            out.extend(body["spans"].as_array().expect("spans").iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// A generic OTel span (ids from numbers, so tests can name them).
pub fn otel_span(
    trace: u128,
    span: u64,
    parent: Option<u64>,
    name: &str,
    attrs: &[(&str, &str)],
) -> Span {
    // Starts within 72 minutes of 2026-11-18T08:53Z whatever the id (high
    // id bits name workers and batches): inside the accepted span time
    // window (`[ingest] max_future_skew`, `max_past`) on any test day after.
    let start = 1_795_000_000_000_000_000u64 + (span & 0xffff_ffff) * 1000;
    Span {
        trace_id: trace.to_be_bytes().to_vec(),
        span_id: span.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 500,
        attributes: attrs.iter().map(|(k, v)| attr(k, v)).collect(),
        status: Some(Status::default()),
        ..Default::default()
    }
}

/// Wraps spans in an export request.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", "e2e")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Protobuf bytes of a request.
pub fn encode(req: &ExportTraceServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

/// Hex span id of a numeric test id.
pub fn hex_id(span: u64) -> String {
    hex::encode(span.to_be_bytes())
}

/// The test S3 server's endpoint; fails (never skips) when the peer is
/// not started.
pub fn s3_endpoint() -> String {
    std::env::var("LOUPE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "LOUPE_TEST_S3_ENDPOINT is not set: run `eval \"$(bash scripts/peers/s3.sh)\"` first"
        )
    })
}

/// An optional peer's address from `var`. Unset outside CI: `None`, and
/// the caller returns early after saying so on stderr (a developer without
/// the peer can still run the rest); unset under `CI`: the test fails,
/// naming the script that starts the peer.
pub fn optional_peer(var: &str, script: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false") => {
            panic!("{var} is not set under CI: run `eval \"$(bash {script})\"` first")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set (start it with `eval \"$(bash {script})\"`)");
            None
        }
    }
}

/// The test PostgreSQL's URL; fails (never skips) when the peer is not
/// started.
pub fn pg_url() -> String {
    std::env::var("LOUPE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "LOUPE_TEST_PG_URL is not set: run `eval \"$(bash scripts/peers/postgres.sh)\"` first"
        )
    })
}

/// A client on `dsn`.
pub async fn pg_client(dsn: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .expect("connect to test postgres");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A fresh database with Dify 1.14.1's tables: (DSN, client).
pub async fn dify_database() -> (String, tokio_postgres::Client) {
    let url = pg_url();
    let admin = pg_client(&url).await;
    let name = format!("loupe_it_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = url.rsplit_once('/').expect("url has a database");
    let dsn = format!("{base}/{name}");
    let db = pg_client(&dsn).await;
    db.batch_execute(loupe_dify::ddl::DIFY_1_14_1)
        .await
        .expect("dify ddl");
    (dsn, db)
}
