//! `loupe backup` of a live data directory and `loupe restore`: the server
//! ingests while the backup runs and is killed with SIGKILL as it starts;
//! the restored directory serves every span acknowledged before the backup
//! began.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use crate::support::{Server, assert_ok, encode, hex_id, otel_span, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_server_ingests_and_dies_restores_every_acked_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small memtable: flushes happen while the backup runs, so it holds
    // parts, rollup snapshots and a WAL tail.
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[store]\nmemtable_bytes = 200000\nmax_unflushed_bytes = 100000000\nretention_days = 0\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let server = Server::start_with_config(&data, &["--durability", "strict"], Some(&config)).await;

    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let client = server.client.clone();
        let url = format!("{}/v1/traces", server.http);
        tokio::spawn(async move {
            let mut batch = 0u64;
            while !stop.load(Ordering::Relaxed) && batch < 20_000 {
                let ids: Vec<u64> = (0..20).map(|i| (1 << 40) | (batch << 8) | i).collect();
                let spans = ids
                    .iter()
                    .map(|id| otel_span(7, *id, None, "backup-test", &[]))
                    .collect();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(encode(&request(spans)))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().await.extend(ids.iter().map(|id| hex_id(*id)));
                    }
                    _ => break,
                }
                batch += 1;
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.lock().await.len() < 3_000 {
        assert!(std::time::Instant::now() < deadline, "ingest too slow");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let before_backup = acked.lock().await.clone();
    let dest = dir.path().join("backup");
    let backup = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("backup")
        .arg(&dest)
        .arg("--data-dir")
        .arg(&data)
        .spawn()
        .expect("start loupe backup");
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    sender.await.expect("sender");
    let out = backup.wait_with_output().expect("loupe backup");
    assert!(out.status.success(), "backup failed");
    assert!(dest.join("BACKUP.json").is_file());

    let restored = dir.path().join("restored");
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("restore")
        .arg(&dest)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .expect("loupe restore");
    assert_ok(&out);
    // Restoring over data is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .arg("restore")
        .arg(&dest)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .expect("loupe restore");
    assert!(
        !again.status.success(),
        "restore over a non-empty directory"
    );

    let server = Server::start_with_config(&restored, &[], Some(&config)).await;
    let stored: HashSet<String> = server
        .all_spans()
        .await
        .iter()
        .filter_map(|s| s["span_id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<_> = before_backup.difference(&stored).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} spans acknowledged before the backup are missing, e.g. {missing:?}",
        before_backup.difference(&stored).count(),
        before_backup.len()
    );
    server.stop();
}
