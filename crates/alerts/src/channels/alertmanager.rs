//! Prometheus Alertmanager v2: `POST <base>/api/v2/alerts` with one
//! postable alert: labels (`alertname`, `severity`, filters, group),
//! annotations (summary, value, threshold, runs_url), `startsAt`,
//! `endsAt` when resolved, and `generatorURL` (the example runs).

use serde_json::json;

use super::{ChannelConfig, HttpRequest};
use crate::eval::Notice;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The request for `n`.
pub fn request(c: &ChannelConfig, n: &Notice) -> HttpRequest {
    let mut labels = n.labels.clone();
    labels.retain(|_, v| !v.is_empty());
    let summary = if n.summary.is_empty() {
        n.headline()
    } else {
        n.summary.clone()
    };
    let mut alert = json!({
        "labels": labels,
        "annotations": {
            "summary": summary,
            "metric": n.metric,
            "value": n.value_text(),
            "threshold": format!("{} {}", n.op, n.threshold_text()),
            "runs_url": n.runs_url,
            "rca_url": n.rca_url,
        },
        "startsAt": rfc3339(n.starts_at_ms),
        "generatorURL": n.runs_url,
    });
    if let Some(end) = n.ends_at_ms {
        alert["endsAt"] = json!(rfc3339(end));
    }
    HttpRequest {
        url: format!("{}/api/v2/alerts", c.url.trim_end_matches('/')),
        body: json!([alert]),
    }
}
