//! The attribute bag the conventions read from, and how values become text.
//!
//! A [`Bag`] remembers which attributes were consumed into first-class
//! fields; everything else is written back verbatim by [`write_leftovers`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use loupe_model::{Span, Tags};
use serde_json::{Map, Value};

use super::{AttrValue, OtelSpan};

/// Span attributes plus a consumed flag per attribute.
pub(super) struct Bag<'a> {
    items: &'a [(String, AttrValue)],
    used: Vec<bool>,
}

impl<'a> Bag<'a> {
    pub(super) fn new(items: &'a [(String, AttrValue)]) -> Self {
        Self {
            items,
            used: vec![false; items.len()],
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.items
            .iter()
            .enumerate()
            .position(|(i, (k, _))| k == key && !self.used[i])
    }

    /// The unconsumed value of `key`, without consuming it.
    pub(super) fn peek(&self, key: &str) -> Option<&'a AttrValue> {
        self.position(key).map(|i| &self.items[i].1)
    }

    /// Whether an unconsumed `key` exists.
    pub(super) fn contains(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The value of `key` as non-empty text, without consuming it.
    pub(super) fn peek_text(&self, key: &str) -> Option<String> {
        self.peek(key).and_then(scalar_text)
    }

    /// Consumes `key` when `convert` accepts its value.
    pub(super) fn take_with<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(&'a AttrValue) -> Option<T>,
    ) -> Option<T> {
        let i = self.position(key)?;
        let value = convert(&self.items[i].1)?;
        self.used[i] = true;
        Some(value)
    }

    /// Consumes `key` as non-empty text (scalars; arrays and maps as JSON).
    pub(super) fn take_text(&mut self, key: &str) -> Option<String> {
        self.take_with(key, |v| {
            let text = text(v);
            (!text.is_empty()).then_some(text)
        })
    }

    /// Consumes the first of `keys` that holds non-empty text.
    pub(super) fn take_first_text(&mut self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.take_text(k))
    }

    /// Consumes `key` as a whole number (ints, integral doubles, numeric text).
    pub(super) fn take_i64(&mut self, key: &str) -> Option<i64> {
        self.take_with(key, as_i64)
    }

    /// Consumes the first of `keys` that holds a whole number.
    pub(super) fn take_first_i64(&mut self, keys: &[&str]) -> Option<i64> {
        keys.iter().find_map(|k| self.take_i64(k))
    }

    /// Consumes `key` as a finite number.
    pub(super) fn take_f64(&mut self, key: &str) -> Option<f64> {
        self.take_with(key, as_f64)
    }

    /// Unconsumed attributes, in source order.
    fn leftovers(&self) -> impl Iterator<Item = &'a (String, AttrValue)> + '_ {
        self.items
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(item, _)| item)
    }
}

/// A whole number from an attribute value.
pub(super) fn as_i64(value: &AttrValue) -> Option<i64> {
    match value {
        AttrValue::Int(i) => Some(*i),
        AttrValue::Double(d) if d.fract() == 0.0 && d.abs() < 9.0e15 => Some(*d as i64),
        AttrValue::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finite number from an attribute value.
pub(super) fn as_f64(value: &AttrValue) -> Option<f64> {
    let number = match value {
        AttrValue::Int(i) => *i as f64,
        AttrValue::Double(d) => *d,
        AttrValue::Str(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Non-empty text of a scalar value (strings, numbers, booleans).
pub(super) fn scalar_text(value: &AttrValue) -> Option<String> {
    match value {
        AttrValue::Str(_) | AttrValue::Int(_) | AttrValue::Double(_) | AttrValue::Bool(_) => {
            Some(text(value)).filter(|t| !t.is_empty())
        }
        _ => None,
    }
}

/// The first non-empty scalar text of `key` in an attribute list.
pub(super) fn find_text(items: &[(String, AttrValue)], key: &str) -> Option<String> {
    items
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| scalar_text(v))
}

/// An attribute value as stored text: strings verbatim, numbers and booleans
/// in their usual spelling, bytes as base64, arrays and maps as JSON text.
pub(super) fn text(value: &AttrValue) -> String {
    match value {
        AttrValue::Empty => String::new(),
        AttrValue::Str(s) => s.clone(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Int(i) => i.to_string(),
        AttrValue::Double(d) => d.to_string(),
        AttrValue::Bytes(b) => BASE64.encode(b),
        AttrValue::Array(_) | AttrValue::Map(_) => to_json(value).to_string(),
    }
}

/// An attribute value as JSON (non-finite doubles become strings).
pub(super) fn to_json(value: &AttrValue) -> Value {
    match value {
        AttrValue::Empty => Value::Null,
        AttrValue::Str(s) => Value::String(s.clone()),
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Int(i) => Value::from(*i),
        AttrValue::Double(d) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        AttrValue::Bytes(b) => Value::String(BASE64.encode(b)),
        AttrValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        AttrValue::Map(items) => Value::Object(map_to_json(items)),
    }
}

/// An attribute list as a JSON object (later duplicates win).
pub(super) fn map_to_json(items: &[(String, AttrValue)]) -> Map<String, Value> {
    items.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// Writes every unconsumed attribute verbatim.
pub(super) fn write_leftovers(bag: &Bag<'_>, out: &mut Tags) {
    for (key, value) in bag.leftovers() {
        out.entry(key.clone()).or_insert_with(|| text(value));
    }
}

/// Writes the resource, scope, kind, trace state, renamed-span, event and
/// link attributes. `used_event` is the exception event already mapped to
/// the error fields: its remaining attributes go in under their own keys
/// instead of into `events`.
pub(super) fn write_span_extras(span: &OtelSpan, used_event: Option<usize>, out: &mut Span) {
    let renamed = out.name.as_deref().unwrap_or_default() != span.name;
    let mapped_message = out.error_message.clone();
    let mapped_class = out.error_class.clone();
    let already_mapped = |key: &str, value: &AttrValue| {
        let field = match key {
            "exception.message" => &mapped_message,
            "exception.type" => &mapped_class,
            _ => return false,
        };
        field.as_deref() == Some(text(value).as_str())
    };
    let attrs = &mut out.attributes;
    for (key, value) in &span.resource_attributes {
        attrs
            .entry(format!("resource.{key}"))
            .or_insert_with(|| text(value));
    }
    let mut put = |key: &str, value: &str| {
        if !value.is_empty() {
            attrs
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned());
        }
    };
    if span.kind != super::OtelKind::Unspecified {
        put("otel.span_kind", span.kind.as_str());
    }
    put("otel.scope.name", &span.scope_name);
    put("otel.scope.version", &span.scope_version);
    put("otel.trace_state", &span.trace_state);
    if renamed {
        put("otel.span_name", &span.name);
    }

    let mut events = Vec::new();
    for (i, event) in span.events.iter().enumerate() {
        if Some(i) == used_event {
            for (key, value) in &event.attributes {
                if !already_mapped(key, value) {
                    attrs.entry(key.clone()).or_insert_with(|| text(value));
                }
            }
            continue;
        }
        events.push(serde_json::json!({
            "name": event.name,
            "time_unix_nano": event.time_unix_nano,
            "attributes": map_to_json(&event.attributes),
        }));
    }
    if !events.is_empty() {
        attrs
            .entry("events".to_owned())
            .or_insert_with(|| Value::Array(events).to_string());
    }

    let links: Vec<Value> = span
        .links
        .iter()
        .map(|link| {
            serde_json::json!({
                "trace_id": link.trace_id,
                "span_id": link.span_id,
                "trace_state": link.trace_state,
                "attributes": map_to_json(&link.attributes),
            })
        })
        .collect();
    if !links.is_empty() {
        attrs
            .entry("links".to_owned())
            .or_insert_with(|| Value::Array(links).to_string());
    }
}
