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
//! enums are integers, unknown fields are ignored. The envelope must be
//! valid; each span is decoded on its own, so a malformed value (an odd-length
//! id, a number where a string belongs) rejects only its span.
//!
//! Before anything is built, the request is counted against
//! [`IngestLimits`] (spans, elements, value nesting); after, each span is
//! checked for its attribute, event and link counts and its times against
//! the accepted window, and rejected alone when over.

pub(crate) mod convert;
mod decode;
mod json;
pub(crate) mod scan;

use loupe_model::Span;
use loupe_normalise::ItemError;
pub use loupe_normalise::otel::IdCache;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

pub use decode::{decode_protobuf, decode_request};
pub(crate) use decode::{gunzip, json_error};

use crate::{IngestLimits, OverLimit};

/// A decoded request and the spans that could not be decoded.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// The spans that decoded, in request order.
    pub request: ExportTraceServiceRequest,
    /// One error per span that did not decode (OTLP/JSON), by path.
    pub rejected: Vec<ItemError>,
    /// When some spans were dropped: the original index of each kept span,
    /// per resource and scope, so paths name the span as sent.
    positions: Option<Vec<Vec<Vec<usize>>>>,
}

impl From<ExportTraceServiceRequest> for Decoded {
    fn from(request: ExportTraceServiceRequest) -> Self {
        Self {
            request,
            rejected: Vec::new(),
            positions: None,
        }
    }
}

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
    /// The body breaks the wire format (found while counting, before any
    /// element is built).
    #[error("{0}")]
    Malformed(String),
    /// The request holds more than an `[ingest]` cap allows (HTTP 413,
    /// gRPC `RESOURCE_EXHAUSTED`).
    #[error(transparent)]
    OverLimit(#[from] OverLimit),
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

/// Normalises every span of `request` for `project` with the default
/// per-span caps and no time window (see [`normalise_with`]; the servers
/// pass the clock).
pub fn normalise_request(project: &str, request: impl Into<Decoded>) -> Normalised {
    normalise_with(
        project,
        request.into(),
        &IngestLimits::default(),
        None,
        None,
    )
}

/// Normalises every span of `decoded` for `project`.
///
/// Invalid spans (trace id not 16 bytes, span or parent id not 8 bytes, all
/// zero ids, times past `i64`), spans over the per-span caps of `limits`
/// and, given a clock `now_ns`, spans whose start or end is outside the
/// accepted window around it become [`ItemError`]s naming the field, after
/// the spans that did not decode; an end before the start is not an
/// error. Spans of Dify's 1.19+ export get Dify's ids and their parents
/// are resolved within the request and through `ids`, the server's cache of
/// recent ones ([`loupe_normalise::otel::link`]). Never panics.
pub fn normalise_with(
    project: &str,
    decoded: Decoded,
    limits: &IngestLimits,
    now_ns: Option<i64>,
    ids: Option<&IdCache>,
) -> Normalised {
    let mut out = Normalised {
        spans: Vec::new(),
        rejected: decoded.rejected,
        checks: 0,
    };
    let positions = decoded.positions;
    let index = |r: usize, s: usize, i: usize| {
        positions
            .as_ref()
            .and_then(|p| p.get(r)?.get(s)?.get(i).copied())
            .unwrap_or(i)
    };
    for (path, otel) in convert::spans(decoded.request, index) {
        if let Some(err) = over_span_caps(&otel, limits) {
            out.rejected
                .push(ItemError::new(format!("{path}.{}", err.0), err.1));
            continue;
        }
        if loupe_normalise::otel::is_connectivity_check(&otel) {
            out.checks += 1;
            continue;
        }
        match loupe_normalise::otel::normalise(project, &otel) {
            Ok(span) => match now_ns.and_then(|now| time_problem(&span, limits, now)) {
                Some((field, reason)) => out
                    .rejected
                    .push(ItemError::new(format!("{path}.{field}"), reason)),
                None => out.spans.push(span),
            },
            Err(err) => out
                .rejected
                .push(ItemError::new(format!("{path}.{}", err.field), err.reason)),
        }
    }
    loupe_normalise::otel::link(&mut out.spans, ids);
    out
}

/// The wall clock in ns since 1970 (the one clock, `loupe_model::time`).
pub use loupe_model::time::now_ns;

/// The first per-span cap `otel` breaks: (field, reason).
fn over_span_caps(
    otel: &loupe_normalise::otel::OtelSpan,
    limits: &IngestLimits,
) -> Option<(&'static str, String)> {
    let over = |n: usize, max: usize, setting: &str| {
        (n > max).then(|| format!("{n} is more than ingest.{setting} = {max}"))
    };
    let attrs = limits.max_attributes_per_span;
    let attr_lists = [
        ("attributes", otel.attributes.len()),
        ("resource.attributes", otel.resource_attributes.len()),
    ]
    .into_iter()
    .chain(
        otel.events
            .iter()
            .map(|e| ("events.attributes", e.attributes.len())),
    )
    .chain(
        otel.links
            .iter()
            .map(|l| ("links.attributes", l.attributes.len())),
    );
    for (field, n) in attr_lists {
        if let Some(reason) = over(n, attrs, "max_attributes_per_span") {
            return Some((field, reason));
        }
    }
    if let Some(reason) = over(
        otel.events.len(),
        limits.max_events_per_span,
        "max_events_per_span",
    ) {
        return Some(("events", reason));
    }
    over(
        otel.links.len(),
        limits.max_links_per_span,
        "max_links_per_span",
    )
    .map(|reason| ("links", reason))
}

/// The first span time outside the accepted window: (OTLP field, reason).
fn time_problem(span: &Span, limits: &IngestLimits, now_ns: i64) -> Option<(&'static str, String)> {
    [
        ("startTimeUnixNano", span.start_time),
        ("endTimeUnixNano", span.end_time),
    ]
    .into_iter()
    .find_map(|(field, at)| Some((field, limits.time_problem(at?, now_ns)?)))
}

#[cfg(test)]
mod tests;
