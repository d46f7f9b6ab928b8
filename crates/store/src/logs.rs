//! The logs table: log records beside the spans, in the same engine and the
//! same data directory, with their own files.
//!
//! Write path ([`Store::append_logs`]): an admission slot (shared with span
//! appends), the unflushed-bytes budget, then under the log append gate one
//! record of `logs/wal/` (the store's WAL code and framing, its own
//! directory and seq) and a push onto the active memtable; the caller is
//! acknowledged once the record is as durable as `[store] durability` says,
//! so an acknowledged log line survives kill -9. Logs are appended, never
//! merged: no lookup of older versions, no hidden rows.
//!
//! Flush ([`Store::flush_logs`], and the background loop when the memtable
//! is big or old): freeze under the gate, then per (project, UTC day) one
//! Parquet part sorted by time (`logs/part.rs`) and its full-text index
//! (`logs/fts/<id>.tri`, the store's block bloom format from `fts.rs`, built
//! from the records in memory), then the log manifest in one atomic
//! replacement, then the WAL segments it covers are deleted.
//!
//! Retention (in [`Store::maintain`]): whole log parts of days before the
//! project's cutoff are dropped from the manifest and deleted after a grace
//! period; each dropped part is logged with its project, day and rows.
//! Compaction (`logs/compact.rs`, same pass) merges a day's small parts by
//! size tier, as span parts are.
//!
//! Reads ([`Store::search_logs`]): the memtables, then the parts of the
//! project whose time range overlaps the query's, newest first, each read as
//! a row selection narrowed by the run index (a run's logs) and the
//! full-text index (phrases), newest row group first, with the time,
//! severity, service and stream tests as a Parquet row filter so only rows
//! that pass are decoded whole (`LogPart::search`); the exact filter
//! ([`LogQuery::matches`]) runs on every row decoded, so indexes change
//! cost, never answers. The query language's `logs` source reads the same
//! files through DataFusion (`logs/table.rs`, `query/logs.rs`).

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_backend::{LogPage, LogQuery, WriteAck};
use loupe_model::{LogRecord, ProjectId};
use parking_lot::Mutex;

use crate::fts;
use crate::parts::day_of;
use crate::wal::{Record, Wal, io_err};
use crate::{Error, Store};

mod compact;
mod manifest;
mod part;
pub(crate) mod table;

use manifest::LogManifest;
use part::{LogPart, open_part, write_part};

/// How long a part dropped by retention stays on disk (queries that listed
/// it may still be reading).
const GRACE: Duration = Duration::from_secs(120);

/// The payload format byte: postcard of a [`Batch`].
const POSTCARD: u8 = 0;

/// One WAL record: the records of one append and, for a source that
/// resumes (a tailed file), its position after them. Both in one record,
/// so after a crash the position and the data agree: no line is lost or
/// read twice.
#[derive(serde::Serialize, serde::Deserialize)]
struct Batch {
    records: Vec<LogRecord>,
    cursor: Option<(String, String)>,
}

fn encode(batch: &Batch) -> Result<Vec<u8>, Error> {
    postcard::to_extend(batch, vec![POSTCARD])
        .map_err(|e| Error::Internal(format!("log records do not serialise: {e}")))
}

fn decode(payload: &[u8]) -> Result<Batch, String> {
    match payload.split_first() {
        Some((&POSTCARD, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((b, _)) => Err(format!("unknown log payload format {b}")),
        None => Err("empty log payload".into()),
    }
}

/// How far (ns) from a record's time a stored record with the same
/// Elasticsearch `_id` is looked for: a re-sent item has the same time, or,
/// without a time of its own, a receive time at most this much later. It
/// bounds the parts whose ids are read.
const ES_ID_HORIZON: i64 = 86_400 * 1_000_000_000;

/// Source cursors kept at most (a tailer forgets those of files long gone).
pub(crate) const MAX_LOG_CURSORS: usize = 10_000;

/// Log records not yet in parts.
#[derive(Default)]
struct LogMemtable {
    records: Vec<Arc<LogRecord>>,
    bytes: usize,
    max_seq: u64,
    first_write: Option<Instant>,
    /// Cursors set by this memtable's appends (the manifest takes them
    /// when it is flushed).
    cursors: BTreeMap<String, String>,
}

struct LogState {
    /// Every source's latest cursor: the manifest's, then each append's.
    cursors: BTreeMap<String, String>,
    active: LogMemtable,
    frozen: Vec<Arc<LogMemtable>>,
    parts: Arc<Vec<Arc<LogPart>>>,
    manifest: LogManifest,
    next_seq: u64,
    garbage: Vec<(Instant, PathBuf)>,
    /// Elasticsearch `_id` keys (`part::es_key`) of the records not yet
    /// in parts, with how many carry each; parts keep their own.
    unflushed_ids: HashMap<u64, usize>,
}

impl LogState {
    fn unflushed_bytes(&self) -> usize {
        self.active.bytes + self.frozen.iter().map(|m| m.bytes).sum::<usize>()
    }
}

/// Size numbers of the logs table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records in memtables (active and frozen).
    pub memtable_records: usize,
    /// Live log parts.
    pub parts: usize,
    /// Records in live parts.
    pub part_records: u64,
    /// Bytes of live parts.
    pub part_bytes: u64,
    /// Highest log WAL seq in parts.
    pub flushed_seq: u64,
}

/// The logs table of a store (see the module doc).
pub(crate) struct LogTable {
    data_dir: PathBuf,
    append_gate: Mutex<()>,
    state: Mutex<LogState>,
    wal: Arc<Wal>,
    syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Serialises flushes and retention (held by the blocking work).
    flush_gate: Mutex<()>,
    text_indexes: Mutex<HashMap<u64, Arc<fts::Index>>>,
}

impl LogTable {
    /// Opens the table under `data_dir/logs`: manifest, orphan removal,
    /// parts, WAL replay. `read_only`: writes nothing (see `readonly.rs`).
    pub(crate) fn open(
        data_dir: &Path,
        durability: crate::Durability,
        fsync_interval: Duration,
        read_only: bool,
    ) -> Result<Self, Error> {
        let manifest = LogManifest::load(data_dir)?;
        if !read_only {
            remove_orphans(data_dir, &manifest)?;
        }
        let mut parts = Vec::with_capacity(manifest.parts.len());
        for meta in &manifest.parts {
            parts.push(Arc::new(open_part(data_dir, meta.clone())?));
        }
        let wal_dir = data_dir.join("logs").join("wal");
        let (wal, records) = if read_only {
            Wal::read_only(&wal_dir, manifest.flushed_seq)?
        } else {
            Wal::open(&wal_dir, manifest.flushed_seq, durability)?
        };
        let state = LogState {
            cursors: manifest.cursors.clone(),
            active: LogMemtable::default(),
            frozen: Vec::new(),
            parts: Arc::new(parts),
            manifest,
            next_seq: wal.last_seq() + 1,
            garbage: Vec::new(),
            unflushed_ids: HashMap::new(),
        };
        let table = Self {
            data_dir: data_dir.to_owned(),
            append_gate: Mutex::new(()),
            state: Mutex::new(state),
            wal: wal.clone(),
            syncer: Mutex::new(None),
            flush_gate: Mutex::new(()),
            text_indexes: Mutex::new(HashMap::new()),
        };
        table.replay(records, &wal_dir)?;
        if !read_only {
            let syncer = std::thread::Builder::new()
                .name("loupe-logwal-sync".into())
                .spawn(move || wal.run_syncer(fsync_interval))
                .map_err(|e| Error::io(data_dir, e))?;
            *table.syncer.lock() = Some(syncer);
        }
        Ok(table)
    }

    fn replay(&self, records: Vec<Record>, wal_dir: &Path) -> Result<(), Error> {
        let count = records.len();
        let mut st = self.state.lock();
        for record in records {
            let batch = decode(&record.payload).map_err(|reason| Error::Corrupt {
                path: wal_dir.to_owned(),
                offset: record.seq,
                reason: format!("log record {} does not decode: {reason}", record.seq),
            })?;
            apply(&mut st, record.seq, batch);
        }
        if count > 0 {
            tracing::info!(records = count, "replayed log wal");
        }
        Ok(())
    }

    /// Writes one WAL record and applies it; returns its seq (0 when
    /// nothing was left to write) and, with `unique`, which records were
    /// left out as duplicates of a stored Elasticsearch `_id`. Blocking.
    fn append_blocking(
        &self,
        mut batch: Batch,
        max_unflushed: usize,
        counts: &loupe_rollup::logs::LogCounts,
        unique: bool,
    ) -> Result<(u64, Vec<bool>), Error> {
        {
            let st = self.state.lock();
            if st.unflushed_bytes() >= max_unflushed {
                return Err(Error::Full);
            }
            if let Some((key, _)) = &batch.cursor
                && !st.cursors.contains_key(key)
                && st.cursors.len() >= MAX_LOG_CURSORS
            {
                return Err(Error::Invalid(format!(
                    "more than {MAX_LOG_CURSORS} log source cursors; forget old ones first"
                )));
            }
        }
        // Under the gate, the check and the write are one step: two
        // requests with the same `_id` cannot both pass it.
        let _gate = self.append_gate.lock();
        let duplicates = if unique {
            self.duplicates(&batch.records)?
        } else {
            Vec::new()
        };
        if duplicates.contains(&true) {
            let mut dup = duplicates.iter();
            batch
                .records
                .retain(|_| !dup.next().copied().unwrap_or(false));
            if batch.records.is_empty() && batch.cursor.is_none() {
                return Ok((0, duplicates));
            }
        }
        let payload = encode(&batch)?;
        let seq = self.state.lock().next_seq;
        self.wal.write(seq, &payload)?;
        // Counted once written: what `/metrics` counts is in the WAL.
        counts.record(&batch.records);
        let mut st = self.state.lock();
        st.next_seq = seq + 1;
        apply(&mut st, seq, batch);
        Ok((seq, duplicates))
    }

    /// Which of `records` carry an Elasticsearch `_id` already stored for
    /// their project and stream (or earlier in `records`). Stored means
    /// unflushed, or in a part of the project whose time range comes
    /// within [`ES_ID_HORIZON`] of the record's time. Called under the
    /// append gate.
    fn duplicates(&self, records: &[LogRecord]) -> Result<Vec<bool>, Error> {
        let keys: Vec<Option<u64>> = records.iter().map(part::es_key).collect();
        if keys.iter().all(Option::is_none) {
            return Ok(vec![false; records.len()]);
        }
        let (parts, mut out) = {
            let st = self.state.lock();
            let unflushed = keys
                .iter()
                .map(|k| k.is_some_and(|k| st.unflushed_ids.contains_key(&k)))
                .collect::<Vec<bool>>();
            (st.parts.clone(), unflushed)
        };
        let mut seen = HashSet::new();
        for ((r, key), dup) in records.iter().zip(&keys).zip(out.iter_mut()) {
            let Some(key) = *key else { continue };
            if *dup || !seen.insert(key) {
                *dup = true;
                continue;
            }
            for p in parts.iter().filter(|p| {
                p.meta.project == r.project
                    && p.meta.max_time >= r.time.saturating_sub(ES_ID_HORIZON)
                    && p.meta.min_time <= r.time.saturating_add(ES_ID_HORIZON)
            }) {
                if p.has_es_key(key)? {
                    *dup = true;
                    break;
                }
            }
        }
        Ok(out)
    }

    fn cursor(&self, key: &str) -> Option<String> {
        self.state.lock().cursors.get(key).cloned()
    }

    /// Whether the active memtable should be flushed now.
    fn flush_due(&self, memtable_bytes: usize, flush_age: Duration) -> bool {
        let st = self.state.lock();
        !st.frozen.is_empty()
            || st.active.bytes >= memtable_bytes
            || st
                .active
                .first_write
                .is_some_and(|t| t.elapsed() >= flush_age)
    }

    /// Freezes the active memtable and flushes every frozen one. Blocking.
    fn flush_blocking(&self) -> Result<(), Error> {
        let _flush = self.flush_gate.lock();
        {
            let _append = self.append_gate.lock();
            let mut st = self.state.lock();
            if !st.active.records.is_empty() {
                let mt = std::mem::take(&mut st.active);
                st.frozen.push(Arc::new(mt));
                drop(st);
                self.wal.rotate()?;
            }
        }
        loop {
            let Some(mt) = self.state.lock().frozen.first().cloned() else {
                return Ok(());
            };
            self.flush_one(&mt)?;
        }
    }

    #[tracing::instrument(name = "store.flush_logs", skip_all, fields(records = mt.records.len()))]
    fn flush_one(&self, mt: &Arc<LogMemtable>) -> Result<(), Error> {
        let mut groups: BTreeMap<(String, String), Vec<LogRecord>> = BTreeMap::new();
        for r in &mt.records {
            groups
                .entry((r.project.clone(), day_of(r.time)))
                .or_default()
                .push(LogRecord::clone(r));
        }
        let first_id = {
            let mut st = self.state.lock();
            let id = st.manifest.next_part_id;
            st.manifest.next_part_id += groups.len() as u64;
            id
        };
        let mut new_parts = Vec::with_capacity(groups.len());
        for (i, ((project, day), mut records)) in groups.into_iter().enumerate() {
            let id = first_id + i as u64;
            // The part's row order (`write_part` sorts stably by time, so
            // sorting here first gives the same order): the index's blocks
            // are row positions.
            records.sort_by_key(|r| r.time);
            let index = fts::Index::of_rows(records.iter().map(|r| [r.body.as_str()]));
            let part = write_part(&self.data_dir, id, &project, &day, records)?;
            let path = index_path(&self.data_dir, id);
            loupe_fsutil::write_atomic(&path, &index.encode()).map_err(io_err(&path))?;
            self.text_indexes.lock().insert(id, Arc::new(index));
            new_parts.push(Arc::new(part));
        }
        let flushed_seq = {
            let mut st = self.state.lock();
            let mut manifest = st.manifest.clone();
            manifest
                .parts
                .extend(new_parts.iter().map(|p| p.meta.clone()));
            manifest.flushed_seq = manifest.flushed_seq.max(mt.max_seq);
            // Cursors move with the records they follow: only this
            // memtable's, since later ones are still in the WAL.
            manifest
                .cursors
                .extend(mt.cursors.iter().map(|(k, v)| (k.clone(), v.clone())));
            manifest.store(&self.data_dir)?;
            st.manifest = manifest;
            let mut parts = st.parts.as_ref().clone();
            parts.extend(new_parts.iter().cloned());
            st.parts = Arc::new(parts);
            st.frozen.retain(|m| !Arc::ptr_eq(m, mt));
            // The new parts answer for these ids from now on.
            for key in mt.records.iter().filter_map(|r| part::es_key(r)) {
                if let std::collections::hash_map::Entry::Occupied(mut e) =
                    st.unflushed_ids.entry(key)
                {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
            }
            st.manifest.flushed_seq
        };
        self.wal.delete_flushed(flushed_seq)?;
        tracing::debug!(parts = new_parts.len(), flushed_seq, "flushed log memtable");
        Ok(())
    }

    /// Log parts of `project` (and their records) a retention cutoff would
    /// drop now.
    pub(crate) fn expired_by(&self, project: &str, cutoff: Option<i64>) -> (usize, u64) {
        let st = self.state.lock();
        st.parts
            .iter()
            .filter(|p| {
                p.meta.project == project
                    && crate::retention::expired(cutoff, &p.meta.day, p.meta.max_time)
            })
            .fold((0, 0), |(n, rows), p| (n + 1, rows + p.meta.rows))
    }

    /// Drops whole parts of days before each project's retention cutoff;
    /// returns how many. Blocking.
    fn expire(&self, cutoff: &dyn Fn(&str) -> Option<i64>) -> Result<usize, Error> {
        let _flush = self.flush_gate.lock();
        let mut st = self.state.lock();
        let expired: Vec<Arc<LogPart>> = st
            .parts
            .iter()
            .filter(|p| {
                crate::retention::expired(cutoff(&p.meta.project), &p.meta.day, p.meta.max_time)
            })
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let ids: HashSet<u64> = expired.iter().map(|p| p.meta.id).collect();
        let mut manifest = st.manifest.clone();
        manifest.parts.retain(|p| !ids.contains(&p.id));
        manifest.store(&self.data_dir)?;
        st.manifest = manifest;
        st.parts = Arc::new(
            st.parts
                .iter()
                .filter(|p| !ids.contains(&p.meta.id))
                .cloned()
                .collect(),
        );
        let now = Instant::now();
        for p in &expired {
            tracing::info!(
                project = %p.meta.project,
                day = %p.meta.day,
                rows = p.meta.rows,
                bytes = p.meta.bytes,
                path = %p.meta.path,
                "retention dropped a log part"
            );
            st.garbage.push((now, p.path.clone()));
            st.garbage
                .push((now, index_path(&self.data_dir, p.meta.id)));
        }
        self.text_indexes.lock().retain(|id, _| !ids.contains(id));
        Ok(expired.len())
    }

    /// Deletes dropped files past their grace period (all of them: `all`).
    fn collect_garbage(&self, all: bool) {
        let due: Vec<PathBuf> = {
            let mut st = self.state.lock();
            let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut st.garbage)
                .into_iter()
                .partition(|(t, _)| all || t.elapsed() >= GRACE);
            st.garbage = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        for path in due {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a dropped log file");
            }
        }
    }

    fn text_index(&self, part: &LogPart) -> Option<Arc<fts::Index>> {
        if let Some(ix) = self.text_indexes.lock().get(&part.meta.id) {
            return Some(ix.clone());
        }
        match fts::Index::load(&index_path(&self.data_dir, part.meta.id)) {
            Ok(Some(ix)) if ix.rows() == part.meta.rows => {
                let ix = Arc::new(ix);
                self.text_indexes.lock().insert(part.meta.id, ix.clone());
                Some(ix)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(part = part.meta.id, error = %e, "log text index unreadable; scanning the part");
                None
            }
        }
    }

    /// The memtables' records and the live parts, of one instant (a flush
    /// between two looks could show a record twice or not at all).
    fn snapshot(&self) -> (Vec<Arc<LogRecord>>, Arc<Vec<Arc<LogPart>>>) {
        let st = self.state.lock();
        let mut mem: Vec<Arc<LogRecord>> = st.active.records.clone();
        for m in &st.frozen {
            mem.extend(m.records.iter().cloned());
        }
        (mem, st.parts.clone())
    }

    /// Seeds the `/metrics` log counters with every stored record, so a
    /// restart does not start them at zero (`Store::open`).
    fn seed_counts(
        &self,
        counts: &loupe_rollup::logs::LogCounts,
        now_ns: i64,
    ) -> Result<(), Error> {
        let (memtable, parts) = self.snapshot();
        counts.seed(
            memtable.iter().map(|r| loupe_rollup::logs::Stored {
                project: &r.project,
                service: r.service.as_deref(),
                severity_number: r.severity_number,
                observed_ns: r.observed_time,
            }),
            now_ns,
        );
        for part in parts.iter() {
            part.seed_counts(counts, now_ns)?;
        }
        Ok(())
    }

    /// Answers a search (see the module doc). Blocking.
    fn search_blocking(&self, project: &ProjectId, q: &LogQuery) -> Result<LogPage, Error> {
        let (memtables, parts) = self.snapshot();
        let mut top = TopK::new(q.limit);
        let mut scanned = 0u64;
        for r in memtables.iter().filter(|r| r.project == project.as_str()) {
            scanned += 1;
            if q.matches(r) {
                top.push(LogRecord::clone(r));
            }
        }
        let mut candidates: Vec<&Arc<LogPart>> = parts
            .iter()
            .filter(|p| {
                p.meta.project == project.as_str()
                    && q.from.is_none_or(|f| p.meta.max_time >= f)
                    && q.to.is_none_or(|t| p.meta.min_time < t)
            })
            .collect();
        // Newest first: once the top-k is full, older parts cannot enter it.
        candidates.sort_by_key(|p| std::cmp::Reverse(p.meta.max_time));
        for part in candidates {
            if top.full_before(part.meta.max_time) {
                break;
            }
            let mut ranges: Option<Vec<Range<usize>>> = None;
            if let Some(id) = &q.run {
                ranges = Some(part.run_rows(id));
            }
            if !q.phrases.is_empty()
                && let Some(ix) = self.text_index(part)
            {
                let text = ix.candidates(&q.phrases);
                ranges = Some(match ranges {
                    Some(r) => intersect(&r, &text),
                    None => text,
                });
            }
            if ranges.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            scanned += part.search(ranges, q, &mut top)?;
        }
        let (records, truncated) = top.into_sorted();
        Ok(LogPage {
            records,
            truncated,
            scanned,
        })
    }

    fn stats(&self) -> LogStats {
        let st = self.state.lock();
        LogStats {
            memtable_records: st.active.records.len()
                + st.frozen.iter().map(|m| m.records.len()).sum::<usize>(),
            parts: st.parts.len(),
            part_records: st.parts.iter().map(|p| p.meta.rows).sum(),
            part_bytes: st.parts.iter().map(|p| p.meta.bytes).sum(),
            flushed_seq: st.manifest.flushed_seq,
        }
    }

    fn close(&self) -> Result<(), Error> {
        self.wal.close()?;
        if let Some(handle) = self.syncer.lock().take() {
            let _ = handle.join();
        }
        Ok(())
    }
}

fn apply(st: &mut LogState, seq: u64, batch: Batch) {
    if let Some((key, value)) = batch.cursor {
        st.cursors.insert(key.clone(), value.clone());
        st.active.cursors.insert(key, value);
    }
    for key in batch.records.iter().filter_map(part::es_key) {
        *st.unflushed_ids.entry(key).or_default() += 1;
    }
    push(&mut st.active, seq, batch.records);
}

fn push(mt: &mut LogMemtable, seq: u64, records: Vec<LogRecord>) {
    for r in records {
        mt.bytes += r.approx_bytes();
        mt.records.push(Arc::new(r));
    }
    mt.max_seq = mt.max_seq.max(seq);
    mt.first_write.get_or_insert_with(Instant::now);
}

fn index_path(data_dir: &Path, id: u64) -> PathBuf {
    data_dir
        .join("logs")
        .join(fts::DIR)
        .join(format!("{id:016}.tri"))
}

/// Rows in both sets of ascending ranges.
fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (start, end) = (a[i].start.max(b[j].start), a[i].end.min(b[j].end));
        if start < end {
            out.push(start..end);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Deletes log parts and indexes the manifest does not name: what a crash
/// between writing a part and committing the manifest leaves behind.
fn remove_orphans(data_dir: &Path, manifest: &LogManifest) -> Result<(), Error> {
    let mut live: HashSet<PathBuf> = HashSet::new();
    for p in &manifest.parts {
        live.insert(data_dir.join(&p.path));
        live.insert(index_path(data_dir, p.id));
    }
    let mut stack = vec![
        data_dir.join("logs").join("parts"),
        data_dir.join("logs").join(fts::DIR),
    ];
    while let Some(dir) = stack.pop() {
        if !dir.exists() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = entry.map_err(io_err(&dir))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if !live.contains(&path) {
                tracing::warn!(path = %path.display(), "removing a log file left by an interrupted flush");
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
    }
    Ok(())
}

/// The newest `k` records seen (by time), in a min-heap.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<std::cmp::Reverse<ByTime>>,
    dropped: bool,
}

struct ByTime(LogRecord);

impl PartialEq for ByTime {
    fn eq(&self, other: &Self) -> bool {
        self.0.time == other.0.time
    }
}
impl Eq for ByTime {}
impl PartialOrd for ByTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.time.cmp(&other.0.time)
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            heap: BinaryHeap::new(),
            dropped: false,
        }
    }

    fn push(&mut self, r: LogRecord) {
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(ByTime(r)));
            return;
        }
        self.dropped = true;
        if self
            .heap
            .peek()
            .is_some_and(|std::cmp::Reverse(min)| r.time > min.0.time)
        {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(ByTime(r)));
        }
    }

    /// Full, and every record newer than `max_time`: nothing at or before
    /// it can enter (a later match would only mark the answer truncated).
    fn full_before(&mut self, max_time: i64) -> bool {
        let done = self.heap.len() >= self.k
            && self
                .heap
                .peek()
                .is_some_and(|std::cmp::Reverse(min)| min.0.time > max_time);
        if done {
            // Parts skipped may hold matches: say so.
            self.dropped = true;
        }
        done
    }

    fn into_sorted(self) -> (Vec<LogRecord>, bool) {
        let mut v: Vec<LogRecord> = self.heap.into_iter().map(|r| r.0.0).collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.time));
        (v, self.dropped)
    }
}

impl Store {
    /// Appends log records; resolves once they are durable per the
    /// durability mode (an acknowledged record survives kill -9).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a record without a project, [`Error::Full`]
    /// over the unflushed budget or when no append slot frees up in time,
    /// I/O errors of the WAL.
    pub async fn append_logs(&self, records: Vec<LogRecord>) -> Result<WriteAck, Error> {
        self.append_logs_at(records, None).await
    }

    /// As [`Store::append_logs`], recording in the same WAL record where a
    /// resuming source (a tailed file) stands after these records:
    /// `cursor` is (source key, opaque position). [`Store::log_cursor`]
    /// gives it back after a restart, consistent with what was stored.
    ///
    /// # Errors
    /// As [`Store::append_logs`]; [`Error::Invalid`] past
    /// `MAX_LOG_CURSORS` (10,000) sources.
    #[tracing::instrument(name = "store.append_logs", skip_all, fields(records = records.len()))]
    pub async fn append_logs_at(
        &self,
        records: Vec<LogRecord>,
        cursor: Option<(String, String)>,
    ) -> Result<WriteAck, Error> {
        Ok(self.append_log_batch(records, cursor, false).await?.0)
    }

    /// As [`Store::append_logs`], storing a record that carries an
    /// Elasticsearch `_id` (`attributes["_id"]`) only when no record of its
    /// project and stream has it yet; answers, per record, whether it was
    /// such a duplicate and left out. The ids of a part are read from it
    /// once, when a record within a day of its time range is checked.
    ///
    /// # Errors
    /// As [`Store::append_logs`].
    pub async fn append_logs_unique(
        &self,
        records: Vec<LogRecord>,
    ) -> Result<(WriteAck, Vec<bool>), Error> {
        self.append_log_batch(records, None, true).await
    }

    async fn append_log_batch(
        &self,
        records: Vec<LogRecord>,
        cursor: Option<(String, String)>,
        unique: bool,
    ) -> Result<(WriteAck, Vec<bool>), Error> {
        self.check_writable()?;
        if records.iter().any(|r| r.project.is_empty()) {
            return Err(Error::Invalid("every log record needs a project".into()));
        }
        let count = records.len();
        if count == 0 && cursor.is_none() {
            return Ok((WriteAck { seq: 0, spans: 0 }, Vec::new()));
        }
        let _slot = tokio::time::timeout(
            self.inner.config.append_queue_timeout,
            self.inner.append_slots.acquire(),
        )
        .await
        .map_err(|_| Error::Full)?
        .map_err(|_| Error::Closed)?;
        let store = self.clone();
        let max = self.inner.config.max_unflushed_bytes;
        let result = tokio::task::spawn_blocking(move || {
            let inner = &store.inner;
            let batch = Batch { records, cursor };
            inner
                .logs
                .append_blocking(batch, max, &inner.log_counts, unique)
        })
        .await
        .map_err(|e| Error::Internal(format!("log append task failed: {e}")));
        let (seq, duplicates) = match result.and_then(|r| r) {
            Ok(done) => done,
            Err(Error::Full) => {
                self.inner.flush_wake.notify_one();
                return Err(Error::Full);
            }
            Err(e) => return Err(e),
        };
        if seq > 0 {
            self.inner.logs.wal.wait_durable(seq).await?;
        }
        let stored = count - duplicates.iter().filter(|d| **d).count();
        Ok((WriteAck { seq, spans: stored }, duplicates))
    }

    /// Writes every log record appended before the call into parts.
    #[tracing::instrument(name = "store.flush_logs", skip_all)]
    pub async fn flush_logs(&self) -> Result<(), Error> {
        self.check_writable()?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.inner.logs.flush_blocking())
            .await
            .map_err(|e| Error::Internal(format!("log flush task failed: {e}")))?
    }

    /// Whether the log memtable is due for a flush (background loop).
    pub(crate) fn logs_flush_due(&self) -> bool {
        let cfg = &self.inner.config;
        self.inner.logs.flush_due(cfg.memtable_bytes, cfg.flush_age)
    }

    /// Log retention, then compaction (part of the maintenance pass);
    /// returns (parts expired, parts merged away, parts written). Blocking.
    pub(crate) fn maintain_logs(&self, now_ns: i64) -> Result<(usize, usize, usize), Error> {
        let expired = self
            .inner
            .logs
            .expire(&|project| self.retention_cutoff_day_ns(project, now_ns))?;
        let (merged, written) = self
            .inner
            .logs
            .compact(self.inner.config.compaction_min_parts)?;
        Ok((expired, merged, written))
    }

    /// Deletes dropped log files past their grace period (`all`: now).
    pub(crate) fn collect_log_garbage(&self, all: bool) {
        self.inner.logs.collect_garbage(all);
    }

    /// Searches one project's logs, newest first.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a query out of bounds, I/O and Parquet errors.
    #[tracing::instrument(name = "store.search_logs", skip_all, fields(project = %project))]
    pub async fn search_logs(
        &self,
        project: &ProjectId,
        query: &LogQuery,
    ) -> Result<LogPage, Error> {
        query
            .validate()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let store = self.clone();
        let (project, query) = (project.clone(), query.clone());
        tokio::task::spawn_blocking(move || store.inner.logs.search_blocking(&project, &query))
            .await
            .map_err(|e| Error::Internal(format!("log search task failed: {e}")))?
    }

    /// The position a resuming source last stored with its records
    /// ([`Store::append_logs_at`]).
    pub fn log_cursor(&self, key: &str) -> Option<String> {
        self.inner.logs.cursor(key)
    }

    /// Log records per (project, service, severity level) that arrived in
    /// the last `minutes` minutes (at most an hour), of `project` or all:
    /// what log alert rules read.
    pub fn recent_log_counts(
        &self,
        project: Option<&str>,
        minutes: i64,
    ) -> Vec<(loupe_rollup::logs::SeriesKey, u64)> {
        self.inner
            .log_counts
            .recent(project, minutes, loupe_model::time::now_ns())
    }

    /// Seeds the log counters from what the directory holds (opening).
    pub(crate) fn seed_log_counts(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner
            .logs
            .seed_counts(&inner.log_counts, loupe_model::time::now_ns())
    }

    /// Size numbers of the logs table.
    pub fn log_stats(&self) -> LogStats {
        self.inner.logs.stats()
    }

    /// Syncs and closes the log WAL (shutdown, after the last flush).
    pub(crate) fn close_logs(&self) -> Result<(), Error> {
        self.inner.logs.close()
    }
}

impl loupe_backend::LogWriter for Store {
    fn append_logs_at(
        &self,
        records: Vec<LogRecord>,
        cursor: Option<(String, String)>,
    ) -> futures::future::BoxFuture<'_, Result<WriteAck, loupe_backend::StoreError>> {
        Box::pin(async move {
            Store::append_logs_at(self, records, cursor)
                .await
                .map_err(loupe_backend::StoreError::from)
        })
    }

    fn cursor(&self, key: &str) -> Option<String> {
        self.log_cursor(key)
    }

    fn append_logs_unique(
        &self,
        records: Vec<LogRecord>,
    ) -> futures::future::BoxFuture<'_, Result<(WriteAck, Vec<bool>), loupe_backend::StoreError>>
    {
        Box::pin(async move {
            Store::append_logs_unique(self, records)
                .await
                .map_err(loupe_backend::StoreError::from)
        })
    }
}

impl loupe_backend::LogReader for Store {
    fn search_logs<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a LogQuery,
    ) -> futures::future::BoxFuture<'a, Result<LogPage, loupe_backend::StoreError>> {
        Box::pin(async move {
            Store::search_logs(self, project, query)
                .await
                .map_err(loupe_backend::StoreError::from)
        })
    }
}

#[cfg(test)]
mod tests;
