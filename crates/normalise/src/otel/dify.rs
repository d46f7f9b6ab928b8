//! Dify's markers on OpenTelemetry spans.
//!
//! - The Phoenix/Arize provider (OpenInference attributes) sends, per Dify
//!   trace, a tiny root span with `dify_trace_id` and `dify_project_name`; a
//!   workflow span (`workflow_{run_id}`) whose `metadata` JSON string holds
//!   the run (`workflow_run_id`, `workflow_id`, `status`, `version`,
//!   `user_id`, `app_id`, …); node spans (`{node_type}_{title}`) whose
//!   `metadata` holds `node_id`, `node_type`, `node_status`, `status`,
//!   `status_message`, `app_id` and `app_name` (which on nodes is the node
//!   *title*); and task spans (`message`, `llm`, tool, `moderation`, …)
//!   whose `metadata` has `trace_entity_type` / `created_from`.
//! - Dify's own `ENABLE_OTEL` instrumentation puts `node.type`, `node.id`,
//!   `node.execution_id` on node spans and `dify.app_id`, `dify.workflow_id`
//!   on app-runner spans.
//!
//! Node spans carry no run id: the run-level fields come from the workflow
//! and root spans of the same trace.

use loupe_model::{Span, SpanKind, Tags};
use serde_json::{Map, Value};

use super::attrs::{Bag, map_to_json};
use super::{AttrValue, OtelSpan, fill};

/// What a span is, as far as Dify's markers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// No Phoenix/Arize provider markers.
    Generic,
    /// The provider's per-trace root (`dify_trace_id`).
    Root,
    /// The workflow run span.
    Workflow,
    /// A workflow node execution.
    Node,
    /// Another provider span (message, llm, tool, moderation, …).
    Task,
    /// Dify's own `ENABLE_OTEL` span (node or app runner).
    SelfInstrumented,
    /// A span of Dify 1.19+'s trace export (`dify.span.id`,
    /// `dify.workflow.run_id`, …) that no `metadata` marker placed.
    Export,
}

impl Role {
    pub(super) fn detect(bag: &Bag<'_>, meta: Option<&Metadata>, span: &OtelSpan) -> Self {
        if bag.contains("dify_trace_id") {
            return Self::Root;
        }
        if let Some(meta) = meta {
            if meta.has("node_type") || meta.has("node_id") {
                return Self::Node;
            }
            let entity = meta.text("trace_entity_type");
            if entity.as_deref() == Some("workflow")
                || (entity.is_none()
                    && meta.has("workflow_run_id")
                    && span.name.starts_with("workflow"))
            {
                return Self::Workflow;
            }
            if entity.is_some() || meta.text("created_from").as_deref() == Some("Dify") {
                return Self::Task;
            }
        }
        if super::dify_export::is_export(bag) {
            return Self::Export;
        }
        let own = [
            "node.type",
            "node.execution_id",
            "dify.app_id",
            "dify.workflow_id",
        ];
        if own.iter().any(|k| bag.contains(k)) {
            return Self::SelfInstrumented;
        }
        Self::Generic
    }

    /// Whether the span is Dify's (any marker at all).
    pub(super) fn is_dify(self) -> bool {
        self != Self::Generic
    }

    /// Whether `run_id` is the trace id. The Phoenix/Arize provider names its
    /// run on the root and workflow spans, so its other spans get none and
    /// the store fills them by trace; every other trace is one run.
    pub(super) fn is_run_scoped_by_trace(self) -> bool {
        matches!(self, Self::Generic | Self::SelfInstrumented)
    }
}

/// The `metadata` attribute, parsed as a JSON object.
pub(super) struct Metadata(Map<String, Value>);

impl Metadata {
    /// Parses and consumes `metadata` when it is a JSON object (a string of
    /// JSON, or a key/value list). Anything else stays a plain attribute.
    pub(super) fn take(bag: &mut Bag<'_>) -> Option<Self> {
        bag.take_with("metadata", |value| match value {
            AttrValue::Str(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => Some(Self(map)),
                _ => None,
            },
            AttrValue::Map(items) => Some(Self(map_to_json(items))),
            _ => None,
        })
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Non-empty text of a scalar entry (numbers as their JSON text).
    pub(super) fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    fn i64(&self, key: &str) -> Option<i64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn f64(&self, key: &str) -> Option<f64> {
        match self.0.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|f: &f64| f.is_finite())
    }

    /// Dify's status text for this span (`node_status`, else `status`).
    pub(super) fn raw_status(&self) -> Option<String> {
        self.text("node_status").or_else(|| self.text("status"))
    }

    /// Writes every entry as `metadata.<key>`: strings verbatim, other
    /// values as JSON text.
    pub(super) fn flatten_into(&self, out: &mut Tags) {
        for (key, value) in &self.0 {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.entry(format!("metadata.{key}")).or_insert(text);
        }
    }
}

use crate::dify::is_container;
pub(super) use crate::dify::{kind_of_node, map_status};

/// Fields Dify's markers decide, before any convention.
pub(super) fn apply_primary(
    role: Role,
    meta: Option<&Metadata>,
    bag: &mut Bag<'_>,
    out: &mut Span,
) {
    match role {
        Role::Root => {
            out.run_id = bag.take_text("dify_trace_id");
            out.span_kind = Some(SpanKind::Chain);
        }
        Role::Workflow => {
            out.span_kind = Some(SpanKind::Workflow);
            if let Some(meta) = meta {
                out.run_id = meta.text("workflow_run_id");
                out.workflow_version = meta
                    .text("version")
                    .or_else(|| meta.text("workflow_run_version"));
            }
        }
        Role::Node => {
            if let Some(meta) = meta {
                out.node_type = meta.text("node_type");
                // On node spans `app_name` is the node title (a Dify quirk):
                // it is the display name, never the app name.
                if let Some(title) = meta.text("app_name") {
                    out.name = Some(title);
                }
            }
        }
        Role::SelfInstrumented => {
            out.node_type = bag.take_text("node.type");
            fill(&mut out.app_id, || bag.take_text("dify.app_id"));
            fill(&mut out.workflow_id, || bag.take_text("dify.workflow_id"));
        }
        Role::Task | Role::Generic | Role::Export => {}
    }
    if let Some(node_type) = &out.node_type {
        out.span_kind = Some(kind_of_node(node_type));
    }
    if let Some(meta) = meta.filter(|_| role.is_dify()) {
        fill(&mut out.app_id, || meta.text("app_id"));
        if role != Role::Node {
            fill(&mut out.app_name, || meta.text("app_name"));
            fill(&mut out.workflow_id, || meta.text("workflow_id"));
            fill(&mut out.user_id, || meta.text("user_id"));
        }
    }
}

/// Fields Dify's `metadata` offers when no convention set them: the model and
/// usage Dify copies into node metadata, and the node's price. The workflow
/// span's `total_tokens` (a sum over its nodes) and container nodes' usage
/// stay in `metadata.*` only.
pub(super) fn apply_fallback(role: Role, meta: Option<&Metadata>, out: &mut Span) {
    let Some(meta) = meta else { return };
    if role != Role::Node {
        return;
    }
    fill(&mut out.model_name, || meta.text("ls_model_name"));
    fill(&mut out.model_provider, || meta.text("ls_provider"));
    let node_type = out.node_type.clone().unwrap_or_default();
    if !is_container(&node_type) {
        fill(&mut out.input_tokens, || meta.i64("prompt_tokens"));
        fill(&mut out.output_tokens, || meta.i64("completion_tokens"));
        fill(&mut out.total_tokens, || meta.i64("total_tokens"));
        if out.cost.is_none()
            && let Some(price) = meta.f64("total_price")
        {
            out.cost = Some(price);
            fill(&mut out.currency, || meta.text("currency"));
        }
    }
    if out.span_kind == Some(SpanKind::Tool) {
        fill(&mut out.tool_name, || out.name.clone());
    }
}
