//! Durability by breaking it: SIGKILL the real binary while it ingests, start
//! it again on the same data dir, and find every acknowledged span. Also
//! recovery from what a crash mid-flush leaves: a temp part, an unreferenced
//! part, a torn WAL tail.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use crate::support::{Server, encode, hex_id, otel_span, request};

/// Sends batches from several tasks until stopped; returns acked span ids.
async fn ingest_until_killed(server: Server, durability: &str) -> HashSet<String> {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let (acked, stop) = (acked.clone(), stop.clone());
        let client = server.client.clone();
        let url = format!("{}/v1/traces", server.http);
        tasks.push(tokio::spawn(async move {
            let mut batch = 0u64;
            while !stop.load(Ordering::Relaxed) && batch < 10_000 {
                let ids: Vec<u64> = (0..20)
                    .map(|i| ((worker + 1) << 40) | (batch << 8) | i)
                    .collect();
                let spans = ids
                    .iter()
                    .map(|id| otel_span(u128::from(worker + 1), *id, None, "crash-test", &[]))
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
                    _ => break, // the server died mid-request: not acknowledged
                }
                batch += 1;
            }
        }));
    }
    // Kill once a good amount is acknowledged, while requests are in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.lock().await.len() < 4_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "{durability}: ingest too slow"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    acked.lock().await.clone()
}

async fn check_kill9(durability: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small memtable: flushes happen during the test, so recovery mixes parts and WAL.
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[store]\nmemtable_bytes = 200000\nmax_unflushed_bytes = 100000000\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let server =
        Server::start_with_config(&data, &["--durability", durability], Some(&config)).await;
    let acked = ingest_until_killed(server, durability).await;
    let server =
        Server::start_with_config(&data, &["--durability", durability], Some(&config)).await;
    let stored: HashSet<String> = server
        .all_spans()
        .await
        .iter()
        .map(|s| s["span_id"].as_str().expect("span_id").to_owned())
        .collect();
    let missing: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        missing.is_empty(),
        "{durability}: {} acknowledged spans lost, e.g. {missing:?}",
        acked.len() - acked.intersection(&stored).count()
    );
    assert!(acked.len() >= 4_000);
    let parts = walk(&data.join("parts"))
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .count();
    assert!(
        parts > 0,
        "{durability}: the test should have flushed parts before the kill"
    );
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_acknowledged_under_strict_survives_kill_9() {
    check_kill9("strict").await;
}

/// `interval` acknowledges after `write` and before `fsync`: a killed process
/// loses nothing (the OS holds the data); only power loss or an OS crash can
/// lose the last interval, which a test cannot produce here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_acknowledged_under_interval_survives_kill_9() {
    check_kill9("interval").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_crash_mid_flush_are_cleaned_and_a_torn_wal_tail_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--durability", "strict"]).await;
    let r = server
        .post_otlp(encode(&request(vec![otel_span(
            7,
            1,
            None,
            "flushed",
            &[],
        )])))
        .await;
    assert_eq!(r.status(), 200);
    server.stop(); // flushes span 1 into a part
    let server = Server::start(dir.path(), &["--durability", "strict"]).await;
    let r = server
        .post_otlp(encode(&request(vec![otel_span(
            7,
            2,
            Some(1),
            "in wal",
            &[],
        )])))
        .await;
    assert_eq!(r.status(), 200);
    server.kill9(); // span 2 only in the WAL

    // What a crash between writing a part and committing the manifest leaves.
    let day = dir.path().join("parts/default/2026-01-01");
    std::fs::create_dir_all(&day).expect("mkdir");
    std::fs::write(day.join("00000000000000ff.parquet.tmp"), b"half a part").expect("tmp");
    std::fs::write(day.join("00000000000000fe.parquet"), b"unreferenced").expect("orphan");
    // A torn record at the WAL tail (a write cut by the crash).
    let wal = walk(&dir.path().join("wal"))
        .into_iter()
        .max()
        .expect("wal segment");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&wal)
        .expect("open wal");
    std::io::Write::write_all(&mut f, &[0x40, 0, 0, 0, 1, 2, 3]).expect("torn tail");
    drop(f);

    let server = Server::start(dir.path(), &[]).await;
    let (status, body) = server
        .get_json(&format!(
            "/api/v1/traces/{}",
            hex::encode(7u128.to_be_bytes())
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<_> = body["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["flushed", "in wal"]);
    assert!(!day.join("00000000000000ff.parquet.tmp").exists());
    assert!(!day.join("00000000000000fe.parquet").exists());
}
