//! Slack incoming webhook: `POST <webhook>` with `{"text":…}` in Slack's
//! mrkdwn (links as `<url|label>`).

use serde_json::json;

use super::{ChannelConfig, HttpRequest};
use crate::eval::Notice;

/// The request for `n`.
pub fn request(c: &ChannelConfig, n: &Notice) -> HttpRequest {
    let mut text = format!(
        "*{}*\nrule: `{}`  state: *{}*  group: {}\n{}\n",
        n.headline(),
        n.rule,
        n.state.as_str(),
        n.group_text(),
        n.condition_text()
    );
    if !n.summary.is_empty() {
        text.push_str(&format!("{}\n", n.summary));
    }
    text.push_str(&format!("<{}|example runs>", n.runs_url));
    if !n.rca_url.is_empty() {
        text.push_str(&format!("  <{}|what changed (根因分析)>", n.rca_url));
    }
    HttpRequest {
        url: c.url.clone(),
        body: json!({ "text": text }),
    }
}
