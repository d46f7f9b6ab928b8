//! Hourly partial tables, cached and kept exact by the write path
//! ([`loupe_backend::SpanReader::sql_with_partials`]).
//!
//! The product analytics (conversations, paths, relations, users) start
//! from one row per run, grouped from its head spans: at 10M spans that
//! grouping was three quarters of each analysis. Its partial form, one row
//! per (hour, run), is the same for an hour until a row starting in that
//! hour changes, so whole past hours are kept here and only the rest (the
//! window's partial first hour, the current hour, anything changed) is
//! read from the spans.
//!
//! **Exactness.** Every write that puts a row version in the memtable
//! records the hour of the row's start and of the version it replaces in
//! [`Changes`] (under the state lock, with a counter that only grows);
//! retention dropping a project's parts marks the whole project. An entry
//! computed after reading the counter at `as_of` is used only while no
//! change after `as_of` touched its hour. Compaction, flushes and moves to
//! the cold tier change no visible row, so they mark nothing.
//!
//! **Bounds.** Entries take at most `[store] analytics_cache_bytes`, least
//! recently used dropped first; when a fill is larger than that, the
//! statement reads the spans instead (within the query memory pool). A
//! project remembers the last change of at most [`MAX_TRACKED_HOURS`]
//! hours; past that, a change marks the whole project. Fill gates are
//! dropped when unused. The cache's lock is never held with the state
//! lock, so a fill never stalls ingest.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::datasource::MemTable;
use loupe_backend::plan::{QueryLimits, QueryResult};
use loupe_backend::{HOUR_NS, Partials};
use loupe_model::ProjectId;

use crate::query::ScanCounter;
use crate::{Error, Store};

/// Hours one statement may read from the cache (400 days); a longer
/// window reads the spans.
const MAX_CACHED_HOURS: i64 = 400 * 24;

/// Hours whose last change a project remembers (about 11 years of hours);
/// past it, a change marks the whole project.
const MAX_TRACKED_HOURS: usize = 100_000;

/// Which hours of which project changed, and when (see the module docs).
#[derive(Default)]
pub(crate) struct Changes {
    /// Grows by one at each change.
    counter: u64,
    projects: HashMap<String, ProjectChanges>,
}

#[derive(Default)]
struct ProjectChanges {
    /// The last change of the whole project (retention).
    all: u64,
    /// The last change of each hour.
    hours: HashMap<i64, u64>,
}

impl Changes {
    /// A row starting at `start_ns` changed (was put, replaced or hidden).
    pub(crate) fn touch(&mut self, project: &str, start_ns: Option<i64>) {
        // A row without a start is in no hour: no partial table reads it.
        let Some(start) = start_ns else { return };
        self.counter += 1;
        let now = self.counter;
        let hour = start.div_euclid(HOUR_NS);
        let p = match self.projects.get_mut(project) {
            Some(p) => p,
            None => self.projects.entry(project.to_owned()).or_default(),
        };
        p.hours.insert(hour, now);
        // Spans scattered over many hours (a long backfill, hostile
        // timestamps) would grow the map without bound: past the limit
        // the whole project counts as changed, which is always safe.
        if p.hours.len() > MAX_TRACKED_HOURS {
            p.all = now;
            p.hours.clear();
        }
    }

    /// Every row of `project` may have changed (retention dropped parts).
    pub(crate) fn touch_project(&mut self, project: &str) {
        self.counter += 1;
        let now = self.counter;
        let p = self.projects.entry(project.to_owned()).or_default();
        p.all = now;
        // Every hour's change is older than `all` now.
        p.hours.clear();
    }

    fn now(&self) -> u64 {
        self.counter
    }

    fn changed_after(&self, project: &str, hour: i64, as_of: u64) -> bool {
        self.projects
            .get(project)
            .is_some_and(|p| p.all > as_of || p.hours.get(&hour).is_some_and(|&c| c > as_of))
    }
}

/// Cached hours: (project, key, hour) → the hour's rows.
pub(crate) struct PartialCache {
    capacity: usize,
    bytes: usize,
    tick: u64,
    /// Hours read from the cache, and computed from the spans, so far.
    hits: u64,
    fills: u64,
    /// (project, key) → hour → rows.
    entries: HashMap<(String, String), HashMap<i64, Entry>>,
    /// Held while a table's missing hours are computed, per (project, key).
    gates: HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>,
}

struct Entry {
    /// `Changes` counter read before the rows were computed.
    as_of: u64,
    rows: RecordBatch,
    bytes: usize,
    used: u64,
}

impl PartialCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            bytes: 0,
            tick: 0,
            hits: 0,
            fills: 0,
            entries: HashMap::new(),
            gates: HashMap::new(),
        }
    }

    /// The hours of `[first, end)` the cache holds for a table, with the
    /// counter each was computed at.
    fn held(
        &mut self,
        table: &(String, String),
        first: i64,
        end: i64,
    ) -> Vec<(i64, u64, RecordBatch)> {
        self.tick += 1;
        let tick = self.tick;
        let Some(hours) = self.entries.get_mut(table) else {
            return Vec::new();
        };
        (first..end)
            .filter_map(|h| {
                let e = hours.get_mut(&h)?;
                e.used = tick;
                Some((h, e.as_of, e.rows.clone()))
            })
            .collect()
    }

    fn put(&mut self, table: &(String, String), hour: i64, as_of: u64, rows: RecordBatch) {
        self.tick += 1;
        let bytes = rows.get_array_memory_size() + 64;
        let entry = Entry {
            as_of,
            rows,
            bytes,
            used: self.tick,
        };
        let hours = match self.entries.get_mut(table) {
            Some(hours) => hours,
            None => self.entries.entry(table.clone()).or_default(),
        };
        if let Some(old) = hours.insert(hour, entry) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        if self.bytes > self.capacity {
            self.shrink();
        }
    }

    /// Drops the least recently used hours until a tenth of the capacity
    /// is free, so a full cache does not sort its entries at every insert.
    fn shrink(&mut self) {
        if self.bytes <= self.capacity {
            return;
        }
        let mut by_use: Vec<(u64, &(String, String), i64)> = self
            .entries
            .iter()
            .flat_map(|(table, hours)| hours.iter().map(move |(h, e)| (e.used, table, *h)))
            .collect();
        by_use.sort_unstable_by_key(|(used, ..)| *used);
        let target = self.capacity - self.capacity / 10;
        let mut freed = 0usize;
        let mut drop: Vec<((String, String), i64)> = Vec::new();
        for (_, table, h) in by_use {
            if self.bytes - freed <= target {
                break;
            }
            if let Some(e) = self.entries.get(table).and_then(|hours| hours.get(&h)) {
                freed += e.bytes;
                drop.push((table.clone(), h));
            }
        }
        for (table, h) in drop {
            if let Some(hours) = self.entries.get_mut(&table) {
                hours.remove(&h);
                if hours.is_empty() {
                    self.entries.remove(&table);
                }
            }
        }
        self.bytes -= freed;
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What the analytics' cache holds and has done (`/metrics`, tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalyticsCacheStats {
    /// Bytes held now.
    pub bytes: usize,
    /// Hours read from the cache so far.
    pub hits: u64,
    /// Hours computed from the spans (and kept) so far.
    pub fills: u64,
}

/// Splits `[first, end)` hours wanted into runs of consecutive hours.
fn ranges(hours: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &h in hours {
        match out.last_mut() {
            Some((_, end)) if *end == h => *end = h + 1,
            _ => out.push((h, h + 1)),
        }
    }
    out
}

/// The rows of `batch` per hour (its first column, `h`), each compacted so
/// that an hour holds only its own strings.
fn split_by_hour(batch: &RecordBatch) -> Result<HashMap<i64, RecordBatch>, Error> {
    let hours = batch
        .column(0)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Internal("a partial table's first column is not BIGINT h".into()))?;
    let mut rows: HashMap<i64, Vec<u32>> = HashMap::new();
    for (i, h) in hours.iter().enumerate() {
        let h = h.ok_or_else(|| Error::Internal("a partial table row has no hour".into()))?;
        let i =
            u32::try_from(i).map_err(|_| Error::Internal("a partial batch over 4G rows".into()))?;
        rows.entry(h).or_default().push(i);
    }
    let mut out = HashMap::with_capacity(rows.len());
    for (h, idx) in rows {
        let taken = take_record_batch(batch, &UInt32Array::from(idx))?;
        out.insert(h, compact(taken)?);
    }
    Ok(out)
}

/// Copies string views' data out of the buffers they share with the rest
/// of the statement's answer (else every hour would keep all of it).
fn compact(batch: RecordBatch) -> Result<RecordBatch, Error> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
    {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View => Arc::new(c.as_string_view().gc()) as Arc<dyn Array>,
            DataType::BinaryView => Arc::new(c.as_binary_view().gc()) as Arc<dyn Array>,
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

impl Store {
    /// [`loupe_backend::SpanReader::sql_with_partials`] with whole past
    /// hours read from the cache (see the module docs).
    #[tracing::instrument(name = "store.sql_with_partials", skip_all, fields(project = %project, key = %partials.key))]
    pub async fn sql_with_partials(
        &self,
        project: &ProjectId,
        partials: &Partials<'_>,
        statement: &(dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        self.partials_on(None, project, partials, statement, limits)
            .await
    }

    /// [`Self::sql_with_partials`] over the spans another backend keeps
    /// (`SpanReader::scan`, as [`Self::read_only_sql_over`]), the cached
    /// hours kept exact by [`Self::note_external_changes`]: for a store that
    /// holds none of the spans itself.
    #[tracing::instrument(name = "store.sql_with_partials_over", skip_all, fields(project = %project, key = %partials.key))]
    pub async fn sql_with_partials_over(
        &self,
        reader: Arc<dyn loupe_backend::SpanReader>,
        project: &ProjectId,
        partials: &Partials<'_>,
        statement: &(dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        self.partials_on(Some(reader), project, partials, statement, limits)
            .await
    }

    /// Rows of another backend's changed, each `(project, start_ns)`: the
    /// cached hours they fall in are read again (what that backend's write
    /// path reports for each row it stores, the old and the new version).
    /// One lock for the whole list.
    pub fn note_external_changes<'a>(
        &self,
        changed: impl IntoIterator<Item = (&'a str, Option<i64>)>,
    ) {
        let mut st = self.inner.state.lock();
        for (project, start_ns) in changed {
            st.changes.touch(project, start_ns);
        }
    }

    async fn partials_on(
        &self,
        over: Option<Arc<dyn loupe_backend::SpanReader>>,
        project: &ProjectId,
        partials: &Partials<'_>,
        statement: &(dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        let inline = || statement(&partials.inline());
        let whole = async || {
            self.sql_on(over.clone(), project, &inline(), limits, None)
                .await
        };
        let capacity = self.inner.partials.lock().capacity;
        let now_hour = loupe_model::time::now_ns().div_euclid(HOUR_NS);
        // Whole hours from the first one inside the window to the last
        // closed one (and not past `stable_to`); never before 1970, where
        // SQL's integer division would not be the floor.
        let first = partials.from_ns.div_euclid(HOUR_NS)
            + i64::from(partials.from_ns.rem_euclid(HOUR_NS) != 0);
        let first = first.max(0);
        let end = partials
            .stable_to
            .map_or(now_hour, |to| to.div_euclid(HOUR_NS).min(now_hour));
        if capacity == 0 || first >= end || end - first > MAX_CACHED_HOURS {
            return whole().await;
        }
        let counter = Arc::new(ScanCounter::default());
        let table = (project.as_str().to_owned(), partials.key.clone());
        // One fill per table at a time: the console asks for several
        // analyses at once, and they share a table.
        let gate = self
            .inner
            .partials
            .lock()
            .gates
            .entry(table.clone())
            .or_default()
            .clone();
        let filling = gate.lock().await;
        // 1. The hours the cache holds, then which of them nothing changed
        // since (one lock at a time: ingest takes the state lock, and a
        // counter that only grows makes checking later safe).
        let cached = self.inner.partials.lock().held(&table, first, end);
        let (as_of, mut held, missing, hits) = {
            let st = self.inner.state.lock();
            let mut fresh = HashMap::with_capacity(cached.len());
            for (h, as_of, rows) in cached {
                if !st.changes.changed_after(project.as_str(), h, as_of) {
                    fresh.insert(h, rows);
                }
            }
            let missing: Vec<i64> = (first..end).filter(|h| !fresh.contains_key(h)).collect();
            let hits = fresh.len() as u64;
            let held: Vec<RecordBatch> = fresh.into_values().filter(|b| b.num_rows() > 0).collect();
            (st.changes.now(), held, missing, hits)
        };
        self.inner.partials.lock().hits += hits;
        // 2. The others, from the spans, one statement per run of hours.
        let mut filled = 0usize;
        for (lo, hi) in ranges(&missing) {
            let sql = (partials.sql)(lo * HOUR_NS, Some(hi * HOUR_NS));
            let batch = self
                .partial_rows(over.clone(), project, &sql, limits, counter.clone())
                .await?;
            filled += batch.num_rows();
            let mut by_hour = split_by_hour(&batch)?;
            let schema = batch.schema();
            drop(batch);
            let hours: Vec<RecordBatch> = (lo..hi)
                .map(|h| {
                    by_hour
                        .remove(&h)
                        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()))
                })
                .collect();
            let bytes: usize = hours.iter().map(RecordBatch::get_array_memory_size).sum();
            if bytes > capacity {
                // Larger than the cache: held in memory outside the query
                // pool, it would be unbounded; the statement reads the
                // spans instead, within the pool.
                tracing::info!(
                    bytes,
                    capacity,
                    "analytics: hourly run table larger than [store] analytics_cache_bytes; reading the spans"
                );
                drop(filling);
                self.forget_gate(&table, gate);
                return whole().await;
            }
            {
                let mut cache = self.inner.partials.lock();
                cache.fills += u64::try_from(hi - lo).unwrap_or(0);
                for (h, rows) in (lo..hi).zip(&hours) {
                    cache.put(&table, h, as_of, rows.clone());
                }
            }
            held.extend(hours.into_iter().filter(|b| b.num_rows() > 0));
        }
        drop(filling);
        self.forget_gate(&table, gate);
        tracing::debug!(
            hours = end - first,
            missing = missing.len(),
            filled,
            "partial hours"
        );
        // 3. The statement over the held hours and the rest from the spans.
        let Some(schema) = held.first().map(RecordBatch::schema) else {
            // Every whole hour is empty: the rest is the whole table.
            return whole().await;
        };
        let held_name = format!("{}_hours", partials.name);
        let mut parts = vec![format!("SELECT * FROM {held_name}")];
        if partials.from_ns < first * HOUR_NS {
            parts.push((partials.sql)(partials.from_ns, Some(first * HOUR_NS)));
        }
        parts.push((partials.sql)(end * HOUR_NS, None));
        let cte = format!(
            "{} AS ({}), ",
            partials.name,
            parts
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        );
        let table = MemTable::try_new(schema, vec![held])?;
        self.sql_on(
            over,
            project,
            &statement(&cte),
            limits,
            Some((held_name.as_str(), Arc::new(table))),
        )
        .await
    }

    /// Drops a table's fill gate once nobody else holds or waits on it, so
    /// the map does not grow with every tag a client ever grouped by.
    fn forget_gate(&self, table: &(String, String), gate: Arc<tokio::sync::Mutex<()>>) {
        let mut cache = self.inner.partials.lock();
        // The map's reference and ours: no other request has it (they take
        // it under this lock).
        if Arc::strong_count(&gate) == 2 {
            cache.gates.remove(table);
        }
    }

    /// The rows of a partial statement in one batch (bounded by the
    /// query's memory limit, which its grouping reserves from).
    async fn partial_rows(
        &self,
        over: Option<Arc<dyn loupe_backend::SpanReader>>,
        project: &ProjectId,
        sql: &str,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
    ) -> Result<RecordBatch, Error> {
        let ctx = self.spans_session(over, project, limits, counter)?;
        let df = ctx.sql(sql).await?;
        let stream = df.execute_stream().await?;
        let schema = stream.schema();
        let batches = datafusion::physical_plan::common::collect(stream).await?;
        Ok(concat_batches(&schema, &batches)?)
    }

    /// What the analytics' hourly tables hold and have done.
    pub fn analytics_cache(&self) -> AnalyticsCacheStats {
        let cache = self.inner.partials.lock();
        AnalyticsCacheStats {
            bytes: cache.bytes,
            hits: cache.hits,
            fills: cache.fills,
        }
    }

    /// Sets the memory of the analytics' hourly tables, dropping the least
    /// recently used hours over it (0: off, everything dropped).
    pub fn set_analytics_cache_bytes(&self, bytes: usize) {
        let mut cache = self.inner.partials.lock();
        cache.capacity = bytes;
        cache.shrink();
    }
}

#[cfg(test)]
// Tests may unwrap: a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ranges_join_consecutive_hours() {
        assert_eq!(ranges(&[]), vec![]);
        assert_eq!(
            ranges(&[3, 4, 5, 8, 10, 11]),
            vec![(3, 6), (8, 9), (10, 12)]
        );
    }

    #[test]
    fn a_change_after_an_entry_invalidates_only_its_hour() {
        let mut c = Changes::default();
        c.touch("p", Some(5 * HOUR_NS + 1));
        let as_of = c.now();
        assert!(!c.changed_after("p", 5, as_of));
        c.touch("p", Some(6 * HOUR_NS));
        assert!(c.changed_after("p", 6, as_of));
        assert!(!c.changed_after("p", 5, as_of));
        assert!(!c.changed_after("q", 6, as_of));
        c.touch("p", None);
        assert!(!c.changed_after("p", 5, as_of));
        c.touch_project("p");
        assert!(c.changed_after("p", 5, as_of));
        assert!(c.projects["p"].hours.is_empty());
        // Past the hours a project remembers, the whole project changed.
        let as_of = c.now();
        for h in 0..=MAX_TRACKED_HOURS as i64 {
            c.touch("r", Some(h * HOUR_NS));
        }
        assert!(c.projects["r"].hours.len() <= MAX_TRACKED_HOURS);
        assert!(c.changed_after("r", -5, as_of));
        // Before 1970, the hour is still the floor.
        c.touch("q", Some(-1));
        assert!(c.changed_after("q", -1, as_of));
    }

    #[test]
    fn the_cache_drops_the_least_recently_used_past_its_size() {
        use arrow::array::Int64Array;
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("h", DataType::Int64, false)]));
        let batch = |n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(0..n))],
            )
            .unwrap()
        };
        let one = batch(1000).get_array_memory_size() + 64;
        let mut cache = PartialCache::new(one * 3);
        let table = ("p".to_owned(), "k".to_owned());
        let held = |cache: &mut PartialCache, h: i64| !cache.held(&table, h, h + 1).is_empty();
        for h in 0..3 {
            cache.put(&table, h, 1, batch(1000));
        }
        assert!(held(&mut cache, 0));
        cache.put(&table, 3, 1, batch(1000));
        assert!(cache.bytes() <= one * 3);
        // Hour 1 was the least recently used; hour 0 was read.
        assert!(!held(&mut cache, 1));
        assert!(held(&mut cache, 0));
        assert!(held(&mut cache, 3));
        // A tenth is freed at once: hour 2 went too.
        assert_eq!(cache.held(&table, 0, 10).len(), 2);
        // Off: everything is dropped.
        cache.capacity = 0;
        cache.shrink();
        assert_eq!((cache.bytes(), cache.entries.len()), (0, 0));
    }
}
