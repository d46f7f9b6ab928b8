//! One way from the command line to an open store, for `serve` and every
//! CLI that opens a data directory.
//!
//! [`ConfigArgs`] gives each command the same `--config` / `--data-dir`
//! flags (and `LOUPE_CONFIG` / `LOUPE_DATA_DIR`) and the same layering as
//! `serve`: built-in defaults → file → environment → flags. [`open_store`]
//! opens the store with the `[store]` and `[metrics]` sections together
//! (nothing for a caller to remember to fill in) and reconciles the
//! settings recorded with the data directory (`loupe_store::settings`):
//!
//! - `serve` owns the directory: it records its settings and warns when it
//!   shortens retention (older data goes at the next maintenance pass);
//! - every other command adopts the recorded settings, saying which of its
//!   own differ, so a CLI never applies default retention or rollup labels
//!   to a directory the server runs with other ones.

use std::path::PathBuf;

use anyhow::Context;
use loupe_pipeline::Pipeline;
use loupe_store::Store;
use loupe_store::settings::DirSettings;

use crate::config::Config;

/// `--config` and `--data-dir`, shared by every command that opens a data
/// directory.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file, the one `loupe serve` uses (see loupe.example.toml).
    /// Default: built-in defaults.
    #[arg(long, env = "LOUPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory. Default: the config's store.data_dir, else ./loupe-data.
    #[arg(long, env = "LOUPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    /// The layered and validated configuration.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.store.data_dir.clone_from(dir);
        }
        config.validate()?;
        Ok(config)
    }
}

/// How a command uses the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `loupe serve`: the owner. Records its settings.
    Serve,
    /// A CLI that writes (`dify sync`, `dify cleanup`, `gen --data-dir`):
    /// adopts the recorded settings, takes the directory lock.
    Write,
    /// A CLI that only reads (`query --data-dir`, `alerts test`): adopts
    /// the recorded settings, writes nothing, works beside a server.
    ReadOnly,
}

/// Opens the store of `config` in `mode`. For CLI modes, `config` is
/// updated with the settings recorded in the data directory, so what the
/// caller does next (a sync's retention floor, alert labels) agrees with
/// the store.
pub async fn open_store(config: &mut Config, mode: Mode) -> anyhow::Result<Store> {
    if mode != Mode::Serve && config.store.backend == loupe_backend::SpanBackend::Clickhouse {
        anyhow::bail!(
            "this config keeps spans in ClickHouse ([store] backend = \"clickhouse\"), and this \
             command reads or writes the spans of the data directory's own store: ask the server \
             instead (its API, or `loupe query --server`), or ClickHouse directly"
        );
    }
    let dir = config.store.data_dir.clone();
    let recorded = if dir.is_dir() {
        DirSettings::load(&dir)
            .with_context(|| format!("cannot read the settings of {}", dir.display()))?
    } else {
        None
    };
    // The tags the hour rollups keep: the rules' of this config and of the
    // console (the store keeps on those its tier already kept). A reader
    // writes nothing, so a bad rules file is left to the server to report.
    let managed = match mode {
        Mode::Serve | Mode::Write => loupe_pipeline::tagset::managed_names(&dir)?,
        Mode::ReadOnly => Vec::new(),
    };
    let (tags, dropped) = config.hour_tags(&managed);
    if !dropped.is_empty() {
        tracing::warn!(
            kept = ?tags,
            dropped = ?dropped,
            "more than {} tags for the hour rollups: the last ones are not kept \
             (root-cause analysis and queries naming them scan)",
            loupe_rollup::hours::MAX_HOUR_TAGS
        );
    }
    config.metrics.hour_tags = tags;
    if let Some(recorded) = &recorded {
        match mode {
            Mode::Serve => {
                let mut mine = DirSettings::of(&config.store, &config.metrics);
                // What the console set (`retention.json`) is in force too.
                let set = loupe_store::retention::load(&dir).with_context(|| {
                    format!("cannot read the retention set in {}", dir.display())
                })?;
                for (p, d) in set {
                    mine.retention_days_by_project.entry(p).or_insert(d);
                }
                for (project, old, new) in recorded.shortened_by(&mine) {
                    tracing::warn!(
                        project = %project,
                        recorded_days = old,
                        configured_days = new,
                        data_dir = %dir.display(),
                        "retention is shorter than this data directory kept until now: \
                         data older than the new window is deleted at the next maintenance pass"
                    );
                }
            }
            Mode::Write | Mode::ReadOnly => {
                for d in recorded.adopt(&mut config.store, &mut config.metrics) {
                    eprintln!(
                        "note: {}: using {} = {} recorded by the server that owns this data \
                         directory (this command was configured with {})",
                        dir.display(),
                        d.setting,
                        d.recorded,
                        d.configured
                    );
                }
            }
        }
    }
    // Adopted labels win: a tag that is one is not also an hour tag.
    let labels = config.metrics.labels.clone();
    config.metrics.hour_tags.retain(|t| !labels.contains(t));
    let store_config = config.store.clone();
    let rollup = config.metrics.clone();
    let opened = tokio::task::spawn_blocking(move || match mode {
        Mode::ReadOnly => Store::open_read_only(store_config, rollup),
        Mode::Serve | Mode::Write => Store::open(store_config, rollup),
    })
    .await
    .context("the store opening task failed")?;
    let store = opened.with_context(|| match mode {
        Mode::ReadOnly => format!(
            "cannot read the data directory {} (it must be a Loupe data directory)",
            dir.display()
        ),
        Mode::Serve | Mode::Write => format!("cannot open the data directory {}", dir.display()),
    })?;
    // Retention set over the API counts for what the caller does next (the
    // sync's retention floor, a cleanup's check).
    config.store.retention_days_by_project = store.retention_by_project();
    Ok(store)
}

/// The ingest pipeline over `store` with the config's tag rules, those
/// added over the API and the built-in workspace tag: the one write path
/// every source gets.
pub fn pipeline(config: &Config, store: &Store) -> anyhow::Result<Pipeline> {
    pipeline_to(config, store, std::sync::Arc::new(store.clone()))
}

/// [`pipeline`] writing spans to `spans` (`loupe serve`'s backend); logs
/// and the console's tag rules stay in `store`'s data directory.
pub fn pipeline_to(
    config: &Config,
    store: &Store,
    spans: std::sync::Arc<dyn loupe_backend::SpanWriter>,
) -> anyhow::Result<Pipeline> {
    // The config's rules, then those added over the API (tag-rules.json).
    let tags = loupe_pipeline::tagset::TagSet::open(config.tags.clone(), &store.config().data_dir)?
        .with_builtin(config.dify.workspace_rules())?;
    let redactor = loupe_pipeline::redact::Redactor::new(&config.redaction)?;
    let costs = loupe_pipeline::costs::Converter::new(&config.costs).map_err(anyhow::Error::msg)?;
    Ok(Pipeline::with_tag_set(spans, std::sync::Arc::new(tags))
        .with_redaction(redactor)
        .with_costs(costs)
        .with_logs(std::sync::Arc::new(store.clone())))
}
