//! Counting an OTLP request before it is materialised: a walk over the
//! protobuf wire format (no allocation but a stack as deep as the message
//! nesting, which the value-depth cap bounds), and a counting pass over
//! JSON (serde visitors that keep nothing).
//!
//! Why: decoding allocates a struct per element, a few hundred bytes for an
//! empty span that took two bytes on the wire, so a small (or gzip) body
//! could demand gigabytes. Here a request over [`IngestLimits`] is refused
//! for the price of reading it once.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::DecodeError;
use crate::{IngestLimits, OverLimit};

/// The messages of `ExportTraceServiceRequest` that hold other messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    ResourceSpans,
    Resource,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// Which export a body is: traces and logs share the request's outer
/// shape (resource → scope → item), and differ in the item's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `ExportTraceServiceRequest`: the items are spans.
    Traces,
    /// `ExportLogsServiceRequest`: the items (`Kind::Span` here) are log
    /// records, with a body value (5) and attributes (6).
    Logs,
}

/// The kind of the sub-message in field `field` of a `kind`, if any.
fn child(signal: Signal, kind: Kind, field: u64) -> Option<Kind> {
    use Kind as K;
    if signal == Signal::Logs && kind == K::Span {
        return match field {
            5 => Some(K::AnyValue),
            6 => Some(K::KeyValue),
            _ => None,
        };
    }
    Some(match (kind, field) {
        (K::Request, 1) => K::ResourceSpans,
        (K::ResourceSpans, 1) => K::Resource,
        (K::ResourceSpans, 2) => K::ScopeSpans,
        (K::Resource, 1) | (K::Scope, 3) | (K::Span, 9) | (K::Event, 3) | (K::Link, 4) => {
            K::KeyValue
        }
        (K::KeyValueList, 1) => K::KeyValue,
        (K::ScopeSpans, 1) => K::Scope,
        (K::ScopeSpans, 2) => K::Span,
        (K::Span, 11) => K::Event,
        (K::Span, 13) => K::Link,
        (K::KeyValue, 2) | (K::ArrayValue, 1) => K::AnyValue,
        (K::AnyValue, 5) => K::ArrayValue,
        (K::AnyValue, 6) => K::KeyValueList,
        _ => return None,
    })
}

struct Frame {
    kind: Kind,
    end: usize,
    /// For a `ResourceSpans`: its spans and its resource's attributes (each
    /// span gets a copy of those).
    spans: usize,
    resource_attributes: usize,
}

struct Budget<'a> {
    limits: &'a IngestLimits,
    signal: Signal,
    spans: usize,
    elements: usize,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a IngestLimits, signal: Signal) -> Self {
        Self {
            limits,
            signal,
            spans: 0,
            elements: 0,
        }
    }

    /// Counts one item (a span, or a log record).
    fn span(&mut self) -> Result<(), OverLimit> {
        self.spans += 1;
        let (limit, what, setting) = match self.signal {
            Signal::Traces => (
                self.limits.max_spans_per_request,
                "spans in the request",
                "max_spans_per_request",
            ),
            Signal::Logs => (
                self.limits.max_log_records_per_request,
                "log records in the request",
                "max_log_records_per_request",
            ),
        };
        if self.spans > limit {
            return Err(OverLimit {
                what,
                setting,
                limit,
            });
        }
        self.elements(1)
    }

    fn elements(&mut self, n: usize) -> Result<(), OverLimit> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > self.limits.max_elements_per_request {
            return Err(OverLimit {
                what: "elements (spans, attributes, values, events, links) in the request",
                setting: "max_elements_per_request",
                limit: self.limits.max_elements_per_request,
            });
        }
        Ok(())
    }

    fn depth(&self, depth: usize) -> Result<(), OverLimit> {
        if depth > self.limits.max_value_depth {
            return Err(OverLimit {
                what: "nesting of attribute values",
                setting: "max_value_depth",
                limit: self.limits.max_value_depth,
            });
        }
        Ok(())
    }
}

fn malformed(at: usize, what: &str) -> DecodeError {
    DecodeError::Malformed(format!("invalid OTLP protobuf at byte {at}: {what}"))
}

fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*pos) else {
            return Err(malformed(*pos, "truncated varint"));
        };
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed(*pos, "varint longer than 10 bytes"))
}

/// Checks a protobuf `ExportTraceServiceRequest` against the element caps
/// without decoding it. Structural damage is reported here too (prost
/// would stop at the same place, after allocating everything before it).
pub(super) fn protobuf(bytes: &[u8], limits: &IngestLimits) -> Result<(), DecodeError> {
    protobuf_of(bytes, limits, Signal::Traces)
}

/// As [`protobuf`], for either export.
pub(crate) fn protobuf_of(
    bytes: &[u8],
    limits: &IngestLimits,
    signal: Signal,
) -> Result<(), DecodeError> {
    let mut budget = Budget::new(limits, signal);
    let mut stack = vec![Frame {
        kind: Kind::Request,
        end: bytes.len(),
        spans: 0,
        resource_attributes: 0,
    }];
    let mut value_depth = 0usize;
    let mut pos = 0usize;
    while let Some(top) = stack.last() {
        if pos == top.end {
            if let Some(done) = stack.pop() {
                match done.kind {
                    Kind::AnyValue => value_depth -= 1,
                    Kind::ResourceSpans => budget
                        .elements(done.spans.saturating_mul(done.resource_attributes))
                        .map_err(DecodeError::OverLimit)?,
                    _ => {}
                }
            }
            continue;
        }
        let kind = top.kind;
        let end = top.end;
        let key = varint(bytes, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let left = |pos: usize| {
            end.checked_sub(pos)
                .ok_or_else(|| malformed(pos, "field past the end of its message"))
        };
        match wire {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 | 5 => {
                let width = if wire == 1 { 8 } else { 4 };
                if left(pos)? < width {
                    return Err(malformed(pos, "truncated fixed-width field"));
                }
                pos += width;
            }
            2 => {
                let len = varint(bytes, &mut pos)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > left(pos)? {
                    return Err(malformed(pos, "length past the end of its message"));
                }
                match child(signal, kind, field) {
                    None => pos += len,
                    Some(sub) => {
                        match sub {
                            Kind::Span => budget.span(),
                            _ => budget.elements(1),
                        }
                        .map_err(DecodeError::OverLimit)?;
                        if sub == Kind::AnyValue {
                            value_depth += 1;
                            budget.depth(value_depth).map_err(DecodeError::OverLimit)?;
                        }
                        count_in_resource(&mut stack, sub);
                        stack.push(Frame {
                            kind: sub,
                            end: pos + len,
                            spans: 0,
                            resource_attributes: 0,
                        });
                    }
                }
            }
            _ => return Err(malformed(pos, "a group or unknown wire type (not OTLP)")),
        }
        if stack.last().is_some_and(|f| pos > f.end) {
            return Err(malformed(pos, "field past the end of its message"));
        }
    }
    Ok(())
}

/// Counts a span or a resource attribute for the `ResourceSpans` holding it
/// (always `stack[1]` when the new frame is a span or resource attribute).
fn count_in_resource(stack: &mut [Frame], sub: Kind) {
    let parent = stack.last().map(|f| f.kind);
    let Some(rs) = stack.get_mut(1) else { return };
    match (parent, sub) {
        (Some(Kind::ScopeSpans), Kind::Span) => rs.spans += 1,
        (Some(Kind::Resource), Kind::KeyValue) => rs.resource_attributes += 1,
        _ => {}
    }
}

/// Checks OTLP/JSON against the element caps without building anything:
/// every JSON object counts as one element (each decodes to one struct),
/// and the objects in `spans` arrays count as spans. JSON nesting is
/// bounded by the parser (128 levels).
pub(super) fn json(bytes: &[u8], limits: &IngestLimits) -> Result<(), DecodeError> {
    json_of(bytes, limits, Signal::Traces)
}

/// As [`json`], for either export (`logRecords` arrays count as items).
pub(crate) fn json_of(
    bytes: &[u8],
    limits: &IngestLimits,
    signal: Signal,
) -> Result<(), DecodeError> {
    let mut budget = Budget::new(limits, signal);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let counted = Count {
        budget: &mut budget,
        in_spans: false,
        over: None,
    }
    .deserialize(&mut de);
    match counted {
        Ok(None) => Ok(()),
        Ok(Some(over)) => Err(DecodeError::OverLimit(over)),
        // Syntax errors are reported by the real decode, with its message.
        Err(_) => Ok(()),
    }
}

/// One JSON value, counted. `in_spans`: the value is an element of a
/// `spans` array. Returns the cap it broke (as an error to stop serde at
/// once, then as the value).
struct Count<'b, 'l> {
    budget: &'b mut Budget<'l>,
    in_spans: bool,
    over: Option<OverLimit>,
}

impl<'de> DeserializeSeed<'de> for Count<'_, '_> {
    type Value = Option<OverLimit>;

    fn deserialize<D: de::Deserializer<'de>>(mut self, d: D) -> Result<Self::Value, D::Error> {
        match d.deserialize_any(&mut self) {
            Ok(()) => Ok(None),
            Err(e) => match self.over.take() {
                Some(over) => Ok(Some(over)),
                None => Err(e),
            },
        }
    }
}

impl<'de> Visitor<'de> for &mut Count<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let item = Count {
                budget: &mut *self.budget,
                in_spans: self.in_spans,
                over: None,
            };
            match seq.next_element_seed(item)? {
                None => return Ok(()),
                Some(None) => {}
                Some(Some(over)) => {
                    self.over = Some(over);
                    return Err(de::Error::custom("over a limit"));
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let counted = if self.in_spans {
            self.budget.span()
        } else {
            self.budget.elements(1)
        };
        if let Err(over) = counted {
            self.over = Some(over);
            return Err(de::Error::custom("over a limit"));
        }
        while let Some(key) = map.next_key::<KeyName>()? {
            let item = Count {
                budget: &mut *self.budget,
                in_spans: key.0,
                over: None,
            };
            if let Some(over) = map.next_value_seed(item)? {
                self.over = Some(over);
                return Err(de::Error::custom("over a limit"));
            }
        }
        Ok(())
    }
}

/// A map key, remembered only as "is it `spans` or `logRecords`".
struct KeyName(bool);

impl<'de> de::Deserialize<'de> for KeyName {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<KeyName, E> {
                Ok(KeyName(matches!(key, "spans" | "logRecords")))
            }
        }
        d.deserialize_str(V)
    }
}
