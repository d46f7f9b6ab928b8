//! Alerting on rollups: threshold and event rules, a deterministic
//! evaluator, notification channels and actions.
//!
//! The crate reads [`loupe_rollup::Rollups`] only (never spans): threshold
//! rules sum the per-minute series of a window, event rules read the
//! bounded feed of recent finished spans. [`rules`] holds the rule and
//! silence types (from `[[alerts.rules]]` or the API); [`eval`] is the pure
//! state machine (inactive → pending → firing → resolved) driven by an
//! injectable [`eval::Clock`]; [`channels`] delivers notices (DingTalk,
//! WeCom, Feishu, Slack, email, webhook, Alertmanager) with retries and a
//! rate limit; [`actions`] runs commands or webhooks with cooldown, timeout
//! and an audit log; [`engine`] ties them together and persists the state
//! (`alerts.json` in the data dir). [`preview`] replays stored spans through
//! the evaluator to show what a rule would have done.

#![warn(missing_docs)]

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod actions;
pub mod channels;
pub mod engine;
pub mod eval;
pub mod preview;
pub mod rules;
mod util;

pub use engine::{Engine, GaugeSource, RollupSource};
pub use eval::{Clock, ManualClock, SystemClock};
pub use rules::{Rule, Silence};

/// File of the alert state in the data directory.
pub const STATE_FILE: &str = "alerts.json";
/// File of the action audit log in the data directory.
pub const AUDIT_FILE: &str = "alerts-audit.jsonl";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rule, silence, channel or action is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A name is not known.
    #[error("{0}")]
    NotFound(String),
    /// A name is taken, or a config rule cannot be changed through the API.
    #[error("{0}")]
    Conflict(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A delivery failed (after retries).
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// A channel's rate limit has no slot left this minute.
    #[error("{0}")]
    RateLimited(String),
}

/// `[alerts]` in `loupe.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate at all. Default true (nothing happens without rules).
    pub enabled: bool,
    /// Time between evaluations. Default 15 s.
    #[serde(with = "loupe_model::duration_text")]
    pub interval: std::time::Duration,
    /// Base URL of this Loupe for links to example runs and to the
    /// root-cause analysis (the console's `/rca`). Default
    /// `http://127.0.0.1:4318`.
    pub base_url: String,
    /// `[[alerts.rules]]`.
    pub rules: Vec<Rule>,
    /// `[[alerts.channels]]`.
    pub channels: Vec<channels::ChannelConfig>,
    /// `[[alerts.actions]]`.
    pub actions: Vec<actions::ActionConfig>,
    /// The longest threshold-rule window the rollups can answer: the
    /// per-minute history kept (`[metrics] minutes_kept`). Not a config key;
    /// the binary sets it from `[metrics]`. `None`: unchecked.
    #[serde(skip)]
    pub max_window: Option<std::time::Duration>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: std::time::Duration::from_secs(15),
            base_url: "http://127.0.0.1:4318".to_owned(),
            rules: Vec::new(),
            channels: Vec::new(),
            actions: Vec::new(),
            max_window: None,
        }
    }
}

impl AlertsConfig {
    /// Checks every rule against the configured label tags and that every
    /// channel and action a rule names exists.
    pub fn validate(&self, labels: &[String]) -> Result<(), Error> {
        if self.interval.is_zero() {
            return Err(Error::Invalid("alerts.interval must be positive".into()));
        }
        for c in &self.channels {
            c.validate()?;
        }
        for a in &self.actions {
            a.validate()?;
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.rules {
            if !names.insert(r.name.as_str()) {
                return Err(Error::Invalid(format!(
                    "alert rule {:?} is defined twice",
                    r.name
                )));
            }
            self.check_rule(r, labels)?;
        }
        Ok(())
    }

    /// Checks one rule (also for rules posted to the API).
    pub fn check_rule(&self, r: &Rule, labels: &[String]) -> Result<(), Error> {
        r.validate(labels)?;
        if let Some(max) = self.max_window
            && r.kind == rules::RuleType::Threshold
            && r.window > max
        {
            return Err(Error::Invalid(format!(
                "alert rule {:?}: window {} is longer than the {} of per-minute rollups kept; \
                 shorten the window or raise [metrics] minutes_kept",
                r.name,
                humantime::format_duration(r.window),
                humantime::format_duration(max)
            )));
        }
        for n in &r.notify {
            if !self.channels.iter().any(|c| &c.name == n) {
                return Err(Error::Invalid(format!(
                    "alert rule {:?}: no channel named {n:?} in [[alerts.channels]]",
                    r.name
                )));
            }
        }
        for n in &r.actions {
            if !self.actions.iter().any(|a| &a.name == n) {
                return Err(Error::Invalid(format!(
                    "alert rule {:?}: no action named {n:?} in [[alerts.actions]]",
                    r.name
                )));
            }
        }
        Ok(())
    }
}
