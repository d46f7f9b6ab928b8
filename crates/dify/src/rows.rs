//! Spans → rows of Dify's tables: the inverse of [`crate::map`] for one
//! workflow run, so synthetic runs (`loupe-gen`) can be written into a Dify
//! database exactly as Dify would have stored them (the benchmark loads
//! them; the round-trip test below maps them back and gets the same spans).
//!
//! - the workflow span → one [`WorkflowRun`] (id = run id, `inputs` the
//!   run's inputs JSON, `type` `chat` for a chatflow turn, else
//!   `workflow`);
//! - each node span → one [`NodeExecution`] (id = Dify's node execution
//!   id, `index` in start order, the LLM model in `process_data`, tokens
//!   and price in `execution_metadata`, the tool's provider in
//!   `execution_metadata.tool_info.provider_id`, as Dify's tool node does);
//! - workflow-type runs → one [`AppLog`] (chatflow turns are logged through
//!   `messages`, which this does not write);
//! - the [`EndUser`] and [`App`] rows the mapping looks up for the user id
//!   and the app name.
//!
//! What the rows cannot hold does not come back: span ids other than the
//! node execution id, attributes, and `graph` (Dify stores the whole app
//! graph on every run; it is left NULL).

use chrono::NaiveDateTime;
use loupe_model::{Span, SpanKind, Status};
use serde_json::json;

use crate::map::Lookups;
use crate::schema::{App, AppLog, EndUser, NodeExecution, WorkflowRun};

/// The rows of one run, in the shapes [`crate::schema`] reads.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRows {
    /// The `workflow_runs` row.
    pub run: WorkflowRun,
    /// Its `workflow_node_executions` rows, in start order.
    pub nodes: Vec<NodeExecution>,
    /// The `workflow_app_logs` row of a workflow-type run.
    pub log: Option<AppLog>,
    /// The `end_users` row `run.created_by` names.
    pub end_user: EndUser,
    /// The `apps` row of `run.app_id`.
    pub app: App,
}

impl RunRows {
    /// The lookups [`crate::map`] needs to map these rows back (user id, app name).
    pub fn lookups(&self) -> Lookups {
        let mut l = Lookups::default();
        l.users
            .insert(self.end_user.id.clone(), self.end_user.clone());
        l.apps.insert(self.app.id.clone(), self.app.clone());
        l
    }
}

/// The rows of one generated run: `spans` are its normalised spans (the
/// workflow span and its nodes), `inputs` the run's inputs as Dify stores
/// them. `None` when no span is the workflow span.
pub fn run_rows(spans: &[Span], inputs: &serde_json::Value) -> Option<RunRows> {
    let run = spans
        .iter()
        .find(|s| s.span_kind == Some(SpanKind::Workflow))?;
    let run_id = run.run_id.clone().unwrap_or_default();
    let tenant = uuid_attr(run, "metadata.tenant_id", "tenant");
    let app = run.app_id.clone().unwrap_or_default();
    let workflow = run.workflow_id.clone().unwrap_or_default();
    let user_name = run.user_id.clone().unwrap_or_else(|| "anonymous".into());
    let user = uuid_of(&user_name);
    let chat = run.session_id.as_deref() != Some(run_id.as_str());
    let start = run.start_time.unwrap_or(0);
    let end = run.end_time.unwrap_or(start);
    let mut node_spans: Vec<&Span> = spans.iter().filter(|s| s.node_type.is_some()).collect();
    node_spans.sort_by_key(|s| s.start_time);
    let mut nodes = Vec::with_capacity(node_spans.len());
    let mut predecessor: Option<String> = None;
    for (i, n) in node_spans.iter().enumerate() {
        let node_id = uuid_attr(n, "metadata.node_id", n.name.as_deref().unwrap_or("node"));
        let node_type = n.node_type.clone().unwrap_or_default();
        let (process_data, execution_metadata) = node_metadata(n, &node_type);
        let n_start = n.start_time.unwrap_or(start);
        let n_end = n.end_time.unwrap_or(n_start);
        nodes.push(NodeExecution {
            id: uuid_attr(n, "metadata.node_execution_id", &n.span_id),
            tenant_id: tenant.clone(),
            app_id: app.clone(),
            workflow_id: workflow.clone(),
            triggered_from: "workflow-run".into(),
            workflow_run_id: Some(run_id.clone()),
            index: i32::try_from(i + 1).unwrap_or(i32::MAX),
            predecessor_node_id: predecessor.replace(node_id.clone()),
            node_id,
            node_type,
            title: n.name.clone().unwrap_or_default(),
            inputs: n.input.clone(),
            process_data,
            outputs: n.output.clone(),
            status: status_of(n).into(),
            error: n.error_message.clone(),
            elapsed_time: secs(n_end - n_start),
            execution_metadata,
            created_at: naive(n_start),
            created_by_role: "end_user".into(),
            finished_at: Some(naive(n_end)),
        });
    }
    let log = (!chat).then(|| AppLog {
        id: uuid_of(&format!("log-{run_id}")),
        workflow_run_id: run_id.clone(),
        created_from: "service-api".into(),
        created_by_role: "end_user".into(),
        created_by: user.clone(),
    });
    let row = WorkflowRun {
        id: run_id,
        tenant_id: tenant.clone(),
        app_id: app.clone(),
        workflow_id: workflow,
        run_type: if chat { "chat" } else { "workflow" }.into(),
        triggered_from: "app-run".into(),
        version: run.workflow_version.clone().unwrap_or_default(),
        inputs: Some(inputs.to_string()),
        status: status_of(run).into(),
        outputs: run.output.clone(),
        error: run.error_message.clone(),
        elapsed_time: secs(end - start),
        total_tokens: node_spans.iter().filter_map(|n| n.total_tokens).sum(),
        total_steps: Some(i32::try_from(nodes.len()).unwrap_or(i32::MAX)),
        created_by_role: "end_user".into(),
        created_by: user.clone(),
        created_at: naive(start),
        finished_at: Some(naive(end)),
        exceptions_count: Some(0),
    };
    Some(RunRows {
        run: row,
        nodes,
        log,
        end_user: EndUser {
            id: user,
            session_id: user_name,
            user_type: "service-api".into(),
            external_user_id: None,
        },
        app: App {
            id: app,
            tenant_id: tenant,
            name: run.app_name.clone().unwrap_or_default(),
            mode: if chat { "advanced-chat" } else { "workflow" }.into(),
        },
    })
}

/// Dify's status of a finished row (the generator makes no open runs).
fn status_of(s: &Span) -> &'static str {
    if s.status == Some(Status::Error) {
        "failed"
    } else {
        "succeeded"
    }
}

/// `process_data` and `execution_metadata` of a node, as Dify writes them.
fn node_metadata(n: &Span, node_type: &str) -> (Option<String>, Option<String>) {
    match node_type {
        "llm" => {
            let process = json!({
                "model_mode": "chat",
                "model_provider": n.model_provider,
                "model_name": n.model_name,
            });
            let mut meta = json!({
                "total_tokens": n.total_tokens.unwrap_or(0),
                "currency": n.currency.clone().unwrap_or_else(|| "USD".into()),
            });
            if let Some(cost) = n.cost {
                meta["total_price"] = json!(cost.to_string());
            }
            (Some(process.to_string()), Some(meta.to_string()))
        }
        "tool" => {
            let meta = json!({"tool_info": {
                "provider_type": "api",
                "provider_id": n.tool_name,
            }});
            (None, Some(meta.to_string()))
        }
        _ => (None, None),
    }
}

/// The attribute `key` when it is a UUID, else a stable id made from `fallback`.
fn uuid_attr(span: &Span, key: &str, fallback: &str) -> String {
    match span.attributes.get(key) {
        Some(v) if v.len() == 36 => v.clone(),
        _ => uuid_of(fallback),
    }
}

/// Seconds as Dify's `elapsed_time` (a float).
fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// ns since the epoch → Dify's naive-UTC timestamp (the inverse of
/// [`crate::schema::utc_ns`]; out-of-range instants become the epoch).
pub fn naive(ns: i64) -> NaiveDateTime {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.naive_utc())
        .unwrap_or_default()
}

/// A stable UUID-shaped id for `text` (two FNV-1a passes).
pub fn uuid_of(text: &str) -> String {
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests;
