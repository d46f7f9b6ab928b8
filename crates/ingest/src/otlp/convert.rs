//! Protobuf OTLP types → source-neutral [`OtelSpan`]s, each with its path in
//! the request for error reporting.

use loupe_normalise::otel::{
    AttrValue, Attributes, OtelEvent, OtelKind, OtelLink, OtelSpan, StatusCode,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, span, status};

/// Every span of the request, in order, with its path
/// (`resourceSpans[r].scopeSpans[s].spans[i]`, `i` as `index(r, s, i)`
/// gives it: the span's position as sent, when some were dropped).
pub(super) fn spans(
    request: ExportTraceServiceRequest,
    index: impl Fn(usize, usize, usize) -> usize,
) -> Vec<(String, OtelSpan)> {
    let mut out = Vec::new();
    for (r, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let resource = resource_spans
            .resource
            .map(|res| attributes(res.attributes))
            .unwrap_or_default();
        for (s, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
            let (scope_name, scope_version) = scope_spans
                .scope
                .map(|scope| (scope.name, scope.version))
                .unwrap_or_default();
            for (i, proto) in scope_spans.spans.into_iter().enumerate() {
                let mut otel = span(proto);
                otel.resource_attributes = resource.clone();
                otel.scope_name = scope_name.clone();
                otel.scope_version = scope_version.clone();
                let i = index(r, s, i);
                out.push((
                    format!("resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"),
                    otel,
                ));
            }
        }
    }
    out
}

fn span(proto: ProtoSpan) -> OtelSpan {
    let (status_code, status_message) = proto
        .status
        .map(|st| (status_code(st.code), st.message))
        .unwrap_or_default();
    OtelSpan {
        trace_id: hex::encode(&proto.trace_id),
        span_id: hex::encode(&proto.span_id),
        parent_span_id: (!proto.parent_span_id.is_empty())
            .then(|| hex::encode(&proto.parent_span_id)),
        trace_state: proto.trace_state,
        name: proto.name,
        kind: kind(proto.kind),
        start_time_unix_nano: proto.start_time_unix_nano,
        end_time_unix_nano: proto.end_time_unix_nano,
        status_code,
        status_message,
        attributes: attributes(proto.attributes),
        events: proto
            .events
            .into_iter()
            .map(|event| OtelEvent {
                name: event.name,
                time_unix_nano: event.time_unix_nano,
                attributes: attributes(event.attributes),
            })
            .collect(),
        links: proto
            .links
            .into_iter()
            .map(|link| OtelLink {
                trace_id: hex::encode(&link.trace_id),
                span_id: hex::encode(&link.span_id),
                trace_state: link.trace_state,
                attributes: attributes(link.attributes),
            })
            .collect(),
        resource_attributes: Attributes::new(),
        scope_name: String::new(),
        scope_version: String::new(),
    }
}

fn kind(code: i32) -> OtelKind {
    match span::SpanKind::try_from(code) {
        Ok(span::SpanKind::Internal) => OtelKind::Internal,
        Ok(span::SpanKind::Server) => OtelKind::Server,
        Ok(span::SpanKind::Client) => OtelKind::Client,
        Ok(span::SpanKind::Producer) => OtelKind::Producer,
        Ok(span::SpanKind::Consumer) => OtelKind::Consumer,
        Ok(span::SpanKind::Unspecified) | Err(_) => OtelKind::Unspecified,
    }
}

fn status_code(code: i32) -> StatusCode {
    match status::StatusCode::try_from(code) {
        Ok(status::StatusCode::Ok) => StatusCode::Ok,
        Ok(status::StatusCode::Error) => StatusCode::Error,
        Ok(status::StatusCode::Unset) | Err(_) => StatusCode::Unset,
    }
}

pub(crate) fn attributes(items: Vec<KeyValue>) -> Attributes {
    items
        .into_iter()
        .map(|kv| (kv.key, kv.value.map(value).unwrap_or_default()))
        .collect()
}

pub(crate) fn value(any: AnyValue) -> AttrValue {
    match any.value {
        None | Some(Value::StringValueStrindex(_)) => AttrValue::Empty,
        Some(Value::StringValue(s)) => AttrValue::Str(s),
        Some(Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(Value::IntValue(i)) => AttrValue::Int(i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(d),
        Some(Value::BytesValue(b)) => AttrValue::Bytes(b),
        Some(Value::ArrayValue(array)) => {
            AttrValue::Array(array.values.into_iter().map(value).collect())
        }
        Some(Value::KvlistValue(list)) => AttrValue::Map(attributes(list.values)),
    }
}
