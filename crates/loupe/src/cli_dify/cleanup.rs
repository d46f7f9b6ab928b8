//! `loupe dify cleanup`: deletes old rows from Dify's execution tables once
//! Loupe's store holds them, verified per batch (`loupe_dify::relief`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use loupe_backend::SpanReader;
use loupe_dify::relief::{Cleaner, CleanupConfig, CleanupReport, Scope};

use crate::open::{ConfigArgs, Mode, open_store};

/// `loupe dify cleanup`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// Dify's database: postgres://user:password@host:port/database.
    #[arg(long, env = "LOUPE_DIFY_DSN")]
    dsn: String,
    /// Delete only rows created longer ago than this (e.g. 30d, 12h).
    #[arg(long)]
    older_than: humantime::Duration,
    /// Verify and report what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// What to delete: nodes (node executions and offloads), runs (whole
    /// runs with their nodes and app logs) or messages (chat messages with
    /// their feedback and related rows).
    #[arg(long, default_value = "runs")]
    scope: Scope,
    /// Runs (or messages) per batch at most.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// lock_timeout of each batch transaction.
    #[arg(long, default_value = "2s")]
    lock_timeout: humantime::Duration,
    /// statement_timeout of each batch transaction.
    #[arg(long, default_value = "30s")]
    statement_timeout: humantime::Duration,
    /// Batch latency target: slower batches pause and shrink.
    #[arg(long, default_value = "500ms")]
    max_batch_latency: humantime::Duration,
    /// Retries of a batch after a lock timeout before it is skipped.
    #[arg(long, default_value_t = 3)]
    lock_retries: u32,
    /// Stop after this many batches (resume later with the same command).
    #[arg(long)]
    max_batches: Option<u64>,
    /// Print the final report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
    /// Project the synced spans are in. Default: dify.project, else `default`.
    #[arg(long)]
    project: Option<String>,
    /// While `loupe serve` owns the data directory, verify through its API
    /// at this URL. Default: the config's server.http_addr.
    #[arg(long, env = "LOUPE_SERVER")]
    server: Option<String>,
    /// The project's secret key, when that server requires keys.
    #[arg(long, env = "LOUPE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

/// Whether opening failed because another process (a running server)
/// holds the data directory.
fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<loupe_store::Error>(),
            Some(loupe_store::Error::Locked(_))
        )
    })
}

/// Refuses a cutoff inside which Loupe's own retention deletes the runs
/// first: cleanup would then remove Dify's last copy of history Loupe no
/// longer keeps (verification would also fail batch by batch, but the
/// operator should learn it before the first one).
fn check_cutoff(older_than: Duration, retention_days: u32) -> anyhow::Result<()> {
    if retention_days == 0 {
        return Ok(());
    }
    let retention = Duration::from_secs(u64::from(retention_days) * 86_400);
    if older_than >= retention {
        bail!(
            "--older-than {} reaches past Loupe's own retention ({retention_days} days): rows that \
             old are no longer in Loupe, so deleting them from Dify would lose them. Use a \
             shorter --older-than, or keep history longer in Loupe ([store] retention_days)",
            humantime::format_duration(older_than)
        );
    }
    Ok(())
}

/// The settings every cleanup shares, from the CLI or the console: the
/// database, the data directory, where the sync wrote each row, and the
/// cutoff, refused when it reaches past the shortest retention of the
/// projects Dify's rows land in.
pub(super) fn base_config(
    loupe_config: &crate::config::Config,
    project: &str,
    dsn: &str,
    older_than: Duration,
) -> anyhow::Result<CleanupConfig> {
    let mut section = loupe_config.dify.clone();
    section.project = project.to_owned();
    let mut view = loupe_config.clone();
    view.dify = section;
    check_cutoff(older_than, super::shortest_retention(&view)?)?;
    let mut config = CleanupConfig::new(dsn, loupe_config.store.data_dir.clone(), older_than);
    config.project = project.to_owned();
    config.projects.clone_from(&loupe_config.dify.projects);
    Ok(config)
}

/// Runs `loupe dify cleanup`.
pub async fn cleanup(args: CleanupArgs) -> anyhow::Result<()> {
    let mut loupe_config = args.config.resolve()?;
    // The store itself when no server runs; the server's API when one owns
    // the directory (the settings were adopted from it either way).
    // With spans in ClickHouse, the runs are verified there directly.
    let clickhouse = crate::spans::configured_clickhouse(&loupe_config.store).await?;
    if let Some((_, url)) = &clickhouse {
        eprintln!("note: verifying against ClickHouse at {url} ([store] backend = \"clickhouse\")");
    }
    let (store, reader): (Option<loupe_store::Store>, Arc<dyn SpanReader>) = match clickhouse {
        Some((ch, _)) => (None, Arc::new(ch)),
        None => match open_store(&mut loupe_config, Mode::Write).await {
            Ok(store) => (Some(store.clone()), Arc::new(store)),
            Err(e) if is_locked(&e) => {
                let base = args
                    .server
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", loupe_config.server.http_addr));
                eprintln!(
                    "note: a running Loupe server owns {}; verifying through its API at {base}",
                    loupe_config.store.data_dir.display()
                );
                (
                    None,
                    Arc::new(super::remote::RemoteReader::new(
                        base,
                        args.secret_key.clone(),
                    )),
                )
            }
            Err(e) => return Err(e),
        },
    };
    let project = args
        .project
        .clone()
        .unwrap_or_else(|| loupe_config.dify.project.clone());
    let checked = base_config(&loupe_config, &project, &args.dsn, args.older_than.into());
    let mut config = match checked {
        Ok(config) => config,
        Err(e) => {
            if let Some(store) = store {
                store.shutdown().await.context("closing the store failed")?;
            }
            return Err(e);
        }
    };
    config.scope = args.scope;
    config.batch = args.batch;
    config.lock_timeout = args.lock_timeout.into();
    config.statement_timeout = args.statement_timeout.into();
    config.max_batch_latency = args.max_batch_latency.into();
    config.lock_retries = args.lock_retries;
    config.max_batches = args.max_batches;
    config.dry_run = args.dry_run;
    let result = async {
        let mut cleaner = Cleaner::connect(config, reader).await?;
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} cleanup [{bar:40}] {pos}/{len} {msg} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let b = bar.clone();
        cleaner.on_tick(Arc::new(move |t| {
            b.set_length(t.total);
            b.set_position(t.done);
            b.set_message(format!("{} rows deleted", t.deleted));
        }));
        let report = cleaner.run().await;
        bar.finish_and_clear();
        anyhow::Ok(report?)
    }
    .await;
    if let Some(store) = store {
        store.shutdown().await.context("flush on shutdown failed")?;
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// `n` bytes in KiB, MiB, … with one decimal.
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The report as a plain-text table.
fn render(r: &CleanupReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let _ = writeln!(
        out,
        "dify cleanup, scope {}{}: rows created before {} UTC",
        r.scope,
        if r.dry_run { " (dry run)" } else { "" },
        r.cutoff
    );
    let _ = writeln!(out, "{:<34} {:>12} {:>12}", "table", verb, "est. bytes");
    for (table, n) in &r.deleted {
        let bytes = r.avg_row_bytes.get(table).copied().unwrap_or(0.0) * *n as f64;
        let _ = writeln!(out, "{table:<34} {n:>12} {:>12}", human_bytes(bytes as u64));
    }
    let _ = writeln!(
        out,
        "{:<34} {:>12} {:>12}",
        "total",
        r.total_deleted(),
        human_bytes(r.estimated_bytes_freed)
    );
    let _ = writeln!(
        out,
        "verified {}; skipped: {} unverified, {} locked, {} open; {} batches in {:.1}s",
        r.verified,
        r.skipped_unverified,
        r.skipped_locked,
        r.skipped_open,
        r.batches,
        r.elapsed_ms as f64 / 1000.0
    );
    for s in r.skipped.iter().filter(|s| s.reason != "open").take(20) {
        let _ = writeln!(out, "  skipped {} ({}): {}", s.id, s.reason, s.detail);
    }
    if let Some(why) = &r.stopped {
        let _ = writeln!(
            out,
            "incomplete: {why}; run the same command again to resume"
        );
    }
    if !r.dry_run && r.total_deleted() > 0 {
        let _ = writeln!(
            out,
            "PostgreSQL reuses the space after (auto)VACUUM; VACUUM FULL or pg_repack returns it to the OS"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cutoff_past_loupes_own_retention_is_refused_and_one_inside_it_is_not() {
        let day = Duration::from_secs(86_400);
        let err = check_cutoff(30 * day, 30).expect_err("refused");
        assert!(err.to_string().contains("retention_days"), "{err}");
        assert!(check_cutoff(45 * day, 30).is_err());
        assert!(check_cutoff(29 * day, 30).is_ok());
        assert!(check_cutoff(3650 * day, 0).is_ok(), "0 keeps everything");
    }
}
