//! Mapping rules on small hand-made bodies; the recorded Dify and SDK
//! batches are replayed in `loupe-ingest` (`langfuse/tests.rs`).

use loupe_model::{SpanKind, Status};
use serde_json::{Value, json};

use super::*;

fn map(event_type: &str, body: Value) -> Result<Vec<Span>, ItemError> {
    let event = Event {
        id: "ev-1",
        event_type: EventType::parse(event_type).expect("known type"),
        timestamp: Some(1_000),
        body: &body,
    };
    normalise("p", &event)
}

fn one(event_type: &str, body: Value) -> Span {
    let mut spans = map(event_type, body).expect("maps");
    assert_eq!(spans.len(), 1, "{spans:?}");
    spans.remove(0)
}

#[test]
fn event_types_parse_including_typed_creates_and_reject_unknown_ones() {
    assert_eq!(
        EventType::parse("guardrail-create"),
        Some(EventType::ObservationCreate(ObservationType::Guardrail))
    );
    assert!(EventType::parse("generation-update").is_some_and(EventType::is_update));
    for bad in [
        "dataset-run-item-create",
        "trace-update",
        "span",
        "bogus-create",
    ] {
        assert_eq!(EventType::parse(bad), None, "{bad}");
    }
}

#[test]
fn generation_usage_details_win_over_legacy_usage_and_cost_details_give_cost() {
    let span = one(
        "generation-create",
        json!({
            "id": "g1", "traceId": "t1", "model": "gpt-4o",
            "usage": {"input": 1, "output": 2, "unit": "TOKENS", "totalCost": 9.0},
            "usageDetails": {"prompt_tokens": 10, "completion_tokens": 5,
                             "prompt_tokens_details": {"cached_tokens": 3}},
            "costDetails": {"input": 0.25, "output": 0.5},
            "unknownField": {"ignored": true}
        }),
    );
    assert_eq!(span.span_kind, Some(SpanKind::Llm));
    assert_eq!(span.parent_span_id.as_deref(), Some("t1"));
    assert_eq!(span.run_id.as_deref(), Some("t1"));
    assert_eq!(
        (span.input_tokens, span.output_tokens, span.total_tokens),
        (Some(10), Some(5), Some(15))
    );
    assert_eq!(span.cost, Some(0.75));
    assert_eq!(span.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(
        span.start_time,
        Some(1_000),
        "event time fills a create's start"
    );
    assert!(span.attributes["langfuse.usage_details"].contains("cached_tokens"));
}

#[test]
fn character_usage_is_not_counted_as_tokens() {
    let span = one(
        "generation-create",
        json!({"id": "g", "traceId": "t", "usage": {"input": 40, "output": 8, "unit": "CHARACTERS"}}),
    );
    assert_eq!(span.input_tokens, None);
    assert!(span.attributes["langfuse.usage"].contains("CHARACTERS"));
}

#[test]
fn update_sets_only_what_it_carries_and_never_moves_the_span() {
    let span = one(
        "span-update",
        json!({"id": "s1", "traceId": "t1", "endTime": "2026-11-24T18:57:18.5Z", "output": "done"}),
    );
    assert_eq!(span.parent_span_id, None);
    assert_eq!(span.start_time, None);
    assert_eq!(span.name, None);
    assert_eq!(span.span_kind, None);
    assert_eq!(span.status, Some(Status::Ok));
    assert_eq!(span.output.as_deref(), Some("done"));
}

#[test]
fn level_error_without_dify_status_is_the_spans_own_error() {
    let span = one(
        "span-create",
        json!({"id": "s", "traceId": "t", "level": "ERROR", "statusMessage": "boom"}),
    );
    assert_eq!(span.status, Some(Status::Error));
    assert_eq!(span.error_message.as_deref(), Some("boom"));
}

#[test]
fn dify_node_that_succeeded_in_a_failed_run_keeps_ok_and_reports_the_run_error() {
    let spans = map(
        "span-create",
        json!({
            "id": "n1", "traceId": "run", "name": "Start", "level": "DEFAULT",
            "statusMessage": "[Errno 111] Connection refused", "parentObservationId": null,
            "metadata": {"node_type": "start", "status": "succeeded", "workflow_run_id": "run"}
        }),
    )
    .expect("maps");
    assert_eq!(spans.len(), 2);
    let node = &spans[0];
    assert_eq!(node.status, Some(Status::Ok));
    assert_eq!(node.error_message, None);
    assert_eq!(node.span_kind, Some(SpanKind::Chain));
    let run = &spans[1];
    assert_eq!(run.span_id, "run");
    assert_eq!(
        run.error_message.as_deref(),
        Some("[Errno 111] Connection refused")
    );
}

#[test]
fn score_becomes_a_score_span_under_its_observation() {
    let span = one(
        "score-create",
        json!({"id": "sc", "traceId": "t", "observationId": "g", "name": "quality", "value": 0.9, "comment": "ok"}),
    );
    assert_eq!(span.node_type.as_deref(), Some(SCORE_NODE_TYPE));
    assert_eq!(span.parent_span_id.as_deref(), Some("g"));
    assert_eq!(span.attributes["score.value"], "0.9");
    assert_eq!(span.attributes["score.data_type"], "NUMERIC");
    assert_eq!(span.attributes["score.comment"], "ok");
}

#[test]
fn invalid_bodies_name_the_field() {
    let cases = [
        ("span-create", json!({"traceId": "t"}), "body.id"),
        (
            "span-create",
            json!({"id": "s", "startTime": "yesterday"}),
            "body.startTime",
        ),
        ("trace-create", json!({"id": "t", "tags": "x"}), "body.tags"),
        (
            "score-create",
            json!({"traceId": "t", "name": "q", "value": "a", "dataType": "NUMERIC"}),
            "body.value",
        ),
        (
            "score-create",
            json!({"name": "q", "value": 1}),
            "body.traceId",
        ),
        (
            "observation-create",
            json!({"id": "o", "type": "WHAT"}),
            "body.type",
        ),
    ];
    for (event_type, body, field) in cases {
        let err = map(event_type, body).expect_err(field);
        assert_eq!(err.field, field, "{err}");
    }
    let err = map("span-create", json!([1])).expect_err("not an object");
    assert_eq!(err.field, "body");
}

#[test]
fn times_parse_with_offsets_and_without() {
    let z = parse_time("2026-11-24T18:57:23.200626Z");
    assert_eq!(z, parse_time("2026-11-24T18:57:23.200626+00:00"));
    assert_eq!(z, parse_time("2026-11-24T18:57:23.200626"));
    assert_eq!(parse_time("nope"), None);
}

#[test]
fn a_dify_trace_ends_elapsed_time_after_its_start() {
    let span = one(
        "trace-create",
        json!({
            "id": "run-1", "name": "workflow",
            "input": {"sys.timestamp": 1_795_546_543, "query": "hi"},
            "metadata": {"workflow_run_id": "run-1", "elapsed_time": 0.125109}
        }),
    );
    assert_eq!(span.start_time, Some(1_795_546_543_000_000_000));
    assert_eq!(span.end_time, Some(1_795_546_543_125_109_000));
    let no_elapsed = one(
        "trace-create",
        json!({"id": "run-2", "name": "workflow", "timestamp": "2026-11-24T18:55:43Z"}),
    );
    assert_eq!(
        no_elapsed.end_time, None,
        "no elapsed time, no invented end"
    );
}
