//! `loupe dify health` (one sample of the Dify database's health, added to
//! the history in the data directory, with the growth computed from it)
//! and `loupe dify cleanups` (the recorded cleanup runs).

use std::fmt::Write as _;

use anyhow::Context;
use loupe_dify::health::{CleanupHistory, CleanupRecord, HealthReport, Monitor};

use crate::open::ConfigArgs;

/// `loupe dify health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Dify's database: postgres://user:password@host:port/database.
    /// Default: dify.dsn of the config.
    #[arg(long, env = "LOUPE_DIFY_DSN")]
    dsn: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Tables listed (largest first).
    #[arg(long, default_value_t = 15)]
    top: usize,
    #[command(flatten)]
    config: ConfigArgs,
}

/// `loupe dify cleanups`.
#[derive(Debug, clap::Args)]
pub struct CleanupsArgs {
    /// Runs listed, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `loupe dify health`.
pub async fn health(args: HealthArgs) -> anyhow::Result<()> {
    let mut config = args.config.resolve()?;
    if let Some(dsn) = &args.dsn {
        config.dify.dsn = Some(dsn.clone());
    }
    if config.dify.dsn.is_none() {
        anyhow::bail!("no Dify database: set [dify] dsn or --dsn");
    }
    // Taken now, whatever health_interval says.
    if humantime::parse_duration(&config.dify.health_interval).is_ok_and(|d| d.is_zero()) {
        config.dify.health_interval = "1m".into();
    }
    let data_dir = config.store.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let retention = super::shortest_retention(&config)?;
    let Some(health) = config.dify.health(&data_dir, retention)? else {
        anyhow::bail!("no Dify database: set [dify] dsn or --dsn");
    };
    let mut monitor = Monitor::connect(health).await?;
    monitor.sample_once().await?;
    let report = monitor.state().report();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, args.top));
    }
    Ok(())
}

/// Runs `loupe dify cleanups`.
pub fn cleanups(args: CleanupsArgs) -> anyhow::Result<()> {
    let config = args.config.resolve()?;
    let history = CleanupHistory::load(&CleanupHistory::path(&config.store.data_dir))?;
    let runs: Vec<&CleanupRecord> = history.runs.iter().rev().take(args.limit).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!(
            "no cleanup recorded in {} (run `loupe dify cleanup`)",
            config.store.data_dir.display()
        );
        return Ok(());
    }
    print!("{}", render_cleanups(&runs));
    let (rows, bytes) = history.totals();
    println!(
        "{} runs recorded; {} rows deleted, ≈ {} freed in all",
        history.runs.len(),
        rows,
        super::cleanup::human_bytes(bytes)
    );
    Ok(())
}

fn bytes(n: f64) -> String {
    if n < 0.0 {
        format!("-{}", super::cleanup::human_bytes((-n) as u64))
    } else {
        super::cleanup::human_bytes(n as u64)
    }
}

fn date(unix: Option<f64>) -> String {
    unix.and_then(|s| chrono::DateTime::from_timestamp(s as i64, 0))
        .map_or_else(
            || "never".into(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
}

/// The report as text.
pub fn render(r: &HealthReport, top: usize) -> String {
    let mut out = String::new();
    let Some(s) = &r.sample else {
        let _ = writeln!(
            out,
            "no sample: {}",
            r.last_error.as_deref().unwrap_or("not taken yet")
        );
        return out;
    };
    let _ = write!(
        out,
        "Dify database {}: {}",
        r.database.as_deref().unwrap_or("?"),
        bytes(s.database_bytes as f64)
    );
    if let Some(g) = &r.database_growth {
        let _ = write!(
            out,
            ", growing {}/day (over {:.1} h of samples); in 30 days ≈ {}, in 90 days ≈ {}",
            bytes(g.bytes_per_day),
            g.window_hours,
            bytes(g.projected_30d_bytes),
            bytes(g.projected_90d_bytes)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<34} {:>10} {:>10} {:>10} {:>10} {:>12} {:>6} {:>16} {:>16} {:>11} {:>10}",
        "table",
        "total",
        "heap",
        "toast",
        "indexes",
        "rows",
        "dead%",
        "last autovacuum",
        "oldest row",
        "growth/day",
        "in 90 d"
    );
    for t in s.tables.iter().take(top) {
        let g = r.growth.get(&t.table);
        let _ = writeln!(
            out,
            "{:<34} {:>10} {:>10} {:>10} {:>10} {:>12} {:>6.1} {:>16} {:>16} {:>11} {:>10}",
            t.table,
            bytes(t.total_bytes as f64),
            bytes(t.heap_bytes as f64),
            bytes(t.toast_bytes as f64),
            bytes(t.index_bytes as f64),
            t.live_rows,
            t.dead_ratio() * 100.0,
            date(t.last_autovacuum.or(t.last_vacuum)),
            if t.oldest_row.is_some() {
                date(t.oldest_row)
            } else {
                "".into()
            },
            g.map_or_else(String::new, |g| bytes(g.bytes_per_day)),
            g.map_or_else(String::new, |g| bytes(g.projected_90d_bytes)),
        );
    }
    let conns: Vec<String> = s
        .connections
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(
        out,
        "connections: {} (max {})",
        if conns.is_empty() {
            "none".into()
        } else {
            conns.join(", ")
        },
        s.max_connections
    );
    if s.long_queries.is_empty() {
        let _ = writeln!(out, "long-running queries on the execution tables: none");
    }
    for q in &s.long_queries {
        let _ = writeln!(
            out,
            "long-running: pid {} {} for {:.0}s{} on {}: {}",
            q.pid,
            q.state,
            q.seconds,
            if q.wait.is_empty() {
                String::new()
            } else {
                format!(" (waiting: {})", q.wait)
            },
            q.tables.join(", "),
            q.query
        );
    }
    if s.lock_waits.is_empty() {
        let _ = writeln!(out, "lock waits on the execution tables: none");
    }
    for w in &s.lock_waits {
        let _ = writeln!(
            out,
            "lock waits: {} sessions on {} (longest {:.1}s)",
            w.waiting, w.table, w.max_seconds
        );
    }
    if let Some(rec) = &s.recommendation {
        let _ = writeln!(
            out,
            "recommendation: a cleanup of {} older than {} days would free ≈ {} (≈ {:.0} rows × {:.0} B): \
             loupe dify cleanup --scope nodes --older-than {}d --dry-run",
            rec.table,
            rec.older_than_days,
            bytes(rec.bytes),
            rec.rows,
            rec.avg_row_bytes,
            rec.older_than_days
        );
    }
    for e in &s.errors {
        let _ = writeln!(out, "not read: {e}");
    }
    if !r.cleanups.is_empty() {
        let _ = writeln!(out, "recent cleanups:");
        let runs: Vec<&CleanupRecord> = r.cleanups.iter().take(5).collect();
        out.push_str(&render_cleanups(&runs));
    }
    out
}

fn render_cleanups(runs: &[&CleanupRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<8} {:<9} {:>10} {:>12} {:>10} {:>8} {:>9} {:>10} {:>12}",
        "started",
        "source",
        "scope",
        "older than",
        "rows",
        "freed",
        "batches",
        "seconds",
        "skipped",
        "probe p95"
    );
    for r in runs {
        let rep = &r.report;
        let started = chrono::DateTime::parse_from_rfc3339(&r.started_at).map_or_else(
            |_| r.started_at.clone(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        );
        let _ = writeln!(
            out,
            "{:<20} {:<8} {:<9} {:>10} {:>12} {:>10} {:>8} {:>9.1} {:>10} {:>9.1} ms{}",
            started,
            r.source,
            format!("{}{}", rep.scope, if rep.dry_run { "*" } else { "" }),
            r.older_than,
            rep.total_deleted(),
            super::cleanup::human_bytes(rep.estimated_bytes_freed),
            rep.batches,
            rep.elapsed_ms as f64 / 1000.0,
            rep.skipped_unverified + rep.skipped_locked + rep.skipped_open,
            rep.db_latency.p95_ms,
            match (&r.error, &rep.stopped) {
                (Some(e), _) => format!("  failed: {e}"),
                (None, Some(why)) => format!("  incomplete: {why}"),
                _ => String::new(),
            }
        );
    }
    let _ = writeln!(out, "(* dry run: nothing deleted)");
    out
}
