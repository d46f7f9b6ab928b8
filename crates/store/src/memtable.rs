//! In-memory table of merged rows not yet in a Parquet part, and the run
//! context used to propagate run-level fields to every span of a trace.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::Instant;

use loupe_model::Span;

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

/// The run context of one trace (`loupe_backend::RunContext`: the rules
/// both backends share) and whether the store must look in parts for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunContext {
    /// Run-level fields of the trace.
    pub run: loupe_backend::RunContext,
    /// Some spans of this trace are in Parquet parts (a change of context
    /// must then fix rows there too).
    pub in_parts: bool,
}

impl RunContext {
    /// Takes what the span says about its run. Returns whether anything changed.
    pub fn absorb(&mut self, span: &Span) -> bool {
        self.run.absorb(span)
    }

    /// Fills unset run-level fields of a span. Returns whether it changed.
    pub fn fill(&self, span: &mut Span) -> bool {
        self.run.fill(span)
    }
}

/// Whether a span can change its trace's context.
pub(crate) fn may_contribute(span: &Span) -> bool {
    loupe_backend::run_context::may_contribute(span)
}
