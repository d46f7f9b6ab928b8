//! Loupe's span model: the one shape every source is normalised into.
//!
//! A [`Span`] is one unit of work inside a run (a Dify workflow run, a chat
//! turn, an agent invocation): the run's root, a node, an LLM call, a tool
//! call. Every field except the identity (`project`, `span_id`) is optional so
//! that the same type carries both complete spans and partial updates (a
//! Langfuse `span-update`, a running node that finishes later). Updates merge
//! field by field with [`Span::merge_from`]: the later non-null value wins,
//! except over a final version from a more faithful source (Dify's
//! database), which a provider's copy only completes.
//!
//! Open enums ([`SpanKind`], [`Status`]) normalise what Loupe understands; the
//! raw source value is always kept beside them (`node_type`, `raw_status`), so
//! unknown values are never rejected or lost.
//!
//! [`schema()`] gives the Arrow schema (version [`SCHEMA_VERSION`]) that the
//! store writes; `docs/DATA_MODEL.md` documents every column.
//!
//! This crate does no I/O and has no async code.

#![warn(missing_docs)]

pub mod currency;
pub mod duration_text;
mod log;
mod metric;
mod schema;
mod span;
pub mod time;

pub use log::{ES_ID, LOG_SCHEMA_VERSION, LogRecord, Severity, log_column, log_schema};
pub use metric::{MetricKind, MetricPoint, MetricValue};
pub use schema::{SCHEMA_VERSION, column, schema};
pub use span::{DATABASE_SOURCES, ProjectId, Span, SpanKind, Status, Tags};

/// Version of the normaliser that produced a span, stored in
/// `ingest_version` so that rows can be re-derived when mappings change.
pub const INGEST_VERSION: u32 = 1;

/// The `attributes` key holding a failed span's error signature: its class
/// and its message with ids, numbers, urls, times, hashes and quoted values
/// normalised (set by the ingest pipeline; `loupe_normalise::errors`). The
/// query language calls it `error_signature`.
pub const ERROR_SIGNATURE: &str = "loupe.error_signature";
