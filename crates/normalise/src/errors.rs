//! Error classes and signatures, the same for every source.
//!
//! A failed span's message says what went wrong in words that change from
//! one occurrence to the next ("Inventory API timeout after 10s for sku
//! SKU-1234", "… after 12s for sku SKU-99"). Two things are derived here:
//!
//! - a **kind** ([`classify`]): `timeout`, `rate_limit`, `overloaded`,
//!   `quota`, `auth`, `connection`, `context_length`, `content_filter`,
//!   `cancelled`, `http_<code>` (any other 4xx/5xx the message or the class
//!   names), `validation`, `code_error`, else `error`. It reads the message,
//!   the source's own class (an exception type such as
//!   `InvokeRateLimitError`, or `http_503`) and nothing else;
//! - a **signature** ([`signature`]): `"<kind>: <message>"` with urls,
//!   emails, uuids, timestamps, hashes, quoted values, ids (words holding a
//!   digit) and numbers replaced by placeholders, whitespace collapsed, at
//!   most [`MAX_SIGNATURE_CHARS`] characters. Occurrences of one failure
//!   share it; different failures keep different ones.
//!
//! [`enrich`] applies both to a span: the kind fills `error_class` when the
//! source gave none (Dify's database and many Langfuse spans), and the
//! signature goes to `attributes["loupe.error_signature"]`
//! ([`loupe_model::ERROR_SIGNATURE`]). Pure and total: any text works.

use std::sync::OnceLock;

use loupe_model::{ERROR_SIGNATURE, Span, Status};
use regex::{Captures, Regex};

/// Longest signature kept, in characters (longer ones end with `…`).
pub const MAX_SIGNATURE_CHARS: usize = 160;

/// Bytes of a message looked at; the rest cannot change a signature that
/// is cut at [`MAX_SIGNATURE_CHARS`] anyway (placeholders only shorten).
const MAX_MESSAGE_BYTES: usize = 4096;

/// Sets `error_class` (when unset) and the error signature of a failed
/// span. Spans that did not fail, and failed spans with neither a message
/// nor a class, are left alone.
pub fn enrich(span: &mut Span) {
    let failed = match span.status {
        Some(Status::Error) => true,
        // A partial update (status not repeated) that carries an error.
        None => span.error_message.as_deref().is_some_and(|m| !m.is_empty()),
        _ => false,
    };
    if !failed {
        return;
    }
    let Some((kind, sig)) = sign(span.error_message.as_deref(), span.error_class.as_deref()) else {
        return;
    };
    if span
        .error_class
        .as_deref()
        .is_none_or(|c| c.trim().is_empty())
    {
        span.error_class = Some(kind);
    }
    span.attributes.insert(ERROR_SIGNATURE.to_owned(), sig);
}

/// The kind and signature of a failure from its message and the source's
/// class; `None` when there is neither. What [`enrich`] stores, and what
/// readers compute for spans stored before it existed (the store's scans,
/// the rollups).
pub fn sign(message: Option<&str>, class: Option<&str>) -> Option<(String, String)> {
    let message = message.filter(|m| !m.trim().is_empty());
    let class = class.filter(|c| !c.trim().is_empty());
    if message.is_none() && class.is_none() {
        return None;
    }
    let kind = classify(message, class);
    let sig = match message {
        Some(m) => signature(&kind, m),
        // No message: the source's class is all there is to group by.
        None => format!("{kind}: {}", class.unwrap_or_default()),
    };
    Some((kind, sig))
}

/// The kind of an error from its message and the source's class.
pub fn classify(message: Option<&str>, class: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(c) = class {
        text.push_str(c);
        text.push(' ');
    }
    if let Some(m) = message {
        text.push_str(head(m, MAX_MESSAGE_BYTES));
    }
    let lower = text.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let code = http_code(class, &text);

    if code == Some(429) || has(&["rate limit", "ratelimit", "rate_limit", "too many requests"]) {
        return "rate_limit".into();
    }
    if has(&[
        "quota",
        "insufficient_balance",
        "insufficient balance",
        "billing",
        "credit balance",
        "exceeded your current",
    ]) {
        return "quota".into();
    }
    if code == Some(529) || has(&["overloaded", "server is busy", "over capacity", "capacity"]) {
        return "overloaded".into();
    }
    if code == Some(408)
        || code == Some(504)
        || has(&[
            "timed out",
            "timeout",
            "time out",
            "time-out",
            "deadline exceeded",
            "deadline_exceeded",
        ])
    {
        return "timeout".into();
    }
    if has(&[
        "cancelled",
        "canceled",
        "aborted by user",
        "stopped by user",
        "manually stopped",
    ]) {
        return "cancelled".into();
    }
    if has(&[
        "connection refused",
        "connection reset",
        "connection aborted",
        "connecterror",
        "connectionerror",
        "errno 111",
        "errno 104",
        "name or service not known",
        "name resolution",
        "nodename nor servname",
        "no route to host",
        "network is unreachable",
        "broken pipe",
        "remote end closed",
        "ssl",
        "eof occurred",
    ]) {
        return "connection".into();
    }
    if matches!(code, Some(401 | 403))
        || has(&[
            "unauthorized",
            "unauthorised",
            "invalid api key",
            "incorrect api key",
            "invalid_api_key",
            "authentication",
            "permission denied",
            "forbidden",
        ])
    {
        return "auth".into();
    }
    if has(&[
        "context length",
        "context_length",
        "maximum context",
        "too many tokens",
        "max_tokens",
        "token limit",
    ]) {
        return "context_length".into();
    }
    if has(&[
        "content filter",
        "content_filter",
        "content management policy",
        "safety",
        "moderation",
    ]) {
        return "content_filter".into();
    }
    if let Some(code) = code {
        return format!("http_{code}");
    }
    if has(&[
        "traceback",
        "syntaxerror",
        "nameerror",
        "typeerror",
        "attributeerror",
        "zerodivisionerror",
        "indexerror",
        "code node",
        "codenodeerror",
        "sandbox",
    ]) {
        return "code_error".into();
    }
    if has(&[
        "validation",
        "invalid",
        "required",
        "missing",
        "must be",
        "not found",
        "does not exist",
        "valueerror",
        "keyerror",
        "jsondecodeerror",
        "parse",
        "schema",
        "expected",
    ]) {
        return "validation".into();
    }
    "error".into()
}

/// The HTTP status a class (`http_503`) or message (`status code 503`,
/// `HTTP 500`, `Error code: 429`) names, if it is a 4xx or 5xx.
fn http_code(class: Option<&str>, text: &str) -> Option<u16> {
    static CODE: OnceLock<Regex> = OnceLock::new();
    let re = CODE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(?:http(?:/[0-9.]+)?|status(?:[ _]code)?|error[ _]code|response code|code)\s*[:=]?\s*([45][0-9]{2})\b",
        )
        .expect("static regex")
    });
    let from_class = class
        .and_then(|c| c.strip_prefix("http_").or_else(|| c.strip_prefix("HTTP")))
        .and_then(|c| c.trim().parse::<u16>().ok());
    from_class
        .or_else(|| {
            re.captures(head(text, MAX_MESSAGE_BYTES))
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().parse().ok())
        })
        .filter(|c| (400..600).contains(c))
}

/// `"<kind>: <normalised message>"`, at most [`MAX_SIGNATURE_CHARS`].
pub fn signature(kind: &str, message: &str) -> String {
    static TOKENS: OnceLock<Regex> = OnceLock::new();
    let re = TOKENS.get_or_init(|| {
        Regex::new(concat!(
            r"(?P<url>(?-u:\b)[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\x22<>()\[\]{},]+)",
            r"|(?P<email>(?-u:\b)[A-Za-z0-9_.+-]+@[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+(?-u:\b))",
            r"|(?P<uuid>(?-u:\b)[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?-u:\b))",
            r"|(?P<time>(?-u:\b)[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?)",
            r"|(?P<clock>(?-u:\b)[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?-u:\b))",
            // A quote opens only after a non-word character, so the
            // apostrophe of "can't" is not a quoted value.
            r"|(?P<pre>^|[^A-Za-z0-9_])(?P<quoted>'[^'\n]{0,256}'|\x22[^\x22\n]{0,256}\x22|`[^`\n]{0,256}`)",
            r"|(?P<hex>(?-u:\b)(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*(?-u:\b)|(?-u:\b)(?:0x)?[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*(?-u:\b))",
            r"|(?P<num>(?-u:\b)[0-9]+(?:[.,][0-9]+)*(?P<unit>ms|us|ns|s|m|h|d|kb|mb|gb|k|%)?(?-u:\b))",
            r"|(?P<id>(?-u:\b)[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*(?-u:\b))",
        ))
        .expect("static regex")
    });
    let replaced = re.replace_all(head(message, MAX_MESSAGE_BYTES), |c: &Captures<'_>| {
        let pre = c.name("pre").map_or("", |m| m.as_str());
        let token = if c.name("url").is_some() {
            "<url>"
        } else if c.name("email").is_some() {
            "<email>"
        } else if c.name("uuid").is_some() {
            "<uuid>"
        } else if c.name("time").is_some() || c.name("clock").is_some() {
            "<time>"
        } else if c.name("quoted").is_some() {
            "<value>"
        } else if let Some(h) = c.name("hex") {
            // Short mixed words (`v2`, `4o`) are ids; long ones are hashes.
            if h.as_str().len() >= 12 {
                "<hash>"
            } else {
                "<id>"
            }
        } else if c.name("num").is_some() {
            return format!("<n>{}", c.name("unit").map_or("", |u| u.as_str()));
        } else {
            "<id>"
        };
        format!("{pre}{token}")
    });
    let mut out = String::with_capacity(kind.len() + 2 + replaced.len().min(256));
    out.push_str(kind);
    out.push_str(": ");
    let mut chars = 0;
    let mut space = false;
    for ch in replaced.trim().chars() {
        if ch.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
        }
        if chars >= MAX_SIGNATURE_CHARS {
            out.push('…');
            break;
        }
        out.push(ch);
        chars += 1;
    }
    out
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests;
