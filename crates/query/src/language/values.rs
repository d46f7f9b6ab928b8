//! Literal values: strings, numbers, durations with units, timestamps; how
//! bare words are classified and how values print canonically.
//!
//! Durations are whole nanoseconds and print in the largest unit that
//! divides them (`1500ms`, `2h`). Timestamps are ns since the Unix epoch
//! (UTC) and print as RFC 3339 with `Z`. Strings print bare when they could
//! not be mistaken for anything else, and quoted otherwise.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lexer::is_word_char;

/// Duration units, largest first, with their length in ns.
pub(crate) const UNITS: &[(&str, i64)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Words with a meaning in some position; printed quoted when they are
/// values so they can never be misread.
pub(crate) const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "contains", "exists", "run", "has", "by", "as", "asc", "desc",
    "sort", "limit", "top", "fields", "last", "from", "to", "bucket",
];

/// A span of time in nanoseconds. Written with a unit in queries (`250ms`,
/// `1.5s`, `7d`) and in JSON as the same text (an integer is read as ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DurationNs(pub i64);

/// A point in time in nanoseconds since the Unix epoch (UTC). Written as
/// RFC 3339 (`2026-11-01T00:00:00Z`, offsets allowed), a date
/// (`2026-11-01`, midnight UTC), or in JSON also as an integer of ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text. JSON: a string.
    Str(String),
    /// A whole number. JSON: an integer.
    Int(i64),
    /// A finite floating-point number. JSON: a number with a fraction or
    /// exponent.
    Float(f64),
    /// A duration. JSON: `{"duration": "1s"}`.
    Duration(DurationNs),
    /// A timestamp. JSON: `{"time": "2026-11-01T00:00:00Z"}`.
    Time(Timestamp),
}

/// What a bare word could be, before its field says which reading counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Literal {
    Int(i64),
    Float(f64),
    Duration(i64),
    Time(i64),
    /// Looks numeric but is none of the above (`3fa85f64-…`, `1e999`).
    Malformed,
    /// Starts with a letter: only ever text.
    Text,
}

/// Classifies a bare word.
pub(crate) fn classify(word: &str) -> Literal {
    let body = word.strip_prefix(['-', '+']).unwrap_or(word);
    let numeric_start = body.starts_with(|ch: char| ch.is_ascii_digit())
        || (body.starts_with('.') && body[1..].starts_with(|ch: char| ch.is_ascii_digit()));
    if !numeric_start {
        return Literal::Text;
    }
    if let Ok(n) = word.parse::<i64>() {
        return Literal::Int(n);
    }
    if let Some(ns) = parse_duration(word) {
        return Literal::Duration(ns);
    }
    if let Some(ts) = parse_timestamp(word) {
        return Literal::Time(ts);
    }
    let float_shape = body
        .chars()
        .all(|ch| ch.is_ascii_digit() || matches!(ch, '.' | 'e' | 'E' | '-' | '+'));
    match word.parse::<f64>() {
        Ok(x) if float_shape && x.is_finite() => Literal::Float(x),
        _ => Literal::Malformed,
    }
}

/// Parses `[+-]digits[.digits]unit` into whole ns; `None` if malformed,
/// not whole, or out of range.
pub(crate) fn parse_duration(word: &str) -> Option<i64> {
    let split = word.find(|ch: char| ch.is_ascii_alphabetic())?;
    let (num, unit) = word.split_at(split);
    let per = UNITS.iter().find(|(u, _)| *u == unit)?.1;
    let (neg, num) = match num.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits_ok = |s: &str| s.chars().all(|ch| ch.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits_ok(int) || !digits_ok(frac) || frac.len() > 18 {
        return None;
    }
    let mantissa: i128 = format!("{int}{frac}").parse().ok()?;
    let scale = 10i128.pow(u32::try_from(frac.len()).ok()?);
    let total = mantissa.checked_mul(i128::from(per))?;
    if total % scale != 0 {
        return None;
    }
    let ns = i64::try_from(total / scale).ok()?;
    Some(if neg { -ns } else { ns })
}

/// Parses RFC 3339, a zone-less date-time (UTC), or a date (midnight UTC).
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return t.timestamp_nanos_opt();
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return t.and_utc().timestamp_nanos_opt();
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)?
        .and_utc()
        .timestamp_nanos_opt()
}

impl fmt::Display for DurationNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, per) = UNITS
            .iter()
            .find(|(_, per)| self.0 != 0 && self.0 % per == 0)
            .copied()
            .unwrap_or(("s", 1_000_000_000));
        write!(f, "{}{unit}", self.0 / per)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = DateTime::<Utc>::from_timestamp_nanos(self.0);
        f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

/// Whether `s` can be printed without quotes and read back as the same text.
pub(crate) fn is_bare_safe(s: &str) -> bool {
    s.starts_with(|ch: char| ch.is_alphabetic() || ch == '_')
        && s.chars().all(is_word_char)
        && !KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

/// Writes `s` as a double-quoted string with escapes.
pub(crate) fn write_quoted(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for ch in s.chars() {
        match ch {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            ch if ch.is_control() => write!(out, "\\u{{{:x}}}", u32::from(ch))?,
            ch => out.write_char(ch)?,
        }
    }
    out.write_char('"')
}

/// Writes text bare when safe, quoted otherwise.
pub(crate) fn write_text(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    if is_bare_safe(s) {
        out.write_str(s)
    } else {
        write_quoted(out, s)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write_text(f, s),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Duration(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
        }
    }
}

impl Value {
    /// How the value's type is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Str(s) => {
                let mut q = String::from("the string ");
                // Writing into a String cannot fail.
                let _ = write_quoted(&mut q, s);
                q
            }
            Value::Int(_) | Value::Float(_) => format!("the number {self}"),
            Value::Duration(_) => format!("the duration {self}"),
            Value::Time(_) => format!("the timestamp {self}"),
        }
    }
}

impl Serialize for DurationNs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Text or integer ns, for the JSON form of durations and timestamps.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNs {
    Ns(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for DurationNs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextOrNs::deserialize(d)? {
            TextOrNs::Ns(n) => Ok(DurationNs(n)),
            TextOrNs::Text(t) => parse_duration(&t).map(DurationNs).ok_or_else(|| {
                serde::de::Error::custom(format!("`{t}` is not a duration like `250ms`"))
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match TextOrNs::deserialize(d)? {
            TextOrNs::Ns(n) => Ok(Timestamp(n)),
            TextOrNs::Text(t) => parse_timestamp(&t).map(Timestamp).ok_or_else(|| {
                serde::de::Error::custom(format!("`{t}` is not an RFC 3339 timestamp"))
            }),
        }
    }
}

/// The JSON shape of [`Value`].
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ValueRepr {
    Str(String),
    Int(i64),
    Float(f64),
    Duration { duration: DurationNs },
    Time { time: Timestamp },
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let repr = match self {
            Value::Str(v) => ValueRepr::Str(v.clone()),
            Value::Int(v) => ValueRepr::Int(*v),
            Value::Float(v) => ValueRepr::Float(*v),
            Value::Duration(d) => ValueRepr::Duration { duration: *d },
            Value::Time(t) => ValueRepr::Time { time: *t },
        };
        repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match ValueRepr::deserialize(d)? {
            ValueRepr::Str(v) => Value::Str(v),
            ValueRepr::Int(v) => Value::Int(v),
            ValueRepr::Float(v) => Value::Float(v),
            ValueRepr::Duration { duration } => Value::Duration(duration),
            ValueRepr::Time { time } => Value::Time(time),
        })
    }
}
