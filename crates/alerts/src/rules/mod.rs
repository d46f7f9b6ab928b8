//! Rule and silence definitions, as written in `[[alerts.rules]]` or posted
//! to `POST /api/v1/alerts/rules`, and their validation.
//!
//! A threshold rule compares a [`Metric`] of the rollups over a `window`
//! with a threshold (`0.05`, `"5%"`, `"1s"`); an event rule fires on
//! `consecutive` failures of the same group (tool or error class) within
//! `within`. [`filter`] matches rollup keys against a rule's filters and
//! computes its groups.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use loupe_model::duration_text;

pub mod filter;
mod threshold;

pub use threshold::Threshold;

/// What a rule watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    /// A metric of the rollups over a window, against a threshold.
    #[default]
    Threshold,
    /// N consecutive failures of a group within a time.
    Event,
    /// The current value of a gauge the server exposes besides the
    /// rollups (the Dify database's `dify_database_*` families), against
    /// a threshold.
    Gauge,
}

/// The value a threshold rule computes per group over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Failed / finished (0..1).
    FailureRate,
    /// 1 − failure rate (0..1).
    SuccessRate,
    /// Mean duration, seconds.
    AvgLatency,
    /// 95th percentile duration (histogram interpolation), seconds.
    P95Latency,
    /// Finished spans.
    Count,
    /// Total tokens.
    TokensSum,
    /// Cost in the spans' currency.
    CostSum,
}

impl Metric {
    /// The name as written in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::FailureRate => "failure_rate",
            Metric::SuccessRate => "success_rate",
            Metric::AvgLatency => "avg_latency",
            Metric::P95Latency => "p95_latency",
            Metric::Count => "count",
            Metric::TokensSum => "tokens_sum",
            Metric::CostSum => "cost_sum",
        }
    }
}

/// Comparison of a value with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// Greater or equal.
    #[serde(rename = ">=")]
    Ge,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// Less or equal.
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// What a group without data in the window means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoData {
    /// The condition is false (a firing alert resolves). Default.
    #[default]
    Ok,
    /// The condition is true (silence is a problem).
    Alerting,
    /// The alert keeps its state.
    Keep,
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name, unique within its project; the `alertname` label.
    pub name: String,
    /// The project the rule belongs to and reads: rules posted to the API
    /// get the key's project (a rule cannot reach another project's data,
    /// `filters.project` may only repeat it). Config rules may set it;
    /// absent, a config rule watches every project (the operator's rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// `threshold` (default) or `event`.
    #[serde(default, rename = "type")]
    pub kind: RuleType,
    /// Threshold rules: the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// Gauge rules: the gauge family, e.g. `dify_database_table_size_bytes`
    /// (`filters` and `group_by` then name its labels, e.g. `table`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gauge: Option<String>,
    /// Threshold rules: the comparison. Default `>`.
    #[serde(default = "default_op")]
    pub op: Op,
    /// Threshold rules: `0.05`, `"5%"`, `"1s"` or `"500ms"` (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    /// Threshold rules: the span of data summed. Default 5 min.
    #[serde(default = "default_window", with = "duration_text")]
    pub window: Duration,
    /// How long the condition must hold before firing. Default 0.
    #[serde(default, rename = "for", with = "duration_text")]
    pub for_: Duration,
    /// Rollup key fields that must match: `project`, `app_id`,
    /// `workflow_id`, `span_kind`, `node_type`, `tool_name`, `model_name`,
    /// `status`, `error_class`, `tags.<label>`. A value starting with `!`
    /// must not match.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// Fields giving one alert per distinct value combination.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Threshold rules: a group without data. Default `ok`.
    #[serde(default)]
    pub no_data: NoData,
    /// Event rules: failures in a row. Default 3.
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    /// Event rules: the failures must fall within this time. Default 10 min.
    #[serde(default = "default_within", with = "duration_text")]
    pub within: Duration,
    /// Send a notice when the alert resolves. Default true.
    #[serde(default = "yes")]
    pub recovery: bool,
    /// While an alert keeps firing, notify its channels again this often
    /// (actions do not repeat). `0s`: never. Default 4 h, as Alertmanager.
    #[serde(default = "default_repeat", with = "duration_text")]
    pub repeat_interval: Duration,
    /// The `severity` label. Default `warning`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Text shown in notices.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Channels notified.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Actions run when the alert fires.
    #[serde(default)]
    pub actions: Vec<String>,
}

fn default_op() -> Op {
    Op::Gt
}
fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_consecutive() -> u32 {
    3
}
fn default_within() -> Duration {
    Duration::from_secs(600)
}
fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn yes() -> bool {
    true
}
fn default_severity() -> String {
    "warning".to_owned()
}

impl Rule {
    /// Checks the rule; `labels` are the tags configured as rollup
    /// dimensions (`[metrics] labels`).
    pub fn validate(&self, labels: &[String]) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(format!("alert rule {:?}: {m}", self.name)));
        if self.name.trim().is_empty() {
            return Err(Error::Invalid("an alert rule needs a name".into()));
        }
        if let Some(project) = &self.project
            && let Some(wanted) = self.filters.get("project")
            && wanted != project
        {
            return bad(format!(
                "filters.project = {wanted:?} reaches outside the rule's project {project:?}; \
                 a rule reads only its own project"
            ));
        }
        for field in self.filters.keys().chain(&self.group_by) {
            if self.kind == RuleType::Gauge {
                // A gauge's labels: names as Prometheus allows them.
                let ok = !field.is_empty()
                    && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !field.starts_with(|c: char| c.is_ascii_digit());
                if !ok && field != "project" {
                    return bad(format!("{field:?} is not a label name"));
                }
                continue;
            }
            if let Err(e) = filter::Field::parse(field, labels) {
                return bad(e);
            }
        }
        match self.kind {
            RuleType::Threshold => {
                let (Some(metric), Some(t)) = (self.metric, &self.threshold) else {
                    return bad("a threshold rule needs `metric` and `threshold`".into());
                };
                if let Err(e) = t.value_for(metric) {
                    return bad(e);
                }
                if self.window < Duration::from_secs(60) {
                    return bad("window must be at least 1m (rollups are per minute)".into());
                }
            }
            RuleType::Gauge => {
                if self.gauge.as_deref().is_none_or(|g| {
                    g.is_empty() || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }) {
                    return bad(
                        "a gauge rule needs `gauge`, a metric name such as \"dify_database_table_size_bytes\""
                            .into(),
                    );
                }
                if self.gauge_threshold().is_none() {
                    return bad(
                        "a gauge rule needs a numeric `threshold` in the gauge's unit (e.g. 50e9 for 50 GB)"
                            .into(),
                    );
                }
            }
            RuleType::Event => {
                if self.consecutive == 0 {
                    return bad("consecutive must be at least 1".into());
                }
                if self.within.is_zero() {
                    return bad("within must be positive".into());
                }
                if self.group_by.is_empty() {
                    return bad("an event rule needs group_by (e.g. [\"tool_name\"])".into());
                }
            }
        }
        Ok(())
    }

    /// The rule's identity among all rules: its name, qualified by its
    /// project when it has one (two projects may use the same name).
    pub fn id(&self) -> String {
        match &self.project {
            Some(p) => format!("{p}\u{1e}{}", self.name),
            None => self.name.clone(),
        }
    }

    /// A gauge rule's threshold: a finite number (or its text).
    pub fn gauge_threshold(&self) -> Option<f64> {
        match self.threshold.as_ref()? {
            Threshold::Number(v) => Some(*v),
            Threshold::Text(t) => t.trim().parse().ok(),
        }
        .filter(|v: &f64| v.is_finite())
    }

    /// The threshold as a number in the metric's unit.
    pub fn threshold_value(&self) -> Option<f64> {
        let metric = self.metric?;
        self.threshold.as_ref()?.value_for(metric).ok()
    }
}

/// A silence: notices of alerts whose labels match every matcher are not
/// sent until `ends_at` (the alerts still change state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Assigned on creation.
    #[serde(default)]
    pub id: String,
    /// The project whose alerts it mutes (set from the API key; a silence
    /// never mutes another project's alerts). Absent: every project
    /// (silences made before projects, by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Label name → value (`alertname`, `severity`, group fields). A value
    /// starting with `!` must not match.
    pub matchers: BTreeMap<String, String>,
    /// Start (RFC 3339); default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// End (RFC 3339).
    pub ends_at: chrono::DateTime<chrono::Utc>,
    /// Who created it.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl Silence {
    /// Checks that the silence names what it mutes: at least one matcher
    /// that is not negated (`!x`) and not empty, so that `{"alertname":
    /// "!__none__"}` cannot mute everything.
    pub fn validate(&self) -> Result<(), Error> {
        let positive = self
            .matchers
            .iter()
            .any(|(k, v)| !k.trim().is_empty() && !v.is_empty() && !v.starts_with('!'));
        if !positive {
            return Err(Error::Invalid(
                "a silence needs at least one positive matcher (a label = a non-empty value, \
                 e.g. {\"alertname\": \"tool-failures\"}); negated or empty matchers alone \
                 would mute everything"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether the silence mutes an alert with `labels` at `now_ms`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> bool {
        let start = self.starts_at.map_or(i64::MIN, |t| t.timestamp_millis());
        if now_ms < start || now_ms >= self.ends_at.timestamp_millis() {
            return false;
        }
        if let Some(p) = &self.project
            && labels.get("project") != Some(p)
        {
            return false;
        }
        self.matchers
            .iter()
            .all(|(k, v)| filter::value_matches(v, labels.get(k).map_or("", String::as_str)))
    }
}

#[cfg(test)]
mod tests;
