//! Gauge rules (`type = "gauge"`): compare the current value of a gauge
//! the server exposes besides the rollups (the Dify database's
//! `dify_database_*` families) with a threshold. `filters` match the
//! gauge's labels (`!` negates), `group_by` names labels giving one alert
//! each; a group's value is the largest of its samples. No sample is
//! "no data", handled by the rule's `no_data`.

use std::collections::BTreeMap;

use super::{Evaluator, Notice};
use crate::rules::filter::{Selector, group_key, value_matches};
use crate::rules::{NoData, Rule};

/// One gauge sample: a family name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Family name, e.g. `dify_database_table_size_bytes`.
    pub name: String,
    /// Labels, e.g. `table`.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// The gauges a rule of `project` may read (`None`: a rule over every
/// project).
pub type Gauges<'a> = &'a dyn Fn(Option<&str>) -> Vec<Gauge>;

/// The value per group of a gauge rule.
pub fn gauge_groups(
    rule: &Rule,
    gauges: &[Gauge],
) -> BTreeMap<String, (BTreeMap<String, String>, f64)> {
    let mut out: BTreeMap<String, (BTreeMap<String, String>, f64)> = BTreeMap::new();
    let Some(name) = &rule.gauge else {
        return out;
    };
    let selected = gauges.iter().filter(|g| {
        &g.name == name
            && g.value.is_finite()
            && rule
                .filters
                .iter()
                .all(|(k, v)| value_matches(v, g.labels.get(k).map(String::as_str).unwrap_or("")))
    });
    for g in selected {
        let group: BTreeMap<String, String> = rule
            .group_by
            .iter()
            .map(|k| (k.clone(), g.labels.get(k).cloned().unwrap_or_default()))
            .collect();
        let e = out
            .entry(group_key(&group))
            .or_insert((group, f64::NEG_INFINITY));
        e.1 = e.1.max(g.value);
    }
    out
}

impl Evaluator {
    pub(super) fn gauge_rule(
        &mut self,
        rule: &Rule,
        gauges: Gauges<'_>,
        now_ms: i64,
        out: &mut Vec<Notice>,
    ) {
        let Some(threshold) = rule.gauge_threshold() else {
            return;
        };
        let sel = Selector::new(rule, self.labels());
        let mut groups: BTreeMap<String, (BTreeMap<String, String>, Option<f64>)> =
            gauge_groups(rule, &gauges(rule.project.as_deref()))
                .into_iter()
                .map(|(k, (g, v))| (k, (g, Some(v))))
                .collect();
        if rule.group_by.is_empty() {
            groups.entry(String::new()).or_default();
        }
        for e in self.state.alerts.values().filter(|e| e.is_of(rule)) {
            groups
                .entry(group_key(&e.group))
                .or_insert_with(|| (e.group.clone(), None));
        }
        for (_, (group, value)) in groups {
            let cond = match value {
                Some(v) => Some(rule.op.holds(v, threshold)),
                None => match rule.no_data {
                    NoData::Ok => Some(false),
                    NoData::Alerting => Some(true),
                    NoData::Keep => None,
                },
            };
            self.step(rule, &sel, &group, cond, value, now_ms, out);
        }
    }
}
