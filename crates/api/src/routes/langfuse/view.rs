//! Spans shown in Langfuse's read shapes (trace, observation, score), with
//! every field the Langfuse SDKs require present.
//!
//! Stored text comes back as JSON where it is JSON: `input`/`output` that
//! hold an object or array are parsed, other text stays a string; the
//! `metadata.<key>` attributes become the `metadata` object.

use chrono::{DateTime, SecondsFormat};
use loupe_model::{Span, SpanKind, Status};
use loupe_normalise::langfuse::{OBSERVATION_TYPE_ATTR, SCORE_NODE_TYPE, TAGS_ATTR};
use serde_json::{Map, Value, json};

/// ns since the epoch → RFC 3339 with milliseconds (`…Z`).
pub(super) fn iso(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_iso(ns: Option<i64>) -> Value {
    ns.map_or(Value::Null, |t| Value::String(iso(t)))
}

/// Stored input/output text → JSON (objects and arrays parsed back).
fn io(text: &Option<String>) -> Value {
    match text.as_deref() {
        None => Value::Null,
        Some(t) if t.starts_with('{') || t.starts_with('[') => {
            serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_owned()))
        }
        Some(t) => Value::String(t.to_owned()),
    }
}

/// An attribute's stored text → JSON (JSON text parsed, else a string).
fn attr_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::String(_)) | Err(_) => Value::String(text.to_owned()),
        Ok(v) => v,
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.get(key).map(String::as_str)
}

fn metadata(span: &Span) -> Value {
    let map: Map<String, Value> = span
        .attributes
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata.")?.to_owned(), attr_value(v))))
        .collect();
    Value::Object(map)
}

/// Whether the span holds a score.
pub(super) fn is_score(span: &Span) -> bool {
    span.node_type.as_deref() == Some(SCORE_NODE_TYPE)
}

/// The Langfuse trace id of a span.
pub(super) fn trace_id_of(span: &Span) -> &str {
    span.trace_id.as_deref().unwrap_or(&span.span_id)
}

fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// Roll-ups of a trace's observations.
#[derive(Debug, Default)]
pub(super) struct TraceStats {
    /// Observation ids, by start time.
    pub observation_ids: Vec<String>,
    /// Score ids.
    pub score_ids: Vec<String>,
    /// Sum of observation costs (USD).
    pub total_cost: f64,
    /// Earliest start and latest end over the trace.
    pub first_start: Option<i64>,
    pub last_end: Option<i64>,
}

impl TraceStats {
    pub(super) fn add(&mut self, span: &Span) {
        if is_score(span) {
            self.score_ids.push(span.span_id.clone());
            return;
        }
        self.observation_ids.push(span.span_id.clone());
        self.total_cost += span.cost.unwrap_or(0.0);
        self.first_start = match (self.first_start, span.start_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end = self.last_end.max(span.end_time);
    }
}

/// A trace (the root span) in Langfuse's `Trace` shape plus `htmlPath`,
/// `latency` (seconds), `totalCost` and the observation and score ids.
pub(super) fn trace(root: &Span, stats: &TraceStats, project: &str) -> Value {
    let id = trace_id_of(root);
    let start = root.start_time.or(stats.first_start).unwrap_or(0);
    let end = stats.last_end.max(root.end_time);
    let latency = end.map(|e| seconds(e.saturating_sub(start).max(0)));
    let tags = attr(root, TAGS_ATTR)
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .unwrap_or_else(|| json!([]));
    json!({
        "id": id,
        "timestamp": iso(start),
        "name": root.name,
        "input": io(&root.input),
        "output": io(&root.output),
        "sessionId": root.session_id,
        "userId": root.user_id,
        "release": attr(root, "langfuse.release"),
        "version": attr(root, "langfuse.version").or(root.workflow_version.as_deref()),
        "metadata": metadata(root),
        "tags": tags,
        "public": attr(root, "langfuse.public") == Some("true"),
        "bookmarked": false,
        "environment": attr(root, "langfuse.environment").unwrap_or("default"),
        "externalId": attr(root, "langfuse.external_id"),
        "projectId": project,
        "htmlPath": format!("/project/{project}/traces/{id}"),
        "latency": latency,
        "totalCost": stats.total_cost,
        "observations": stats.observation_ids,
        "scores": stats.score_ids,
        "createdAt": iso(start),
        "updatedAt": iso(end.unwrap_or(start)),
        "runId": root.run_id,
        "status": root.status.map(Status::as_str),
        "errorMessage": root.error_message,
    })
}

/// The Langfuse type of a span: what the sender said, else from its kind.
pub(super) fn observation_type(span: &Span) -> String {
    if let Some(t) = attr(span, OBSERVATION_TYPE_ATTR) {
        return t.to_owned();
    }
    match span.span_kind {
        Some(SpanKind::Llm) => "GENERATION",
        Some(SpanKind::Agent) => "AGENT",
        Some(SpanKind::Tool) => "TOOL",
        Some(SpanKind::Chain) => "CHAIN",
        Some(SpanKind::Retrieval) => "RETRIEVER",
        Some(SpanKind::Embedding) => "EMBEDDING",
        _ => "SPAN",
    }
    .to_owned()
}

/// The span kind a Langfuse type filter also matches (spans from other
/// sources have no stored Langfuse type).
pub(super) fn kind_of_type(t: &str) -> Option<SpanKind> {
    loupe_normalise::langfuse::ObservationType::parse(t).and_then(|t| t.span_kind())
}

/// An observation in Langfuse's `ObservationsView` shape.
pub(super) fn observation(span: &Span, project: &str) -> Value {
    let trace_id = trace_id_of(span);
    let parent = span.parent_span_id.as_deref().filter(|p| *p != trace_id);
    let level = attr(span, "langfuse.level")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if span.status == Some(Status::Error) {
                "ERROR"
            } else {
                "DEFAULT"
            }
            .to_owned()
        });
    let status_message = attr(span, "langfuse.status_message").or(span.error_message.as_deref());
    let (input, output) = (
        span.input_tokens.unwrap_or(0),
        span.output_tokens.unwrap_or(0),
    );
    let total = span.total_tokens.unwrap_or(input + output);
    let json_attr = |k: &str| attr(span, k).map(attr_value);
    let usage_details = json_attr("langfuse.usage_details")
        .unwrap_or_else(|| json!({ "input": input, "output": output, "total": total }));
    let cost_details = json_attr("langfuse.cost_details")
        .unwrap_or_else(|| span.cost.map_or(json!({}), |c| json!({ "total": c })));
    let completion_start = attr(span, "langfuse.completion_start_time")
        .and_then(loupe_normalise::langfuse::parse_time);
    json!({
        "id": span.span_id,
        "traceId": trace_id,
        "type": observation_type(span),
        "name": span.name,
        "startTime": opt_iso(span.start_time),
        "endTime": opt_iso(span.end_time),
        "completionStartTime": opt_iso(completion_start),
        "model": span.model_name,
        "modelParameters": json_attr("langfuse.model_parameters").unwrap_or_else(|| json!({})),
        "input": io(&span.input),
        "output": io(&span.output),
        "version": attr(span, "langfuse.version"),
        "metadata": metadata(span),
        "usage": { "input": input, "output": output, "total": total, "unit": "TOKENS" },
        "usageDetails": usage_details,
        "costDetails": cost_details,
        "level": level,
        "statusMessage": status_message,
        "parentObservationId": parent,
        "promptId": null,
        "promptName": attr(span, "langfuse.prompt_name"),
        "promptVersion": json_attr("langfuse.prompt_version"),
        "environment": attr(span, "langfuse.environment").unwrap_or("default"),
        "projectId": project,
        "modelId": null,
        "inputPrice": null,
        "outputPrice": null,
        "totalPrice": null,
        "promptTokens": input,
        "completionTokens": output,
        "totalTokens": total,
        "unit": "TOKENS",
        "calculatedInputCost": null,
        "calculatedOutputCost": null,
        "calculatedTotalCost": span.cost,
        "latency": span.duration_ns().map(seconds),
        "timeToFirstToken": completion_start
            .zip(span.start_time)
            .map(|(c, s)| seconds(c.saturating_sub(s))),
        "nodeType": span.node_type,
        "status": span.status.map(Status::as_str),
    })
}

/// A score span in Langfuse's `ScoreV1` shape.
pub(super) fn score(span: &Span, project: &str) -> Value {
    let data_type = attr(span, "score.data_type").unwrap_or("NUMERIC");
    let raw = attr(span, "score.value").unwrap_or_default();
    let number = raw.parse::<f64>().ok();
    let (value, string_value) = match data_type {
        "NUMERIC" => (json!(number), Value::Null),
        "BOOLEAN" => (
            json!(number),
            json!(if number == Some(1.0) { "True" } else { "False" }),
        ),
        _ => (Value::Null, json!(raw)),
    };
    let at = iso(span.start_time.unwrap_or(0));
    json!({
        "id": span.span_id,
        "traceId": trace_id_of(span),
        "observationId": attr(span, "score.observation_id"),
        "name": span.name,
        "value": value,
        "stringValue": string_value,
        "dataType": data_type,
        "source": attr(span, "score.source").unwrap_or("API"),
        "comment": attr(span, "score.comment"),
        "configId": attr(span, "score.config_id"),
        "metadata": metadata(span),
        "environment": attr(span, "langfuse.environment").unwrap_or("default"),
        "authorUserId": null,
        "queueId": null,
        "timestamp": at,
        "createdAt": at,
        "updatedAt": at,
        "projectId": project,
    })
}
