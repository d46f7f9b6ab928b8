//! `trace-create` → the run's root span.
//!
//! Start time: `body.timestamp`; else, for Dify, the run input's
//! `sys.timestamp` (the run start in whole seconds: Dify sends the trace
//! after the run, without a timestamp); else the event time, but only for a
//! body that names the trace (`name` or `input`), so that an update-only
//! upsert (the v2 SDK's `trace.update()` sends `{id, output}`) never moves
//! an existing start.

use loupe_model::{Span, SpanKind};
use serde_json::Value;

use super::body::Body;
use super::dify::{Meta, map_status};
use super::{TAGS_ATTR, fill, new_span};
use crate::ItemError;

pub(super) fn map(
    project: &str,
    body: &Body<'_>,
    event_time: Option<i64>,
) -> Result<Span, ItemError> {
    let id = body
        .id("id")?
        .ok_or_else(|| ItemError::new("body.id", "required: the trace id"))?;
    let mut out = new_span(project, id.clone());
    out.trace_id = Some(id.clone());
    out.span_kind = Some(SpanKind::Workflow);
    out.name = body.text("name")?;
    out.user_id = body.scalar("userId");
    out.session_id = body.scalar("sessionId");
    out.input = body.json_text("input");
    out.output = body.json_text("output");
    let metadata = body.object("metadata").ok().flatten();
    let meta = Meta::new(metadata);

    out.start_time = body.time("timestamp")?;
    if out.start_time.is_none() && (out.name.is_some() || out.input.is_some()) {
        out.start_time = dify_run_start(body).or(event_time);
    }

    if let Some(tags) = body.string_list("tags")? {
        out.attributes
            .insert(TAGS_ATTR.to_owned(), Value::from(tags).to_string());
    }
    for (key, attr) in [
        ("release", "langfuse.release"),
        ("version", "langfuse.version"),
        ("environment", "langfuse.environment"),
        ("public", "langfuse.public"),
        ("externalId", "langfuse.external_id"),
        ("bookmarked", "langfuse.bookmarked"),
    ] {
        body.copy_attr(key, attr, &mut out.attributes);
    }
    body.flatten_metadata(&mut out.attributes);

    // Dify: the run's identity, app and outcome.
    out.run_id = meta.text("workflow_run_id").or_else(|| Some(id.clone()));
    out.app_id = meta.text("app_id");
    out.app_name = meta.text("app_name");
    out.workflow_id = meta.text("workflow_id");
    if out.workflow_id.is_some() {
        out.workflow_version = meta.text("version").or_else(|| body.scalar("version"));
    }
    fill(&mut out.user_id, || meta.text("user_id"));
    fill(&mut out.session_id, || meta.text("conversation_id"));
    out.model_name = meta.text("ls_model_name");
    out.model_provider = meta.text("ls_provider");
    if let Some(raw) = meta.raw_status() {
        out.status = map_status(&raw);
        out.raw_status = Some(raw);
    }
    if let Some(error) = meta.text("error") {
        out.error_message = Some(error);
    }
    // Dify sends the trace without an end; its run's `elapsed_time`
    // (seconds) gives one, so Langfuse-path runs have a duration.
    if out.end_time.is_none()
        && let (Some(start), Some(elapsed)) = (out.start_time, meta.amount("elapsed_time"))
        && let Some(end) = start.checked_add((elapsed * 1e9).round() as i64)
    {
        out.end_time = Some(end);
    }
    Ok(out)
}

/// Dify's `sys.timestamp` run input (Unix seconds) as ns.
fn dify_run_start(body: &Body<'_>) -> Option<i64> {
    let input = body.get("input")?.as_object()?;
    let secs = input.get("sys.timestamp")?.as_i64()?;
    // Only plausible Unix times (after 2001) count.
    (secs > 1_000_000_000).then(|| secs.checked_mul(1_000_000_000))?
}
