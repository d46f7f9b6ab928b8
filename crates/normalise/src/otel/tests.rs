//! Unit tests of the OTel mapping, one hand-made span per rule.

use loupe_model::{INGEST_VERSION, Span, SpanKind, Status};

use super::*;

const TRACE: &str = "0102030405060708090a0b0c0d0e0f10";
const SPAN: &str = "1112131415161718";
const PARENT: &str = "2122232425262728";

fn s(text: &str) -> AttrValue {
    AttrValue::Str(text.to_owned())
}

fn attrs(items: &[(&str, AttrValue)]) -> Attributes {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn span(parent: Option<&str>, items: &[(&str, AttrValue)]) -> OtelSpan {
    OtelSpan {
        trace_id: TRACE.to_owned(),
        span_id: SPAN.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        name: "op".to_owned(),
        kind: OtelKind::Internal,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 3_000,
        attributes: attrs(items),
        scope_name: "scope".to_owned(),
        ..OtelSpan::default()
    }
}

fn map(span: &OtelSpan) -> Span {
    normalise("p", span).expect("span normalises")
}

fn attr<'a>(out: &'a Span, key: &str) -> Option<&'a str> {
    out.attributes.get(key).map(String::as_str)
}

fn dify_node(node_type: &str, status: &str, message: &str) -> OtelSpan {
    let metadata = serde_json::json!({
        "node_id": "n-1", "node_type": node_type, "node_status": status,
        "tenant_id": "t-1", "app_id": "app-1", "app_name": "My Title",
        "status": status, "status_message": message, "level": "DEFAULT",
        "total_tokens": 30, "total_price": 0.25, "currency": "USD",
    });
    let mut span = span(
        Some(PARENT),
        &[
            ("openinference.span.kind", s("CHAIN")),
            ("metadata", s(&metadata.to_string())),
            ("session.id", s("sess-1")),
        ],
    );
    span.name = format!("{node_type}_My Title");
    span
}

#[test]
fn identity_times_and_provenance_are_copied() {
    let out = map(&span(Some(PARENT), &[]));
    assert_eq!(out.project, "p");
    assert_eq!(out.trace_id.as_deref(), Some(TRACE));
    assert_eq!(out.span_id, SPAN);
    assert_eq!(out.parent_span_id.as_deref(), Some(PARENT));
    assert_eq!((out.start_time, out.end_time), (Some(1_000), Some(3_000)));
    assert_eq!(out.source.as_deref(), Some("otlp"));
    assert_eq!(out.ingest_version, Some(INGEST_VERSION));
    assert_eq!(attr(&out, "otel.scope.name"), Some("scope"));
    assert_eq!(attr(&out, "otel.span_kind"), Some("internal"));
}

/// Breaks one field of a valid span.
type Spoil = fn(&mut OtelSpan);

#[test]
fn bad_ids_and_times_name_the_field() {
    let cases: [(&str, Spoil); 6] = [
        ("spanId", |s| s.span_id = "aabbcc".into()),
        ("traceId", |s| s.trace_id = "00".repeat(16)),
        ("traceId", |s| s.trace_id = TRACE.to_uppercase()),
        ("parentSpanId", |s| s.parent_span_id = Some("abcd".into())),
        ("startTimeUnixNano", |s| s.start_time_unix_nano = u64::MAX),
        ("endTimeUnixNano", |s| s.end_time_unix_nano = 1 << 63),
    ];
    for (field, spoil) in cases {
        let mut bad = span(None, &[]);
        spoil(&mut bad);
        let err = normalise("p", &bad).expect_err(field);
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn zero_parent_and_zero_times_mean_root_and_unknown() {
    let mut root = span(Some("0000000000000000"), &[]);
    root.start_time_unix_nano = 0;
    root.end_time_unix_nano = 5;
    let out = map(&root);
    assert_eq!(out.parent_span_id, None);
    assert_eq!((out.start_time, out.end_time), (None, Some(5)));
}

#[test]
fn end_before_start_is_kept_as_sent() {
    let mut odd = span(None, &[]);
    odd.end_time_unix_nano = 10;
    let out = map(&odd);
    assert_eq!((out.start_time, out.end_time), (Some(1_000), Some(10)));
}

#[test]
fn generic_llm_span_maps_openinference_and_keeps_the_rest() {
    let mut llm = span(
        Some(PARENT),
        &[
            ("openinference.span.kind", s("LLM")),
            ("llm.model_name", s("gpt-4o")),
            ("llm.provider", s("openai")),
            ("llm.token_count.prompt", AttrValue::Int(12)),
            ("llm.token_count.completion", s("34")),
            ("llm.cost.total", AttrValue::Double(0.5)),
            ("input.value", s("hi")),
            ("output.value", s("hello")),
            ("input.mime_type", s("text/plain")),
            (
                "custom.list",
                AttrValue::Array(vec![AttrValue::Int(1), s("a")]),
            ),
        ],
    );
    llm.resource_attributes = attrs(&[("service.name", s("shop-bot"))]);
    let out = map(&llm);
    assert_eq!(out.span_kind, Some(SpanKind::Llm));
    assert_eq!(out.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(out.model_provider.as_deref(), Some("openai"));
    assert_eq!(
        (out.input_tokens, out.output_tokens, out.total_tokens),
        (Some(12), Some(34), Some(46))
    );
    assert_eq!(
        (out.cost, out.currency.as_deref()),
        (Some(0.5), Some("USD"))
    );
    assert_eq!(
        (out.input.as_deref(), out.output.as_deref()),
        (Some("hi"), Some("hello"))
    );
    assert_eq!(out.run_id.as_deref(), Some(TRACE));
    assert_eq!(out.app_id.as_deref(), Some("shop-bot"));
    assert_eq!(out.app_name.as_deref(), Some("shop-bot"));
    assert_eq!(attr(&out, "input.mime_type"), Some("text/plain"));
    assert_eq!(attr(&out, "custom.list"), Some(r#"[1,"a"]"#));
    assert_eq!(attr(&out, "resource.service.name"), Some("shop-bot"));
    assert_eq!(attr(&out, "llm.model_name"), None, "consumed");
    assert_eq!(out.status, Some(Status::Unset));
    assert_eq!(out.raw_status.as_deref(), Some("STATUS_CODE_UNSET"));
    assert_eq!(out.error_message, None);
}

#[test]
fn root_spans_are_workflows_and_children_fall_back_to_http_or_other() {
    let kind = |parent, items: &[(&str, AttrValue)]| map(&span(parent, items)).span_kind;
    assert_eq!(kind(None, &[]), Some(SpanKind::Workflow));
    assert_eq!(
        kind(None, &[("openinference.span.kind", s("CHAIN"))]),
        Some(SpanKind::Workflow)
    );
    assert_eq!(
        kind(None, &[("openinference.span.kind", s("TOOL"))]),
        Some(SpanKind::Tool)
    );
    assert_eq!(
        kind(Some(PARENT), &[("openinference.span.kind", s("CHAIN"))]),
        Some(SpanKind::Chain)
    );
    assert_eq!(
        kind(Some(PARENT), &[("http.request.method", s("GET"))]),
        Some(SpanKind::Http)
    );
    assert_eq!(kind(Some(PARENT), &[]), Some(SpanKind::Other));
}

#[test]
fn higher_priority_conventions_win_and_shadowed_keys_stay_attributes() {
    let out = map(&span(
        Some(PARENT),
        &[
            ("gen_ai.request.model", s("genai-model")),
            ("llm.model_name", s("oi-model")),
            ("langfuse.observation.model.name", s("lf-model")),
            ("langfuse.observation.type", s("generation")),
            ("openinference.span.kind", s("CHAIN")),
            (
                "langfuse.observation.usage_details",
                s(r#"{"input":3,"output":4,"cache_read":1}"#),
            ),
        ],
    ));
    assert_eq!(out.model_name.as_deref(), Some("lf-model"));
    assert_eq!(out.span_kind, Some(SpanKind::Llm));
    assert_eq!(attr(&out, "llm.model_name"), Some("oi-model"));
    assert_eq!(attr(&out, "gen_ai.request.model"), Some("genai-model"));
    assert_eq!(attr(&out, "openinference.span.kind"), Some("CHAIN"));
    assert_eq!(
        (out.input_tokens, out.output_tokens, out.total_tokens),
        (Some(3), Some(4), Some(7))
    );
    assert!(
        attr(&out, "langfuse.observation.usage_details").is_some(),
        "details kept"
    );
}

#[test]
fn genai_attributes_map_kind_model_usage_session_and_user() {
    let out = map(&span(
        Some(PARENT),
        &[
            ("gen_ai.operation.name", s("chat")),
            ("gen_ai.response.model", s("qwen-max")),
            ("gen_ai.system", s("dashscope")),
            ("gen_ai.usage.prompt_tokens", AttrValue::Int(5)),
            ("gen_ai.usage.output_tokens", AttrValue::Double(6.0)),
            ("gen_ai.usage.total_tokens", AttrValue::Int(11)),
            ("gen_ai.conversation.id", s("conv-1")),
            ("gen_ai.user.id", s("u-1")),
            ("gen_ai.entity.input", s("in")),
            ("gen_ai.usage.cost", AttrValue::Double(0.01)),
        ],
    ));
    assert_eq!(out.span_kind, Some(SpanKind::Llm));
    assert_eq!(out.model_name.as_deref(), Some("qwen-max"));
    assert_eq!(out.model_provider.as_deref(), Some("dashscope"));
    assert_eq!(
        (out.input_tokens, out.output_tokens, out.total_tokens),
        (Some(5), Some(6), Some(11))
    );
    assert_eq!(out.session_id.as_deref(), Some("conv-1"));
    assert_eq!(out.user_id.as_deref(), Some("u-1"));
    assert_eq!(out.input.as_deref(), Some("in"));
    assert_eq!(out.cost, Some(0.01));
}

#[test]
fn aliyun_and_tencent_span_kinds_map() {
    for (text, kind) in [
        ("GENERATION", SpanKind::Llm),
        ("RETRIEVER", SpanKind::Retrieval),
        ("RERANKER", SpanKind::Rerank),
        ("TASK", SpanKind::Chain),
        ("WORKFLOW", SpanKind::Workflow),
    ] {
        let out = map(&span(Some(PARENT), &[("gen_ai.span.kind", s(text))]));
        assert_eq!(out.span_kind, Some(kind), "{text}");
    }
}

#[test]
fn traceloop_attributes_map_tool_spans_and_usage() {
    let out = map(&span(
        Some(PARENT),
        &[
            ("traceloop.span.kind", s("tool")),
            ("traceloop.entity.name", s("search")),
            ("traceloop.entity.input", s("{\"q\":1}")),
            ("llm.usage.total_tokens", AttrValue::Int(9)),
        ],
    ));
    assert_eq!(out.span_kind, Some(SpanKind::Tool));
    assert_eq!(out.tool_name.as_deref(), Some("search"));
    assert_eq!(out.input.as_deref(), Some("{\"q\":1}"));
    assert_eq!(out.total_tokens, Some(9));
}

#[test]
fn errors_come_from_status_then_exception_event_and_other_events_are_kept() {
    let mut failed = span(Some(PARENT), &[("error.type", s("Timeout"))]);
    failed.status_code = StatusCode::Error;
    failed.events = vec![
        OtelEvent {
            name: "retry".into(),
            time_unix_nano: 7,
            attributes: attrs(&[("attempt", AttrValue::Int(2))]),
        },
        OtelEvent {
            name: "exception".into(),
            time_unix_nano: 9,
            attributes: attrs(&[
                ("exception.type", s("ValueError")),
                ("exception.message", s("bad input")),
                ("exception.stacktrace", s("Traceback ...")),
            ]),
        },
    ];
    let out = map(&failed);
    assert_eq!(out.status, Some(Status::Error));
    assert_eq!(out.raw_status.as_deref(), Some("STATUS_CODE_ERROR"));
    assert_eq!(out.error_message.as_deref(), Some("bad input"));
    assert_eq!(out.error_class.as_deref(), Some("ValueError"));
    assert_eq!(attr(&out, "exception.stacktrace"), Some("Traceback ..."));
    assert_eq!(attr(&out, "error.type"), Some("Timeout"), "not used, kept");
    assert_eq!(
        attr(&out, "events"),
        Some(r#"[{"attributes":{"attempt":2},"name":"retry","time_unix_nano":7}]"#)
    );
}

#[test]
fn http_errors_get_an_http_class_and_status_message_wins() {
    let mut failed = span(
        Some(PARENT),
        &[
            ("http.method", s("POST")),
            ("http.response.status_code", AttrValue::Int(503)),
        ],
    );
    failed.status_code = StatusCode::Error;
    failed.status_message = "upstream down".into();
    let out = map(&failed);
    assert_eq!(out.span_kind, Some(SpanKind::Http));
    assert_eq!(out.error_message.as_deref(), Some("upstream down"));
    assert_eq!(out.error_class.as_deref(), Some("http_503"));
    assert_eq!(attr(&out, "http.response.status_code"), Some("503"));
}

#[test]
fn langfuse_error_level_marks_an_unset_span_as_failed() {
    let out = map(&span(
        Some(PARENT),
        &[
            ("langfuse.observation.level", s("ERROR")),
            ("langfuse.observation.status_message", s("quota")),
        ],
    ));
    assert_eq!(out.status, Some(Status::Error));
    assert_eq!(out.raw_status.as_deref(), Some("ERROR"));
    assert_eq!(out.error_message.as_deref(), Some("quota"));
}

#[test]
fn dify_root_span_names_the_run_and_is_a_chain() {
    let mut root = span(
        None,
        &[
            ("openinference.span.kind", s("CHAIN")),
            ("dify_project_name", s("proj")),
            ("dify_trace_id", s("run-uuid")),
        ],
    );
    root.status_code = StatusCode::Ok;
    root.name = "run-uuid".into();
    let out = map(&root);
    assert_eq!(out.span_kind, Some(SpanKind::Chain));
    assert_eq!(out.run_id.as_deref(), Some("run-uuid"));
    assert_eq!(out.name.as_deref(), Some("run-uuid"));
    assert_eq!(out.status, Some(Status::Ok));
    assert_eq!(out.raw_status.as_deref(), Some("STATUS_CODE_OK"));
    assert_eq!(attr(&out, "dify_project_name"), Some("proj"));
    assert_eq!(attr(&out, "dify_trace_id"), None);
}

#[test]
fn dify_workflow_span_carries_the_run_fields_from_metadata() {
    let metadata = serde_json::json!({
        "workflow_id": "wf-1", "workflow_run_id": "run-1", "status": "failed",
        "status_message": "node HTTP failed", "version": "2026-01-01", "user_id": "u-1",
        "app_id": "app-1", "app_name": "", "total_tokens": 99, "elapsed_time": 0.5,
    });
    let mut workflow = span(
        Some(PARENT),
        &[
            ("metadata", s(&metadata.to_string())),
            ("session.id", s("sess-9")),
        ],
    );
    workflow.name = "workflow_run-1".into();
    workflow.status_code = StatusCode::Error;
    workflow.status_message = "long traceback".into();
    let out = map(&workflow);
    assert_eq!(out.span_kind, Some(SpanKind::Workflow));
    assert_eq!(out.run_id.as_deref(), Some("run-1"));
    assert_eq!(out.workflow_id.as_deref(), Some("wf-1"));
    assert_eq!(out.workflow_version.as_deref(), Some("2026-01-01"));
    assert_eq!(out.user_id.as_deref(), Some("u-1"));
    assert_eq!(out.app_id.as_deref(), Some("app-1"));
    assert_eq!(out.app_name, None, "empty app_name is no name");
    assert_eq!(out.session_id.as_deref(), Some("sess-9"));
    assert_eq!(
        (out.status, out.raw_status.as_deref()),
        (Some(Status::Error), Some("failed"))
    );
    assert_eq!(out.error_message.as_deref(), Some("node HTTP failed"));
    assert_eq!(
        out.total_tokens, None,
        "a run total would double count its nodes"
    );
    assert_eq!(attr(&out, "metadata.total_tokens"), Some("99"));
    assert_eq!(attr(&out, "metadata.elapsed_time"), Some("0.5"));
    assert_eq!(attr(&out, "metadata"), None);
}

#[test]
fn dify_node_span_uses_node_type_title_and_no_run_id() {
    let out = map(&dify_node("tool", "succeeded", ""));
    assert_eq!(out.node_type.as_deref(), Some("tool"));
    assert_eq!(out.span_kind, Some(SpanKind::Tool));
    assert_eq!(out.name.as_deref(), Some("My Title"));
    assert_eq!(attr(&out, "otel.span_name"), Some("tool_My Title"));
    assert_eq!(out.tool_name.as_deref(), Some("My Title"));
    assert_eq!(out.app_id.as_deref(), Some("app-1"));
    assert_eq!(out.app_name, None, "app_name on nodes is the title");
    assert_eq!(out.run_id, None);
    assert_eq!(out.session_id.as_deref(), Some("sess-1"));
    assert_eq!(
        (out.status, out.raw_status.as_deref()),
        (Some(Status::Ok), Some("succeeded"))
    );
    assert_eq!(out.total_tokens, Some(30));
    assert_eq!(
        (out.cost, out.currency.as_deref()),
        (Some(0.25), Some("USD"))
    );
    assert_eq!(attr(&out, "metadata.app_name"), Some("My Title"));
    assert_eq!(attr(&out, "openinference.span.kind"), Some("CHAIN"));
}

#[test]
fn dify_container_nodes_do_not_claim_their_childrens_usage() {
    let out = map(&dify_node("iteration", "succeeded", ""));
    assert_eq!(out.span_kind, Some(SpanKind::Branch));
    assert_eq!((out.total_tokens, out.cost), (None, None));
}

#[test]
fn dify_failed_node_reports_the_status_message_not_the_str_class() {
    let mut node = dify_node("http-request", "failed", "HTTP 500 from api");
    node.status_code = StatusCode::Error;
    node.status_message = "str: HTTP 500 from api\n\ntrace".into();
    node.events = vec![OtelEvent {
        name: "exception".into(),
        time_unix_nano: 1,
        attributes: attrs(&[
            ("exception.type", s("str")),
            ("exception.message", s("HTTP 500 from api")),
            ("exception.stacktrace", s("str: HTTP 500 from api")),
        ]),
    }];
    let out = map(&node);
    assert_eq!(out.span_kind, Some(SpanKind::Http));
    assert_eq!(
        (out.status, out.raw_status.as_deref()),
        (Some(Status::Error), Some("failed"))
    );
    assert_eq!(out.error_message.as_deref(), Some("HTTP 500 from api"));
    assert_eq!(out.error_class, None);
    assert_eq!(attr(&out, "exception.type"), Some("str"));
    assert_eq!(
        attr(&out, "exception.message"),
        None,
        "already the error message"
    );
    assert!(attr(&out, "events").is_none());
}

#[test]
fn dify_statuses_map_and_unknown_ones_fall_back_to_the_otel_code() {
    for (raw, code, status) in [
        ("succeeded", StatusCode::Unset, Status::Ok),
        ("partial-succeeded", StatusCode::Ok, Status::Ok),
        ("exception", StatusCode::Ok, Status::Error),
        ("stopped", StatusCode::Unset, Status::Error),
        ("running", StatusCode::Unset, Status::Running),
        ("paused", StatusCode::Unset, Status::Running),
        ("brand-new", StatusCode::Ok, Status::Ok),
        ("brand-new", StatusCode::Error, Status::Error),
    ] {
        let mut node = dify_node("code", raw, "");
        node.status_code = code;
        let out = map(&node);
        assert_eq!(out.status, Some(status), "{raw}");
        assert_eq!(out.raw_status.as_deref(), Some(raw));
    }
}

#[test]
fn dify_node_types_map_to_kinds() {
    for (node_type, kind) in [
        ("llm", SpanKind::Llm),
        ("parameter-extractor", SpanKind::Llm),
        ("knowledge-retrieval", SpanKind::Retrieval),
        ("agent", SpanKind::Agent),
        ("code", SpanKind::Code),
        ("question-classifier", SpanKind::Branch),
        ("loop-start", SpanKind::Branch),
        ("template-transform", SpanKind::Chain),
        ("document-extractor", SpanKind::Chain),
        ("trigger-webhook", SpanKind::Other),
    ] {
        let out = map(&dify_node(node_type, "succeeded", ""));
        assert_eq!(out.span_kind, Some(kind), "{node_type}");
        assert_eq!(out.node_type.as_deref(), Some(node_type));
    }
}

#[test]
fn dify_enable_otel_node_spans_use_node_type_and_the_trace_as_run() {
    let mut node = span(
        Some(PARENT),
        &[
            ("node.id", s("llm-1")),
            ("node.execution_id", s("exec-1")),
            ("node.type", s("llm")),
            ("gen_ai.framework", s("dify")),
            ("gen_ai.span.kind", s("LLM")),
            ("gen_ai.request.model", s("gpt-4o-mini")),
            ("gen_ai.usage.input_tokens", AttrValue::Int(1)),
        ],
    );
    node.resource_attributes = attrs(&[("service.name", s("langgenius/dify"))]);
    let out = map(&node);
    assert_eq!(out.node_type.as_deref(), Some("llm"));
    assert_eq!(out.span_kind, Some(SpanKind::Llm));
    assert_eq!(out.model_name.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(out.run_id.as_deref(), Some(TRACE));
    assert_eq!(
        out.app_id, None,
        "the service name is Dify itself, not the app"
    );
    assert_eq!(attr(&out, "node.execution_id"), Some("exec-1"));
    assert_eq!(attr(&out, "gen_ai.span.kind"), Some("LLM"));
    // Stored under the execution id, the database sync's id for the node.
    assert_eq!(out.span_id, "exec-1");
    assert_eq!(attr(&out, "otel.span_id"), Some(SPAN));
}

#[test]
fn an_enable_otel_nodes_children_follow_it_to_its_execution_id_in_any_request() {
    let node = span(
        Some(PARENT),
        &[("node.execution_id", s("exec-7")), ("node.type", s("tool"))],
    );
    let mut child = span(Some(SPAN), &[("http.request.method", s("GET"))]);
    child.span_id = "3132333435363738".into();
    // The same request.
    let mut spans = vec![map(&child), map(&node)];
    link(&mut spans, None);
    assert_eq!(spans[0].parent_span_id.as_deref(), Some("exec-7"));
    assert_eq!(
        spans[1].parent_span_id.as_deref(),
        Some(PARENT),
        "unknown parents stay"
    );
    // A later request, through a server's cache.
    let cache = IdCache::default();
    let mut first = vec![map(&node)];
    link(&mut first, Some(&cache));
    let mut later = vec![map(&child)];
    link(&mut later, Some(&cache));
    assert_eq!(later[0].parent_span_id.as_deref(), Some("exec-7"));
    // Other traffic is left alone.
    let mut other = child.clone();
    other.trace_id = "ffffffffffffffffffffffffffffffff".into();
    let mut unrelated = vec![map(&other)];
    link(&mut unrelated, Some(&cache));
    assert_eq!(unrelated[0].parent_span_id.as_deref(), Some(SPAN));
}

#[test]
fn non_dify_metadata_is_flattened_too_and_bad_json_is_kept_verbatim() {
    let out = map(&span(
        Some(PARENT),
        &[("metadata", s(r#"{"a":"x","b":[1]}"#))],
    ));
    assert_eq!(attr(&out, "metadata.a"), Some("x"));
    assert_eq!(attr(&out, "metadata.b"), Some("[1]"));
    assert_eq!(out.run_id.as_deref(), Some(TRACE));
    let out = map(&span(Some(PARENT), &[("metadata", s("not json"))]));
    assert_eq!(attr(&out, "metadata"), Some("not json"));
}

#[test]
fn attribute_values_render_as_text() {
    let out = map(&span(
        Some(PARENT),
        &[
            ("b", AttrValue::Bool(true)),
            ("d", AttrValue::Double(1.5)),
            ("bytes", AttrValue::Bytes(vec![1, 2, 3])),
            ("m", AttrValue::Map(attrs(&[("k", AttrValue::Int(1))]))),
            ("e", AttrValue::Empty),
        ],
    ));
    assert_eq!(attr(&out, "b"), Some("true"));
    assert_eq!(attr(&out, "d"), Some("1.5"));
    assert_eq!(attr(&out, "bytes"), Some("AQID"));
    assert_eq!(attr(&out, "m"), Some(r#"{"k":1}"#));
    assert_eq!(attr(&out, "e"), Some(""));
}

#[test]
fn links_are_kept_as_json() {
    let mut linked = span(Some(PARENT), &[]);
    linked.links = vec![OtelLink {
        trace_id: TRACE.into(),
        span_id: SPAN.into(),
        trace_state: String::new(),
        attributes: attrs(&[("ext", s("1"))]),
    }];
    let out = map(&linked);
    let links: serde_json::Value =
        serde_json::from_str(attr(&out, "links").expect("links kept")).expect("json");
    assert_eq!(links[0]["trace_id"], TRACE);
    assert_eq!(links[0]["attributes"]["ext"], "1");
}

/// A Dify Agent trajectory (1.16+, `DIFY_AGENT_TRAJECTORY_*`): Pydantic AI's
/// GenAI spans from the agent sandbox, under its own service name. Dify's
/// code links them to no run (its unified-trace agent collector is not fed
/// in 1.20), so each trajectory is a run of its own, by trace.
#[test]
fn dify_agent_trajectory_spans_map_to_agent_llm_and_tool() {
    let resource = attrs(&[("service.name", s("dify-agent-trajectory"))]);
    let mut agent = span(
        None,
        &[
            ("gen_ai.operation.name", s("invoke_agent")),
            ("gen_ai.agent.name", s("support-agent")),
        ],
    );
    agent.name = "invoke_agent support-agent".into();
    agent.resource_attributes = resource.clone();
    let mut chat = span(
        Some(SPAN),
        &[
            ("gen_ai.operation.name", s("chat")),
            ("gen_ai.request.model", s("gpt-4o")),
            ("gen_ai.usage.input_tokens", AttrValue::Int(100)),
            ("gen_ai.usage.output_tokens", AttrValue::Int(20)),
        ],
    );
    chat.span_id = PARENT.into();
    chat.resource_attributes = resource.clone();
    let mut tool = span(
        Some(SPAN),
        &[
            ("gen_ai.operation.name", s("execute_tool")),
            ("gen_ai.tool.name", s("lookup_order")),
            ("gen_ai.tool.call.id", s("call-1")),
        ],
    );
    tool.span_id = "3132333435363738".into();
    tool.resource_attributes = resource;

    let agent = map(&agent);
    assert_eq!(agent.span_kind, Some(SpanKind::Agent));
    assert_eq!(agent.run_id.as_deref(), Some(TRACE));
    assert_eq!(agent.app_name.as_deref(), Some("dify-agent-trajectory"));
    assert_eq!(attr(&agent, "gen_ai.agent.name"), Some("support-agent"));
    let chat = map(&chat);
    assert_eq!(chat.span_kind, Some(SpanKind::Llm));
    assert_eq!(chat.total_tokens, Some(120));
    let tool = map(&tool);
    assert_eq!(tool.span_kind, Some(SpanKind::Tool));
    assert_eq!(tool.tool_name.as_deref(), Some("lookup_order"));
    assert_eq!(tool.run_id.as_deref(), Some(TRACE));
}
