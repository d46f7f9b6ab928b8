//! Dify 1.19–1.20's own trace export (the generic OpenTelemetry provider
//! and the Langfuse provider's OTLP), built from the description in
//! `shared/reference/dify-1.20-export.md` by `loupe_gen::dify_export`,
//! encoded with the real protobuf encoder and decoded and normalised as the
//! server does: every span gets Dify's ids, so the run is the one the
//! database sync writes.

use loupe_gen::dify_export::{
    Dialect, ExportNode, ExportRun, ExportUsage, otlp_span_id, request, span_uuid, trace_id,
};
use loupe_ingest::IngestLimits;
use loupe_ingest::otlp::{Encoding, IdCache, decode_request, normalise_with};
use loupe_model::{Span, SpanKind, Status};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::json;

use crate::support::PROJECT;

const TENANT: &str = "c620c103-fd6c-4fef-a6d5-07deeb985b15";
const S: i64 = 1_000_000_000;

fn now() -> i64 {
    loupe_ingest::otlp::now_ns()
}

fn node(exec: &str, node_type: &str, title: &str, at: i64) -> ExportNode {
    ExportNode {
        exec_id: exec.into(),
        node_id: format!("node-{title}"),
        node_type: node_type.into(),
        title: title.into(),
        parent_exec: None,
        start: at,
        end: at + S / 2,
        status: "ok".into(),
        error: None,
        inputs: json!({"in": title}),
        outputs: json!({"out": title}),
        usage: None,
    }
}

/// A run with a start node, an LLM call, a failing tool, an iteration with
/// one LLM call inside and an end node.
fn sample_run() -> ExportRun {
    let t0 = now() - 600 * S;
    let mut llm = node("exec-llm", "llm", "Write answer", t0 + S);
    llm.usage = Some(ExportUsage {
        model: "gpt-4o".into(),
        provider: "openai".into(),
        prompt: 12,
        completion: 30,
        price: 0.0021,
    });
    let mut tool = node("exec-tool", "tool", "Inventory", t0 + 2 * S);
    tool.status = "error".into();
    tool.error = Some("Inventory API timeout after 10s for sku SKU-1234".into());
    let iteration = node("exec-iter", "iteration", "Each item", t0 + 3 * S);
    let mut inner = node("exec-inner", "llm", "Summarise item", t0 + 3 * S + S / 4);
    inner.parent_exec = Some("exec-iter".into());
    inner.usage = Some(ExportUsage {
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        prompt: 5,
        completion: 7,
        price: 0.0001,
    });
    ExportRun {
        tenant_id: TENANT.into(),
        app_id: "app-1".into(),
        app_name: "Shop assistant".into(),
        workflow_id: "wf-1".into(),
        version: "2026-11-20 10:00:00".into(),
        run_id: "2b9a6c7e-8d1f-4a57-9c1e-3f0b2d4e5a61".into(),
        message_id: None,
        conversation_id: None,
        user: "user-42".into(),
        start: t0,
        end: t0 + 5 * S,
        error: Some("Inventory API timeout after 10s for sku SKU-1234".into()),
        inputs: json!({"query": "where is my phone", "category": "phone"}),
        outputs: json!({}),
        nodes: vec![
            node("exec-start", "start", "Start", t0),
            llm,
            tool,
            iteration,
            inner,
            node("exec-end", "end", "End", t0 + 4 * S),
        ],
    }
}

/// Encodes with prost, decodes and normalises as `POST /v1/traces` does.
fn ingest(request: &ExportTraceServiceRequest, ids: &IdCache) -> Vec<Span> {
    let body = request.encode_to_vec();
    let decoded = decode_request(
        &body,
        Encoding::Protobuf,
        false,
        64 << 20,
        &IngestLimits::default(),
    )
    .expect("decodes");
    let out = normalise_with(
        PROJECT,
        decoded,
        &IngestLimits::default(),
        Some(now()),
        Some(ids),
    );
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    out.spans
}

fn by_id<'a>(spans: &'a [Span], id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.span_id == id)
        .unwrap_or_else(|| panic!("no span {id} in {:#?}", ids_of(spans)))
}

fn ids_of(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.span_id.as_str()).collect()
}

#[test]
fn the_opentelemetry_provider_maps_to_difys_own_ids_and_fields() {
    let run = sample_run();
    let spans = ingest(&request(&run, Dialect::OpenTelemetry), &IdCache::default());
    assert_eq!(spans.len(), 7);

    let root = by_id(&spans, &run.run_id);
    assert_eq!(root.trace_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(root.run_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.span_kind, Some(SpanKind::Workflow));
    assert_eq!(root.name.as_deref(), Some("workflow"));
    assert_eq!(root.app_id.as_deref(), Some("app-1"));
    assert_eq!(root.workflow_id.as_deref(), Some("wf-1"));
    assert_eq!(
        root.workflow_version.as_deref(),
        Some("2026-11-20 10:00:00")
    );
    assert_eq!(root.user_id.as_deref(), Some("user-42"));
    assert_eq!(root.session_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(root.status, Some(Status::Error));
    assert_eq!(root.raw_status.as_deref(), Some("error"));
    // The run's usage is its nodes' sum: never counted on the run.
    assert_eq!(
        (root.input_tokens, root.total_tokens, root.cost),
        (None, None, None)
    );
    assert_eq!(root.attributes["dify.tenant_id"], TENANT);
    assert_eq!(
        root.attributes["otel.trace_id"],
        trace_id(TENANT, &run.run_id)
    );
    assert_eq!(
        root.attributes["otel.span_id"],
        otlp_span_id(
            TENANT,
            &run.run_id,
            &span_uuid(TENANT, &run.run_id, &run.run_id)
        )
    );
    assert!(root.input.as_deref().is_some_and(|i| i.contains("phone")));

    let llm = by_id(&spans, "exec-llm");
    assert_eq!(llm.parent_span_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(llm.trace_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(llm.run_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(llm.node_type.as_deref(), Some("llm"));
    assert_eq!(llm.span_kind, Some(SpanKind::Llm));
    assert_eq!(llm.name.as_deref(), Some("Write answer"));
    assert_eq!(llm.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(llm.model_provider.as_deref(), Some("openai"));
    assert_eq!(
        (llm.input_tokens, llm.output_tokens, llm.total_tokens),
        (Some(12), Some(30), Some(42))
    );
    assert_eq!(llm.cost, Some(0.0021));
    assert_eq!(llm.currency.as_deref(), Some("USD"));
    assert_eq!(llm.status, Some(Status::Ok));
    assert_eq!(llm.attributes["otel.span_name"], "llm_Write answer");

    let tool = by_id(&spans, "exec-tool");
    assert_eq!(tool.span_kind, Some(SpanKind::Tool));
    assert_eq!(tool.tool_name.as_deref(), Some("Inventory"));
    assert_eq!(tool.status, Some(Status::Error));
    assert_eq!(
        tool.error_message.as_deref(),
        Some("Inventory API timeout after 10s for sku SKU-1234")
    );

    let iteration = by_id(&spans, "exec-iter");
    assert_eq!(iteration.span_kind, Some(SpanKind::Branch));
    assert_eq!(iteration.total_tokens, None);
    let inner = by_id(&spans, "exec-inner");
    assert_eq!(inner.parent_span_id.as_deref(), Some("exec-iter"));
    assert_eq!(inner.total_tokens, Some(12));
}

/// The fields a user reads, to compare two sources of the same span.
fn facts(s: &Span) -> String {
    format!(
        "{} trace={:?} parent={:?} run={:?} kind={:?} type={:?} name={:?} status={:?} \
         error={:?} model={:?} tokens={:?}/{:?}/{:?} cost={:?} app={:?} wf={:?} version={:?} \
         user={:?} session={:?} start={:?} end={:?}",
        s.span_id,
        s.trace_id,
        s.parent_span_id,
        s.run_id,
        s.span_kind,
        s.node_type,
        s.name,
        s.status,
        s.error_message,
        s.model_name,
        s.input_tokens,
        s.output_tokens,
        s.total_tokens,
        s.cost,
        s.app_id,
        s.workflow_id,
        s.workflow_version,
        s.user_id,
        s.session_id,
        s.start_time,
        s.end_time,
    )
}

#[test]
fn the_langfuse_otlp_provider_gives_the_same_run_field_by_field() {
    let run = sample_run();
    let otel = ingest(&request(&run, Dialect::OpenTelemetry), &IdCache::default());
    let langfuse = ingest(&request(&run, Dialect::Langfuse), &IdCache::default());
    assert_eq!(otel.len(), langfuse.len());
    for span in &otel {
        let twin = by_id(&langfuse, &span.span_id);
        assert_eq!(facts(twin), facts(span));
        assert_eq!(twin.attributes["dify.tenant_id"], TENANT);
    }
    let root = by_id(&langfuse, &run.run_id);
    assert_eq!(root.attributes["langfuse.trace.name"], "Shop assistant");
    assert_eq!(root.attributes["langfuse.internal.is_app_root"], "true");
}

#[test]
fn langfuse_observation_metadata_becomes_metadata_attributes() {
    let run = sample_run();
    let mut req = request(&run, Dialect::Langfuse);
    let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
    span.attributes
        .push(opentelemetry_proto::tonic::common::v1::KeyValue {
            key: "langfuse.observation.metadata.evaluation_dimension".into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "canary".into(),
                    ),
                ),
            }),
            ..Default::default()
        });
    let spans = ingest(&req, &IdCache::default());
    let root = by_id(&spans, &run.run_id);
    assert_eq!(root.attributes["metadata.evaluation_dimension"], "canary");
    assert!(
        !root
            .attributes
            .keys()
            .any(|k| k.starts_with("langfuse.observation.metadata.")),
        "{:?}",
        root.attributes.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_2050_span_trace_goes_through_in_one_request_within_the_default_limits() {
    let mut run = sample_run();
    let t0 = run.start;
    run.nodes = (0..2049)
        .map(|i| {
            node(
                &format!("exec-{i:04}"),
                "code",
                &format!("Step {i}"),
                t0 + i * 1_000,
            )
        })
        .collect();
    let req = request(&run, Dialect::OpenTelemetry);
    let body = req.encode_to_vec();
    assert!(
        body.len() < 16 << 20,
        "{} bytes: over the default server.max_body_bytes",
        body.len()
    );
    let spans = ingest(&req, &IdCache::default());
    assert_eq!(spans.len(), 2050);
    assert!(
        spans
            .iter()
            .filter(|s| s.span_id != run.run_id)
            .all(|s| s.parent_span_id.as_deref() == Some(run.run_id.as_str())
                && s.trace_id.as_deref() == Some(run.run_id.as_str()))
    );
}

/// Splits a request into one request per span, parents first (what the
/// per-span adapter of Dify's unified trace sends).
fn one_per_span(req: &ExportTraceServiceRequest) -> Vec<ExportTraceServiceRequest> {
    let rs = &req.resource_spans[0];
    let ss = &rs.scope_spans[0];
    ss.spans
        .iter()
        .map(|span| {
            let mut single = req.clone();
            single.resource_spans[0].scope_spans[0].spans = vec![span.clone()];
            single
        })
        .collect()
}

#[test]
fn spans_sent_one_per_request_find_their_parents_and_run_through_the_cache() {
    let run = sample_run();
    let mut req = request(&run, Dialect::OpenTelemetry);
    // Nodes of the per-span adapter name no run: only their OTLP trace.
    for span in req.resource_spans[0].scope_spans[0]
        .spans
        .iter_mut()
        .skip(1)
    {
        span.attributes
            .retain(|kv| kv.key != "dify.workflow.run_id");
    }
    let ids = IdCache::default();
    let spans: Vec<Span> = one_per_span(&req)
        .iter()
        .flat_map(|r| ingest(r, &ids))
        .collect();
    let inner = by_id(&spans, "exec-inner");
    assert_eq!(inner.parent_span_id.as_deref(), Some("exec-iter"));
    assert_eq!(inner.trace_id.as_deref(), Some(run.run_id.as_str()));
    assert_eq!(inner.run_id.as_deref(), Some(run.run_id.as_str()));
    // Without the cache, the parent stays the OTLP id as sent.
    let alone = ingest(&one_per_span(&req)[5], &IdCache::new(1));
    let inner = by_id(&alone, "exec-inner");
    assert_eq!(
        inner.parent_span_id.as_deref(),
        Some(
            otlp_span_id(
                TENANT,
                &run.run_id,
                &span_uuid(TENANT, &run.run_id, "exec-iter")
            )
            .as_str()
        )
    );
}

#[test]
fn a_late_nested_workflow_trace_joins_the_trace_of_the_tool_that_called_it() {
    let outer = sample_run();
    let ids = IdCache::default();
    ingest(&request(&outer, Dialect::OpenTelemetry), &ids);

    // The called workflow: its own run, exported later, attached by Dify
    // under the invoking tool span (the receipt: outer trace + tool span).
    let mut inner = sample_run();
    inner.run_id = "7c1d2e3f-0000-4000-8000-00000000abcd".into();
    inner.nodes = vec![node(
        "exec-nested-llm",
        "llm",
        "Nested answer",
        outer.start + S,
    )];
    inner.error = None;
    let mut req = request(&inner, Dialect::OpenTelemetry);
    let outer_trace = hex::decode(trace_id(TENANT, &outer.run_id)).expect("hex");
    let tool_hex = otlp_span_id(
        TENANT,
        &outer.run_id,
        &span_uuid(TENANT, &outer.run_id, "exec-tool"),
    );
    for span in &mut req.resource_spans[0].scope_spans[0].spans {
        span.trace_id = outer_trace.clone();
    }
    req.resource_spans[0].scope_spans[0].spans[0].parent_span_id =
        hex::decode(&tool_hex).expect("hex");
    let spans = ingest(&req, &ids);
    let root = by_id(&spans, &inner.run_id);
    assert_eq!(root.parent_span_id.as_deref(), Some("exec-tool"));
    assert_eq!(root.trace_id.as_deref(), Some(outer.run_id.as_str()));
    // A nested run keeps its own run id, as the database sync gives it.
    assert_eq!(root.run_id.as_deref(), Some(inner.run_id.as_str()));
    let nested = by_id(&spans, "exec-nested-llm");
    assert_eq!(nested.trace_id.as_deref(), Some(outer.run_id.as_str()));
    assert_eq!(
        nested.parent_span_id.as_deref(),
        Some(inner.run_id.as_str())
    );
}

#[test]
fn a_chatflow_turn_is_traced_under_its_message_id() {
    let mut run = sample_run();
    run.message_id = Some("5e0f7a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into());
    run.conversation_id = Some("conv-1".into());
    let spans = ingest(&request(&run, Dialect::OpenTelemetry), &IdCache::default());
    for span in &spans {
        assert_eq!(
            span.trace_id.as_deref(),
            run.message_id.as_deref(),
            "{}",
            span.span_id
        );
        assert_eq!(span.run_id.as_deref(), Some(run.run_id.as_str()));
        assert_eq!(span.session_id.as_deref(), Some("conv-1"));
    }
    assert_eq!(
        by_id(&spans, &run.run_id).span_kind,
        Some(SpanKind::Workflow)
    );
}

#[test]
fn handled_errors_fail_the_node_not_the_run_and_incomplete_spans_are_running() {
    let mut run = sample_run();
    run.error = None;
    run.nodes[2].status = "handled_error".into();
    run.nodes[5].status = "incomplete".into();
    run.nodes[1].status = "cancelled".into();
    let mut req = request(&run, Dialect::OpenTelemetry);
    // The run span of a workflow with handled errors says so.
    for kv in &mut req.resource_spans[0].scope_spans[0].spans[0].attributes {
        if kv.key == "dify.span.status" {
            kv.value = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "handled_error".into(),
                    ),
                ),
            });
        }
    }
    let spans = ingest(&req, &IdCache::default());
    assert_eq!(by_id(&spans, &run.run_id).status, Some(Status::Ok));
    assert_eq!(by_id(&spans, "exec-tool").status, Some(Status::Error));
    assert_eq!(by_id(&spans, "exec-end").status, Some(Status::Running));
    assert_eq!(by_id(&spans, "exec-llm").status, Some(Status::Error));
    assert_eq!(
        by_id(&spans, "exec-tool").raw_status.as_deref(),
        Some("handled_error")
    );
}

#[test]
fn generated_runs_in_both_dialects_normalise_without_rejections() {
    let config = loupe_gen::GenConfig {
        runs: 50,
        ..loupe_gen::GenConfig::default()
    };
    for dialect in [Dialect::OpenTelemetry, Dialect::Langfuse] {
        let ids = IdCache::default();
        let mut runs = 0;
        for req in loupe_gen::otlp::dify_export_requests(&config, dialect) {
            let spans = ingest(&req, &ids);
            let roots: Vec<_> = spans
                .iter()
                .filter(|s| s.parent_span_id.is_none())
                .collect();
            assert_eq!(roots.len(), 1, "{dialect:?}");
            assert!(spans.iter().all(|s| s.run_id == roots[0].run_id));
            runs += 1;
        }
        assert_eq!(runs, 50);
    }
}

#[test]
fn every_attribute_dify_sends_is_mapped_to_a_field_or_kept() {
    let mut run = sample_run();
    let at = run.start + S;
    run.nodes
        .push(node("exec-kb", "knowledge-retrieval", "Manuals", at));
    let spans = ingest(&request(&run, Dialect::OpenTelemetry), &IdCache::default());
    let kept = |span: &Span, keys: &[&str]| {
        for key in keys {
            assert!(
                span.attributes.contains_key(*key),
                "{} lost {key}: {:?}",
                span.span_id,
                span.attributes.keys().collect::<Vec<_>>()
            );
        }
    };
    let common = [
        "dify.tenant_id",
        "dify.node.attempt",
        "dify.span.name",
        "dify.span.type",
        "dify.span.synthetic",
        "dify.trace.complete",
        "dify.trace.truncation",
        "dify.trace.links",
        "dify.events",
        "gen_ai.framework",
        "metadata.dify.span.kind",
        "otel.span_id",
        "otel.trace_id",
        "resource.service.name",
    ];
    for span in &spans {
        kept(span, &common);
        assert_eq!(span.session_id.as_deref(), Some(run.run_id.as_str()));
        assert_eq!(span.user_id.as_deref(), Some("user-42"));
    }
    let llm = by_id(&spans, "exec-llm");
    kept(
        llm,
        &[
            "dify.node.id",
            "gen_ai.server.time_to_first_token",
            "gen_ai.response.time_to_first_token",
            "gen_ai.completion",
            "gen_ai.output.messages",
        ],
    );
    assert!(
        llm.input
            .as_deref()
            .is_some_and(|i| i.contains("Write answer"))
    );
    assert_eq!(llm.total_tokens, Some(42));
    let tool = by_id(&spans, "exec-tool");
    kept(
        tool,
        &[
            "gen_ai.tool.call.id",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
            "tool.parameters",
        ],
    );
    assert_eq!(tool.tool_name.as_deref(), Some("Inventory"));
    let kb = by_id(&spans, "exec-kb");
    assert_eq!(kb.span_kind, Some(SpanKind::Retrieval));
    kept(kb, &["retrieval.query", "retrieval.document"]);
}
