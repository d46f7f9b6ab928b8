//! Fresh data against flushed data (issue 22, item 5): the same questions
//! over spans still in the memtable and over the same spans in parts, and
//! how long appends stall while queries run.
//!
//! Run: `cargo bench -p loupe-store --bench fresh` (env `RUNS`, default
//! 20000 runs of 10 spans; 100 when run by `cargo test`). Prints, per
//! question, the median of five scans: over the memtable (after a first
//! scan built its columnar copy), over the memtable right after 1,000 more
//! spans arrived (the incremental conversion), and over the flushed part.
//! Then the slowest and median append of 1,000 spans, alone and while a
//! query loop runs. The store alone: no HTTP, rollup answers off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loupe_model::{ProjectId, Span};
use loupe_store::{Store, StoreConfig};

mod common;

use common::{BATCH, SPANS_PER_RUN, median, span};

const QUESTIONS: &[(&str, &str)] = &[
    ("count", "SELECT count(*) FROM spans"),
    (
        "failing tools",
        "SELECT tool_name, count(*) FROM spans WHERE span_kind = 'tool' AND status = 'error' GROUP BY tool_name",
    ),
    (
        "tokens by app",
        "SELECT app_id, count(*), sum(input_tokens) FROM spans GROUP BY app_id",
    ),
    (
        "p95 tokens",
        "SELECT span_kind, approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY CAST(input_tokens AS DOUBLE)) FROM spans GROUP BY span_kind",
    ),
    (
        "one run",
        "SELECT span_id, input, output FROM spans WHERE run_id = 'run-7'",
    ),
];

async fn time_sql(store: &Store, sql: &str, reps: usize) -> Vec<Duration> {
    let project = ProjectId::new("bench").expect("project");
    let mut out = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        store.sql(&project, sql).await.expect(sql);
        out.push(start.elapsed());
    }
    out
}

fn spans_of(runs: std::ops::Range<usize>, total: usize) -> Vec<Span> {
    runs.flat_map(|run| (0..SPANS_PER_RUN).map(move |i| span(run, i, total)))
        .collect()
}

/// Median and slowest append of `batches` batches of 1,000 new spans.
async fn appends(store: &Store, from: usize, batches: usize, total: usize) -> (f64, f64) {
    let runs_per_batch = BATCH / SPANS_PER_RUN;
    let mut times = Vec::new();
    for b in 0..batches {
        let first = from + b * runs_per_batch;
        let spans = spans_of(first..first + runs_per_batch, total);
        let start = Instant::now();
        store.append(spans).await.expect("append");
        times.push(start.elapsed());
    }
    let max = times.iter().max().copied().unwrap_or_default();
    (median(times), max.as_secs_f64() * 1e3)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The full-text side index against the data it indexes, and a rare and a
/// common phrase through the query language (which uses the index).
async fn text_index(store: &Store, dir: &std::path::Path) {
    let built = store.index_text().expect("index text");
    let fts = dir_bytes(&dir.join("fts"));
    println!(
        "full-text index of {built} parts: {} KB, Parquet parts: {} KB",
        fts >> 10,
        store.stats().part_bytes >> 10
    );
    let project = ProjectId::new("bench").expect("project");
    for (name, words) in [
        ("rare phrase", "order 1234?"),
        ("common phrase", "ships tomorrow"),
    ] {
        let text = format!("from 2026-11-01 to 2027-01-01 {words:?} | count()");
        let query = loupe_query::Query::parse(&text).expect("query parses");
        let plan =
            loupe_query::plan(&query, loupe_query::PlanOptions::at(common::T0)).expect("plan");
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let got = store
                .query_plan(&project, &plan, loupe_backend::QueryLimits::default())
                .await
                .expect("text query");
            times.push(start.elapsed());
            rows = got.stats.rows_scanned.unwrap_or_default();
        }
        println!("{name:<14} {:>9.1} ms, {rows} rows read", median(times));
    }
}

fn main() {
    let runs = common::runs(100);
    let dir = tempfile::tempdir().expect("tempdir");
    common::runtime().block_on(async {
        let config = StoreConfig {
            data_dir: dir.path().to_owned(),
            memtable_bytes: 4 << 30,
            max_unflushed_bytes: 8 << 30,
            flush_age: Duration::from_secs(3_600),
            retention_days: 0,
            ..StoreConfig::default()
        };
        let store = Store::open(config, loupe_rollup::RollupConfig::default()).expect("open");
        store.set_answer_from_rollups(false);
        // Room for the appends measured below.
        let extra = 40 * BATCH / SPANS_PER_RUN;
        let total = runs + extra;
        for chunk in spans_of(0..runs, total).chunks(BATCH) {
            store.append(chunk.to_vec()).await.expect("append");
        }
        println!(
            "runs {runs}, spans {} in the memtable",
            runs * SPANS_PER_RUN
        );
        println!(
            "{:<14} {:>12} {:>12} {:>16} {:>12}",
            "question", "first scan", "memtable", "memtable +1000", "part"
        );
        let mut rows = Vec::new();
        let mut next = runs;
        for (name, sql) in QUESTIONS {
            let first = time_sql(&store, sql, 1).await;
            let warm = time_sql(&store, sql, 5).await;
            let mut fresh = Vec::new();
            for _ in 0..5 {
                let spans = spans_of(next..next + BATCH / SPANS_PER_RUN, total);
                next += BATCH / SPANS_PER_RUN;
                store.append(spans).await.expect("append");
                fresh.extend(time_sql(&store, sql, 1).await);
            }
            rows.push((name, sql, first[0], median(warm), median(fresh)));
        }
        let (alone_median, alone_max) = appends(&store, next, 10, total).await;
        next += 10 * BATCH / SPANS_PER_RUN;
        // Appends while a query loop scans the memtable.
        let stop = Arc::new(AtomicBool::new(false));
        let looping = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    time_sql(&store, QUESTIONS[2].1, 1).await;
                    n += 1;
                }
                n
            })
        };
        let (busy_median, busy_max) = appends(&store, next, 10, total).await;
        stop.store(true, Ordering::Relaxed);
        let queries = looping.await.expect("query loop");
        let columnar = store.stats().memtable_columnar_bytes;
        store.flush_all().await.expect("flush");
        for (name, sql, first, warm, fresh) in rows {
            let part = median(time_sql(&store, sql, 5).await);
            println!(
                "{name:<14} {:>9.1} ms {warm:>9.1} ms {fresh:>13.1} ms {part:>9.1} ms",
                first.as_secs_f64() * 1e3
            );
        }
        println!(
            "append of {BATCH} spans: alone median {alone_median:.1} ms, max {alone_max:.1} ms; \
             beside {queries} queries median {busy_median:.1} ms, max {busy_max:.1} ms"
        );
        println!("columnar copies before the flush: {} MB", columnar >> 20);
        text_index(&store, dir.path()).await;
        store.shutdown().await.expect("shutdown");
    });
}
