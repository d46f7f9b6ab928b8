//! Dify ≥ 1.20's own trace export: the generic OpenTelemetry provider
//! (`dify.*` attributes on every span, beside OpenInference and GenAI) and
//! the Langfuse provider's OTLP (Dify's keys under
//! `langfuse.observation.metadata.`, values as text), plus the unified
//! adapter both 1.19+ OTLP providers share (`dify.span.id` and a `metadata`
//! JSON with `node_execution_id`).
//!
//! **Identity.** Dify's ids are the join keys with the database sync and the
//! Langfuse batch path (`loupe-dify`'s `map` module), so a span that names
//! them is stored under them and the three sources merge into one run:
//!
//! - span id: `dify.node.execution_id` (a node), else the run id for the
//!   run span, else the message id for the message span, else
//!   `dify.span.id` (iteration wrappers and task spans: stable across
//!   retries);
//! - trace id: the message id (chat and chatflow turns), else the run id;
//! - run id: `dify.workflow.run_id`, else the message id.
//!
//! The OTLP ids as sent are kept in `otel.trace_id` / `otel.span_id`; the
//! parent (an OTLP id) is resolved by [`super::link()`] within the request and
//! through a bounded cache of recent ids, since one provider sends a span
//! per request and nested workflows arrive as late traces.

use loupe_model::{Span, SpanKind, Status};
use serde_json::Value;

use super::attrs::{Bag, to_json};
use super::dify::{Metadata, Role, kind_of_node};
use super::{AttrValue, Attributes, fill};
use crate::dify::is_container;

/// Where the Langfuse OTLP dialect puts observation metadata.
const LANGFUSE_METADATA: &str = "langfuse.observation.metadata.";

/// Attributes that only Dify's 1.19+ export writes.
const MARKERS: [&str; 5] = [
    "dify.workflow.run_id",
    "dify.node.execution_id",
    "dify.span.id",
    "dify.span.type",
    "dify.message.id",
];

/// Span types that say nothing about the node type.
const GENERIC_TYPES: [&str; 6] = [
    "operation",
    "node",
    "workflow",
    "chatflow",
    "message",
    "span",
];

/// The Langfuse dialect's metadata renamed to the vocabulary of the other
/// paths: `langfuse.observation.metadata.dify.X` → `dify.X` (the generic
/// provider's keys), any other `langfuse.observation.metadata.K` →
/// `metadata.K` (as Dify's metadata is flattened everywhere), and
/// `langfuse.trace.tags` → `langfuse.tags` (as the batch API stores them).
/// `None` when nothing is renamed (no copy).
pub(super) fn renamed(attributes: &Attributes) -> Option<Attributes> {
    let renames = |key: &str| key.starts_with(LANGFUSE_METADATA) || key == "langfuse.trace.tags";
    if !attributes.iter().any(|(k, _)| renames(k)) {
        return None;
    }
    Some(
        attributes
            .iter()
            .map(|(key, value)| {
                let key = match key.strip_prefix(LANGFUSE_METADATA) {
                    Some(rest) if rest.starts_with("dify.") => rest.to_owned(),
                    Some(rest) => format!("metadata.{rest}"),
                    None if key == "langfuse.trace.tags" => crate::langfuse::TAGS_ATTR.to_owned(),
                    None => key.clone(),
                };
                (key, value.clone())
            })
            .collect(),
    )
}

/// Whether the span carries the 1.19+ export's markers.
pub(super) fn is_export(bag: &Bag<'_>) -> bool {
    MARKERS.iter().any(|k| bag.contains(k))
}

/// What the export said that later steps need.
#[derive(Debug, Default)]
pub(super) struct Export {
    /// `dify.span.status` (`ok | error | handled_error | cancelled |
    /// incomplete`), the status the error mapping uses first.
    pub(super) status: Option<String>,
    /// `error.message`.
    pub(super) error: Option<String>,
    /// The run span (a workflow's handled errors leave it successful).
    pub(super) is_run: bool,
    /// Usage here is a sum of other spans' (the run, a chatflow turn, an
    /// iteration or loop, the `llm` twin of a chat turn): kept as
    /// attributes only, so nothing is counted twice.
    pub(super) aggregate: bool,
    /// The OTLP ids were replaced by Dify's.
    pub(super) rewritten: bool,
}

impl Export {
    /// Dify's export status → [`Status`]. A handled error fails its node
    /// (as the database's `exception` does) but not the run; a cancelled
    /// span failed (the database's `stopped`); an incomplete one has not
    /// finished.
    pub(super) fn mapped_status(&self) -> Option<Status> {
        Some(match self.status.as_deref()? {
            "ok" => Status::Ok,
            "handled_error" if self.is_run => Status::Ok,
            "error" | "handled_error" | "cancelled" => Status::Error,
            "incomplete" => Status::Running,
            _ => return None,
        })
    }
}

/// Applies Dify's identity and run fields. Runs before the conventions,
/// so Dify's values win.
pub(super) fn apply(
    role: Role,
    meta: Option<&Metadata>,
    bag: &mut Bag<'_>,
    sent_name: &str,
    out: &mut Span,
) -> Export {
    let meta_text = |key: &str| meta.and_then(|m| m.text(key));
    let node_exec = bag
        .take_text("dify.node.execution_id")
        .or_else(|| meta_text("node_execution_id"))
        .or_else(|| phoenix_node_execution(role, meta));
    let run = bag
        .take_text("dify.workflow.run_id")
        .or_else(|| meta_text("workflow_run_id"));
    let message = bag
        .take_text("dify.message.id")
        .or_else(|| meta_text("message_id"));
    let dify_span = bag.take_text("dify.span.id");
    // Kept verbatim: it is useful to filter on and not a first-class field.
    let span_type = bag.peek_text("dify.span.type").unwrap_or_default();
    let entity = meta_text("trace_entity_type").unwrap_or_default();

    let is_run = node_exec.is_none()
        && run.as_ref().is_some_and(|run| {
            span_type == "workflow"
                || role == Role::Workflow
                || dify_span.as_ref() == Some(run)
                || sent_name == format!("workflow_{run}")
        });
    let is_message = !is_run
        && node_exec.is_none()
        && message.as_ref().is_some_and(|message| {
            span_type == "message"
                || entity == "message"
                || dify_span.as_ref() == Some(message)
                || sent_name == "message"
                || sent_name.starts_with("chatflow_")
        });
    let span_id = node_exec
        .clone()
        .or_else(|| run.clone().filter(|_| is_run))
        .or_else(|| message.clone().filter(|_| is_message))
        .or_else(|| dify_span.clone());
    let trace_id = message.clone().or_else(|| run.clone());
    let mut export = Export {
        is_run,
        ..Export::default()
    };
    if let Some(id) = span_id.filter(|id| *id != out.span_id) {
        out.attributes.insert(
            "otel.span_id".into(),
            std::mem::replace(&mut out.span_id, id),
        );
        export.rewritten = true;
    }
    if let Some(trace) = trace_id {
        if let Some(sent) = out.trace_id.replace(trace) {
            out.attributes.insert("otel.trace_id".into(), sent);
        }
        export.rewritten = true;
    }
    if export.rewritten && !out.attributes.contains_key("otel.span_id") {
        out.attributes
            .insert("otel.span_id".into(), out.span_id.clone());
    }
    out.run_id = run.clone().or_else(|| message.clone());

    fill(&mut out.app_id, || bag.take_text("dify.app_id"));
    fill(&mut out.workflow_id, || bag.take_text("dify.workflow.id"));
    fill(&mut out.workflow_version, || {
        bag.take_first_text(&["dify.workflow.version", "langfuse.version"])
    });
    fill(&mut out.user_id, || bag.take_text("dify.user.id"));
    fill(&mut out.session_id, || {
        bag.take_first_text(&["dify.session.id", "dify.conversation.id"])
    });
    fill(&mut out.node_type, || bag.take_text("dify.node.type"));
    if node_exec.is_some() && !GENERIC_TYPES.contains(&span_type.as_str()) && !span_type.is_empty()
    {
        fill(&mut out.node_type, || Some(span_type.clone()));
    }
    fill(&mut out.input, || bag.take_text("dify.inputs"));
    fill(&mut out.output, || bag.take_text("dify.outputs"));
    export.status = bag.take_text("dify.span.status");
    export.error = bag.take_text("error.message");

    // Names as the database sync gives them.
    if is_run {
        out.name = Some("workflow".into());
        out.span_kind = Some(SpanKind::Workflow);
    } else if is_message {
        out.name = Some("message".into());
        if run.is_some() {
            out.span_kind = Some(SpanKind::Workflow);
        }
    } else if let Some(node_type) = out.node_type.clone() {
        out.span_kind = Some(kind_of_node(&node_type));
        let title = out.name.as_deref().unwrap_or(sent_name);
        if let Some(stripped) = title.strip_prefix(&format!("{node_type}_"))
            && !stripped.is_empty()
        {
            out.name = Some(stripped.to_owned());
        }
    }
    let container = out.node_type.as_deref().is_some_and(is_container);
    // The chat turn's `{message}:llm` child repeats the turn's usage, which
    // the database (and this mapping) keeps on the turn itself.
    let llm_twin = run.is_none() && dify_span.as_deref().is_some_and(|id| id.ends_with(":llm"));
    export.aggregate = is_run || (is_message && run.is_some()) || container || llm_twin;
    if !export.aggregate {
        usage(bag, out);
    }
    export
}

/// The execution id a node span of the Phoenix/Arize provider (Dify ≤ 1.18)
/// names: its `metadata.node_id` is the node *execution* id (the recorded
/// 1.14.1 traffic gives the same graph node a new id in every run), which
/// is the database sync's span id. Only a UUID is taken: a graph node id
/// (`1711528914102`, `llm`) is shared by every execution of that node, and
/// keying on it would fold an iteration's executions into one span.
fn phoenix_node_execution(role: Role, meta: Option<&Metadata>) -> Option<String> {
    if role != Role::Node {
        return None;
    }
    meta?
        .text("node_id")
        .filter(|id| uuid::Uuid::try_parse(id).is_ok())
}

/// Stores a node span of Dify's own `ENABLE_OTEL` instrumentation under its
/// `node.execution_id`, the database sync's id for the node, so the two
/// are one span. Its trace and run stay the OTel trace's (the span names no
/// run); the database's copy, when synced, brings the run's. The attribute
/// stays: it is how people look the node up in Dify. The OTLP id is kept
/// in `otel.span_id`, and [`super::link()`] gives the node's HTTP and
/// database children (which name that id) the new parent.
pub(super) fn rekey_self_instrumented(bag: &Bag<'_>, out: &mut Span) {
    let Some(exec) = bag
        .peek_text("node.execution_id")
        .filter(|id| !id.is_empty() && id.len() <= 128 && *id != out.span_id)
    else {
        return;
    };
    out.attributes.insert(
        "otel.span_id".into(),
        std::mem::replace(&mut out.span_id, exec),
    );
}

/// Places the Phoenix/Arize provider's per-trace root span (Role::Root) in
/// Dify's trace: its `dify_trace_id` (already the span's `run_id`) is the
/// trace id the database sync gives the run (the run id, or a chat turn's
/// message id). The OTLP ids stay in `otel.trace_id` / `otel.span_id`, so
/// [`super::link()`] moves the rest of the OTLP trace there too: the
/// provider sends this span first, one span per request.
pub(super) fn place_root(out: &mut Span) {
    let Some(dify_trace) = out.run_id.clone() else {
        return;
    };
    out.attributes
        .insert("otel.span_id".into(), out.span_id.clone());
    if let Some(sent) = out.trace_id.replace(dify_trace) {
        out.attributes.insert("otel.trace_id".into(), sent);
    }
}

/// `dify.usage` (a map, or its JSON text) → tokens and price.
fn usage(bag: &mut Bag<'_>, out: &mut Span) {
    let Some(map) = bag.take_with("dify.usage", |value| match value {
        AttrValue::Map(_) => match to_json(value) {
            Value::Object(map) => Some(map),
            _ => None,
        },
        AttrValue::Str(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) if !map.is_empty() => Some(map),
            _ => None,
        },
        _ => None,
    }) else {
        return;
    };
    let count = |keys: &[&str]| {
        keys.iter().find_map(|k| match map.get(*k)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    fill(&mut out.input_tokens, || {
        count(&["prompt_tokens", "input_tokens", "input"])
    });
    fill(&mut out.output_tokens, || {
        count(&["completion_tokens", "output_tokens", "output"])
    });
    fill(&mut out.total_tokens, || count(&["total_tokens", "total"]));
    let price = ["total_price", "cost", "total_cost"]
        .iter()
        .find_map(|k| match map.get(*k)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|p: &f64| p.is_finite() && *p >= 0.0);
    if out.cost.is_none()
        && let Some(price) = price
    {
        out.cost = Some(price);
        let currency = map
            .get("currency")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .or_else(|| bag.take_text("dify.cost.currency"));
        fill(&mut out.currency, || {
            currency.or_else(|| Some("USD".into()))
        });
    }
}

/// After every convention had its say: a tool node without a tool name is
/// named by its title, and usage the span only sums (see
/// [`Export::aggregate`]) moves into `dify.aggregate.*` attributes.
pub(super) fn finish(export: &Export, out: &mut Span) {
    if export.rewritten && out.span_kind == Some(SpanKind::Tool) {
        fill(&mut out.tool_name, || out.name.clone());
    }
    if !export.aggregate {
        return;
    }
    let counts = [
        ("input_tokens", out.input_tokens.take()),
        ("output_tokens", out.output_tokens.take()),
        ("total_tokens", out.total_tokens.take()),
    ];
    for (key, value) in counts {
        if let Some(value) = value {
            out.attributes
                .insert(format!("dify.aggregate.{key}"), value.to_string());
        }
    }
    if let Some(cost) = out.cost.take() {
        out.attributes
            .insert("dify.aggregate.cost".into(), cost.to_string());
        out.currency = None;
    }
}
