//! Observation creates and updates → child spans.
//!
//! Status and error, in order:
//! 1. Dify metadata `node_status`/`status` (a known value) decides the
//!    status. Dify's quirk: on a failed run *every* node carries the run's
//!    error in `statusMessage` (and `level` follows the node's status), so
//!    `error_message` is set only when the node itself failed. A non-empty
//!    `statusMessage` on any Dify node is the run's error: it is also
//!    written to the run span (the parent, else the trace root) as a
//!    partial update.
//! 2. Otherwise `level` `ERROR` → error, with `statusMessage` as the error.
//! 3. Otherwise a known end time → ok. Nothing is said before that, so a
//!    create arriving after its update never resets the outcome.

use loupe_model::{Span, SpanKind, Status};

use super::body::Body;
use super::dify::{Meta, is_container, kind_of_node, map_status};
use super::{OBSERVATION_TYPE_ATTR, ObservationType, fill, new_span, usage};
use crate::ItemError;

pub(super) fn map(
    project: &str,
    kind: ObservationType,
    update: bool,
    body: &Body<'_>,
    event_time: Option<i64>,
) -> Result<Vec<Span>, ItemError> {
    let id = body
        .id("id")?
        .ok_or_else(|| ItemError::new("body.id", "required: the observation id"))?;
    let mut out = new_span(project, id.clone());
    out.trace_id = body.id("traceId")?;
    let parent = body.id("parentObservationId")?;
    out.parent_span_id = match parent {
        Some(p) => Some(p),
        // A create hangs under its trace; an update never moves a span.
        None if !update => out.trace_id.clone().filter(|t| *t != id),
        None => None,
    };
    out.name = body.text("name")?;
    out.start_time = body.time("startTime")?;
    out.end_time = body.time("endTime")?;
    if !update {
        fill(&mut out.start_time, || event_time);
    }
    if kind == ObservationType::Event {
        fill(&mut out.end_time, || out.start_time);
    }
    out.input = body.json_text("input");
    out.output = body.json_text("output");
    out.model_name = body.scalar("model");
    let level = body.scalar("level").map(|l| l.to_ascii_uppercase());
    let status_message = body.scalar("statusMessage");

    let attrs = &mut out.attributes;
    attrs.insert(OBSERVATION_TYPE_ATTR.to_owned(), kind.as_str().to_owned());
    for (key, attr) in [
        ("level", "langfuse.level"),
        ("statusMessage", "langfuse.status_message"),
        ("version", "langfuse.version"),
        ("environment", "langfuse.environment"),
        ("modelParameters", "langfuse.model_parameters"),
        ("completionStartTime", "langfuse.completion_start_time"),
        ("promptName", "langfuse.prompt_name"),
        ("promptVersion", "langfuse.prompt_version"),
    ] {
        body.copy_attr(key, attr, attrs);
    }
    body.time("completionStartTime")?;
    body.flatten_metadata(attrs);
    usage::apply(body, &mut out)?;

    let meta = Meta::new(body.object("metadata").ok().flatten());
    let node_type = meta.text("node_type");
    let run_id = meta.text("workflow_run_id");
    // Chatflow: Dify's span for the workflow run itself (id = run id).
    let is_dify_run = !update && node_type.is_none() && run_id.as_deref() == Some(id.as_str());

    out.span_kind = if is_dify_run {
        Some(SpanKind::Workflow)
    } else if let Some(t) = &node_type {
        Some(kind_of_node(t))
    } else if !update || kind != ObservationType::Span {
        Some(kind.span_kind().unwrap_or(SpanKind::Other))
    } else {
        None
    };
    out.node_type = if is_dify_run {
        None
    } else {
        node_type
            .clone()
            .or_else(|| (!update).then(|| kind.as_str().to_ascii_lowercase()))
    };
    out.run_id = run_id.clone().or_else(|| out.trace_id.clone());
    out.app_id = meta.text("app_id");
    out.app_name = meta.text("app_name");
    out.workflow_id = meta.text("workflow_id");
    fill(&mut out.model_name, || meta.text("model_name"));
    fill(&mut out.model_name, || meta.text("ls_model_name"));
    out.model_provider = meta
        .text("model_provider")
        .or_else(|| meta.text("ls_provider"));
    let counts_usage = node_type.as_deref().is_some_and(|t| !is_container(t));
    if counts_usage {
        fill(&mut out.input_tokens, || meta.count("prompt_tokens"));
        fill(&mut out.output_tokens, || meta.count("completion_tokens"));
        fill(&mut out.total_tokens, || meta.count("total_tokens"));
        if out.cost.is_none()
            && let Some(price) = meta.amount("total_price")
        {
            out.cost = Some(price);
            out.currency = meta.text("currency").or_else(|| Some("USD".to_owned()));
        }
    }
    if out.span_kind == Some(SpanKind::Tool) {
        fill(&mut out.tool_name, || out.name.clone());
    }

    let dify_status = meta
        .raw_status()
        .and_then(|raw| map_status(&raw).map(|s| (raw, s)));
    let mut extra = Vec::new();
    if let Some((raw, status)) = dify_status {
        out.status = Some(status);
        out.raw_status = Some(raw);
        if status == Status::Error {
            out.error_message = status_message.clone();
        }
        if !is_dify_run
            && let Some(error) = &status_message
            && let Some(run_span) = out.parent_span_id.clone().or(out.trace_id.clone())
        {
            let mut run = new_span(project, run_span);
            run.trace_id = out.trace_id.clone();
            run.error_message = Some(error.clone());
            extra.push(run);
        }
    } else if level.as_deref() == Some("ERROR") {
        out.status = Some(Status::Error);
        out.error_message = status_message;
    } else if out.end_time.is_some() {
        out.status = Some(Status::Ok);
    }
    let mut spans = vec![out];
    spans.extend(extra);
    Ok(spans)
}
