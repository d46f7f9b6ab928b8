//! Parquet parts: immutable files of merged span rows, one (project, day) each.
//!
//! Layout: `parts/<project>/<YYYY-MM-DD>/<part id, 16 hex>.parquet`. A part is
//! written to a temp file, synced, renamed and its directory synced
//! (`loupe_fsutil::write_atomic_with`) before the manifest names it; a crash leaves at most a temp or an unreferenced
//! file, both removed at the next open.
//!
//! Each open part keeps an [`IdIndex`] in memory: a bloom filter over its
//! span ids, so "is this span already stored?" costs no I/O for the common
//! answer, "no"; and the row positions of every trace and run id, so one run
//! is read as the few Parquet pages that hold its rows (with the part's
//! metadata and page index cached after the first read), not a scan.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{AsArray, RecordBatch};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use fastbloom::BloomFilter;
use loupe_model::{SCHEMA_VERSION, Status, column};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter, RowSelection,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{KeyValue, PageIndexPolicy, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::convert::{Row, batch_to_rows, rows_to_batch};
use crate::deletes::DeletionVector;
use crate::mirrors::{MIRRORS, storage_schema};
use crate::part_file::PartFile;
use crate::payloads;

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Page bounds. Reading one run inflates, in every column, the pages that
/// hold its rows (about one place per span kind), so pages are small. The
/// row bound is what matters: with ~35 light columns, 256-row pages cut a
/// lookup on 30k runs from 9.9 ms (Parquet's defaults, 1 MiB / 20k rows)
/// to 3.9 ms, for 8 % more bytes (docs/BENCHMARKS.md). The writer checks
/// the row bound between batches of 1,024 values, so nullable columns and
/// the span ids get 1,024-row pages; bounding those at 256 too (a write
/// batch of 256) made scans up to 20 % slower and parts 5 % larger for no
/// measurable gain on one run (stop 35, 100k runs).
const PAGE_BYTES: usize = 64 * 1024;
const PAGE_ROWS: usize = 256;

/// Dictionary page bound. Any read of a dictionary-encoded column chunk
/// inflates its whole dictionary page first; with Parquet's 1 MiB default,
/// the near-unique ids of a 64k-row group (trace, run, session) filled
/// it, and one run lookup cost 13.8 ms on 128k-row parts. At 16 KiB such
/// columns fall back to plain encoding early while kinds, statuses, tools,
/// models and names keep their dictionaries: 4.8 ms, for 6 % more bytes.
const DICTIONARY_BYTES: usize = 16 * 1024;

/// Times and durations: delta-encoded without zstd. Every scan filters
/// on `start_time`, and a zstd frame per small page cost more to open than
/// the page's values (a fifth of a day's scan); rows sorted by kind and
/// time make the deltas small: the Parquet came out 1 % smaller.
const DELTA_COLUMNS: [&str; 3] = [column::START_TIME, column::END_TIME, column::DURATION];

/// Columns written without compression. Their chunks are dictionary
/// indices and run lengths of a few distinct values (kinds, statuses,
/// names of apps, models and tools, currencies) or mostly null numbers,
/// which zstd does not shrink (0.05 MB raw, 0.06 MB compressed per 260k
/// rows: docs/BENCHMARKS.md). Compressed, each read of each of their
/// column chunks still pays for creating a zstd context (parquet 59 builds a
/// compressor and a decompressor per chunk it opens): a run's spans sit in
/// one row group per span kind, so reading one run opened ~190 chunks, and
/// those contexts were 40 % of its CPU. The heavy columns (payloads,
/// attributes, ids, names, tags) stay compressed. The mirror columns
/// (`mirrors.rs`: a workspace id or tag per row) are added to these.
const UNCOMPRESSED_COLUMNS: [&str; 19] = [
    column::PROJECT,
    column::SOURCE,
    column::SPAN_KIND,
    column::STATUS,
    column::RAW_STATUS,
    column::NODE_TYPE,
    column::MODEL_NAME,
    column::MODEL_PROVIDER,
    column::TOOL_NAME,
    column::APP_ID,
    column::APP_NAME,
    column::WORKFLOW_ID,
    column::WORKFLOW_VERSION,
    column::CURRENCY,
    column::ERROR_CLASS,
    column::INGEST_VERSION,
    column::INPUT_TOKENS,
    column::OUTPUT_TOKENS,
    column::TOTAL_TOKENS,
];

/// Part layouts (`PartMeta::layout`): what a part's file holds besides the
/// model's columns. 0: nothing (parts written before the mirrors);
/// [`LAYOUT_MIRRORS`]: the mirror columns (`mirrors.rs`);
/// [`LAYOUT_PAYLOADS`]: those, and `input`/`output` in run order
/// (`payloads.rs`) instead of in the rows' order.
pub(crate) const LAYOUT_MIRRORS: u32 = 1;
/// See [`LAYOUT_MIRRORS`].
pub(crate) const LAYOUT_PAYLOADS: u32 = 2;
/// The layout new parts are written in; maintenance rewrites parts of an
/// earlier one (`compaction::plan`).
pub(crate) const LAYOUT: u32 = LAYOUT_PAYLOADS;

/// Payload pages (`payloads.rs`): larger than the light columns', so zstd
/// sees more of a run's repeated text at once. Parquet also cuts every
/// page at [`PAGE_ROWS`] rows, which binds first for most payloads (about
/// 400 bytes a text on Dify's traffic); one run's texts are still one or
/// two pages, so reading a run inflates no more than before.
const PAYLOAD_PAGE_BYTES: usize = 256 * 1024;

/// What the manifest records about a part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartMeta {
    /// Unique id (also the file name).
    pub id: u64,
    /// Owning project.
    pub project: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Path relative to the data dir.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// Smallest event time (ns), or `i64::MIN` if none.
    pub min_time: i64,
    /// Largest event time (ns), or `i64::MIN` if none.
    pub max_time: i64,
    /// 0 = flushed from a memtable; 1 = compacted.
    pub level: u8,
    /// Where the file lives. Absent (hot) in manifests written before the
    /// cold tier, and for every hot part, so a store without a cold tier
    /// writes the manifest it always did.
    #[serde(default, skip_serializing_if = "Location::is_hot")]
    pub location: Location,
    /// The store's columns the file has beyond the model's ([`LAYOUT`]):
    /// 0 for parts written before the mirror columns (absent in their
    /// manifests).
    #[serde(default)]
    pub layout: u32,
}

/// Which tier holds a part's file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// `<data_dir>/<path>` on local disk.
    #[default]
    Hot,
    /// `<cold url>/<path>` in the cold tier (`cold.rs`); read through the
    /// local cache.
    Cold,
}

impl Location {
    fn is_hot(&self) -> bool {
        *self == Location::Hot
    }
}

/// The ids of one part: a bloom filter over span ids, the row positions
/// of every trace and run id, and the position of every row version.
pub struct IdIndex {
    spans: BloomFilter,
    runs: RunRows,
    versions: VersionRows,
    /// Every row has a start time, so the part's time range bounds every
    /// row's `start_time` (a scan whose time bounds hold that range needs
    /// no time filter on its rows: `table.rs`). False when unknown (a cold
    /// part's id file holds no times).
    timed: bool,
    /// Positions of the rows whose status is `error`, ascending; `None`
    /// when unknown (a cold part's id file holds no statuses). Errors are
    /// what on-call asks about, a few percent of the rows: a filter on
    /// them reads these rows only (`table.rs`).
    errors: Option<Vec<u32>>,
}

/// Row position by row version, sorted by version: 12 bytes per row. It is
/// what turns "version v is superseded" into a deletion-vector position.
struct VersionRows {
    versions: Vec<u64>,
    positions: Vec<u32>,
}

impl VersionRows {
    fn build<'a>(rows: impl Iterator<Item = &'a Row>) -> Self {
        let mut pairs: Vec<(u64, u32)> = rows
            .enumerate()
            .map(|(i, r)| (r.version, i as u32))
            .collect();
        pairs.sort_unstable();
        let (versions, positions) = pairs.into_iter().unzip();
        Self {
            versions,
            positions,
        }
    }
}

/// Which id a lookup is about.
#[derive(Debug, Clone, Copy)]
pub enum IdKind {
    /// `span_id`.
    Span,
    /// `trace_id`.
    Trace,
    /// `run_id`.
    Run,
}

/// Row positions by trace or run id, as (32-bit fingerprint, row) pairs
/// sorted: 8 bytes per row (one more pair where a row's run id differs from
/// its trace id). A fingerprint can collide, so rows read through it are
/// checked against the id itself.
struct RunRows(Vec<(u32, u32)>);

fn fingerprint(id: &str) -> u32 {
    // Fixed seed: the index is rebuilt at open, never persisted, but a fixed
    // seed keeps positions reproducible in tests.
    (foldhash::quality::FixedState::with_seed(0x100be).hash_one(id) >> 32) as u32
}

impl RunRows {
    fn build<'a>(rows: impl Iterator<Item = &'a Row>) -> Self {
        let mut pairs = Vec::new();
        for (i, r) in rows.enumerate() {
            let i = i as u32;
            if let Some(t) = &r.span.trace_id {
                pairs.push((fingerprint(t), i));
            }
            if let Some(run) = &r.span.run_id
                && r.span.trace_id.as_ref() != Some(run)
            {
                pairs.push((fingerprint(run), i));
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        pairs.shrink_to_fit();
        Self(pairs)
    }

    /// The (fingerprint, row) pairs of `id`'s fingerprint.
    fn entries(&self, id: &str) -> &[(u32, u32)] {
        let fp = fingerprint(id);
        let from = self.0.partition_point(|&(f, _)| f < fp);
        let to = from + self.0[from..].partition_point(|&(f, _)| f == fp);
        &self.0[from..to]
    }

    fn contains(&self, id: &str) -> bool {
        !self.entries(id).is_empty()
    }

    /// Rows whose trace or run id may be `id`, ascending.
    fn rows_of(&self, id: &str) -> Vec<u32> {
        let mut rows: Vec<u32> = self.entries(id).iter().map(|&(_, r)| r).collect();
        rows.dedup();
        rows
    }
}

impl IdIndex {
    /// `rows` in the part's row order (positions are indexes into it).
    fn build<'a>(rows: impl ExactSizeIterator<Item = &'a Row> + Clone) -> Self {
        let mut spans = BloomFilter::with_false_pos(0.0005).expected_items(rows.len().max(1));
        for r in rows.clone() {
            spans.insert(r.span.span_id.as_str());
        }
        Self {
            spans,
            runs: RunRows::build(rows.clone()),
            timed: rows.clone().all(|r| r.span.start_time.is_some()),
            errors: Some(
                rows.clone()
                    .enumerate()
                    .filter(|(_, r)| r.span.status == Some(Status::Error))
                    .map(|(i, _)| i as u32)
                    .collect(),
            ),
            versions: VersionRows::build(rows),
        }
    }

    /// The index of rows read from a cold part's id file, which holds the
    /// ids only: what the times and statuses would say is unknown.
    fn ids_only(self) -> Self {
        Self {
            timed: false,
            errors: None,
            ..self
        }
    }

    /// Positions of the rows whose status is `error`, ascending (`None`:
    /// not known for this part).
    pub fn error_rows(&self) -> Option<&[u32]> {
        self.errors.as_deref()
    }

    /// Whether every row of the part has a start time within the part's
    /// `min_time..=max_time` (false when unknown).
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Smallest and largest row version in the part (`None` if empty).
    pub fn version_range(&self) -> Option<(u64, u64)> {
        let v = &self.versions.versions;
        Some((*v.first()?, *v.last()?))
    }

    /// Row position of a version, if the part holds it.
    pub fn position_of(&self, version: u64) -> Option<u32> {
        let v = &self.versions;
        let i = v.versions.binary_search(&version).ok()?;
        v.positions.get(i).copied()
    }

    /// Rows whose trace or run id may be `id` (a superset: read rows must
    /// still be checked), ascending.
    pub fn run_rows(&self, id: &str) -> Vec<u32> {
        self.runs.rows_of(id)
    }

    /// Whether the part may hold a row with this id. Span ids: bloom filter
    /// (false positives ~0.05 %). Trace and run ids share the position
    /// index: either kind answers for both, and 32-bit fingerprints collide
    /// about once per four billion rows.
    pub fn may_contain(&self, kind: IdKind, id: &str) -> bool {
        match kind {
            IdKind::Span => self.spans.contains(id),
            IdKind::Trace | IdKind::Run => self.runs.contains(id),
        }
    }
}

/// A part the store can read: its metadata and id index.
pub struct Part {
    /// Manifest entry.
    pub meta: PartMeta,
    /// Absolute path of the file: in the data directory for a hot part, in
    /// the cold cache for a cold one (there only once [`Part::local`]
    /// fetched it).
    pub path: PathBuf,
    /// Span id bloom filter and run row positions (shared with the cold
    /// part a move makes of this one).
    pub index: Arc<IdIndex>,
    /// The cold tier holding the file, for a cold part.
    cold: Option<Arc<crate::cold::Tier>>,
    /// Parquet footer and page index, read once at the first id lookup.
    reader: OnceLock<ArrowReaderMetadata>,
}

impl Part {
    fn new(meta: PartMeta, path: PathBuf, index: IdIndex) -> Self {
        Self {
            meta,
            path,
            index: Arc::new(index),
            cold: None,
            reader: OnceLock::new(),
        }
    }

    /// The same part once its file is in `tier`: `meta` says
    /// [`Location::Cold`]; the id index is shared, not rebuilt.
    pub(crate) fn moved_to(&self, meta: PartMeta, tier: &Arc<crate::cold::Tier>) -> Self {
        Self {
            path: tier.cache.path_of(&meta.path),
            meta,
            index: self.index.clone(),
            cold: Some(tier.clone()),
            reader: OnceLock::new(),
        }
    }

    /// Whether the file lives in the cold tier.
    pub fn is_cold(&self) -> bool {
        self.cold.is_some()
    }

    /// A local path holding the file: the part itself when hot; for a cold
    /// part, its copy in the cache, downloaded first if the cache lacks it.
    /// Blocking (a download); call from a blocking context.
    pub fn local(&self) -> Result<PathBuf, Error> {
        match &self.cold {
            None => Ok(self.path.clone()),
            Some(tier) => tier.fetch(&self.meta),
        }
    }

    /// The part's footer and offset index: parsed once, at the first id
    /// lookup, or taken from `cache` (the store's metadata cache, which
    /// the warming at open and every scan fill) when it holds them, so a
    /// lookup after a restart parses no footer and the part's metadata is
    /// held once.
    pub(crate) fn reader_metadata(
        &self,
        file: &PartFile,
        cache: Option<&FileMetadataCache>,
    ) -> Result<ArrowReaderMetadata, Error> {
        if let Some(m) = self.reader.get() {
            return Ok(m.clone());
        }
        let loaded = match cache.and_then(|c| crate::warm::cached(c, self)) {
            Some(parquet) => ArrowReaderMetadata::try_new(parquet, ArrowReaderOptions::new())?,
            None => {
                // The offset index (page locations) is what lets a row
                // selection skip pages; the column index (page min/max) is
                // not needed here.
                let options =
                    ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
                ArrowReaderMetadata::load(file, options)?
            }
        };
        Ok(self.reader.get_or_init(|| loaded).clone())
    }

    /// The footer this part holds for reads by position, once one was read.
    #[cfg(test)]
    pub(crate) fn held_metadata(&self) -> Option<Arc<parquet::file::metadata::ParquetMetaData>> {
        self.reader.get().map(|m| m.metadata().clone())
    }

    /// Rows of one trace or run (`pick` is [`RowPick::Trace`] or
    /// [`RowPick::TraceOrRun`]; other picks go through [`read_rows`]).
    ///
    /// Reads only the pages holding the rows the position index names and
    /// `deleted` does not hide, then keeps the rows whose id really matches.
    pub fn read_run(
        &self,
        pick: RowPick<'_>,
        deleted: &DeletionVector,
        cache: Option<&FileMetadataCache>,
    ) -> Result<Vec<Row>, Error> {
        let (id, or_run) = match pick {
            RowPick::Trace(id) => (id, false),
            RowPick::TraceOrRun(id) => (id, true),
            RowPick::SpanIds(_) => return read_rows(&self.local()?, Some(pick), &[], deleted),
        };
        let mut positions = self.index.runs.rows_of(id);
        deleted.retain_visible(&mut positions);
        let rows = self.read_positions(&positions, &[], cache)?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                r.span.trace_id.as_deref() == Some(id)
                    || (or_run && r.span.run_id.as_deref() == Some(id))
            })
            .collect())
    }

    /// The rows at `positions` (ascending, visible), read as the pages that
    /// hold them: only `columns` (empty: all), plus `span_id` and
    /// `version`, which every row needs.
    pub fn read_positions(
        &self,
        positions: &[u32],
        columns: &[&str],
        cache: Option<&FileMetadataCache>,
    ) -> Result<Vec<Row>, Error> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let file = PartFile::open(&self.local()?)?;
        let metadata = self.reader_metadata(&file, cache)?;
        // Row groups holding a position, and the selection inside them.
        let mut groups = Vec::new();
        let mut ranges = Vec::new();
        let (mut group_start, mut selected_start) = (0usize, 0usize);
        let mut next = positions.iter().map(|&p| p as usize).peekable();
        for (rg, group) in metadata.metadata().row_groups().iter().enumerate() {
            let group_end = group_start + group.num_rows() as usize;
            let mut any = false;
            while let Some(&p) = next.peek() {
                if p >= group_end {
                    break;
                }
                next.next();
                let at = selected_start + (p - group_start);
                ranges.push(at..at + 1);
                any = true;
            }
            if any {
                groups.push(rg);
                selected_start += group_end - group_start;
            }
            group_start = group_end;
        }
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let selection = RowSelection::from_consecutive_ranges(ranges.into_iter(), selected_start);
        let (projection, texts) = projection_of(
            metadata.schema(),
            columns,
            &[column::SPAN_ID, column::VERSION],
        );
        let roots = projection.unwrap_or_else(|| (0..metadata.schema().fields().len()).collect());
        let read = |roots: Vec<usize>| -> Result<Vec<RecordBatch>, Error> {
            let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
            let reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), metadata.clone())
                    .with_row_groups(groups.clone())
                    .with_row_selection(selection.clone())
                    .with_projection(mask)
                    .build()?;
            Ok(reader.collect::<Result<Vec<_>, _>>()?)
        };
        // One run's rows sit in a few pages of every column: inflating them
        // is most of a run read, and columns are independent, so the two
        // halves of the columns are read at once.
        let batches = match split_columns(&metadata, &groups, roots, cores()) {
            (mine, Some(theirs)) => std::thread::scope(|scope| {
                let other = scope.spawn(|| read(theirs));
                let mine = read(mine)?;
                let theirs = other
                    .join()
                    .map_err(|_| Error::Internal("a part read thread panicked".into()))??;
                side_by_side(mine, theirs)
            })?,
            (all, None) => read(all)?,
        };
        rows_with_texts(batches.into_iter().map(Ok), &texts, || Ok((file, metadata)))
    }
}

/// This machine's cores, asked once: the standard library reads the
/// cgroup's CPU quota files on every call, and a run read asks.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Per-leaf cost of a read beyond its pages' bytes (a codec, a read call).
const LEAF_READ_COST: u64 = 4096;

/// `roots` (root columns of the part, ascending) as two sets of about the
/// same reading work in the row groups `groups` (a page of each leaf, by
/// the leaf's mean uncompressed page size), or all in one on one core or
/// for one column.
fn split_columns(
    metadata: &ArrowReaderMetadata,
    groups: &[usize],
    roots: Vec<usize>,
    cores: usize,
) -> (Vec<usize>, Option<Vec<usize>>) {
    if cores < 2 || roots.len() < 2 {
        return (roots, None);
    }
    let meta = metadata.metadata();
    let descr = meta.file_metadata().schema_descr();
    let mut cost = vec![0u64; descr.root_schema().get_fields().len()];
    for &rg in groups {
        let group = meta.row_group(rg);
        for (leaf, chunk) in group.columns().iter().enumerate() {
            let pages = meta
                .offset_index()
                .and_then(|index| index.get(rg)?.get(leaf))
                .map_or(1, |o| o.page_locations().len().max(1)) as u64;
            let bytes = u64::try_from(chunk.uncompressed_size()).unwrap_or(0);
            if let Some(c) = cost.get_mut(descr.get_column_root_idx(leaf)) {
                *c += LEAF_READ_COST + bytes / pages;
            }
        }
    }
    let mut by_cost = roots;
    by_cost.sort_by_key(|&r| std::cmp::Reverse(cost.get(r).copied().unwrap_or(0)));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut cost_a, mut cost_b) = (0u64, 0u64);
    for r in by_cost {
        let c = cost.get(r).copied().unwrap_or(0);
        if cost_a <= cost_b {
            a.push(r);
            cost_a += c;
        } else {
            b.push(r);
            cost_b += c;
        }
    }
    a.sort_unstable();
    b.sort_unstable();
    (a, Some(b))
}

/// The batches of two reads of the same rows (same row groups and
/// selection, so the same batch lengths) as one set of batches with the
/// columns of both.
fn side_by_side(a: Vec<RecordBatch>, b: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, Error> {
    if a.len() != b.len() {
        return Err(Error::Internal(format!(
            "two reads of the same rows gave {} and {} batches",
            a.len(),
            b.len()
        )));
    }
    a.into_iter()
        .zip(b)
        .map(|(a, b)| {
            if a.num_rows() != b.num_rows() {
                return Err(Error::Internal(format!(
                    "two reads of the same rows gave batches of {} and {} rows",
                    a.num_rows(),
                    b.num_rows()
                )));
            }
            let fields: Vec<_> = a
                .schema()
                .fields()
                .iter()
                .chain(b.schema().fields())
                .cloned()
                .collect();
            let columns = a.columns().iter().chain(b.columns()).cloned().collect();
            Ok(RecordBatch::try_new(
                Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
            )?)
        })
        .collect()
}

/// The rows of `batches` (a part's, projected by [`projection_of`]), with
/// `texts` filled from run order ([`payloads::fill`], from the file and
/// metadata `source` gives, asked only when there are texts to fill).
fn rows_with_texts(
    batches: impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
    texts: &[&'static str],
    source: impl FnOnce() -> Result<(PartFile, ArrowReaderMetadata), Error>,
) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    let mut at = Vec::new();
    for batch in batches {
        let batch = batch?;
        if !texts.is_empty() {
            at.extend(payloads::positions_of(&batch)?.values());
        }
        rows.extend(batch_to_rows(&batch)?);
    }
    if !texts.is_empty() && !rows.is_empty() {
        let (file, metadata) = source()?;
        payloads::fill(&mut rows, &at, file, metadata, texts)?;
    }
    Ok(rows)
}

/// The leaf columns a read of a part with `arrow_schema` projects to get
/// `columns` (empty: all) and `always`, or `None` for all; and the payload
/// columns to fill afterwards from run order ([`payloads::fill`]), for a
/// part of [`LAYOUT_PAYLOADS`] (whose projection then has
/// [`payloads::ROW`] and not the run-order texts themselves).
fn projection_of(
    arrow_schema: &arrow::datatypes::Schema,
    columns: &[&str],
    always: &[&str],
) -> (Option<Vec<usize>>, Vec<&'static str>) {
    let run_order = arrow_schema.index_of(payloads::ROW).is_ok();
    let texts: Vec<&'static str> = payloads::COLUMNS
        .into_iter()
        .filter(|m| run_order && (columns.is_empty() || columns.contains(m)))
        .collect();
    let mut idx: Vec<usize> = if columns.is_empty() {
        if !run_order {
            return (None, texts);
        }
        (0..arrow_schema.fields().len())
            .filter(|&i| arrow_schema.field(i).name() != payloads::TEXTS)
            .collect()
    } else {
        let row = (!texts.is_empty()).then_some(payloads::ROW);
        columns
            .iter()
            .copied()
            .chain(always.iter().copied())
            .chain(row)
            .filter_map(|c| arrow_schema.index_of(c).ok())
            .collect()
    };
    idx.sort_unstable();
    idx.dedup();
    (Some(idx), texts)
}

/// UTC day of a timestamp in ns.
pub fn day_of(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".to_owned())
}

/// Writes rows (all of one project and day) as a new part, atomically.
pub fn write_part(
    data_dir: &Path,
    id: u64,
    project: &str,
    day: &str,
    level: u8,
    mut rows: Vec<&Row>,
) -> Result<Part, Error> {
    // Span kind first: nearly every question filters on it, and clustered
    // kinds let the page index skip the pages of other kinds, including
    // their heavy input/output text; similar payloads side by side also
    // compress better. Then the workspace (the mirror columns): a
    // workspace's rows of a kind are contiguous, so a question on one
    // workspace skips the others' pages and reads whole runs of rows
    // (interleaved, its row filter left a selection too fragmented to read
    // fast). Then the status: a kind's errors in a workspace are one
    // stretch, so a question on errors (2 % of rows, about 5 in every
    // 256-row page when scattered) reads their few pages instead of
    // decoding every page for its few error rows. Time last, so windows
    // inside the day still prune, per workspace and status.
    // The key holds two map lookups: computed once per row, not twice per
    // comparison.
    type Key<'a> = (
        Option<&'static str>,
        [Option<&'a str>; MIRRORS.len()],
        Option<&'static str>,
        Option<i64>,
        &'a str,
    );
    fn key(r: &Row) -> Key<'_> {
        (
            r.span.span_kind.map(|k| k.as_str()),
            crate::mirrors::values(&r.span),
            r.span.status.map(|s| s.as_str()),
            r.span.event_time(),
            &r.span.span_id,
        )
    }
    rows.sort_by_cached_key(|r| key(r));
    let order = payloads::run_order(&rows);
    let at = payloads::positions(&order);
    let rel = format!("parts/{project}/{day}/{id:016x}.parquet");
    let path = data_dir.join(&rel);
    let (min_time, max_time) = rows
        .iter()
        .filter_map(|r| r.span.event_time())
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let min_time = if min_time == i64::MAX {
        i64::MIN
    } else {
        min_time
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(if level == 0 {
            1
        } else {
            3
        })?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_page_size_limit(DICTIONARY_BYTES)
        .set_data_page_size_limit(PAGE_BYTES)
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "loupe.schema_version".to_owned(),
            SCHEMA_VERSION.to_string(),
        )]));
    // Bloom filters on the id columns let a lookup of one run or span skip
    // every row group that cannot hold it (ids are random, so min/max
    // statistics cannot).
    let ndv = rows.len().min(ROW_GROUP_ROWS) as u64;
    let props = [column::SPAN_ID, column::TRACE_ID, column::RUN_ID]
        .into_iter()
        .fold(props, |p, c| {
            let path = ColumnPath::from(c);
            p.set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_max_ndv(path.clone(), ndv.max(1))
                .set_column_bloom_filter_fpp(path, 0.01)
        });
    // Near-unique columns: a dictionary would only fill up and fall back,
    // and a page read would then drag the whole dictionary page along.
    // (Other ids try one, within `DICTIONARY_BYTES`.) Payloads get no
    // statistics either: min/max of free text prunes nothing.
    let props = [column::SPAN_ID, payloads::ROW]
        .into_iter()
        .fold(props, |p, c| {
            p.set_column_dictionary_enabled(ColumnPath::from(c), false)
        });
    // The texts in run order (`payloads.rs`): larger pages, a stronger
    // level once compacted (a part is compacted once or twice, read many
    // times; zstd reads as fast at level 9 as at 3).
    let text_level = ZstdLevel::try_new(if level == 0 { 3 } else { 9 })?;
    let texts = payloads::texts_leaf();
    let props = props
        .set_column_dictionary_enabled(texts.clone(), false)
        .set_column_statistics_enabled(texts.clone(), EnabledStatistics::None)
        .set_column_compression(texts.clone(), Compression::ZSTD(text_level))
        .set_column_data_page_size_limit(texts, PAYLOAD_PAGE_BYTES);
    let props = UNCOMPRESSED_COLUMNS
        .into_iter()
        .chain(MIRRORS.iter().map(|m| m.column))
        .fold(props, |p, c| {
            p.set_column_compression(ColumnPath::from(c), Compression::UNCOMPRESSED)
        });
    // Run-order positions: along a kind's rows in time they climb run by
    // run, so their deltas are small.
    let props = DELTA_COLUMNS
        .into_iter()
        .chain([payloads::ROW])
        .fold(props, |p, c| {
            let path = ColumnPath::from(c);
            p.set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
                .set_column_compression(path, Compression::UNCOMPRESSED)
        })
        .build();
    // Durable: the manifest will name this file once the call returns.
    let bytes = loupe_fsutil::write_atomic_with(
        &path,
        |e| Error::io(&path, e),
        |file| {
            let mut writer = ArrowWriter::try_new(file, payloads::file_schema(), Some(props))?;
            let mut start = 0;
            while start < rows.len() {
                let end = rows.len().min(start + ROW_GROUP_ROWS);
                writer.write(&payloads::file_batch(&rows, start..end, &order, &at)?)?;
                start = end;
            }
            let file = writer.into_inner()?;
            file.metadata()
                .map(|m| m.len())
                .map_err(|e| Error::io(&path, e))
        },
    )?;
    let index = IdIndex::build(rows.iter().copied());
    Ok(Part::new(
        PartMeta {
            id,
            project: project.to_owned(),
            day: day.to_owned(),
            path: rel,
            rows: rows.len() as u64,
            bytes,
            min_time,
            max_time,
            level,
            location: Location::Hot,
            layout: LAYOUT,
        },
        path,
        index,
    ))
}

/// The columns an id index is built from.
pub(crate) const ID_COLUMNS: [&str; 4] = [
    column::SPAN_ID,
    column::TRACE_ID,
    column::RUN_ID,
    column::VERSION,
];

/// The columns a hot part's index is rebuilt from at open: the ids, the
/// start time ([`IdIndex::timed`]) and the status ([`IdIndex::error_rows`]).
const OPEN_COLUMNS: [&str; 6] = [
    column::SPAN_ID,
    column::TRACE_ID,
    column::RUN_ID,
    column::VERSION,
    column::START_TIME,
    column::STATUS,
];

/// Opens the parts the manifest names ([`open_part`], in its order), one
/// thread per core: each hot part's index is read from its file (about
/// 0.2 s for a part of a million rows), which made a store's open one
/// core's work.
pub fn open_parts(
    data_dir: &Path,
    metas: &[PartMeta],
    cold: Option<&Arc<crate::cold::Tier>>,
    read_only: bool,
) -> Result<Vec<Arc<Part>>, Error> {
    let threads = cores().min(metas.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut opened: Vec<Option<Result<Part, Error>>> = Vec::new();
    opened.resize_with(metas.len(), || None);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(meta) = metas.get(i) else { break };
                        out.push((i, open_part(data_dir, meta.clone(), cold, read_only)));
                    }
                    out
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(out) => out.into_iter().for_each(|(i, r)| opened[i] = Some(r)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    opened
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(Error::Internal("a part was not opened".into())))
                .map(Arc::new)
        })
        .collect()
}

/// Opens a part named by the manifest, rebuilding its id index: from the
/// file of a hot part; for a cold part, from its local id file
/// (`cold::ids_path`), or, when that is missing, from the part fetched
/// through the cache (the id file is then written again unless
/// `read_only`).
pub fn open_part(
    data_dir: &Path,
    meta: PartMeta,
    cold: Option<&Arc<crate::cold::Tier>>,
    read_only: bool,
) -> Result<Part, Error> {
    if meta.location == Location::Hot {
        let path = data_dir.join(&meta.path);
        let ids = read_rows(&path, None, &OPEN_COLUMNS, &DeletionVector::default())?;
        return Ok(Part::new(meta, path, IdIndex::build(ids.iter())));
    }
    let Some(tier) = cold else {
        return Err(Error::Invalid(format!(
            "part {} of the manifest is in the cold tier, but store.cold.url is not set: \
             configure the cold tier this data directory was written with",
            meta.path
        )));
    };
    let ids_path = crate::cold::ids_path(data_dir, meta.id);
    let ids = match read_rows(&ids_path, None, &ID_COLUMNS, &DeletionVector::default()) {
        Ok(ids) if ids.len() as u64 == meta.rows => ids,
        found => {
            if let Err(e) = &found {
                tracing::warn!(part = meta.id, error = %e, "id file of a cold part unreadable; rebuilding it from the part");
            }
            let local = tier.fetch(&meta)?;
            let ids = read_rows(&local, None, &ID_COLUMNS, &DeletionVector::default())?;
            if !read_only {
                write_id_file(&ids_path, &ids)?;
            }
            ids
        }
    };
    let part = Part {
        path: tier.cache.path_of(&meta.path),
        meta,
        index: Arc::new(IdIndex::build(ids.iter()).ids_only()),
        cold: Some(tier.clone()),
        reader: OnceLock::new(),
    };
    Ok(part)
}

/// Writes the id columns of a part's rows (in position order) as a small
/// Parquet file, durably: what a cold part's id index is rebuilt from at
/// open without fetching the part.
pub(crate) fn write_id_file(path: &Path, rows: &[Row]) -> Result<(), Error> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    loupe_fsutil::write_atomic_with(
        path,
        |e| Error::io(path, e),
        |file| {
            let mut writer = ArrowWriter::try_new(file, storage_schema(), Some(props))?;
            for chunk in rows.chunks(ROW_GROUP_ROWS) {
                writer.write(&rows_to_batch(chunk.iter())?)?;
            }
            writer.into_inner()?;
            Ok(())
        },
    )
}

/// Which rows of a part to read.
pub enum RowPick<'a> {
    /// Rows whose `span_id` is in the set.
    SpanIds(&'a HashSet<String>),
    /// Rows whose `trace_id` equals the value.
    Trace(&'a str),
    /// Rows whose `trace_id` or `run_id` equals the value (one run).
    TraceOrRun(&'a str),
}

impl RowPick<'_> {
    /// The id columns the pick reads, each with the values it looks for.
    fn columns(&self) -> Vec<(&'static str, HashSet<String>)> {
        let one = |v: &str| HashSet::from([v.to_owned()]);
        match self {
            RowPick::SpanIds(ids) => vec![(column::SPAN_ID, (*ids).clone())],
            RowPick::Trace(t) => vec![(column::TRACE_ID, one(t))],
            RowPick::TraceOrRun(id) => vec![(column::TRACE_ID, one(id)), (column::RUN_ID, one(id))],
        }
    }
}

/// Reads rows of a part: all (`pick = None`) or those matching `pick`,
/// except the rows `deleted` hides; `columns` empty = all columns. Without
/// a deletion vector, rows come back in position order.
pub fn read_rows(
    path: &Path,
    pick: Option<RowPick<'_>>,
    columns: &[&str],
    deleted: &DeletionVector,
) -> Result<Vec<Row>, Error> {
    let file = PartFile::open(path)?;
    let texts_file = file.clone();
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    // Row ranges of the row groups in the file, for the deletion vector.
    let group_ranges: Vec<std::ops::Range<usize>> = builder
        .metadata()
        .row_groups()
        .iter()
        .scan(0usize, |start, g| {
            let r = *start..*start + usize::try_from(g.num_rows()).unwrap_or(0);
            *start = r.end;
            Some(r)
        })
        .collect();
    let mut chosen_groups: Option<Vec<usize>> = None;
    let parquet_schema = builder.parquet_schema().clone();
    let arrow_schema = builder.schema().clone();
    let index_of = |name: &str| arrow_schema.index_of(name).ok();
    let (projection, texts) = projection_of(&arrow_schema, columns, &[]);
    if let Some(idx) = projection {
        builder = builder.with_projection(ProjectionMask::roots(&parquet_schema, idx));
    }
    if let Some(pick) = pick {
        let wanted = pick.columns();
        // Row groups whose Parquet bloom filters rule every value out are
        // skipped without decoding a page.
        let mut groups = Vec::new();
        for rg in 0..builder.metadata().num_row_groups() {
            let mut may = false;
            for (name, values) in &wanted {
                let leaf = parquet_schema
                    .columns()
                    .iter()
                    .position(|c| c.path().string() == *name);
                let bloom = match leaf {
                    Some(leaf) => builder.get_row_group_column_bloom_filter(rg, leaf)?,
                    None => None,
                };
                may |= bloom.is_none_or(|b| values.iter().any(|v| b.check(v.as_str())));
            }
            if may {
                groups.push(rg);
            }
        }
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        builder = builder.with_row_groups(groups.clone());
        chosen_groups = Some(groups);
        let cols: Vec<usize> = wanted.iter().filter_map(|(c, _)| index_of(c)).collect();
        if cols.len() != wanted.len() {
            return Ok(Vec::new());
        }
        let sets: Vec<HashSet<String>> = wanted.into_iter().map(|(_, values)| values).collect();
        // The mask yields the columns in schema order.
        let mut order: Vec<usize> = (0..cols.len()).collect();
        order.sort_by_key(|&i| cols[i]);
        let mask = ProjectionMask::roots(&parquet_schema, cols.iter().copied());
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let mut keep = arrow::array::BooleanArray::from(vec![false; batch.num_rows()]);
            for (position, &i) in order.iter().enumerate() {
                let values = batch.column(position).as_string::<i32>();
                let hit: arrow::array::BooleanArray = values
                    .iter()
                    .map(|v| Some(v.is_some_and(|v| sets[i].contains(v))))
                    .collect();
                keep = arrow::compute::or(&keep, &hit)?;
            }
            Ok(keep)
        });
        builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    }
    let ranges: Vec<_> = match &chosen_groups {
        Some(groups) => groups
            .iter()
            .filter_map(|&g| group_ranges.get(g).cloned())
            .collect(),
        None => group_ranges,
    };
    if let Some(selection) = deleted.visible_selection_in(&ranges) {
        builder = builder.with_row_selection(selection);
    }
    let footer = builder.metadata().clone();
    rows_with_texts(builder.build()?, &texts, || {
        // The footer read above, with the offset index added (the pages of
        // the positions only), rather than the file's footer parsed again.
        let mut reader = ParquetMetaDataReader::new_with_metadata(footer.as_ref().clone())
            .with_offset_index_policy(PageIndexPolicy::Optional);
        reader.read_page_indexes(&texts_file)?;
        let metadata =
            ArrowReaderMetadata::try_new(Arc::new(reader.finish()?), ArrowReaderOptions::new())?;
        Ok((texts_file, metadata))
    })
}

/// Shared, immutable list of the parts currently visible.
pub type PartList = Arc<Vec<Arc<Part>>>;

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;
    use loupe_model::{Span, SpanKind};
    use std::fs::File;

    fn none() -> DeletionVector {
        DeletionVector::default()
    }

    /// `n` rows, row `i` holding `span(i)` at version `i + 1`.
    fn rows_of(n: i64, span: impl Fn(i64) -> Span) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                span: span(i),
                version: i as u64 + 1,
            })
            .collect()
    }

    #[test]
    fn rows_are_written_by_kind_then_workspace_then_status_then_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = rows_of(40, |i| {
            let mut s = Span::new("p", format!("s{i:02}"));
            s.span_kind = Some([SpanKind::Tool, SpanKind::Workflow][i as usize % 2]);
            // Errors scattered in time, and one span without a status.
            s.status = match i % 7 {
                3 => Some(Status::Error),
                6 => None,
                _ => Some(Status::Ok),
            };
            // Workspaces interleaved in time; some spans without one.
            if i % 5 != 0 {
                let w = ["w-b", "w-a", "w-c"][i as usize % 3];
                s.attributes.insert("dify.tenant_id".into(), w.into());
                s.tags.insert("workspace".into(), w.into());
            }
            s.start_time = Some(1_700_000_000_000_000_000 + i);
            s
        });
        let part =
            write_part(dir.path(), 8, "p", "2023-11-14", 0, rows.iter().collect()).expect("write");
        assert_eq!(part.meta.layout, LAYOUT);
        let read = read_rows(&part.path, None, &[], &none()).expect("read");
        let keys: Vec<_> = read
            .iter()
            .map(|r| {
                (
                    r.span.span_kind.map(|k| k.as_str()),
                    r.span.attributes.get("dify.tenant_id").cloned(),
                    r.span.status.map(|s| s.as_str()),
                    r.span.start_time,
                )
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        // Each workspace's rows of a kind are one contiguous stretch, and
        // so are its errors within it.
        let mut stretches: Vec<_> = keys.iter().map(|k| (k.0, k.1.clone())).collect();
        stretches.dedup();
        assert_eq!(stretches.len(), 2 * 4, "{stretches:?}");
        let mut errors: Vec<_> = keys
            .iter()
            .map(|k| (k.0, k.1.clone(), k.2 == Some("error")))
            .collect();
        errors.dedup();
        let error_stretches = errors.iter().filter(|e| e.2).count();
        let groups_with_errors: std::collections::BTreeSet<_> = keys
            .iter()
            .filter(|k| k.2 == Some("error"))
            .map(|k| (k.0, k.1.clone()))
            .collect();
        assert!(error_stretches > 1, "{keys:?}");
        assert_eq!(error_stretches, groups_with_errors.len(), "{keys:?}");
    }

    #[test]
    fn part_round_trips_and_picks_rows_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rows = rows_of(10, |i| {
            let mut s = Span::new("p", format!("s{i}"));
            s.trace_id = Some(format!("t{}", i % 2));
            s.start_time = Some(1_700_000_000_000_000_000 + i);
            s
        });
        let part =
            write_part(dir.path(), 7, "p", "2023-11-14", 0, rows.iter().collect()).expect("write");
        assert_eq!(part.meta.rows, 10);
        assert!(part.index.may_contain(IdKind::Span, "s3"));
        assert!(part.index.may_contain(IdKind::Trace, "t1"));
        assert!(!part.index.may_contain(IdKind::Span, "nope"));
        let all = read_rows(&part.path, None, &[], &none()).expect("read");
        assert_eq!(all, rows);
        let ids = ["s2".to_owned(), "s5".to_owned()].into_iter().collect();
        let picked =
            read_rows(&part.path, Some(RowPick::SpanIds(&ids)), &[], &none()).expect("pick");
        assert_eq!(picked.len(), 2);
        let trace = read_rows(&part.path, Some(RowPick::Trace("t1")), &[], &none()).expect("trace");
        assert_eq!(trace.len(), 5);
        // The id columns carry Parquet bloom filters (row-group skipping).
        let file = File::open(&part.path).expect("part file");
        let meta = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .metadata()
            .clone();
        let cols = meta.row_group(0).columns();
        for name in [column::SPAN_ID, column::TRACE_ID, column::RUN_ID] {
            let col = cols
                .iter()
                .find(|c| c.column_path().string() == name)
                .expect("column");
            assert!(
                col.bloom_filter_offset().is_some(),
                "{name} has no bloom filter"
            );
        }
        // Times and durations: delta-encoded, no zstd.
        for name in DELTA_COLUMNS {
            let col = cols
                .iter()
                .find(|c| c.column_path().string() == name)
                .expect("column");
            assert_eq!(col.compression(), Compression::UNCOMPRESSED, "{name}");
            assert!(
                col.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED),
                "{name}: {:?}",
                col.encodings().collect::<Vec<_>>()
            );
        }
        // One trace read through the position index: exactly its rows.
        let mut by_index = part
            .read_run(RowPick::Trace("t1"), &none(), None)
            .expect("read run");
        by_index.sort_by_key(|r| r.version);
        assert_eq!(by_index, trace);
        let reopened = open_part(dir.path(), part.meta.clone(), None, false).expect("open");
        assert!(reopened.index.may_contain(IdKind::Span, "s9"));
        assert_eq!(day_of(1_700_000_000_000_000_000), "2023-11-14");
    }

    /// The texts are stored in run order (`payloads.rs`), out of the rows'
    /// order: the file has no `input`/`output`, a run's texts are one
    /// stretch of `_payload`, and every read gives each row its own
    /// texts back: whole, by columns, by id and by position.
    #[test]
    fn texts_are_stored_in_run_order_and_read_back_per_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kinds = [SpanKind::Workflow, SpanKind::Llm, SpanKind::Tool];
        // 300 runs of 6 spans (2 workflow spans, roots, and 4 children),
        // runs interleaved in time; some spans without texts, one without
        // a run or trace.
        let is_head = |i: i64| (i / 300) % 3 == 0;
        let rows = rows_of(1801, |i| {
            let mut s = Span::new("p", format!("s{i:04}"));
            if i < 1800 {
                s.run_id = Some(format!("run-{}", i % 300));
                s.trace_id = s.run_id.clone();
                if !is_head(i) {
                    s.parent_span_id = Some(format!("s{:04}", i % 300));
                }
            }
            s.span_kind = Some(kinds[(i as usize / 300) % 3]);
            s.start_time = Some(1_700_000_000_000_000_000 + i * 1_000);
            if i == 1800 {
                s.input = Some("input of no run".to_owned());
            } else if i % 7 != 0 {
                s.input = Some(format!("input of {i} in run {}", i % 300));
            }
            if i % 5 != 0 {
                s.output = Some(format!("output {i}"));
            }
            s
        });
        let part =
            write_part(dir.path(), 3, "p", "2023-11-14", 1, rows.iter().collect()).expect("write");
        assert_eq!(part.meta.layout, LAYOUT_PAYLOADS);
        let file = File::open(&part.path).expect("open");
        let raw: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .build()
            .expect("build")
            .map(|b| b.expect("batch"))
            .collect();
        let schema = raw[0].schema();
        assert!(schema.index_of(column::INPUT).is_err());
        assert!(schema.index_of(column::OUTPUT).is_err());
        // Run order: each run's inputs are one contiguous stretch, each
        // list `[input, output]`.
        let inputs: Vec<Option<String>> = raw
            .iter()
            .flat_map(|b| {
                let lists = b.column_by_name(payloads::TEXTS).expect("texts");
                let lists = lists.as_list::<i32>();
                (0..lists.len())
                    .map(|k| {
                        let pair = lists.value(k);
                        let pair = pair.as_string::<i32>();
                        assert_eq!(pair.len(), 2);
                        pair.is_valid(0).then(|| pair.value(0).to_owned())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(inputs.len(), rows.len());
        // The runs' own spans first (workflows, roots), then the others;
        // in each, a run's texts are one stretch.
        let (mut heads, mut runs) = (Vec::new(), Vec::new());
        for text in inputs.iter().flatten() {
            let Some((i, run)) = text
                .strip_prefix("input of ")
                .and_then(|t| t.split_once(" in run "))
            else {
                continue;
            };
            heads.push(is_head(i.parse().expect("span number")));
            runs.push(run);
        }
        let split = heads.iter().position(|h| !h).expect("children");
        assert!(heads[..split].iter().all(|h| *h) && heads[split..].iter().all(|h| !h));
        let mut stretches = runs.clone();
        stretches.dedup();
        assert_eq!(stretches.len(), 2 * 300, "runs split: {}", stretches.len());
        // The writer's settings reach the texts' leaf: zstd, no dictionary.
        let file = File::open(&part.path).expect("open");
        let meta = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("reader")
            .metadata()
            .clone();
        let leaf = meta
            .row_group(0)
            .columns()
            .iter()
            .find(|c| *c.column_path() == payloads::texts_leaf())
            .expect("texts leaf");
        assert!(matches!(leaf.compression(), Compression::ZSTD(_)));
        assert!(
            !leaf
                .encodings()
                .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY)),
            "{:?}",
            leaf.encodings().collect::<Vec<_>>()
        );
        let by_version = |mut v: Vec<Row>| {
            v.sort_by_key(|r| r.version);
            v
        };
        let all = by_version(read_rows(&part.path, None, &[], &none()).expect("read"));
        assert_eq!(all, rows);
        let texts = by_version(
            read_rows(
                &part.path,
                None,
                &[column::SPAN_ID, column::VERSION, column::OUTPUT],
                &none(),
            )
            .expect("output only"),
        );
        for (got, want) in texts.iter().zip(&rows) {
            assert_eq!(got.span.output, want.span.output);
            assert_eq!(got.span.input, None);
        }
        let run = by_version(
            part.read_run(RowPick::TraceOrRun("run-17"), &none(), None)
                .expect("run"),
        );
        let want: Vec<Row> = rows
            .iter()
            .filter(|r| r.span.run_id.as_deref() == Some("run-17"))
            .cloned()
            .collect();
        assert_eq!(run, want);
        // Hidden rows are skipped, the others keep their own texts.
        let mut hidden = DeletionVector::default();
        hidden.insert(0);
        hidden.insert(900);
        let visible = read_rows(&part.path, None, &[column::SPAN_ID, column::INPUT], &hidden)
            .expect("visible");
        assert_eq!(visible.len(), rows.len() - 2);
        for r in &visible {
            let want = &rows[r.span.span_id[1..].parse::<usize>().expect("id")];
            assert_eq!(r.span.input, want.span.input, "{}", r.span.span_id);
        }
        let positions: Vec<u32> = (0..1801).step_by(13).collect();
        let picked = part
            .read_positions(&positions, &[column::INPUT, column::OUTPUT], None)
            .expect("positions");
        assert_eq!(picked.len(), positions.len());
        for r in &picked {
            let want = &rows[r.span.span_id[1..].parse::<usize>().expect("id")];
            assert_eq!(
                (&r.span.input, &r.span.output),
                (&want.span.input, &want.span.output)
            );
        }
    }

    /// Spread over several row groups and sorted away from insertion order:
    /// the selection must land on exactly the rows of the run, by trace id
    /// and by a run id that differs from it.
    #[test]
    fn run_rows_are_read_by_position_across_row_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = ROW_GROUP_ROWS + ROW_GROUP_ROWS / 2;
        let kinds = [loupe_model::SpanKind::Llm, loupe_model::SpanKind::Tool];
        let rows = rows_of(n as i64, |i| {
            let mut s = Span::new("p", format!("s{i}"));
            s.trace_id = Some(format!("t{}", i % 5000));
            s.run_id = Some(format!("r{}", i % 5000));
            s.span_kind = Some(kinds[i as usize % 2]);
            s.start_time = Some(1_700_000_000_000_000_000 + i);
            s.input = Some(format!("question {i}"));
            s
        });
        let part =
            write_part(dir.path(), 1, "p", "2023-11-14", 1, rows.iter().collect()).expect("write");
        let expect = |t: usize| -> Vec<Row> {
            rows.iter()
                .filter(|r| r.span.trace_id.as_deref() == Some(&format!("t{t}")))
                .cloned()
                .collect()
        };
        let reopened = open_part(dir.path(), part.meta.clone(), None, false).expect("open");
        for p in [&part, &reopened] {
            for t in [0, 7, 4999] {
                let mut got = p
                    .read_run(RowPick::Trace(&format!("t{t}")), &none(), None)
                    .expect("by trace");
                got.sort_by_key(|r| r.version);
                assert_eq!(got, expect(t), "trace t{t}");
                // Rows of one trace sit in both row groups.
                assert!(got.iter().any(|r| r.version as usize <= ROW_GROUP_ROWS));
                assert!(got.iter().any(|r| r.version as usize > ROW_GROUP_ROWS));
                let mut by_run = p
                    .read_run(RowPick::TraceOrRun(&format!("r{t}")), &none(), None)
                    .expect("by run");
                by_run.sort_by_key(|r| r.version);
                assert_eq!(by_run, expect(t), "run r{t}");
            }
            assert!(
                p.read_run(RowPick::Trace("t5000"), &none(), None)
                    .expect("none")
                    .is_empty()
            );
            assert!(p.index.may_contain(IdKind::Run, "r12"));
            assert!(!p.index.may_contain(IdKind::Trace, "nope"));
        }
        // The read above split the columns between two threads (on more
        // than one core); the split covers every column once.
        let file = PartFile::open(&part.path).expect("file");
        let metadata = part.reader_metadata(&file, None).expect("metadata");
        let roots: Vec<usize> = (0..metadata.schema().fields().len()).collect();
        let (a, b) = split_columns(&metadata, &[0, 1], roots.clone(), 2);
        let b = b.expect("two sets on two cores");
        assert!(!a.is_empty() && !b.is_empty());
        let mut both: Vec<usize> = a.iter().chain(&b).copied().collect();
        both.sort_unstable();
        assert_eq!(both, roots);
        assert_eq!(
            split_columns(&metadata, &[0, 1], roots.clone(), 1),
            (roots, None)
        );
    }
}
