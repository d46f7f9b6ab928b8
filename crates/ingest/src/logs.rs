//! Log payloads → [`LogRecord`](loupe_model::LogRecord)s: Elasticsearch `_bulk` bodies
//! ([`es_bulk`]), OTLP log exports ([`otlp`]) and JSON documents of any
//! shape ([`fields`]: a JSON-lines file's line, an Elasticsearch document).
//!
//! Every source fills the same model the same way: the time, severity,
//! message, service and run links come from the fields shippers and Dify
//! use ([`fields`] lists them), everything else is kept as flattened
//! attributes. Each document becomes a record or an item error naming the
//! problem; one bad document never costs the others of its request.

pub mod es_bulk;
pub mod fields;
pub mod otlp;

pub use fields::{DocumentError, from_document};

/// Bounds on log input (the `[ingest]` section's log settings), checked
/// before anything is built from a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Documents (bulk items, OTLP log records) in one request.
    pub max_records: usize,
    /// Bytes of one document's JSON source (or one OTLP record's body and
    /// attributes).
    pub max_record_bytes: usize,
    /// Flattened fields of one document.
    pub max_fields: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_records: 50_000,
            max_record_bytes: 1 << 20,
            max_fields: 1_000,
        }
    }
}

/// The bytes of a request body: inflated when `gzip` (stopping one byte
/// past `max_decompressed`: a compression bomb costs no more than the
/// limit), else the body itself, checked against the same limit.
///
/// # Errors
/// [`crate::otlp::DecodeError::Gzip`] for a body that is not gzip,
/// [`crate::otlp::DecodeError::TooLarge`] over the limit.
pub fn inflate(
    body: &[u8],
    gzip: bool,
    max_decompressed: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, crate::otlp::DecodeError> {
    if gzip {
        crate::otlp::gunzip(body, max_decompressed).map(std::borrow::Cow::Owned)
    } else if body.len() > max_decompressed {
        Err(crate::otlp::DecodeError::TooLarge {
            limit: max_decompressed,
        })
    } else {
        Ok(std::borrow::Cow::Borrowed(body))
    }
}
