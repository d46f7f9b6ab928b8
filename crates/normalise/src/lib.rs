//! Source-neutral records → [`loupe_model::Span`]. Pure functions, no I/O.
//!
//! - [`otel`]: OpenTelemetry spans (decoded by `loupe-ingest` from OTLP) mapped
//!   through a priority-ordered set of attribute conventions: OpenInference
//!   (Dify's Phoenix/Arize providers), OTel GenAI (Dify's `ENABLE_OTEL`,
//!   Aliyun, Tencent), OpenLLMetry/Traceloop and Langfuse OTel.
//! - [`langfuse`]: Langfuse ingestion events (`trace-create`, observations,
//!   scores) decoded by `loupe-ingest` from `POST /api/public/ingestion`.
//! - [`tags`]: business-tag extraction rules (`category` from a run input, …).
//!
//! Normalisation is total: each input item becomes a `Span` or an
//! [`ItemError`] naming the field; unknown values are kept, never dropped.

#![warn(missing_docs)]

pub mod dify;
pub mod errors;
pub mod langfuse;
pub mod otel;
pub mod tags;

/// Why one input item could not become a span. Names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ItemError {
    /// Path of the offending field (`spans[3].traceId`, `batch[0].body.id`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ItemError {
    /// Builds an item error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
