//! OpenLLMetry / Traceloop attributes: `traceloop.span.kind`,
//! `traceloop.entity.name|input|output`, `llm.request.type`, the older
//! `llm.request.model` / `llm.response.model` and `llm.usage.*` token counts.

use loupe_model::{Span, SpanKind};

use super::attrs::{Bag, scalar_text};
use super::fill;

/// `traceloop.span.kind` → kind.
fn span_kind(text: &str) -> Option<SpanKind> {
    Some(match text {
        "workflow" => SpanKind::Workflow,
        "task" => SpanKind::Chain,
        "agent" => SpanKind::Agent,
        "tool" => SpanKind::Tool,
        _ => return None,
    })
}

/// `llm.request.type` → kind.
fn request_kind(text: &str) -> Option<SpanKind> {
    Some(match text {
        "chat" | "completion" => SpanKind::Llm,
        "embedding" => SpanKind::Embedding,
        "rerank" => SpanKind::Rerank,
        _ => return None,
    })
}

pub(super) fn apply(bag: &mut Bag<'_>, out: &mut Span) {
    fill(&mut out.span_kind, || {
        bag.take_with("traceloop.span.kind", |v| {
            scalar_text(v).and_then(|t| span_kind(&t))
        })
    });
    fill(&mut out.span_kind, || {
        bag.take_with("llm.request.type", |v| {
            scalar_text(v).and_then(|t| request_kind(&t))
        })
    });
    if out.span_kind == Some(SpanKind::Tool) {
        fill(&mut out.tool_name, || {
            bag.take_text("traceloop.entity.name")
        });
    }
    fill(&mut out.input, || bag.take_text("traceloop.entity.input"));
    fill(&mut out.output, || bag.take_text("traceloop.entity.output"));
    fill(&mut out.model_name, || {
        bag.take_first_text(&["llm.response.model", "llm.request.model"])
    });
    fill(&mut out.input_tokens, || {
        bag.take_i64("llm.usage.prompt_tokens")
    });
    fill(&mut out.output_tokens, || {
        bag.take_i64("llm.usage.completion_tokens")
    });
    fill(&mut out.total_tokens, || {
        bag.take_i64("llm.usage.total_tokens")
    });
}
