//! What PII redaction costs at ingest: `Redactor::apply` over Dify-shaped
//! spans from `loupe-gen` (10,000 runs by default, `RUNS=…`), with no rules
//! (the pipeline skips the pass), the six builtin patterns, and the builtins
//! plus an attribute rule and a JSON-path rule; then the same spans with an
//! email, a Chinese mobile number and an API key written into every input
//! (every span redacted). Median of 5 passes after a warm-up; the spans are
//! cloned before each pass, outside the timing.
//!
//! Run: `cargo bench -p loupe-pipeline --bench redact` (release). Compare
//! with `Store::append` in docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use loupe_model::Span;
use loupe_pipeline::redact::{RedactionConfig, Redactor};

fn config(rules: serde_json::Value) -> Redactor {
    let config: RedactionConfig =
        serde_json::from_value(serde_json::json!({ "rules": rules })).expect("rules");
    Redactor::new(&config).expect("valid rules")
}

fn builtins() -> Vec<serde_json::Value> {
    [
        "email",
        "phone",
        "cn_mobile",
        "cn_id_card",
        "api_key",
        "bearer_token",
    ]
    .iter()
    .map(|b| serde_json::json!({ "name": b, "builtin": b }))
    .collect()
}

fn median_pass(spans: &[Span], redactor: &Redactor) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut changed = 0;
    for pass in 0..6 {
        let mut batch = spans.to_vec();
        let started = Instant::now();
        let mut n = 0;
        if !redactor.is_empty() {
            for span in &mut batch {
                n += redactor.apply(span);
            }
        }
        let took = started.elapsed();
        std::hint::black_box(&batch);
        if pass > 0 {
            times.push(took);
        }
        changed = n;
    }
    times.sort();
    (times[times.len() / 2], changed)
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let gen_config = loupe_gen::GenConfig {
        seed: 42,
        runs,
        start_ns: loupe_gen::DEFAULT_START_NS,
        spread_ns: 86_400_000_000_000,
        project: "default".into(),
        faults: Vec::new(),
    };
    let spans: Vec<Span> = loupe_gen::runs(&gen_config).flat_map(|r| r.spans).collect();
    let text_bytes: usize = spans
        .iter()
        .map(|s| {
            s.input.as_ref().map_or(0, String::len)
                + s.output.as_ref().map_or(0, String::len)
                + s.attributes.values().map(String::len).sum::<usize>()
        })
        .sum();
    let mut dense = spans.clone();
    for (i, s) in dense.iter_mut().enumerate() {
        let pii = format!(
            " contact li.lei{i}@example.cn or 139{:08} key sk-proj-abcdefghijklmnop{i}",
            i % 100_000_000
        );
        s.input = Some(format!("{}{pii}", s.input.as_deref().unwrap_or("")));
    }
    let mut all = builtins();
    all.push(serde_json::json!({ "name": "headers", "attributes": ["http.request.header.*"] }));
    all.push(serde_json::json!({ "name": "phone-field", "json_paths": ["inputs.phone", "messages[*].content"] }));
    let sets = [
        ("no rules", config(serde_json::json!([]))),
        ("6 builtins", config(serde_json::Value::Array(builtins()))),
        (
            "6 builtins + attributes + JSON paths",
            config(serde_json::Value::Array(all)),
        ),
    ];
    println!(
        "{} spans from {runs} runs, {:.0} B of input/output/attribute text per span",
        spans.len(),
        text_bytes as f64 / spans.len().max(1) as f64
    );
    println!("| rules | spans | values changed | median pass | spans/s | ns/span |");
    println!("|---|---|---|---|---|---|");
    for (label, spans) in [("generated", &spans), ("PII in every input", &dense)] {
        for (name, redactor) in &sets {
            if redactor.is_empty() {
                println!(
                    "| {name} ({label}) | {} | 0 | pass skipped | unchanged | 0 |",
                    spans.len()
                );
                continue;
            }
            let (took, changed) = median_pass(spans, redactor);
            let per_s = spans.len() as f64 / took.as_secs_f64().max(1e-9);
            println!(
                "| {name} ({label}) | {} | {changed} | {:.1} ms | {:.0} | {:.0} |",
                spans.len(),
                took.as_secs_f64() * 1e3,
                per_s,
                took.as_nanos() as f64 / spans.len().max(1) as f64
            );
        }
    }
}
