//! `loupe alerts test RULE --at TIME`: evaluate one rule (from the config
//! file or added through the API) on past data, from a data directory
//! opened read-only; and the wiring of the alerting engine into `serve`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use loupe_alerts::{Engine, SystemClock};
use loupe_store::Store;

use crate::config::Config;

/// `loupe alerts …`.
#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    command: AlertsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AlertsCommand {
    /// Evaluate RULE at a past time on a data directory's rollups (read-only).
    Test {
        /// Rule name.
        rule: String,
        /// Evaluation time: RFC 3339 (2026-11-24T10:00:00Z) or ms since the epoch.
        #[arg(long)]
        at: String,
        /// Data directory. Default: the config's, else ./loupe-data.
        #[arg(long, env = "LOUPE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Config file with the rules and `[metrics] labels`.
        #[arg(long, env = "LOUPE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// The engine `serve` runs (`None` when `[alerts] enabled = false`).
pub fn engine(config: &Config, store: &Store) -> anyhow::Result<Option<Arc<Engine>>> {
    if !config.alerts.enabled {
        return Ok(None);
    }
    let source_store = store.clone();
    let engine = Engine::open(
        config.alerts_config(),
        config.metrics.labels.clone(),
        Some(&store.config().data_dir),
        Arc::new(move || source_store.recent_rollups()),
        Arc::new(SystemClock),
    )
    .context("cannot start alerting ([alerts])")?;
    Ok(Some(engine))
}

fn parse_at(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("--at {text:?} is neither RFC 3339 (2026-11-24T10:00:00Z) nor ms"))
}

/// Runs `loupe alerts`.
pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let AlertsCommand::Test {
        rule,
        at,
        data_dir,
        config,
    } = args.command;
    let at_ms = parse_at(&at)?;
    let mut config = match &config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(dir) = data_dir {
        config.store.data_dir = dir;
    }
    let mut store_config = config.store.clone();
    store_config.rollup = config.metrics.clone();
    let dir = store_config.data_dir.clone();
    let store = Store::open_read_only(store_config)
        .with_context(|| format!("cannot read the data directory {}", dir.display()))?;
    let rollups = store.recent_rollups();
    let engine = Engine::open(
        config.alerts_config(),
        config.metrics.labels.clone(),
        Some(&dir),
        Arc::new(loupe_rollup::Rollups::default),
        Arc::new(SystemClock),
    )?;
    let rows = engine.test_rule(&rule, &rollups, at_ms)?;
    if let Some(oldest) = rollups.minutes().keys().next()
        && oldest * 60_000 > at_ms
    {
        eprintln!(
            "note: per-minute rollups start at minute {oldest}; older data is not kept (metrics.minutes_kept)"
        );
    }
    if rows.is_empty() {
        println!("rule {rule:?} at {at}: no groups with data (condition does not hold)");
    }
    for r in rows {
        let group = if r.group.is_empty() { "-" } else { &r.group };
        let value = r.value.map_or("no data".to_owned(), |v| format!("{v}"));
        let state = if r.holds { "ALERTING" } else { "ok" };
        println!("{group}\t{value}\t{state}");
    }
    Ok(())
}
