//! Generated runs → rows of Dify's tables, in PostgreSQL's COPY text format:
//! the inverse of `loupe_dify::map` for the generator's shape.
//!
//! - the workflow span → one `workflow_runs` row (id = run id, `inputs` the
//!   run's inputs JSON, `type` `chat` for the chatflow, else `workflow`);
//! - each node span → one `workflow_node_executions` row (id = Dify's node
//!   execution id, `index` in start order, LLM model in `process_data`,
//!   tokens and price in `execution_metadata`, the tool's provider in
//!   `execution_metadata.tool_info.provider_id`, as Dify's tool node does);
//! - workflow-type runs → one `workflow_app_logs` row (chatflow turns are
//!   logged through `messages`, which the benchmark does not load).
//!
//! `graph` (Dify stores the whole app graph, several KB, on every run) is
//! left NULL, so PostgreSQL's byte count is an underestimate.

use loupe_model::{Span, SpanKind, Status};
use serde_json::json;

/// Column lists of the COPY statements, in the order the rows are written.
pub const RUN_COLUMNS: &str = "id, tenant_id, app_id, workflow_id, type, triggered_from, version, graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps, created_by_role, created_by, created_at, finished_at, exceptions_count";
/// See [`RUN_COLUMNS`].
pub const NODE_COLUMNS: &str = "id, tenant_id, app_id, workflow_id, triggered_from, workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title, inputs, process_data, outputs, status, error, elapsed_time, execution_metadata, created_at, created_by_role, created_by, finished_at";
/// See [`RUN_COLUMNS`].
pub const LOG_COLUMNS: &str = "id, tenant_id, app_id, workflow_id, workflow_run_id, created_from, created_by_role, created_by, created_at";

/// COPY text buffers of a batch of runs.
#[derive(Debug, Default)]
pub struct Buffers {
    /// `workflow_runs` rows.
    pub runs: String,
    /// `workflow_node_executions` rows.
    pub nodes: String,
    /// `workflow_app_logs` rows.
    pub logs: String,
}

impl Buffers {
    /// Appends the rows of one run (its normalised spans).
    pub fn push_run(&mut self, spans: &[Span], inputs: &serde_json::Value) {
        let Some(run) = spans
            .iter()
            .find(|s| s.span_kind == Some(SpanKind::Workflow))
        else {
            return;
        };
        let run_id = run.run_id.clone().unwrap_or_default();
        let tenant = uuid_attr(run, "metadata.tenant_id", "tenant");
        let app = run.app_id.clone().unwrap_or_default();
        let workflow = run.workflow_id.clone().unwrap_or_default();
        let user = uuid_of(run.user_id.as_deref().unwrap_or("anonymous"));
        let chat = run.session_id.as_deref() != Some(run_id.as_str());
        let start = run.start_time.unwrap_or(0);
        let end = run.end_time.unwrap_or(start);
        let mut nodes: Vec<&Span> = spans.iter().filter(|s| s.node_type.is_some()).collect();
        nodes.sort_by_key(|s| s.start_time);
        let tokens: i64 = nodes.iter().filter_map(|n| n.total_tokens).sum();
        let failed = run.status == Some(Status::Error);
        row(
            &mut self.runs,
            &[
                Some(run_id.as_str()),
                Some(&tenant),
                Some(&app),
                Some(&workflow),
                Some(if chat { "chat" } else { "workflow" }),
                Some("app-run"),
                run.workflow_version.as_deref(),
                None,
                Some(&inputs.to_string()),
                Some(if failed { "failed" } else { "succeeded" }),
                run.output.as_deref(),
                run.error_message.as_deref(),
                Some(&secs(end - start)),
                Some(&tokens.to_string()),
                Some(&nodes.len().to_string()),
                Some("end_user"),
                Some(&user),
                Some(&timestamp(start)),
                Some(&timestamp(end)),
                Some("0"),
            ],
        );
        let mut predecessor: Option<String> = None;
        for (i, n) in nodes.iter().enumerate() {
            let exec = uuid_attr(n, "metadata.node_execution_id", &n.span_id);
            let node_id = uuid_attr(n, "metadata.node_id", n.name.as_deref().unwrap_or("node"));
            let node_type = n.node_type.as_deref().unwrap_or_default();
            let (process, meta) = node_metadata(n, node_type);
            let n_start = n.start_time.unwrap_or(start);
            let n_end = n.end_time.unwrap_or(n_start);
            row(
                &mut self.nodes,
                &[
                    Some(&exec),
                    Some(&tenant),
                    Some(&app),
                    Some(&workflow),
                    Some("workflow-run"),
                    Some(&run_id),
                    Some(&(i + 1).to_string()),
                    predecessor.as_deref(),
                    Some(&exec),
                    Some(&node_id),
                    Some(node_type),
                    n.name.as_deref().or(Some("")),
                    n.input.as_deref(),
                    process.as_deref(),
                    n.output.as_deref(),
                    Some(if n.status == Some(Status::Error) {
                        "failed"
                    } else {
                        "succeeded"
                    }),
                    n.error_message.as_deref(),
                    Some(&secs(n_end - n_start)),
                    meta.as_deref(),
                    Some(&timestamp(n_start)),
                    Some("end_user"),
                    Some(&user),
                    Some(&timestamp(n_end)),
                ],
            );
            predecessor = Some(node_id);
        }
        if !chat {
            row(
                &mut self.logs,
                &[
                    Some(&uuid_of(&format!("log-{run_id}"))),
                    Some(&tenant),
                    Some(&app),
                    Some(&workflow),
                    Some(&run_id),
                    Some("service-api"),
                    Some("end_user"),
                    Some(&user),
                    Some(&timestamp(start)),
                ],
            );
        }
    }

    /// Whether every buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.nodes.is_empty() && self.logs.is_empty()
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

/// The attribute `key` when it is set, else a stable id made from `fallback`.
fn uuid_attr(span: &Span, key: &str, fallback: &str) -> String {
    match span.attributes.get(key) {
        Some(v) if v.len() == 36 => v.clone(),
        _ => uuid_of(fallback),
    }
}

/// Seconds as Dify's `elapsed_time` (a float).
fn secs(ns: i64) -> String {
    format!("{}", ns as f64 / 1e9)
}

/// ns since the epoch → `timestamp without time zone` text (UTC, µs, truncated).
pub fn timestamp(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
        .unwrap_or_else(|| "1970-01-01 00:00:00".into())
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

/// Appends one COPY text row (`\N` for NULL, escaped text).
fn row(out: &mut String, cells: &[Option<&str>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match cell {
            None => out.push_str("\\N"),
            Some(text) => {
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\0' => {}
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_and_null() {
        let mut out = String::new();
        row(&mut out, &[Some("a\tb\\c\nd"), None]);
        assert_eq!(out, "a\\tb\\\\c\\nd\t\\N\n");
        assert_eq!(timestamp(1_500_000_999), "1970-01-01 00:00:01.500000");
        assert_eq!(uuid_of("x").len(), 36);
    }
}
