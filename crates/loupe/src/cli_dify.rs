//! `loupe dify …`: the Dify PostgreSQL connector from the command line, and
//! the `[dify]` config section that makes `loupe serve` sync continuously.

mod cleanup;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{NaiveDate, NaiveDateTime};
use loupe_backend::SpanStore;
use loupe_dify::sync::{SyncConfig, Syncer};
use loupe_store::{Store, StoreConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// `[dify]`: sync a Dify database continuously while `loupe serve` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DifySection {
    /// `postgres://user:password@host:port/database`; unset = no sync.
    pub dsn: Option<String>,
    /// Pause between sync passes (humantime, default `30s`).
    pub interval: String,
    /// Rows per keyset batch (default 500).
    pub batch: usize,
    /// Dify's local storage root (`OPENDAL_FS_ROOT`, or legacy
    /// `STORAGE_LOCAL_PATH`): offloaded node payloads are read from it and
    /// replace the truncated columns. Unset (default) = only mark them.
    pub storage_dir: Option<PathBuf>,
}

impl Default for DifySection {
    fn default() -> Self {
        Self {
            dsn: None,
            interval: "30s".into(),
            batch: 500,
            storage_dir: None,
        }
    }
}

impl DifySection {
    /// The parsed interval.
    pub fn interval(&self) -> anyhow::Result<Duration> {
        humantime::parse_duration(&self.interval).with_context(|| {
            format!(
                "dify.interval {:?} is not a duration (try \"30s\")",
                self.interval
            )
        })
    }
}

/// `loupe dify`.
#[derive(Debug, clap::Args)]
pub struct DifyArgs {
    #[command(subcommand)]
    command: DifyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DifyCommand {
    /// Read-only sync of Dify's runs, node executions, messages and feedback.
    Sync(SyncArgs),
    /// Delete old rows from Dify's execution tables once Loupe holds them
    /// (verified per batch; see docs/DIFY.md).
    Cleanup(cleanup::CleanupArgs),
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// Dify's database: postgres://user:password@host:port/database.
    #[arg(long, env = "LOUPE_DIFY_DSN")]
    dsn: String,
    /// One pass (backfill and catch up), then exit. Default: keep syncing.
    #[arg(long)]
    once: bool,
    /// Start history at this date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, UTC)
    /// when there is no checkpoint yet. Default: all history.
    #[arg(long)]
    backfill_from: Option<String>,
    /// Read at most this many rows per second (spares Dify's database).
    #[arg(long)]
    rate: Option<f64>,
    /// Rows per keyset batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Pause between passes without --once.
    #[arg(long, default_value = "30s")]
    interval: humantime::Duration,
    /// Data directory (the store and dify-sync.json). Default ./loupe-data.
    #[arg(long, env = "LOUPE_DATA_DIR", default_value = "./loupe-data")]
    data_dir: PathBuf,
    /// Project the spans go to.
    #[arg(long, default_value = loupe_model::ProjectId::DEFAULT)]
    project: String,
    /// Dify's local storage root (OPENDAL_FS_ROOT, or legacy
    /// STORAGE_LOCAL_PATH; the directory holding upload_files/): node
    /// payloads Dify truncated are read from it in full. Default: only mark
    /// them as truncated.
    #[arg(long, env = "LOUPE_DIFY_STORAGE_DIR")]
    storage_dir: Option<PathBuf>,
}

fn parse_date(text: &str) -> anyhow::Result<NaiveDateTime> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").with_context(|| {
        format!("--backfill-from {text:?}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)")
    })
}

/// Runs `loupe dify …`.
pub fn run(args: DifyArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async move {
            match args.command {
                DifyCommand::Sync(a) => sync(a).await,
                DifyCommand::Cleanup(a) => cleanup::cleanup(a).await,
            }
        })
}

async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    loupe_model::ProjectId::new(args.project.clone())?;
    let mut config = SyncConfig::new(args.dsn.clone(), args.data_dir.clone());
    config.project = args.project.clone();
    config.batch = args.batch;
    config.rate = args.rate;
    if let Some(rate) = args.rate
        && (rate.is_nan() || rate <= 0.0)
    {
        bail!("--rate must be a positive number of rows per second");
    }
    config.backfill_from = args.backfill_from.as_deref().map(parse_date).transpose()?;
    config.storage_dir = args.storage_dir.clone();
    let store_config = StoreConfig {
        data_dir: args.data_dir.clone(),
        ..StoreConfig::default()
    };
    let store = tokio::task::spawn_blocking(move || Store::open(store_config))
        .await?
        .with_context(|| format!("cannot open the data directory {}", args.data_dir.display()))?;
    let background = store.spawn_background();
    let dyn_store: Arc<dyn SpanStore> = Arc::new(store.clone());
    let mut syncer = Syncer::connect(config, dyn_store).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg:18} [{bar:40}] {pos}/{len} rows {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    syncer.on_progress(Arc::new(move |p| {
        b.set_length(p.total);
        b.set_position(p.done);
        b.set_message(p.table);
    }));
    let result = if args.once {
        syncer.sync_once().await.map(|r| {
            bar.finish_and_clear();
            eprintln!(
                "synced {} spans ({} runs, {} messages, {} feedback rows); {} runs still open",
                r.spans,
                r.rows.get("workflow_runs").unwrap_or(&0),
                r.rows.get("messages").unwrap_or(&0),
                r.rows.get("message_feedbacks").unwrap_or(&0),
                r.open_runs
            );
        })
    } else {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(syncer.run(args.interval.into(), rx));
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
        let _ = task.await;
        bar.finish_and_clear();
        Ok(())
    };
    background.abort();
    store.shutdown().await.context("flush on shutdown failed")?;
    Ok(result?)
}

/// Starts the continuous sync of `loupe serve` when `[dify] dsn` is set.
/// A database that cannot be reached or has the wrong schema stops the start.
pub async fn spawn_sync(
    section: &DifySection,
    store: Arc<dyn SpanStore>,
    data_dir: PathBuf,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(dsn) = &section.dsn else {
        return Ok(None);
    };
    let interval = section.interval()?;
    let mut config = SyncConfig::new(dsn.clone(), data_dir);
    config.batch = section.batch;
    config.storage_dir = section.storage_dir.clone();
    let syncer = Syncer::connect(config, store)
        .await
        .context("[dify] sync cannot start")?;
    tracing::info!(interval = %section.interval, "dify sync started");
    Ok(Some(tokio::spawn(syncer.run(interval, stop))))
}
