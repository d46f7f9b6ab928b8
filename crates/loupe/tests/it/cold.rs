//! The cold tier against real targets: a real S3 server (moto, started by
//! `scripts/peers/s3.sh`) and a directory. A real `loupe serve` moves old
//! parts; the same questions get the same answers before the move, across
//! tiers and after a restart; kill -9 before and after a move's commit
//! loses and duplicates nothing; `loupe export` writes Parquet to S3 and to
//! a directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, assert_ok, encode, otel_span, request, s3_endpoint};

/// 2026-11-18 (the fixed start of `otel_span`): old enough to move with
/// `hot_days = 3` on any test day after 2026-11-22, young enough for the
/// default 30-day retention until 2026-12-17.
const OLD_TRACE_BASE: u128 = 0x0c01d;

/// Where the test's cold tier lives.
enum Tier {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Tier {
    async fn s3(name: &str) -> Tier {
        let bucket = format!(
            "loupe-{name}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let r = reqwest::Client::new()
            .put(format!("{}/{bucket}", s3_endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket: {}", r.status());
        Tier::S3 {
            bucket,
            prefix: "archive/loupe".into(),
        }
    }

    fn toml(&self) -> String {
        match self {
            Tier::Dir(d) => format!(
                "[store.cold]\nurl = {:?}\nhot_days = 3\n",
                d.display().to_string()
            ),
            Tier::S3 { bucket, prefix } => format!(
                "[store.cold]\nurl = \"s3://{bucket}/{prefix}\"\nhot_days = 3\nendpoint = \"{}\"\n\
                 region = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\npath_style = true\n",
                s3_endpoint()
            ),
        }
    }

    /// The object of the part at `rel`, if the tier has it.
    async fn object(&self, rel: &str) -> Option<Vec<u8>> {
        match self {
            Tier::Dir(d) => std::fs::read(d.join(rel)).ok(),
            Tier::S3 { bucket, prefix } => {
                let r = s3_get(&format!("{bucket}/{prefix}/{rel}")).await;
                if r.status().is_success() {
                    Some(r.bytes().await.expect("body").to_vec())
                } else {
                    None
                }
            }
        }
    }
}

/// GETs `path` (bucket/key) from the test S3 server as the test's key
/// (moto checks no signature, but refuses anonymous reads of objects).
async fn s3_get(path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/{path}", s3_endpoint()))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261205/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .send()
        .await
        .expect("get object")
}

fn write_config(dir: &Path, cold: Option<&Tier>) -> PathBuf {
    let path = dir.join(if cold.is_some() {
        "cold.toml"
    } else {
        "hot.toml"
    });
    let mut text = "[store]\nflush_age = \"1s\"\nmaintenance_interval = \"1s\"\n".to_owned();
    if let Some(t) = cold {
        text.push_str(&t.toml());
    }
    std::fs::write(&path, text).expect("config");
    path
}

/// 4 old runs of 50 spans (2026-11-18) and 2 fresh runs (now).
async fn ingest(server: &Server) {
    let now = loupe_model::time::now_ns() as u64;
    for run in 0..6u64 {
        let spans = (0..50u64)
            .map(|i| {
                let id = (run << 32) | (i + 1);
                let name = format!("node{}", i % 7);
                let status = if i % 9 == 0 { "error" } else { "ok" };
                // Texts: the parts keep them in run order (`payloads.rs`).
                let input = format!("input of {id:016x}");
                let mut s = otel_span(
                    OLD_TRACE_BASE + u128::from(run),
                    id,
                    (i > 0).then_some(run << 32 | 1),
                    &name,
                    &[("test.status", status), ("input.value", &input)],
                );
                if run >= 4 {
                    s.start_time_unix_nano = now - 600_000_000_000 + i * 1000;
                    s.end_time_unix_nano = s.start_time_unix_nano + 700;
                }
                s
            })
            .collect();
        let r = server.post_otlp(encode(&request(spans))).await;
        assert!(r.status().is_success(), "ingest: {}", r.status());
    }
}

/// The questions, answered by the server: scans over every part.
async fn answers(server: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for sql in [
        "SELECT span_id, trace_id, name, start_time, input FROM spans ORDER BY span_id",
        "SELECT name, count(*) AS n FROM spans GROUP BY name ORDER BY name",
    ] {
        let (status, body) = server
            .post_json_as("/api/v1/sql", "default", &json!({ "sql": sql }))
            .await;
        assert_eq!(status, 200, "{body}");
        out.push(body["rows"].clone());
    }
    let (status, body) = server
        .post_json_as(
            "/api/v1/query",
            "default",
            &json!({ "q": "last 60d | by name | count()" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    out.push(body["rows"].clone());
    // One old run by id: the id-index path into a (cold) part.
    let trace = format!("{:032x}", OLD_TRACE_BASE + 2);
    let (status, body) = server.get_json(&format!("/api/v1/traces/{trace}")).await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = body["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["span_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    out.push(json!(ids));
    out
}

/// The first row DuckDB answers to `sql` (Python text: `sys.argv[1]` is
/// `glob`), as Python prints it.
fn duckdb_prints(glob: &Path, sql: &str) -> String {
    let python = std::env::var("LOUPE_TEST_DUCKDB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "LOUPE_TEST_DUCKDB_PYTHON is not set: run `eval \"$(bash scripts/peers/duckdb.sh)\"` first"
        )
    });
    let out = Command::new(python)
        .args([
            "-c",
            &format!("import duckdb, sys; print(duckdb.sql(\"{sql}\").fetchall()[0])"),
        ])
        .arg(glob)
        .output()
        .expect("run duckdb");
    assert_ok(&out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn manifest(data: &Path) -> Value {
    let text = std::fs::read(data.join("manifest.json")).expect("manifest");
    serde_json::from_slice(&text).expect("manifest json")
}

/// (relative path, cold?) of every part.
fn parts(data: &Path) -> Vec<(String, bool)> {
    manifest(data)["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| {
            (
                p["path"].as_str().expect("path").to_owned(),
                p["location"] == "cold",
            )
        })
        .collect()
}

fn old_parts(data: &Path) -> Vec<(String, bool)> {
    parts(data)
        .into_iter()
        .filter(|(rel, _)| rel.contains("/2026-11-18/"))
        .collect()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ingests into a hot-only server and records the answers; returns them.
async fn hot_store(data: &Path, dir: &Path) -> Vec<Value> {
    let server = Server::start_with_config(data, &[], Some(&write_config(dir, None))).await;
    ingest(&server).await;
    let before = answers(&server).await;
    assert_eq!(
        before[0].as_array().map(Vec::len),
        Some(300),
        "{}",
        before[0]
    );
    server.stop();
    assert!(!old_parts(data).is_empty(), "no old part flushed");
    before
}

async fn moves_and_answers_the_same(tier: Tier, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let before = hot_store(&data, dir.path()).await;
    let config = write_config(dir.path(), Some(&tier));
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    wait_for("the old parts to move", async || {
        old_parts(&data).iter().all(|(_, cold)| *cold)
    })
    .await;
    assert!(
        parts(&data).iter().any(|(_, cold)| !cold),
        "{name}: today's part moved"
    );
    for (rel, _) in old_parts(&data) {
        let object = tier
            .object(&rel)
            .await
            .unwrap_or_else(|| panic!("{name}: {rel} not in the tier"));
        // Plain Parquet, readable by any Parquet reader.
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(object),
        )
        .expect("parquet");
        assert!(reader.metadata().file_metadata().num_rows() > 0);
    }
    assert_eq!(answers(&server).await, before, "{name}: across tiers");
    if let Tier::Dir(root) = &tier {
        // The open layout: DuckDB reads the tier as it is (every stored
        // row version; no update hid one here).
        let glob = root.join("parts/*/*/*.parquet");
        let read = "read_parquet('\" + sys.argv[1] + \"'";
        assert_eq!(
            duckdb_prints(
                &glob,
                &format!("SELECT count(*), count(DISTINCT span_id) FROM {read})")
            ),
            "(200, 200)"
        );
        // Each row's texts, joined from run order as docs/STORAGE.md shows.
        let texts = format!(
            "WITH p AS (SELECT * FROM {read}, filename = true, file_row_number = true)) \
             SELECT count(*), count(*) FILTER (WHERE t._payload[1] = 'input of ' || r.span_id) \
             FROM p r JOIN p t ON t.filename = r.filename AND t.file_row_number = r._payload_row"
        );
        assert_eq!(duckdb_prints(&glob, &texts), "(200, 200)");
    }
    let metrics = server.metrics_text().await;
    let cold_parts = old_parts(&data).len();
    assert!(
        metrics.contains(&format!("loupe_store_cold_parts {cold_parts}")),
        "{name}: {metrics}"
    );
    assert!(
        !metrics.contains("loupe_store_cold_cache_bytes 0\n"),
        "{name}: the queries read no cold part through the cache"
    );

    // A command on the data directory without the server's config adopts
    // the recorded cold tier (keys from the environment).
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "sql",
            "--json",
            "SELECT count(*) AS n FROM spans",
            "--data-dir",
        ])
        .arg(&data)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("loupe sql");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("json answer");
    assert_eq!(answer["rows"][0][0], json!(300), "{name}: {answer}");

    // `loupe export` of raw spans (read-only open of the live directory,
    // cold parts included) to a directory, and of a query's answer from the
    // server to S3.
    let out = dir.path().join("export");
    let status = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "export",
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2030-01-01T00:00:00Z",
        ])
        .arg("--to-dir")
        .arg(&out)
        .args(["--name", "raw"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .status()
        .expect("export");
    assert!(status.success());
    let file = std::fs::File::open(out.join("raw.parquet")).expect("exported file");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet");
    assert_eq!(
        reader.metadata().file_metadata().num_rows(),
        300,
        "{name}: raw export"
    );
    if let Tier::S3 { bucket, .. } = &tier {
        let status = Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args(["export", "--query", "last 60d | by name | count()"])
            .args(["--to-s3", &format!("s3://{bucket}/exports")])
            .args([
                "--s3-endpoint",
                &s3_endpoint(),
                "--s3-path-style",
                "--name",
                "by-name",
            ])
            .args(["--server", &server.http])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .status()
            .expect("export");
        assert!(status.success());
        let r = s3_get(&format!("{bucket}/exports/by-name.parquet")).await;
        assert!(r.status().is_success(), "{}", r.status());
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            r.bytes().await.expect("body"),
        )
        .expect("parquet");
        assert_eq!(
            reader.metadata().file_metadata().num_rows(),
            7,
            "one row per name"
        );
    }
    server.stop();

    // Reopen after the move: same answers, still cold.
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    assert_eq!(answers(&server).await, before, "{name}: after a restart");
    assert!(old_parts(&data).iter().all(|(_, cold)| *cold));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_parts_move_to_s3_and_a_directory_and_every_answer_stays_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    moves_and_answers_the_same(Tier::Dir(dir.path().join("cold")), "directory").await;
    moves_and_answers_the_same(Tier::s3("moves").await, "s3").await;
}

/// kill -9 once a part's copy is in the tier but before its commit (the
/// kill lands while the copy is verified, the id file written, or in the
/// pause the test hook `LOUPE_TEST_COLD_MOVE_PAUSE_MS` holds it in), then
/// after the commit and before the local file's deletion; then retention
/// of the cold parts. Every restart answers as before the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_move_to_s3_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let before = hot_store(&data, dir.path()).await;
    let tier = Tier::s3("crash").await;
    let config = write_config(dir.path(), Some(&tier));

    let server = Server::start_with_env(
        &data,
        Some(&config),
        &[("LOUPE_TEST_COLD_MOVE_PAUSE_MS", "60000")],
    )
    .await;
    let old: Vec<String> = old_parts(&data).into_iter().map(|(rel, _)| rel).collect();
    let mut first = None;
    wait_for("the first copy", async || {
        for rel in &old {
            if tier.object(rel).await.is_some() {
                first = Some(rel.clone());
                return true;
            }
        }
        false
    })
    .await;
    let first = first.expect("a copied part");
    server.kill9();
    assert!(
        old_parts(&data).iter().all(|(_, cold)| !cold),
        "the move committed before the kill"
    );

    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    assert_eq!(
        answers(&server).await,
        before,
        "after a kill before the commit"
    );
    wait_for("the moves to commit", async || {
        old_parts(&data).iter().all(|(_, cold)| *cold)
    })
    .await;
    server.kill9();
    // The kill landed inside the grace period: the local copies are there.
    assert!(
        data.join(&first).exists(),
        "the local file went before the kill"
    );

    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    assert!(!data.join(&first).exists(), "the moved local file was kept");
    assert_eq!(
        answers(&server).await,
        before,
        "after a kill after the commit"
    );
    for (rel, _) in old_parts(&data) {
        assert!(tier.object(&rel).await.is_some(), "{rel} not in the tier");
    }
    server.stop();

    // Retention reaches the cold tier: with 10 days, the old (cold) day
    // goes from the manifest and from every answer; today's part stays.
    // (Its objects are deleted after the grace period: `store/src/cold/
    // tests.rs` checks that on a directory tier.)
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen("[store]\n", "[store]\nretention_days = 10\n", 1),
    )
    .expect("config");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    wait_for("retention of the cold parts", async || {
        old_parts(&data).is_empty()
    })
    .await;
    let (status, body) = server
        .post_json_as(
            "/api/v1/sql",
            "default",
            &json!({ "sql": "SELECT count(*) AS n FROM spans" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0][0], json!(100), "{body}");
    server.stop();
}
