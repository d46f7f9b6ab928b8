//! Issue 14 against the real binary: a full disk, memory bombs measured by
//! the server process's peak memory (`VmHWM`), the read gate.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Server, encode, hex_id, otel_span, request};

/// A tmpfs of a fixed size mounted for one test (needs root, as CI runs;
/// the test fails rather than skips without it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs at {} failed (the full-disk test needs root to make a \
             small file system): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Free bytes of the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// One request of `n` spans with ~2 KB of attributes each; ids from `first`.
fn batch(first: u64, n: u64) -> Vec<u8> {
    let pad = "p".repeat(2000);
    let spans = (first..first + n)
        .map(|id| otel_span(7, id, None, "disk", &[("pad", pad.as_str())]))
        .collect();
    encode(&request(spans))
}

/// ENOSPC on a real (tmpfs) file system: appends get 503 + Retry-After
/// naming the full disk while `/healthz` keeps answering; once space is
/// freed ingest works again; after kill -9 and a restart every
/// acknowledged span is there (issue 14, item 6: a failed partial WAL
/// record used to sit in front of later acknowledged ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_with_retry_after_and_no_acknowledged_span_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, "48m");
    let server = Server::start(&data, &["--durability", "strict"]).await;
    let mut acked: HashSet<String> = HashSet::new();
    let mut next = 1u64;
    let mut post = async |server: &Server, acked: &mut HashSet<String>| {
        let (first, n) = (next, 100);
        next += n;
        let r = server.post_otlp(batch(first, n)).await;
        let status = r.status().as_u16();
        if status == 200 {
            acked.extend((first..first + n).map(hex_id));
        }
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, retry, r.text().await.unwrap_or_default())
    };
    for _ in 0..5 {
        let (status, _, body) = post(&server, &mut acked).await;
        assert_eq!(status, 200, "{body}");
    }
    // Leave about 1 MB free, then write until the disk is full.
    let filler = data.join("filler");
    let leave = 1 << 20;
    let fill = free_bytes(&data).saturating_sub(leave);
    std::fs::write(&filler, vec![0u8; usize::try_from(fill).expect("size")]).ok();
    let mut full = None;
    for _ in 0..200 {
        let (status, retry, body) = post(&server, &mut acked).await;
        if status != 200 {
            full = Some((status, retry, body));
            break;
        }
    }
    let (status, retry, body) = full.expect("the disk never filled");
    assert_eq!(status, 503, "a full disk is the server's condition: {body}");
    assert!(body.contains("disk is full"), "{body}");
    assert!(retry.is_some(), "503 carries Retry-After");
    // Still full: more refusals (each may leave a partial record behind
    // if it were not cut off), and the server keeps answering.
    for _ in 0..5 {
        let (status, _, body) = post(&server, &mut acked).await;
        assert_eq!(status, 503, "{body}");
        let health = server
            .client
            .get(format!("{}/healthz", server.http))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
    }
    std::fs::remove_file(&filler).expect("free space");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 10 {
        let (status, _, body) = post(&server, &mut acked).await;
        match status {
            200 => after += 1,
            503 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => panic!("ingest did not recover after space was freed: {status} {body}"),
        }
    }
    server.kill9();
    let server = Server::start(&data, &["--durability", "strict"]).await;
    let stored: HashSet<String> = server
        .all_spans()
        .await
        .iter()
        .filter_map(|s| s["span_id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged spans lost after the full disk and kill -9, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.iter().take(3).collect::<Vec<_>>()
    );
    assert!(acked.len() >= 1500, "{} acknowledged", acked.len());
}

/// The server's peak resident memory since the last reset, KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Current resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Resets the peak to the current resident memory (Linux ≥ 4.0).
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
}

/// Protobuf varint.
fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// An OTLP request of `n` empty spans, built on the wire (2 bytes each).
fn empty_spans(n: usize) -> Vec<u8> {
    // ResourceSpans { scope_spans (2): ScopeSpans { spans (2): Span {} × n } }
    let mut resource = vec![0x12];
    varint(2 * n, &mut resource);
    resource.reserve(2 * n);
    for _ in 0..n {
        resource.extend_from_slice(&[0x12, 0x00]);
    }
    // ExportTraceServiceRequest { resource_spans (1): … }
    let mut request = vec![0x0a];
    varint(resource.len(), &mut request);
    request.extend_from_slice(&resource);
    request
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// Spans of one user: `runs` runs of 4 spans, each with an 8 KB input.
fn user_batch(first_run: u64, runs: u64) -> Vec<u8> {
    let input = "i".repeat(8 << 10);
    let mut spans = Vec::new();
    for run in first_run..first_run + runs {
        let trace = u128::from(run) + 1;
        let root = run * 8 + 1;
        spans.push(otel_span(
            trace,
            root,
            None,
            "workflow",
            &[("user.id", "heavy-user"), ("input.value", input.as_str())],
        ));
        for child in 1..4 {
            spans.push(otel_span(
                trace,
                root + child,
                Some(root),
                "step",
                &[("user.id", "heavy-user"), ("input.value", input.as_str())],
            ));
        }
    }
    encode(&request(spans))
}

/// The reproduced bombs of issue 14 against one server, its peak memory
/// measured from `/proc` (`VmHWM`, reset after the data is loaded): a gzip
/// body of 30M empty spans, a body of 3M spans, a Langfuse batch of 1.4M
/// empty events, three `/api/v1/users/{id}` at once over 24,000 spans with
/// 8 KB inputs (~200 MB of payloads), and `repeat('x', 2000000000)`. Each
/// is refused or answered; the peak grows by less than 320 MiB and
/// `/healthz` answers throughout. (Before the fixes these peaked at
/// 2.0–2.6 GiB and three `/users` at once were OOM-killed in 3 GiB. The
/// figures include what the allocator kept from earlier steps: measured
/// 90–205 MB per bomb, and 268 MB for three `/users` once the windowed
/// listings were merged; that path is worth a look.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reproduced_bombs_keep_the_server_under_its_memory_bound() {
    const BOUND_KIB: u64 = 320 << 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let pid = server.pid();
    for chunk in 0..20 {
        let r = server.post_otlp(user_batch(chunk * 300, 300)).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    let loaded = rss_kib(pid);
    reset_peak(pid);
    // The peak over the memory resident before the bombs, per bomb (the
    // reset makes each peak that bomb's; what an earlier bomb left
    // allocated counts against the later ones).
    let worst = std::cell::Cell::new(0u64);
    let step = |name: &str| {
        let over = peak_kib(pid).saturating_sub(loaded);
        eprintln!("bombs: {name}: peak {over} KiB over the {loaded} KiB resident before");
        worst.set(worst.get().max(over));
        reset_peak(pid);
    };
    let healthz = async || {
        let r = server
            .client
            .get(format!("{}/healthz", server.http))
            .send()
            .await
            .expect("healthz");
        assert_eq!(r.status(), 200, "/healthz answers");
    };

    let bomb = gzip(&empty_spans(30_000_000));
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    let r = server
        .client
        .post(format!("{}/v1/traces", server.http))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .expect("post");
    let status = r.status();
    let body = r.bytes().await.unwrap_or_default();
    assert_eq!(status, 413, "{body:?}");
    healthz().await;
    step("gzip 30M spans");

    let r = server.post_otlp(empty_spans(3_000_000)).await;
    assert_eq!(r.status(), 413, "{}", r.text().await.unwrap_or_default());
    healthz().await;
    step("3M spans");

    let mut events = String::with_capacity(5 << 20);
    events.push_str("{\"batch\":[");
    for i in 0..1_400_000 {
        if i > 0 {
            events.push(',');
        }
        events.push_str("{}");
    }
    events.push_str("]}");
    let r = server
        .client
        .post(format!("{}/api/public/ingestion", server.http))
        .header("content-type", "application/json")
        .body(events)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413, "{}", r.text().await.unwrap_or_default());
    healthz().await;
    step("langfuse 1.4M events");

    let user = || async {
        let (status, body) = server.get_json("/api/v1/users/heavy-user").await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let (a, b, c) = tokio::join!(user(), user(), user());
    assert_eq!(a["runs"], 6000, "{a}");
    assert_eq!(a, b);
    assert_eq!(b, c);
    healthz().await;
    step("3 × users");

    let r = server
        .client
        .post(format!("{}/api/v1/sql", server.http))
        .json(&serde_json::json!({"sql": "SELECT length(repeat('x', 2000000000))"}))
        .send()
        .await
        .expect("post");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("max_function_bytes"), "{text}");
    healthz().await;
    step("sql repeat");

    assert!(
        worst.get() < BOUND_KIB,
        "a bomb took the peak {} KiB over the {loaded} KiB resident before (bound {BOUND_KIB} KiB)",
        worst.get()
    );
}

/// `[query] max_concurrent`: a read that finds every slot taken past
/// `queue_timeout` is refused with 503 + Retry-After naming the setting,
/// and reads work again once the slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_over_the_concurrency_limit_are_503_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[query]\nmax_concurrent = 1\nqueue_timeout = \"100ms\"\n",
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    for chunk in 0..2 {
        let r = server.post_otlp(user_batch(chunk * 500, 500)).await;
        assert_eq!(r.status(), 200);
    }
    let sql = |q: &'static str| {
        server
            .client
            .post(format!("{}/api/v1/sql", server.http))
            .json(&serde_json::json!({ "sql": q }))
            .send()
    };
    // Slow: a join of 4,000 × 4,000 spans.
    let slow = tokio::spawn(sql(
        "SELECT count(*) FROM spans a, spans b WHERE a.span_id < b.span_id",
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = sql("SELECT count(*) FROM spans").await.expect("post");
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("max_concurrent = 1"), "{text}");
    // Writes and health do not queue behind reads.
    assert_eq!(server.post_otlp(user_batch(9000, 1)).await.status(), 200);
    let done = slow.await.expect("join").expect("slow query");
    assert_eq!(
        done.status(),
        200,
        "{}",
        done.text().await.unwrap_or_default()
    );
    let r = sql("SELECT count(*) FROM spans").await.expect("post");
    assert_eq!(r.status(), 200);
}

/// An HTTP/2 connection to the gRPC listener (handshake done); returns
/// the server's advertised concurrent-stream limit and the connection.
async fn h2_connection(
    addr: &str,
) -> (
    usize,
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, mut conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    // The server's SETTINGS have arrived once it has answered a request.
    let mut send = send.ready().await.expect("ready");
    let get = tonic::codegen::http::Request::get(format!("http://{addr}/"))
        .body(())
        .expect("request");
    let (answer, _) = send.send_request(get, true).expect("send");
    tokio::select! {
        r = answer => {
            r.expect("an answer");
        }
        r = &mut conn => panic!("connection ended: {r:?}"),
    }
    let streams = conn.max_concurrent_send_streams();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (streams, send, task)
}

/// gRPC per-connection limits (`[server] grpc_max_concurrent_streams`,
/// advertised in HTTP/2 SETTINGS) and the connection cap of a listener
/// (`[server] max_connections`): past the cap a new connection is not
/// served until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_advertises_its_stream_limit_and_connections_are_capped() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[server]\nmax_connections = 2\ngrpc_max_concurrent_streams = 3\n",
    )
    .expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    let addr = server.grpc.trim_start_matches("http://").to_owned();
    let (streams, a, a_task) = h2_connection(&addr).await;
    assert_eq!(streams, 3, "SETTINGS_MAX_CONCURRENT_STREAMS");
    let (_, _b, b_task) = h2_connection(&addr).await;
    // Both slots are held: a third connection is not served.
    let export = async || {
        let mut client = TraceServiceClient::connect(server.grpc.clone())
            .await
            .expect("tcp connect (the kernel's backlog accepts it)");
        client
            .export(request(vec![otel_span(1, 1, None, "capped", &[])]))
            .await
    };
    let third = tokio::time::timeout(Duration::from_secs(2), export()).await;
    assert!(third.is_err(), "a third connection was served: {third:?}");
    a_task.abort();
    drop(a);
    let served = tokio::time::timeout(Duration::from_secs(20), export())
        .await
        .expect("served once a slot freed");
    served.expect("export");
    b_task.abort();
}
