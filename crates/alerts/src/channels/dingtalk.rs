//! DingTalk custom robot: `POST <webhook>` with a markdown message. With a
//! signing secret ("加签"), the URL carries `timestamp` (ms) and
//! `sign = urlencode(base64(HMAC-SHA256(key = secret, "{timestamp}\n{secret}")))`,
//! as DingTalk documents.

use base64::Engine as _;
use serde_json::json;

use super::{ChannelConfig, HttpRequest, markdown};
use crate::eval::Notice;
use crate::util::{hmac_sha256, url_encode};

/// The signature of `timestamp_ms` under `secret` (not yet URL-encoded).
pub fn sign(timestamp_ms: i64, secret: &str) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The request for `n`.
pub fn request(c: &ChannelConfig, n: &Notice, now_ms: i64) -> HttpRequest {
    let mut url = c.url.clone();
    if let Some(secret) = c.secret.as_deref().filter(|s| !s.is_empty()) {
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!(
            "{url}{sep}timestamp={now_ms}&sign={}",
            url_encode(&sign(now_ms, secret))
        );
    }
    HttpRequest {
        url,
        body: json!({
            "msgtype": "markdown",
            "markdown": { "title": n.headline(), "text": markdown(n) },
        }),
    }
}
