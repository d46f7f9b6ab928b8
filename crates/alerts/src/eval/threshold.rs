//! Threshold rules: sum the selected per-minute series of the window per
//! group, compute the metric, compare, apply the no-data policy.

use std::collections::BTreeMap;

use loupe_rollup::{Measures, Rollups};

use super::{Evaluator, Notice};
use crate::rules::filter::{Selector, group_key};
use crate::rules::{Metric, NoData, Rule};

const MINUTE_MS: i64 = 60_000;

/// The metric of summed measures (`None`: no data for a ratio or latency).
pub fn metric_value(metric: Metric, m: &Measures) -> Option<f64> {
    let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    match metric {
        Metric::FailureRate => ratio(m.errors, m.count),
        Metric::SuccessRate => ratio(m.count.saturating_sub(m.errors), m.count),
        Metric::AvgLatency => ratio(m.dur_sum_us, m.timed).map(|us| us / 1e6),
        Metric::P95Latency => m.hist.quantile_us(0.95).map(|us| us / 1e6),
        Metric::Count => Some(m.count as f64),
        Metric::TokensSum => Some(m.tokens_total as f64),
        Metric::CostSum => Some(m.cost_micros as f64 / 1e6),
    }
}

/// The summed measures of a rule's window per group at `now_ms`: the
/// minute buckets whose start lies in `(now - window - 1 min, now]`, that
/// is the last `window` of whole minutes ending with the current one.
pub fn group_values(
    rule: &Rule,
    sel: &Selector,
    rollups: &Rollups,
    now_ms: i64,
) -> BTreeMap<String, (BTreeMap<String, String>, Measures)> {
    let to = now_ms.div_euclid(MINUTE_MS);
    let from = (now_ms - rule.window.as_millis() as i64).div_euclid(MINUTE_MS) + 1;
    let mut out: BTreeMap<String, (BTreeMap<String, String>, Measures)> = BTreeMap::new();
    for series in rollups.minutes().range(from..=to).map(|(_, s)| s) {
        for (key, m) in series {
            if !sel.matches(key) {
                continue;
            }
            let group = sel.group(key);
            out.entry(group_key(&group))
                .or_insert_with(|| (group, Measures::default()))
                .1
                .merge(m);
        }
    }
    out
}

impl Evaluator {
    pub(super) fn threshold_rule(
        &mut self,
        rule: &Rule,
        rollups: &Rollups,
        now_ms: i64,
        out: &mut Vec<Notice>,
    ) {
        let (Some(metric), Some(threshold)) = (rule.metric, rule.threshold_value()) else {
            return;
        };
        let sel = Selector::new(rule, self.labels());
        let mut groups = group_values(rule, &sel, rollups, now_ms);
        if rule.group_by.is_empty() {
            groups.entry(String::new()).or_default();
        }
        // Groups with a live alert but no data now still get evaluated.
        for e in self.state.alerts.values().filter(|e| e.is_of(rule)) {
            groups
                .entry(group_key(&e.group))
                .or_insert_with(|| (e.group.clone(), Measures::default()));
        }
        for (_, (group, measures)) in groups {
            let value = if measures.count == 0 {
                None
            } else {
                metric_value(metric, &measures)
            };
            let value = value.or(match metric {
                Metric::Count | Metric::TokensSum | Metric::CostSum => Some(0.0),
                _ => None,
            });
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
