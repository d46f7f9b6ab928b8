//! `loupe-bench-rca`: how long a root-cause analysis takes over a day of
//! spans. Generates `--runs` runs over two days (seed 42; an incident on
//! day 2: inventory calls of phone runs 20 % failing and 1.5 s slower from
//! 10:00 to 16:00), loads them as `loupe-bench` does (tag rules, flush,
//! one maintenance pass), opens the store read-only and times
//! `loupe_rca::analyse` of `status=error` over day 2 against day 1: with
//! the default dimensions (the hour rollups answer them, as the tags of the
//! tag rules are rollup labels, which docs/RCA.md recommends), the same
//! with the rollups switched off (a scan: what a tag that is not a label
//! costs), and with the dimensions of the series key only; median
//! of `--reps` after a warm-up.
//! docs/BENCHMARKS.md ("Root-cause analysis") has the numbers.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use loupe_bench::loupe_side;
use loupe_gen::{DEFAULT_START_NS, Fault, GenConfig};
use loupe_model::ProjectId;
use loupe_normalise::tags::TagRules;
use loupe_rca::{RcaReport, RcaRequest};

const HOUR_NS: i64 = 3_600_000_000_000;
const DAY_NS: i64 = 24 * HOUR_NS;

/// Flags of `loupe-bench-rca`.
#[derive(Debug, clap::Parser)]
#[command(name = "loupe-bench-rca", about, long_about = None)]
struct Args {
    /// Runs over the two days (about 9 spans each; half fall in the analysed day).
    #[arg(long, default_value_t = 100_000)]
    runs: usize,
    /// Timed repetitions per case (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Data directory: loaded when it does not exist, reused when it does.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(bench(args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn config(runs: usize) -> GenConfig {
    let start = DEFAULT_START_NS;
    GenConfig {
        seed: 42,
        runs,
        start_ns: start,
        spread_ns: 2 * DAY_NS,
        project: ProjectId::DEFAULT.to_owned(),
        faults: vec![Fault {
            tool: "inventory".into(),
            category: Some("phone".into()),
            from_ns: start + DAY_NS + 10 * HOUR_NS,
            to_ns: start + DAY_NS + 16 * HOUR_NS,
            error_rate: 0.2,
            extra_latency_ns: 1_500_000_000,
            error: "inventory service timed out after 5s".into(),
        }],
    }
}

/// The rollups' settings as `loupe serve` derives them from a config with
/// the default labels and the generator's tag rules: the rules' other tags
/// are kept by the hour tier only (`Config::hour_tags`).
fn rollup_config() -> loupe_rollup::RollupConfig {
    let defaults = loupe_rollup::RollupConfig::default();
    loupe_rollup::RollupConfig {
        hour_tags: loupe_gen::tag_rules()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !defaults.labels.contains(n))
            .collect(),
        ..defaults
    }
}

async fn open(dir: &std::path::Path, read_only: bool) -> anyhow::Result<loupe_store::Store> {
    let config = loupe_side::store_config(dir);
    let rollups = rollup_config();
    tokio::task::spawn_blocking(move || {
        if read_only {
            loupe_store::Store::open_read_only(config, rollups)
        } else {
            loupe_store::Store::open(config, rollups)
        }
    })
    .await?
    .with_context(|| format!("cannot open the data directory {}", dir.display()))
}

async fn load(config: &GenConfig, dir: &std::path::Path) -> anyhow::Result<u64> {
    let store = open(dir, false).await?;
    let background = store.spawn_background();
    let tags = TagRules::new(&loupe_gen::tag_rules())?;
    let mut runs = loupe_gen::runs(config).peekable();
    let mut spans = 0u64;
    let started = Instant::now();
    while runs.peek().is_some() {
        let mut batch = Vec::new();
        for run in runs.by_ref().take(500) {
            batch.extend(run.spans);
        }
        // What the ingest pipeline does before the store sees a span.
        for span in &mut batch {
            tags.apply(span);
            loupe_normalise::errors::enrich(span);
        }
        spans += batch.len() as u64;
        loupe_side::append(&store, batch).await?;
    }
    store.flush_all().await?;
    background.abort();
    store.maintain().await?;
    store.shutdown().await?;
    eprintln!("loaded {spans} spans in {:.1?}", started.elapsed());
    Ok(spans)
}

async fn time_case(
    store: &loupe_store::Store,
    req: &RcaRequest,
    reps: usize,
    rollups: bool,
) -> anyhow::Result<(Duration, RcaReport)> {
    store.set_answer_from_rollups(rollups);
    let project = ProjectId::default_project();
    let mut report = loupe_rca::analyse(store, &project, req).await?;
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let started = Instant::now();
        report = loupe_rca::analyse(store, &project, req).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], report))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let config = config(args.runs);
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("loupe-bench-rca-{}", std::process::id()));
            tmp.clone()
        }
    };
    if !dir.exists() {
        load(&config, &dir).await.context("load")?;
    }
    let store = open(&dir, true).await?;
    let window = RcaRequest {
        from_ns: config.start_ns + DAY_NS,
        to_ns: config.start_ns + 2 * DAY_NS,
        ..RcaRequest::default()
    };
    let fast = RcaRequest {
        scope: Some("span_kind!=workflow".into()),
        dimensions: Some(
            [
                "tool_name",
                "model_name",
                "node_type",
                "app_id",
                "workflow_id",
                "span_kind",
                "tags.category",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ..window.clone()
    };
    println!(
        "| case | spans in window + baseline | median | read | attribution | details | queries (from rollups) | top finding |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for (name, req, rollups) in [
        ("default dimensions", &window, true),
        ("default dimensions, rollups off (scan)", &window, false),
        ("series-key dimensions only", &fast, true),
    ] {
        let (median, r) = time_case(&store, req, args.reps, rollups).await?;
        let s = &r.stats;
        println!(
            "| {name} | {} | {} ms | {} ms | {} ms | {} ms (change points {}, exemplars {}, co-occurrence {}) | {} ({}) | {} |",
            r.window_totals.spans + r.baseline_totals.spans,
            median.as_millis(),
            s.read_ms,
            s.attribution_ms,
            s.details_ms,
            s.when_ms,
            s.exemplars_ms,
            s.co_occurrence_ms,
            s.queries,
            s.from_rollups,
            r.findings
                .first()
                .map_or("none".to_owned(), |f| f.filter.clone()),
        );
    }
    if args.data_dir.is_none() {
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
