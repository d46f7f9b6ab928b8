//! The backfill path (issue 22): runs arrive first as running, are flushed,
//! and 30 % of them are re-sent finished later, as the Dify sync and live
//! sources do. Measures a scan count and one run by id right after the
//! updates are flushed, and again after one maintenance pass (what the
//! background loop runs every minute).
//!
//! Run: `cargo bench -p loupe-store --bench backfill` (env `RUNS`, default
//! 20000 runs of 10 spans over ten days; 200 when run by `cargo test`).
//! Prints hidden rows, parts, and the median of five timings per query.
//! It measures the store alone: no HTTP, no OTLP decoding, rollup answers
//! off so the count is a scan.

use std::time::Instant;

use loupe_model::{ProjectId, Span, Status};
use loupe_store::{Store, StoreConfig};

mod common;

use common::{BATCH, SPANS_PER_RUN, median, span};

/// Whether run `run` is first seen running and finished later (30 %).
fn updated(run: usize) -> bool {
    run % 10 < 3
}

async fn measure(store: &Store, runs: usize, stage: &str) {
    let project = ProjectId::new("bench").expect("project");
    let sql = "SELECT count(*) FROM spans WHERE span_kind = 'workflow'";
    let mut count_times = Vec::new();
    for _ in 0..6 {
        let start = Instant::now();
        let out = store.sql(&project, sql).await.expect("count");
        count_times.push(start.elapsed());
        let n = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("count column")
            .value(0);
        assert_eq!(n as usize, runs, "{stage}: one row per run");
    }
    count_times.remove(0);
    let mut run_times = Vec::new();
    for k in 0..5 {
        // Updated runs spread over the days.
        let run = (k * runs / 5) / 10 * 10;
        let start = Instant::now();
        let spans = store
            .trace_spans(&project, &format!("run-{run}"))
            .await
            .expect("run");
        run_times.push(start.elapsed());
        assert_eq!(spans.len(), SPANS_PER_RUN, "{stage}: run-{run}");
        assert!(spans.iter().all(|s| s.status != Some(Status::Running)));
    }
    let stats = store.stats();
    println!(
        "{stage:<28} parts {:>4}  rows {:>8}  count {:>8.1} ms  run by id {:>6.2} ms",
        stats.parts,
        stats.part_rows,
        median(count_times),
        median(run_times)
    );
}

fn main() {
    let runs = common::runs(200);
    let dir = tempfile::tempdir().expect("tempdir");
    common::runtime().block_on(async {
        let config = StoreConfig {
            data_dir: dir.path().to_owned(),
            memtable_bytes: 1 << 30,
            max_unflushed_bytes: 4 << 30,
            retention_days: 0,
            ..StoreConfig::default()
        };
        let store = Store::open(config, loupe_rollup::RollupConfig::default()).expect("open");
        store.set_answer_from_rollups(false);
        let first: Vec<Span> = (0..runs)
            .flat_map(|run| {
                (0..SPANS_PER_RUN).map(move |i| {
                    let mut s = span(run, i, runs);
                    if updated(run) {
                        s.status = Some(Status::Running);
                        s.end_time = None;
                    }
                    s
                })
            })
            .collect();
        let start = Instant::now();
        // A flush every quarter of the data, as memtable size would cause.
        let quarter = (first.len() / 4).max(BATCH);
        for (k, chunk) in first.chunks(BATCH).enumerate() {
            store.append(chunk.to_vec()).await.expect("append");
            if (k + 1) * BATCH % quarter < BATCH {
                store.flush_all().await.expect("flush");
            }
        }
        store.flush_all().await.expect("flush");
        let finished: Vec<Span> = (0..runs)
            .filter(|&r| updated(r))
            .flat_map(|run| (0..SPANS_PER_RUN).map(move |i| span(run, i, runs)))
            .collect();
        for chunk in finished.chunks(BATCH) {
            store.append(chunk.to_vec()).await.expect("update");
        }
        store.flush_all().await.expect("flush");
        println!(
            "runs {runs}, spans {}, updated spans {} (30 % of runs), loaded in {:.1} s",
            first.len(),
            finished.len(),
            start.elapsed().as_secs_f64()
        );
        measure(&store, runs, "updates flushed").await;
        let start = Instant::now();
        let report = store.maintain().await.expect("maintain");
        println!(
            "maintenance: {:.1} s, {report:?}",
            start.elapsed().as_secs_f64()
        );
        measure(&store, runs, "after one maintenance pass").await;
        store.shutdown().await.expect("shutdown");
    });
}
