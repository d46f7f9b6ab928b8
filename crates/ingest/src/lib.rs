//! Push sources: decode request payloads into model spans.
//!
//! Knows payloads, not transports: `loupe-api` owns HTTP and gRPC and hands
//! request bodies here. [`otlp`] decodes OTLP trace exports (protobuf or JSON,
//! optionally gzip) and normalises them; [`langfuse`] parses ingestion batches;
//! [`logs`] maps Elasticsearch bulk bodies, OTLP log exports and JSON lines
//! into log records.
//! What they produce is written through `loupe-pipeline`, never to a store.

#![warn(missing_docs)]

pub mod langfuse;
mod limits;
pub mod logs;
pub mod metrics;
pub mod otlp;

pub use limits::{IngestLimits, OverLimit};
