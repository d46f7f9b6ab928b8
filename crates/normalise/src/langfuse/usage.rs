//! Token usage and cost of a generation-like body.
//!
//! Precedence per field: `usageDetails` (the newer free map, or the OpenAI
//! Chat/Responses usage shapes), then the legacy `usage` object (only when
//! its unit is `TOKENS` or unset: `CHARACTERS` etc. are not tokens); for
//! cost, `costDetails.total` (else the sum of its entries), then
//! `usage.totalCost` (else input + output cost). The raw objects are kept in
//! the `langfuse.usage`, `langfuse.usage_details` and `langfuse.cost_details`
//! attributes, so cache and reasoning token counts are not lost.

use loupe_model::Span;
use serde_json::{Map, Value};

use super::body::{Body, amount, count};
use crate::ItemError;

fn first(map: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| map.get(*k).and_then(count))
}

/// Reads `usage`, `usageDetails` and `costDetails` into `out`.
pub(super) fn apply(body: &Body<'_>, out: &mut Span) -> Result<(), ItemError> {
    let details = body.object("usageDetails")?;
    let usage = body.object("usage")?;
    let costs = body.object("costDetails")?;
    for (key, attr) in [
        ("usage", "langfuse.usage"),
        ("usageDetails", "langfuse.usage_details"),
        ("costDetails", "langfuse.cost_details"),
    ] {
        if body
            .get(key)
            .is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        {
            body.copy_attr(key, attr, &mut out.attributes);
        }
    }

    if let Some(d) = details.filter(|d| !d.is_empty()) {
        out.input_tokens = first(d, &["input", "prompt_tokens", "input_tokens"]);
        out.output_tokens = first(d, &["output", "completion_tokens", "output_tokens"]);
        out.total_tokens = first(d, &["total", "total_tokens"]);
    }
    if let Some(u) = usage.filter(|u| !u.is_empty()) {
        let unit = u.get("unit").and_then(Value::as_str);
        if unit.is_none_or(|unit| unit.eq_ignore_ascii_case("TOKENS")) {
            super::fill(&mut out.input_tokens, || {
                first(u, &["input", "promptTokens"])
            });
            super::fill(&mut out.output_tokens, || {
                first(u, &["output", "completionTokens"])
            });
            super::fill(&mut out.total_tokens, || {
                first(u, &["total", "totalTokens"])
            });
        }
    }
    if out.total_tokens.is_none()
        && let (Some(i), Some(o)) = (out.input_tokens, out.output_tokens)
    {
        out.total_tokens = Some(i.saturating_add(o));
    }

    let cost = costs.filter(|c| !c.is_empty()).and_then(|c| {
        c.get("total").and_then(amount).or_else(|| {
            let valid: Vec<f64> = c.values().filter_map(amount).collect();
            (!valid.is_empty()).then(|| valid.iter().sum())
        })
    });
    let cost = cost.or_else(|| {
        let u = usage?;
        u.get("totalCost").and_then(amount).or_else(|| {
            let parts: Vec<f64> = ["inputCost", "outputCost"]
                .iter()
                .filter_map(|k| u.get(*k).and_then(amount))
                .collect();
            (!parts.is_empty()).then(|| parts.iter().sum())
        })
    });
    if let Some(cost) = cost {
        out.cost = Some(cost);
        out.currency = Some("USD".to_owned());
    }
    Ok(())
}
