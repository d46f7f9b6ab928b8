//! Cost budgets in `loupe serve`: those of `loupe.toml` (`[[budgets]]`)
//! and those added over the API (the console's budget form, `PUT
//! /api/v1/budgets/{name}`). At the alert evaluation interval (`[alerts]
//! interval`), each budget's spend in its current period
//! (`loupe_analytics::budgets::spend`) is compared with its thresholds; a
//! threshold reached notifies the budget's alert channels once per period,
//! and the next period resolves it.
//!
//! What was notified is written durably before anything is sent, so a
//! restart never repeats a notice: `budgets.json` for the `loupe.toml`
//! budgets (by name), `budget-rules.json` for the API's (each budget with
//! its state, per project). `loupe.toml` wins: the API cannot change or
//! shadow one of its budgets.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::StatusCode;
use loupe_alerts::channels::Channel;
use loupe_alerts::eval::{Notice, NoticeState};
use loupe_analytics::budgets::{BudgetConfig, BudgetState, Crossing, spend};
use loupe_api::{ApiError, BudgetEntry};
use loupe_backend::{QueryLimits, SpanReader};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// What the `loupe.toml` budgets notified, in the data directory.
const STATE_FILE: &str = "budgets.json";

/// The budgets added over the API, with what each notified.
pub const RULES_FILE: &str = "budget-rules.json";

/// Format of [`RULES_FILE`].
const RULES_FORMAT: u32 = 1;

/// Budgets one project may add over the API.
pub const MAX_API_BUDGETS: usize = 100;

/// Longest budget name (characters).
const MAX_NAME_CHARS: usize = 64;

/// Filter entries and channels one budget may name.
const MAX_ENTRIES: usize = 16;

/// Longest filter value (characters).
const MAX_VALUE_CHARS: usize = 256;

/// Reads `budgets.json` of `data_dir` (absent: nothing notified yet).
///
/// # Errors
/// A file that cannot be read or parsed, named.
pub fn load_state(data_dir: &Path) -> anyhow::Result<BTreeMap<String, BudgetState>> {
    let path = data_dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a budgets state file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `value` as JSON to `path`, atomically and durably.
fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    loupe_fsutil::write_atomic(path, &bytes)
}

/// `budget-rules.json`: the API's budgets and their states.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    format: u32,
    budgets: Vec<ApiBudget>,
}

/// A budget added over the API, with what it notified.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiBudget {
    budget: BudgetConfig,
    #[serde(default)]
    state: Option<BudgetState>,
}

/// Reads `budget-rules.json` of `data_dir` (absent: none).
fn load_rules(data_dir: &Path) -> anyhow::Result<Vec<ApiBudget>> {
    let path = data_dir.join(RULES_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let file: RulesFile = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a budgets file (move it away to start without the budgets added in the console)",
            path.display()
        )
    })?;
    if file.format != RULES_FORMAT {
        bail!(
            "{}: format {} is not known to this build (it reads {RULES_FORMAT}); was it written by a newer Loupe?",
            path.display(),
            file.format
        );
    }
    for b in &file.budgets {
        b.budget
            .validate()
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(file.budgets)
}

/// The config's budgets, each naming its currency (`[costs] currency`
/// when it names none), normalised as stored spans spell it.
pub fn configured(config: &Config) -> Vec<BudgetConfig> {
    config
        .budgets
        .iter()
        .cloned()
        .map(|b| with_currency(b, &config.costs.currency))
        .collect()
}

fn with_currency(mut b: BudgetConfig, default: &str) -> BudgetConfig {
    let code = b.currency.as_deref().unwrap_or(default);
    b.currency = Some(loupe_model::currency::normalise(code));
    b
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

/// Which budget a state belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// A `loupe.toml` budget (names are unique across projects).
    Toml(String),
    /// An API budget: project, name.
    Api(String, String),
}

/// A budget checked, as it was when its spend (per group) was read.
type Spent = (Key, BudgetConfig, Vec<(Option<String>, f64)>);

/// Every budget of a server and what each notified, shared by the
/// checking task and the API.
pub struct BudgetBook {
    /// `loupe.toml`'s budgets (currencies normalised).
    configured: Vec<BudgetConfig>,
    /// `[costs] currency`: the currency of a budget naming none.
    currency: String,
    /// `[[alerts.channels]]` names: what a budget may notify.
    channels: Vec<String>,
    data_dir: PathBuf,
    inner: Mutex<Book>,
}

struct Book {
    /// What each `loupe.toml` budget notified (`budgets.json`).
    toml: BTreeMap<String, BudgetState>,
    /// The API's budgets (`budget-rules.json`).
    api: Vec<ApiBudget>,
    /// Alerts of budgets removed, or changed in what they count, that
    /// fired this period: resolved at the next check (in memory: a restart
    /// before it leaves them to the receiver's own expiry).
    resolved: Vec<(BudgetConfig, Crossing)>,
}

/// The notices resolving what `state` fired in its period.
fn resolutions(
    budget: &BudgetConfig,
    state: Option<&BudgetState>,
) -> Vec<(BudgetConfig, Crossing)> {
    let Some(state) = state else {
        return Vec::new();
    };
    state
        .notified
        .iter()
        .filter_map(|(group, thresholds)| {
            let top = thresholds.iter().copied().reduce(f64::max)?;
            Some((
                budget.clone(),
                Crossing {
                    budget: budget.name.clone(),
                    group: (!group.is_empty()).then(|| group.clone()),
                    threshold: top,
                    spent: 0.0,
                    amount: budget.amount,
                    period_start_ns: state.period_start_ns,
                    resolved: true,
                },
            ))
        })
        .collect()
}

impl BudgetBook {
    /// The budgets of `config` and of its data directory.
    ///
    /// # Errors
    /// An unreadable or damaged `budgets.json` or `budget-rules.json`.
    pub fn open(config: &Config) -> anyhow::Result<Arc<Self>> {
        let data_dir = config.store.data_dir.clone();
        let toml = load_state(&data_dir)?;
        let api = load_rules(&data_dir)?;
        let configured = configured(config);
        let channels: Vec<String> = config
            .alerts
            .channels
            .iter()
            .map(|c| c.name.clone())
            .collect();
        for b in &api {
            let (name, project) = (&b.budget.name, &b.budget.project);
            if configured
                .iter()
                .any(|c| &c.name == name && &c.project == project)
            {
                tracing::warn!(budget = %name, project = %project,
                    "loupe.toml now has a budget of this name: the one added in the console is not checked");
            }
            for gone in b.budget.notify.iter().filter(|n| !channels.contains(n)) {
                tracing::warn!(budget = %name, project = %project, channel = %gone,
                    "a budget added in the console notifies a channel loupe.toml no longer has: its notices will not go there");
            }
        }
        Ok(Arc::new(Self {
            configured,
            currency: config.costs.currency.clone(),
            channels,
            data_dir,
            inner: Mutex::new(Book {
                toml,
                api,
                resolved: Vec::new(),
            }),
        }))
    }

    /// The budgets checked now: `loupe.toml`'s, then the API's that no
    /// `loupe.toml` budget shadows.
    fn checked(&self) -> Vec<(Key, BudgetConfig)> {
        let book = self.inner.lock();
        let mut out: Vec<(Key, BudgetConfig)> = self
            .configured
            .iter()
            .map(|b| (Key::Toml(b.name.clone()), b.clone()))
            .collect();
        for b in &book.api {
            if !self.is_toml(&b.budget.project, &b.budget.name) {
                let key = Key::Api(b.budget.project.clone(), b.budget.name.clone());
                out.push((key, b.budget.clone()));
            }
        }
        out
    }

    /// Whether `loupe.toml` has a budget `name` in `project` (another
    /// project's budgets neither shadow nor reveal anything here).
    fn is_toml(&self, project: &str, name: &str) -> bool {
        self.configured
            .iter()
            .any(|c| c.project == project && c.name == name)
    }

    /// `project`'s budgets, each with what it notified and where it is set.
    pub fn list(&self, project: &str) -> Vec<BudgetEntry> {
        let book = self.inner.lock();
        let mut out: Vec<BudgetEntry> = self
            .configured
            .iter()
            .filter(|b| b.project == project)
            .map(|b| BudgetEntry {
                budget: b.clone(),
                notified: book.toml.get(&b.name).cloned(),
                source: "loupe.toml",
            })
            .collect();
        out.extend(
            book.api
                .iter()
                .filter(|b| b.budget.project == project && !self.is_toml(project, &b.budget.name))
                .map(|b| BudgetEntry {
                    budget: b.budget.clone(),
                    notified: b.state.clone(),
                    source: "console",
                }),
        );
        out
    }

    /// The channels a budget may notify.
    pub fn channels(&self) -> Vec<String> {
        self.channels.clone()
    }

    /// Adds or replaces `budget` (its project and name say which): the
    /// budget as kept (its currency named), and `true` when it is new. A
    /// change of what the budget counts (amount, currency, period, filter,
    /// `per`) resolves what it fired and starts its notices of the period
    /// afresh; a change of thresholds or channels keeps what was sent.
    ///
    /// # Errors
    /// 409 for a `loupe.toml` name; 422 for an invalid budget, an unknown
    /// channel or one budget too many; 500 when it cannot be written
    /// (nothing changed then).
    pub fn put(&self, budget: BudgetConfig) -> Result<(BudgetConfig, bool), ApiError> {
        let budget = with_currency(budget, &self.currency);
        self.check(&budget)?;
        let mut book = self.inner.lock();
        let mut api = book.api.clone();
        let at = api
            .iter()
            .position(|b| b.budget.project == budget.project && b.budget.name == budget.name);
        match at {
            Some(i) => {
                let kept = budget.clone();
                let old = &api[i].budget;
                let same_count = old.amount == budget.amount
                    && old.currency == budget.currency
                    && old.period == budget.period
                    && old.filter == budget.filter
                    && old.per == budget.per;
                let (state, resolved) = if same_count {
                    (api[i].state.take(), Vec::new())
                } else {
                    (None, resolutions(old, api[i].state.as_ref()))
                };
                api[i] = ApiBudget { budget, state };
                self.save_rules(&api)?;
                book.api = api;
                book.resolved.extend(resolved);
                Ok((kept, false))
            }
            None => {
                let of_project = api
                    .iter()
                    .filter(|b| b.budget.project == budget.project)
                    .count();
                if of_project >= MAX_API_BUDGETS {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "this project has {MAX_API_BUDGETS} budgets, the most the console may add: remove one first"
                        ),
                    ));
                }
                api.push(ApiBudget {
                    budget: budget.clone(),
                    state: None,
                });
                self.save_rules(&api)?;
                book.api = api;
                Ok((budget, true))
            }
        }
    }

    /// Removes `project`'s budget `name`, and what it notified.
    ///
    /// # Errors
    /// 409 for a `loupe.toml` budget; 404 for none; 500 as [`Self::put`].
    pub fn delete(&self, project: &str, name: &str) -> Result<(), ApiError> {
        if self.is_toml(project, name) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("budget {name:?} is set in loupe.toml: change it there"),
            ));
        }
        let mut book = self.inner.lock();
        let mut api = book.api.clone();
        let Some(at) = api
            .iter()
            .position(|b| b.budget.project == project && b.budget.name == name)
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no budget {name:?} in this project"),
            ));
        };
        let removed = api.remove(at);
        self.save_rules(&api)?;
        book.api = api;
        book.resolved
            .extend(resolutions(&removed.budget, removed.state.as_ref()));
        Ok(())
    }

    /// What an API budget must be: a valid budget, a usable name that is
    /// not `loupe.toml`'s, channels that exist, bounded sizes.
    fn check(&self, b: &BudgetConfig) -> Result<(), ApiError> {
        let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
        let chars = b.name.chars().count();
        if b.name.trim().is_empty()
            || chars > MAX_NAME_CHARS
            || b.name != b.name.trim()
            || b.name.chars().any(|c| c.is_control() || c == '/')
            || b.name == "."
            || b.name == ".."
        {
            return Err(invalid(format!(
                "budget name {:?}: 1 to {MAX_NAME_CHARS} characters, no slash or control characters, no leading or trailing spaces, not . or ..",
                b.name
            )));
        }
        if self.is_toml(&b.project, &b.name) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "a budget named {:?} is set in loupe.toml: change it there, or choose another name",
                    b.name
                ),
            ));
        }
        b.validate().map_err(|e| invalid(e.to_string()))?;
        if b.filter.len() > MAX_ENTRIES || b.notify.len() > MAX_ENTRIES {
            return Err(invalid(format!(
                "budget {:?}: at most {MAX_ENTRIES} filters and {MAX_ENTRIES} channels",
                b.name
            )));
        }
        if let Some((key, _)) = b
            .filter
            .iter()
            .find(|(_, v)| v.chars().count() > MAX_VALUE_CHARS)
        {
            return Err(invalid(format!(
                "budget {:?}: the value of filter {key:?} is over {MAX_VALUE_CHARS} characters",
                b.name
            )));
        }
        if let Some((_, twice)) = b
            .notify
            .iter()
            .enumerate()
            .find(|(i, n)| b.notify[..*i].contains(n))
        {
            return Err(invalid(format!(
                "budget {:?}: notify names {twice:?} twice",
                b.name
            )));
        }
        if let Some(unknown) = b.notify.iter().find(|n| !self.channels.contains(n)) {
            return Err(invalid(format!(
                "budget {:?}: notify names {unknown:?}, which is not a channel of this server ({})",
                b.name,
                if self.channels.is_empty() {
                    "it has none: add [[alerts.channels]] to loupe.toml".to_owned()
                } else {
                    self.channels.join(", ")
                }
            )));
        }
        Ok(())
    }

    fn save_rules(&self, api: &[ApiBudget]) -> Result<(), ApiError> {
        let path = self.data_dir.join(RULES_FILE);
        let file = RulesFile {
            format: RULES_FORMAT,
            budgets: api.to_vec(),
        };
        write_json(&path, &file).map_err(|e| {
            tracing::error!(path = %path.display(), error = %e, "cannot save the budgets");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the budgets could not be saved; nothing changed (see the server log)",
            )
        })
    }

    /// Applies the spends read at `now_ns` to the states of the budgets
    /// still there, saves the states that changed, and returns the
    /// crossings with their budgets, and the resolutions of budgets removed
    /// or changed since the last check. A crossing whose state cannot be
    /// saved is not returned (a notice is never sent twice).
    fn step(&self, spends: Vec<Spent>, now_ns: i64) -> Vec<(BudgetConfig, Crossing)> {
        let mut book = self.inner.lock();
        let mut toml = book.toml.clone();
        let mut api = book.api.clone();
        let (mut toml_out, mut api_out) = (Vec::new(), Vec::new());
        let (mut toml_changed, mut api_changed) = (false, false);
        for (key, checked, spent) in spends {
            let (state, out, changed) = match &key {
                Key::Toml(name) => (
                    toml.entry(name.clone()).or_default(),
                    &mut toml_out,
                    &mut toml_changed,
                ),
                Key::Api(project, name) => {
                    // Removed or changed while its spend was read: skip
                    // until the next tick reads it as it is now.
                    let Some(b) = api.iter_mut().find(|b| {
                        &b.budget.project == project
                            && &b.budget.name == name
                            && b.budget == checked
                    }) else {
                        continue;
                    };
                    (
                        b.state.get_or_insert_with(BudgetState::default),
                        &mut api_out,
                        &mut api_changed,
                    )
                }
            };
            let before = state.clone();
            let crossings = state.step(&checked, &spent, now_ns);
            *changed |= *state != before;
            out.extend(crossings.into_iter().map(|c| (checked.clone(), c)));
        }
        let mut out = std::mem::take(&mut book.resolved);
        // Durable before sending: a crash after this sends nothing twice
        // (at worst a notice is lost, and the state says it was due).
        if toml_changed {
            let path = self.data_dir.join(STATE_FILE);
            match write_json(&path, &toml) {
                Ok(()) => {
                    book.toml = toml;
                    out.extend(toml_out);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot save budgets state; not notifying");
                }
            }
        }
        if api_changed && self.save_rules(&api).is_ok() {
            book.api = api;
            out.extend(api_out);
        }
        out
    }
}

/// The budget checker of a server: the book, and the channels to notify.
pub struct Budgets {
    book: Arc<BudgetBook>,
    channels: HashMap<String, Channel>,
    base_url: String,
    interval: Duration,
    reader: Arc<dyn SpanReader>,
}

impl Budgets {
    /// Checks the budgets of `book` over `reader`, notifying `config`'s
    /// channels.
    ///
    /// # Errors
    /// A channel that cannot be built.
    pub fn new(
        config: &Config,
        book: Arc<BudgetBook>,
        reader: Arc<dyn SpanReader>,
    ) -> anyhow::Result<Self> {
        let mut channels = HashMap::new();
        for c in &config.alerts.channels {
            channels.insert(c.name.clone(), Channel::new(c.clone())?);
        }
        Ok(Self {
            book,
            channels,
            base_url: config.alerts.base_url.trim_end_matches('/').to_owned(),
            interval: config.alerts.interval,
            reader,
        })
    }

    /// Checks every budget at `now_ns`; returns the crossings it notified.
    pub async fn tick(&mut self, now_ns: i64) -> Vec<Crossing> {
        let mut spends = Vec::new();
        for (key, budget) in self.book.checked() {
            match spend(
                self.reader.as_ref(),
                &budget,
                now_ns,
                QueryLimits::default(),
            )
            .await
            {
                Ok(s) => spends.push((key, budget, s)),
                Err(e) => {
                    tracing::warn!(budget = %budget.name, error = %e, "cannot read the budget's spend");
                }
            }
        }
        // The states are written durably (fsync): off the async threads.
        let book = self.book.clone();
        let all = match tokio::task::spawn_blocking(move || book.step(spends, now_ns)).await {
            Ok(all) => all,
            Err(e) => {
                tracing::error!(error = %e, "the budgets check failed");
                return Vec::new();
            }
        };
        let now_ms = now_ns / 1_000_000;
        for (budget, crossing) in &all {
            let notice = notice(budget, crossing, &self.base_url, now_ms);
            tracing::info!(budget = %budget.name, project = %budget.project, group = ?crossing.group,
                threshold = crossing.threshold, spent = crossing.spent, resolved = crossing.resolved,
                "budget threshold");
            let mut sent = Vec::new();
            for name in &budget.notify {
                if sent.contains(&name) {
                    continue;
                }
                sent.push(name);
                let Some(channel) = self.channels.get(name) else {
                    tracing::warn!(budget = %budget.name, channel = %name, "budget notice not delivered: loupe.toml has no such channel");
                    continue;
                };
                if let Err(e) = channel.send(&notice, now_ms).await {
                    tracing::warn!(budget = %budget.name, channel = %name, error = %e, "budget notice not delivered");
                }
            }
        }
        all.into_iter().map(|(_, c)| c).collect()
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
    let summary = if c.resolved
        && c.period_start_ns == budget.period.start(now_ms.saturating_mul(1_000_000))
    {
        // Resolved inside its period: the budget was removed, or changed
        // in what it counts (its notices start afresh).
        format!(
            "Budget {}{who}: removed or changed, its alert is over / 预算 {}{who}：已删除或修改，告警结束",
            budget.name, budget.name
        )
    } else if c.resolved {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_newer_budgets_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load_rules(dir.path()).expect("absent").is_empty());
        let path = dir.path().join(RULES_FILE);
        std::fs::write(&path, b"{\"format\": 1, \"budgets\": [").expect("write");
        let err = format!("{:#}", load_rules(dir.path()).expect_err("damaged"));
        assert!(
            err.contains(RULES_FILE) && err.contains("move it away"),
            "{err}"
        );
        std::fs::write(&path, b"{\"format\": 2, \"budgets\": []}").expect("write");
        let err = format!("{:#}", load_rules(dir.path()).expect_err("newer"));
        assert!(err.contains("format 2"), "{err}");
        std::fs::write(
            &path,
            br#"{"format": 1, "budgets": [{"budget": {"name": "b", "amount": -1}}]}"#,
        )
        .expect("write");
        let err = format!("{:#}", load_rules(dir.path()).expect_err("invalid"));
        assert!(err.contains("amount"), "{err}");
    }
}
