//! OTLP/JSON decoded span by span, so one bad value costs only its span.
//!
//! The envelope (`resourceSpans[].scopeSpans[].spans[]`, resources and
//! scopes) must be valid; each span is kept as its raw JSON text (a slice
//! of the body, nothing copied) and then decoded on its own. A span that
//! does not decode becomes an [`ItemError`] naming its path, as the
//! protobuf path does for spans that do not normalise.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde::Deserialize;
use serde_json::value::RawValue;

use loupe_normalise::ItemError;

use super::{DecodeError, Decoded};
use crate::{IngestLimits, OverLimit};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(default, borrow)]
    resource_spans: Vec<RawResourceSpans<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResourceSpans<'a> {
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default, borrow)]
    scope_spans: Vec<RawScopeSpans<'a>>,
    #[serde(default)]
    schema_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawScopeSpans<'a> {
    #[serde(default)]
    scope: Option<InstrumentationScope>,
    #[serde(default, borrow)]
    spans: Vec<&'a RawValue>,
    #[serde(default)]
    schema_url: String,
}

/// Decodes an OTLP/JSON body; spans that do not decode are rejected one by
/// one. Each span gets a copy of its resource's attributes, so the copies
/// are counted against `max_elements_per_request` before any span is built
/// (the protobuf wire scan counts the same product).
pub(super) fn decode(bytes: &[u8], limits: &IngestLimits) -> Result<Decoded, DecodeError> {
    let raw: RawRequest<'_> = serde_json::from_slice(bytes).map_err(super::decode::json_error)?;
    let copies = raw.resource_spans.iter().fold(0usize, |sum, rs| {
        let attributes = rs.resource.as_ref().map_or(0, |r| r.attributes.len());
        let spans: usize = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
        sum.saturating_add(attributes.saturating_mul(spans))
    });
    if copies > limits.max_elements_per_request {
        return Err(DecodeError::OverLimit(OverLimit {
            what: "resource attributes copied onto each span of the request",
            setting: "max_elements_per_request",
            limit: limits.max_elements_per_request,
        }));
    }
    let mut rejected = Vec::new();
    let mut positions = Vec::with_capacity(raw.resource_spans.len());
    let mut resource_spans = Vec::with_capacity(raw.resource_spans.len());
    for (r, rs) in raw.resource_spans.into_iter().enumerate() {
        let mut kept_rs = Vec::with_capacity(rs.scope_spans.len());
        let mut scope_spans = Vec::with_capacity(rs.scope_spans.len());
        for (s, ss) in rs.scope_spans.into_iter().enumerate() {
            let mut kept = Vec::with_capacity(ss.spans.len());
            let mut spans = Vec::with_capacity(ss.spans.len());
            for (i, text) in ss.spans.into_iter().enumerate() {
                match serde_json::from_str::<Span>(text.get()) {
                    Ok(span) => {
                        kept.push(i);
                        spans.push(span);
                    }
                    Err(e) => rejected.push(ItemError::new(
                        format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"),
                        format!("invalid OTLP JSON: {}", without_position(&e)),
                    )),
                }
            }
            kept_rs.push(kept);
            scope_spans.push(ScopeSpans {
                scope: ss.scope,
                spans,
                schema_url: ss.schema_url,
            });
        }
        positions.push(kept_rs);
        resource_spans.push(ResourceSpans {
            resource: rs.resource,
            scope_spans,
            schema_url: rs.schema_url,
        });
    }
    Ok(Decoded {
        request: ExportTraceServiceRequest { resource_spans },
        positions: (!rejected.is_empty()).then_some(positions),
        rejected,
    })
}

/// serde's message without "at line 1 column N" (a position inside the
/// span's own text, which would mislead next to the span's path).
fn without_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(at) => full[..at].to_owned(),
        None => full,
    }
}
