//! Log parts: immutable Parquet files of log records, one (project, UTC
//! day) each, sorted by time, at `logs/parts/<project>/<day>/<id>.parquet`;
//! and the conversion between [`LogRecord`]s and Arrow batches.
//!
//! Each open part keeps its run index in memory: the sorted 32-bit
//! fingerprints of its `trace_id` and `run_id` values with their row
//! positions, so a run's logs are read as a row selection of the pages that
//! hold them, as the span parts do.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::Hasher;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampNanosecondArray, UInt8Array,
};
use arrow::datatypes::{TimestampNanosecondType, UInt8Type};
use loupe_backend::LogQuery;
use loupe_model::{LOG_SCHEMA_VERSION, LogRecord, log_column as col, log_schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
    RowFilter, RowSelection,
};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use parquet::schema::types::SchemaDescriptor;
use serde::{Deserialize, Serialize};

use super::TopK;
use crate::Error;
use crate::wal::io_err;

const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Small pages, as in span parts: a run's few lines are read as the pages
/// that hold them.
const PAGE_ROWS: usize = 1_024;
/// Rows per batch when reading.
const READ_BATCH: usize = 4_096;

/// What the log manifest records about a part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct LogPartMeta {
    pub id: u64,
    pub project: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Path relative to the data directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Smallest and largest record time (ns).
    pub min_time: i64,
    pub max_time: i64,
}

/// An open part.
pub(crate) struct LogPart {
    pub meta: LogPartMeta,
    pub path: PathBuf,
    /// (fingerprint of a trace or run id, row), sorted.
    ids: Vec<(u32, u32)>,
    /// The [`es_key`]s of its records that carry an Elasticsearch `_id`,
    /// sorted: set when the part is written, read from the part the first
    /// time a duplicate is looked for in it (opened parts).
    es_keys: OnceLock<Vec<u64>>,
}

/// The key of a record's Elasticsearch `_id` within its project and
/// stream, if it has one. In memory only (rebuilt at open), like
/// [`fingerprint`]; two ids sharing a key (about 2^-64 per pair) would make
/// the later one a duplicate.
pub(crate) fn es_key(r: &LogRecord) -> Option<u64> {
    let id = r.attributes.get(loupe_model::ES_ID)?;
    Some(es_key_of(&r.project, r.stream.as_deref(), id))
}

fn es_key_of(project: &str, stream: Option<&str>, id: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for part in [project, stream.unwrap_or_default(), id] {
        h.write(part.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// A 32-bit fingerprint of an id. The index lives in memory only (rebuilt
/// at open), so `DefaultHasher::new()`'s fixed keys, stable within one
/// build, suffice; a collision only reads a row the filter then drops.
fn fingerprint(id: &str) -> u32 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(id.as_bytes());
    h.finish() as u32
}

impl LogPart {
    fn new(meta: LogPartMeta, path: PathBuf, records: &[LogRecord]) -> Self {
        let mut ids = Vec::new();
        for (row, r) in records.iter().enumerate() {
            let row = u32::try_from(row).unwrap_or(u32::MAX);
            for id in [&r.trace_id, &r.run_id].into_iter().flatten() {
                ids.push((fingerprint(id), row));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let mut keys: Vec<u64> = records.iter().filter_map(es_key).collect();
        keys.sort_unstable();
        Self {
            meta,
            path,
            ids,
            es_keys: OnceLock::from(keys),
        }
    }

    /// Whether a record of the part carries the Elasticsearch `_id` key
    /// `key` (reading the part's stream and attributes once).
    pub fn has_es_key(&self, key: u64) -> Result<bool, Error> {
        if let Some(keys) = self.es_keys.get() {
            return Ok(keys.binary_search(&key).is_ok());
        }
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let schema = builder.parquet_schema().clone();
        let roots = leaves(&schema, &[col::STREAM, col::ATTRIBUTES]);
        let reader = builder
            .with_projection(ProjectionMask::roots(&schema, roots))
            .build()?;
        let lacks = |name: &str| Error::Internal(format!("log part lacks column {name}"));
        let mut keys = Vec::new();
        // Cheap before parsing: only a map text naming the key can hold it.
        let needle = format!("\"{}\":", loupe_model::ES_ID);
        for batch in reader {
            let batch = batch?;
            let streams = texts(&batch, col::STREAM).ok_or_else(|| lacks(col::STREAM))?;
            let attrs = texts(&batch, col::ATTRIBUTES).ok_or_else(|| lacks(col::ATTRIBUTES))?;
            for i in 0..batch.num_rows() {
                let text = attrs.value(i);
                if !text.contains(&needle) {
                    continue;
                }
                let map: BTreeMap<String, String> = serde_json::from_str(text).unwrap_or_default();
                if let Some(id) = map.get(loupe_model::ES_ID) {
                    let stream = streams.is_valid(i).then(|| streams.value(i));
                    keys.push(es_key_of(&self.meta.project, stream, id));
                }
            }
        }
        keys.sort_unstable();
        let found = keys.binary_search(&key).is_ok();
        // Another check may have set it meanwhile; the keys are the same.
        let _ = self.es_keys.set(keys);
        Ok(found)
    }

    /// Rows that may hold `id` as trace or run id, as ascending ranges.
    pub fn run_rows(&self, id: &str) -> Vec<Range<usize>> {
        let fp = fingerprint(id);
        let start = self.ids.partition_point(|(f, _)| *f < fp);
        let mut rows: Vec<usize> = self.ids[start..]
            .iter()
            .take_while(|(f, _)| *f == fp)
            .map(|(_, r)| *r as usize)
            .collect();
        rows.sort_unstable();
        rows.into_iter().map(|r| r..r + 1).collect()
    }

    /// Reads the part's records, all or only the rows in `ranges`
    /// (ascending, in bounds).
    pub fn read(&self, ranges: Option<Vec<Range<usize>>>) -> Result<Vec<LogRecord>, Error> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        let mut builder =
            ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(READ_BATCH);
        if let Some(ranges) = ranges {
            if ranges.is_empty() {
                return Ok(Vec::new());
            }
            let total = usize::try_from(self.meta.rows).unwrap_or(usize::MAX);
            builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
                ranges.into_iter(),
                total,
            ));
        }
        let mut out = Vec::new();
        for batch in builder.build()? {
            out.extend(from_batch(&batch?)?);
        }
        Ok(out)
    }

    /// The rows of a search in this part, newest row group first, into
    /// `top`: only `ranges` (ascending, in bounds; all: `None`), and of
    /// those only the rows whose severity, service, stream and time pass
    /// `q` are decoded whole (a Parquet row filter reads those four columns
    /// first, so a selective filter skips the body and maps of every other
    /// row). Row groups outside `q`'s time range are skipped, and the
    /// search stops at the first group `top` is already full before.
    /// Returns the rows decoded whole.
    pub fn search(
        &self,
        ranges: Option<Vec<Range<usize>>>,
        q: &LogQuery,
        top: &mut TopK,
    ) -> Result<u64, Error> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())?;
        let parquet_schema = metadata.metadata().file_metadata().schema_descr_ptr();
        let time_leaf = leaves(&parquet_schema, &[col::TIME]).first().copied();
        let groups = metadata.metadata().row_groups();
        let mut starts = Vec::with_capacity(groups.len());
        let mut at = 0usize;
        for g in groups {
            starts.push(at);
            at += usize::try_from(g.num_rows()).unwrap_or(0);
        }
        let mut decoded = 0u64;
        for g in (0..groups.len()).rev() {
            let window = starts[g]..starts[g] + usize::try_from(groups[g].num_rows()).unwrap_or(0);
            let (min, max) = time_leaf
                .and_then(|leaf| match groups[g].column(leaf).statistics() {
                    Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
                    _ => None,
                })
                .unwrap_or((self.meta.min_time, self.meta.max_time));
            if q.from.is_some_and(|f| max < f) {
                // Groups are in time order: every earlier one is older.
                break;
            }
            if q.to.is_some_and(|t| min >= t) {
                continue;
            }
            if top.full_before(max) {
                break;
            }
            let local: Option<Vec<Range<usize>>> = ranges.as_ref().map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let (s, e) = (r.start.max(window.start), r.end.min(window.end));
                        (s < e).then(|| s - window.start..e - window.start)
                    })
                    .collect()
            });
            if local.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            let file = file.try_clone().map_err(io_err(&self.path))?;
            let mut builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
                    .with_batch_size(READ_BATCH)
                    .with_row_groups(vec![g]);
            if let Some(local) = local {
                builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(
                    local.into_iter(),
                    window.len(),
                ));
            }
            if let Some(filter) = cheap_filter(&parquet_schema, q) {
                builder = builder.with_row_filter(filter);
            }
            for batch in builder.build()? {
                for r in from_batch(&batch?)? {
                    decoded += 1;
                    if q.matches(&r) {
                        top.push(r);
                    }
                }
            }
        }
        Ok(decoded)
    }

    /// Counts the part's records into the `/metrics` counters, reading
    /// only their arrival time, severity and service (a start).
    pub fn seed_counts(
        &self,
        counts: &loupe_rollup::logs::LogCounts,
        now_ns: i64,
    ) -> Result<(), Error> {
        let file = File::open(&self.path).map_err(io_err(&self.path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let schema = builder.parquet_schema().clone();
        let roots = leaves(
            &schema,
            &[col::OBSERVED_TIME, col::SEVERITY_NUMBER, col::SERVICE],
        );
        let reader = builder
            .with_projection(ProjectionMask::roots(&schema, roots))
            .build()?;
        let lacks = |name: &str| Error::Internal(format!("log part lacks column {name}"));
        for batch in reader {
            let batch = batch?;
            let observed =
                times(&batch, col::OBSERVED_TIME).ok_or_else(|| lacks(col::OBSERVED_TIME))?;
            let severity = severities(&batch).ok_or_else(|| lacks(col::SEVERITY_NUMBER))?;
            let service = texts(&batch, col::SERVICE).ok_or_else(|| lacks(col::SERVICE))?;
            counts.seed(
                (0..batch.num_rows()).map(|i| loupe_rollup::logs::Stored {
                    project: &self.meta.project,
                    service: service.is_valid(i).then(|| service.value(i)),
                    severity_number: severity.value(i),
                    observed_ns: observed.value(i),
                }),
                now_ns,
            );
        }
        Ok(())
    }
}

/// `q`'s tests on the small columns (time, severity, service, stream) as a
/// Parquet row filter; `None` when it has none. Rows it keeps still go
/// through [`LogQuery::matches`].
fn cheap_filter(schema: &SchemaDescriptor, q: &LogQuery) -> Option<RowFilter> {
    if q.from.is_none()
        && q.to.is_none()
        && q.min_severity.is_none()
        && q.service.is_none()
        && q.stream.is_none()
    {
        return None;
    }
    let roots = leaves(
        schema,
        &[col::TIME, col::SEVERITY_NUMBER, col::SERVICE, col::STREAM],
    );
    let mask = ProjectionMask::roots(schema, roots);
    let (from, to, min) = (q.from, q.to, q.min_severity);
    let (service, stream) = (q.service.clone(), q.stream.clone());
    let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let missing = |name: &str| {
            arrow::error::ArrowError::SchemaError(format!("log part lacks column {name}"))
        };
        let time = times(&batch, col::TIME).ok_or_else(|| missing(col::TIME))?;
        let severity = severities(&batch).ok_or_else(|| missing(col::SEVERITY_NUMBER))?;
        let services = texts(&batch, col::SERVICE).ok_or_else(|| missing(col::SERVICE))?;
        let streams = texts(&batch, col::STREAM).ok_or_else(|| missing(col::STREAM))?;
        let same = |want: &Option<String>, have: &arrow::array::StringArray, i: usize| {
            want.as_deref()
                .is_none_or(|w| have.is_valid(i) && have.value(i) == w)
        };
        Ok((0..batch.num_rows())
            .map(|i| {
                let t = time.value(i);
                Some(
                    from.is_none_or(|f| t >= f)
                        && to.is_none_or(|e| t < e)
                        && min.is_none_or(|m| severity.value(i) >= m)
                        && same(&service, services, i)
                        && same(&stream, streams, i),
                )
            })
            .collect::<arrow::array::BooleanArray>())
    });
    Some(RowFilter::new(vec![Box::new(predicate)]))
}

/// The leaf positions of the top-level columns `names` (those present).
fn leaves(schema: &SchemaDescriptor, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .filter_map(|name| {
            schema
                .columns()
                .iter()
                .position(|c| c.path().string() == *name)
        })
        .collect()
}

/// A batch's timestamp column `name`, if it has one.
fn times<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a TimestampNanosecondArray> {
    batch
        .column_by_name(name)?
        .as_primitive_opt::<TimestampNanosecondType>()
}

/// A batch's severity numbers, if it has them.
fn severities(batch: &RecordBatch) -> Option<&UInt8Array> {
    batch
        .column_by_name(col::SEVERITY_NUMBER)?
        .as_primitive_opt::<UInt8Type>()
}

/// A batch's text column `name`, if it has one.
fn texts<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a arrow::array::StringArray> {
    batch.column_by_name(name)?.as_string_opt::<i32>()
}

/// Writes records (one project and day) as a new part, atomically; the
/// manifest names it only after this returns.
pub(crate) fn write_part(
    data_dir: &Path,
    id: u64,
    project: &str,
    day: &str,
    mut records: Vec<LogRecord>,
) -> Result<LogPart, Error> {
    records.sort_by_key(|r| r.time);
    let rel = format!("logs/parts/{project}/{day}/{id:016x}.parquet");
    let path = data_dir.join(&rel);
    let min_time = records.first().map_or(i64::MIN, |r| r.time);
    let max_time = records.last().map_or(i64::MIN, |r| r.time);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "loupe.log_schema_version".to_owned(),
            LOG_SCHEMA_VERSION.to_string(),
        )]))
        .set_column_statistics_enabled(ColumnPath::from(col::BODY), EnabledStatistics::None)
        .set_column_dictionary_enabled(ColumnPath::from(col::BODY), false)
        .build();
    let bytes = loupe_fsutil::write_atomic_with(
        &path,
        |e| Error::io(&path, e),
        |file| {
            let mut writer = ArrowWriter::try_new(file, log_schema(), Some(props))?;
            for chunk in records.chunks(ROW_GROUP_ROWS) {
                writer.write(&to_batch(chunk)?)?;
            }
            let file = writer.into_inner()?;
            file.metadata()
                .map(|m| m.len())
                .map_err(|e| Error::io(&path, e))
        },
    )?;
    let meta = LogPartMeta {
        id,
        project: project.to_owned(),
        day: day.to_owned(),
        path: rel,
        rows: records.len() as u64,
        bytes,
        min_time,
        max_time,
    };
    Ok(LogPart::new(meta, path, &records))
}

/// Opens a part the manifest names, rebuilding its run index from its id
/// columns.
pub(crate) fn open_part(data_dir: &Path, meta: LogPartMeta) -> Result<LogPart, Error> {
    let path = data_dir.join(&meta.path);
    let file = File::open(&path).map_err(io_err(&path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let schema = builder.parquet_schema().clone();
    let arrow = builder.schema().clone();
    let cols: Vec<usize> = [col::TRACE_ID, col::RUN_ID]
        .iter()
        .filter_map(|c| arrow.index_of(c).ok())
        .collect();
    let reader = builder
        .with_projection(ProjectionMask::roots(&schema, cols))
        .build()?;
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch?;
        let trace = batch.column(0).as_string::<i32>();
        let run = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let mut r = LogRecord::new("", 0, "");
            r.trace_id = trace.is_valid(i).then(|| trace.value(i).to_owned());
            r.run_id = run.is_valid(i).then(|| run.value(i).to_owned());
            records.push(r);
        }
    }
    if records.len() as u64 != meta.rows {
        return Err(Error::Corrupt {
            path,
            offset: 0,
            reason: format!(
                "log part holds {} rows, the manifest says {}",
                records.len(),
                meta.rows
            ),
        });
    }
    let mut part = LogPart::new(meta, path, &records);
    // Opened from ids only: its `_id` keys are read when first needed.
    part.es_keys = OnceLock::new();
    Ok(part)
}

fn json_text(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

/// Records → one Arrow batch of [`log_schema`].
pub(crate) fn to_batch(records: &[LogRecord]) -> Result<RecordBatch, Error> {
    let strings = |f: &dyn Fn(&LogRecord) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(records.len(), records.len() * 16);
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let time = |f: &dyn Fn(&LogRecord) -> i64| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from(records.iter().map(f).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|r| Some(r.project.as_str())),
        time(&|r| r.time),
        time(&|r| r.observed_time),
        Arc::new(UInt8Array::from(
            records
                .iter()
                .map(|r| r.severity_number)
                .collect::<Vec<_>>(),
        )),
        strings(&|r| r.severity_text.as_deref()),
        strings(&|r| Some(r.body.as_str())),
        strings(&|r| r.service.as_deref()),
        strings(&|r| r.stream.as_deref()),
        strings(&|r| r.trace_id.as_deref()),
        strings(&|r| r.span_id.as_deref()),
        strings(&|r| r.run_id.as_deref()),
        Arc::new(
            records
                .iter()
                .map(|r| Some(json_text(&r.attributes)))
                .collect::<arrow::array::StringArray>(),
        ),
        Arc::new(
            records
                .iter()
                .map(|r| Some(json_text(&r.resource)))
                .collect::<arrow::array::StringArray>(),
        ),
    ];
    Ok(RecordBatch::try_new(log_schema(), columns)?)
}

/// One Arrow batch of [`log_schema`] → records.
pub(crate) fn from_batch(batch: &RecordBatch) -> Result<Vec<LogRecord>, Error> {
    let column = |name: &str| -> Result<&ArrayRef, Error> {
        batch
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("log part lacks column {name}")))
    };
    let string = |name: &str| -> Result<&arrow::array::StringArray, Error> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::Internal(format!("log column {name} is not text")))
    };
    let times = |name: &str| -> Result<&TimestampNanosecondArray, Error> {
        column(name)?
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| Error::Internal(format!("log column {name} is not a timestamp")))
    };
    let (project, body) = (string(col::PROJECT)?, string(col::BODY)?);
    let (time, observed) = (times(col::TIME)?, times(col::OBSERVED_TIME)?);
    let severity = column(col::SEVERITY_NUMBER)?
        .as_primitive_opt::<UInt8Type>()
        .ok_or_else(|| Error::Internal("log column severity_number is not u8".into()))?;
    let opt =
        |a: &arrow::array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_owned());
    let map = |a: &arrow::array::StringArray, i: usize| -> BTreeMap<String, String> {
        serde_json::from_str(a.value(i)).unwrap_or_default()
    };
    let (sev_text, service, stream) = (
        string(col::SEVERITY_TEXT)?,
        string(col::SERVICE)?,
        string(col::STREAM)?,
    );
    let (trace, span, run) = (
        string(col::TRACE_ID)?,
        string(col::SPAN_ID)?,
        string(col::RUN_ID)?,
    );
    let (attrs, resource) = (string(col::ATTRIBUTES)?, string(col::RESOURCE)?);
    Ok((0..batch.num_rows())
        .map(|i| LogRecord {
            project: project.value(i).to_owned(),
            time: time.value(i),
            observed_time: observed.value(i),
            severity_number: severity.value(i),
            severity_text: opt(sev_text, i),
            body: body.value(i).to_owned(),
            service: opt(service, i),
            stream: opt(stream, i),
            trace_id: opt(trace, i),
            span_id: opt(span, i),
            run_id: opt(run, i),
            attributes: map(attrs, i),
            resource: map(resource, i),
        })
        .collect())
}
