//! `loupe-bench`: Loupe against Dify's PostgreSQL on the same rows.
//!
//! Generates `--runs` runs with `loupe-gen`, loads them into a fresh Loupe
//! data directory (`Store::append`, flush, compaction) and into Dify
//! 1.14.1's tables in PostgreSQL (rows from [`loupe_dify::rows`], COPY,
//! then Dify's indexes and `VACUUM ANALYZE`), asks both the same questions
//! ([`questions`]), checks the answers agree, and writes a markdown report
//! (docs/BENCHMARKS.md). Optionally measures OTLP ingest into a child
//! `loupe serve` ([`serve`]).
//!
//! A crate of its own so the shipped `loupe` binary links none of it: it
//! is a library (these modules) and the `loupe-bench` binary.

pub mod compare;
pub mod console;
pub mod copy;
pub mod loupe_side;
pub mod pg;
pub mod questions;
pub mod report;
pub mod serve;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use loupe_gen::{DEFAULT_START_NS, Fault, GenConfig};
use loupe_model::{ProjectId, SpanKind};
use loupe_normalise::tags::TagRules;
use loupe_pipeline::redact::{RedactionConfig, Redactor};
use loupe_store::Store;

use compare::{Rows, diff, sort_rows};
use questions::{Context, Question};
use report::Measured;

const DAY_NS: i64 = 86_400_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;
const DAYS: i64 = 7;
const BATCH_RUNS: usize = 500;

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

async fn load_loupe(config: &GenConfig, dir: &std::path::Path) -> anyhow::Result<Load> {
    let store = loupe_side::open(dir, false).await?;
    let background = store.spawn_background();
    let tags = TagRules::new(&loupe_gen::tag_rules())?;
    let redactor = Redactor::new(&redaction_rules())?;
    let mut runs = loupe_gen::runs(config).enumerate().peekable();
    let (mut spans_total, mut append, mut redact) = (0u64, Duration::ZERO, Duration::ZERO);
    let mut ctx = Context {
        start_ns: config.start_ns,
        end_ns: config.start_ns + config.spread_ns,
        run_id: String::new(),
        app_id: String::new(),
        tenant_id: String::new(),
    };
    while runs.peek().is_some() {
        let mut batch = Vec::new();
        for (i, run) in runs.by_ref().take(BATCH_RUNS) {
            let root = run
                .spans
                .iter()
                .find(|s| s.span_kind == Some(SpanKind::Workflow));
            if i == config.runs / 2 {
                ctx.run_id = run.run_id.clone();
            }
            if let Some(root) = root
                && ctx.app_id.is_empty()
                && root.app_name.as_deref() == Some("OrderDesk")
            {
                ctx.app_id = root.app_id.clone().unwrap_or_default();
                let tenant = root.attributes.get("metadata.tenant_id");
                ctx.tenant_id = tenant.cloned().unwrap_or_default();
            }
            batch.extend(run.spans);
        }
        for span in &mut batch {
            tags.apply(span);
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

async fn load_pg(
    config: &GenConfig,
    pg: &pg::Pg,
) -> anyhow::Result<(Duration, Duration, Vec<u64>)> {
    let started = Instant::now();
    let mut loader = pg.loader().await?;
    let mut runs = loupe_gen::runs(config).peekable();
    while runs.peek().is_some() {
        let mut buffers = copy::Buffers::default();
        for run in runs.by_ref().take(BATCH_RUNS) {
            buffers.push_run(&run.spans, &run.inputs);
        }
        if !buffers.is_empty() {
            loader.send(buffers).await?;
        }
    }
    let counts = loader.finish().await?;
    let copy = started.elapsed();
    let started = Instant::now();
    pg.finish_load().await?;
    Ok((copy, started.elapsed(), counts))
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

/// As [`ask_pg`]; also whether every step was answered from rollups.
async fn ask_loupe(
    store: &Store,
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
    dir: &std::path::Path,
    store: &Store,
    ctx: &Context,
    args: &BenchArgs,
    cold_ok: bool,
    rollups: bool,
) -> anyhow::Result<Measured> {
    store.set_answer_from_rollups(rollups);
    let mut cold = None;
    if cold_ok {
        drop_caches();
        let (_, p) = ask_pg(pg, q).await?;
        drop_caches();
        let fresh = loupe_side::open(dir, true).await?;
        fresh.set_answer_from_rollups(rollups);
        let (_, l, _) = ask_loupe(&fresh, q, ctx.end_ns).await?;
        cold = Some((p, l));
    }
    let (mut pg_rows, _) = ask_pg(pg, q).await?;
    let (mut loupe_rows, _, from_rollups) = ask_loupe(store, q, ctx.end_ns).await?;
    if !q.ordered {
        sort_rows(&mut pg_rows);
        sort_rows(&mut loupe_rows);
    }
    let mismatch = diff(&pg_rows, &loupe_rows);
    let (mut pt, mut lt) = (Vec::new(), Vec::new());
    for _ in 0..args.reps.max(1) {
        pt.push(ask_pg(pg, q).await?.1);
        lt.push(ask_loupe(store, q, ctx.end_ns).await?.1);
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
        cold,
        rows: pg_rows.len(),
        mismatch,
    })
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let config = gen_config(&args);
    let load_before = report::loadavg();
    let own_dir = args.data_dir.is_none();
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("loupe-bench-{}", std::process::id()))
    });
    if dir.exists() {
        bail!("the data directory {} already exists", dir.display());
    }
    if args.pg_dsn.is_none() && !args.console_only {
        bail!("--pg-dsn (or LOUPE_BENCH_PG_DSN) is required, unless --console-only");
    }
    // Found before the long load, so a missing binary fails in a second.
    let loupe = if args.otlp_runs > 0 || args.console || args.console_only {
        Some(serve::loupe_binary(args.loupe_bin.as_deref())?)
    } else {
        None
    };
    eprintln!(
        "bench: loading {} runs into Loupe at {}",
        args.runs,
        dir.display()
    );
    let load = load_loupe(&config, &dir).await?;
    let (loupe_total, loupe_parquet) = loupe_side::dir_bytes(&dir);
    let console_md = match (&loupe, args.console || args.console_only) {
        (Some(bin), true) => {
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
            args.runs, load.spans
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
        if own_dir && !args.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Ok(());
    };
    eprintln!("bench: loading PostgreSQL (schema {})", args.pg_schema);
    let pg = pg::Pg::create(&pg_dsn, &args.pg_schema).await?;
    let (copy, index, counts) = load_pg(&config, &pg).await?;
    let sizes = pg.sizes().await?;
    let pg_total: i64 = sizes.iter().map(|s| s.1).sum();
    let settings = pg.settings().await?;
    let store = loupe_side::open(&dir, true).await?;
    let ctx = load.ctx.clone();
    let cold_ok = args.cold && drop_caches();
    let mut measured = Vec::new();
    for q in questions::questions(&ctx) {
        eprintln!("bench: {}", q.name);
        let m = measure(&q, &pg, &dir, &store, &ctx, &args, cold_ok, true).await?;
        let again = m.from_rollups;
        measured.push(m);
        if again {
            // What a scan of the same spans costs, for comparison.
            eprintln!("bench: {} (scan)", q.name);
            let scan = measure(&q, &pg, &dir, &store, &ctx, &args, cold_ok, false).await?;
            measured.push(scan);
        }
    }
    for m in &measured {
        if let Some(d) = &m.mismatch {
            eprintln!("bench: MISMATCH in {:?}: {d}", m.name);
        }
    }
    let load_after = report::loadavg();

    let mut md = String::new();
    let _ = writeln!(md, "## Run: {} runs, {} spans\n", args.runs, load.spans);
    let _ = writeln!(md, "- machine: {}", report::machine());
    let _ = writeln!(
        md,
        "- load average before / after: `{load_before}` / `{load_after}`"
    );
    let _ = writeln!(md, "- commit: `{}`", report::commit());
    let _ = writeln!(md, "- {settings}");
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
        for step in &q.loupe {
            let _ = writeln!(md, "- Loupe: `{}`", step.query);
        }
        md.push('\n');
    }
    let _ = writeln!(md, "### Load and storage\n");
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
    let _ = writeln!(
        md,
        "- PostgreSQL COPY (generation included): {:.1} s for {counts:?} rows (runs, node executions, app logs); Dify's indexes + VACUUM ANALYZE {:.1} s",
        copy.as_secs_f64(),
        index.as_secs_f64()
    );
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
        loupe_total as f64 / load.spans.max(1) as f64,
        pg_total as f64 / counts.get(1).copied().unwrap_or(1).max(1) as f64,
    );
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
    if !args.keep {
        pg.drop_schema().await?;
        if own_dir {
            let _ = std::fs::remove_dir_all(&dir);
        }
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
