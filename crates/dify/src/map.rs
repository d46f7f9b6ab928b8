//! Dify rows → spans, with the ids the Langfuse and OTLP paths use, so a
//! run arriving from Dify's tracing provider and from the database merges
//! into one run:
//!
//! - workflow run → root span: span id = trace id = run id = the run's id.
//!   Chatflow runs (`type = chat`) hang under their message (Langfuse's
//!   trace id there is the message id): the message mapping sets the run
//!   span's and its nodes' trace id to the message id and parents the run
//!   span under the message; the run mapping leaves both unset.
//! - node execution → child span: span id = node execution id, parent =
//!   the run, or the execution of the iteration/loop node named by
//!   `execution_metadata.iteration_id`/`loop_id` (the latest execution of
//!   that graph node that started no later than the child).
//! - tokens and price come from `execution_metadata`, never for iteration
//!   and loop containers (they carry their children's sum) nor for the run
//!   (its `total_tokens` is the node sum): both are kept as attributes.
//! - message → chat turn: span id = trace id = message id. Chatflow turns
//!   are `workflow` spans whose aggregate tokens and price stay attributes
//!   (the nodes carry them); chat/completion/agent turns are `llm` spans
//!   with tokens, price and latency.
//! - feedback → a `score` span under its message.
//! - offloaded (truncated) node payloads: marked `dify.truncated.<kind>`
//!   with `dify.offload.<kind>.file_id`; when the sync restored the full
//!   value ([`Offload::full`]) it replaces the column and is marked
//!   `dify.offload.<kind>.restored` and `dify.truncated.<kind>` = false
//!   instead; a failed restore adds
//!   `dify.offload.<kind>.error`. No I/O here: the sync reads the files.

use std::collections::HashMap;

use loupe_model::{Span, SpanKind, Status};
use loupe_normalise::dify::{is_container, kind_of_node, map_status};
use serde_json::Value;

use crate::SOURCE;
use crate::schema::{
    App, AppLog, Conversation, EndUser, Feedback, Message, NodeExecution, Offload, WorkflowRun,
    utc_ns,
};

/// Rows looked up by id for a batch: apps, end users, conversations.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// Apps by id.
    pub apps: HashMap<String, App>,
    /// End users by id.
    pub users: HashMap<String, EndUser>,
    /// Conversations by id.
    pub conversations: HashMap<String, Conversation>,
}

impl Lookups {
    fn app_name(&self, app_id: &str) -> Option<String> {
        self.apps.get(app_id).map(|a| a.name.clone())
    }

    /// The workspace (tenant) of an app, for rows that do not name it.
    pub fn tenant_of(&self, app_id: &str) -> Option<&str> {
        self.apps.get(app_id).map(|a| a.tenant_id.as_str())
    }

    /// The user id Dify's tracing providers report: an end user's `user`
    /// string (`session_id`), else the account id.
    fn user(&self, role: &str, creator: &str) -> String {
        if matches!(role, "end_user" | "end-user")
            && let Some(u) = self.users.get(creator)
        {
            return u.session_id.clone();
        }
        creator.to_owned()
    }

    fn message_user(&self, end_user: Option<&str>, account: Option<&str>) -> Option<String> {
        match (end_user, account) {
            (Some(u), _) => Some(self.user("end_user", u)),
            (None, Some(a)) => Some(a.to_owned()),
            (None, None) => None,
        }
    }
}

fn base(project: &str, id: &str) -> Span {
    let mut s = Span::new(project, id);
    s.source = Some(SOURCE.to_owned());
    s
}

pub(crate) fn secs_ns(secs: f64) -> Option<i64> {
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1e9).round() as i64)
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|v| !v.is_empty()).cloned()
}

fn status_of(raw: &str) -> Option<Status> {
    map_status(raw)
}

/// End of a row: `finished_at`, else start + elapsed once the row is final.
pub(crate) fn end_of(
    start: i64,
    finished: Option<chrono::NaiveDateTime>,
    elapsed: f64,
    open: bool,
) -> Option<i64> {
    match finished {
        Some(f) => Some(utc_ns(f)),
        None if !open => secs_ns(elapsed).map(|e| start.saturating_add(e)),
        None => None,
    }
}

/// The root span of a workflow run (plus the app log's facts).
pub fn run_span(project: &str, run: &WorkflowRun, log: Option<&AppLog>, lookups: &Lookups) -> Span {
    let mut s = base(project, &run.id);
    let chatflow = run.run_type == "chat";
    if !chatflow {
        s.trace_id = Some(run.id.clone());
    }
    s.run_id = Some(run.id.clone());
    s.span_kind = Some(SpanKind::Workflow);
    s.name = Some(match run.run_type.as_str() {
        "workflow" | "chat" => "workflow".to_owned(),
        other => other.to_owned(),
    });
    s.app_id = Some(run.app_id.clone());
    s.app_name = lookups.app_name(&run.app_id);
    s.workflow_id = Some(run.workflow_id.clone());
    s.workflow_version = Some(run.version.clone());
    s.user_id = Some(lookups.user(&run.created_by_role, &run.created_by));
    s.status = status_of(&run.status);
    s.raw_status = Some(run.status.clone());
    s.error_message = nonempty(&run.error);
    let start = utc_ns(run.created_at);
    s.start_time = Some(start);
    s.end_time = end_of(start, run.finished_at, run.elapsed_time, run.is_open());
    s.input = run.inputs.clone();
    s.output = run.outputs.clone();
    let a = &mut s.attributes;
    a.insert("dify.tenant_id".into(), run.tenant_id.clone());
    a.insert("dify.run_type".into(), run.run_type.clone());
    a.insert("dify.triggered_from".into(), run.triggered_from.clone());
    a.insert("dify.elapsed_time".into(), run.elapsed_time.to_string());
    a.insert("dify.total_tokens".into(), run.total_tokens.to_string());
    a.insert("dify.created_by_role".into(), run.created_by_role.clone());
    a.insert("dify.created_by".into(), run.created_by.clone());
    if let Some(n) = run.total_steps {
        a.insert("dify.total_steps".into(), n.to_string());
    }
    if let Some(n) = run.exceptions_count {
        a.insert("dify.exceptions_count".into(), n.to_string());
    }
    if let Some(log) = log {
        a.insert("dify.app_log_id".into(), log.id.clone());
        a.insert("dify.created_from".into(), log.created_from.clone());
    }
    s
}

fn parse_object(text: &Option<String>) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_str(text.as_deref()?) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn count_of(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        .or_else(|| v.as_str()?.parse().ok())
        .filter(|n| *n >= 0)
}

fn amount_of(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    v.as_f64()
        .or_else(|| v.as_str()?.parse().ok())
        .filter(|f: &f64| f.is_finite() && *f >= 0.0)
}

/// Child spans of one run's node executions. `chatflow` runs leave the
/// trace id to the message mapping. The executions are consumed: their
/// payloads move into the spans instead of being copied.
pub fn node_spans(
    project: &str,
    run: &WorkflowRun,
    nodes: Vec<NodeExecution>,
    offloads: &[Offload],
    lookups: &Lookups,
) -> Vec<Span> {
    // Graph node id → its executions (start, execution id), for parents.
    let mut containers: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for n in nodes.iter().filter(|n| is_container(&n.node_type)) {
        containers
            .entry(n.node_id.clone())
            .or_default()
            .push((utc_ns(n.created_at), n.id.clone()));
    }
    nodes
        .into_iter()
        .map(|n| node_span(project, run, n, offloads, lookups, &containers))
        .collect()
}

fn node_span(
    project: &str,
    run: &WorkflowRun,
    n: NodeExecution,
    offloads: &[Offload],
    lookups: &Lookups,
    containers: &HashMap<String, Vec<(i64, String)>>,
) -> Span {
    let mut s = base(project, &n.id);
    if run.run_type != "chat" {
        s.trace_id = Some(run.id.clone());
    }
    s.run_id = Some(run.id.clone());
    let start = utc_ns(n.created_at);
    let meta = parse_object(&n.execution_metadata).unwrap_or_default();
    let container_of = ["iteration_id", "loop_id"]
        .iter()
        .filter_map(|k| meta.get(*k).and_then(Value::as_str))
        .find_map(|graph_id| {
            containers
                .get(graph_id)?
                .iter()
                .filter(|(t, id)| *t <= start && *id != n.id)
                .max_by_key(|(t, _)| *t)
                .map(|(_, id)| id.clone())
        });
    s.parent_span_id = Some(container_of.unwrap_or_else(|| run.id.clone()));
    s.app_name = lookups.app_name(&n.app_id);
    s.app_id = Some(n.app_id);
    s.workflow_id = Some(n.workflow_id);
    s.name = Some(n.title.clone());
    let kind = kind_of_node(&n.node_type);
    let container = is_container(&n.node_type);
    s.node_type = Some(n.node_type);
    s.span_kind = Some(kind);
    s.status = status_of(&n.status);
    let open = matches!(
        n.status.as_str(),
        "running" | "pending" | "paused" | "retry"
    );
    s.raw_status = Some(n.status);
    s.error_message = nonempty(&n.error);
    s.start_time = Some(start);
    s.end_time = end_of(start, n.finished_at, n.elapsed_time, open);
    // Offloaded payloads: the full value the sync read from Dify's storage
    // replaces the truncated column; otherwise the column stays, marked.
    let mine: Vec<&Offload> = offloads
        .iter()
        .filter(|o| o.node_execution_id == n.id)
        .collect();
    let value_of = |kind: &str, column: Option<String>| {
        mine.iter()
            .find(|o| o.kind == kind)
            .and_then(|o| o.full.clone())
            .or(column)
    };
    let outputs_text = value_of("outputs", n.outputs);
    let process_text = value_of("process_data", n.process_data);
    s.input = value_of("inputs", n.inputs);
    if kind == SpanKind::Tool {
        s.tool_name = Some(n.title);
    }
    let process = parse_object(&process_text);
    // Only `usage` is read from the outputs, which can be long (an LLM's
    // text): skip parsing them when the key is not there. Dify writes
    // its JSON with Python's `json.dumps`, which never escapes a key's
    // ASCII letters.
    let outputs = if outputs_text
        .as_deref()
        .is_some_and(|o| o.contains("\"usage\""))
    {
        parse_object(&outputs_text)
    } else {
        None
    };
    if let Some(p) = &process {
        s.model_name = p.get("model_name").and_then(text_of);
        s.model_provider = p.get("model_provider").and_then(text_of);
    }
    if !container {
        s.total_tokens = count_of(meta.get("total_tokens"));
        if let Some(price) = amount_of(meta.get("total_price")) {
            s.cost = Some(price);
            s.currency = Some(
                meta.get("currency")
                    .and_then(text_of)
                    .unwrap_or_else(|| "USD".to_owned()),
            );
        }
        let usage = outputs
            .as_ref()
            .and_then(|o| o.get("usage"))
            .or_else(|| process.as_ref().and_then(|p| p.get("usage")));
        if let Some(u) = usage {
            s.input_tokens = count_of(u.get("prompt_tokens"));
            s.output_tokens = count_of(u.get("completion_tokens"));
        }
    }
    s.output = outputs_text;
    let a = &mut s.attributes;
    a.insert("dify.node_id".into(), n.node_id);
    a.insert("dify.index".into(), n.index.to_string());
    a.insert("dify.triggered_from".into(), n.triggered_from);
    a.insert("dify.elapsed_time".into(), n.elapsed_time.to_string());
    a.insert("dify.tenant_id".into(), n.tenant_id);
    if let Some(p) = n.predecessor_node_id {
        a.insert("dify.predecessor_node_id".into(), p);
    }
    if let Some(p) = process_text {
        a.insert("dify.process_data".into(), p);
    }
    for (key, value) in &meta {
        if let Some(text) = text_of(value) {
            a.insert(format!("dify.metadata.{key}"), text);
        }
    }
    for o in mine {
        a.insert(
            format!("dify.offload.{}.file_id", o.kind),
            o.file_id.clone(),
        );
        if o.full.is_some() {
            a.insert(format!("dify.offload.{}.restored", o.kind), "true".into());
            // "false", not absent: attributes merge by key, so a run first
            // synced before its file was readable loses the old "true".
            a.insert(format!("dify.truncated.{}", o.kind), "false".into());
        } else {
            a.insert(format!("dify.truncated.{}", o.kind), "true".into());
            if let Some(e) = &o.error {
                a.insert(format!("dify.offload.{}.error", o.kind), e.clone());
            }
        }
    }
    s
}

/// A chat turn, plus, for chatflows, the updates that hang the run and its
/// nodes (`node_ids`) under the message, as Dify's Langfuse provider does.
pub fn message_spans(
    project: &str,
    m: &Message,
    node_ids: &[String],
    lookups: &Lookups,
) -> Vec<Span> {
    let mut s = base(project, &m.id);
    s.trace_id = Some(m.id.clone());
    s.run_id = Some(m.workflow_run_id.clone().unwrap_or_else(|| m.id.clone()));
    s.session_id = Some(m.conversation_id.clone());
    s.user_id = lookups.message_user(m.from_end_user_id.as_deref(), m.from_account_id.as_deref());
    s.app_id = Some(m.app_id.clone());
    s.app_name = lookups.app_name(&m.app_id);
    s.name = Some("message".into());
    s.status = status_of(&m.status);
    s.raw_status = Some(m.status.clone());
    s.error_message = nonempty(&m.error);
    let start = utc_ns(m.created_at);
    s.start_time = Some(start);
    s.end_time = match secs_ns(m.provider_response_latency) {
        Some(l) if l > 0 => Some(start.saturating_add(l)),
        _ if m.status == "paused" => None,
        _ => Some(utc_ns(m.updated_at).max(start)),
    };
    s.input = Some(m.query.clone());
    s.output = Some(m.answer.clone());
    s.model_name = m.model_id.clone().filter(|v| !v.is_empty());
    s.model_provider = m.model_provider.clone().filter(|v| !v.is_empty());
    let total = i64::from(m.message_tokens) + i64::from(m.answer_tokens);
    let chatflow = m.workflow_run_id.is_some();
    if chatflow {
        s.span_kind = Some(SpanKind::Workflow);
    } else {
        s.span_kind = Some(if m.agent_based {
            SpanKind::Agent
        } else {
            SpanKind::Llm
        });
        s.input_tokens = Some(i64::from(m.message_tokens));
        s.output_tokens = Some(i64::from(m.answer_tokens));
        s.total_tokens = Some(total);
        if let Some(p) = m.total_price {
            s.cost = Some(p);
            s.currency = Some(if m.currency.is_empty() {
                "USD".into()
            } else {
                m.currency.clone()
            });
        }
    }
    let metadata = parse_object(&m.message_metadata);
    let a = &mut s.attributes;
    a.insert("dify.message_tokens".into(), m.message_tokens.to_string());
    a.insert("dify.answer_tokens".into(), m.answer_tokens.to_string());
    if let Some(p) = m.total_price {
        a.insert("dify.total_price".into(), p.to_string());
    }
    a.insert("dify.currency".into(), m.currency.clone());
    a.insert(
        "dify.latency".into(),
        m.provider_response_latency.to_string(),
    );
    a.insert("dify.from_source".into(), m.from_source.clone());
    if let Some(tenant) = lookups.tenant_of(&m.app_id) {
        a.insert("dify.tenant_id".into(), tenant.to_owned());
    }
    a.insert("dify.inputs".into(), m.inputs.clone());
    if let Some(v) = &m.invoke_from {
        a.insert("dify.invoke_from".into(), v.clone());
    }
    if let Some(v) = &m.parent_message_id {
        a.insert("dify.parent_message_id".into(), v.clone());
    }
    if let Some(ttft) = metadata.as_ref().and_then(|md| {
        md.get("usage")?
            .get("time_to_first_token")
            .and_then(text_of)
    }) {
        a.insert("dify.time_to_first_token".into(), ttft);
    }
    if let Some(c) = lookups.conversations.get(&m.conversation_id) {
        a.insert("dify.conversation_name".into(), c.name.clone());
        a.insert("dify.app_mode".into(), c.mode.clone());
    }
    let mut out = vec![s];
    if let Some(run_id) = &m.workflow_run_id {
        let mut run = base(project, run_id);
        run.trace_id = Some(m.id.clone());
        run.parent_span_id = Some(m.id.clone());
        run.session_id = Some(m.conversation_id.clone());
        out.push(run);
        for id in node_ids {
            let mut node = base(project, id);
            node.trace_id = Some(m.id.clone());
            out.push(node);
        }
    }
    out
}

/// A `score` span for one feedback row, under its message.
pub fn feedback_span(project: &str, f: &Feedback, lookups: &Lookups) -> Span {
    let mut s = base(project, &f.id);
    s.trace_id = Some(f.message_id.clone());
    s.parent_span_id = Some(f.message_id.clone());
    s.span_kind = Some(SpanKind::Other);
    s.node_type = Some("score".into());
    s.name = Some("user_feedback".into());
    s.session_id = Some(f.conversation_id.clone());
    s.app_id = Some(f.app_id.clone());
    s.app_name = lookups.app_name(&f.app_id);
    s.user_id = lookups.message_user(f.from_end_user_id.as_deref(), f.from_account_id.as_deref());
    let at = utc_ns(f.updated_at);
    s.start_time = Some(at);
    s.end_time = Some(at);
    s.output = Some(f.rating.clone());
    let a = &mut s.attributes;
    a.insert("score.value".into(), f.rating.clone());
    a.insert("score.data_type".into(), "CATEGORICAL".into());
    a.insert("score.source".into(), format!("dify_{}", f.from_source));
    a.insert("score.observation_id".into(), f.message_id.clone());
    a.insert(
        "dify.feedback_created_at".into(),
        utc_ns(f.created_at).to_string(),
    );
    if let Some(c) = &f.content {
        a.insert("score.comment".into(), c.clone());
    }
    s
}
