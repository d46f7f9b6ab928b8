//! WeCom (企业微信) group robot: `POST <webhook>?key=…` with
//! `{"msgtype":"markdown","markdown":{"content":…}}`.

use serde_json::json;

use super::{ChannelConfig, HttpRequest, markdown};
use crate::eval::Notice;

/// The request for `n`.
pub fn request(c: &ChannelConfig, n: &Notice) -> HttpRequest {
    HttpRequest {
        url: c.url.clone(),
        body: json!({ "msgtype": "markdown", "markdown": { "content": markdown(n) } }),
    }
}
