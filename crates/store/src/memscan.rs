//! Columnar copies of memtable rows for scans: fresh data answers as fast
//! as flushed data, and a scan never holds the lock ingest needs for more
//! than a few reference-count increments.
//!
//! Each memtable keeps, per project that has been scanned, a list of Arrow
//! *chunks* (immutable record batches in the store's schema) and, for
//! each span id, where its newest converted version sits. A scan converts
//! only the rows written since the previous scan (the ids the memtable
//! noted as changed, `Memtable::changed`) into a new chunk and marks the versions they
//! replace dead; chunks then merge by size (each merge at least doubles a
//! chunk, so a row is copied O(log n) times and a project holds O(log n)
//! chunks). A frozen memtable never changes, so its chunks are final after
//! one scan.
//!
//! Rows are `Arc`s: under the state lock a scan only clones the pointers of
//! the changed rows (and the parts, deletion vectors and hidden versions of
//! the same instant); the Arrow conversion runs after the lock is released,
//! under the memtable's own columnar lock, which writers never take. Lock
//! order: a columnar lock, then the state lock — never the other way round.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use foldhash::HashMap;
use loupe_model::column;
use parking_lot::Mutex;

use crate::convert::{Row, rows_to_batch};
use crate::deletes::LiveDeletes;
use crate::memtable::Memtable;
use crate::parts::PartList;
use crate::{Error, Store};

/// A memtable's columnar copies, shared with scans in flight.
#[derive(Default)]
pub(crate) struct ColumnarCache {
    projects: Mutex<HashMap<String, ProjectColumns>>,
    /// Arrow bytes held, read by memory accounting under the state lock
    /// (which must not take `projects`' lock).
    bytes: AtomicUsize,
}

impl ColumnarCache {
    /// Bytes of the Arrow copies this cache holds.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// One project's chunks in one memtable.
#[derive(Default)]
struct ProjectColumns {
    /// Every row of the project has been converted once; since then only
    /// the memtable's `changed` ids need converting.
    built: bool,
    /// (Frozen memtables) the ids changed before the freeze are converted.
    settled: bool,
    chunks: Vec<Chunk>,
    /// Span id → (chunk id, row, version) of its newest converted version.
    at: HashMap<String, (u64, u32, u64)>,
    next_chunk: u64,
    /// Bytes counted into the cache's total.
    counted: usize,
}

struct Chunk {
    /// Stable while the chunk lives (positions in `chunks` shift).
    id: u64,
    batch: RecordBatch,
    /// Rows replaced by a newer version in a later chunk.
    dead: Vec<bool>,
    live: usize,
    min_time: i64,
    max_time: i64,
    /// Smallest and largest row version (`None` for no rows).
    versions: Option<(u64, u64)>,
}

impl Chunk {
    fn new(id: u64, batch: RecordBatch) -> Self {
        let times = batch
            .column_by_name(column::START_TIME)
            .map(|c| c.as_primitive::<TimestampNanosecondType>());
        // Rows without a start time pass every time bound (as in parts).
        let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
        if let Some(t) = times {
            for i in 0..t.len() {
                if t.is_valid(i) {
                    min_time = min_time.min(t.value(i));
                    max_time = max_time.max(t.value(i));
                } else {
                    (min_time, max_time) = (i64::MIN, i64::MAX);
                    break;
                }
            }
        }
        let versions = batch
            .column_by_name(column::VERSION)
            .map(|c| c.as_primitive::<UInt64Type>())
            .and_then(|v| arrow::compute::min(v).zip(arrow::compute::max(v)));
        let rows = batch.num_rows();
        Self {
            id,
            batch,
            dead: vec![false; rows],
            live: rows,
            min_time,
            max_time,
            versions,
        }
    }

    fn kill(&mut self, row: u32) {
        if let Some(d) = self.dead.get_mut(row as usize)
            && !*d
        {
            *d = true;
            self.live -= 1;
        }
    }

    /// The live rows only.
    fn compacted(&self) -> Result<RecordBatch, Error> {
        if self.live == self.batch.num_rows() {
            return Ok(self.batch.clone());
        }
        let keep: BooleanArray = self.dead.iter().map(|d| Some(!d)).collect();
        Ok(filter_record_batch(&self.batch, &keep)?)
    }
}

/// Memtable rows of one project as Arrow batches, each with the rows a scan
/// must skip, taken at one instant together with the parts.
pub(crate) struct ScanSnapshot {
    pub parts: PartList,
    pub deletes: LiveDeletes,
    pub pieces: Vec<Piece>,
}

/// A chunk of memtable rows and which of them are visible.
pub(crate) struct Piece {
    batch: RecordBatch,
    /// `None`: every row is visible.
    keep: Option<BooleanArray>,
}

impl Piece {
    /// The visible rows, projected.
    pub fn visible(&self, projection: Option<&Vec<usize>>) -> Result<RecordBatch, Error> {
        let batch = match projection {
            Some(p) => self.batch.project(p)?,
            None => self.batch.clone(),
        };
        Ok(match &self.keep {
            Some(keep) => filter_record_batch(&batch, keep)?,
            None => batch,
        })
    }
}

/// Time bounds a scan asked for (inclusive, ns).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TimeBounds {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl Store {
    /// The parts, deletion vectors and memtable rows of `project` as of one
    /// instant, the memtable rows as columnar pieces pruned by `time`.
    pub(crate) fn scan_snapshot(
        &self,
        project: &str,
        time: TimeBounds,
    ) -> Result<ScanSnapshot, Error> {
        loop {
            let cache = self.inner.state.lock().active.columnar.clone();
            let mut active = cache.projects.lock();
            let mut st = self.inner.state.lock();
            // Frozen between the two locks: the handle is a frozen
            // memtable's now; take the new active one's.
            if !Arc::ptr_eq(&st.active.columnar, &cache) {
                continue;
            }
            let parts = st.parts.clone();
            let deletes = st.deletes.clone();
            let hidden = st.hidden.clone();
            let frozen = st.frozen.clone();
            let entry = active.entry(project.to_owned()).or_default();
            let delta = changed_rows(&mut st.active, entry, project);
            drop(st);

            let mut pieces = Vec::new();
            install(&cache, entry, delta)?;
            // Rows of the active memtable are never hidden: a write that
            // supersedes one merges into it (dead versions above).
            entry.pieces(time, None, &mut pieces);
            drop(active);
            for m in frozen.iter().rev() {
                let mut map = m.columnar.projects.lock();
                let entry = map.entry(project.to_owned()).or_default();
                let delta = frozen_rows(m, entry, project);
                install(&m.columnar, entry, delta)?;
                entry.pieces(time, Some(&hidden), &mut pieces);
            }
            return Ok(ScanSnapshot {
                parts,
                deletes,
                pieces,
            });
        }
    }
}

/// The active memtable's rows of `project` not yet converted: all of them
/// the first time (which also starts noting the project's changed ids),
/// then the rows changed since.
fn changed_rows(m: &mut Memtable, entry: &mut ProjectColumns, project: &str) -> Vec<Arc<Row>> {
    if !entry.built {
        entry.built = true;
        m.changed.insert(project.to_owned(), Default::default());
        return all_rows(m, project);
    }
    let ids = m
        .changed
        .get_mut(project)
        .map(std::mem::take)
        .unwrap_or_default();
    rows_named(m, project, ids.iter())
}

/// The same for a frozen memtable, which no longer changes: the ids
/// changed before the freeze are converted once.
fn frozen_rows(m: &Memtable, entry: &mut ProjectColumns, project: &str) -> Vec<Arc<Row>> {
    let settled = std::mem::replace(&mut entry.settled, true);
    if !entry.built {
        entry.built = true;
        return all_rows(m, project);
    }
    if settled {
        return Vec::new();
    }
    rows_named(m, project, m.changed.get(project).into_iter().flatten())
}

fn all_rows(m: &Memtable, project: &str) -> Vec<Arc<Row>> {
    m.rows
        .iter()
        .filter(|((p, _), _)| p == project)
        .map(|(_, r)| r.clone())
        .collect()
}

/// The current rows of the named span ids.
fn rows_named<'a>(
    m: &Memtable,
    project: &str,
    ids: impl Iterator<Item = &'a String>,
) -> Vec<Arc<Row>> {
    let mut key = (project.to_owned(), String::new());
    let mut out = Vec::new();
    for id in ids {
        id.clone_into(&mut key.1);
        if let Some(r) = m.rows.get(&key) {
            out.push(r.clone());
        }
    }
    out
}

/// Converts rows into a new chunk, marks the versions they replace dead and
/// merges chunks by size. On failure the project's copies are dropped, so
/// the next scan converts every row again rather than miss the ones whose
/// change was taken.
fn install(
    cache: &ColumnarCache,
    entry: &mut ProjectColumns,
    rows: Vec<Arc<Row>>,
) -> Result<(), Error> {
    let result = convert(entry, rows);
    let bytes = match &result {
        Ok(()) => entry
            .chunks
            .iter()
            .map(|c| c.batch.get_array_memory_size())
            .sum::<usize>(),
        Err(_) => 0,
    };
    if result.is_err() {
        *entry = ProjectColumns {
            counted: entry.counted,
            ..ProjectColumns::default()
        };
    }
    let before = std::mem::replace(&mut entry.counted, bytes);
    cache.bytes.fetch_add(bytes, Ordering::Relaxed);
    cache.bytes.fetch_sub(before, Ordering::Relaxed);
    result
}

fn convert(entry: &mut ProjectColumns, mut rows: Vec<Arc<Row>>) -> Result<(), Error> {
    // A row changed in place keeps its version, so an equal version is
    // converted again; only a newer one already converted wins.
    rows.retain(|r| {
        entry
            .at
            .get(&r.span.span_id)
            .is_none_or(|&(_, _, v)| v <= r.version)
    });
    if rows.is_empty() {
        return Ok(());
    }
    let batch = rows_to_batch(rows.iter().map(|r| r.as_ref()))?;
    let id = entry.new_chunk_id();
    for (i, r) in rows.iter().enumerate() {
        let slot = (id, i as u32, r.version);
        if let Some((c, row, _)) = entry.at.insert(r.span.span_id.clone(), slot)
            && let Some(chunk) = entry.chunks.iter_mut().find(|k| k.id == c)
        {
            chunk.kill(row);
        }
    }
    entry.chunks.push(Chunk::new(id, batch));
    entry.merge()
}

impl ProjectColumns {
    fn new_chunk_id(&mut self) -> u64 {
        self.next_chunk += 1;
        self.next_chunk
    }

    /// Drops chunks with no live row and rewrites those mostly dead (rows
    /// updated again and again), then merges the newest chunks while the
    /// one before holds at most twice the newest's live rows. Only the
    /// rewritten rows are re-pointed in `at` (a dropped chunk has none).
    fn merge(&mut self) -> Result<(), Error> {
        self.chunks.retain(|c| c.live > 0);
        for i in 0..self.chunks.len() {
            let c = &self.chunks[i];
            if c.batch.num_rows() >= 1_024 && c.live * 2 < c.batch.num_rows() {
                let live = c.compacted()?;
                let id = self.new_chunk_id();
                self.point_at(id, &live);
                self.chunks[i] = Chunk::new(id, live);
            }
        }
        while let [.., a, b] = self.chunks.as_slice()
            && a.live <= 2 * b.live
        {
            let merged = concat_batches(
                &crate::mirrors::storage_schema(),
                &[a.compacted()?, b.compacted()?],
            )?;
            self.chunks.truncate(self.chunks.len() - 2);
            let id = self.new_chunk_id();
            self.point_at(id, &merged);
            self.chunks.push(Chunk::new(id, merged));
        }
        Ok(())
    }

    /// Points every span id of `batch` (all live) at chunk `id`.
    fn point_at(&mut self, id: u64, batch: &RecordBatch) {
        let ids = batch
            .column_by_name(column::SPAN_ID)
            .map(|a| a.as_string::<i32>());
        let versions = batch
            .column_by_name(column::VERSION)
            .map(|a| a.as_primitive::<UInt64Type>());
        let (Some(ids), Some(versions)) = (ids, versions) else {
            return;
        };
        for i in 0..batch.num_rows() {
            self.at
                .insert(ids.value(i).to_owned(), (id, i as u32, versions.value(i)));
        }
    }

    /// The chunks a scan within `time` reads, each with its visible rows:
    /// not dead, and not in `hidden` (versions superseded by a newer
    /// memtable, given for frozen memtables).
    fn pieces(&self, time: TimeBounds, hidden: Option<&HashSet<u64>>, out: &mut Vec<Piece>) {
        for c in &self.chunks {
            if time.min.is_some_and(|t| c.max_time < t) || time.max.is_some_and(|t| c.min_time > t)
            {
                continue;
            }
            let versions = c
                .batch
                .column_by_name(column::VERSION)
                .map(|a| a.as_primitive::<UInt64Type>());
            // Hidden versions matter only if some fall in this chunk's range.
            let hidden = hidden.zip(versions).filter(|(h, _)| {
                c.versions
                    .is_some_and(|(lo, hi)| h.iter().any(|x| (lo..=hi).contains(x)))
            });
            let keep = if let Some((h, v)) = hidden {
                Some(
                    c.dead
                        .iter()
                        .enumerate()
                        .map(|(i, d)| Some(!d && !h.contains(&v.value(i))))
                        .collect::<BooleanArray>(),
                )
            } else if c.live < c.batch.num_rows() {
                Some(c.dead.iter().map(|d| Some(!d)).collect::<BooleanArray>())
            } else {
                None
            };
            out.push(Piece {
                batch: c.batch.clone(),
                keep,
            });
        }
    }
}
