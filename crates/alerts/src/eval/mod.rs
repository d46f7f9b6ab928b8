//! The deterministic evaluator: given the rules, the rollups and "now" (from
//! a [`Clock`]), it moves every (rule, group) alert through inactive →
//! pending → firing → resolved and returns the notices to send. It does no
//! I/O; the [`crate::engine`] persists its [`AlertState`] and delivers.

use std::collections::BTreeMap;

use loupe_rollup::Rollups;
use serde::Serialize;

use crate::rules::filter::{Selector, group_key};
use crate::rules::{Metric, Rule, RuleType};

mod clock;
mod events;
pub mod gauge;
pub mod state;
mod threshold;

pub use clock::{Clock, ManualClock, SystemClock};
pub use state::{AlertEntry, AlertState, HistoryDelivery, HistoryEntry, Phase};
pub use threshold::{group_values, metric_value};

/// `firing` or `resolved`, as notices say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    /// The alert started firing.
    Firing,
    /// The alert resolved.
    Resolved,
}

impl NoticeState {
    /// `firing` / `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeState::Firing => "firing",
            NoticeState::Resolved => "resolved",
        }
    }
}

/// One notification: an alert changed to firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// Rule name.
    pub rule: String,
    /// The rule's project (none: a config rule over every project).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Firing or resolved.
    pub state: NoticeState,
    /// All labels: `alertname`, `severity`, the rule's exact filters and
    /// the group.
    pub labels: BTreeMap<String, String>,
    /// The group labels only.
    pub group: BTreeMap<String, String>,
    /// The metric (`failure_rate`, …, or `consecutive_failures`).
    pub metric: String,
    /// The comparison (`>`, …).
    pub op: String,
    /// The value that triggered (or the last one seen).
    pub value: Option<f64>,
    /// The threshold.
    pub threshold: f64,
    /// The rule's summary text.
    pub summary: String,
    /// Link to example runs (`/api/v1/spans?…`).
    pub runs_url: String,
    /// Link to the console's root-cause analysis of this alert (`/rca?…`:
    /// the rule's target, its tool/node/app as scope, its window).
    pub rca_url: String,
    /// When the alert started, ms.
    pub starts_at_ms: i64,
    /// When it resolved, ms.
    pub ends_at_ms: Option<i64>,
    /// A silence mutes this notice (channels skip it; actions too).
    pub silenced: bool,
    /// Channels to notify.
    pub notify: Vec<String>,
    /// Actions to run (firing only).
    pub actions: Vec<String>,
}

impl Notice {
    /// The group as `k=v, k=v` (or `-`).
    pub fn group_text(&self) -> String {
        if self.group.is_empty() {
            return "-".to_owned();
        }
        self.group
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The value formatted in the metric's unit.
    pub fn value_text(&self) -> String {
        self.value
            .map_or("no data".to_owned(), |v| format_value(&self.metric, v))
    }

    /// The threshold formatted in the metric's unit.
    pub fn threshold_text(&self) -> String {
        format_value(&self.metric, self.threshold)
    }

    /// The condition with its value: `failure_rate: 12.00% (> 5.00%)`.
    pub fn condition_text(&self) -> String {
        format!(
            "{}: {} ({} {})",
            self.metric,
            self.value_text(),
            self.op,
            self.threshold_text()
        )
    }

    /// A one-line text: `[FIRING] rule (group): metric value > threshold`.
    pub fn headline(&self) -> String {
        format!(
            "[{}] {} ({}): {} {} {} {}",
            self.state.as_str().to_uppercase(),
            self.rule,
            self.group_text(),
            self.metric,
            self.value_text(),
            self.op,
            self.threshold_text()
        )
    }
}

fn format_value(metric: &str, v: f64) -> String {
    match metric {
        "failure_rate" | "success_rate" => format!("{:.2}%", v * 100.0),
        "avg_latency" | "p95_latency" => format!("{v:.3}s"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.4}"),
    }
}

/// The evaluator: the state plus what it needs to label notices.
#[derive(Debug, Clone)]
pub struct Evaluator {
    /// The persisted state.
    pub state: AlertState,
    labels: Vec<String>,
    base_url: String,
}

impl Evaluator {
    /// An evaluator over `state`; `labels` are `[metrics] labels`.
    pub fn new(state: AlertState, labels: Vec<String>, base_url: String) -> Self {
        Self {
            state,
            labels,
            base_url,
        }
    }

    /// The rollup label tags.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Evaluates every rule at `now_ms` and returns the notices (gauge
    /// rules see no gauge: see [`Self::evaluate_with`]).
    pub fn evaluate(&mut self, rules: &[Rule], rollups: &Rollups, now_ms: i64) -> Vec<Notice> {
        self.evaluate_with(rules, rollups, &|_| Vec::new(), now_ms)
    }

    /// Evaluates every rule at `now_ms`, gauge rules on `gauges`.
    pub fn evaluate_with(
        &mut self,
        rules: &[Rule],
        rollups: &Rollups,
        gauges: gauge::Gauges<'_>,
        now_ms: i64,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let feed = rollups.recent_events();
        if self.state.event_cursor > feed.last_seq() {
            // A new process: its feed starts again at 1.
            self.state.event_cursor = 0;
        }
        for rule in rules {
            match rule.kind {
                RuleType::Threshold => self.threshold_rule(rule, rollups, now_ms, &mut out),
                RuleType::Event => self.event_rule(rule, feed, now_ms, &mut out),
                RuleType::Gauge => self.gauge_rule(rule, gauges, now_ms, &mut out),
            }
        }
        self.state.event_cursor = feed.last_seq();
        // Forget alerts and streaks of rules that no longer exist.
        let ids: std::collections::HashSet<String> = rules.iter().map(Rule::id).collect();
        let known = |k: &String| ids.contains(k.split('\u{1f}').next().unwrap_or(""));
        self.state.alerts.retain(|k, _| known(k));
        self.state.streaks.retain(|k, _| known(k));
        self.state
            .silences
            .retain(|s| s.ends_at.timestamp_millis() > now_ms);
        for n in &mut out {
            n.silenced = self
                .state
                .silences
                .iter()
                .any(|s| s.mutes(&n.labels, now_ms));
        }
        out
    }

    /// Moves one alert given whether its condition holds (`None`: keep).
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        rule: &Rule,
        sel: &Selector,
        group: &BTreeMap<String, String>,
        cond: Option<bool>,
        value: Option<f64>,
        now_ms: i64,
        out: &mut Vec<Notice>,
    ) {
        let key = state::alert_key(&rule.id(), &group_key(group));
        let Some(cond) = cond else { return };
        let entry = self.state.alerts.get(&key).cloned();
        let live = entry.as_ref().filter(|e| e.phase != Phase::Resolved);
        match (live, cond) {
            (None, false) => {
                self.state.alerts.remove(&key);
            }
            (None, true) => {
                let mut e = AlertEntry {
                    rule: rule.name.clone(),
                    project: rule.project.clone(),
                    group: group.clone(),
                    phase: Phase::Pending,
                    active_since_ms: now_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    value,
                    last_event_ms: None,
                    notified_at_ms: None,
                };
                if rule.for_.is_zero() || rule.kind == RuleType::Event {
                    e.phase = Phase::Firing;
                    e.fired_at_ms = Some(now_ms);
                    e.notified_at_ms = Some(now_ms);
                    out.push(self.notice(rule, sel, &e, NoticeState::Firing, now_ms));
                }
                self.state.alerts.insert(key, e);
            }
            (Some(e), true) => {
                let mut e = e.clone();
                e.value = value;
                if e.phase == Phase::Pending
                    && now_ms - e.active_since_ms >= rule.for_.as_millis() as i64
                {
                    e.phase = Phase::Firing;
                    e.fired_at_ms = Some(now_ms);
                    e.notified_at_ms = Some(now_ms);
                    out.push(self.notice(rule, sel, &e, NoticeState::Firing, now_ms));
                } else if e.phase == Phase::Firing && !rule.repeat_interval.is_zero() {
                    let last = e.notified_at_ms.or(e.fired_at_ms).unwrap_or(now_ms);
                    if now_ms - last >= rule.repeat_interval.as_millis() as i64 {
                        e.notified_at_ms = Some(now_ms);
                        let mut n = self.notice(rule, sel, &e, NoticeState::Firing, now_ms);
                        // A reminder: the channels hear it again, actions
                        // (restart a plugin…) ran when it first fired.
                        n.actions.clear();
                        out.push(n);
                    }
                }
                self.state.alerts.insert(key, e);
            }
            (Some(e), false) => {
                if e.phase == Phase::Firing {
                    let mut e = e.clone();
                    e.phase = Phase::Resolved;
                    e.resolved_at_ms = Some(now_ms);
                    if value.is_some() {
                        e.value = value;
                    }
                    if rule.recovery {
                        out.push(self.notice(rule, sel, &e, NoticeState::Resolved, now_ms));
                    }
                    self.state.alerts.insert(key, e);
                } else {
                    self.state.alerts.remove(&key);
                }
            }
        }
    }

    fn notice(
        &self,
        rule: &Rule,
        sel: &Selector,
        e: &AlertEntry,
        state: NoticeState,
        now_ms: i64,
    ) -> Notice {
        let mut labels = sel.fixed_labels();
        labels.extend(e.group.clone());
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("severity".into(), rule.severity.clone());
        let (metric, threshold) = match rule.kind {
            RuleType::Threshold => (
                rule.metric.map_or("", Metric::as_str).to_owned(),
                rule.threshold_value().unwrap_or(f64::NAN),
            ),
            RuleType::Event => (
                "consecutive_failures".to_owned(),
                f64::from(rule.consecutive),
            ),
            RuleType::Gauge => (
                rule.gauge.clone().unwrap_or_default(),
                rule.gauge_threshold().unwrap_or(f64::NAN),
            ),
        };
        let op = match rule.kind {
            RuleType::Threshold | RuleType::Gauge => rule.op.as_str(),
            RuleType::Event => ">=",
        };
        let lookback = match rule.kind {
            RuleType::Threshold | RuleType::Gauge => rule.window,
            RuleType::Event => rule.within,
        };
        let from = now_ms - lookback.as_millis() as i64;
        Notice {
            rule: rule.name.clone(),
            project: rule.project.clone(),
            state,
            group: e.group.clone(),
            metric,
            op: op.to_owned(),
            value: e.value,
            threshold,
            summary: rule.summary.clone(),
            runs_url: runs_url(&self.base_url, &labels, rule, from, now_ms),
            rca_url: rca_url(&self.base_url, &labels, rule, from, now_ms),
            starts_at_ms: e.fired_at_ms.unwrap_or(e.active_since_ms),
            ends_at_ms: e.resolved_at_ms,
            silenced: false,
            notify: rule.notify.clone(),
            actions: rule.actions.clone(),
            labels,
        }
    }
}

/// `/api/v1/spans?…` selecting example runs: the rule's exact filters and
/// group values the span API supports, errors for failure rules, the window.
fn runs_url(
    base: &str,
    labels: &BTreeMap<String, String>,
    rule: &Rule,
    from: i64,
    to: i64,
) -> String {
    use crate::util::url_encode;
    let mut q: Vec<String> = ["app_id", "span_kind", "node_type", "tool_name", "status"]
        .iter()
        .filter_map(|k| {
            labels
                .get(*k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", url_encode(v)))
        })
        .collect();
    let failures = rule.kind == RuleType::Event
        || matches!(rule.metric, Some(Metric::FailureRate | Metric::SuccessRate));
    if failures && !labels.contains_key("status") {
        q.push("status=error".into());
    }
    let ts = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    q.push(format!("from={}", url_encode(&ts(from))));
    q.push(format!("to={}", url_encode(&ts(to))));
    q.push("limit=20".into());
    format!(
        "{}/api/v1/spans?{}",
        base.trim_end_matches('/'),
        q.join("&")
    )
}

/// The console's root-cause analysis of an alert: failures (or, for a
/// latency rule, spans slower than its threshold) among the node spans of
/// the rule's app, tool or node type, over its window (at least the last
/// hour, so there is something to count) against the one before.
fn rca_url(
    base: &str,
    labels: &BTreeMap<String, String>,
    rule: &Rule,
    from: i64,
    to: i64,
) -> String {
    use crate::util::url_encode;
    let target = match rule.metric {
        Some(Metric::AvgLatency | Metric::P95Latency) if rule.kind == RuleType::Threshold => rule
            .threshold_value()
            .filter(|t| t.is_finite() && *t > 0.0)
            .map_or_else(
                || "status=error".to_owned(),
                |secs| format!("duration>{}ms", (secs * 1000.0).round() as i64),
            ),
        _ => "status=error".to_owned(),
    };
    // Quoted values: any text is a valid literal.
    let mut scope = vec!["exists parent_span_id span_kind!=workflow".to_owned()];
    for key in ["app_id", "node_type", "tool_name"] {
        if let Some(v) = labels.get(key).filter(|v| !v.is_empty()) {
            scope.push(format!("{key}={}", serde_json::Value::from(v.as_str())));
        }
    }
    let from = from.min(to - 3_600_000);
    let ts = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    format!(
        "{}/rca?target={}&scope={}&from={}&to={}",
        base.trim_end_matches('/'),
        url_encode(&target),
        url_encode(&scope.join(" ")),
        url_encode(&ts(from)),
        url_encode(&ts(to)),
    )
}

#[cfg(test)]
mod tests;
