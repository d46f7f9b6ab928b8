//! `loupe dify …`: the Dify PostgreSQL connector from the command line, and
//! the `[dify]` config section that makes `loupe serve` sync continuously.

mod cleanup;
mod health;
mod job;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{NaiveDate, NaiveDateTime};
use loupe_dify::sync::status::SyncStatus;
use loupe_dify::sync::{OlderThanRetention, SyncConfig, Syncer};
use loupe_pipeline::Pipeline;
use loupe_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::Config;
use crate::open::{ConfigArgs, Mode, open_store};
pub use job::ConsoleCleanups;

/// `[dify]`: sync a Dify database continuously while `loupe serve` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DifySection {
    /// `postgres://user:password@host:port/database`; unset = no sync.
    pub dsn: Option<String>,
    /// Loupe project the synced runs go to (default `default`). Give the
    /// project's keys to the people who should see this Dify's runs.
    pub project: String,
    /// `[[dify.projects]]`: rows of one Dify workspace (`tenant = "<id>"`)
    /// or app (`app = "<id>"`) go to `project` instead; an app rule wins
    /// over its workspace's.
    pub projects: Vec<loupe_dify::projects::ProjectRule>,
    /// History older than the store's retention: `skip` it (counted and
    /// logged; the default) or `stop` the sync with an error naming it.
    pub older_than_retention: OlderThanRetention,
    /// Pause between sync passes (humantime, default `30s`).
    pub interval: String,
    /// Rows per keyset batch (default 500).
    pub batch: usize,
    /// Dify's local storage root (`OPENDAL_FS_ROOT`, or legacy
    /// `STORAGE_LOCAL_PATH`): offloaded node payloads are read from it and
    /// replace the truncated columns. Unset (default) = only mark them.
    pub storage_dir: Option<PathBuf>,
    /// Dify's web console as users open it (`https://dify.example.com`):
    /// the Loupe console links each Dify run to its app's logs there.
    /// Unset (default) = no links.
    pub web_url: Option<String>,
    /// Sample the Dify database's health (table sizes, growth, vacuum,
    /// connections, long queries, lock waits) this often while `loupe
    /// serve` runs (humantime, default `5m`; `0s` = off). Catalogue
    /// queries only: milliseconds per sample.
    pub health_interval: String,
    /// A query on an execution table running longer than this is listed
    /// as long-running (default `30s`).
    pub long_query: String,
    /// Age of the node executions the cleanup recommendation is about
    /// (default `30d`; kept inside the store's retention).
    pub recommend_older_than: String,
    /// The business tag every run gets from its Dify workspace (tenant) id,
    /// whichever way it arrived (the sync, OTLP, Langfuse): a dimension of
    /// queries, the hour rollups and root-cause analysis (default
    /// `workspace`; `""` = off). Your own rules of that name run first.
    pub workspace_tag: String,
}

impl Default for DifySection {
    fn default() -> Self {
        Self {
            dsn: None,
            project: loupe_model::ProjectId::DEFAULT.to_owned(),
            projects: Vec::new(),
            older_than_retention: OlderThanRetention::Skip,
            interval: "30s".into(),
            batch: 500,
            storage_dir: None,
            web_url: None,
            health_interval: "5m".into(),
            long_query: "30s".into(),
            recommend_older_than: "30d".into(),
            workspace_tag: loupe_normalise::tags::DEFAULT_WORKSPACE_TAG.into(),
        }
    }
}

impl DifySection {
    /// The built-in rules of [`DifySection::workspace_tag`].
    pub fn workspace_rules(&self) -> Vec<loupe_normalise::tags::TagRuleConfig> {
        loupe_normalise::tags::workspace_rules(&self.workspace_tag)
    }

    /// The checked project rules.
    pub fn projects(&self) -> anyhow::Result<loupe_dify::projects::Projects> {
        loupe_dify::projects::Projects::new(&self.project, &self.projects)
            .map_err(|e| anyhow::anyhow!("[dify] {e}"))
    }

    /// The health collector's settings (`None`: `health_interval` is 0).
    /// `retention_days`: the shortest retention of the Dify projects (0 =
    /// forever); the recommendation stays inside it, as cleanup must.
    pub fn health(
        &self,
        data_dir: &std::path::Path,
        retention_days: u32,
    ) -> anyhow::Result<Option<loupe_dify::health::HealthConfig>> {
        let Some(dsn) = &self.dsn else {
            return Ok(None);
        };
        let parse = |key: &str, text: &str| {
            humantime::parse_duration(text).with_context(|| {
                format!("dify.{key} {text:?} is not a duration (try \"5m\", \"30s\", \"30d\")")
            })
        };
        let interval = parse("health_interval", &self.health_interval)?;
        if interval.is_zero() {
            return Ok(None);
        }
        let mut recommend = parse("recommend_older_than", &self.recommend_older_than)?;
        if recommend.is_zero() {
            bail!("dify.recommend_older_than must be positive");
        }
        if retention_days > 0 {
            let inside =
                Duration::from_secs(u64::from(retention_days.saturating_sub(1)).max(1) * 86_400);
            recommend = recommend.min(inside);
        }
        Ok(Some(loupe_dify::health::HealthConfig {
            dsn: dsn.clone(),
            data_dir: data_dir.to_owned(),
            interval,
            collect: loupe_dify::health::CollectConfig {
                long_query: parse("long_query", &self.long_query)?,
                recommend_older_than: recommend,
                ..loupe_dify::health::CollectConfig::default()
            },
        }))
    }

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
    /// The Dify database's health: size per table (heap, TOAST, indexes),
    /// rows, dead rows, vacuum, oldest rows, growth and projections,
    /// connections, long queries, lock waits, what a cleanup would free.
    Health(health::HealthArgs),
    /// The recorded runs of `loupe dify cleanup`: rows and bytes freed,
    /// duration, skips, the database's latency meanwhile.
    Cleanups(health::CleanupsArgs),
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
    #[command(flatten)]
    config: ConfigArgs,
    /// Project the spans go to. Default: dify.project, else `default`.
    #[arg(long)]
    project: Option<String>,
    /// Runs and messages older than the store's retention would be written
    /// and then deleted by the next maintenance pass: skip them (counted in
    /// the report) or stop with an error. Default:
    /// dify.older_than_retention, else skip.
    #[arg(long, value_name = "skip|stop")]
    older_than_retention: Option<OlderThanRetention>,
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
                DifyCommand::Health(a) => health::health(a).await,
                DifyCommand::Cleanups(a) => health::cleanups(a),
            }
        })
}

async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let mut loupe_config = args.config.resolve()?;
    if let Some(rate) = args.rate
        && (rate.is_nan() || rate <= 0.0)
    {
        bail!("--rate must be a positive number of rows per second");
    }
    let store = open_store(&mut loupe_config, Mode::Write).await?;
    let mut section = loupe_config.dify.clone();
    section.dsn = Some(args.dsn.clone());
    section.batch = args.batch;
    if let Some(project) = &args.project {
        section.project.clone_from(project);
    }
    if let Some(choice) = args.older_than_retention {
        section.older_than_retention = choice;
    }
    if args.storage_dir.is_some() {
        section.storage_dir.clone_from(&args.storage_dir);
    }
    let mut config = sync_config(&section, &loupe_config, &store)?;
    config.rate = args.rate;
    config.backfill_from = args.backfill_from.as_deref().map(parse_date).transpose()?;
    let background = store.spawn_background();
    let pipeline = crate::open::pipeline(&loupe_config, &store)?;
    let result = run_sync(config, pipeline, args.once, args.interval.into()).await;
    background.abort();
    store.shutdown().await.context("flush on shutdown failed")?;
    result
}

/// The sync settings of `section` for the opened `store`: its project,
/// and the retention floor the store's own retention implies.
fn sync_config(
    section: &DifySection,
    config: &Config,
    store: &Store,
) -> anyhow::Result<SyncConfig> {
    let Some(dsn) = &section.dsn else {
        bail!("no Dify database: set [dify] dsn or --dsn");
    };
    let projects = section.projects()?;
    let mut sync = SyncConfig::new(dsn.clone(), store.config().data_dir.clone());
    sync.project.clone_from(&section.project);
    sync.projects.clone_from(&section.projects);
    sync.batch = section.batch;
    sync.storage_dir.clone_from(&section.storage_dir);
    sync.older_than_retention = section.older_than_retention;
    // The most permissive floor of the projects rows can land in: history
    // one of them keeps is never skipped.
    let now_ns = loupe_model::time::now_ns();
    let floors: Vec<Option<i64>> = projects
        .all()
        .into_iter()
        .map(|p| config.store.retention_cutoff_day_ns(p, now_ns))
        .collect();
    sync.retention_floor = floors
        .iter()
        .copied()
        .collect::<Option<Vec<i64>>>()
        .and_then(|f| f.into_iter().min())
        .map(|ns| chrono::DateTime::from_timestamp_nanos(ns).naive_utc());
    Ok(sync)
}

async fn run_sync(
    config: SyncConfig,
    pipeline: Pipeline,
    once: bool,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut syncer = Syncer::connect(config, pipeline).await?;
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
    if once {
        let r = syncer.sync_once().await;
        bar.finish_and_clear();
        let r = r?;
        eprintln!(
            "synced {} spans ({} runs, {} messages, {} feedback rows); {} runs still open",
            r.spans,
            r.rows.get("workflow_runs").unwrap_or(&0),
            r.rows.get("messages").unwrap_or(&0),
            r.rows.get("message_feedbacks").unwrap_or(&0),
            r.open_runs
        );
        for (table, rows) in &r.skipped {
            eprintln!(
                "skipped {rows} {table} rows older than the store's retention \
                 ([store] retention_days = 0 keeps all history)"
            );
        }
    } else {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(syncer.run(interval, rx));
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
        let _ = task.await;
        bar.finish_and_clear();
    }
    Ok(())
}

/// Starts the continuous sync of `loupe serve` when `[dify] dsn` is set,
/// writing through the server's pipeline; returns its task and the status
/// `/metrics` reports. A database that cannot be reached or has the wrong
/// schema stops the start.
pub async fn spawn_sync(
    config: &Config,
    pipeline: Pipeline,
    store: &Store,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(tokio::task::JoinHandle<()>, Arc<SyncStatus>)>> {
    if config.dify.dsn.is_none() {
        return Ok(None);
    }
    let interval = config.dify.interval()?;
    let sync = sync_config(&config.dify, config, store)?;
    let syncer = Syncer::connect(sync, pipeline)
        .await
        .context("[dify] sync cannot start")?;
    tracing::info!(interval = %config.dify.interval, project = %config.dify.project, "dify sync started");
    let status = syncer.status();
    Ok(Some((tokio::spawn(syncer.run(interval, stop)), status)))
}

/// Starts the health collector of `loupe serve` when `[dify] dsn` is set
/// and `health_interval` is not 0; returns its task and the state the API
/// and `/metrics` read.
pub async fn spawn_health(
    config: &Config,
    store: &Store,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<
    Option<(
        tokio::task::JoinHandle<()>,
        Arc<loupe_dify::health::HealthState>,
    )>,
> {
    let Some(health) = config
        .dify
        .health(&store.config().data_dir, shortest_retention(config)?)?
    else {
        return Ok(None);
    };
    let interval = health.interval;
    let monitor = loupe_dify::health::Monitor::connect(health)
        .await
        .context("[dify] health collector cannot start")?;
    tracing::info!(interval = ?interval, "dify health collector started");
    let state = monitor.state();
    Ok(Some((tokio::spawn(monitor.run(stop)), state)))
}

/// The shortest retention (days, 0 = forever) of the projects Dify's rows
/// land in: cleanup may not reach past it.
pub fn shortest_retention(config: &Config) -> anyhow::Result<u32> {
    Ok(config
        .dify
        .projects()?
        .all()
        .into_iter()
        .map(|p| config.store.retention_for(p))
        .filter(|days| *days > 0)
        .min()
        .unwrap_or(0))
}
