//! Generic webhook: `POST <url>` with a JSON body from a template whose
//! `{{rule}}`, `{{state}}`, `{{value}}`, `{{threshold}}`, `{{metric}}`,
//! `{{group}}`, `{{runs_url}}`, `{{rca_url}}`, `{{summary}}`, `{{severity}}` placeholders
//! are replaced by JSON-escaped text (so `"{{rule}}"` stays valid JSON).
//! Without a template the body is the whole notice as JSON.

use std::collections::BTreeMap;

use serde_json::json;

use super::{ChannelConfig, HttpRequest};
use crate::eval::{Notice, NoticeState};

/// `s` escaped for the inside of a JSON string.
fn escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_owned()
}

/// Replaces the placeholders of `template`.
pub fn render(template: &str, n: &Notice) -> String {
    let fields = [
        ("rule", n.rule.clone()),
        ("state", n.state.as_str().to_owned()),
        ("value", n.value_text()),
        ("threshold", n.threshold_text()),
        ("metric", n.metric.clone()),
        ("group", n.group_text()),
        ("runs_url", n.runs_url.clone()),
        ("rca_url", n.rca_url.clone()),
        ("summary", n.summary.clone()),
        (
            "severity",
            n.labels.get("severity").cloned().unwrap_or_default(),
        ),
    ];
    let mut out = template.to_owned();
    for (k, v) in fields {
        out = out.replace(&format!("{{{{{k}}}}}"), &escape(&v));
    }
    out
}

/// A notice to check templates with.
pub(crate) fn probe_notice() -> Notice {
    Notice {
        rule: "r".into(),
        project: None,
        state: NoticeState::Firing,
        labels: BTreeMap::new(),
        group: BTreeMap::new(),
        metric: "count".into(),
        op: ">".into(),
        value: Some(1.0),
        threshold: 0.0,
        summary: String::new(),
        runs_url: String::new(),
        rca_url: String::new(),
        starts_at_ms: 0,
        ends_at_ms: None,
        silenced: false,
        notify: Vec::new(),
        actions: Vec::new(),
    }
}

/// The request for `n`.
pub fn request(c: &ChannelConfig, n: &Notice) -> HttpRequest {
    let body = match &c.body {
        Some(t) => serde_json::from_str(&render(t, n)).unwrap_or_else(|_| json!(render(t, n))),
        None => serde_json::to_value(n).unwrap_or_default(),
    };
    HttpRequest {
        url: c.url.clone(),
        body,
    }
}
