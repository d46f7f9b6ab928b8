//! The generated runs as OTLP `ExportTraceServiceRequest`s, shaped like
//! Dify's Phoenix/Arize provider (OpenInference attributes), for
//! `POST /v1/traces` (protobuf) or OTLP/gRPC. Normalising them with Loupe's
//! OTLP path gives the spans of [`crate::runs`].

use loupe_normalise::otel::{AttrValue, OtelKind, OtelSpan, StatusCode};
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

use crate::{GenConfig, phoenix, plans};

/// One request per run (as Dify batches are small), in run order.
pub fn run_requests(config: &GenConfig) -> impl Iterator<Item = ExportTraceServiceRequest> + use<> {
    plans(config).map(|plan| request(&phoenix::spans(&plan)))
}

/// Requests of `runs_per_request` runs each (at least 1), in run order.
pub fn requests(
    config: &GenConfig,
    runs_per_request: usize,
) -> impl Iterator<Item = ExportTraceServiceRequest> + use<> {
    let size = runs_per_request.max(1);
    let mut plans = plans(config).peekable();
    std::iter::from_fn(move || {
        plans.peek()?;
        let spans: Vec<OtelSpan> = plans
            .by_ref()
            .take(size)
            .flat_map(|p| phoenix::spans(&p))
            .collect();
        Some(request(&spans))
    })
}

/// The number of spans in a request.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// One request per run, as Dify 1.20's own export sends them (see
/// [`crate::dify_export`]), in run order.
pub fn dify_export_requests(
    config: &GenConfig,
    dialect: crate::dify_export::Dialect,
) -> impl Iterator<Item = ExportTraceServiceRequest> + use<> {
    plans(config).map(move |plan| {
        crate::dify_export::request(&crate::dify_export::from_plan(&plan), dialect)
    })
}

/// Spans → one request: all generated spans share one resource and scope.
pub(crate) fn request_of(spans: &[OtelSpan]) -> ExportTraceServiceRequest {
    request(spans)
}

fn request(spans: &[OtelSpan]) -> ExportTraceServiceRequest {
    let (resource, scope) = spans
        .first()
        .map(|s| (s.resource_attributes.clone(), s.scope_name.clone()))
        .unwrap_or_default();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: attributes(&resource),
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope,
                    ..InstrumentationScope::default()
                }),
                spans: spans.iter().map(proto_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn proto_span(s: &OtelSpan) -> Span {
    let bytes = |hex: &str| hex::decode(hex).unwrap_or_default();
    Span {
        trace_id: bytes(&s.trace_id),
        span_id: bytes(&s.span_id),
        parent_span_id: s.parent_span_id.as_deref().map(bytes).unwrap_or_default(),
        trace_state: s.trace_state.clone(),
        name: s.name.clone(),
        kind: match s.kind {
            OtelKind::Unspecified => span::SpanKind::Unspecified,
            OtelKind::Internal => span::SpanKind::Internal,
            OtelKind::Server => span::SpanKind::Server,
            OtelKind::Client => span::SpanKind::Client,
            OtelKind::Producer => span::SpanKind::Producer,
            OtelKind::Consumer => span::SpanKind::Consumer,
        } as i32,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: attributes(&s.attributes),
        events: s
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: attributes(&e.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        status: Some(Status {
            message: s.status_message.clone(),
            code: match s.status_code {
                StatusCode::Unset => status::StatusCode::Unset,
                StatusCode::Ok => status::StatusCode::Ok,
                StatusCode::Error => status::StatusCode::Error,
            } as i32,
        }),
        flags: 256,
        ..Span::default()
    }
}

fn attributes(items: &[(String, AttrValue)]) -> Vec<KeyValue> {
    items
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(value(v)),
            ..KeyValue::default()
        })
        .collect()
}

fn value(v: &AttrValue) -> AnyValue {
    use any_value::Value as V;
    let inner = match v {
        AttrValue::Empty => None,
        AttrValue::Str(s) => Some(V::StringValue(s.clone())),
        AttrValue::Bool(b) => Some(V::BoolValue(*b)),
        AttrValue::Int(i) => Some(V::IntValue(*i)),
        AttrValue::Double(d) => Some(V::DoubleValue(*d)),
        AttrValue::Bytes(b) => Some(V::BytesValue(b.clone())),
        AttrValue::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.iter().map(value).collect(),
        })),
        AttrValue::Map(items) => Some(V::KvlistValue(KeyValueList {
            values: attributes(items),
        })),
    };
    AnyValue { value: inner }
}
