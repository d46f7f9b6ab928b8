//! Store throughput: append Dify-shaped spans (interval durability), flush
//! them to Parquet, then run a group-by over the result.
//!
//! Run: `cargo bench -p loupe-store --bench ingest` (env `SPANS`, default
//! 200000; 2000 when run by `cargo test`). Prints spans/s for append, the flush time, bytes on disk and the
//! query latency. It measures the store alone: no HTTP, no OTLP decoding.

use std::time::Instant;

use loupe_model::{ProjectId, Span, SpanKind, Status};
use loupe_store::{Store, StoreConfig};

const BATCH: usize = 1_000;

fn span(i: usize) -> Span {
    let run = i / 10;
    let mut s = Span::new("bench", format!("{i:016x}"));
    s.trace_id = Some(format!("{run:032x}"));
    s.run_id = Some(format!("run-{run}"));
    s.parent_span_id = (!i.is_multiple_of(10)).then(|| format!("{:016x}", run * 10));
    s.span_kind = Some(
        [
            SpanKind::Workflow,
            SpanKind::Llm,
            SpanKind::Tool,
            SpanKind::Retrieval,
        ][i % 4],
    );
    s.node_type = Some(["start", "llm", "tool", "knowledge-retrieval"][i % 4].to_owned());
    s.name = Some(format!("node {}", i % 10));
    s.status = Some(if i.is_multiple_of(50) {
        Status::Error
    } else {
        Status::Ok
    });
    s.start_time = Some(1_795_000_000_000_000_000 + i as i64 * 1_000_000);
    s.end_time = s.start_time.map(|t| t + 250_000_000);
    s.app_id = Some(format!("app-{}", i % 5));
    s.tool_name = (i % 4 == 2)
        .then(|| ["inventory", "coupon", "payment", "logistics"][i % 16 / 4].to_owned());
    s.input_tokens = Some(120);
    s.output_tokens = Some(80);
    s.input = Some(format!(
        "{{\"query\": \"where is my order {i}?\", \"category\": \"phone\"}} {}",
        "lorem ipsum ".repeat(60)
    ));
    s.output = Some(format!(
        "Your order {i} ships tomorrow. {}",
        "dolor sit amet ".repeat(30)
    ));
    s.attributes
        .insert("metadata.tenant_id".into(), "t-1".into());
    s
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` this
    // runs as a quick smoke test of the same code.
    let default = if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        2_000
    };
    let n: usize = std::env::var("SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = StoreConfig {
            data_dir: dir.path().to_owned(),
            memtable_bytes: 1 << 30,
            max_unflushed_bytes: 4 << 30,
            ..StoreConfig::default()
        };
        let store = Store::open(config, loupe_rollup::RollupConfig::default()).expect("open");
        let spans: Vec<Span> = (0..n).map(span).collect();
        let start = Instant::now();
        for chunk in spans.chunks(BATCH) {
            store.append(chunk.to_vec()).await.expect("append");
        }
        let append = start.elapsed();
        let start = Instant::now();
        store.flush_all().await.expect("flush");
        let flush = start.elapsed();
        let stats = store.stats();
        let project = ProjectId::new("bench").expect("project");
        let sql = "SELECT span_kind, count(*), avg(duration), sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) FROM spans GROUP BY span_kind";
        let _ = store.sql(&project, sql).await.expect("warm-up");
        let start = Instant::now();
        let runs = 5;
        for _ in 0..runs {
            store.sql(&project, sql).await.expect("query");
        }
        let query = start.elapsed() / runs;
        let start = Instant::now();
        // A run in the middle of the data (10 spans per run).
        let run_id = format!("run-{}", n / 20);
        let trace = store.trace_spans(&project, &run_id).await.expect("trace");
        assert_eq!(trace.len(), 10.min(n), "every span of {run_id}");
        let trace_time = start.elapsed();
        println!("spans                 {n}");
        println!("append (interval)     {:.0} spans/s ({:.2} s)", n as f64 / append.as_secs_f64(), append.as_secs_f64());
        println!("flush to parquet      {:.2} s", flush.as_secs_f64());
        println!("parts / bytes         {} / {} ({:.0} B/span)", stats.parts, stats.part_bytes, stats.part_bytes as f64 / n as f64);
        println!("group-by query        {:.1} ms", query.as_secs_f64() * 1e3);
        println!("one run by run id     {:.1} ms ({} spans)", trace_time.as_secs_f64() * 1e3, trace.len());
        store.shutdown().await.expect("shutdown");
    });
}
