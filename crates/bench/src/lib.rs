//! `loupe-bench`: Loupe against Dify's PostgreSQL and DuckDB on the same rows.
//!
//! Generates `--runs` runs with `loupe-gen` (over `--workspaces` Dify
//! workspaces), loads them into Dify 1.14.1's tables in PostgreSQL (rows
//! from [`loupe_dify::rows`], COPY, then Dify's indexes and `VACUUM
//! ANALYZE`), writes the same rows as plain zstd Parquet for DuckDB
//! ([`duck`]), and fills a fresh Loupe data directory one of two ways
//! (`--load`):
//!
//! - `append`: the generated spans straight into `Store::append`, then a
//!   flush and one `maintain` (the path the store's own tests take);
//! - `sync`: a backfill of the PostgreSQL side through the real `[dify]`
//!   sync ([`loupe_dify::sync::Syncer`] writing through the ingest
//!   pipeline with the bench's tag rules), then what the server's
//!   background loop does next (flush, one maintenance pass with the
//!   default settings): the path a user takes.
//!
//! Then it asks the three sides the same questions ([`questions`]), checks
//! the answers agree, and writes a markdown report (docs/BENCHMARKS.md).
//! Optionally measures OTLP ingest into a child `loupe serve` ([`serve`]).
//!
//! A crate of its own so the shipped `loupe` binary links none of it: it
//! is a library (these modules) and the `loupe-bench` binary.

pub mod clickhouse_side;
pub mod compare;
pub mod console;
pub mod copy;
pub mod duck;
pub mod loupe_side;
pub mod pg;
pub mod questions;
pub mod report;
pub mod serve;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use loupe_dify::sync::{SyncConfig, SyncReport, Syncer};
use loupe_gen::{DEFAULT_START_NS, Fault, GenConfig};
use loupe_model::{ProjectId, Span, SpanKind};
use loupe_normalise::tags::TagRules;
use loupe_pipeline::Pipeline;
use loupe_pipeline::redact::{RedactionConfig, Redactor};
use loupe_store::Store;

use compare::{Rows, diff, sort_rows};
use questions::{Context, Question};
use report::Measured;

const DAY_NS: i64 = 86_400_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;
const DAYS: i64 = 7;
const BATCH_RUNS: usize = 500;

/// How the Loupe side is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadMode {
    /// The generated spans straight into `Store::append`, a flush, one
    /// compaction (`maintain`).
    Append,
    /// A backfill of the PostgreSQL side through the real `[dify]` sync,
    /// then the server's background flush and maintenance (defaults).
    Sync,
}

/// Flags of `loupe-bench`.
#[derive(Debug, clap::Parser)]
#[command(name = "loupe-bench", version, about, long_about = None)]
pub struct BenchArgs {
    /// Runs to generate (about 10 spans each).
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// PostgreSQL to load Dify's tables into (a scratch schema is created and dropped).
    /// Required unless --console-only.
    #[arg(long, env = "LOUPE_BENCH_PG_DSN")]
    pg_dsn: Option<String>,
    /// Also time the API calls of every console page against `loupe serve`
    /// on the loaded data (the `loupe` binary as for --otlp-runs).
    #[arg(long)]
    console: bool,
    /// Load Loupe only and time the console pages: no PostgreSQL side.
    #[arg(long)]
    console_only: bool,
    /// Schema for Dify's tables (dropped and recreated).
    #[arg(long, default_value = "loupe_bench")]
    pg_schema: String,
    /// Write the markdown report here too (e.g. docs/BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Timed repetitions per question (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Loupe data directory (must not exist). Default: a fresh one under the temp dir, removed at the end.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also measure with a cold OS page cache (needs root: writes /proc/sys/vm/drop_caches).
    #[arg(long)]
    cold: bool,
    /// Keep the Loupe data directory and the PostgreSQL schema.
    #[arg(long)]
    keep: bool,
    /// Ask the questions again of what a previous run kept (`--keep`): its
    /// --data-dir, --pg-schema and the DuckDB Parquet beside the directory,
    /// with the same --runs, --seed, --workspaces and --load (the runs are
    /// generated again for the ids the questions name). Nothing is loaded
    /// or synced: the report has the questions and the bytes. Without
    /// --keep the schema and the Parquet are dropped afterwards, as after
    /// any run.
    #[arg(long, requires = "data_dir", conflicts_with = "console_only")]
    reuse: bool,
    /// Runs sent over OTLP/HTTP protobuf to a child `loupe serve` (0: skip that part).
    #[arg(long, default_value_t = 0)]
    otlp_runs: usize,
    /// The `loupe` binary `--otlp-runs` starts. Default: `loupe` beside this
    /// executable (both are built into the same target directory).
    #[arg(long)]
    loupe_bin: Option<PathBuf>,
    /// Seconds of the 2× overload after the OTLP run.
    #[arg(long, default_value_t = 20)]
    overload_secs: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How Loupe is filled: `append` (spans into `Store::append`) or `sync`
    /// (the user's path: a backfill from the PostgreSQL side through the
    /// `[dify]` sync, then the server's background maintenance).
    #[arg(long, value_enum, default_value_t = LoadMode::Append)]
    load: LoadMode,
    /// Dify workspaces (tenants) the runs are spread over.
    #[arg(long, default_value_t = 3)]
    workspaces: usize,
    /// A Python with the `duckdb` module (`bash scripts/peers/duckdb.sh`
    /// makes one and prints its path).
    #[arg(long, env = "LOUPE_BENCH_DUCKDB_PYTHON", default_value = "python3")]
    duckdb_python: PathBuf,
    /// Leave DuckDB out (PostgreSQL and Loupe only).
    #[arg(long)]
    no_duckdb: bool,
    /// Also copy the loaded spans into this ClickHouse (through the
    /// ClickHouse backend's writer, as `loupe migrate` does) and ask Loupe's
    /// queries of it: the `[store] backend = "clickhouse"` column. A fresh
    /// database `loupe_bench_<pid>` is made and dropped unless --keep.
    #[arg(long, env = "LOUPE_BENCH_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
}

/// Entry point of `loupe-bench`; fails when an answer differs.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

fn gen_config(args: &BenchArgs) -> GenConfig {
    let start = DEFAULT_START_NS;
    GenConfig {
        seed: args.seed,
        runs: args.runs,
        start_ns: start,
        spread_ns: DAYS * DAY_NS,
        project: ProjectId::DEFAULT.to_owned(),
        // An incident: the inventory service is slow (and sometimes fails)
        // for phone orders during six hours on day 3.
        faults: vec![Fault {
            tool: "inventory".into(),
            category: Some("phone".into()),
            from_ns: start + 2 * DAY_NS + 10 * HOUR_NS,
            to_ns: start + 2 * DAY_NS + 16 * HOUR_NS,
            error_rate: 0.2,
            extra_latency_ns: 1_500_000_000,
            error: "inventory service timed out after 5s".into(),
        }],
    }
}

/// What is generated: the config, the workspaces, and whether times are
/// cut to Dify's precision (µs) before anything sees them.
#[derive(Clone)]
struct Workload {
    config: GenConfig,
    workspaces: usize,
    /// The `sync` load: Dify's tables keep µs, and the sync's durations
    /// come from them (`finished_at - created_at`), so the generated times
    /// are µs from the start and every side holds the same numbers.
    micros: bool,
}

impl Workload {
    fn runs(&self) -> impl Iterator<Item = loupe_gen::Run> + use<> {
        let micros = self.micros;
        loupe_gen::runs_in_workspaces(&self.config, self.workspaces).map(move |mut run| {
            if micros {
                run.spans.iter_mut().for_each(to_micros);
            }
            run
        })
    }
}

fn to_micros(span: &mut Span) {
    let cut = |t: &mut Option<i64>| {
        if let Some(v) = t {
            *v -= v.rem_euclid(1_000);
        }
    };
    cut(&mut span.start_time);
    cut(&mut span.end_time);
}

/// The context of the questions, noted from the generated runs: the run of
/// the middle, the first `OrderDesk` app and its workspace.
fn note_run(ctx: &mut Context, index: usize, runs: usize, run: &loupe_gen::Run) {
    if index == runs / 2 {
        ctx.run_id = run.run_id.clone();
    }
    for s in &run.spans {
        if let (Some(tool), Some(title)) = (&s.tool_name, &s.name)
            && !ctx.tool_titles.get(tool).is_some_and(|t| t.contains(title))
        {
            ctx.tool_titles
                .entry(tool.clone())
                .or_default()
                .insert(title.clone());
        }
    }
    let root = run
        .spans
        .iter()
        .find(|s| s.span_kind == Some(SpanKind::Workflow));
    if let Some(root) = root
        && ctx.app_id.is_empty()
        && root.app_name.as_deref() == Some("OrderDesk")
    {
        ctx.app_id = root.app_id.clone().unwrap_or_default();
        let tenant = root.attributes.get("metadata.tenant_id");
        ctx.tenant_id = tenant.cloned().unwrap_or_default();
    }
}

fn new_context(config: &GenConfig, mode: LoadMode) -> Context {
    Context {
        start_ns: config.start_ns,
        end_ns: config.start_ns + config.spread_ns,
        run_id: String::new(),
        app_id: String::new(),
        tenant_id: String::new(),
        tenant_attr: match mode {
            LoadMode::Append => "metadata.tenant_id",
            LoadMode::Sync => "dify.tenant_id",
        },
        tools_by_title: mode == LoadMode::Sync,
        tool_titles: Default::default(),
    }
}

struct Load {
    spans: u64,
    append: Duration,
    /// Time the `[redaction]` rules of [`redaction_rules`] took over every
    /// span (the spans appended are the redacted ones).
    redact: Duration,
    flush: Duration,
    maintain: Duration,
    ctx: Context,
}

/// The rules the benchmark redacts with: every builtin pattern, an
/// attribute rule and a JSON-path rule (what a bank would turn on).
fn redaction_rules() -> RedactionConfig {
    let rule = |name: &str, extra: serde_json::Value| -> serde_json::Value {
        let mut r = serde_json::json!({ "name": name });
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    };
    let mut rules: Vec<serde_json::Value> = [
        "email",
        "phone",
        "cn_mobile",
        "cn_id_card",
        "api_key",
        "bearer_token",
    ]
    .iter()
    .map(|b| rule(b, serde_json::json!({ "builtin": b })))
    .collect();
    rules.push(rule(
        "headers",
        serde_json::json!({ "attributes": ["http.request.header.*"] }),
    ));
    rules.push(rule(
        "phone-field",
        serde_json::json!({ "json_paths": ["inputs.phone"] }),
    ));
    serde_json::from_value(serde_json::json!({ "rules": rules })).unwrap_or_default()
}

/// The context a load would have noted, without storing anything.
fn context_only(work: &Workload, mode: LoadMode) -> Load {
    let mut ctx = new_context(&work.config, mode);
    let mut spans = 0u64;
    for (i, run) in work.runs().enumerate() {
        note_run(&mut ctx, i, work.config.runs, &run);
        spans += run.spans.len() as u64;
    }
    Load {
        spans,
        append: Duration::ZERO,
        redact: Duration::ZERO,
        flush: Duration::ZERO,
        maintain: Duration::ZERO,
        ctx,
    }
}

async fn load_loupe(work: &Workload, dir: &Path) -> anyhow::Result<Load> {
    let config = &work.config;
    let store = loupe_side::open(dir, false).await?;
    let background = store.spawn_background();
    let tags = TagRules::new(&loupe_side::tag_rules())?;
    let redactor = Redactor::new(&redaction_rules())?;
    let mut runs = work.runs().enumerate().peekable();
    let (mut spans_total, mut append, mut redact) = (0u64, Duration::ZERO, Duration::ZERO);
    let mut ctx = new_context(config, LoadMode::Append);
    while runs.peek().is_some() {
        let mut batch = Vec::new();
        for (i, run) in runs.by_ref().take(BATCH_RUNS) {
            note_run(&mut ctx, i, config.runs, &run);
            batch.extend(run.spans);
        }
        // What the ingest pipeline does before the store sees a span.
        for span in &mut batch {
            tags.apply(span);
            loupe_normalise::errors::enrich(span);
        }
        let started = Instant::now();
        for span in &mut batch {
            redactor.apply(span);
        }
        redact += started.elapsed();
        spans_total += batch.len() as u64;
        append += loupe_side::append(&store, batch).await?;
    }
    let started = Instant::now();
    store.flush_all().await?;
    let flush = started.elapsed();
    background.abort();
    let started = Instant::now();
    store.maintain().await?;
    let maintain = started.elapsed();
    store.shutdown().await?;
    Ok(Load {
        spans: spans_total,
        append,
        redact,
        flush,
        maintain,
        ctx,
    })
}

/// What loading PostgreSQL (and writing DuckDB's Parquet) did.
struct PgLoad {
    /// COPY, generation and the Parquet files included.
    copy: Duration,
    /// Dify's indexes and `VACUUM ANALYZE`.
    index: Duration,
    /// Rows of runs, node executions, app logs.
    counts: Vec<u64>,
    /// The Parquet files DuckDB reads: (table, path, bytes).
    parquet: Vec<(&'static str, PathBuf, u64)>,
    ctx: Context,
}

async fn load_pg(
    work: &Workload,
    mode: LoadMode,
    pg: &pg::Pg,
    parquet_dir: Option<&Path>,
) -> anyhow::Result<PgLoad> {
    let config = &work.config;
    let started = Instant::now();
    let mut loader = pg.loader().await?;
    let mut parquet = parquet_dir.map(duck::ParquetTables::create).transpose()?;
    let mut lookups = pg::LookupRows::default();
    let mut ctx = new_context(config, mode);
    let mut runs = work.runs().enumerate().peekable();
    while runs.peek().is_some() {
        let mut buffers = copy::Buffers::default();
        for (i, run) in runs.by_ref().take(BATCH_RUNS) {
            note_run(&mut ctx, i, config.runs, &run);
            if let Some(rows) = loupe_dify::rows::run_rows(&run.spans, &run.inputs) {
                buffers.push_rows(&rows);
                if let Some(p) = parquet.as_mut() {
                    p.push(&rows)?;
                }
                lookups.add(rows.app, rows.end_user, &rows.run.tenant_id);
            }
        }
        if let Some(p) = parquet.as_mut() {
            p.flush()?;
        }
        if !buffers.is_empty() {
            loader.send(buffers).await?;
        }
    }
    let counts = loader.finish().await?;
    pg.insert_lookups(&lookups).await?;
    let parquet = parquet.map(duck::ParquetTables::finish).transpose()?;
    let copy = started.elapsed();
    let started = Instant::now();
    pg.finish_load().await?;
    Ok(PgLoad {
        copy,
        index: started.elapsed(),
        counts,
        parquet: parquet.unwrap_or_default(),
        ctx,
    })
}

/// A fresh schema filled with the generated runs (and DuckDB's Parquet
/// beside the data directory unless `--no-duckdb`).
async fn fill_pg(
    work: &Workload,
    args: &BenchArgs,
    dsn: &str,
    parquet_dir: &Path,
) -> anyhow::Result<(pg::Pg, PgLoad)> {
    eprintln!("bench: loading PostgreSQL (schema {})", args.pg_schema);
    let pg = pg::Pg::create(dsn, &args.pg_schema).await?;
    if !args.no_duckdb {
        // Fails here, in a second, rather than after the load.
        if parquet_dir.exists() {
            bail!("{} already exists", parquet_dir.display());
        }
        let probe = tempfile::tempdir()?;
        let files = duck::ParquetTables::create(probe.path())?.finish()?;
        let tables = files.into_iter().map(|(t, p, _)| (t, p)).collect();
        duck::Duck::start(&args.duckdb_python, tables).await?;
    }
    let load = load_pg(
        work,
        args.load,
        &pg,
        (!args.no_duckdb).then_some(parquet_dir),
    )
    .await?;
    Ok((pg, load))
}

/// The schema and Parquet a previous run kept (`--reuse`); the runs are
/// generated again (not stored) for the context of the questions.
async fn reuse_pg(
    work: &Workload,
    args: &BenchArgs,
    dsn: &str,
    parquet_dir: &Path,
) -> anyhow::Result<(pg::Pg, PgLoad)> {
    eprintln!(
        "bench: reusing PostgreSQL schema {} and the DuckDB Parquet in {}",
        args.pg_schema,
        parquet_dir.display()
    );
    let pg = pg::Pg::attach(dsn, &args.pg_schema).await?;
    let parquet = if args.no_duckdb {
        Vec::new()
    } else {
        duck::kept_tables(parquet_dir)?
    };
    let counts = pg.counts().await?;
    if counts.first().copied() != Some(work.config.runs as u64) {
        bail!(
            "--reuse: schema {} holds {:?} runs, not --runs {}: pass the flags of the run that kept it",
            args.pg_schema,
            counts.first(),
            work.config.runs
        );
    }
    eprintln!("bench: generating the runs again for the questions' context");
    let ctx = context_only(work, args.load).ctx;
    Ok((
        pg,
        PgLoad {
            copy: Duration::ZERO,
            index: Duration::ZERO,
            counts,
            parquet,
            ctx,
        },
    ))
}

/// What the backfill through the Dify sync did.
struct SyncLoad {
    report: SyncReport,
    sync: Duration,
    /// The flush the server's loop does next (memtable to parts).
    flush: Duration,
    /// Its next maintenance pass (default settings).
    maintain: Duration,
    maintenance: loupe_store::MaintenanceReport,
    /// Parts and hidden rows after the sync's flush, before maintenance.
    before: PartsState,
    /// The same after maintenance.
    after: PartsState,
}

/// Live parts, their rows (hidden versions included) and hidden rows.
#[derive(Debug, Clone, Copy, Default)]
struct PartsState {
    parts: usize,
    rows: u64,
    hidden: u64,
}

/// Rows a query sees (every project's default, every time), by a scan.
async fn parts_state(store: &Store) -> anyhow::Result<PartsState> {
    let stats = store.stats();
    store.set_answer_from_rollups(false);
    let visible = loupe_side::run(
        store,
        &ProjectId::default_project(),
        &loupe_side::LoupeQuery::Lang(
            "from 1970-01-01T00:00:00Z to 2100-01-01T00:00:00Z | count()".into(),
        ),
        loupe_model::time::now_ns(),
        &[],
        false,
    )
    .await;
    store.set_answer_from_rollups(true);
    let visible = match visible?.0.first().and_then(|r| r.first()) {
        Some(compare::Cell::Num(n)) => *n as u64,
        _ => 0,
    };
    Ok(PartsState {
        parts: stats.parts,
        rows: stats.part_rows,
        hidden: stats.part_rows.saturating_sub(visible),
    })
}

/// Backfills a fresh store in `dir` from the PostgreSQL side through the
/// `[dify]` sync, as `loupe dify sync --once` (or `serve` with `[dify]`)
/// does: the store's background loop running, the ingest pipeline with the
/// bench's tag rules, `[dify]`'s defaults (batch 500, every workspace to
/// the default project: no `[[dify.projects]]` rules). Then what the
/// server's loop does once the backfill is over, at once rather than on
/// its timers: the flush (`flush_age`) and one maintenance pass
/// (`maintenance_interval`), with the store's default settings.
async fn sync_loupe(dsn: &str, dir: &Path, runs: u64) -> anyhow::Result<SyncLoad> {
    let store = loupe_side::open(dir, false).await?;
    let background = store.spawn_background();
    let tags = TagRules::new(&loupe_side::tag_rules())?;
    let pipeline = Pipeline::new(Arc::new(store.clone()), tags);
    let mut syncer = Syncer::connect(SyncConfig::new(dsn, dir), pipeline)
        .await
        .context("the Dify sync cannot start")?;
    let started = Instant::now();
    let last = Arc::new(std::sync::Mutex::new(started));
    syncer.on_progress(Arc::new(move |p| {
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= Duration::from_secs(5) || p.done >= runs {
            *last = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "bench: sync {}/{} runs ({:.0}%) in {secs:.0} s, {:.0} runs/s",
                p.done,
                runs,
                p.done as f64 * 100.0 / runs.max(1) as f64,
                p.done as f64 / secs
            );
        }
    }));
    let report = syncer.sync_once().await.context("the Dify sync failed")?;
    let sync = started.elapsed();
    drop(syncer);
    let started = Instant::now();
    store.flush_all().await?;
    let flush = started.elapsed();
    let before = parts_state(&store).await?;
    eprintln!("bench: after the sync: {before:?}; maintenance");
    let started = Instant::now();
    let maintenance = store.maintain().await?;
    let maintain = started.elapsed();
    let after = parts_state(&store).await?;
    eprintln!("bench: after maintenance: {after:?} ({maintenance:?})");
    background.abort();
    store.shutdown().await?;
    Ok(SyncLoad {
        report,
        sync,
        flush,
        maintain,
        maintenance,
        before,
        after,
    })
}

/// Runs a question's steps on one side; (compared rows, total time).
async fn ask_pg(pg: &pg::Pg, q: &Question) -> anyhow::Result<(Rows, Duration)> {
    let (mut all, mut took) = (Rows::new(), Duration::ZERO);
    for step in &q.pg {
        let keep = step.compare.clone().unwrap_or_default();
        let (rows, t) = pg.run(&step.query, &keep).await?;
        took += t;
        if step.compare.is_some() {
            all.extend(rows);
        }
    }
    Ok((all, took))
}

/// As [`ask_pg`], on DuckDB.
async fn ask_duck(duck: &mut duck::Duck, q: &Question) -> anyhow::Result<(Rows, Duration)> {
    let (mut all, mut took) = (Rows::new(), Duration::ZERO);
    for step in &q.duck {
        let keep = step.compare.clone().unwrap_or_default();
        let (rows, t) = duck.run(&step.query, &keep).await?;
        took += t;
        if step.compare.is_some() {
            all.extend(rows);
        }
    }
    Ok((all, took))
}

/// As [`ask_pg`]; also whether every step was answered from rollups.
async fn ask_loupe(
    store: &dyn loupe_backend::SpanReader,
    q: &Question,
    now: i64,
) -> anyhow::Result<(Rows, Duration, bool)> {
    let project = ProjectId::default_project();
    let (mut all, mut took, mut from_rollups) = (Rows::new(), Duration::ZERO, true);
    for step in &q.loupe {
        let keep = step.compare.clone().unwrap_or_default();
        let (rows, t, rollups) =
            loupe_side::run(store, &project, &step.query, now, &keep, q.loupe_nodes_only).await?;
        took += t;
        from_rollups &= rollups;
        if step.compare.is_some() {
            all.extend(rows);
        }
    }
    Ok((all, took, from_rollups))
}

/// The command line, with the PostgreSQL DSN (it may hold a password) elided.
fn command_line() -> String {
    let mut out = vec!["loupe-bench".to_owned()];
    let mut hide = false;
    for arg in std::env::args().skip(1) {
        if hide {
            out.push("$PG_DSN".into());
            hide = false;
        } else if arg == "--pg-dsn" {
            out.push(arg);
            hide = true;
        } else if arg.starts_with("--pg-dsn=") {
            out.push("--pg-dsn=$PG_DSN".into());
        } else {
            out.push(arg);
        }
    }
    out.join(" ")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Syncs and drops the OS page cache; false when not permitted.
fn drop_caches() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Measures one question. `rollups`: whether Loupe may answer from its
/// hour rollups (off: every question scans spans).
#[allow(clippy::too_many_arguments)]
async fn measure(
    q: &Question,
    pg: &pg::Pg,
    mut duck: Option<&mut duck::Duck>,
    dir: &Path,
    store: &Store,
    ctx: &Context,
    args: &BenchArgs,
    cold_ok: bool,
    rollups: bool,
    clickhouse: Option<&loupe_clickhouse::ClickHouseStore>,
) -> anyhow::Result<Measured> {
    store.set_answer_from_rollups(rollups);
    let mut cold = None;
    let mut duck_cold = None;
    if cold_ok {
        drop_caches();
        let (_, p) = ask_pg(pg, q).await?;
        drop_caches();
        let fresh = loupe_side::open(dir, true).await?;
        fresh.set_answer_from_rollups(rollups);
        let (_, l, _) = ask_loupe(&fresh, q, ctx.end_ns).await?;
        cold = Some((p, l));
        if let Some(d) = duck.as_deref_mut() {
            // A fresh database (DuckDB's caches gone), then the page cache.
            d.open().await?;
            drop_caches();
            duck_cold = Some(ask_duck(d, q).await?.1);
        }
    }
    let (mut pg_rows, _) = ask_pg(pg, q).await?;
    let (mut loupe_rows, _, from_rollups) = ask_loupe(store, q, ctx.end_ns).await?;
    let mut duck_rows = match duck.as_deref_mut() {
        Some(d) => Some(ask_duck(d, q).await?.0),
        None => None,
    };
    if !q.ordered {
        sort_rows(&mut pg_rows);
        sort_rows(&mut loupe_rows);
        if let Some(rows) = duck_rows.as_mut() {
            sort_rows(rows);
        }
    }
    let mut ch_rows = match clickhouse {
        Some(ch) => Some(ask_loupe(ch, q, ctx.end_ns).await?.0),
        None => None,
    };
    if !q.ordered
        && let Some(rows) = ch_rows.as_mut()
    {
        sort_rows(rows);
    }
    let mismatch = match diff(&pg_rows, &loupe_rows) {
        Some(d) => Some(format!("Loupe: {d}")),
        None => duck_rows
            .as_ref()
            .and_then(|rows| diff(&pg_rows, rows))
            .map(|d| format!("DuckDB: {d}"))
            .or_else(|| {
                ch_rows
                    .as_ref()
                    .and_then(|rows| diff(&pg_rows, rows))
                    .map(|d| format!("ClickHouse: {d}"))
            }),
    };
    let (mut pt, mut lt, mut dt, mut ct) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.reps.max(1) {
        pt.push(ask_pg(pg, q).await?.1);
        lt.push(ask_loupe(store, q, ctx.end_ns).await?.1);
        if let Some(d) = duck.as_deref_mut() {
            dt.push(ask_duck(d, q).await?.1);
        }
        if let Some(ch) = clickhouse {
            ct.push(ask_loupe(ch, q, ctx.end_ns).await?.1);
        }
    }
    store.set_answer_from_rollups(true);
    Ok(Measured {
        name: if from_rollups {
            format!("{} (rollups)", q.name)
        } else if rollups {
            q.name.to_owned()
        } else {
            format!("{} (scan, rollups off)", q.name)
        },
        from_rollups,
        pg: median(pt),
        loupe: median(lt),
        duck: duck.is_some().then(|| median(dt)),
        cold,
        duck_cold,
        clickhouse: clickhouse.is_some().then(|| median(ct)),
        rows: pg_rows.len(),
        mismatch,
    })
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let config = gen_config(&args);
    let work = Workload {
        config: config.clone(),
        workspaces: args.workspaces.max(1),
        micros: args.load == LoadMode::Sync,
    };
    let load_before = report::loadavg();
    let own_dir = args.data_dir.is_none();
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("loupe-bench-{}", std::process::id()))
    });
    // A console-only run may time the pages again on a directory a
    // previous run loaded and kept (`--keep`); the runs are generated again
    // (not stored) for the ids the pages ask about.
    let exists = dir.exists();
    if exists && !args.console_only && !args.reuse {
        bail!(
            "the data directory {} already exists (--reuse asks the questions of a kept run, \
             --console-only times the pages of one)",
            dir.display()
        );
    }
    if args.reuse && !exists {
        bail!(
            "--reuse: the data directory {} does not exist (keep one with --keep)",
            dir.display()
        );
    }
    // The console pages timed again on a directory a run kept.
    let reuse = exists && args.console_only;
    if args.pg_dsn.is_none() && !args.console_only {
        bail!("--pg-dsn (or LOUPE_BENCH_PG_DSN) is required, unless --console-only");
    }
    if args.console_only && args.load == LoadMode::Sync {
        bail!("--load sync reads the PostgreSQL side: it cannot go with --console-only");
    }
    // Found before the long load, so a missing binary fails in a second.
    let loupe = if args.otlp_runs > 0 || args.console || args.console_only {
        Some(serve::loupe_binary(args.loupe_bin.as_deref())?)
    } else {
        None
    };
    // The append load fills Loupe first (the console pages need nothing
    // else); the sync load reads the PostgreSQL side, so it comes after it.
    let load = if reuse {
        eprintln!(
            "bench: reusing the data in {} (the runs are generated, not stored)",
            dir.display()
        );
        Some(context_only(&work, args.load))
    } else if args.load == LoadMode::Append {
        eprintln!(
            "bench: loading {} runs into Loupe at {} (Store::append)",
            args.runs,
            dir.display()
        );
        Some(load_loupe(&work, &dir).await?)
    } else {
        None
    };
    let console_md = match (&loupe, &load, args.console || args.console_only) {
        (Some(bin), Some(load), true) => {
            eprintln!("bench: console pages against loupe serve");
            let pages = console::run(bin, &dir, &load.ctx, args.reps).await?;
            let mut md = String::new();
            let _ = writeln!(
                md,
                "### Console pages (median of {} after a warm-up)\n",
                args.reps.max(1)
            );
            md.push_str(&console::table(&pages));
            Some(md)
        }
        _ => None,
    };
    let Some(pg_dsn) = args.pg_dsn.clone() else {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "## Run: {} runs, {} spans (console only)\n",
            args.runs,
            load.as_ref().map_or(0, |l| l.spans)
        );
        let _ = writeln!(md, "- machine: {}", report::machine());
        let _ = writeln!(
            md,
            "- load average before / after: `{load_before}` / `{}`",
            report::loadavg()
        );
        let _ = writeln!(md, "- commit: `{}`", report::commit());
        let _ = writeln!(md, "- command: `{}`\n", command_line());
        md.push_str(console_md.as_deref().unwrap_or_default());
        println!("{md}");
        if let Some(out) = &args.out {
            std::fs::write(out, &md).with_context(|| format!("cannot write {}", out.display()))?;
        }
        if own_dir && !args.keep && !reuse {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Ok(());
    };
    let parquet_dir = dir.with_extension("duckdb");
    let (pg, pg_load) = if args.reuse {
        reuse_pg(&work, &args, &pg_dsn, &parquet_dir).await?
    } else {
        fill_pg(&work, &args, &pg_dsn, &parquet_dir).await?
    };
    let counts = pg_load.counts.clone();
    let sizes = pg.sizes().await?;
    let pg_total: i64 = sizes.iter().map(|s| s.1).sum();
    let settings = pg.settings().await?;
    let synced = match args.load {
        LoadMode::Sync if !args.reuse => {
            eprintln!(
                "bench: backfilling Loupe at {} through the Dify sync",
                dir.display()
            );
            let sep = if pg_dsn.contains('?') { '&' } else { '?' };
            let dsn = format!("{pg_dsn}{sep}options=-csearch_path%3D{}", args.pg_schema);
            Some(sync_loupe(&dsn, &dir, counts.first().copied().unwrap_or(0)).await?)
        }
        _ => None,
    };
    let (loupe_total, loupe_parquet) = loupe_side::dir_bytes(&dir);
    let loupe_parts = loupe_side::dir_breakdown(&dir);
    let mut duck = if args.no_duckdb {
        None
    } else {
        let tables = pg_load
            .parquet
            .iter()
            .map(|(t, p, _)| (*t, p.clone()))
            .collect();
        Some(duck::Duck::start(&args.duckdb_python, tables).await?)
    };
    let store = loupe_side::open(&dir, true).await?;
    let clickhouse = match &args.clickhouse_url {
        Some(url) => {
            eprintln!("bench: copying the spans into ClickHouse at {url}");
            Some(clickhouse_side::load(url, &store).await?)
        }
        None => None,
    };
    let ctx = match &load {
        Some(l) => l.ctx.clone(),
        None => pg_load.ctx.clone(),
    };
    let cold_ok = args.cold && drop_caches();
    let mut measured = Vec::new();
    for q in questions::questions(&ctx) {
        eprintln!("bench: {}", q.name);
        let m = measure(
            &q,
            &pg,
            duck.as_mut(),
            &dir,
            &store,
            &ctx,
            &args,
            cold_ok,
            true,
            clickhouse.as_ref().map(|c| &c.store),
        )
        .await?;
        let again = m.from_rollups;
        measured.push(m);
        if again {
            // What a scan of the same spans costs, for comparison.
            eprintln!("bench: {} (scan)", q.name);
            let scan = measure(
                &q,
                &pg,
                duck.as_mut(),
                &dir,
                &store,
                &ctx,
                &args,
                cold_ok,
                false,
                None,
            )
            .await?;
            measured.push(scan);
        }
    }
    for m in &measured {
        if let Some(d) = &m.mismatch {
            eprintln!("bench: MISMATCH in {:?}: {d}", m.name);
        }
    }
    let load_after = report::loadavg();

    let spans = match (&load, &synced) {
        (Some(l), _) => l.spans,
        (None, Some(s)) => s.report.spans,
        (None, None) if args.reuse => parts_state(&store).await.map(|s| s.rows - s.hidden)?,
        (None, None) => 0,
    };
    let mut md = String::new();
    let how = match (args.load, args.reuse) {
        (LoadMode::Append, false) => "Store::append",
        (LoadMode::Sync, false) => "backfilled through the Dify sync",
        (LoadMode::Append, true) => "Store::append by a kept run, reused",
        (LoadMode::Sync, true) => "backfilled through the Dify sync by a kept run, reused",
    };
    let _ = writeln!(
        md,
        "## Run: {} runs in {} workspaces, {spans} spans ({how})\n",
        args.runs, work.workspaces
    );
    let _ = writeln!(md, "- machine: {}", report::machine());
    let _ = writeln!(
        md,
        "- load average before / after: `{load_before}` / `{load_after}`"
    );
    let _ = writeln!(md, "- commit: `{}`", report::commit());
    let _ = writeln!(md, "- {settings}");
    if let Some(d) = &duck {
        let _ = writeln!(
            md,
            "- DuckDB {} (Python module, 2 threads) over the same rows as plain zstd Parquet",
            d.version
        );
    }
    let _ = writeln!(md, "- command: `{}`\n", command_line());
    let _ = writeln!(
        md,
        "### Questions (median of {} after a warm-up)\n",
        args.reps.max(1)
    );
    md.push_str(&report::table(&measured));
    if let Some(c) = &console_md {
        md.push('\n');
        md.push_str(c);
    }
    if duck.is_some() {
        md.push_str(
            "\n*Same answer*: PostgreSQL's, Loupe's and DuckDB's rows are equal (floats to \
             1e-5 relative). *DuckDB / Loupe*: how many times longer DuckDB took.\n",
        );
    }
    if measured.iter().any(|m| m.from_rollups) {
        md.push_str(
            "\n*(rollups)*: Loupe answered from its hour rollups, in memory, reading no span \
             (`[store] answer_from_rollups`); the next row, *(scan, rollups off)*, is the same \
             question scanning the spans.\n",
        );
    }
    if args.cold && !cold_ok {
        md.push_str(
            "\nCold cache: dropping the page cache was not permitted; only warm numbers.\n",
        );
    }
    let per_s = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    md.push_str("\n### The queries\n\n");
    for q in questions::questions(&ctx) {
        let _ = writeln!(md, "**{}**\n", q.name);
        for step in &q.pg {
            let _ = writeln!(md, "- PostgreSQL: `{}`", step.query);
        }
        for step in q
            .duck
            .iter()
            .filter(|d| !q.pg.iter().any(|p| p.query == d.query))
        {
            let _ = writeln!(md, "- DuckDB: `{}`", step.query);
        }
        for step in &q.loupe {
            let _ = writeln!(md, "- Loupe: `{}`", step.query);
        }
        md.push('\n');
    }
    let _ = writeln!(md, "### Load and storage\n");
    if let Some(load) = &load {
        let _ = writeln!(
            md,
            "- Loupe `Store::append` (generation excluded, interval WAL durability, background flushes): {:.0} spans/s ({:.1} s); final flush {:.1} s; compaction (maintain) {:.1} s; append + flush: {:.0} spans/s",
            per_s(load.spans, load.append),
            load.append.as_secs_f64(),
            load.flush.as_secs_f64(),
            load.maintain.as_secs_f64(),
            per_s(load.spans, load.append + load.flush)
        );
        let _ = writeln!(
            md,
            "- PII redaction (`[redaction]`: every builtin pattern, an attribute rule and a JSON-path rule; the pipeline's cost before the append): {:.0} spans/s alone ({:.2} s over {} spans); append without rules {:.0} spans/s, redaction + append {:.0} spans/s",
            per_s(load.spans, load.redact),
            load.redact.as_secs_f64(),
            load.spans,
            per_s(load.spans, load.append),
            per_s(load.spans, load.append + load.redact),
        );
    }
    if let Some(s) = &synced {
        let rows: u64 = counts.iter().sum();
        let runs = counts.first().copied().unwrap_or(0);
        let _ = writeln!(
            md,
            "- Dify sync backfill (`[dify]` defaults: batch 500, tag rules `category` and `tier`, the store's background loop running): {rows} rows of Dify's tables ({runs} runs, their node executions and app logs) in {:.1} s = {:.0} rows/s ({:.0} runs/s); {} spans written = {:.0} spans/s",
            s.sync.as_secs_f64(),
            per_s(rows, s.sync),
            per_s(runs, s.sync),
            s.report.spans,
            per_s(s.report.spans, s.sync),
        );
        let _ = writeln!(
            md,
            "- after the backfill, the server's background loop (its next steps, run at once instead of on its timers; default settings): flush {:.1} s, then {} parts holding {} rows of which {} hidden versions; one maintenance pass {:.1} s ({} parts compacted into {}, {} hidden rows dropped, {} full-text indexes built), then {} parts holding {} rows of which {} hidden",
            s.flush.as_secs_f64(),
            s.before.parts,
            s.before.rows,
            s.before.hidden,
            s.maintain.as_secs_f64(),
            s.maintenance.compacted_parts,
            s.maintenance.new_parts,
            s.maintenance.dropped_rows,
            s.maintenance.indexed_parts,
            s.after.parts,
            s.after.rows,
            s.after.hidden,
        );
    }
    if args.reuse {
        let _ = writeln!(
            md,
            "- `--reuse`: the data a previous run kept, asked again; no load, sync or maintenance in this run ({counts:?} rows: runs, node executions, app logs)"
        );
    } else {
        let _ = writeln!(
            md,
            "- PostgreSQL COPY (generation{} included): {:.1} s for {counts:?} rows (runs, node executions, app logs); Dify's indexes + VACUUM ANALYZE {:.1} s",
            if duck.is_some() {
                " and DuckDB's Parquet files"
            } else {
                ""
            },
            pg_load.copy.as_secs_f64(),
            pg_load.index.as_secs_f64()
        );
    }
    let _ = writeln!(
        md,
        "- storage: PostgreSQL {:.1} MB ({}), Loupe {:.1} MB on disk ({:.1} MB Parquet); PostgreSQL / Loupe = {:.1}×; {:.0} B/span in Loupe, {:.0} B/node execution in PostgreSQL",
        pg_total as f64 / 1e6,
        sizes
            .iter()
            .map(|(t, b)| format!("{t} {:.1} MB", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", "),
        loupe_total as f64 / 1e6,
        loupe_parquet as f64 / 1e6,
        pg_total as f64 / (loupe_total.max(1)) as f64,
        loupe_total as f64 / spans.max(1) as f64,
        pg_total as f64 / counts.get(1).copied().unwrap_or(1).max(1) as f64,
    );
    let _ = writeln!(
        md,
        "- Loupe's bytes by kind (replaced parts awaiting deletion, which a later maintenance pass deletes once no reader holds them, are not in Loupe's total): {}",
        loupe_parts
            .iter()
            .map(|(k, b)| format!("{k} {:.1} MB", *b as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !pg_load.parquet.is_empty() {
        let total: u64 = pg_load.parquet.iter().map(|p| p.2).sum();
        let _ = writeln!(
            md,
            "- DuckDB's plain zstd Parquet of Dify's rows: {:.1} MB ({}); PostgreSQL / this = {:.1}×",
            total as f64 / 1e6,
            pg_load
                .parquet
                .iter()
                .map(|(t, _, b)| format!("{t} {:.1} MB", *b as f64 / 1e6))
                .collect::<Vec<_>>()
                .join(", "),
            pg_total as f64 / total.max(1) as f64,
        );
    }
    if let Some(ch) = &clickhouse {
        let bytes = ch.bytes().await?;
        let _ = writeln!(
            md,
            "- ClickHouse backend ({} {}, `[store] backend = \"clickhouse\"`): the {} spans copied from Loupe's store through the backend's writer (read the stored versions, merge, insert; 5,000 spans per append, as `loupe migrate`) in {:.1} s = {:.0} spans/s; {:.1} MB of active parts on the server (PostgreSQL / ClickHouse = {:.1}×)",
            ch.store.server_version(),
            ch.store.profile().as_str(),
            ch.spans,
            ch.took.as_secs_f64(),
            per_s(ch.spans, ch.took),
            bytes as f64 / 1e6,
            pg_total as f64 / bytes.max(1) as f64,
        );
    }
    if let Some(loupe) = &loupe {
        eprintln!(
            "bench: OTLP ingest into loupe serve ({} runs)",
            args.otlp_runs
        );
        let otlp_config = GenConfig {
            runs: args.otlp_runs,
            seed: args.seed + 1,
            ..config.clone()
        };
        let serve_dir = dir.with_extension("serve");
        let ingest = serve::run(loupe, &otlp_config, &serve_dir, args.overload_secs).await;
        let _ = std::fs::remove_dir_all(&serve_dir);
        let ingest = ingest?;
        let rate = per_s(ingest.spans, ingest.wall);
        let (ok, r429, r503, retry, other) = ingest.overload;
        let _ = writeln!(
            md,
            "- OTLP/HTTP protobuf into `loupe serve` (release, interval durability, 4 concurrent clients on the same machine, 50 runs per request): {} spans in {:.1} s = {rate:.0} spans/s wall; server CPU {:.1} s = {:.0} spans per CPU-second; peak RSS (VmHWM) {:.0} MB",
            ingest.spans,
            ingest.wall.as_secs_f64(),
            ingest.cpu_s,
            ingest.spans as f64 / ingest.cpu_s.max(1e-9),
            ingest.hwm_kb as f64 / 1024.0,
        );
        let _ = writeln!(
            md,
            "- 2× overload ({:.0} spans/s offered for {} s): {ok} accepted, {r429} × 429, {r503} × 503, {retry} answers with Retry-After, {other} other/failed (by outcome: {:?}); max RSS during the overload {:.0} MB",
            ingest.offered,
            args.overload_secs,
            ingest.outcomes,
            ingest.overload_rss_kb as f64 / 1024.0,
        );
    }
    println!("{md}");
    if let Some(out) = &args.out {
        std::fs::write(out, &md).with_context(|| format!("cannot write {}", out.display()))?;
    }
    drop(store);
    drop(duck);
    if !args.keep {
        if let Some(ch) = &clickhouse {
            ch.drop_database().await?;
        }
        pg.drop_schema().await?;
        if own_dir {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let _ = std::fs::remove_dir_all(&parquet_dir);
    }
    let bad: Vec<&str> = measured
        .iter()
        .filter(|m| m.mismatch.is_some())
        .map(|m| m.name.as_str())
        .collect();
    if !bad.is_empty() {
        bail!("answers differ for: {}", bad.join("; "));
    }
    Ok(())
}
