//! `loupe alerts test RULE --at TIME`: evaluate one rule (from the config
//! file or added through the API) on past data, from a data directory
//! opened read-only; and the wiring of the alerting engine into `serve`.

use std::sync::Arc;

use anyhow::Context;
use loupe_alerts::{Engine, SystemClock};

use crate::config::Config;
use crate::open::{ConfigArgs, Mode, open_store};

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
        /// Evaluation time: RFC 3339 (2026-11-24T10:00:00Z) or ns since the epoch.
        #[arg(long)]
        at: String,
        /// The config file holding the rules (and `[metrics] labels`).
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// The engine `serve` runs (`None` when `[alerts] enabled = false`).
pub fn engine(config: &Config, spans: &crate::spans::Spans) -> anyhow::Result<Option<Arc<Engine>>> {
    if !config.alerts.enabled {
        return Ok(None);
    }
    let source = spans.clone();
    let engine = Engine::open(
        config.alerts_config(),
        config.metrics.labels.clone(),
        Some(&config.store.data_dir),
        Arc::new(move || source.recent_rollups()),
        Arc::new(SystemClock),
    )
    .context("cannot start alerting ([alerts])")?;
    Ok(Some(engine))
}

/// Runs `loupe alerts`.
pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let AlertsCommand::Test { rule, at, config } = args.command;
    let at_ms = loupe_model::time::parse_instant(&at)
        .with_context(|| "--at".to_owned())?
        .div_euclid(1_000_000);
    let mut config = config.resolve()?;
    let store = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(open_store(&mut config, Mode::ReadOnly))?;
    let dir = store.config().data_dir.clone();
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
