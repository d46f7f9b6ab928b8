//! A plain OpenTelemetry Python SDK export (OpenInference attributes plus
//! `dify.*` attributes on the root, no Dify provider markers).

use loupe_model::{SpanKind, Status};

use crate::support::{Expect, attr, by_id, check, normalise_all, request};

const TRACE: &str = "083c7dfdebaa5be244fdd89344951d0f";
const ROOT: &str = "1d5e7149d74d4eae";
const LLM: &str = "73421825df2d2d98";
const TOOL: &str = "29db1f41c76bdccd";

#[test]
fn sdk_trace_maps_workflow_llm_and_failed_tool() {
    let spans = normalise_all(request("clients/otlp_traces.bin"));
    let expect = |span_id, name, kind, parent, status, raw_status| Expect {
        span_id,
        name,
        kind,
        node_type: None,
        parent,
        run_id: Some(TRACE),
        status,
        raw_status,
    };
    check(
        &spans,
        TRACE,
        &[
            expect(
                ROOT,
                "workflow_run",
                SpanKind::Workflow,
                None,
                Status::Unset,
                "STATUS_CODE_UNSET",
            ),
            expect(
                LLM,
                "llm_node",
                SpanKind::Llm,
                Some(ROOT),
                Status::Unset,
                "STATUS_CODE_UNSET",
            ),
            expect(
                TOOL,
                "tool_node",
                SpanKind::Tool,
                Some(ROOT),
                Status::Error,
                "STATUS_CODE_ERROR",
            ),
        ],
    );

    let root = by_id(&spans, ROOT);
    assert_eq!(
        root.app_id.as_deref(),
        Some("app-123"),
        "dify.app_id wins over service.name"
    );
    assert_eq!(root.input.as_deref(), Some("hello"));
    assert_eq!(attr(root, "dify.workflow_run_id"), Some("run-1"));
    assert_eq!(attr(root, "openinference.span.kind"), None, "consumed");
    assert_eq!(
        attr(root, "resource.service.name"),
        Some("dify-observer-test")
    );
    assert_eq!(attr(root, "resource.telemetry.sdk.version"), Some("1.45.2"));
    assert_eq!(attr(root, "otel.scope.name"), Some("peers-smoke"));

    let llm = by_id(&spans, LLM);
    assert_eq!(llm.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(
        (llm.input_tokens, llm.output_tokens, llm.total_tokens),
        (Some(12), Some(34), Some(46))
    );
    assert_eq!(
        (llm.input.as_deref(), llm.output.as_deref()),
        (Some("hi"), Some("hello there"))
    );
    assert_eq!(
        llm.app_id.as_deref(),
        Some("dify-observer-test"),
        "service.name fallback"
    );
    assert_eq!(llm.app_name.as_deref(), Some("dify-observer-test"));
    assert_eq!(attr(llm, "llm.token_count.total"), None, "consumed");

    let tool = by_id(&spans, TOOL);
    assert_eq!(tool.tool_name.as_deref(), Some("search"));
    assert_eq!(tool.error_message.as_deref(), Some("tool failed"));
    assert_eq!(tool.error_class, None, "no exception event, no error.type");
}
