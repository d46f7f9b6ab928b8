//! The log model: one [`LogRecord`] per log line, whatever its source
//! (Elasticsearch `_bulk`, OTLP logs, JSON-lines files).
//!
//! A record is immutable once stored: logs are appended, never merged, so
//! unlike [`crate::Span`] every record is complete. Severity follows
//! OpenTelemetry's numbers (1–24, 0 unspecified), so every source maps onto
//! one ordered scale (`severity >= error` means number ≥ 17); the source's
//! own word is kept in `severity_text`. Run links (`trace_id`, `span_id`,
//! `run_id`) are filled by the ingest edge from the fields it knows
//! (`loupe_ingest::logs`), so a log line finds its run by the same ids a
//! span does.
//!
//! [`log_schema()`] is the Arrow schema (version [`LOG_SCHEMA_VERSION`]) the
//! store writes; its column names are in [`log_column`].

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// The attribute holding an Elasticsearch document's `_id`: a record that
/// carries one is stored once per (project, stream, id).
pub const ES_ID: &str = "_id";

/// Version of the logs schema written into every log part's footer.
pub const LOG_SCHEMA_VERSION: u32 = 1;

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The owning project.
    pub project: String,
    /// When the event happened (ns since epoch); the receive time when the
    /// source gave none.
    pub time: i64,
    /// When Loupe received it (ns since epoch).
    pub observed_time: i64,
    /// OpenTelemetry severity number: 1–4 trace, 5–8 debug, 9–12 info,
    /// 13–16 warn, 17–20 error, 21–24 fatal, 0 unspecified.
    pub severity_number: u8,
    /// The source's own severity word (`WARNING`, `err`, `E`), if any.
    pub severity_text: Option<String>,
    /// The message.
    pub body: String,
    /// The emitting service (`service.name`, Elasticsearch's `service.name`
    /// or `service`), if known.
    pub service: Option<String>,
    /// Where it came from: the Elasticsearch index, the file, `otlp`.
    pub stream: Option<String>,
    /// Trace id (lowercase hex for OTel ids, else as sent).
    pub trace_id: Option<String>,
    /// Span id.
    pub span_id: Option<String>,
    /// Run id (Dify's `workflow_run_id`).
    pub run_id: Option<String>,
    /// Every other field, flattened to dotted keys; values are strings, or
    /// JSON text for numbers, booleans and arrays.
    pub attributes: BTreeMap<String, String>,
    /// Attributes of the emitting resource (OTLP), flattened the same way.
    pub resource: BTreeMap<String, String>,
}

impl LogRecord {
    /// A record with only the mandatory fields.
    pub fn new(project: impl Into<String>, time: i64, body: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            time,
            observed_time: time,
            severity_number: 0,
            severity_text: None,
            body: body.into(),
            service: None,
            stream: None,
            trace_id: None,
            span_id: None,
            run_id: None,
            attributes: BTreeMap::new(),
            resource: BTreeMap::new(),
        }
    }

    /// Approximate heap size, for memory budgets.
    pub fn approx_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let map = |m: &BTreeMap<String, String>| {
            m.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>()
        };
        128 + self.project.len()
            + self.body.len()
            + opt(&self.severity_text)
            + opt(&self.service)
            + opt(&self.stream)
            + opt(&self.trace_id)
            + opt(&self.span_id)
            + opt(&self.run_id)
            + map(&self.attributes)
            + map(&self.resource)
    }
}

/// The severity ranges, by their lowest number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 1–4.
    Trace = 1,
    /// 5–8.
    Debug = 5,
    /// 9–12.
    Info = 9,
    /// 13–16.
    Warn = 13,
    /// 17–20.
    Error = 17,
    /// 21–24.
    Fatal = 21,
}

impl Severity {
    /// Every level, lowest first.
    pub const ALL: [Severity; 6] = [
        Severity::Trace,
        Severity::Debug,
        Severity::Info,
        Severity::Warn,
        Severity::Error,
        Severity::Fatal,
    ];

    /// The lowest severity number of the level.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The level's lowercase name (`error`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Trace => "trace",
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        }
    }

    /// The level of a severity number; `None` for 0 (unspecified) and
    /// numbers past 24.
    pub fn of_number(n: u8) -> Option<Severity> {
        match n {
            1..=4 => Some(Severity::Trace),
            5..=8 => Some(Severity::Debug),
            9..=12 => Some(Severity::Info),
            13..=16 => Some(Severity::Warn),
            17..=20 => Some(Severity::Error),
            21..=24 => Some(Severity::Fatal),
            _ => None,
        }
    }

    /// The level a source's word names, case-insensitively: the names
    /// above and the words of syslog, Python's `logging`, log4j, Go and
    /// Dify (`warning`, `err`, `critical`, `crit`, `alert`, `emerg`,
    /// `panic`, `notice`, `verbose`, single letters `E`/`W`/`I`/`D`).
    pub fn from_text(text: &str) -> Option<Severity> {
        let t = text.trim().to_ascii_lowercase();
        Some(match t.as_str() {
            "trace" | "finest" | "finer" | "verbose" | "t" => Severity::Trace,
            "debug" | "fine" | "dbg" | "d" => Severity::Debug,
            "info" | "information" | "informational" | "notice" | "i" | "log" => Severity::Info,
            "warn" | "warning" | "w" => Severity::Warn,
            "error" | "err" | "e" | "severe" => Severity::Error,
            "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" | "f"
            | "c" => Severity::Fatal,
            _ => return None,
        })
    }
}

/// Column names of the logs table, so no other crate spells them by hand.
pub mod log_column {
    #![allow(missing_docs)]
    pub const PROJECT: &str = "project";
    pub const TIME: &str = "time";
    pub const OBSERVED_TIME: &str = "observed_time";
    pub const SEVERITY_NUMBER: &str = "severity_number";
    pub const SEVERITY_TEXT: &str = "severity_text";
    pub const BODY: &str = "body";
    pub const SERVICE: &str = "service";
    pub const STREAM: &str = "stream";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const RUN_ID: &str = "run_id";
    /// JSON object text of [`super::LogRecord::attributes`].
    pub const ATTRIBUTES: &str = "attributes";
    /// JSON object text of [`super::LogRecord::resource`].
    pub const RESOURCE: &str = "resource";
}

/// The Arrow schema of the logs table (version [`LOG_SCHEMA_VERSION`]).
/// Column order is a persisted format.
pub fn log_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use log_column::*;
            let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
            Arc::new(Schema::new(vec![
                Field::new(PROJECT, DataType::Utf8, false),
                Field::new(TIME, ts.clone(), false),
                Field::new(OBSERVED_TIME, ts, false),
                Field::new(SEVERITY_NUMBER, DataType::UInt8, false),
                Field::new(SEVERITY_TEXT, DataType::Utf8, true),
                Field::new(BODY, DataType::Utf8, false),
                Field::new(SERVICE, DataType::Utf8, true),
                Field::new(STREAM, DataType::Utf8, true),
                Field::new(TRACE_ID, DataType::Utf8, true),
                Field::new(SPAN_ID, DataType::Utf8, true),
                Field::new(RUN_ID, DataType::Utf8, true),
                Field::new(ATTRIBUTES, DataType::Utf8, false),
                Field::new(RESOURCE, DataType::Utf8, false),
            ]))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_words_map_onto_one_ordered_scale() {
        assert_eq!(Severity::from_text("WARNING"), Some(Severity::Warn));
        assert_eq!(Severity::from_text("err"), Some(Severity::Error));
        assert_eq!(Severity::from_text(" Critical "), Some(Severity::Fatal));
        assert_eq!(Severity::from_text("E"), Some(Severity::Error));
        assert_eq!(Severity::from_text("loud"), None);
        assert!(Severity::Error > Severity::Warn);
        for s in Severity::ALL {
            assert_eq!(Severity::of_number(s.number()), Some(s));
            assert_eq!(Severity::of_number(s.number() + 3), Some(s));
        }
        assert_eq!(Severity::of_number(0), None);
        assert_eq!(Severity::of_number(25), None);
    }
}
