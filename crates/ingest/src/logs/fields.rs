//! A JSON document → a [`LogRecord`], by the field names shippers, loggers
//! and Dify use.
//!
//! | model | fields looked for, first found wins |
//! |---|---|
//! | time | `@timestamp`, `timestamp`, `ts`, `time`, `date`, `asctime` |
//! | body | `message`, `msg`, `log`, `body`, `event.original` (else the whole document) |
//! | severity | `severity`, `level`, `log.level`, `levelname`, `severity_text`, `loglevel`, `syslog.severity_label`; `severity_number` (OTel's numbers) |
//! | service | `service.name`, `service`, `app`, `programname`, `syslog.appname` |
//! | trace id | `trace_id`, `traceId`, `trace.id`, `TRACE_ID`, `otelTraceID`; else the last word of a Dify request line (`METHOD PATH STATUS DURATION TRACE_ID`) |
//! | span id | `span_id`, `spanId`, `span.id` |
//! | run id | `workflow_run_id`, `run_id`, at any depth (`attributes.workflow_run_id`) |
//!
//! Dify's `LOG_OUTPUT_FORMAT=json` lines (`ts`, `severity`, `service`,
//! `trace_id`, `span_id`, `message`, `identity`, `attributes`) therefore map
//! without configuration. Nested objects are flattened to dotted keys;
//! arrays, numbers and booleans are kept as JSON text. Times are RFC 3339
//! (also `2026-11-24 10:00:00,123` without an offset, read as UTC) or epoch
//! numbers (seconds, milliseconds, microseconds or nanoseconds by size).

use std::collections::BTreeMap;

use loupe_model::{LogRecord, Severity};
use serde_json::{Map, Value};

use super::LogLimits;

/// Why a document was not stored (the item's error; the request's other
/// documents are unaffected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DocumentError {
    /// The offending field (`@timestamp`), or `document`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl DocumentError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

const TIME: &[&str] = &["@timestamp", "timestamp", "ts", "time", "date", "asctime"];
const BODY: &[&str] = &["message", "msg", "log", "body", "event.original"];
const SEVERITY: &[&str] = &[
    "severity",
    "level",
    "log.level",
    "levelname",
    "severity_text",
    "loglevel",
    "syslog.severity_label",
];
const SERVICE: &[&str] = &[
    "service.name",
    "service",
    "app",
    "programname",
    "syslog.appname",
];
const TRACE: &[&str] = &["trace_id", "traceId", "trace.id", "TRACE_ID", "otelTraceID"];
const SPAN: &[&str] = &["span_id", "spanId", "span.id"];
const RUN: &[&str] = &["workflow_run_id", "run_id"];

/// Maps one document. `stream` names where it came from (the index, the
/// file); `now` (ns) is the receive time, and the time of a document
/// without one.
///
/// # Errors
/// A [`DocumentError`] for a document over `limits`, a time field that is
/// not a time, or a severity number out of range.
pub fn from_document(
    project: &str,
    doc: Map<String, Value>,
    stream: Option<&str>,
    now: i64,
    limits: &LogLimits,
) -> Result<LogRecord, DocumentError> {
    let mut flat = BTreeMap::new();
    flatten("", &Value::Object(doc), &mut flat, limits.max_fields)?;
    let mut record = LogRecord::new(project, now, String::new());
    record.observed_time = now;
    record.stream = stream.map(str::to_owned);
    if let Some((key, raw)) = take_first(&mut flat, TIME) {
        record.time = parse_time(&raw).ok_or_else(|| {
            DocumentError::new(
                key,
                format!(
                    "{:?} is not a time (RFC 3339 or epoch seconds/ms/µs/ns)",
                    truncate(&raw, 64)
                ),
            )
        })?;
    }
    let body = take_first(&mut flat, BODY).map(|(_, v)| v);
    if let Some((_, text)) = take_first(&mut flat, SEVERITY) {
        record.severity_number = Severity::from_text(&text).map_or(0, Severity::number);
        record.severity_text = Some(text);
    }
    if let Some((key, n)) = take_first(&mut flat, &["severity_number"]) {
        record.severity_number = n
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 24)
            .ok_or_else(|| DocumentError::new(key, "severity_number must be 0..24"))?;
    }
    record.service = take_first(&mut flat, SERVICE).map(|(_, v)| v);
    record.trace_id = find(&flat, TRACE);
    record.span_id = find(&flat, SPAN);
    record.run_id = find_any_depth(&flat, RUN);
    record.body = match body {
        Some(b) => b,
        // No message field: the document itself is the text searched.
        None => serde_json::to_string(&flat).unwrap_or_default(),
    };
    if record.trace_id.is_none() {
        record.trace_id = dify_request_trace(&record.body);
    }
    record.attributes = flat;
    Ok(record)
}

/// Removes and returns the first of `keys` present (its key and text).
fn take_first(flat: &mut BTreeMap<String, String>, keys: &[&str]) -> Option<(String, String)> {
    keys.iter()
        .find_map(|k| flat.remove_entry(*k))
        .filter(|(_, v)| !v.is_empty())
}

/// The first of `keys` present, kept among the attributes too (ids are
/// also searched as attributes).
fn find(flat: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| flat.get(*k))
        .filter(|v| !v.is_empty())
        .cloned()
}

/// The first key equal to or ending in `.name` for a name of `names`.
fn find_any_depth(flat: &BTreeMap<String, String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        flat.iter()
            .find(|(k, v)| {
                !v.is_empty()
                    && (k.as_str() == *name
                        || k.strip_suffix(name).is_some_and(|p| p.ends_with('.')))
            })
            .map(|(_, v)| v.clone())
    })
}

/// Dify's request line (`ENABLE_REQUEST_LOGGING`): `METHOD PATH STATUS
/// DURATION TRACE_ID`; the trace id when the body is one.
fn dify_request_trace(body: &str) -> Option<String> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let [method, path, status, _duration, trace] = words.as_slice() else {
        return None;
    };
    let is_method = matches!(
        *method,
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
    );
    let is_status = status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit());
    let is_trace = trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit());
    (is_method && path.starts_with('/') && is_status && is_trace)
        .then(|| trace.to_ascii_lowercase())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Flattens `value` under `prefix` into dotted keys. Strings stay text;
/// arrays, numbers, booleans become JSON text; nulls are dropped.
fn flatten(
    prefix: &str,
    value: &Value,
    out: &mut BTreeMap<String, String>,
    max_fields: usize,
) -> Result<(), DocumentError> {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out, max_fields)?;
            }
        }
        Value::Null => {}
        Value::String(s) => {
            insert(out, prefix, s.clone(), max_fields)?;
        }
        other => {
            insert(out, prefix, other.to_string(), max_fields)?;
        }
    }
    Ok(())
}

fn insert(
    out: &mut BTreeMap<String, String>,
    key: &str,
    value: String,
    max_fields: usize,
) -> Result<(), DocumentError> {
    if out.len() >= max_fields {
        return Err(DocumentError::new(
            "document",
            format!(
                "more than {max_fields} fields (ingest.max_log_fields); send fewer or nest them in a string"
            ),
        ));
    }
    out.insert(key.to_owned(), value);
    Ok(())
}

/// A time as RFC 3339 (with `T` or a space, `,` or `.` before the
/// fraction, no offset meaning UTC) or an epoch number whose size says its
/// unit.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    // Integers in integer arithmetic: an f64 cannot hold ns exactly.
    if let Ok(n) = t.parse::<i64>() {
        return match n.unsigned_abs() {
            a if a < 100_000_000_000 => n.checked_mul(1_000_000_000), // seconds
            a if a < 100_000_000_000_000 => n.checked_mul(1_000_000), // milliseconds
            a if a < 100_000_000_000_000_000 => n.checked_mul(1_000), // microseconds
            _ => Some(n),                                             // nanoseconds
        };
    }
    if let Ok(n) = t.parse::<f64>()
        && n.is_finite()
    {
        let ns = match n.abs() {
            a if a < 1e11 => n * 1e9,
            a if a < 1e14 => n * 1e6,
            a if a < 1e17 => n * 1e3,
            _ => n,
        };
        return (ns.abs() < 9.2e18).then_some(ns as i64);
    }
    if let Ok(ns) = loupe_model::time::parse_instant(t) {
        return Some(ns);
    }
    // `2026-11-24 10:00:00,123` (Python's asctime) and offset-less forms.
    let mut s = t.replacen(' ', "T", 1).replacen(',', ".", 1);
    let has_offset = s.ends_with('Z')
        || s.get(19..)
            .is_some_and(|tail| tail.contains('+') || tail.contains('-'));
    if !has_offset {
        s.push('Z');
    }
    loupe_model::time::parse_instant(&s).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn doc(v: Value) -> Result<LogRecord, DocumentError> {
        from_document("p", map(v), Some("dify-api"), 42, &LogLimits::default())
    }

    #[test]
    fn a_dify_json_log_line_maps_without_configuration() {
        let r = doc(json!({
            "ts": "2026-11-24T10:00:00.123Z", "severity": "ERROR", "service": "api",
            "caller": "app.py:12", "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331", "message": "plugin daemon: connection reset",
            "identity": {"tenant_id": "t1"}, "attributes": {"workflow_run_id": "run-9"}
        }))
        .expect("maps");
        assert_eq!(r.time, 1_795_514_400_123_000_000);
        assert_eq!(r.severity_number, 17);
        assert_eq!(r.severity_text.as_deref(), Some("ERROR"));
        assert_eq!(r.service.as_deref(), Some("api"));
        assert_eq!(r.body, "plugin daemon: connection reset");
        assert_eq!(
            r.trace_id.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(r.span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(r.run_id.as_deref(), Some("run-9"));
        assert_eq!(r.attributes["identity.tenant_id"], "t1");
        assert_eq!(r.attributes["caller"], "app.py:12");
        assert_eq!(r.stream.as_deref(), Some("dify-api"));
    }

    #[test]
    fn a_dify_request_line_gives_its_trace_id() {
        let r = doc(
            json!({"message": "POST /v1/workflows/run 200 1.52s 0AF7651916CD43DD8448EB211C80319C"}),
        )
        .expect("maps");
        assert_eq!(
            r.trace_id.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(r.time, 42, "no time field: the receive time");
        let plain = doc(json!({"message": "POST /v1/x 200 fast"})).expect("maps");
        assert_eq!(plain.trace_id, None);
    }

    #[test]
    fn times_in_every_shape_and_a_bad_one_named() {
        for (text, want) in [
            (json!("2026-11-24T10:00:00Z"), 1_795_514_400_000_000_000i64),
            (json!("2026-11-24 10:00:00,500"), 1_795_514_400_500_000_000),
            (json!(1_795_514_400), 1_795_514_400_000_000_000),
            (json!(1_795_514_400_250i64), 1_795_514_400_250_000_000),
            (
                json!(1_795_514_400_000_000_000i64),
                1_795_514_400_000_000_000,
            ),
        ] {
            let r = doc(json!({"@timestamp": text, "message": "m"})).expect("maps");
            assert_eq!(r.time, want, "{text}");
        }
        let err = doc(json!({"@timestamp": "yesterday", "message": "m"})).expect_err("bad time");
        assert_eq!(err.field, "@timestamp");
        assert!(err.reason.contains("yesterday"), "{err}");
    }

    #[test]
    fn a_document_without_a_message_is_its_own_body_and_fields_are_bounded() {
        let r = doc(json!({"user": "u1", "n": 3, "ok": true, "tags": ["a"]})).expect("maps");
        assert!(r.body.contains("\"user\":\"u1\""), "{}", r.body);
        assert_eq!(r.attributes["n"], "3");
        assert_eq!(r.attributes["tags"], "[\"a\"]");
        let wide: Map<String, Value> = (0..1_001).map(|i| (format!("f{i}"), json!(i))).collect();
        let err = from_document("p", wide, None, 0, &LogLimits::default()).expect_err("too wide");
        assert!(err.reason.contains("1000"), "{err}");
    }
}
