//! `[ingest]` in `loupe.toml`: how much one request may hold and which span
//! times are accepted.
//!
//! The element caps are checked *before* a body is materialised (a wire
//! scan of protobuf, a counting pass over JSON), because a few bytes on the
//! wire become a few hundred in memory: a 58 KB gzip body of 30M empty
//! spans used to be inflated and decoded until the process was OOM-killed
//! (issue 14). The per-span caps and the time window are checked per item,
//! so a span over them costs only itself (partial success naming it).
//!
//! Span times outside `[now - max_past, now + max_future_skew]` are
//! *rejected*, not clamped: clamping would store a time the span never had
//! (and a duration that no longer matches), while a span from 2255 or eight
//! hours ahead is a clock or timezone bug its sender should hear about. One
//! such span used to anchor rollups and alerting in the future and silence
//! them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[ingest]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLimits {
    /// Spans in one OTLP request (HTTP or gRPC). Default 50,000 (Dify sends
    /// at most a few thousand per request: 2,050 seen for one long run).
    /// Over it the request is refused (413), before decoding.
    pub max_spans_per_request: usize,
    /// Decoded elements in one OTLP request: spans, attributes, values,
    /// events, links, resource and scope entries, and the resource
    /// attributes copied onto each span. Default 1,000,000 (about 100 MB
    /// in memory at worst). Over it the request is refused (413).
    pub max_elements_per_request: usize,
    /// Nesting of array / key-value-list attribute values. Default 16.
    pub max_value_depth: usize,
    /// Attributes of one span (also of its resource, scope, each event and
    /// link). Default 1,024; a span over it is rejected on its own.
    pub max_attributes_per_span: usize,
    /// Events of one span. Default 1,024; a span over it is rejected.
    pub max_events_per_span: usize,
    /// Links of one span. Default 1,024; a span over it is rejected.
    pub max_links_per_span: usize,
    /// Events in one Langfuse ingestion batch. Default 10,000; a bigger
    /// batch is refused (413) before any event is read.
    pub max_events_per_batch: usize,
    /// Bytes of one OTLP metrics request after gzip. Default 1 MiB (Dify
    /// sends a few points per trace); a bigger one is refused (413).
    pub max_metrics_bytes: usize,
    /// Metric series relayed to `/metrics` at most, over all projects.
    /// Default 10,000; points of new series beyond it are dropped and
    /// counted in `loupe_otlp_metric_series_dropped_total`.
    pub max_metric_series: usize,
    /// Log records (Elasticsearch bulk items, OTLP log records) in one
    /// request. Default 50,000; over it the request is refused (413)
    /// before any record is built.
    pub max_log_records_per_request: usize,
    /// Bytes of one log document (a bulk item's JSON source). Default 1 MiB;
    /// a bigger document is refused alone (413 item), the others stored.
    pub max_log_record_bytes: usize,
    /// Flattened fields of one log document. Default 1,000 (Elasticsearch's
    /// `index.mapping.total_fields.limit`); a wider one is refused alone.
    pub max_log_fields: usize,
    /// How far past the server clock a span's start or end may be.
    /// Default `1h`: clocks drift by seconds, while a timezone bug is hours.
    #[serde(with = "loupe_model::duration_text")]
    pub max_future_skew: Duration,
    /// How far before the server clock a span's start may be. Default
    /// `3650d` (ten years).
    #[serde(with = "loupe_model::duration_text")]
    pub max_past: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_spans_per_request: 50_000,
            max_elements_per_request: 1_000_000,
            max_value_depth: 16,
            max_attributes_per_span: 1_024,
            max_events_per_span: 1_024,
            max_links_per_span: 1_024,
            max_events_per_batch: 10_000,
            max_metrics_bytes: 1 << 20,
            max_metric_series: 10_000,
            max_log_records_per_request: 50_000,
            max_log_record_bytes: 1 << 20,
            max_log_fields: 1_000,
            max_future_skew: Duration::from_secs(3_600),
            max_past: Duration::from_secs(3_650 * 86_400),
        }
    }
}

impl IngestLimits {
    /// Checks that every cap lets something through.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_spans_per_request", self.max_spans_per_request),
            ("max_elements_per_request", self.max_elements_per_request),
            ("max_value_depth", self.max_value_depth),
            ("max_attributes_per_span", self.max_attributes_per_span),
            ("max_events_per_span", self.max_events_per_span),
            ("max_links_per_span", self.max_links_per_span),
            ("max_events_per_batch", self.max_events_per_batch),
            ("max_metrics_bytes", self.max_metrics_bytes),
            ("max_metric_series", self.max_metric_series),
            (
                "max_log_records_per_request",
                self.max_log_records_per_request,
            ),
            ("max_log_record_bytes", self.max_log_record_bytes),
            ("max_log_fields", self.max_log_fields),
        ] {
            if value == 0 {
                return Err(format!("ingest.{name} must be greater than 0"));
            }
        }
        if self.max_past.is_zero() {
            return Err("ingest.max_past must be greater than 0".into());
        }
        Ok(())
    }

    /// The log settings, as the log decoders take them.
    pub fn logs(&self) -> crate::logs::LogLimits {
        crate::logs::LogLimits {
            max_records: self.max_log_records_per_request,
            max_record_bytes: self.max_log_record_bytes,
            max_fields: self.max_log_fields,
        }
    }

    /// Why a span time `at_ns` (field `field`) is outside the accepted
    /// window around `now_ns`, or `None` when it is inside.
    pub fn time_problem(&self, at_ns: i64, now_ns: i64) -> Option<String> {
        let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let latest = now_ns.saturating_add(ns(self.max_future_skew));
        let earliest = now_ns.saturating_sub(ns(self.max_past));
        let text = || time_text(at_ns);
        if at_ns > latest {
            Some(format!(
                "{} is more than {} ahead of the server clock (ingest.max_future_skew)",
                text(),
                humantime_text(self.max_future_skew)
            ))
        } else if at_ns < earliest {
            Some(format!(
                "{} is more than {} before the server clock (ingest.max_past)",
                text(),
                humantime_text(self.max_past)
            ))
        } else {
            None
        }
    }
}

fn humantime_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `at_ns` as RFC 3339 (seconds), or the raw ns before 1970.
fn time_text(at_ns: i64) -> String {
    match u64::try_from(at_ns) {
        Ok(ns) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_nanos(ns))
                .to_string()
        }
        Err(_) => format!("{at_ns} ns since 1970"),
    }
}

/// A request over one of the element caps: which one, and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} exceeds ingest.{setting} = {limit}; send smaller batches")]
pub struct OverLimit {
    /// What was counted (`spans in the request`).
    pub what: &'static str,
    /// The `[ingest]` key that sets the limit.
    pub setting: &'static str,
    /// The limit.
    pub limit: usize,
}
