//! [`Plan`] → OpenTelemetry spans as Dify's Phoenix/Arize provider sends
//! them (OpenInference attributes, the `metadata` JSON string, a tiny root
//! span with `dify_trace_id`, a `workflow_{run_id}` span and one
//! `{node_type}_{title}` span per node).

use loupe_normalise::otel::{AttrValue, Attributes, OtelEvent, OtelKind, OtelSpan, StatusCode};
use serde_json::{Value, json};

use crate::plan::{APPS, NodePlan, Plan};

/// The Phoenix project name Dify sends (`dify_project_name`).
pub(crate) const PHOENIX_PROJECT: &str = "loupe-gen";

fn s(key: &str, value: impl Into<String>) -> (String, AttrValue) {
    (key.to_owned(), AttrValue::Str(value.into()))
}

fn resource() -> Attributes {
    vec![
        s("openinference.project.name", PHOENIX_PROJECT),
        s("model_id", PHOENIX_PROJECT),
    ]
}

fn base(plan: &Plan, span_hex: &str, parent: Option<&str>, name: String) -> OtelSpan {
    OtelSpan {
        trace_id: plan.trace_hex.clone(),
        span_id: span_hex.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        name,
        kind: OtelKind::Internal,
        resource_attributes: resource(),
        scope_name: format!("arize_phoenix_tracer_{PHOENIX_PROJECT}"),
        ..OtelSpan::default()
    }
}

fn times(span: &mut OtelSpan, start: i64, end: i64) {
    span.start_time_unix_nano = u64::try_from(start).unwrap_or(0);
    span.end_time_unix_nano = u64::try_from(end).unwrap_or(0);
}

fn io(attrs: &mut Attributes, input: &str, output: &str) {
    attrs.push(s("input.value", input));
    attrs.push(s("input.mime_type", "application/json"));
    attrs.push(s("output.value", output));
    attrs.push(s("output.mime_type", "application/json"));
}

fn status(span: &mut OtelSpan, error: Option<&str>) {
    match error {
        Some(message) => {
            span.status_code = StatusCode::Error;
            span.status_message = message.to_owned();
        }
        None => span.status_code = StatusCode::Ok,
    }
}

/// The spans of one run, root first, in the order Dify exports them
/// (root, nodes, then the workflow span).
pub(crate) fn spans(plan: &Plan) -> Vec<OtelSpan> {
    let inputs = plan.inputs.to_string();
    let mut out = Vec::with_capacity(plan.nodes.len() + 2);

    let mut root = base(plan, &plan.root_hex, None, plan.run_id.clone());
    times(&mut root, plan.start, plan.end);
    root.attributes = vec![
        s("openinference.span.kind", "CHAIN"),
        s("dify_project_name", PHOENIX_PROJECT),
        s("dify_trace_id", plan.run_id.clone()),
    ];
    io(&mut root.attributes, &inputs, &plan.output);
    status(&mut root, plan.error.as_deref());
    out.push(root);

    for node in &plan.nodes {
        out.push(node_span(plan, node));
    }

    let app = &APPS[plan.app];
    let name = format!("workflow_{}", plan.run_id);
    let mut workflow = base(plan, &plan.workflow_hex, Some(&plan.root_hex), name);
    times(&mut workflow, plan.start, plan.end);
    let elapsed = (plan.end - plan.start) as f64 / 1e9;
    let raw = if plan.error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    let meta = json!({
        "workflow_id": plan.workflow_id,
        "conversation_id": plan.conversation.clone().unwrap_or_default(),
        "workflow_run_id": plan.run_id,
        "tenant_id": plan.tenant,
        "elapsed_time": elapsed,
        "status": raw,
        "version": plan.version,
        "total_tokens": plan.total_tokens(),
        "file_list": "[]",
        "triggered_from": "app-run",
        "user_id": plan.user,
        "app_id": plan.app_id,
        "app_name": app.name,
        "workspace_name": "Acme Shop",
        "created_from": "Dify",
        "trace_id": "",
        "message_id": "",
        "status_message": plan.error.clone().unwrap_or_default(),
        "level": if plan.error.is_some() { "ERROR" } else { "DEFAULT" },
        "trace_entity_type": "workflow",
        "workflow_run_elapsed_time": elapsed,
        "workflow_run_version": plan.version,
        "query": plan.query,
    });
    workflow.attributes = vec![s("openinference.span.kind", "CHAIN")];
    io(&mut workflow.attributes, &inputs, &plan.output);
    workflow.attributes.push(s("metadata", meta.to_string()));
    workflow
        .attributes
        .push(s("session.id", plan.session().to_owned()));
    status(&mut workflow, plan.error.as_deref());
    out.push(workflow);
    out
}

fn node_span(plan: &Plan, node: &NodePlan) -> OtelSpan {
    let name = format!("{}_{}", node.node_type, node.title);
    let mut span = base(plan, &node.span_hex, Some(&plan.workflow_hex), name);
    times(&mut span, node.start, node.end);
    let kind = match node.node_type {
        "llm" => "LLM",
        "knowledge-retrieval" => "RETRIEVER",
        "tool" => "TOOL",
        _ => "CHAIN",
    };
    let raw = if node.error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    let message = node.error.as_ref().map(|e| e.1.clone()).unwrap_or_default();
    let mut meta = json!({
        "node_id": node.node_id,
        "node_type": node.node_type,
        "node_status": raw,
        "tenant_id": plan.tenant,
        "app_id": plan.app_id,
        "app_name": node.title,
        "status": raw,
        "status_message": message,
        "level": if node.error.is_some() { "ERROR" } else { "DEFAULT" },
        "node_execution_id": node.exec_id,
    });
    let mut attrs = vec![s("openinference.span.kind", kind)];
    io(&mut attrs, &node.input, &node.output);
    if let Some(tool) = node.tool {
        attrs.push(s("tool.name", tool));
    }
    if let (Some(u), Value::Object(m)) = (&node.usage, &mut meta) {
        attrs.push(s("llm.model_name", u.model));
        attrs.push(s("llm.provider", u.provider));
        attrs.push(("llm.token_count.prompt".into(), AttrValue::Int(u.prompt)));
        attrs.push((
            "llm.token_count.completion".into(),
            AttrValue::Int(u.completion),
        ));
        attrs.push((
            "llm.token_count.total".into(),
            AttrValue::Int(u.prompt + u.completion),
        ));
        m.insert("total_price".into(), json!(u.price));
        m.insert("currency".into(), json!("USD"));
    }
    attrs.push(s("metadata", meta.to_string()));
    attrs.push(s("session.id", plan.session().to_owned()));
    span.attributes = attrs;
    status(&mut span, node.error.as_ref().map(|e| e.1.as_str()));
    if let Some((class, message)) = &node.error {
        span.events.push(OtelEvent {
            name: "exception".into(),
            time_unix_nano: span.end_time_unix_nano,
            attributes: vec![
                s("exception.type", class.clone()),
                s("exception.message", message.clone()),
            ],
        });
    }
    span
}
