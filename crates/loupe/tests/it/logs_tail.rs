//! `loupe serve` tailing JSON-lines files (`[logs] files`): a file rotated
//! by rename while its writer keeps the old handle, a new file at the old
//! name, and a kill -9 in the middle of a burst: every line is stored
//! exactly once.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Server;

fn line(i: usize) -> String {
    let now = loupe_model::time::format_instant(loupe_model::time::now_ns());
    format!(r#"{{"ts":"{now}","severity":"INFO","service":"api","message":"line {i:05}"}}"#)
}

fn write_lines(f: &mut std::fs::File, range: std::ops::Range<usize>) {
    for i in range {
        writeln!(f, "{}", line(i)).expect("write");
    }
    f.flush().expect("flush");
}

fn open_append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open")
}

/// Every stored body, sorted (duplicates kept).
async fn bodies(server: &Server) -> Vec<String> {
    let (status, page) = server.get_json("/api/v1/logs?limit=10000").await;
    assert_eq!(status, 200, "{page}");
    let mut out: Vec<String> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r: &Value| r["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    out.sort();
    out
}

async fn wait_for(server: &Server, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = bodies(server).await;
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} lines stored within 60 s",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line {i:05}")).collect()
}

#[tokio::test]
async fn tailed_files_survive_rotation_and_kill_9_with_every_line_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let data = dir.path().join("data");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        format!(
            "[logs]\nfiles = [\"{}/app.log*\"]\npoll_interval = \"50ms\"\n",
            logs.display()
        ),
    )
    .expect("config");
    let app = logs.join("app.log");
    let mut writer = open_append(&app);
    write_lines(&mut writer, 0..100);
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    assert_eq!(wait_for(&server, 100).await, expected(100));

    // Rotation by rename: the writer keeps its handle a moment longer,
    // then a new file takes the name.
    std::fs::rename(&app, logs.join("app.log.1")).expect("rotate");
    write_lines(&mut writer, 100..110);
    let mut writer = open_append(&app);
    write_lines(&mut writer, 110..150);
    assert_eq!(wait_for(&server, 150).await, expected(150));

    // kill -9 in the middle of a burst.
    let burst = std::thread::spawn(move || {
        for chunk in 0..50 {
            let start = 150 + chunk * 100;
            write_lines(&mut writer, start..start + 100);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill9();
    burst.join().expect("writer");
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    let got = wait_for(&server, 5_150).await;
    assert_eq!(got.len(), 5_150, "no line stored twice");
    assert_eq!(got, expected(5_150), "every line once");
    // A clean restart reads nothing again either.
    server.stop();
    let server = Server::start_with_config(&data, &[], Some(&config)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bodies(&server).await.len(), 5_150);
}
