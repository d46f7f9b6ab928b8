//! OpenInference attributes (Phoenix/Arize, and Dify's Phoenix/Arize
//! providers): `openinference.span.kind`, `input.value` / `output.value`,
//! `llm.model_name`, `llm.provider`, `llm.token_count.*`, `llm.cost.*`,
//! `tool.name`, `session.id`, `user.id`. The `metadata` JSON string is
//! handled with Dify's markers (it is flattened for every source).

use loupe_model::{Span, SpanKind};

use super::attrs::{Bag, scalar_text};
use super::fill;

/// OpenInference span kind → kind (case-insensitive).
fn kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_uppercase().as_str() {
        "LLM" => SpanKind::Llm,
        "EMBEDDING" => SpanKind::Embedding,
        "CHAIN" => SpanKind::Chain,
        "RETRIEVER" => SpanKind::Retrieval,
        "RERANKER" => SpanKind::Rerank,
        "TOOL" => SpanKind::Tool,
        "AGENT" => SpanKind::Agent,
        "GUARDRAIL" | "EVALUATOR" | "PROMPT" => SpanKind::Other,
        _ => return None,
    })
}

pub(super) fn apply(bag: &mut Bag<'_>, out: &mut Span) {
    fill(&mut out.span_kind, || {
        bag.take_with("openinference.span.kind", |v| {
            scalar_text(v).and_then(|t| kind(&t))
        })
    });
    fill(&mut out.input, || bag.take_text("input.value"));
    fill(&mut out.output, || bag.take_text("output.value"));
    fill(&mut out.model_name, || {
        bag.take_first_text(&[
            "llm.model_name",
            "llm.response.model_name",
            "llm.request.model_name",
            "embedding.model_name",
            "reranker.model_name",
        ])
    });
    fill(&mut out.model_provider, || {
        bag.take_first_text(&["llm.provider", "llm.system"])
    });
    fill(&mut out.input_tokens, || {
        bag.take_i64("llm.token_count.prompt")
    });
    fill(&mut out.output_tokens, || {
        bag.take_i64("llm.token_count.completion")
    });
    fill(&mut out.total_tokens, || {
        bag.take_i64("llm.token_count.total")
    });
    if out.cost.is_none() {
        out.cost = bag.take_f64("llm.cost.total").or_else(|| {
            let prompt = bag.take_f64("llm.cost.prompt");
            let completion = bag.take_f64("llm.cost.completion");
            match (prompt, completion) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0.0) + c.unwrap_or(0.0)),
            }
        });
        if out.cost.is_some() {
            fill(&mut out.currency, || Some("USD".to_owned()));
        }
    }
    fill(&mut out.tool_name, || bag.take_text("tool.name"));
    fill(&mut out.session_id, || bag.take_text("session.id"));
    fill(&mut out.user_id, || bag.take_text("user.id"));
}
