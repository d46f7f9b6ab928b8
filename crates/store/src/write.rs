//! The write path: append → WAL record → merge into the memtable.
//!
//! Upsert semantics: rows are keyed by (project, span_id). A write for a key
//! merges into the newest existing version field by field (later non-null
//! wins, see `Span::merge_from`). The newest version may be in the active
//! memtable (merged in place), a frozen memtable or a part (copied into the
//! active memtable as the merge base; the old version is *hidden* by its
//! version number, so queries see one row per span wherever it lives).
//!
//! Run context: run-level fields (run id, tags, app, workflow, user,
//! session) known for a trace are filled into every span of that trace where
//! unset, whichever arrives first; when a late root changes the context, the
//! trace's existing rows are re-merged the same way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use loupe_backend::WriteAck;
use loupe_model::Span;

use crate::convert::Row;
use crate::memtable::{Key, RunContext, may_contribute};
use crate::parts::{IdKind, Part, RowPick, read_rows};
use crate::{Error, Store, live_parts_of};

/// An older version of a span with a start time is looked for only in parts
/// whose time range lies within this distance of it: sources disagree on a
/// span's start by milliseconds, not hours, and checking only nearby parts
/// keeps the cost per span flat as parts accumulate.
const SPAN_WINDOW_NS: i64 = 3_600 * 1_000_000_000;

/// Spans of one trace are looked for within this distance of a span's start
/// (a run lasting longer than a day is rare).
const TRACE_WINDOW_NS: i64 = 86_400 * 1_000_000_000;

/// Whether a part's time range comes within `window` of `start` (always
/// true for a span without a start time, or a part of rows without times).
fn near(part: &Part, start: Option<i64>, window: i64) -> bool {
    part.meta.max_time == i64::MIN
        || start.is_none_or(|t| {
            part.meta.min_time <= t.saturating_add(window)
                && t.saturating_sub(window) <= part.meta.max_time
        })
}

/// Rows read from parts ahead of applying a batch.
#[derive(Default)]
struct Lookups {
    /// Newest visible row per (project, span_id) found in parts.
    base: HashMap<Key, Row>,
    /// Visible rows per (project, trace_id) found in parts.
    traces: HashMap<Key, Vec<Row>>,
    /// Traces looked up (found or not).
    looked_up: HashSet<Key>,
}

impl Store {
    /// Appends spans; resolves once they are durable per the durability mode.
    pub async fn append(&self, spans: Vec<Span>) -> Result<WriteAck, Error> {
        self.append_or_return(spans).await.map_err(|(e, _)| e)
    }

    /// [`Store::append`], giving the spans back untouched when it refuses
    /// them for lack of room ([`Error::Full`]), so a caller that waits and
    /// retries needs no copy of its batch.
    #[tracing::instrument(name = "store.append", skip_all, fields(spans = spans.len()))]
    pub async fn append_or_return(
        &self,
        spans: Vec<Span>,
    ) -> Result<WriteAck, (Error, Option<Vec<Span>>)> {
        self.check_writable().map_err(|e| (e, None))?;
        for s in &spans {
            if s.project.is_empty() || s.span_id.is_empty() {
                return Err((
                    Error::Invalid("every span needs a project and a span_id".into()),
                    None,
                ));
            }
        }
        let count = spans.len();
        // Bounded admission: waiting requests hold their bodies in memory,
        // so past a short queue the caller is told to retry instead.
        let slot = match tokio::time::timeout(
            self.inner.config.append_queue_timeout,
            self.inner.append_slots.acquire(),
        )
        .await
        {
            Err(_) => return Err((Error::Full, Some(spans))),
            Ok(Err(_)) => return Err((Error::Closed, None)),
            Ok(Ok(slot)) => slot,
        };
        let store = self.clone();
        let seq = tokio::task::spawn_blocking(move || store.append_blocking(spans))
            .await
            .map_err(|e| (Error::Internal(format!("append task failed: {e}")), None))??;
        // The slot covers the applying; waiting for the fsync needs none
        // (that is where group commit gathers appends).
        drop(slot);
        self.inner
            .wal
            .wait_durable(seq)
            .await
            .map_err(|e| (e, None))?;
        Ok(WriteAck { seq, spans: count })
    }

    fn append_blocking(&self, spans: Vec<Span>) -> Result<u64, (Error, Option<Vec<Span>>)> {
        let _gate = self.inner.append_gate.lock();
        {
            let st = self.inner.state.lock();
            // The columnar copies scans made count too: they are memory
            // the unflushed data holds until it flushes.
            let unflushed = std::iter::once(&st.active)
                .chain(st.frozen.iter().map(|m| m.as_ref()))
                .map(|m| m.bytes + m.columnar.bytes())
                .sum::<usize>();
            if unflushed > self.inner.config.max_unflushed_bytes {
                self.inner.flush_wake.notify_one();
                return Err((Error::Full, Some(spans)));
            }
        }
        let payload = crate::wal::encode_spans(&spans).map_err(|e| {
            (
                Error::Internal(format!("cannot encode spans for the WAL: {e}")),
                None,
            )
        })?;
        let lookups = self.lookup(&spans).map_err(|e| (e, None))?;
        let seq = self.inner.state.lock().next_seq;
        self.inner.wal.write(seq, &payload).map_err(|e| (e, None))?;
        self.apply_with(seq, spans, lookups);
        if self.inner.state.lock().active.bytes >= self.inner.config.memtable_bytes {
            self.inner.flush_wake.notify_one();
        }
        Ok(seq)
    }

    /// Applies a record (used by replay; appends go through `append`).
    pub(crate) fn apply(&self, seq: u64, spans: Vec<Span>) -> Result<(), Error> {
        let lookups = self.lookup(&spans)?;
        self.apply_with(seq, spans, lookups);
        Ok(())
    }

    /// Finds, in parts, the older versions and trace rows this batch needs.
    fn lookup(&self, spans: &[Span]) -> Result<Lookups, Error> {
        let mut span_ids: HashMap<usize, (Arc<Part>, HashSet<String>)> = HashMap::new();
        let mut traces: Vec<(Key, Vec<Arc<Part>>)> = Vec::new();
        let deletes;
        {
            let st = self.inner.state.lock();
            deletes = st.deletes.clone();
            let in_memory = |key: &Key| {
                st.active.rows.contains_key(key)
                    || st.frozen.iter().any(|m| m.rows.contains_key(key))
            };
            let mut seen_traces = HashSet::new();
            for s in spans {
                let key = (s.project.clone(), s.span_id.clone());
                if !in_memory(&key) {
                    for (i, p) in st.parts.iter().enumerate() {
                        if p.meta.project == s.project
                            && near(p, s.start_time, SPAN_WINDOW_NS)
                            && p.index.may_contain(IdKind::Span, &s.span_id)
                        {
                            span_ids
                                .entry(i)
                                .or_insert_with(|| (p.clone(), HashSet::new()))
                                .1
                                .insert(s.span_id.clone());
                        }
                    }
                }
                let Some(trace) = &s.trace_id else { continue };
                let tkey = (s.project.clone(), trace.clone());
                if !seen_traces.insert(tkey.clone()) {
                    continue;
                }
                let need = match st.contexts.get(&tkey) {
                    None => true,
                    Some(ctx) => ctx.in_parts && may_contribute(s),
                };
                if need {
                    let candidates: Vec<_> = live_parts_of(&st.parts, &s.project)
                        .filter(|p| near(p, s.start_time, TRACE_WINDOW_NS))
                        .filter(|p| p.index.may_contain(IdKind::Trace, trace))
                        .cloned()
                        .collect();
                    traces.push((tkey, candidates));
                }
            }
        }
        let mut out = Lookups::default();
        for (_, (part, ids)) in span_ids {
            let dv = crate::deletes::of(&deletes, part.meta.id);
            for row in read_rows(&part.local()?, Some(RowPick::SpanIds(&ids)), &[], dv)? {
                let key = (row.span.project.clone(), row.span.span_id.clone());
                match out.base.get(&key) {
                    Some(existing) if existing.version >= row.version => {}
                    _ => {
                        out.base.insert(key, row);
                    }
                }
            }
        }
        for (tkey, candidates) in traces {
            let mut rows = Vec::new();
            for part in candidates {
                let dv = crate::deletes::of(&deletes, part.meta.id);
                let cache = Some(self.inner.parquet_metadata.as_ref());
                rows.extend(part.read_run(RowPick::Trace(&tkey.1), dv, cache)?);
            }
            for row in &rows {
                let key = (row.span.project.clone(), row.span.span_id.clone());
                match out.base.get(&key) {
                    Some(existing) if existing.version >= row.version => {}
                    _ => {
                        out.base.insert(key, row.clone());
                    }
                }
            }
            out.looked_up.insert(tkey.clone());
            out.traces.insert(tkey, rows);
        }
        Ok(out)
    }

    fn apply_with(&self, seq: u64, spans: Vec<Span>, lookups: Lookups) {
        let mut guard = self.inner.state.lock();
        let st = &mut *guard;
        st.next_seq = st.next_seq.max(seq + 1);
        st.active.max_seq = st.active.max_seq.max(seq);
        let Lookups {
            mut base,
            traces,
            looked_up,
        } = lookups;
        st.rollups.note_ingested(spans.len() as u64);
        for span in spans {
            let key = (span.project.clone(), span.span_id.clone());
            let version = st.next_version;
            st.next_version += 1;
            // What the previous merged version contributed to the rollups.
            let mut previous = None;
            // 1. Merge onto the newest existing version.
            let mut row = if let Some(existing) = st.active.rows.get(&key) {
                previous = Some(st.rollups.contribution(&existing.span));
                let start = existing.span.start_time;
                st.changes.touch(&key.0, start);
                let mut merged = existing.span.clone();
                merged.merge_from(span);
                merged
            } else {
                let older = st
                    .frozen
                    .iter()
                    .rev()
                    .find_map(|m| m.rows.get(&key).map(|r| Row::clone(r)))
                    .or_else(|| base.remove(&key))
                    .filter(|r| !st.hidden.contains(&r.version));
                match older {
                    Some(old) => {
                        previous = Some(st.rollups.contribution(&old.span));
                        st.changes.touch(&key.0, old.span.start_time);
                        hide(st, &key.0, old.version);
                        let mut merged = old.span;
                        merged.merge_from(span);
                        merged
                    }
                    None => span,
                }
            };
            // 2. Run context of the trace.
            if let Some(trace) = row.trace_id.clone() {
                let tkey = (row.project.clone(), trace.clone());
                if !st.contexts.contains_key(&tkey) || looked_up.contains(&tkey) {
                    let mut ctx = st.contexts.remove(&tkey).unwrap_or_default();
                    // An update without a trace id was not looked up: if
                    // parts may hold the trace, a later root must look there.
                    if !looked_up.contains(&tkey)
                        && live_parts_of(&st.parts, &tkey.0)
                            .any(|p| p.index.may_contain(IdKind::Trace, &trace))
                    {
                        ctx.in_parts = true;
                    }
                    for r in traces.get(&tkey).into_iter().flatten() {
                        ctx.absorb(&r.span);
                        ctx.in_parts = true;
                    }
                    for m in &st.frozen {
                        for id in m.trace_span_ids(&tkey.0, &trace) {
                            if let Some(r) = m.rows.get(&(tkey.0.clone(), id.clone())) {
                                ctx.absorb(&r.span);
                            }
                        }
                    }
                    st.contexts.insert(tkey.clone(), ctx);
                }
                let changed = st
                    .contexts
                    .get_mut(&tkey)
                    .is_some_and(|ctx| ctx.absorb(&row));
                // Borrowed, not cloned: a context is a dozen strings and
                // the tags, and this runs for every span written.
                if !changed {
                    if let Some(ctx) = st.contexts.get(&tkey) {
                        ctx.fill(&mut row);
                    }
                } else if let Some((tkey, ctx)) = st.contexts.remove_entry(&tkey) {
                    ctx.fill(&mut row);
                    refill_trace(st, &tkey, &row.span_id, &ctx, traces.get(&tkey));
                    st.contexts.insert(tkey, ctx);
                }
            }
            let current = st.rollups.contribution(&row);
            st.rollups.apply_change(previous.as_ref(), &current);
            st.changes.touch(&row.project, row.start_time);
            st.active.put(Row { span: row, version });
        }
    }
}

/// Marks an older row version as superseded by a row in the active memtable:
/// pending until that memtable flushes, and, if the row is in a part, in the
/// part's live deletion vector (a row still in a frozen memtable gets its
/// position when that memtable's part is written, see `flush.rs`).
fn hide(st: &mut crate::State, project: &str, version: u64) {
    st.active.pending_hidden.push(version);
    Arc::make_mut(&mut st.hidden).insert(version);
    let found = live_parts_of(&st.parts, project).find_map(|p| {
        let (lo, hi) = p.index.version_range()?;
        if version < lo || version > hi {
            return None;
        }
        Some((p.meta.id, p.index.position_of(version)?))
    });
    if let Some((part, position)) = found {
        crate::deletes::add_live(&mut st.deletes, part, &[position]);
    }
}

/// Fills a changed run context into every other row of the trace: in the
/// active memtable in place, elsewhere by superseding the row.
fn refill_trace(
    st: &mut crate::State,
    tkey: &Key,
    except: &str,
    ctx: &RunContext,
    part_rows: Option<&Vec<Row>>,
) {
    let (project, trace) = tkey;
    let ids: Vec<String> = st.active.trace_span_ids(project, trace).to_vec();
    for id in &ids {
        if id == except {
            continue;
        }
        let key = (project.clone(), id.clone());
        if let Some(row) = st.active.get_mut(&key) {
            let before = st.rollups.contribution(&row.span);
            if ctx.fill(&mut row.span) {
                let after = st.rollups.contribution(&row.span);
                st.rollups.apply_change(Some(&before), &after);
                let start = row.span.start_time;
                st.changes.touch(project, start);
            }
        }
    }
    let mut older: Vec<Row> = Vec::new();
    for m in st.frozen.iter().rev() {
        for id in m.trace_span_ids(project, trace) {
            if let Some(r) = m.rows.get(&(project.clone(), id.clone())) {
                older.push(Row::clone(r));
            }
        }
    }
    older.extend(part_rows.into_iter().flatten().cloned());
    for mut row in older {
        let key = (project.clone(), row.span.span_id.clone());
        if row.span.span_id == except
            || st.active.rows.contains_key(&key)
            || st.hidden.contains(&row.version)
        {
            continue;
        }
        let before = st.rollups.contribution(&row.span);
        if ctx.fill(&mut row.span) {
            let after = st.rollups.contribution(&row.span);
            st.rollups.apply_change(Some(&before), &after);
            st.changes.touch(project, row.span.start_time);
            hide(st, project, row.version);
            row.version = st.next_version;
            st.next_version += 1;
            st.active.put(row);
        }
    }
}
