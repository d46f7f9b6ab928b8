//! Langfuse's native OTel attributes (`langfuse.observation.*`,
//! `langfuse.trace.*`, `langfuse.session.id`, `langfuse.user.id`): the
//! highest-priority convention.
//!
//! `usage_details` and `cost_details` are JSON maps that may carry more than
//! Loupe's fields (cache and reasoning tokens), so they are read but kept
//! verbatim in the attributes. `level` and `status_message` are read by the
//! error mapping.

use loupe_model::{Span, SpanKind};
use serde_json::{Map, Value};

use super::attrs::Bag;
use super::fill;

/// Langfuse observation type → kind; `span` and `event` say nothing specific.
fn kind(observation_type: &str) -> Option<SpanKind> {
    Some(match observation_type.to_ascii_lowercase().as_str() {
        "generation" => SpanKind::Llm,
        "embedding" => SpanKind::Embedding,
        "agent" => SpanKind::Agent,
        "tool" => SpanKind::Tool,
        "chain" => SpanKind::Chain,
        "retriever" => SpanKind::Retrieval,
        "evaluator" | "guardrail" => SpanKind::Other,
        _ => return None,
    })
}

pub(super) fn apply(bag: &mut Bag<'_>, is_root: bool, out: &mut Span) {
    fill(&mut out.span_kind, || {
        bag.take_with("langfuse.observation.type", |v| {
            super::attrs::scalar_text(v).and_then(|t| kind(&t))
        })
    });
    fill(&mut out.model_name, || {
        bag.take_text("langfuse.observation.model.name")
    });
    fill(&mut out.input, || {
        bag.take_text("langfuse.observation.input")
    });
    fill(&mut out.output, || {
        bag.take_text("langfuse.observation.output")
    });
    if is_root {
        fill(&mut out.input, || bag.take_text("langfuse.trace.input"));
        fill(&mut out.output, || bag.take_text("langfuse.trace.output"));
    }
    fill(&mut out.session_id, || bag.take_text("langfuse.session.id"));
    fill(&mut out.user_id, || bag.take_text("langfuse.user.id"));

    if let Some(usage) = json_map(bag, "langfuse.observation.usage_details") {
        let get = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| usage.get(*k).and_then(Value::as_i64))
        };
        fill(&mut out.input_tokens, || {
            get(&["input", "prompt_tokens", "input_tokens"])
        });
        fill(&mut out.output_tokens, || {
            get(&["output", "completion_tokens", "output_tokens"])
        });
        fill(&mut out.total_tokens, || get(&["total", "total_tokens"]));
    }
    if out.cost.is_none()
        && let Some(cost) = json_map(bag, "langfuse.observation.cost_details")
            .and_then(|m| m.get("total").and_then(Value::as_f64))
    {
        out.cost = Some(cost);
        fill(&mut out.currency, || Some("USD".to_owned()));
    }
}

fn json_map(bag: &Bag<'_>, key: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(&bag.peek_text(key)?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}
