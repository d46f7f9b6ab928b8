//! The write path: read the stored versions a batch touches, merge in
//! Rust with the embedded store's rules, write whole rows with higher
//! versions.
//!
//! 1. The newest stored row of every span id in the batch, and the root
//!    rows of the traces those spans belong to (the whole trace when no
//!    root is stored yet), are read (`FINAL`).
//! 2. Each span merges onto its stored row with `Span::merge_from` (later
//!    non-null wins, except over a final database version), the trace's
//!    run context (`loupe_backend::RunContext`, rebuilt from those rows)
//!    absorbs it and fills it, and a changed context re-fills the trace's
//!    other rows (the trace is read whole only then): the same steps, in
//!    the same order, as `crates/store/src/write.rs`.
//! 3. Every changed row is inserted whole with a version above the one it
//!    replaces; `ReplacingMergeTree(_version)` keeps the newest.
//!
//! Idempotent: a retried batch (the first attempt's insert landed, its
//! reply was lost) merges onto rows that already hold it; `merge_from` of
//! the same span twice changes nothing, so the retry writes the same
//! content under a newer version of the same key, and reads see one row.
//! Appends of one process to one project are serialised (the
//! read-merge-write must not interleave; other projects' appends run
//! meanwhile); several Loupe writers on one database are not supported
//! yet (docs/CLICKHOUSE.md).

use std::collections::{BTreeMap, HashMap, HashSet};

use loupe_backend::{RunContext, WriteAck};
use loupe_model::{ProjectId, Span};

use crate::row::{self, Stored};
use crate::sql::in_lists;
use crate::{Error, Inner};

/// The rows a trace's run context is rebuilt from: its roots (no parent,
/// or a `workflow` span), as `RunContext::absorb` takes run fields only
/// from them, and the context's tags were filled into them.
const ROOTS: &str = "AND (isNull(parent_span_id) OR ifNull(span_kind = 'workflow', 0))";

/// The row version of spans copied from another backend: below every
/// version a live write hands out.
pub(crate) const COPIED_VERSION: u64 = 1;

/// Distinct days per INSERT (ClickHouse refuses a block spanning more
/// partitions than `max_partitions_per_insert_block`, 100 by default).
const DAYS_PER_INSERT: usize = 50;

impl Inner {
    /// The next row version: above every version handed out before and
    /// above `floor` (the version being replaced); nanoseconds of the
    /// wall clock, so versions also grow across restarts.
    fn next_version(&self, floor: u64) -> u64 {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(loupe_model::time::now_ns()).unwrap_or(0);
        let mut last = self.last_version.load(Ordering::Relaxed);
        loop {
            let v = now.max(last + 1).max(floor + 1);
            match self.last_version.compare_exchange_weak(
                last,
                v,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return v,
                Err(seen) => last = seen,
            }
        }
    }

    /// The gate of a project's appends.
    fn write_gate(&self, project: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .write_gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(project.to_owned()).or_default().clone()
    }

    /// Merges and stores a batch.
    #[tracing::instrument(name = "clickhouse.append", skip_all, fields(spans = spans.len()))]
    pub(crate) async fn append(&self, spans: Vec<Span>) -> Result<WriteAck, Error> {
        let count = spans.len();
        let mut by_project: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        for s in spans {
            if s.span_id.is_empty() {
                return Err(Error::Invalid("every span needs a span_id".into()));
            }
            ProjectId::new(s.project.clone()).map_err(|e| Error::Invalid(e.to_string()))?;
            by_project.entry(s.project.clone()).or_default().push(s);
        }
        let mut seq = 0;
        for (project, spans) in by_project {
            // One project's gate at a time: no two appends wait on each other.
            let gate = self.write_gate(&project);
            let _serial = gate.lock().await;
            let received = spans.len();
            let (rows, before) = self.merge_project(&project, spans).await?;
            let version = rows.iter().map(|r| r.version).max().unwrap_or(0);
            seq = seq.max(version);
            self.insert(&rows).await?;
            // The spans are stored: a failure of the tier's insert leaves
            // the tier recorded incomplete, not the write undone.
            self.write_hour_deltas(
                rows.iter()
                    .map(|r| (before.get(&r.span.span_id).map(|(s, _)| s), &r.span)),
                version,
            )
            .await;
            // Stored: what the rows were before is now what they are.
            if let Some(hook) = self.on_change.get() {
                let changes: Vec<crate::Change<'_>> = rows
                    .iter()
                    .map(|r| {
                        let old = before.get(&r.span.span_id);
                        crate::Change {
                            old: old.map(|(span, _)| span),
                            old_version: old.map(|(_, version)| *version),
                            new: &r.span,
                        }
                    })
                    .collect();
                hook(received, &changes);
            }
        }
        Ok(WriteAck { seq, spans: count })
    }

    /// Stores whole spans copied from another backend without reading
    /// what the table holds (`SpanWriter::append_copied`): each row under
    /// [`COPIED_VERSION`], below every version a live write hands out (the
    /// wall clock's nanoseconds), so a live write of the same span, before
    /// or after, wins, and a copy again replaces a copy (equal versions:
    /// the last inserted is kept). `filed_at` is what a live write would
    /// file it under, so the copy and a live version share their key.
    #[tracing::instrument(name = "clickhouse.append_copied", skip_all, fields(spans = spans.len()))]
    pub(crate) async fn append_copied(&self, spans: Vec<Span>) -> Result<WriteAck, Error> {
        let count = spans.len();
        let now_s = loupe_model::time::now_ns().div_euclid(1_000_000_000);
        let mut rows = Vec::with_capacity(spans.len());
        let mut seen = HashSet::with_capacity(spans.len());
        for span in spans {
            if span.span_id.is_empty() {
                return Err(Error::Invalid("every span needs a span_id".into()));
            }
            ProjectId::new(span.project.clone()).map_err(|e| Error::Invalid(e.to_string()))?;
            if !seen.insert((span.project.clone(), span.span_id.clone())) {
                return Err(Error::Invalid(format!(
                    "span {} is twice in one copied batch",
                    span.span_id
                )));
            }
            rows.push(Stored {
                filed_at: span
                    .event_time()
                    .map_or(now_s, |t| t.div_euclid(1_000_000_000))
                    .clamp(0, i64::from(u32::MAX)),
                span,
                version: COPIED_VERSION,
            });
        }
        // Copies are not counted in the hour tier (nothing is read to know
        // what they replace): it is incomplete until rebuilt, which
        // `loupe migrate` does once the copy ends.
        if let Some(tier) = self.tier().filter(|t| t.complete) {
            self.mark_tier_incomplete(&tier).await;
        }
        // Days in order, so each INSERT holds few partitions.
        rows.sort_by_key(|r| r.filed_at);
        self.insert(&rows).await?;
        Ok(WriteAck {
            seq: COPIED_VERSION,
            spans: count,
        })
    }

    /// Steps 1 and 2 for one project: the rows to insert and, when a
    /// change hook is set, the stored version of each row that had one.
    async fn merge_project(
        &self,
        project: &str,
        spans: Vec<Span>,
    ) -> Result<(Vec<Stored>, HashMap<String, (Span, u64)>), Error> {
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            spans
                .iter()
                .map(|s| s.span_id.as_str())
                .filter(|id| seen.insert(*id))
                .collect()
        };
        let mut rows: HashMap<String, Stored> = HashMap::new();
        let project = ProjectId::new(project).map_err(|e| Error::Invalid(e.to_string()))?;
        for stored in self.latest_of_ids(&project, &ids).await? {
            rows.insert(stored.span.span_id.clone(), stored);
        }
        let traces: Vec<String> = {
            let mut seen = HashSet::new();
            spans
                .iter()
                .filter_map(|s| s.trace_id.clone())
                .chain(rows.values().filter_map(|r| r.span.trace_id.clone()))
                .filter(|t| seen.insert(t.clone()))
                .collect()
        };
        let trace_refs: Vec<&str> = traces.iter().map(String::as_str).collect();
        // A trace's context lives in its root rows: every change of it was
        // filled into them. Only a trace with no root stored yet (in
        // flight) is read whole, since its children hold what it knows.
        let mut context_rows = self.trace_rows(&project, &trace_refs, ROOTS).await?;
        let rooted: HashSet<String> = context_rows
            .iter()
            .filter_map(|r| r.span.trace_id.clone())
            .collect();
        let rootless: Vec<&str> = trace_refs
            .iter()
            .copied()
            .filter(|t| !rooted.contains(*t))
            .collect();
        context_rows.extend(self.trace_rows(&project, &rootless, "").await?);
        // The context absorbs stored rows in the order they were written.
        context_rows.sort_by_key(|r| r.version);
        let mut contexts: HashMap<String, RunContext> = HashMap::new();
        let mut members: HashMap<String, HashSet<String>> = HashMap::new();
        for r in context_rows {
            if let Some(t) = &r.span.trace_id {
                contexts.entry(t.clone()).or_default().absorb(&r.span);
            }
            rows.entry(r.span.span_id.clone()).or_insert(r);
        }
        for r in rows.values() {
            if let Some(t) = &r.span.trace_id {
                members
                    .entry(t.clone())
                    .or_default()
                    .insert(r.span.span_id.clone());
            }
        }
        // The stored versions, for the change hook (the rows merge in place).
        let watched = self.on_change.get().is_some() || self.tier().is_some_and(|t| t.complete);
        let mut before: HashMap<String, (Span, u64)> = if watched {
            rows.iter()
                .map(|(id, r)| (id.clone(), (r.span.clone(), r.version)))
                .collect()
        } else {
            HashMap::new()
        };
        let mut dirty: HashSet<String> = HashSet::new();
        let mut changed_traces: HashSet<String> = HashSet::new();
        let now_s = loupe_model::time::now_ns().div_euclid(1_000_000_000);
        for span in spans {
            let id = span.span_id.clone();
            let mut row = match rows.remove(&id) {
                Some(mut old) => {
                    old.span.merge_from(span);
                    old
                }
                None => Stored {
                    filed_at: span
                        .event_time()
                        .map_or(now_s, |t| t.div_euclid(1_000_000_000))
                        .clamp(0, i64::from(u32::MAX)),
                    span,
                    version: 0,
                },
            };
            if let Some(trace) = row.span.trace_id.clone() {
                let ctx = contexts.entry(trace.clone()).or_default();
                let changed = ctx.absorb(&row.span);
                ctx.fill(&mut row.span);
                let ids = members.entry(trace.clone()).or_default();
                ids.insert(id.clone());
                if changed {
                    changed_traces.insert(trace);
                    for other in ids.iter().filter(|o| **o != id) {
                        if let Some(r) = rows.get_mut(other)
                            && ctx.fill(&mut r.span)
                        {
                            dirty.insert(other.clone());
                        }
                    }
                }
            }
            dirty.insert(id.clone());
            rows.insert(id, row);
        }
        // A changed context reaches the rest of its trace's stored rows.
        let refill: Vec<&str> = changed_traces
            .iter()
            .map(String::as_str)
            .filter(|t| rooted.contains(*t))
            .collect();
        for mut r in self.trace_rows(&project, &refill, "").await? {
            let id = r.span.span_id.clone();
            if rows.contains_key(&id) {
                continue;
            }
            let ctx = r.span.trace_id.as_ref().and_then(|t| contexts.get(t));
            let prior = watched.then(|| (r.span.clone(), r.version));
            if ctx.is_some_and(|ctx| ctx.fill(&mut r.span)) {
                if let Some(prior) = prior {
                    before.insert(id.clone(), prior);
                }
                dirty.insert(id.clone());
                rows.insert(id, r);
            }
        }
        let mut out: Vec<Stored> = Vec::with_capacity(dirty.len());
        for id in dirty {
            if let Some(mut r) = rows.remove(&id) {
                r.version = self.next_version(r.version);
                out.push(r);
            }
        }
        out.sort_by_key(|r| (r.filed_at, r.version));
        Ok((out, before))
    }

    /// The newest stored rows of `project` whose trace is one of
    /// `traces` and that meet `extra` (SQL starting with `AND`, or empty).
    async fn trace_rows(
        &self,
        project: &ProjectId,
        traces: &[&str],
        extra: &str,
    ) -> Result<Vec<Stored>, Error> {
        let mut out = Vec::new();
        for list in in_lists(traces) {
            let cond = format!("trace_id IN ({list}) {extra}");
            out.extend(self.latest_where(project, &cond, None).await?);
        }
        Ok(out)
    }

    /// Step 3: inserts rows, a few days per statement.
    async fn insert(&self, rows: &[Stored]) -> Result<(), Error> {
        let table = self.layout.table();
        let sync = self.layout.cluster.is_some();
        let mut body = Vec::new();
        let (mut n, mut days) = (0usize, 0usize);
        let mut last_day = None;
        for r in rows {
            let day = r.filed_at.div_euclid(86_400);
            if last_day != Some(day) {
                if days == DAYS_PER_INSERT {
                    self.client
                        .insert(&table, std::mem::take(&mut body), sync)
                        .await?;
                    (n, days) = (0, 0);
                }
                days += 1;
                last_day = Some(day);
            }
            row::encode(&self.layout, r, &mut body)?;
            n += 1;
            if n >= self.insert_batch_rows {
                self.client
                    .insert(&table, std::mem::take(&mut body), sync)
                    .await?;
                (n, days, last_day) = (0, 0, None);
            }
        }
        if !body.is_empty() {
            self.client.insert(&table, body, sync).await?;
        }
        Ok(())
    }
}
