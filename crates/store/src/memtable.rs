//! In-memory table of merged rows not yet in a Parquet part, and the run
//! context used to propagate run-level fields to every span of a trace.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::Instant;

use loupe_model::{Span, SpanKind, Tags};

use crate::convert::Row;

/// (project, id) key.
pub(crate) type Key = (String, String);

/// Rows keyed by (project, span_id), each the merge of every write so far.
///
/// Rows are shared (`Arc`) so a scan can take the changed ones under the
/// state lock by reference and convert them after releasing it
/// (`memscan.rs`); an update in place copies a row a scan still holds.
#[derive(Default)]
pub(crate) struct Memtable {
    pub rows: HashMap<Key, Arc<Row>>,
    /// (project, trace_id) → span ids, for run-level fix-ups.
    pub by_trace: HashMap<Key, Vec<String>>,
    pub bytes: usize,
    pub first_write: Option<Instant>,
    /// Highest WAL seq applied.
    pub max_seq: u64,
    /// Versions of older rows (in frozen memtables or parts) that rows here
    /// supersede. They become durable in the manifest when this flushes.
    pub pending_hidden: Vec<u64>,
    /// Rollups as of `max_seq`, taken when this memtable was frozen and
    /// persisted with its flush.
    pub rollups: Option<loupe_rollup::Snapshot>,
    /// Hour-tier days changed since the previous freeze, written with this
    /// memtable's flush (the snapshot names them).
    pub hour_days: Vec<loupe_rollup::DayFile>,
    /// Columnar copies of the rows, built by scans.
    pub columnar: Arc<crate::memscan::ColumnarCache>,
    /// Per project that has columnar copies: the span ids written since
    /// the last scan converted them.
    pub changed: HashMap<String, foldhash::HashSet<String>>,
}

impl Memtable {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Inserts or replaces a row, keeping indexes and accounting right.
    pub fn put(&mut self, row: Row) {
        let key = (row.span.project.clone(), row.span.span_id.clone());
        self.note_changed(&key);
        self.bytes += row.span.approx_bytes();
        if let Some(old) = self.rows.get(&key) {
            self.bytes = self.bytes.saturating_sub(old.span.approx_bytes());
        } else if let Some(t) = &row.span.trace_id {
            self.by_trace
                .entry((row.span.project.clone(), t.clone()))
                .or_default()
                .push(row.span.span_id.clone());
        }
        self.first_write.get_or_insert_with(Instant::now);
        self.rows.insert(key, Arc::new(row));
    }

    /// A row to change in place (noted for the columnar copies).
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut Row> {
        if !self.rows.contains_key(key) {
            return None;
        }
        self.note_changed(key);
        self.rows.get_mut(key).map(Arc::make_mut)
    }

    fn note_changed(&mut self, key: &Key) {
        if let Some(ids) = self.changed.get_mut(&key.0)
            && !ids.contains(&key.1)
        {
            ids.insert(key.1.clone());
        }
    }

    /// Span ids of a trace held here.
    pub fn trace_span_ids(&self, project: &str, trace: &str) -> &[String] {
        self.by_trace
            .get(&(project.to_owned(), trace.to_owned()))
            .map_or(&[], Vec::as_slice)
    }
}

/// Run-level fields of one trace, shared by all its spans.
///
/// Contributed by the run's root spans (no parent, or kind `workflow`) and,
/// for tags, by any span; filled into every span of the trace where unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunContext {
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub app_name: Option<String>,
    pub workflow_id: Option<String>,
    pub workflow_version: Option<String>,
    pub tags: Tags,
    /// Run ids this context held before a better one replaced them (a
    /// Dify chatflow root carries the message id, its workflow span the
    /// workflow run id); spans still carrying one are re-filled.
    pub replaced_run_ids: Vec<String>,
    /// Whether `run_id` came from a `workflow`-kind span (the best source).
    pub run_from_workflow: bool,
    /// Some spans of this trace are in Parquet parts (a change of context
    /// must then fix rows there too).
    pub in_parts: bool,
}

/// Whether a span can change its trace's context.
pub(crate) fn may_contribute(span: &Span) -> bool {
    is_run_root(span) || !span.tags.is_empty()
}

fn is_run_root(span: &Span) -> bool {
    span.parent_span_id.is_none() || span.span_kind == Some(SpanKind::Workflow)
}

/// A `run_id` equal to the trace id is a fallback, not a real run id.
fn is_fallback_run(span_run: &Option<String>, trace: &Option<String>) -> bool {
    span_run.is_none() || span_run == trace
}

impl RunContext {
    /// Takes what the span says about its run. Returns whether anything changed.
    pub fn absorb(&mut self, span: &Span) -> bool {
        let mut changed = false;
        if is_run_root(span) {
            let mut set = |slot: &mut Option<String>, value: &Option<String>| {
                if value.is_some() && slot.is_none() {
                    *slot = value.clone();
                    changed = true;
                }
            };
            set(&mut self.session_id, &span.session_id);
            set(&mut self.user_id, &span.user_id);
            set(&mut self.app_id, &span.app_id);
            set(&mut self.app_name, &span.app_name);
            set(&mut self.workflow_id, &span.workflow_id);
            set(&mut self.workflow_version, &span.workflow_version);
            // A real run id (not the trace-id fallback) replaces a fallback,
            // and a workflow span's run id replaces a plain root's.
            let is_workflow = span.span_kind == Some(SpanKind::Workflow);
            let better = !is_fallback_run(&span.run_id, &span.trace_id)
                && span.run_id != self.run_id
                && (is_fallback_run(&self.run_id, &span.trace_id)
                    || (is_workflow && !self.run_from_workflow));
            if better || (self.run_id.is_none() && span.run_id.is_some()) {
                if let Some(old) = self.run_id.take() {
                    self.replaced_run_ids.push(old);
                }
                self.run_id = span.run_id.clone();
                self.run_from_workflow = is_workflow;
                changed = true;
            } else if let Some(r) = &span.run_id
                && self.run_from_workflow
                && Some(r) != self.run_id.as_ref()
                && !self.replaced_run_ids.contains(r)
            {
                // A root arriving after the workflow span loses the same way.
                self.replaced_run_ids.push(r.clone());
            }
        }
        for (k, v) in &span.tags {
            if self.tags.get(k) != Some(v) {
                self.tags.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        changed
    }

    /// Fills unset run-level fields of a span. Returns whether it changed.
    pub fn fill(&self, span: &mut Span) -> bool {
        let mut changed = false;
        let mut fill = |slot: &mut Option<String>, value: &Option<String>| {
            if slot.is_none() && value.is_some() {
                *slot = value.clone();
                changed = true;
            }
        };
        fill(&mut span.session_id, &self.session_id);
        fill(&mut span.user_id, &self.user_id);
        fill(&mut span.app_id, &self.app_id);
        fill(&mut span.app_name, &self.app_name);
        fill(&mut span.workflow_id, &self.workflow_id);
        fill(&mut span.workflow_version, &self.workflow_version);
        if self.run_id.is_some()
            && span.run_id != self.run_id
            && (is_fallback_run(&span.run_id, &span.trace_id)
                || span
                    .run_id
                    .as_ref()
                    .is_some_and(|r| self.replaced_run_ids.contains(r)))
        {
            span.run_id = self.run_id.clone();
            changed = true;
        }
        for (k, v) in &self.tags {
            if !span.tags.contains_key(k) {
                span.tags.insert(k.clone(), v.clone());
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_from_root_fills_children_and_replaces_fallback_run_ids() {
        let mut root = Span::new("p", "root");
        root.trace_id = Some("t".into());
        root.run_id = Some("run-1".into());
        root.workflow_id = Some("wf".into());
        root.tags.insert("category".into(), "phone".into());
        let mut child = Span::new("p", "c");
        child.trace_id = Some("t".into());
        child.parent_span_id = Some("root".into());
        child.run_id = Some("t".into());
        child.workflow_id = Some("own".into());
        let mut ctx = RunContext::default();
        assert!(ctx.absorb(&root));
        assert!(!ctx.absorb(&root), "absorbing twice changes nothing");
        assert!(
            !ctx.absorb(&child),
            "a non-root without tags contributes nothing"
        );
        assert!(ctx.fill(&mut child));
        assert_eq!(child.run_id.as_deref(), Some("run-1"));
        assert_eq!(child.workflow_id.as_deref(), Some("own"), "own values win");
        assert_eq!(
            child.tags.get("category").map(String::as_str),
            Some("phone")
        );
    }

    #[test]
    fn a_workflow_spans_run_id_replaces_the_chatflow_roots_message_id() {
        let mut root = Span::new("p", "root");
        root.trace_id = Some("t".into());
        root.run_id = Some("message-1".into());
        let mut workflow = Span::new("p", "wf");
        workflow.trace_id = Some("t".into());
        workflow.parent_span_id = Some("root".into());
        workflow.span_kind = Some(SpanKind::Workflow);
        workflow.run_id = Some("run-1".into());
        let mut ctx = RunContext::default();
        ctx.absorb(&root);
        assert!(ctx.absorb(&workflow));
        assert_eq!(ctx.run_id.as_deref(), Some("run-1"));
        assert!(ctx.fill(&mut root), "the root is re-filled");
        assert_eq!(root.run_id.as_deref(), Some("run-1"));
        // The same when the root arrives after the workflow span.
        let mut late = RunContext::default();
        late.absorb(&workflow);
        let mut root2 = root.clone();
        root2.run_id = Some("message-1".into());
        late.absorb(&root2);
        assert!(late.fill(&mut root2));
        assert_eq!(root2.run_id.as_deref(), Some("run-1"));
    }
}
