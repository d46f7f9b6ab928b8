//! Payloads in run order: how a part of layout [`crate::parts::LAYOUT_PAYLOADS`]
//! holds `input` and `output`.
//!
//! A part's rows are sorted for questions: by span kind, workspace and time
//! (`parts::write_part`). That order scatters one run's texts over the
//! part, yet they repeat each other (a workflow's input is its start node's
//! output, an LLM's prompt quotes the retrieval before it): in run order
//! the same text compresses 1.7× better than in the parts' order (the
//! bench's 100k Dify runs: 4.0× → 6.8×, 166 → 97 MB; docs/BENCHMARKS.md,
//! stop 30), and one run's texts are one stretch of pages instead of one
//! place per kind.
//!
//! So the file keeps the two texts out of the rows' order, in the same
//! Parquet file (one file per part: the cold tier, backups, retention and
//! the deletion queue handle it as before):
//!
//! - `_payload` (a list of two texts, `[input, output]`): the texts of the
//!   part's rows in *run order* (the runs' own spans first, then the
//!   others; runs by their first time, a run's spans by time). Row `j` of
//!   this column is not row `j` of the others. One
//!   column, not two: a node's output is the next node's input, and side by
//!   side in one column's pages they compress 7.5× instead of 4.7× (stop 30,
//!   a day of the bench's Dify traffic, 256-span pages, zstd 9).
//! - `_payload_row` (row order): where row `i`'s texts are in run order.
//!
//! The model's `input` and `output` columns are absent from such a file, so
//! a reader that does not know the layout sees them null, never another
//! row's text. Outside readers join on the row number (docs/STORAGE.md).
//! Inside, [`gather`] reads the texts at a set of run-order positions (only
//! the pages holding them): `parts::read_rows` and `Part::read_positions`
//! fill rows with it, and `table.rs` puts it under a scan that projects a
//! payload (`PayloadExec`).

use crate::part_file::PartFile;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, ListArray, ListBuilder, RecordBatch, StringArray, StringBuilder, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::Expr;
use loupe_model::{SpanKind, column};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection,
};

use crate::Error;

mod exec;
use crate::convert::{Row, rows_to_batch_without_texts};
use crate::mirrors::storage_schema;
pub(crate) use exec::{PART, PayloadExec, Source};

/// The row-order column: each row's position in run order.
pub(crate) const ROW: &str = "_payload_row";

/// The run-order column: per row, the list `[input, output]`.
pub(crate) const TEXTS: &str = "_payload";

/// The model's payload columns, in their order within a [`TEXTS`] list.
pub(crate) const COLUMNS: [&str; 2] = [column::INPUT, column::OUTPUT];

/// Whether `name` is one of the model's payload columns.
pub(crate) fn is_payload(name: &str) -> bool {
    COLUMNS.contains(&name)
}

/// The Parquet path of the [`TEXTS`] column's values (for writer settings).
pub(crate) fn texts_leaf() -> parquet::schema::types::ColumnPath {
    parquet::schema::types::ColumnPath::new(vec![
        TEXTS.to_owned(),
        "list".to_owned(),
        "item".to_owned(),
    ])
}

fn texts_field() -> Field {
    Field::new(
        TEXTS,
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        false,
    )
}

/// Whether `e` reads a payload column.
pub(crate) fn names_a_payload(e: &Expr) -> bool {
    e.column_refs().iter().any(|c| is_payload(&c.name))
}

/// The schema of a layout-2 file: the store's columns without the
/// payloads, then [`ROW`] and [`TEXTS`].
pub(crate) fn file_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let storage = storage_schema();
            let mut fields: Vec<Field> = storage
                .fields()
                .iter()
                .filter(|f| !is_payload(f.name()))
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(ROW, DataType::UInt32, false));
            fields.push(texts_field());
            Arc::new(Schema::new_with_metadata(
                fields,
                storage.metadata().clone(),
            ))
        })
        .clone()
}

/// Whether a row's texts go to the head of the run order: a run's own span
/// (a workflow, or a root: no parent). Their texts are what listings show
/// and searches ask most ("runs whose query contains …"): at the head they
/// are a few pages of their own, not a few texts in every page (the bench's
/// `input contains "refund"` on workflows: 5× slower without this). They
/// compress 9 % worse apart from their nodes (6.8× instead of 7.5×).
fn heads_first(r: &Row) -> bool {
    r.span.span_kind == Some(SpanKind::Workflow) || r.span.parent_span_id.is_none()
}

/// The run order of `rows` (given in the part's row order): element `j` is
/// the row whose texts are `j`-th. Runs' own spans first ([`heads_first`]),
/// then the others; in each, runs (run id, else trace id) by their first
/// time in the part, a run's rows by time; a row of neither stands alone at
/// its time.
pub(crate) fn run_order(rows: &[&Row]) -> Vec<u32> {
    fn run(r: &Row) -> Option<&str> {
        r.span.run_id.as_deref().or(r.span.trace_id.as_deref())
    }
    let mut first: foldhash::HashMap<&str, i64> = foldhash::HashMap::default();
    for r in rows {
        if let (Some(run), Some(t)) = (run(r), r.span.event_time()) {
            first
                .entry(run)
                .and_modify(|f| *f = (*f).min(t))
                .or_insert(t);
        }
    }
    let key = |i: u32| {
        let r = rows[i as usize];
        let time = r.span.event_time().unwrap_or(i64::MIN);
        let run = run(r);
        let first = run.and_then(|k| first.get(k).copied()).unwrap_or(time);
        (!heads_first(r), first, run.unwrap_or(""), time, i)
    };
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_by_cached_key(|&i| key(i));
    order
}

/// The inverse of [`run_order`]: element `i` is row `i`'s position in run
/// order.
pub(crate) fn positions(order: &[u32]) -> Vec<u32> {
    let mut at = vec![0u32; order.len()];
    for (j, &i) in order.iter().enumerate() {
        at[i as usize] = j as u32;
    }
    at
}

/// The file batch of rows `range` (row order): their columns, their run
/// order positions, and the texts of run-order rows `range`.
pub(crate) fn file_batch(
    rows: &[&Row],
    range: std::ops::Range<usize>,
    order: &[u32],
    at: &[u32],
) -> Result<RecordBatch, Error> {
    let core = rows_to_batch_without_texts(rows[range.clone()].iter().copied())?;
    let n = range.len();
    let bytes: usize = order[range.clone()]
        .iter()
        .map(|&i| {
            let s = &rows[i as usize].span;
            s.input.as_ref().map_or(0, String::len) + s.output.as_ref().map_or(0, String::len)
        })
        .sum();
    let mut texts = ListBuilder::with_capacity(StringBuilder::with_capacity(2 * n, bytes), n)
        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    for &i in &order[range.clone()] {
        let s = &rows[i as usize].span;
        texts.values().append_option(s.input.as_deref());
        texts.values().append_option(s.output.as_deref());
        texts.append(true);
    }
    let texts: ArrayRef = Arc::new(texts.finish());
    let schema = file_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let c = match f.name().as_str() {
            ROW => Arc::new(UInt32Array::from(at[range.clone()].to_vec())) as ArrayRef,
            TEXTS => texts.clone(),
            name => core
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("row batch without column {name}")))?,
        };
        columns.push(c);
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The texts of `models` (model column names, e.g. `input`) at run-order
/// positions `at` (any order, repeats allowed) of a layout-2 file: one
/// array per column, aligned with `at`. Reads only the pages holding them
/// (with the offset index in `metadata`).
pub(crate) fn gather(
    file: PartFile,
    metadata: ArrowReaderMetadata,
    at: &[u32],
    models: &[&str],
) -> Result<Vec<ArrayRef>, Error> {
    let total = usize::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut sorted = at.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if let Some(&last) = sorted.last()
        && last as usize >= total
    {
        return Err(Error::Internal(format!(
            "payload position {last} past the part's {total} rows"
        )));
    }
    if sorted.is_empty() || models.is_empty() {
        return Ok(models
            .iter()
            .map(|_| arrow::array::new_empty_array(&DataType::Utf8))
            .collect());
    }
    let column = metadata
        .schema()
        .index_of(TEXTS)
        .map_err(|_| Error::Internal(format!("part without column {TEXTS}")))?;
    // Consecutive positions as one range each: a run's texts are adjacent.
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for &p in &sorted {
        let p = p as usize;
        match ranges.last_mut() {
            Some(r) if r.end == p => r.end = p + 1,
            _ => ranges.push(p..p + 1),
        }
    }
    let mask = ProjectionMask::roots(metadata.parquet_schema(), [column]);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
        .with_projection(mask)
        .with_row_selection(RowSelection::from_consecutive_ranges(
            ranges.into_iter(),
            total,
        ))
        .build()?;
    let mut lists: Vec<ArrayRef> = Vec::new();
    for batch in reader {
        lists.push(batch?.column(0).clone());
    }
    let refs: Vec<&dyn Array> = lists.iter().map(|a| a.as_ref()).collect();
    let all = arrow::compute::concat(&refs)?;
    let Some(all) = all.as_any().downcast_ref::<ListArray>() else {
        return Err(Error::Internal(format!("{TEXTS} is not a list")));
    };
    if all.len() != sorted.len() {
        return Err(Error::Internal(format!(
            "read {} payloads for {} positions",
            all.len(),
            sorted.len()
        )));
    }
    let offsets = all.value_offsets();
    models
        .iter()
        .map(|model| {
            let element = COLUMNS
                .iter()
                .position(|c| c == model)
                .ok_or_else(|| Error::Internal(format!("{model} is not a payload column")))?;
            let mut take = Vec::with_capacity(at.len());
            for p in at {
                // Present: `sorted` holds every element of `at`.
                let k = sorted.binary_search(p).unwrap_or_default();
                let (start, end) = (offsets[k], offsets[k + 1]);
                if end - start != COLUMNS.len() as i32 {
                    return Err(Error::Internal(format!(
                        "{TEXTS} of run-order row {p} holds {} texts, not {}",
                        end - start,
                        COLUMNS.len()
                    )));
                }
                take.push(start as u32 + element as u32);
            }
            Ok(arrow::compute::take(
                all.values(),
                &UInt32Array::from(take),
                None,
            )?)
        })
        .collect()
}

/// Sets the texts of `models` on `rows` from a layout-2 file, row `k` at
/// run-order position `at[k]`.
pub(crate) fn fill(
    rows: &mut [Row],
    at: &[u32],
    file: PartFile,
    metadata: ArrowReaderMetadata,
    models: &[&str],
) -> Result<(), Error> {
    let arrays = gather(file, metadata, at, models)?;
    for (model, array) in models.iter().zip(&arrays) {
        let Some(texts) = array.as_any().downcast_ref::<StringArray>() else {
            return Err(Error::Internal(format!("{model}: payload not text")));
        };
        for (k, row) in rows.iter_mut().enumerate() {
            let value = texts.is_valid(k).then(|| texts.value(k).to_owned());
            match *model {
                column::INPUT => row.span.input = value,
                column::OUTPUT => row.span.output = value,
                _ => {}
            }
        }
    }
    Ok(())
}

/// The run-order positions of a batch read from a layout-2 file with
/// [`ROW`] in its projection.
pub(crate) fn positions_of(batch: &RecordBatch) -> Result<&UInt32Array, Error> {
    batch
        .column_by_name(ROW)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| Error::Internal(format!("part batch without {ROW}")))
}
