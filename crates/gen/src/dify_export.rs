//! Runs as Dify 1.19–1.20's own trace export sends them: the generic
//! OpenTelemetry provider ([`Dialect::OpenTelemetry`]: `dify.*` attributes
//! on every span beside OpenInference and GenAI) and the Langfuse provider's
//! OTLP ([`Dialect::Langfuse`]: `langfuse.*` attributes, Dify's keys under
//! `langfuse.observation.metadata.`, values as text).
//!
//! Built from `shared/reference/dify-1.20-export.md` and Dify's
//! `core/ops/provider_export.py` (`span_attributes`, `export_span_id`),
//! `trace_data.py` (`make_trace_id`, `make_span_id`) and the Langfuse
//! provider's export test: no recording of a real 1.20 exists. One
//! [`ExportRun`] becomes one request (Dify sends one per finished trace),
//! parents before children, with the deterministic ids Dify computes.

use loupe_normalise::otel::{AttrValue, Attributes, OtelKind, OtelSpan, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::otlp::{ExportTraceServiceRequest, request_of};
use crate::plan::{APPS, Plan};

/// Which 1.20 provider sends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The generic `otel` provider (`POST /v1/traces`).
    OpenTelemetry,
    /// The Langfuse provider (`POST /api/public/otel/v1/traces`).
    Langfuse,
}

/// One workflow run (or chatflow turn) as Dify knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRun {
    /// Workspace (tenant) id.
    pub tenant_id: String,
    /// App id.
    pub app_id: String,
    /// App name (the Langfuse trace name).
    pub app_name: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Workflow version.
    pub version: String,
    /// Workflow run id.
    pub run_id: String,
    /// Message id of a chatflow turn.
    pub message_id: Option<String>,
    /// Conversation id of a chatflow turn.
    pub conversation_id: Option<String>,
    /// The end user's session id (`user.id`).
    pub user: String,
    /// Start, ns since the epoch.
    pub start: i64,
    /// End, ns since the epoch.
    pub end: i64,
    /// The run's error, if it failed.
    pub error: Option<String>,
    /// The run's inputs.
    pub inputs: Value,
    /// The run's outputs.
    pub outputs: Value,
    /// Node executions, in execution order.
    pub nodes: Vec<ExportNode>,
}

/// One node execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportNode {
    /// Node execution id (`workflow_node_executions.id`).
    pub exec_id: String,
    /// Graph node id.
    pub node_id: String,
    /// Dify node type (`llm`, `tool`, `iteration`, …).
    pub node_type: String,
    /// Node title.
    pub title: String,
    /// The container (iteration, loop) execution it ran in.
    pub parent_exec: Option<String>,
    /// Start, ns since the epoch.
    pub start: i64,
    /// End, ns since the epoch.
    pub end: i64,
    /// `ok`, `error`, `handled_error`, `cancelled` or `incomplete`.
    pub status: String,
    /// The error message.
    pub error: Option<String>,
    /// Inputs.
    pub inputs: Value,
    /// Outputs.
    pub outputs: Value,
    /// Model usage of an LLM node.
    pub usage: Option<ExportUsage>,
}

/// Model usage of one LLM call.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportUsage {
    /// Model name.
    pub model: String,
    /// Model provider.
    pub provider: String,
    /// Prompt tokens.
    pub prompt: i64,
    /// Completion tokens.
    pub completion: i64,
    /// Price in USD.
    pub price: f64,
}

/// Dify's `make_trace_id`: the trace of one operation of a tenant.
pub fn trace_id(tenant: &str, operation: &str) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("dify:trace:{tenant}:{operation}").as_bytes(),
    )
    .simple()
    .to_string()
}

/// Dify's `make_span_id`: the trace-data id of one execution.
pub fn span_uuid(tenant: &str, operation: &str, execution: &str) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("dify:span:{tenant}:{operation}:{execution}").as_bytes(),
    )
    .to_string()
}

/// Dify's `export_span_id` + `span_id_bytes`: the OTLP span id (8 bytes).
pub fn otlp_span_id(tenant: &str, operation: &str, span: &str) -> String {
    let id = Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("{tenant}/{operation}/{span}").as_bytes(),
    );
    hex::encode(&id.as_bytes()[..8])
}

fn s(key: &str, value: impl Into<String>) -> (String, AttrValue) {
    (key.to_owned(), AttrValue::Str(value.into()))
}

fn json_value(value: &Value) -> AttrValue {
    match value {
        Value::Null => AttrValue::Empty,
        Value::Bool(b) => AttrValue::Bool(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || AttrValue::Double(n.as_f64().unwrap_or(0.0)),
            AttrValue::Int,
        ),
        Value::String(t) => AttrValue::Str(t.clone()),
        Value::Array(items) => AttrValue::Array(items.iter().map(json_value).collect()),
        Value::Object(map) => AttrValue::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        ),
    }
}

/// What one exported span says.
struct Facts<'a> {
    dify_span: String,
    name: String,
    span_type: &'a str,
    exec: Option<&'a ExportNode>,
    status: &'a str,
    error: Option<&'a str>,
    inputs: &'a Value,
    outputs: &'a Value,
    start: i64,
    end: i64,
}

/// The spans of one run in `dialect`, root first.
pub fn spans(run: &ExportRun, dialect: Dialect) -> Vec<OtelSpan> {
    let operation = run.message_id.as_deref().unwrap_or(&run.run_id);
    let trace = trace_id(&run.tenant_id, operation);
    let root_id = span_uuid(&run.tenant_id, operation, &run.run_id);
    let hex_of = |dify_span: &str| otlp_span_id(&run.tenant_id, operation, dify_span);
    let root_status = if run.error.is_some() { "error" } else { "ok" };
    let root = Facts {
        dify_span: root_id.clone(),
        name: match dialect {
            Dialect::OpenTelemetry => format!("workflow_{}", run.run_id),
            Dialect::Langfuse => run.app_name.clone(),
        },
        span_type: "workflow",
        exec: None,
        status: root_status,
        error: run.error.as_deref(),
        inputs: &run.inputs,
        outputs: &run.outputs,
        start: run.start,
        end: run.end,
    };
    let mut out = vec![span(
        run,
        &trace,
        &hex_of(&root_id),
        None,
        &root,
        dialect,
        true,
    )];
    for node in &run.nodes {
        let dify_span = span_uuid(&run.tenant_id, operation, &node.exec_id);
        let parent = node.parent_exec.as_deref().map_or_else(
            || root_id.clone(),
            |p| span_uuid(&run.tenant_id, operation, p),
        );
        let facts = Facts {
            dify_span: dify_span.clone(),
            name: match dialect {
                Dialect::OpenTelemetry => format!("{}_{}", node.node_type, node.title),
                Dialect::Langfuse => node.title.clone(),
            },
            span_type: &node.node_type,
            exec: Some(node),
            status: &node.status,
            error: node.error.as_deref(),
            inputs: &node.inputs,
            outputs: &node.outputs,
            start: node.start,
            end: node.end,
        };
        out.push(span(
            run,
            &trace,
            &hex_of(&dify_span),
            Some(hex_of(&parent)),
            &facts,
            dialect,
            false,
        ));
    }
    out
}

/// One run as one request in `dialect`.
pub fn request(run: &ExportRun, dialect: Dialect) -> ExportTraceServiceRequest {
    request_of(&spans(run, dialect))
}

#[allow(clippy::too_many_arguments)]
fn span(
    run: &ExportRun,
    trace: &str,
    hex: &str,
    parent: Option<String>,
    f: &Facts<'_>,
    dialect: Dialect,
    is_root: bool,
) -> OtelSpan {
    let usage = f.exec.and_then(|n| n.usage.as_ref());
    let session = run
        .conversation_id
        .clone()
        .unwrap_or_else(|| run.run_id.clone());
    // `span_attributes` of Dify's provider_export.py, in its order.
    let mut dify: Vec<(String, Value)> = vec![
        ("dify.tenant_id".into(), json!(run.tenant_id)),
        ("dify.app_id".into(), json!(run.app_id)),
        ("dify.workflow.id".into(), json!(run.workflow_id)),
        ("dify.workflow.version".into(), json!(run.version)),
        ("dify.workflow.run_id".into(), json!(run.run_id)),
    ];
    if let Some(node) = f.exec {
        dify.push(("dify.node.execution_id".into(), json!(node.exec_id)));
        dify.push(("dify.node.id".into(), json!(node.node_id)));
    }
    dify.extend([
        ("dify.node.attempt".into(), json!(0)),
        ("dify.span.id".into(), json!(f.dify_span)),
        ("dify.span.name".into(), json!(f.name)),
        ("dify.span.type".into(), json!(f.span_type)),
        ("dify.span.status".into(), json!(f.status)),
        ("dify.trace.complete".into(), json!(true)),
        ("dify.trace.truncation".into(), json!({})),
        ("dify.trace.links".into(), json!([])),
        ("dify.session.id".into(), json!(session)),
        ("dify.user.id".into(), json!(run.user)),
    ]);
    if let Some(message) = &run.message_id {
        dify.push(("dify.message.id".into(), json!(message)));
    }
    if let Some(conversation) = &run.conversation_id {
        dify.push(("dify.conversation.id".into(), json!(conversation)));
    }
    let usage_map = usage.map(|u| {
        json!({
            "prompt_tokens": u.prompt, "completion_tokens": u.completion,
            "total_tokens": u.prompt + u.completion, "total_price": u.price, "currency": "USD",
        })
    });
    dify.push(("dify.usage".into(), usage_map.clone().unwrap_or(json!({}))));
    dify.push(("dify.events".into(), json!([])));
    if let Some(error) = f.error {
        dify.push(("error.message".into(), json!(error)));
    }

    let mut attrs: Attributes = Vec::new();
    match dialect {
        Dialect::OpenTelemetry => {
            for (k, v) in &dify {
                attrs.push((k.clone(), json_value(v)));
            }
            attrs.push(("dify.inputs".into(), json_value(f.inputs)));
            attrs.push(("dify.outputs".into(), json_value(f.outputs)));
            let kind = match f.span_type {
                "llm" => "LLM",
                "tool" => "TOOL",
                "knowledge-retrieval" => "RETRIEVER",
                "agent" => "AGENT",
                _ => "CHAIN",
            };
            attrs.push(s("openinference.span.kind", kind));
            attrs.push(s("input.value", f.inputs.to_string()));
            attrs.push(s("output.value", f.outputs.to_string()));
            attrs.push(s("session.id", session.clone()));
            attrs.push(s("user.id", run.user.clone()));
            attrs.push(s("gen_ai.session.id", session.clone()));
            attrs.push(s("gen_ai.user.id", run.user.clone()));
            attrs.push(s("gen_ai.framework", "dify"));
            attrs.push(s("gen_ai.span.kind", kind));
            attrs.push(("dify.span.synthetic".into(), AttrValue::Bool(false)));
            attrs.push(s("dify.cost.currency", "USD"));
            let mut metadata = json!({"dify.span.kind": kind.to_ascii_lowercase()});
            if let Some(node) = f.exec {
                metadata["node_id"] = json!(node.node_id);
                metadata["node_type"] = json!(node.node_type);
            }
            if let Some(u) = usage {
                attrs.push(s("gen_ai.operation.name", "chat"));
                attrs.push(s("gen_ai.provider.name", u.provider.clone()));
                attrs.push(s("gen_ai.system", u.provider.clone()));
                attrs.push(s("gen_ai.request.model", u.model.clone()));
                attrs.push(s("gen_ai.response.model", u.model.clone()));
                attrs.push(s("llm.model_name", u.model.clone()));
                attrs.push(("gen_ai.usage.input_tokens".into(), AttrValue::Int(u.prompt)));
                attrs.push((
                    "gen_ai.usage.output_tokens".into(),
                    AttrValue::Int(u.completion),
                ));
                attrs.push((
                    "gen_ai.usage.total_tokens".into(),
                    AttrValue::Int(u.prompt + u.completion),
                ));
                attrs.push(("llm.token_count.prompt".into(), AttrValue::Int(u.prompt)));
                attrs.push((
                    "llm.token_count.completion".into(),
                    AttrValue::Int(u.completion),
                ));
                attrs.push((
                    "llm.token_count.total".into(),
                    AttrValue::Int(u.prompt + u.completion),
                ));
                attrs.push(("llm.cost.total".into(), AttrValue::Double(u.price)));
                attrs.push(s("gen_ai.prompt", f.inputs.to_string()));
                attrs.push(s("gen_ai.completion", f.outputs.to_string()));
                attrs.push(s(
                    "gen_ai.input.messages",
                    json!([{"role": "user", "parts": [{"type": "text", "content": f.inputs.to_string()}]}]).to_string(),
                ));
                attrs.push(s(
                    "gen_ai.output.messages",
                    json!([{"role": "assistant", "parts": [{"type": "text", "content": f.outputs.to_string()}]}]).to_string(),
                ));
                // Time to first token, ns (Dify's two spellings).
                let ttft = (f.end - f.start) / 4;
                attrs.push((
                    "gen_ai.server.time_to_first_token".into(),
                    AttrValue::Int(ttft),
                ));
                attrs.push((
                    "gen_ai.response.time_to_first_token".into(),
                    AttrValue::Int(ttft),
                ));
                metadata["model_name"] = json!(u.model);
                metadata["prompt_tokens"] = json!(u.prompt);
                metadata["completion_tokens"] = json!(u.completion);
                metadata["total_tokens"] = json!(u.prompt + u.completion);
            } else if f.span_type == "tool" {
                let title = f.exec.map_or("", |n| n.title.as_str());
                attrs.push(s("gen_ai.operation.name", "execute_tool"));
                attrs.push(s("gen_ai.tool.name", title));
                attrs.push(s("tool.name", title));
                attrs.push(s("gen_ai.tool.call.id", format!("call-{}", f.dify_span)));
                attrs.push(s("gen_ai.tool.call.arguments", f.inputs.to_string()));
                attrs.push(s("tool.parameters", f.inputs.to_string()));
                attrs.push(s("gen_ai.tool.call.result", f.outputs.to_string()));
            } else if f.span_type == "knowledge-retrieval" {
                attrs.push(s("retrieval.query", f.inputs.to_string()));
                attrs.push(s("retrieval.document", f.outputs.to_string()));
            } else if f.span_type == "agent" {
                attrs.push(s("gen_ai.operation.name", "invoke_agent"));
            }
            attrs.push(s("metadata", metadata.to_string()));
        }
        Dialect::Langfuse => {
            attrs.push(s("langfuse.trace.name", run.app_name.clone()));
            attrs.push(s("langfuse.version", run.version.clone()));
            attrs.push(s("user.id", run.user.clone()));
            attrs.push(s("session.id", session.clone()));
            attrs.push((
                "langfuse.internal.is_app_root".into(),
                AttrValue::Bool(is_root),
            ));
            for (k, v) in &dify {
                let text = match v {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                attrs.push(s(&format!("langfuse.observation.metadata.{k}"), text));
            }
            attrs.push(s("langfuse.observation.input", f.inputs.to_string()));
            attrs.push(s(
                "langfuse.observation.output",
                match f.outputs {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                },
            ));
            if let Some(u) = usage {
                attrs.push(s("langfuse.observation.type", "generation"));
                attrs.push(s("langfuse.observation.model.name", u.model.clone()));
                attrs.push(s(
                    "langfuse.observation.usage_details",
                    json!({"input": u.prompt, "output": u.completion, "total": u.prompt + u.completion})
                        .to_string(),
                ));
                attrs.push(s(
                    "langfuse.observation.cost_details",
                    json!({"total": u.price}).to_string(),
                ));
            }
            if let Some(error) = f.error {
                attrs.push(s("langfuse.observation.level", "ERROR"));
                attrs.push(s("langfuse.observation.status_message", error));
            }
        }
    }
    let failed = f.status == "error" || (f.status == "handled_error" && !is_root);
    OtelSpan {
        trace_id: trace.to_owned(),
        span_id: hex.to_owned(),
        parent_span_id: parent,
        name: f.name.clone(),
        kind: OtelKind::Internal,
        start_time_unix_nano: u64::try_from(f.start).unwrap_or(0),
        end_time_unix_nano: u64::try_from(f.end).unwrap_or(0),
        status_code: if failed {
            StatusCode::Error
        } else if matches!(f.status, "ok" | "handled_error") {
            StatusCode::Ok
        } else {
            StatusCode::Unset
        },
        status_message: f.error.unwrap_or_default().to_owned(),
        attributes: attrs,
        resource_attributes: vec![s(
            "service.name",
            match dialect {
                Dialect::OpenTelemetry => "dify",
                Dialect::Langfuse => "dify-langfuse",
            },
        )],
        scope_name: "dify.ops".into(),
        ..OtelSpan::default()
    }
}

/// A generated run as Dify 1.20 exports it.
pub(crate) fn from_plan(plan: &Plan) -> ExportRun {
    let parse = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| json!(text));
    ExportRun {
        tenant_id: plan.tenant.clone(),
        app_id: plan.app_id.clone(),
        app_name: APPS[plan.app].name.to_owned(),
        workflow_id: plan.workflow_id.clone(),
        version: plan.version.to_owned(),
        run_id: plan.run_id.clone(),
        message_id: None,
        conversation_id: plan.conversation.clone(),
        user: plan.user.clone(),
        start: plan.start,
        end: plan.end,
        error: plan.error.clone(),
        inputs: plan.inputs.clone(),
        outputs: parse(&plan.output),
        nodes: plan
            .nodes
            .iter()
            .map(|n| ExportNode {
                exec_id: n.exec_id.clone(),
                node_id: n.node_id.clone(),
                node_type: n.node_type.to_owned(),
                title: n.title.to_owned(),
                parent_exec: None,
                start: n.start,
                end: n.end,
                status: if n.error.is_some() { "error" } else { "ok" }.to_owned(),
                error: n.error.as_ref().map(|e| e.1.clone()),
                inputs: parse(&n.input),
                outputs: parse(&n.output),
                usage: n.usage.as_ref().map(|u| ExportUsage {
                    model: u.model.to_owned(),
                    provider: u.provider.to_owned(),
                    prompt: u.prompt,
                    completion: u.completion,
                    price: u.price,
                }),
            })
            .collect(),
    }
}
