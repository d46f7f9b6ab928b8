//! OTLP ingest against a real `loupe serve` (the shipped binary, a child
//! process):
//! protobuf `POST /v1/traces` from pre-encoded requests, the server's CPU
//! time from `/proc/<pid>/stat`, its peak RSS (`VmHWM`), then a paced 2×
//! overload counting 429/503 answers and their `Retry-After`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use loupe_gen::GenConfig;
use prost::Message;

/// What the OTLP run measured.
#[derive(Debug, Default)]
pub struct Ingest {
    /// Spans acknowledged in the throughput phase.
    pub spans: u64,
    /// Wall time of that phase.
    pub wall: Duration,
    /// Server CPU seconds (user + system) in that phase.
    pub cpu_s: f64,
    /// Peak RSS of the server over both phases, kB.
    pub hwm_kb: u64,
    /// RSS samples during the overload, max kB.
    pub overload_rss_kb: u64,
    /// Overload phase: (accepted, 429, 503, with Retry-After, other) answers.
    pub overload: (u64, u64, u64, u64, u64),
    /// Offered rate of the overload, spans/s.
    pub offered: f64,
    /// Overload answers by HTTP status or client error kind.
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(loupe_fsutil::ports::free_port())
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
}

/// utime + stime of `pid`, seconds (assumes 100 ticks/s, Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The `loupe` binary to start: `given`, else `loupe` in this executable's
/// directory (cargo builds both into the same target directory).
pub fn loupe_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().context("cannot locate this executable")?;
    let beside = me.with_file_name(format!("loupe{}", std::env::consts::EXE_SUFFIX));
    if !beside.is_file() {
        bail!(
            "no loupe binary at {} (build it with `cargo build -p loupe`, or pass --loupe-bin)",
            beside.display()
        );
    }
    Ok(beside)
}

/// Starts `loupe serve` (the binary `loupe`) on `dir`, sends `config`'s
/// runs, then overloads it.
pub async fn run(
    loupe: &Path,
    config: &GenConfig,
    dir: &Path,
    overload_secs: u64,
) -> anyhow::Result<Ingest> {
    std::fs::create_dir_all(dir)?;
    let conf = dir.join("bench-serve.toml");
    std::fs::write(&conf, "[store]\nretention_days = 0\n")?;
    let (http, grpc) = (free_port()?, free_port()?);
    let child = Command::new(loupe)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&conf)
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start loupe serve")?;
    let server = Killed(child);
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("loupe serve did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies: Vec<(Bytes, u64)> = loupe_gen::otlp::requests(config, 50)
        .map(|r| {
            let n = loupe_gen::otlp::span_count(&r) as u64;
            (Bytes::from(r.encode_to_vec()), n)
        })
        .collect();
    let url = format!("{base}/v1/traces");
    let post = |body: Bytes| {
        client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
    };

    // Throughput: 4 concurrent clients, retrying on 429/503 after Retry-After.
    let mut out = Ingest::default();
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(bodies.iter().cloned())
        .map(|(body, n)| {
            let acked = acked.clone();
            let post = &post;
            async move {
                for _ in 0..100 {
                    let r = post(body.clone()).await?;
                    let status = r.status();
                    if status.is_success() {
                        acked.fetch_add(n, Ordering::Relaxed);
                        return Ok(());
                    }
                    if status.as_u16() != 429 && status.as_u16() != 503 {
                        bail!("server answered {status}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                bail!("gave up after 100 retries")
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    out.wall = started.elapsed();
    out.cpu_s = cpu_seconds(pid) - cpu0;
    out.spans = acked.load(Ordering::Relaxed);

    // Overload: offer twice the measured rate for `overload_secs`, with new
    // runs (another seed): re-sending stored spans would measure the update
    // path (a merge lookup per span), not overload.
    let rate = out.spans as f64 / out.wall.as_secs_f64().max(1e-9);
    let per_req = out.spans as f64 / bodies.len().max(1) as f64;
    // Enough runs for the whole overload, generated as they are sent.
    let needed = config.runs as f64 * 2.0 * overload_secs as f64 / out.wall.as_secs_f64().max(1e-3);
    let fresh = GenConfig {
        seed: config.seed.wrapping_add(1),
        runs: (needed.ceil() as usize).max(config.runs),
        ..config.clone()
    };
    let mut fresh_bodies =
        loupe_gen::otlp::requests(&fresh, 50).map(|r| Bytes::from(r.encode_to_vec()));
    out.offered = 2.0 * rate;
    let interval = Duration::from_secs_f64(per_req / out.offered.max(1.0));
    let counts: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
    let outcomes = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let end = Instant::now() + Duration::from_secs(overload_secs);
    let mut ticker = tokio::time::interval(interval.max(Duration::from_micros(100)));
    let mut inflight = futures::stream::FuturesUnordered::new();
    while Instant::now() < end {
        ticker.tick().await;
        let Some(body) = fresh_bodies.next() else {
            break;
        };
        let counts = counts.clone();
        let outcomes = outcomes.clone();
        let fut = post(body);
        inflight.push(async move {
            let answer = fut.await;
            let key = match &answer {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) if e.is_timeout() => "client timeout".to_owned(),
                Err(e) if e.is_connect() => "connect error".to_owned(),
                Err(e) => format!("client error: {e}"),
            };
            if let Ok(mut map) = outcomes.lock() {
                *map.entry(key).or_insert(0u64) += 1;
            }
            let slot = match answer {
                Ok(r) => {
                    let retry = r.headers().contains_key("retry-after");
                    if retry {
                        counts[3].fetch_add(1, Ordering::Relaxed);
                    }
                    match r.status().as_u16() {
                        200..=299 => 0,
                        429 => 1,
                        503 => 2,
                        _ => 4,
                    }
                }
                Err(_) => 4,
            };
            counts[slot].fetch_add(1, Ordering::Relaxed);
        });
        while inflight.len() > 256 {
            inflight.next().await;
        }
        out.overload_rss_kb = out.overload_rss_kb.max(proc_field(pid, "status", "VmRSS:"));
    }
    while inflight.next().await.is_some() {}
    let c = |k: usize| counts[k].load(Ordering::Relaxed);
    out.overload = (c(0), c(1), c(2), c(3), c(4));
    out.hwm_kb = proc_field(pid, "status", "VmHWM:");
    if let Ok(map) = outcomes.lock() {
        out.outcomes = map.clone();
    }
    drop(server);
    Ok(out)
}
