//! Spans the store benches share: Dify-shaped runs of ten spans (a
//! workflow, then LLM, tool and retrieval nodes) spread over ten days.
#![allow(dead_code)] // each bench uses part of it

use std::time::Duration;

use loupe_model::{Span, SpanKind, Status};

pub const BATCH: usize = 1_000;
pub const SPANS_PER_RUN: usize = 10;
pub const DAY_NS: i64 = 86_400 * 1_000_000_000;
pub const T0: i64 = 1_795_000_000_000_000_000;

/// Span `i` of run `run`, in its final state.
pub fn span(run: usize, i: usize, runs: usize) -> Span {
    let mut s = Span::new("bench", format!("{run:08x}-{i}"));
    s.trace_id = Some(format!("{run:032x}"));
    s.run_id = Some(format!("run-{run}"));
    s.parent_span_id = (i != 0).then(|| format!("{run:08x}-0"));
    s.span_kind = Some(if i == 0 {
        SpanKind::Workflow
    } else {
        [SpanKind::Llm, SpanKind::Tool, SpanKind::Retrieval][i % 3]
    });
    s.status = Some(if (run + i).is_multiple_of(50) {
        Status::Error
    } else {
        Status::Ok
    });
    let start = T0 + (run as i64) * (10 * DAY_NS / runs.max(1) as i64) + i as i64 * 1_000_000;
    s.start_time = Some(start);
    s.end_time = Some(start + 250_000_000);
    s.app_id = Some(format!("app-{}", run % 5));
    s.tool_name = (i % 3 == 2).then(|| ["inventory", "coupon", "payment"][run % 3].to_owned());
    s.input_tokens = Some(120);
    s.input = Some(format!(
        "{{\"query\": \"where is my order {run}?\"}} {}",
        "lorem ipsum ".repeat(40)
    ));
    s.output = Some(format!("Your order {run} ships tomorrow."));
    s
}

/// The median of timings, in ms.
pub fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

/// Runs to load: `RUNS`, else 20,000 under `cargo bench` and `small` when
/// `cargo test` runs the bench as a smoke test.
pub fn runs(small: usize) -> usize {
    let default = if std::env::args().any(|a| a == "--bench") {
        20_000
    } else {
        small
    };
    std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
