//! Typed reads of a Langfuse event body (a JSON object), each naming its
//! field on error. JSON `null` counts as absent everywhere.

use chrono::{DateTime, NaiveDateTime};
use loupe_model::Tags;
use serde_json::{Map, Value};

use crate::ItemError;

/// Parses an ISO-8601 time (`2026-11-24T18:57:18.002236Z`, any offset, or
/// without offset meaning UTC) to ns since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return t.timestamp_nanos_opt();
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
}

/// An event body.
pub(super) struct Body<'a>(&'a Map<String, Value>);

fn field(key: &str) -> String {
    format!("body.{key}")
}

impl<'a> Body<'a> {
    pub(super) fn new(value: &'a Value) -> Result<Self, ItemError> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            _ => Err(ItemError::new("body", "must be a JSON object")),
        }
    }

    /// The value of `key`, `None` when absent or null.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string field; other types are an error.
    pub(super) fn text(&self, key: &str) -> Result<Option<String>, ItemError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ItemError::new(field(key), "must be a string")),
        }
    }

    /// A non-empty string field (empty strings count as absent).
    pub(super) fn id(&self, key: &str) -> Result<Option<String>, ItemError> {
        Ok(self.text(key)?.filter(|s| !s.is_empty()))
    }

    /// Scalar text (strings, numbers, booleans); empty strings count as absent.
    pub(super) fn scalar(&self, key: &str) -> Option<String> {
        self.get(key).and_then(scalar_text)
    }

    /// A time field (ISO-8601 string).
    pub(super) fn time(&self, key: &str) -> Result<Option<i64>, ItemError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| {
                ItemError::new(
                    field(key),
                    format!("{s:?} is not an ISO-8601 time (2026-11-24T10:00:00.000Z)"),
                )
            }),
            Some(_) => Err(ItemError::new(field(key), "must be an ISO-8601 string")),
        }
    }

    /// Any JSON as stored text: strings verbatim, the rest as JSON text.
    pub(super) fn json_text(&self, key: &str) -> Option<String> {
        self.get(key).map(json_text)
    }

    /// An object field.
    pub(super) fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ItemError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(ItemError::new(field(key), "must be an object")),
        }
    }

    /// A list of strings.
    pub(super) fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ItemError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| ItemError::new(field(key), "must be a list of strings")),
            Some(_) => Err(ItemError::new(field(key), "must be a list of strings")),
        }
    }

    /// Writes `metadata` into the attributes: an object as `metadata.<key>`
    /// entries, anything else as one `metadata` entry.
    pub(super) fn flatten_metadata(&self, out: &mut Tags) {
        match self.get("metadata") {
            Some(Value::Object(map)) => {
                for (key, value) in map.iter().filter(|(_, v)| !v.is_null()) {
                    out.insert(format!("metadata.{key}"), json_text(value));
                }
            }
            Some(other) => {
                out.insert("metadata".into(), json_text(other));
            }
            None => {}
        }
    }

    /// Copies scalar `key` into attribute `attr` when present.
    pub(super) fn copy_attr(&self, key: &str, attr: &str, out: &mut Tags) {
        if let Some(v) = self.get(key) {
            out.insert(attr.to_owned(), json_text(v));
        }
    }
}

/// Stored text of a JSON value: strings verbatim, the rest as JSON text.
pub(super) fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Non-empty text of a scalar JSON value.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A whole, non-negative number (integers, integral floats, numeric strings).
pub(super) fn count(value: &Value) -> Option<i64> {
    let n = match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        })?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (n >= 0).then_some(n)
}

/// A finite, non-negative number (numbers or numeric strings).
pub(super) fn amount(value: &Value) -> Option<f64> {
    let f = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (f.is_finite() && f >= 0.0).then_some(f)
}
