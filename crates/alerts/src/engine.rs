//! The running alerting: rules (config + API), the evaluator under a lock,
//! persistence of [`AlertState`] to `alerts.json`, delivery to channels and
//! actions, and the loop `loupe serve` runs every `interval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_rollup::Rollups;
use parking_lot::Mutex;
use serde::Serialize;

use crate::actions::Actions;
use crate::channels::{Channel, tls};
use crate::eval::{
    AlertEntry, AlertState, Clock, Evaluator, HistoryDelivery, HistoryEntry, Notice, NoticeState,
};
use crate::rules::{Rule, Silence};
use crate::{AUDIT_FILE, AlertsConfig, Error, STATE_FILE};

/// Where the engine reads the rollups from (a copy per evaluation).
pub type RollupSource = Arc<dyn Fn() -> Rollups + Send + Sync>;

/// Where gauge rules read their gauges from: the samples a rule of the
/// project (`None`: of every project) may see.
pub type GaugeSource = Arc<dyn Fn(Option<&str>) -> Vec<crate::eval::gauge::Gauge> + Send + Sync>;

/// What happened to one notice at one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Rule.
    pub rule: String,
    /// `firing` / `resolved`.
    pub state: String,
    /// Channel or action name.
    pub target: String,
    /// `sent`, `silenced`, `rate_limited`, `failed: …`, or an action outcome.
    pub result: String,
}

/// A rule as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedRule {
    /// `config` or `api`.
    pub source: &'static str,
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
}

/// The alerting engine.
pub struct Engine {
    config: AlertsConfig,
    eval: Mutex<Evaluator>,
    channels: Vec<Channel>,
    actions: Actions,
    state_path: Option<PathBuf>,
    source: RollupSource,
    gauges: Mutex<Option<GaugeSource>>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
}

impl Engine {
    /// Opens the engine: validates the config against the rollup `labels`
    /// and loads `alerts.json` from `data_dir` (none: nothing persisted).
    pub fn open(
        config: AlertsConfig,
        labels: Vec<String>,
        data_dir: Option<&Path>,
        source: RollupSource,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, Error> {
        config.validate(&labels)?;
        let state_path = data_dir.map(|d| d.join(STATE_FILE));
        let mut state = match &state_path {
            Some(p) => AlertState::load(p)?,
            None => AlertState::default(),
        };
        adopt_unscoped(&mut state);
        let eval = Evaluator::new(state, labels, config.base_url.clone());
        Ok(Arc::new(Self {
            channels: config
                .channels
                .iter()
                .cloned()
                .map(Channel::new)
                .collect::<Result<_, _>>()?,
            actions: Actions::new(config.actions.clone(), data_dir.map(|d| d.join(AUDIT_FILE))),
            config,
            eval: Mutex::new(eval),
            state_path,
            source,
            gauges: Mutex::new(None),
            clock,
            http: tls::http_client(&[])
                .map_err(|e| Error::Invalid(format!("HTTP client for actions: {e}")))?,
        }))
    }

    /// Sets where gauge rules read their gauges (none set: gauge rules
    /// see no data).
    pub fn set_gauges(&self, source: GaugeSource) {
        *self.gauges.lock() = Some(source);
    }

    /// Every rule: the config's, then the API's.
    pub fn rules(&self) -> Vec<ListedRule> {
        let api = self.eval.lock().state.api_rules.clone();
        let config = self.config.rules.iter().cloned().map(|rule| ListedRule {
            source: "config",
            rule,
        });
        config
            .chain(api.into_iter().map(|rule| ListedRule {
                source: "api",
                rule,
            }))
            .collect()
    }

    fn all_rules(&self) -> Vec<Rule> {
        self.rules().into_iter().map(|r| r.rule).collect()
    }

    /// The rules a key of `project` sees: its project's, from the config
    /// and the API (config rules over every project are the operator's and
    /// are not listed).
    pub fn rules_of(&self, project: &str) -> Vec<ListedRule> {
        self.rules()
            .into_iter()
            .filter(|r| r.rule.project.as_deref() == Some(project))
            .collect()
    }

    /// Adds (or replaces) an API rule of `project`. The rule belongs to and
    /// reads only `project`; it may name an action only if the action lists
    /// `project` in `projects`.
    pub fn add_rule(&self, project: &str, rule: Rule) -> Result<(), Error> {
        let rule = self.check_api_rule(project, rule)?;
        let mut ev = self.eval.lock();
        ev.state
            .api_rules
            .retain(|r| !(r.name == rule.name && r.project == rule.project));
        ev.state.api_rules.push(rule);
        self.save(&ev.state)
    }

    /// Checks a rule posted by a key of `project` as [`Engine::add_rule`]
    /// would, without storing it; returns it with its project set.
    pub fn check_api_rule(&self, project: &str, rule: Rule) -> Result<Rule, Error> {
        let rule = self.scoped_rule(project, rule)?;
        if self
            .config
            .rules
            .iter()
            .any(|r| r.name == rule.name && (r.project.is_none() || r.project == rule.project))
        {
            return Err(Error::Conflict(format!(
                "rule {:?} is defined in the config file; change it there",
                rule.name
            )));
        }
        Ok(rule)
    }

    /// Checks a rule of `project` (fields, window, channels, actions the
    /// project may run) and sets its project; its name may be taken (a
    /// preview of a config rule).
    pub fn scoped_rule(&self, project: &str, mut rule: Rule) -> Result<Rule, Error> {
        match rule.project.as_deref() {
            Some(p) if p != project => {
                return Err(Error::Invalid(format!(
                    "alert rule {:?}: project {p:?} is not this key's project {project:?}",
                    rule.name
                )));
            }
            _ => rule.project = Some(project.to_owned()),
        }
        for name in &rule.actions {
            let allowed = self
                .config
                .actions
                .iter()
                .any(|a| &a.name == name && a.projects.iter().any(|p| p == project));
            if !allowed {
                return Err(Error::Invalid(format!(
                    "alert rule {:?}: action {name:?} can only be run by rules in the config file \
                     (an operator can allow project {project:?} with `projects` in its [[alerts.actions]])",
                    rule.name
                )));
            }
        }
        self.config.check_rule(&rule, self.eval.lock().labels())?;
        Ok(rule)
    }

    /// The rollup label tags rules may filter and group on.
    pub fn labels(&self) -> Vec<String> {
        self.eval.lock().labels().to_vec()
    }

    /// The channels rules may notify (names and types; never their URLs,
    /// which carry tokens).
    pub fn channel_names(&self) -> Vec<(String, String)> {
        self.config
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.kind_name().to_owned()))
            .collect()
    }

    /// Deletes an API rule of `project`.
    pub fn delete_rule(&self, project: &str, name: &str) -> Result<(), Error> {
        if self
            .config
            .rules
            .iter()
            .any(|r| r.name == name && r.project.as_deref() == Some(project))
        {
            return Err(Error::Conflict(format!(
                "rule {name:?} is defined in the config file; remove it there"
            )));
        }
        let mut ev = self.eval.lock();
        let before = ev.state.api_rules.len();
        ev.state
            .api_rules
            .retain(|r| !(r.name == name && r.project.as_deref() == Some(project)));
        if ev.state.api_rules.len() == before {
            return Err(Error::NotFound(format!("no rule named {name:?}")));
        }
        self.save(&ev.state)
    }

    /// Sends a test notice from `project` to the channel `name` once (no
    /// retries), within the channel's rate limit; the service's error when
    /// it refuses. Returns the time the delivery took.
    pub async fn test_channel(
        &self,
        project: &str,
        name: &str,
    ) -> Result<std::time::Duration, Error> {
        let ch = self
            .channels
            .iter()
            .find(|c| c.config.name == name)
            .ok_or_else(|| Error::NotFound(format!("no channel named {name:?}")))?;
        let now = self.clock.now_ms();
        if !ch.admit(now) {
            return Err(Error::RateLimited(format!(
                "channel {name:?} has sent its {} notices of this minute; try again in a minute",
                ch.config.max_per_minute
            )));
        }
        let notice = test_notice(project, &self.config.base_url, now);
        let started = std::time::Instant::now();
        let sent = ch.send_once(&notice, now).await;
        tracing::info!(channel = %name, project, ok = sent.is_ok(), "alert channel test");
        sent.map(|()| started.elapsed())
    }

    /// Active silences of `project`.
    pub fn silences_of(&self, project: &str) -> Vec<Silence> {
        self.eval
            .lock()
            .state
            .silences
            .iter()
            .filter(|s| s.project.as_deref() == Some(project))
            .cloned()
            .collect()
    }

    /// Adds a silence of `project` (it mutes that project's alerts only);
    /// returns it with its id. It needs a positive matcher
    /// ([`Silence::validate`]).
    pub fn add_silence(&self, project: &str, mut s: Silence) -> Result<Silence, Error> {
        match s.project.as_deref() {
            Some(p) if p != project => {
                return Err(Error::Invalid(format!(
                    "silence project {p:?} is not this key's project {project:?}"
                )));
            }
            _ => s.project = Some(project.to_owned()),
        }
        s.validate()?;
        if s.ends_at.timestamp_millis() <= self.clock.now_ms() {
            return Err(Error::Invalid("a silence must end in the future".into()));
        }
        s.id = uuid::Uuid::new_v4().to_string();
        let mut ev = self.eval.lock();
        ev.state.silences.push(s.clone());
        self.save(&ev.state)?;
        Ok(s)
    }

    /// Removes a silence of `project`.
    pub fn delete_silence(&self, project: &str, id: &str) -> Result<(), Error> {
        let mut ev = self.eval.lock();
        let before = ev.state.silences.len();
        ev.state
            .silences
            .retain(|s| !(s.id == id && s.project.as_deref() == Some(project)));
        if ev.state.silences.len() == before {
            return Err(Error::NotFound(format!("no silence {id:?}")));
        }
        self.save(&ev.state)
    }

    /// Pending, firing and just-resolved alerts a key of `project` sees
    /// ([`AlertEntry::visible_to`]).
    pub fn alerts_of(&self, project: &str) -> Vec<AlertEntry> {
        self.eval
            .lock()
            .state
            .alerts
            .values()
            .filter(|e| e.visible_to(project))
            .cloned()
            .collect()
    }

    fn save(&self, state: &AlertState) -> Result<(), Error> {
        match &self.state_path {
            Some(p) => state.save(p),
            None => Ok(()),
        }
    }

    /// Evaluates once at the clock's now, persists the state, delivers the
    /// notices and runs the actions; returns what was delivered.
    pub async fn tick(&self) -> Vec<Delivery> {
        let source = self.source.clone();
        let rollups = match tokio::task::spawn_blocking(move || source()).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the rollups for alerting failed");
                return Vec::new();
            }
        };
        let now = self.clock.now_ms();
        let gauges = self.gauges.lock().clone();
        let notices = {
            let mut ev = self.eval.lock();
            let before = ev.state.clone();
            let rules = self.all_rules_locked(&ev);
            let notices = match &gauges {
                Some(g) => ev.evaluate_with(&rules, &rollups, &|p| g(p), now),
                None => ev.evaluate(&rules, &rollups, now),
            };
            if ev.state != before
                && let Err(e) = self.save(&ev.state)
            {
                tracing::error!(error = %e, "cannot persist the alert state");
            }
            notices
        };
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for n in &notices {
            let delivered = self.deliver(n, now).await;
            entries.push(history_entry(n, &delivered, now));
            out.extend(delivered);
        }
        if !entries.is_empty() {
            let mut ev = self.eval.lock();
            let history = &mut ev.state.history;
            history.extend(entries);
            while history.len() > crate::eval::state::HISTORY_KEPT {
                history.pop_front();
            }
            if let Err(e) = self.save(&ev.state) {
                tracing::error!(error = %e, "cannot persist the alert history");
            }
        }
        out
    }

    /// The notices a key of `project` may see, newest first, at most `limit`.
    pub fn history_of(&self, project: &str, limit: usize) -> Vec<HistoryEntry> {
        self.eval
            .lock()
            .state
            .history
            .iter()
            .rev()
            .filter(|e| e.visible_to(project))
            .take(limit)
            .cloned()
            .collect()
    }

    fn all_rules_locked(&self, ev: &Evaluator) -> Vec<Rule> {
        let mut rules = self.config.rules.clone();
        rules.extend(ev.state.api_rules.iter().cloned().map(|mut r| {
            // Checked again here, not only on POST: a rule stored before the
            // check existed must not run an action either.
            r.actions.retain(|name| {
                self.config.actions.iter().any(|a| {
                    &a.name == name && r.project.as_ref().is_some_and(|p| a.projects.contains(p))
                })
            });
            r
        }));
        rules
    }

    async fn deliver(&self, n: &Notice, now: i64) -> Vec<Delivery> {
        let d = |target: &str, result: String| Delivery {
            rule: n.rule.clone(),
            state: n.state.as_str().to_owned(),
            target: target.to_owned(),
            result,
        };
        tracing::info!(rule = %n.rule, state = n.state.as_str(), group = %n.group_text(), silenced = n.silenced, "alert");
        if n.silenced {
            return n.notify.iter().map(|c| d(c, "silenced".into())).collect();
        }
        let sends = n.notify.iter().map(|name| async move {
            let Some(ch) = self.channels.iter().find(|c| &c.config.name == name) else {
                return d(name, "failed: no such channel".into());
            };
            if !ch.admit(now) {
                tracing::warn!(channel = %name, rule = %n.rule, "alert dropped: channel rate limit");
                return d(name, "rate_limited".into());
            }
            match ch.send(n, now).await {
                Ok(_) => d(name, "sent".into()),
                Err(e) => {
                    tracing::error!(channel = %name, error = %e, "alert delivery failed");
                    d(name, format!("failed: {e}"))
                }
            }
        });
        let mut out = futures_join(sends).await;
        if n.state == NoticeState::Firing {
            for a in &n.actions {
                let o = self.actions.run(a, n, &self.http, now).await;
                out.push(d(a, o.outcome));
            }
        }
        out
    }

    /// Evaluates every `interval` until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(self.config.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = every.tick() => { self.tick().await; }
                changed = stop.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Evaluates the named rule on `rollups` at `at_ms` without changing
    /// any state (`loupe alerts test`): the value of every group and
    /// whether the condition holds (`for` not applied).
    pub fn test_rule(
        &self,
        name: &str,
        rollups: &Rollups,
        at_ms: i64,
    ) -> Result<Vec<TestRow>, Error> {
        let rule = self
            .all_rules()
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| Error::NotFound(format!("no rule named {name:?}")))?;
        let labels = self.eval.lock().labels().to_vec();
        if rule.kind == crate::rules::RuleType::Event {
            let mut scratch =
                Evaluator::new(AlertState::default(), labels, self.config.base_url.clone());
            let notices = scratch.evaluate(std::slice::from_ref(&rule), rollups, at_ms);
            return Ok(notices
                .into_iter()
                .filter(|n| n.state == NoticeState::Firing)
                .map(|n| TestRow {
                    group: n.group_text(),
                    value: n.value,
                    holds: true,
                })
                .collect());
        }
        let sel = crate::rules::filter::Selector::new(&rule, &labels);
        let (Some(metric), Some(threshold)) = (rule.metric, rule.threshold_value()) else {
            return Ok(Vec::new());
        };
        let groups = crate::eval::group_values(&rule, &sel, rollups, at_ms);
        Ok(groups
            .into_values()
            .map(|(group, m)| {
                let value = crate::eval::metric_value(metric, &m);
                TestRow {
                    group: crate::rules::filter::group_key(&group),
                    value,
                    holds: value.is_some_and(|v| rule.op.holds(v, threshold)),
                }
            })
            .collect())
    }
}

/// State written before alerting had projects: API rules and silences
/// without one move to the `default` project (where open mode and the Dify
/// sync put data by default), and a silence without a positive matcher
/// (which would mute everything) is dropped. Each change is logged.
fn adopt_unscoped(state: &mut AlertState) {
    let default = loupe_model::ProjectId::DEFAULT;
    for r in state.api_rules.iter_mut().filter(|r| r.project.is_none()) {
        tracing::warn!(rule = %r.name, project = default, "alert rule from before projects moved to the default project");
        r.project = Some(default.to_owned());
    }
    state.silences.retain(|s| match s.validate() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(silence = %s.id, error = %e, "stored silence dropped: it would mute every alert");
            false
        }
    });
    for s in state.silences.iter_mut().filter(|s| s.project.is_none()) {
        tracing::warn!(silence = %s.id, project = default, "silence from before projects moved to the default project");
        s.project = Some(default.to_owned());
    }
}

/// A notice and what became of it, for the history.
fn history_entry(n: &Notice, delivered: &[Delivery], now_ms: i64) -> HistoryEntry {
    HistoryEntry {
        at_ms: now_ms,
        rule: n.rule.clone(),
        project: n.project.clone(),
        group: n.group.clone(),
        state: n.state.as_str().to_owned(),
        reminder: n.state == NoticeState::Firing && n.starts_at_ms < now_ms,
        value: n.value,
        silenced: n.silenced,
        deliveries: delivered
            .iter()
            .map(|d| HistoryDelivery {
                target: d.target.clone(),
                kind: if n.actions.contains(&d.target) && !n.notify.contains(&d.target) {
                    "action".into()
                } else {
                    "channel".into()
                },
                result: d.result.clone(),
            })
            .collect(),
    }
}

/// The notice of a channel test: a firing alert named `loupe-test` of
/// severity `info`, whose summary says (in English and Chinese) that it is
/// a test.
fn test_notice(project: &str, base_url: &str, now_ms: i64) -> Notice {
    let labels: std::collections::BTreeMap<String, String> = [
        ("alertname", "loupe-test"),
        ("severity", "info"),
        ("project", project),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Notice {
        rule: "loupe-test".into(),
        project: Some(project.to_owned()),
        state: NoticeState::Firing,
        labels,
        group: Default::default(),
        metric: "count".into(),
        op: ">".into(),
        value: Some(1.0),
        threshold: 0.0,
        summary: format!(
            "Test notice from the Loupe console (project {project}): this channel works. \
             来自 Loupe 控制台的测试通知（项目 {project}）：此通知渠道可用。"
        ),
        runs_url: format!("{}/alerts", base_url.trim_end_matches('/')),
        rca_url: String::new(),
        starts_at_ms: now_ms,
        ends_at_ms: None,
        silenced: false,
        notify: Vec::new(),
        actions: Vec::new(),
    }
}

/// One group of `loupe alerts test`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestRow {
    /// Group (`k=v,…`; empty without group-by).
    pub group: String,
    /// The metric's value (`None`: no data).
    pub value: Option<f64>,
    /// Whether the condition holds.
    pub holds: bool,
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join<F: std::future::Future<Output = Delivery>>(
    futs: impl Iterator<Item = F>,
) -> Vec<Delivery> {
    let mut set = Vec::new();
    for f in futs {
        set.push(f);
    }
    let mut out = Vec::with_capacity(set.len());
    for f in set {
        out.push(f.await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_from_before_projects_is_adopted_by_the_default_project() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rule: Rule = serde_json::from_value(serde_json::json!({
            "name": "old", "metric": "count", "threshold": 1, "actions": ["restart"]
        }))
        .expect("rule");
        let silence = |matchers: serde_json::Value| Silence {
            id: uuid::Uuid::new_v4().to_string(),
            project: None,
            matchers: serde_json::from_value(matchers).expect("matchers"),
            starts_at: None,
            ends_at: chrono::DateTime::from_timestamp_millis(i64::MAX / 4).unwrap_or_default(),
            created_by: String::new(),
            comment: String::new(),
        };
        let state = AlertState {
            api_rules: vec![rule],
            silences: vec![
                silence(serde_json::json!({"alertname": "!__none__"})),
                silence(serde_json::json!({"alertname": "old"})),
            ],
            ..AlertState::default()
        };
        state.save(&dir.path().join(STATE_FILE)).expect("save");
        let config: AlertsConfig = serde_json::from_value(serde_json::json!({
            "actions": [{"name": "restart", "type": "command", "command": ["true"]}]
        }))
        .expect("config");
        let engine = Engine::open(
            config,
            Vec::new(),
            Some(dir.path()),
            Arc::new(Rollups::default),
            Arc::new(crate::ManualClock::new(0)),
        )
        .expect("open");
        let rules = engine.rules_of("default");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].rule.project.as_deref(), Some("default"));
        let silences = engine.silences_of("default");
        assert_eq!(silences.len(), 1, "the mute-everything silence is dropped");
        assert_eq!(silences[0].matchers["alertname"], "old");
        // The stored rule names a command action no project may use: it
        // does not run.
        let ev = engine.eval.lock();
        let effective = engine.all_rules_locked(&ev);
        assert!(effective[0].actions.is_empty(), "{effective:?}");
    }
}
