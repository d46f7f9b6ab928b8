//! `score-create` → a `score` span under the scored observation or trace.
//!
//! The span id is the score's `id` (else the event id, so a re-sent batch
//! upserts the same row). The value is kept as text in `score.value` (and in
//! `output`); `score.data_type` is the given `dataType` or inferred:
//! numbers → `NUMERIC`, booleans → `BOOLEAN` (stored as 1/0), strings →
//! `CATEGORICAL`. Scores of sessions or dataset runs alone (no `traceId`
//! and no `observationId`) are rejected: Loupe files scores under a trace.

use loupe_model::{Span, SpanKind};
use serde_json::Value;

use super::body::Body;
use super::{Event, SCORE_NODE_TYPE, fill, new_span};
use crate::ItemError;

pub(super) fn map(project: &str, event: &Event<'_>, body: &Body<'_>) -> Result<Span, ItemError> {
    let id = body.id("id")?.unwrap_or_else(|| event.id.to_owned());
    let name = body
        .id("name")?
        .ok_or_else(|| ItemError::new("body.name", "required: the score name"))?;
    let trace_id = body.id("traceId")?;
    let observation_id = body.id("observationId")?;
    if trace_id.is_none() && observation_id.is_none() {
        return Err(ItemError::new(
            "body.traceId",
            "required: Loupe stores scores of a trace or observation (session and dataset-run scores are not supported)",
        ));
    }
    let given_type = body.scalar("dataType").map(|t| t.to_ascii_uppercase());
    let value = body
        .get("value")
        .ok_or_else(|| ItemError::new("body.value", "required: the score value"))?;
    let (value, inferred) = match value {
        Value::Number(n) => (n.to_string(), "NUMERIC"),
        Value::Bool(b) => (u8::from(*b).to_string(), "BOOLEAN"),
        Value::String(s) => (s.clone(), "CATEGORICAL"),
        _ => {
            return Err(ItemError::new(
                "body.value",
                "must be a number, a string or a boolean",
            ));
        }
    };
    let data_type = given_type.unwrap_or_else(|| inferred.to_owned());
    match data_type.as_str() {
        "NUMERIC" if inferred != "NUMERIC" => {
            return Err(ItemError::new(
                "body.value",
                "a NUMERIC score needs a number",
            ));
        }
        "BOOLEAN" if !matches!(value.as_str(), "0" | "1" | "0.0" | "1.0") => {
            return Err(ItemError::new("body.value", "a BOOLEAN score is 0 or 1"));
        }
        "NUMERIC" | "BOOLEAN" | "CATEGORICAL" | "TEXT" | "CORRECTION" => {}
        other => {
            return Err(ItemError::new(
                "body.dataType",
                format!(
                    "unknown data type {other:?}: use NUMERIC, CATEGORICAL, BOOLEAN, TEXT or CORRECTION"
                ),
            ));
        }
    }

    let mut out = new_span(project, id);
    out.span_kind = Some(SpanKind::Other);
    out.node_type = Some(SCORE_NODE_TYPE.to_owned());
    out.name = Some(name);
    out.parent_span_id = observation_id.clone().or_else(|| trace_id.clone());
    out.trace_id = trace_id;
    out.session_id = body.scalar("sessionId");
    out.start_time = body.time("timestamp")?;
    fill(&mut out.start_time, || event.timestamp);
    out.end_time = out.start_time;
    out.output = Some(value.clone());
    let attrs = &mut out.attributes;
    attrs.insert("score.value".into(), value);
    attrs.insert("score.data_type".into(), data_type);
    attrs.insert(
        "score.source".into(),
        body.scalar("source").unwrap_or_else(|| "API".to_owned()),
    );
    if let Some(o) = observation_id {
        attrs.insert("score.observation_id".into(), o);
    }
    for (key, attr) in [
        ("comment", "score.comment"),
        ("configId", "score.config_id"),
        ("environment", "langfuse.environment"),
    ] {
        body.copy_attr(key, attr, attrs);
    }
    body.flatten_metadata(attrs);
    Ok(out)
}
