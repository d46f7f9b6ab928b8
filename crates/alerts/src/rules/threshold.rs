//! Thresholds as written: a number, a percentage (`"5%"`) or a duration
//! (`"1s"`, `"500ms"`) for latency metrics.

use serde::{Deserialize, Serialize};

use super::Metric;

/// A threshold: a number or text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    /// A plain number in the metric's unit (rates 0..1, seconds, counts).
    Number(f64),
    /// `"5%"` (rates) or a duration (latencies).
    Text(String),
}

impl Threshold {
    /// The number compared with `metric`'s value.
    pub fn value_for(&self, metric: Metric) -> Result<f64, String> {
        let text = match self {
            Threshold::Number(v) if v.is_finite() => return Ok(*v),
            Threshold::Number(v) => return Err(format!("threshold {v} is not finite")),
            Threshold::Text(t) => t.trim(),
        };
        if let Some(pct) = text.strip_suffix('%') {
            if !matches!(metric, Metric::FailureRate | Metric::SuccessRate) {
                return Err(format!(
                    "a percentage threshold needs a rate metric, not {}",
                    metric.as_str()
                ));
            }
            return pct
                .trim()
                .parse::<f64>()
                .map(|p| p / 100.0)
                .map_err(|_| format!("threshold {text:?} is not a percentage"));
        }
        if matches!(metric, Metric::AvgLatency | Metric::P95Latency)
            && let Ok(d) = humantime::parse_duration(text)
        {
            return Ok(d.as_secs_f64());
        }
        text.parse::<f64>()
            .map_err(|_| format!("threshold {text:?} is not a number, percentage or duration"))
    }
}
