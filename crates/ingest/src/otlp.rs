//! OTLP trace exports: request body → [`ExportTraceServiceRequest`] →
//! [`loupe_model::Span`]s.
//!
//! [`decode_request`] turns an HTTP body (protobuf or OTLP/JSON, optionally
//! gzip) or a gRPC message into the request; [`normalise_request`] converts
//! each OTLP span into a source-neutral [`loupe_normalise::otel::OtelSpan`]
//! (this module is the only place that knows the protobuf types) and maps it
//! with [`loupe_normalise::otel::normalise`]. A span that cannot be mapped
//! becomes an [`ItemError`] whose field is its path in the request
//! (`resourceSpans[0].scopeSpans[0].spans[2].spanId`); the others are kept.
//!
//! OTLP/JSON follows the OTLP spec through `opentelemetry-proto`'s serde
//! support: ids are hex strings, 64-bit integers may be strings or numbers,
//! enums are integers, unknown fields are ignored. A malformed id (odd length,
//! not hex) fails the whole JSON body, as any other JSON error.

mod convert;
mod decode;

use loupe_model::Span;
use loupe_normalise::ItemError;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

pub use decode::decode_request;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf (`application/x-protobuf`, and every gRPC message).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

/// Why a request body could not be decoded. The whole request is rejected
/// (HTTP 400, or 413 for [`DecodeError::TooLarge`]).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is declared gzip but is not valid gzip.
    #[error("body is not valid gzip: {0}")]
    Gzip(#[source] std::io::Error),
    /// The (decompressed) body is larger than the allowed size.
    #[error("decompressed body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
    /// The body is not a valid protobuf `ExportTraceServiceRequest` (this
    /// includes truncated bodies and strings that are not UTF-8).
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The body is not valid OTLP/JSON.
    #[error("invalid OTLP JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The spans of one request: the mapped ones and the rejected ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Normalised {
    /// Spans that mapped, in request order.
    pub spans: Vec<Span>,
    /// One error per span that did not map, naming its field by path.
    pub rejected: Vec<ItemError>,
    /// Connectivity checks (Dify's `api_check` span): accepted, not stored.
    pub checks: usize,
}

/// Normalises every span of `request` for `project`.
///
/// Invalid spans (trace id not 16 bytes, span or parent id not 8 bytes, all
/// zero ids, times past `i64`) become [`ItemError`]s naming the field; an end
/// before the start is not an error. Never panics.
pub fn normalise_request(project: &str, request: ExportTraceServiceRequest) -> Normalised {
    let mut out = Normalised::default();
    for (path, otel) in convert::spans(request) {
        if loupe_normalise::otel::is_connectivity_check(&otel) {
            out.checks += 1;
            continue;
        }
        match loupe_normalise::otel::normalise(project, &otel) {
            Ok(span) => out.spans.push(span),
            Err(err) => out
                .rejected
                .push(ItemError::new(format!("{path}.{}", err.field), err.reason)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
