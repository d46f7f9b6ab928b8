//! Replays of the recorded Dify 1.14.1 and Langfuse SDK v2 batches, field
//! by field, and the batch semantics (order, duplicates, bad events).
//!
//! Cross-batch merging is emulated with `Span::merge_from` (what the store's
//! upsert does); run-context propagation is the store's and is covered by
//! the end-to-end tests in `crates/loupe/tests/it/langfuse.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use loupe_model::{Span, SpanKind, Status};
use serde_json::{Value, json};

use super::*;

const SEC: i64 = 1_000_000_000;

/// The shared fixture directory (the checkout sits beside `shared/`).
fn fixtures() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../../shared/fixtures")
}

fn read(name: &str) -> Value {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the checkout must sit beside shared/)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Request bodies of a capture file (`requests[].body`) or a bare batch.
fn bodies(capture: &Value) -> Vec<Vec<u8>> {
    match capture.get("requests").and_then(Value::as_array) {
        Some(requests) => requests
            .iter()
            .filter_map(|r| r.get("body"))
            .map(|b| serde_json::to_vec(b).expect("encode"))
            .collect(),
        None => vec![serde_json::to_vec(capture).expect("encode")],
    }
}

/// Every batch in order, merged per span id as the store does.
fn replay(batches: &[Vec<u8>]) -> BTreeMap<String, Span> {
    let mut out: BTreeMap<String, Span> = BTreeMap::new();
    for body in batches {
        let prepared = prepare("p", body).expect("valid batch");
        for r in &prepared.results {
            assert_eq!(r.outcome, Ok(()), "event {}", r.id);
        }
        for span in prepared.spans {
            match out.get_mut(&span.span_id) {
                Some(existing) => existing.merge_from(span),
                None => {
                    out.insert(span.span_id.clone(), span);
                }
            }
        }
    }
    out
}

fn ts(text: &str) -> Option<i64> {
    parse_time(text)
}

fn by_name<'a>(spans: &'a BTreeMap<String, Span>, name: &str) -> &'a Span {
    spans
        .values()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no span named {name:?}"))
}

/// Checks the root and the nodes of one recorded Dify workflow run.
fn check_dify_run(
    file: &str,
    status: Status,
    nodes: &[(&str, &str, SpanKind, Status)],
) -> BTreeMap<String, Span> {
    let capture = read(file);
    let run_id = capture["workflow_run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let spans = replay(&bodies(&capture));
    let root = &spans[&run_id];
    assert_eq!(root.trace_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(root.span_kind, Some(SpanKind::Workflow));
    assert_eq!(root.name.as_deref(), Some("workflow"));
    assert!(
        root.user_id
            .as_deref()
            .is_some_and(|u| u.starts_with("probe-user-"))
    );
    assert_eq!(
        root.session_id, None,
        "conversation_id is null in workflow mode"
    );
    assert_eq!(root.status, Some(status));
    assert!(root.app_id.is_some() && root.workflow_id.is_some());
    assert!(
        root.workflow_version
            .as_deref()
            .is_some_and(|v| v.starts_with("2026-11-24"))
    );
    assert_eq!(root.attributes["langfuse.tags"], r#"["workflow"]"#);
    assert!(root.attributes.contains_key("metadata.tenant_id"));
    assert!(
        root.input
            .as_deref()
            .is_some_and(|i| i.contains("sys.workflow_run_id"))
    );
    let sys_ts = capture["requests"][0]["body"]["batch"][0]["body"]["input"]["sys.timestamp"]
        .as_i64()
        .expect("sys.timestamp");
    assert_eq!(
        root.start_time,
        Some(sys_ts * SEC),
        "run start from sys.timestamp"
    );
    assert_eq!(root.source.as_deref(), Some("langfuse"));
    assert_eq!(root.ingest_version, Some(loupe_model::INGEST_VERSION));

    assert_eq!(spans.len(), nodes.len() + 1, "root + one span per node");
    for (name, node_type, kind, node_status) in nodes {
        let node = by_name(&spans, name);
        assert_eq!(node.node_type.as_deref(), Some(*node_type), "{name}");
        assert_eq!(node.span_kind, Some(*kind), "{name}");
        assert_eq!(node.status, Some(*node_status), "{name}");
        assert_eq!(
            node.parent_span_id.as_deref(),
            Some(run_id.as_str()),
            "{name}"
        );
        assert_eq!(node.trace_id.as_deref(), Some(run_id.as_str()), "{name}");
        assert_eq!(node.run_id.as_deref(), Some(run_id.as_str()), "{name}");
        assert_eq!(node.app_id, root.app_id, "{name}");
        assert!(
            node.start_time.is_some() && node.end_time > node.start_time,
            "{name}"
        );
        assert!(
            node.start_time >= root.start_time,
            "{name} starts after the run"
        );
        assert_eq!(node.attributes["langfuse.observation_type"], "SPAN");
        assert_eq!((node.input_tokens, node.cost), (None, None), "{name}");
    }
    spans
}

#[test]
fn dify_failed_run_marks_only_the_failing_node_as_failed() {
    let spans = check_dify_run(
        "dify-1.14.1/dify_langfuse_workflow_failed_http.json",
        Status::Error,
        &[
            ("Start", "start", SpanKind::Chain, Status::Ok),
            ("IF/ELSE", "if-else", SpanKind::Branch, Status::Ok),
            (
                "HTTP Request",
                "http-request",
                SpanKind::Http,
                Status::Error,
            ),
        ],
    );
    let error = "[Errno 111] Connection refused";
    for name in ["Start", "IF/ELSE"] {
        let node = by_name(&spans, name);
        assert_eq!(node.error_message, None, "{name} did not fail");
        assert_eq!(node.raw_status.as_deref(), Some("succeeded"));
    }
    let http = by_name(&spans, "HTTP Request");
    assert_eq!(http.error_message.as_deref(), Some(error));
    assert_eq!(http.raw_status.as_deref(), Some("failed"));
    assert_eq!(http.start_time, ts("2026-11-24T18:57:18.043615Z"));
    assert_eq!(http.end_time, ts("2026-11-24T18:57:18.045530Z"));
    let root = by_name(&spans, "workflow");
    assert_eq!(
        root.error_message.as_deref(),
        Some(error),
        "run error on the run span"
    );
    assert_eq!(root.raw_status.as_deref(), Some("failed"));
}

#[test]
fn dify_successful_runs_map_every_node() {
    use SpanKind::{Branch, Chain, Http};
    let ok = Status::Ok;
    let http_branch = [
        ("Start", "start", Chain, ok),
        ("IF/ELSE", "if-else", Branch, ok),
        ("HTTP Request", "http-request", Http, ok),
        ("End (hello)", "end", Chain, ok),
    ];
    for file in [
        "dify-1.14.1/dify_langfuse_workflow_success_http_branch.json",
        "dify-1.14.1/dify_langfuse_workflow_success_streaming_mode.json",
    ] {
        let spans = check_dify_run(file, ok, &http_branch);
        assert!(spans.values().all(|s| s.error_message.is_none()), "{file}");
    }
    let spans = check_dify_run(
        "dify-1.14.1/dify_langfuse_workflow_success_aggregator_branch.json",
        ok,
        &[
            ("Start", "start", Chain, ok),
            ("IF/ELSE", "if-else", Branch, ok),
            ("Variable Aggregator", "variable-aggregator", Chain, ok),
            ("End (other)", "end", Chain, ok),
        ],
    );
    let end = by_name(&spans, "End (other)");
    assert_eq!(end.output.as_deref(), Some(r#"{"echo":"no greeting"}"#));
}

#[test]
fn sdk_v2_batch_merges_creates_updates_and_the_trace_upsert() {
    let spans = replay(&bodies(&read("clients/langfuse_v2_ingestion.json")));
    let trace_id = "cc5f6b10-2e19-44c6-b888-42bd92e1be81";
    assert_eq!(spans.len(), 4, "trace, span, generation, score");
    let root = &spans[trace_id];
    assert_eq!(root.name.as_deref(), Some("dify-workflow"));
    assert_eq!(root.user_id.as_deref(), Some("user-1"));
    assert_eq!(root.session_id.as_deref(), Some("sess-1"));
    assert_eq!(root.input.as_deref(), Some(r#"{"query":"hi"}"#));
    assert_eq!(
        root.output.as_deref(),
        Some(r#"{"answer":"hello!"}"#),
        "upsert adds output"
    );
    assert_eq!(root.start_time, ts("2026-11-24T19:02:56.400100Z"));
    assert_eq!(root.run_id.as_deref(), Some(trace_id));
    assert_eq!(root.app_id.as_deref(), Some("app-123"));
    assert_eq!(root.attributes["langfuse.tags"], r#"["dify"]"#);
    assert_eq!(root.attributes["langfuse.release"], "peers-test");

    let retrieval = by_name(&spans, "retrieval-node");
    assert_eq!(retrieval.parent_span_id.as_deref(), Some(trace_id));
    assert_eq!(retrieval.node_type.as_deref(), Some("knowledge-retrieval"));
    assert_eq!(retrieval.span_kind, Some(SpanKind::Retrieval));
    assert_eq!(retrieval.output.as_deref(), Some(r#"{"docs":2}"#));
    assert_eq!(retrieval.end_time, ts("2026-11-24T19:02:56.400718Z"));
    assert_eq!(retrieval.status, Some(Status::Ok));

    let llm = by_name(&spans, "llm-node");
    assert_eq!(llm.span_kind, Some(SpanKind::Llm));
    assert_eq!(llm.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(
        (llm.input_tokens, llm.output_tokens, llm.total_tokens),
        (Some(12), Some(34), Some(46))
    );
    assert_eq!(llm.output.as_deref(), Some("hello!"));
    assert_eq!(
        llm.attributes["langfuse.model_parameters"],
        r#"{"temperature":"0.2"}"#
    );
    assert_eq!(llm.status, Some(Status::Ok));

    let score = by_name(&spans, "quality");
    assert_eq!(score.span_id, "cbabd94d-4214-4698-9caf-0061705df280");
    assert_eq!(score.node_type.as_deref(), Some("score"));
    assert_eq!(score.parent_span_id.as_deref(), Some(trace_id));
    assert_eq!(score.attributes["score.value"], "0.9");
}

fn event(id: &str, kind: &str, at: &str, body: Value) -> Value {
    json!({"id": id, "type": kind, "timestamp": at, "body": body})
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "batch": events })).expect("encode")
}

#[test]
fn updates_apply_after_creates_even_when_sent_first() {
    let body = batch(vec![
        event(
            "e2",
            "span-update",
            "2026-01-01T00:00:02Z",
            json!({"id": "s", "traceId": "t", "output": "late", "level": "ERROR", "statusMessage": "bad"}),
        ),
        event(
            "e1",
            "span-create",
            "2026-01-01T00:00:01Z",
            json!({"id": "s", "traceId": "t", "name": "step", "output": "early", "level": "DEFAULT"}),
        ),
    ]);
    let prepared = prepare("p", &body).expect("batch");
    assert_eq!(prepared.spans.len(), 1);
    let span = &prepared.spans[0];
    assert_eq!(span.output.as_deref(), Some("late"));
    assert_eq!(span.name.as_deref(), Some("step"));
    assert_eq!(span.status, Some(Status::Error));
    let ids: Vec<_> = prepared.results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e2", "e1"], "results keep batch order");
}

#[test]
fn duplicate_event_ids_count_once() {
    let e = event(
        "dup",
        "trace-create",
        "2026-01-01T00:00:00Z",
        json!({"id": "t", "name": "n"}),
    );
    let prepared = prepare("p", &batch(vec![e.clone(), e])).expect("batch");
    assert_eq!(prepared.results.len(), 1);
    assert_eq!(prepared.spans.len(), 1);
}

#[test]
fn bad_events_fail_alone_and_name_the_problem() {
    let body = batch(vec![
        event(
            "good",
            "trace-create",
            "2026-01-01T00:00:00Z",
            json!({"id": "t", "name": "ok"}),
        ),
        event(
            "unknown",
            "dataset-run-item-create",
            "2026-01-01T00:00:00Z",
            json!({}),
        ),
        event(
            "no-id",
            "span-create",
            "2026-01-01T00:00:00Z",
            json!({"traceId": "t"}),
        ),
        event("bad-time", "span-create", "yesterday", json!({"id": "s"})),
        json!({"type": "span-create", "body": {"id": "x"}}),
        json!("not an event"),
        event(
            "good2",
            "generation-create",
            "2026-01-01T00:00:01Z",
            json!({"id": "g", "traceId": "t"}),
        ),
    ]);
    let prepared = prepare("p", &body).expect("batch");
    let outcome: Vec<(&str, Option<String>)> = prepared
        .results
        .iter()
        .map(|r| {
            (
                r.id.as_str(),
                r.outcome.as_ref().err().map(|e| e.error.clone()),
            )
        })
        .collect();
    assert_eq!(outcome[0], ("good", None));
    assert!(
        outcome[1]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("dataset-run-item-create"))
    );
    assert!(
        outcome[2]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("body.id"))
    );
    assert!(
        outcome[3]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("timestamp"))
    );
    assert_eq!(outcome[4].0, "batch[4]");
    assert!(outcome[4].1.as_deref().is_some_and(|e| e.contains("id")));
    assert_eq!(outcome[5].0, "batch[5]");
    assert_eq!(outcome[6], ("good2", None));
    let ids: Vec<_> = prepared.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids, ["t", "g"]);
}

#[test]
fn envelope_errors_reject_the_request() {
    assert!(matches!(
        prepare("p", b"{not json"),
        Err(BatchError::Json { .. })
    ));
    assert!(matches!(prepare("p", b"[]"), Err(BatchError::NotABatch)));
    assert!(matches!(
        prepare("p", br#"{"batch": {}}"#),
        Err(BatchError::NotABatch)
    ));
    let empty = prepare("p", br#"{"batch": []}"#).expect("empty batch");
    assert!(empty.spans.is_empty() && empty.results.is_empty());
}

/// Issue 14: one lone surrogate used to reject the whole batch.
#[test]
fn a_lone_surrogate_costs_only_its_event() {
    let good = |id: &str| {
        serde_json::to_string(&event(
            id,
            "trace-create",
            "2026-01-01T00:00:00Z",
            json!({"id": id, "name": "ok"}),
        ))
        .expect("encode")
    };
    let bad = r#"{"id":"bad","type":"trace-create","timestamp":"2026-01-01T00:00:00Z","body":{"id":"b","name":"\ud800"}}"#;
    let body = format!(r#"{{"batch":[{},{bad},{}]}}"#, good("a"), good("c"));
    let prepared = prepare("p", body.as_bytes()).expect("the batch is read");
    let ids: Vec<_> = prepared.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(prepared.results[1].id, "batch[1]");
    let error = prepared.results[1].outcome.as_ref().expect_err("bad event");
    assert!(error.error.contains("not valid JSON"), "{}", error.error);
}

#[test]
fn a_batch_over_the_event_cap_is_refused_before_parsing_events() {
    let limits = IngestLimits {
        max_events_per_batch: 100,
        ..IngestLimits::default()
    };
    let body = format!(r#"{{"batch":[{}]}}"#, vec!["{}"; 101].join(","));
    match prepare_with("p", body.as_bytes(), &limits, None) {
        Err(
            e @ BatchError::TooManyEvents {
                events: 101,
                limit: 100,
            },
        ) => {
            assert!(
                e.to_string().contains("ingest.max_events_per_batch = 100"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    let body = format!(r#"{{"batch":[{}]}}"#, vec!["{}"; 100].join(","));
    let prepared = prepare_with("p", body.as_bytes(), &limits, None).expect("at the cap");
    assert_eq!(prepared.results.len(), 100);
}

#[test]
fn events_outside_the_time_window_fail_alone() {
    let now = 1_767_225_600 * SEC; // 2026-01-01T00:00:00Z
    let body = batch(vec![
        event(
            "now",
            "span-create",
            "2026-01-01T00:00:00Z",
            json!({"id": "s1", "traceId": "t", "startTime": "2026-01-01T00:00:00Z"}),
        ),
        event(
            "future",
            "span-create",
            "2026-01-01T00:00:00Z",
            json!({"id": "s2", "traceId": "t", "startTime": "2255-01-01T00:00:00Z"}),
        ),
    ]);
    let prepared = prepare_with("p", &body, &IngestLimits::default(), Some(now)).expect("batch");
    let ids: Vec<_> = prepared.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids, ["s1"]);
    let error = prepared.results[1].outcome.as_ref().expect_err("future");
    assert!(error.error.contains("body.startTime"), "{}", error.error);
    assert!(
        error.error.contains("ingest.max_future_skew"),
        "{}",
        error.error
    );
}
