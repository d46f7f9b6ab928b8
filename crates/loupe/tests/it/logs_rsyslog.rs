//! A real shipper from Debian's packages: rsyslog's `imfile` tails a file
//! of Dify JSON log lines and its `omelasticsearch` output ships them, in
//! bulk mode with Basic credentials, to a real `loupe serve`'s `/es` API.
//! Lines appended while it runs arrive too, and the line carrying a run's
//! trace id shows in that run's logs.
//!
//! rsyslogd comes from `scripts/peers/rsyslog.sh` (`LOUPE_TEST_RSYSLOGD`);
//! it runs as a child with its own config and work directory, touching no
//! system socket.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Server, assert_ok};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

struct Rsyslogd(Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key(data_dir: &Path, scope: &str) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "keys",
            "create",
            "--json",
            "--project",
            "ops",
            "--scope",
            scope,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("loupe keys create");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    (
        v["public_key"].as_str().expect("pk").to_owned(),
        v["secret_key"].as_str().expect("sk").to_owned(),
    )
}

fn append_lines(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file");
    let now = loupe_model::time::format_instant(loupe_model::time::now_ns());
    for i in from..to {
        let line = if i == 7 {
            format!(
                r#"{{"ts":"{now}","severity":"ERROR","service":"plugin_daemon","trace_id":"{TRACE}","message":"line {i}: plugin crashed"}}"#
            )
        } else {
            format!(r#"{{"ts":"{now}","severity":"INFO","service":"api","message":"line {i}"}}"#)
        };
        writeln!(f, "{line}").expect("write line");
    }
}

async fn stored(server: &Server, read: &(String, String), path: &str) -> Value {
    let r = server
        .client
        .get(format!("{}{path}", server.http))
        .basic_auth(&read.0, Some(&read.1))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

async fn wait_for(server: &Server, read: &(String, String), count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = stored(server, read, "/api/v1/logs?stream=dify-api&limit=1000").await;
        let n = page["records"].as_array().map_or(0, Vec::len);
        if n >= count {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "rsyslog shipped {n} of {count} lines within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rsyslog_omelasticsearch_ships_a_tailed_file_into_the_es_api() {
    let rsyslogd = match std::env::var("LOUPE_TEST_RSYSLOGD") {
        Ok(p) if Path::new(&p).exists() => p,
        _ => panic!(
            "LOUPE_TEST_RSYSLOGD is not set to rsyslogd: run `eval \"$(scripts/peers/rsyslog.sh)\"` first"
        ),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let ingest = key(&data, "ingest");
    let read = key(&data, "read");
    let server = Server::start(&data, &[]).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let file = dir.path().join("dify-api.log");
    append_lines(&file, 0, 100);
    let errors = dir.path().join("es-errors.json");
    let config = dir.path().join("rsyslog.conf");
    std::fs::write(
        &config,
        format!(
            r#"global(workDirectory="{work}")
module(load="imfile")
module(load="omelasticsearch")
template(name="raw" type="string" string="%msg%")
input(type="imfile" File="{file}" Tag="dify" freshStartTail="off")
action(type="omelasticsearch" server="{host}/es" searchIndex="dify-api" template="raw"
       bulkmode="on" uid="{pk}" pwd="{sk}" errorFile="{errors}")
"#,
            work = work.display(),
            file = file.display(),
            host = server.http,
            pk = ingest.0,
            sk = ingest.1,
            errors = errors.display(),
        ),
    )
    .expect("config");
    let child = Command::new(&rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&config)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rsyslogd");
    let _rsyslogd = Rsyslogd(child);

    let page = wait_for(&server, &read, 100).await;
    append_lines(&file, 100, 150);
    let page = if page["records"].as_array().map_or(0, Vec::len) >= 150 {
        page
    } else {
        wait_for(&server, &read, 150).await
    };
    let mut lines: Vec<&str> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["body"].as_str().unwrap_or_default())
        .collect();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 150, "every line once");
    assert!(!errors.exists(), "rsyslog recorded failed items");

    let run = stored(&server, &read, &format!("/api/v1/traces/{TRACE}/logs")).await;
    let records = run["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{run}");
    assert_eq!(records[0]["body"], "line 7: plugin crashed");
    assert_eq!(records[0]["severity"], "error");
    assert_eq!(records[0]["service"], "plugin_daemon");
}
