//! A deterministic set of Dify-shaped runs: a workflow root per run, tool
//! calls (inventory, coupon, payment, logistics), a retrieval with an HTTP
//! status attribute, and an LLM call with tokens and cost. Categories are
//! tags; some runs lack a run id (the trace id is the run key), a category,
//! or a status.

use loupe_model::{Span, SpanKind, Status};

/// 2026-11-17T00:00:00Z in ns.
pub const T0: i64 = 1_794_873_600 * 1_000_000_000;
/// "Now" for the planner: seven hours after `T0`.
pub const NOW: i64 = T0 + 7 * 3_600 * 1_000_000_000;
const MS: i64 = 1_000_000;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CATEGORIES: &[&str] = &["phone", "laptop", "shoes", "books"];
const TOOLS: &[&str] = &["inventory", "coupon", "payment", "logistics"];
const ERRORS: &[&str] = &[
    "HTTP 500 from upstream",
    "timeout after 3s",
    "Connection reset by peer",
    "invalid coupon code",
];
const HTTP: &[&str] = &["200", "200", "500", "404", "n/a", "503"];

/// About 2,700 spans in 400 runs over six hours and forty minutes.
pub fn generate() -> Vec<Span> {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    for r in 0..400i64 {
        let trace = format!("t{r:04}");
        let run_id = (r % 7 != 3).then(|| format!("run-{r:04}"));
        let category = (r % 11 != 5).then(|| CATEGORIES[rng.below(4) as usize]);
        let user = format!("u{}", r % 37);
        // Dify's workspace on most runs' spans, and the workspace tag: the
        // keys the store mirrors in columns (`mirrors.rs`). The tag is not
        // always the tenant (other sources name it themselves).
        let tenant = (r % 9 != 4).then(|| ["ws-a", "ws-b", "ws-c"][r as usize % 3]);
        let workspace = (r % 8 != 6).then(|| ["ws-a", "ws-b", "ws-c", "ws-d"][r as usize % 4]);
        let start = T0 + r * 60_000 * MS + rng.below(1_000) as i64 * MS;
        let base = |id: String, kind: SpanKind, node: &str, at: i64, dur: i64| {
            let mut s = Span::new("p", id);
            s.trace_id = Some(trace.clone());
            s.run_id = run_id.clone();
            s.user_id = Some(user.clone());
            s.span_kind = Some(kind);
            s.node_type = Some(node.into());
            s.start_time = Some(at);
            s.end_time = Some(at + dur);
            if let Some(c) = category {
                s.tags.insert("category".into(), c.into());
            }
            if let Some(t) = tenant {
                s.attributes.insert("dify.tenant_id".into(), t.into());
            }
            if let Some(w) = workspace {
                s.tags.insert("workspace".into(), w.into());
            }
            // A second business tag, not a label: kept by the hour tier
            // only where `hour_tags` names it.
            if r % 6 != 2 {
                s.tags.insert(
                    "tier".into(),
                    ["vip", "regular", "new"][r as usize % 3].into(),
                );
            }
            // Some runs without an app name or version (other sources).
            s.app_name = (r % 4 != 1).then(|| ["shop", "help"][r as usize % 2].into());
            s.workflow_version = (r % 5 != 0).then(|| format!("v{}", r % 3));
            s
        };
        let mut children = Vec::new();
        let mut at = start + 5 * MS;
        for t in 0..(2 + rng.below(3)) {
            let tool = TOOLS[rng.below(4) as usize];
            let dur = (20 + rng.below(2_500)) as i64 * MS;
            let mut s = base(format!("{trace}-tool{t}"), SpanKind::Tool, "tool", at, dur);
            s.tool_name = Some(tool.into());
            s.name = Some(tool.into());
            if rng.below(6) == 0 {
                s.status = Some(Status::Error);
                let e = rng.below(4) as usize;
                s.error_message = Some(ERRORS[e].into());
                s.error_class = Some(["Timeout", "RateLimited", "Upstream", "Timeout"][e].into());
                // Some as stored before the pipeline signed failures:
                // scans and rollups sign them on read.
                if !(t as usize + e).is_multiple_of(3) {
                    s.attributes.insert(
                        loupe_model::ERROR_SIGNATURE.into(),
                        format!("error: signature {e}"),
                    );
                }
            } else {
                s.status = Some(Status::Ok);
                s.output = Some(format!("{tool} ok"));
                // A retried call keeps its class: rollups hold classes of
                // failed spans only, so `error_class` alone must scan.
                if rng.below(40) == 0 {
                    s.error_class = Some("Retried".into());
                }
            }
            at += dur;
            children.push(s);
        }
        let dur = (30 + rng.below(400)) as i64 * MS;
        let mut s = base(
            format!("{trace}-kb"),
            SpanKind::Retrieval,
            "retrieval",
            at,
            dur,
        );
        let code = HTTP[rng.below(HTTP.len() as u64) as usize];
        s.attributes.insert("http.status_code".into(), code.into());
        if code.starts_with('5') {
            s.status = Some(Status::Error);
            s.error_message = Some(format!("retrieval failed: HTTP {code}"));
        } else {
            s.status = Some(Status::Ok);
        }
        at += dur;
        children.push(s);
        if r % 5 != 2 {
            let dur = (200 + rng.below(3_000)) as i64 * MS;
            let mut s = base(format!("{trace}-llm"), SpanKind::Llm, "llm", at, dur);
            s.model_name = Some("gpt-4o".into());
            s.model_provider = (r % 6 != 0).then(|| "openai".into());
            s.name = Some(["answer", "classify"][r as usize % 2].into());
            s.total_tokens = Some(50 + rng.below(600) as i64);
            s.cost = Some(rng.below(1_000) as f64 / 100_000.0);
            s.output = Some(if rng.below(4) == 0 {
                "We issued a refund for your order".into()
            } else {
                "Your order ships tomorrow".into()
            });
            s.status = match r % 13 {
                0 => None,
                1 => Some(Status::Running),
                _ => Some(Status::Ok),
            };
            at += dur;
            children.push(s);
        }
        let failed = children.iter().any(|c| c.status == Some(Status::Error));
        let mut root = base(
            format!("{trace}-root"),
            SpanKind::Workflow,
            "workflow",
            start,
            at - start + 2 * MS,
        );
        root.name = Some("customer-service".into());
        root.status = Some(if failed { Status::Error } else { Status::Ok });
        // Dify's run inputs are a JSON object (`input.query`, …); every
        // fifth is plain text, which JSON paths never match.
        root.input = Some(if r % 5 == 4 {
            format!("user {user} asks about an order")
        } else {
            let tiers = ["gold", "silver", "free"];
            let asks = ["a Refund", "an order", "the REFUND policy", "shipping"];
            serde_json::json!({
                "query": format!("user {user} asks about {}", asks[r as usize % asks.len()]),
                "sys.query": format!("order {r}"),
                "profile": {"tier": tiers[r as usize % tiers.len()], "level": r % 7},
                "items": ["widget", format!("gadget-{r}")],
            })
            .to_string()
        });
        for c in &mut children {
            c.parent_span_id = Some(root.span_id.clone());
        }
        out.push(root);
        out.extend(children);
    }
    out
}
