//! The generated runs as Langfuse ingestion batches, shaped like Dify's
//! Langfuse provider: a `trace-create` per run (id = workflow run id), then a
//! `span-create` per node (`generation-create` for LLM nodes, with model and
//! usage), node metadata carrying `workflow_run_id`, `node_type` and
//! `status`, failed nodes at level `ERROR` with a `statusMessage`.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

use crate::plan::{APPS, NodePlan, Plan};
use crate::rng::Rng;
use crate::{GenConfig, plans};

/// Batches of `runs_per_batch` runs each (at least 1), as
/// `{"batch": [event, …]}` bodies for `POST /api/public/ingestion`.
pub fn batches(config: &GenConfig, runs_per_batch: usize) -> impl Iterator<Item = Value> + use<> {
    let size = runs_per_batch.max(1);
    let seed = config.seed;
    let mut plans = plans(config).peekable();
    std::iter::from_fn(move || {
        plans.peek()?;
        let events: Vec<Value> = plans
            .by_ref()
            .take(size)
            .flat_map(|p| run_events(seed, &p))
            .collect();
        Some(json!({ "batch": events }))
    })
}

/// The number of events in a batch body.
pub fn event_count(batch: &Value) -> usize {
    batch["batch"].as_array().map_or(0, Vec::len)
}

fn iso(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn run_events(seed: u64, plan: &Plan) -> Vec<Value> {
    let mut ids = Rng::new(seed ^ 0x1A9F, plan.start as u64);
    let status = if plan.error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    let output: Value = serde_json::from_str(&plan.output).unwrap_or(Value::Null);
    let trace = json!({
        "id": plan.run_id,
        "name": "workflow",
        "userId": plan.user,
        "input": plan.inputs,
        "output": output,
        "version": plan.version,
        "metadata": {
            "workflow_id": plan.workflow_id,
            "conversation_id": plan.conversation,
            "workflow_run_id": plan.run_id,
            "tenant_id": plan.tenant,
            "elapsed_time": (plan.end - plan.start) as f64 / 1e9,
            "status": status,
            "version": plan.version,
            "total_tokens": plan.total_tokens(),
            "triggered_from": "app-run",
            "user_id": plan.user,
            "app_id": plan.app_id,
            "app_name": APPS[plan.app].name,
        },
        "tags": ["workflow"],
        "sessionId": plan.conversation,
    });
    let mut out = vec![event(&mut ids, "trace-create", plan.end, trace)];
    for node in &plan.nodes {
        out.push(node_event(&mut ids, plan, node));
    }
    out
}

fn event(ids: &mut Rng, kind: &str, at: i64, body: Value) -> Value {
    json!({"id": ids.uuid(), "type": kind, "timestamp": iso(at), "body": body})
}

fn node_event(ids: &mut Rng, plan: &Plan, node: &NodePlan) -> Value {
    let status = if node.error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    let parse = |text: &str| serde_json::from_str(text).unwrap_or_else(|_| json!(text));
    let mut meta = json!({
        "workflow_run_id": plan.run_id,
        "node_execution_id": node.exec_id,
        "tenant_id": plan.tenant,
        "app_id": plan.app_id,
        "node_name": node.title,
        "node_type": node.node_type,
        "status": status,
    });
    let mut body = json!({
        "id": node.exec_id,
        "traceId": plan.run_id,
        "name": node.title,
        "startTime": iso(node.start),
        "endTime": iso(node.end),
        "input": parse(&node.input),
        "output": parse(&node.output),
        "level": if node.error.is_some() { "ERROR" } else { "DEFAULT" },
        "statusMessage": node.error.as_ref().map(|e| e.1.clone()),
        "parentObservationId": null,
    });
    let mut kind = "span-create";
    if let (Some(u), Some(b), Some(m)) = (&node.usage, body.as_object_mut(), meta.as_object_mut()) {
        kind = "generation-create";
        b.insert("model".into(), json!(u.model));
        b.insert(
            "usage".into(),
            json!({"input": u.prompt, "output": u.completion, "total": u.prompt + u.completion, "unit": "TOKENS"}),
        );
        m.insert("ls_provider".into(), json!(u.provider));
        m.insert("total_price".into(), json!(u.price));
        m.insert("currency".into(), json!("USD"));
    }
    if let Some(tool) = node.tool
        && let Some(m) = meta.as_object_mut()
    {
        m.insert("tool_name".into(), json!(tool));
    }
    if let Some(b) = body.as_object_mut() {
        b.insert("metadata".into(), meta);
    }
    event(ids, kind, node.end, body)
}
