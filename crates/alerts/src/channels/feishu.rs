//! Feishu / Lark custom bot: `POST <webhook>` with
//! `{"msg_type":"text","content":{"text":…}}`. With a signing secret the
//! body also carries `timestamp` (seconds, as text) and
//! `sign = base64(HMAC-SHA256(key = "{timestamp}\n{secret}", message = ""))`,
//! as Feishu documents.

use base64::Engine as _;
use serde_json::json;

use super::{ChannelConfig, HttpRequest, plain};
use crate::eval::Notice;
use crate::util::hmac_sha256;

/// The signature of `timestamp_s` under `secret`.
pub fn sign(timestamp_s: i64, secret: &str) -> String {
    let mac = hmac_sha256(format!("{timestamp_s}\n{secret}").as_bytes(), b"");
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The request for `n`.
pub fn request(c: &ChannelConfig, n: &Notice, now_ms: i64) -> HttpRequest {
    let mut body = json!({ "msg_type": "text", "content": { "text": plain(n) } });
    if let Some(secret) = c.secret.as_deref().filter(|s| !s.is_empty()) {
        let ts = now_ms.div_euclid(1000);
        body["timestamp"] = json!(ts.to_string());
        body["sign"] = json!(sign(ts, secret));
    }
    HttpRequest {
        url: c.url.clone(),
        body,
    }
}
