//! `[[budgets]]` in `loupe serve`: at the alert evaluation interval
//! (`[alerts] interval`), each budget's spend in its
//! current period (`loupe_analytics::budgets::spend`) is compared with its
//! thresholds; a threshold reached notifies the budget's alert channels
//! once per period, and the next period resolves it. What was notified is
//! kept in `budgets.json` in the data directory (written durably before
//! anything is sent again), so a restart never repeats a notice.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use loupe_alerts::channels::Channel;
use loupe_alerts::eval::{Notice, NoticeState};
use loupe_analytics::budgets::{BudgetConfig, BudgetState, Crossing, spend};
use loupe_backend::{QueryLimits, SpanReader};

use crate::config::Config;

/// What the budgets notified, in the data directory.
const STATE_FILE: &str = "budgets.json";

/// Reads `budgets.json` of `data_dir` (absent: nothing notified yet).
///
/// # Errors
/// A file that cannot be read or parsed, named.
pub fn load_state(data_dir: &std::path::Path) -> anyhow::Result<BTreeMap<String, BudgetState>> {
    let path = data_dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a budgets state file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The config's budgets, each naming its currency (`[costs] currency`
/// when it names none), normalised as stored spans spell it.
pub fn configured(config: &Config) -> Vec<BudgetConfig> {
    config
        .budgets
        .iter()
        .cloned()
        .map(|mut b| {
            let code = b.currency.as_deref().unwrap_or(&config.costs.currency);
            b.currency = Some(loupe_model::currency::normalise(code));
            b
        })
        .collect()
}

/// Checks `[[budgets]]`: valid, unique names, channels that exist.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    let mut names = std::collections::HashSet::new();
    for b in &config.budgets {
        b.validate()?;
        if !names.insert(b.name.as_str()) {
            bail!("budgets: the name {:?} is used twice", b.name);
        }
        for channel in &b.notify {
            if !config.alerts.channels.iter().any(|c| &c.name == channel) {
                bail!(
                    "budget {:?}: notify names {channel:?}, which is not an [[alerts.channels]] entry",
                    b.name
                );
            }
        }
    }
    Ok(())
}

/// The budgets of a server, their channels and what they notified.
pub struct Budgets {
    budgets: Vec<BudgetConfig>,
    channels: HashMap<String, Channel>,
    state: BTreeMap<String, BudgetState>,
    path: PathBuf,
    base_url: String,
    interval: Duration,
    reader: Arc<dyn SpanReader>,
}

impl Budgets {
    /// The budgets of `config` over `reader`; `None` without any.
    ///
    /// # Errors
    /// A channel that cannot be built; an unreadable `budgets.json`.
    pub fn open(config: &Config, reader: Arc<dyn SpanReader>) -> anyhow::Result<Option<Self>> {
        if config.budgets.is_empty() {
            return Ok(None);
        }
        let mut channels = HashMap::new();
        for c in &config.alerts.channels {
            if config.budgets.iter().any(|b| b.notify.contains(&c.name)) {
                channels.insert(c.name.clone(), Channel::new(c.clone())?);
            }
        }
        let path = config.store.data_dir.join(STATE_FILE);
        let state = load_state(&config.store.data_dir)?;
        Ok(Some(Self {
            budgets: configured(config),
            channels,
            state,
            path,
            base_url: config.alerts.base_url.trim_end_matches('/').to_owned(),
            interval: config.alerts.interval,
            reader,
        }))
    }

    /// Checks every budget at `now_ns`; returns the crossings it notified.
    pub async fn tick(&mut self, now_ns: i64) -> Vec<Crossing> {
        let mut all = Vec::new();
        for budget in &self.budgets {
            let spends = match spend(self.reader.as_ref(), budget, now_ns, QueryLimits::default())
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(budget = %budget.name, error = %e, "cannot read the budget's spend");
                    continue;
                }
            };
            let state = self.state.entry(budget.name.clone()).or_default();
            all.extend(state.step(budget, &spends, now_ns));
        }
        if all.is_empty() {
            return all;
        }
        // Durable before sending: a crash after this sends nothing twice
        // (at worst a notice is lost, and the state says it was due).
        let saved = serde_json::to_vec_pretty(&self.state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| loupe_fsutil::write_atomic(&self.path, &bytes));
        if let Err(e) = saved {
            tracing::error!(path = %self.path.display(), error = %e, "cannot save budgets state; not notifying");
            return Vec::new();
        }
        let now_ms = now_ns / 1_000_000;
        for crossing in &all {
            let Some(budget) = self.budgets.iter().find(|b| b.name == crossing.budget) else {
                continue;
            };
            let notice = notice(budget, crossing, &self.base_url, now_ms);
            tracing::info!(budget = %budget.name, group = ?crossing.group, threshold = crossing.threshold,
                spent = crossing.spent, resolved = crossing.resolved, "budget threshold");
            for name in &budget.notify {
                if let Some(channel) = self.channels.get(name)
                    && let Err(e) = channel.send(&notice, now_ms).await
                {
                    tracing::warn!(budget = %budget.name, channel = %name, error = %e, "budget notice not delivered");
                }
            }
        }
        all
    }

    /// Checks at the alert interval until `stop`.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.tick(loupe_model::time::now_ns()).await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The alert notice of a crossing: alert name = the budget, the `per`
/// value as the group, severity warning below 100 %, critical at or above.
fn notice(budget: &BudgetConfig, c: &Crossing, base_url: &str, now_ms: i64) -> Notice {
    let mut group = BTreeMap::new();
    if let (Some(per), Some(value)) = (&budget.per, &c.group) {
        group.insert(per.clone(), value.clone());
    }
    let mut labels = group.clone();
    labels.insert("alertname".into(), budget.name.clone());
    labels.insert(
        "severity".into(),
        if c.threshold >= 1.0 {
            "critical"
        } else {
            "warning"
        }
        .into(),
    );
    labels.insert("kind".into(), "budget".into());
    let period = match budget.period {
        loupe_analytics::budgets::Period::Day => ("today", "今日"),
        loupe_analytics::budgets::Period::Week => ("this week", "本周"),
        loupe_analytics::budgets::Period::Month => ("this month", "本月"),
    };
    let share = c.threshold * 100.0;
    let who = c
        .group
        .as_deref()
        .map(|g| format!(" ({g})"))
        .unwrap_or_default();
    let summary = if c.resolved {
        format!(
            "Budget {}{who}: a new period started / 预算 {}{who}：新周期开始",
            budget.name, budget.name
        )
    } else {
        let cur = budget.currency.as_deref().unwrap_or_default();
        format!(
            "Budget {}{who}: {share:.0}% of {} {cur} reached {} ({:.4} {cur} spent) / 预算 {}{who}：{}已用 {share:.0}%（{:.4} / {} {cur}）",
            budget.name,
            budget.amount,
            period.0,
            c.spent,
            budget.name,
            period.1,
            c.spent,
            budget.amount
        )
    };
    let from = loupe_model::time::format_instant(c.period_start_ns);
    Notice {
        rule: budget.name.clone(),
        project: Some(budget.project.clone()),
        state: if c.resolved {
            NoticeState::Resolved
        } else {
            NoticeState::Firing
        },
        labels,
        group,
        metric: "cost_sum".into(),
        op: ">=".into(),
        value: (!c.resolved).then_some(c.spent),
        threshold: c.threshold * c.amount,
        summary,
        runs_url: format!("{base_url}/api/v1/spans?from={from}"),
        rca_url: String::new(),
        starts_at_ms: c.period_start_ns / 1_000_000,
        ends_at_ms: c.resolved.then_some(now_ms),
        silenced: false,
        notify: budget.notify.clone(),
        actions: Vec::new(),
    }
}
