//! OTel GenAI semantic conventions (`gen_ai.*`), as written by OTel GenAI
//! instrumentations, Dify's `ENABLE_OTEL` node spans and the Aliyun and
//! Tencent providers (`gen_ai.span.kind`, `gen_ai.session.id`,
//! `gen_ai.user.id`, `gen_ai.entity.input/output`), including the older
//! `gen_ai.system` and `gen_ai.usage.prompt_tokens|completion_tokens`.

use loupe_model::{Span, SpanKind};

use super::attrs::{Bag, scalar_text};
use super::fill;

/// `gen_ai.operation.name` → kind.
fn operation_kind(text: &str) -> Option<SpanKind> {
    Some(match text {
        "chat" | "text_completion" | "completion" | "generate_content" | "generate" => {
            SpanKind::Llm
        }
        "embeddings" => SpanKind::Embedding,
        "execute_tool" => SpanKind::Tool,
        "invoke_agent" | "create_agent" => SpanKind::Agent,
        _ => return None,
    })
}

/// `gen_ai.span.kind` (Aliyun, Tencent, Dify) → kind (case-insensitive).
fn span_kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_uppercase().as_str() {
        "LLM" | "GENERATION" => SpanKind::Llm,
        "EMBEDDING" => SpanKind::Embedding,
        "RETRIEVER" => SpanKind::Retrieval,
        "RERANKER" => SpanKind::Rerank,
        "TOOL" => SpanKind::Tool,
        "AGENT" => SpanKind::Agent,
        "CHAIN" | "TASK" => SpanKind::Chain,
        "WORKFLOW" => SpanKind::Workflow,
        _ => return None,
    })
}

pub(super) fn apply(bag: &mut Bag<'_>, out: &mut Span) {
    fill(&mut out.span_kind, || {
        bag.take_with("gen_ai.operation.name", |v| {
            scalar_text(v).and_then(|t| operation_kind(&t))
        })
    });
    fill(&mut out.span_kind, || {
        bag.take_with("gen_ai.span.kind", |v| {
            scalar_text(v).and_then(|t| span_kind(&t))
        })
    });
    fill(&mut out.model_name, || {
        bag.take_first_text(&["gen_ai.response.model", "gen_ai.request.model"])
    });
    fill(&mut out.model_provider, || {
        bag.take_first_text(&["gen_ai.provider.name", "gen_ai.system"])
    });
    fill(&mut out.input_tokens, || {
        bag.take_first_i64(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"])
    });
    fill(&mut out.output_tokens, || {
        bag.take_first_i64(&[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
        ])
    });
    fill(&mut out.total_tokens, || {
        bag.take_i64("gen_ai.usage.total_tokens")
    });
    if out.cost.is_none() {
        out.cost = bag.take_f64("gen_ai.usage.cost");
        if out.cost.is_some() {
            fill(&mut out.currency, || Some("USD".to_owned()));
        }
    }
    fill(&mut out.tool_name, || bag.take_text("gen_ai.tool.name"));
    fill(&mut out.session_id, || {
        bag.take_first_text(&["gen_ai.session.id", "gen_ai.conversation.id"])
    });
    fill(&mut out.user_id, || bag.take_text("gen_ai.user.id"));
    fill(&mut out.input, || {
        bag.take_first_text(&[
            "gen_ai.entity.input",
            "gen_ai.input.messages",
            "gen_ai.prompt",
        ])
    });
    fill(&mut out.output, || {
        bag.take_first_text(&[
            "gen_ai.entity.output",
            "gen_ai.output.messages",
            "gen_ai.completion",
        ])
    });
}
