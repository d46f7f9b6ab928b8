//! `loupe-bench-cleanup`: the first cleanup of a Dify database's history.
//! Loads `--runs` generated runs (about 8 node executions each, created
//! 40–60 days ago) into a Dify 1.14.1 schema on PostgreSQL by COPY, builds
//! Dify's indexes, syncs them into a fresh store (`loupe dify sync --once`'s
//! path) and flushes it, then times `loupe dify cleanup --scope nodes
//! --older-than 30d`: a dry run and the real run with batch verification,
//! and (with `--compare`) a dry run verifying run by run as before. Reports
//! runs and node executions per second, where the time went (Dify's
//! database, Loupe's store), the latency probe of Dify's database
//! (baseline and p95 while cleaning) and what 10 million node executions
//! would take. docs/BENCHMARKS.md ("Dify cleanup") has the numbers.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use loupe_bench::copy::Buffers;
use loupe_bench::loupe_side;
use loupe_bench::pg::Pg;
use loupe_dify::relief::{Cleaner, CleanupConfig, CleanupReport, Scope};
use loupe_dify::sync::{SyncConfig, Syncer};
use loupe_gen::GenConfig;
use loupe_model::ProjectId;
use loupe_normalise::tags::TagRules;

const DAY_NS: i64 = 86_400_000_000_000;

/// Flags of `loupe-bench-cleanup`.
#[derive(Debug, clap::Parser)]
#[command(name = "loupe-bench-cleanup", about, long_about = None)]
struct Args {
    /// Runs to load (about 8 node executions each).
    #[arg(long, default_value_t = 20_000)]
    runs: usize,
    /// PostgreSQL to load into (a schema `loupe_bench_cleanup` is
    /// recreated there). Default: LOUPE_TEST_PG_URL.
    #[arg(long, env = "LOUPE_TEST_PG_URL")]
    dsn: String,
    /// Runs per cleanup batch (the CLI's --batch).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Batch latency target (the CLI's --max-batch-latency).
    #[arg(long, default_value = "500ms")]
    max_batch_latency: humantime::Duration,
    /// Also time a dry run that verifies run by run (the previous way).
    #[arg(long)]
    compare: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

const SCHEMA: &str = "loupe_bench_cleanup";

async fn bench(args: Args) -> anyhow::Result<()> {
    let now = loupe_model::time::now_ns();
    let gen_config = GenConfig {
        seed: 7,
        runs: args.runs,
        start_ns: now - 60 * DAY_NS,
        spread_ns: 20 * DAY_NS,
        project: ProjectId::DEFAULT.to_owned(),
        faults: Vec::new(),
    };
    println!(
        "loupe-bench-cleanup: {} runs, {}",
        args.runs,
        loupe_bench::report::machine()
    );

    // Dify's side: rows by COPY, then Dify's indexes and VACUUM ANALYZE.
    let started = Instant::now();
    let pg = Pg::create(&args.dsn, SCHEMA).await?;
    let mut loader = pg.loader().await?;
    let mut buffers = Buffers::default();
    for (i, run) in loupe_gen::runs(&gen_config).enumerate() {
        buffers.push_run(&run.spans, &run.inputs);
        if i % 1000 == 999 {
            loader.send(std::mem::take(&mut buffers)).await?;
        }
    }
    loader.send(buffers).await?;
    let counts = loader.finish().await?;
    pg.finish_load().await?;
    let nodes_loaded = counts.get(1).copied().unwrap_or(0);
    println!(
        "loaded {} runs, {} node executions, {} app logs in {:.1}s",
        counts.first().copied().unwrap_or(0),
        nodes_loaded,
        counts.get(2).copied().unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    let sep = if args.dsn.contains('?') { '&' } else { '?' };
    let dsn = format!("{}{sep}options=-csearch_path%3D{SCHEMA}", args.dsn);

    // Loupe's side: a fresh store, the sync, a flush (verification then
    // reads Parquet parts, as it would weeks after the sync).
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let store = loupe_side::open(&data_dir, false).await?;
    let background = store.spawn_background();
    let pipeline = loupe_pipeline::Pipeline::new(Arc::new(store.clone()), TagRules::default());
    let mut sync = SyncConfig::new(dsn.clone(), data_dir.clone());
    sync.lag = Duration::ZERO;
    sync.batch = 1000;
    let started = Instant::now();
    let report = Syncer::connect(sync, pipeline)
        .await?
        .sync_once()
        .await
        .context("sync")?;
    let sync_time = started.elapsed();
    store.flush_all().await?;
    println!(
        "synced {} spans in {:.1}s ({:.0} spans/s), flushed",
        report.spans,
        sync_time.as_secs_f64(),
        report.spans as f64 / sync_time.as_secs_f64()
    );

    let reader: Arc<dyn loupe_backend::SpanReader> = Arc::new(store.clone());
    let config = |dry: bool, batch_verify: bool| {
        let mut c = CleanupConfig::new(
            dsn.clone(),
            data_dir.clone(),
            Duration::from_secs(30 * 86_400),
        );
        c.scope = Scope::Nodes;
        c.batch = args.batch;
        c.max_batch_latency = args.max_batch_latency.into();
        c.dry_run = dry;
        c.batch_verify = batch_verify;
        c.source = "bench".into();
        c
    };
    let mut rows = Vec::new();
    if args.compare {
        let r = Cleaner::connect(config(true, false), reader.clone())
            .await?
            .run()
            .await?;
        rows.push(("dry run, run by run (before)", r));
    }
    let r = Cleaner::connect(config(true, true), reader.clone())
        .await?
        .run()
        .await?;
    rows.push(("dry run, batch verification", r));
    let r = Cleaner::connect(config(false, true), reader.clone())
        .await?
        .run()
        .await?;
    rows.push(("cleanup, batch verification", r));
    background.abort();
    store.shutdown().await?;

    println!(
        "\n| run | runs verified | node rows | batches | wall | runs/s | node rows/s | Dify DB time | store time | probe baseline | probe p95 | 10M nodes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in &rows {
        print_row(name, r);
    }
    let left = pg_count(&dsn, "workflow_node_executions").await?;
    println!("\nnode executions left after the cleanup: {left} (of {nodes_loaded})");
    Ok(())
}

fn print_row(name: &str, r: &CleanupReport) {
    let secs = r.elapsed_ms as f64 / 1000.0;
    let nodes = r
        .deleted
        .get("workflow_node_executions")
        .copied()
        .unwrap_or(0);
    let nodes_per_s = nodes as f64 / secs.max(1e-9);
    let ten_million = if nodes_per_s > 0.0 {
        let s = 1e7 / nodes_per_s;
        format!("{:.0} min", s / 60.0)
    } else {
        "—".into()
    };
    println!(
        "| {name} | {} | {nodes} | {} | {secs:.1} s | {:.0} | {nodes_per_s:.0} | {:.1} s | {:.1} s | {:.2} ms | {:.2} ms | {ten_million} |",
        r.verified,
        r.batches,
        r.verified as f64 / secs.max(1e-9),
        r.db_ms as f64 / 1000.0,
        r.verify_ms as f64 / 1000.0,
        r.db_latency.baseline_ms,
        r.db_latency.p95_ms,
    );
    if r.skipped_unverified + r.skipped_locked + r.skipped_open > 0 {
        println!(
            "  skipped: {} unverified, {} locked, {} open; first: {:?}",
            r.skipped_unverified,
            r.skipped_locked,
            r.skipped_open,
            r.skipped.first()
        );
    }
}

async fn pg_count(dsn: &str, table: &str) -> anyhow::Result<i64> {
    let client = loupe_dify::schema::connect(dsn).await?;
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0))
}
