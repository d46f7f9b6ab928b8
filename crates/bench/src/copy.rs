//! Dify rows ([`loupe_dify::rows`]) → PostgreSQL's COPY text format, one
//! buffer per table, so a batch of runs loads with three `COPY … FROM
//! STDIN` streams. The column lists name every column the rows fill; the
//! others (`graph`) are NULL.

use loupe_dify::rows::RunRows;

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
    /// Appends the rows of one run (its normalised spans); a run without a
    /// workflow span writes nothing.
    pub fn push_run(&mut self, spans: &[loupe_model::Span], inputs: &serde_json::Value) {
        if let Some(rows) = loupe_dify::rows::run_rows(spans, inputs) {
            self.push_rows(&rows);
        }
    }

    /// Appends the rows of one run.
    pub fn push_rows(&mut self, r: &RunRows) {
        let run = &r.run;
        row(
            &mut self.runs,
            &[
                Some(&run.id),
                Some(&run.tenant_id),
                Some(&run.app_id),
                Some(&run.workflow_id),
                Some(&run.run_type),
                Some(&run.triggered_from),
                Some(&run.version),
                None,
                run.inputs.as_deref(),
                Some(&run.status),
                run.outputs.as_deref(),
                run.error.as_deref(),
                Some(&run.elapsed_time.to_string()),
                Some(&run.total_tokens.to_string()),
                run.total_steps.map(|n| n.to_string()).as_deref(),
                Some(&run.created_by_role),
                Some(&run.created_by),
                Some(&timestamp(run.created_at)),
                run.finished_at.map(timestamp).as_deref(),
                run.exceptions_count.map(|n| n.to_string()).as_deref(),
            ],
        );
        for n in &r.nodes {
            row(
                &mut self.nodes,
                &[
                    Some(&n.id),
                    Some(&n.tenant_id),
                    Some(&n.app_id),
                    Some(&n.workflow_id),
                    Some(&n.triggered_from),
                    n.workflow_run_id.as_deref(),
                    Some(&n.index.to_string()),
                    n.predecessor_node_id.as_deref(),
                    // Dify's node execution id is the row id for workflow runs.
                    Some(&n.id),
                    Some(&n.node_id),
                    Some(&n.node_type),
                    Some(&n.title),
                    n.inputs.as_deref(),
                    n.process_data.as_deref(),
                    n.outputs.as_deref(),
                    Some(&n.status),
                    n.error.as_deref(),
                    Some(&n.elapsed_time.to_string()),
                    n.execution_metadata.as_deref(),
                    Some(&timestamp(n.created_at)),
                    Some(&n.created_by_role),
                    // The run's creator executed its nodes.
                    Some(&run.created_by),
                    n.finished_at.map(timestamp).as_deref(),
                ],
            );
        }
        if let Some(log) = &r.log {
            row(
                &mut self.logs,
                &[
                    Some(&log.id),
                    Some(&run.tenant_id),
                    Some(&run.app_id),
                    Some(&run.workflow_id),
                    Some(&log.workflow_run_id),
                    Some(&log.created_from),
                    Some(&log.created_by_role),
                    Some(&log.created_by),
                    Some(&timestamp(run.created_at)),
                ],
            );
        }
    }

    /// Whether every buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.nodes.is_empty() && self.logs.is_empty()
    }
}

/// A naive-UTC timestamp as `timestamp without time zone` text (µs, truncated).
fn timestamp(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// ns since the epoch → `timestamp without time zone` text (UTC, µs,
/// truncated), as the questions' SQL literals need it.
pub fn timestamp_ns(ns: i64) -> String {
    timestamp(loupe_dify::rows::naive(ns))
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
        assert_eq!(timestamp_ns(1_500_000_999), "1970-01-01 00:00:01.500000");
    }

    #[test]
    fn a_generated_run_fills_every_copy_column() {
        let config = loupe_gen::GenConfig {
            runs: 20,
            ..loupe_gen::GenConfig::default()
        };
        let mut buffers = Buffers::default();
        for run in loupe_gen::runs(&config) {
            buffers.push_run(&run.spans, &run.inputs);
        }
        let width = |cols: &str| cols.split(", ").count();
        for (text, cols) in [
            (&buffers.runs, RUN_COLUMNS),
            (&buffers.nodes, NODE_COLUMNS),
            (&buffers.logs, LOG_COLUMNS),
        ] {
            assert!(!text.is_empty());
            for line in text.lines() {
                assert_eq!(line.split('\t').count(), width(cols), "{line}");
            }
        }
        assert_eq!(buffers.runs.lines().count(), 20);
    }
}
