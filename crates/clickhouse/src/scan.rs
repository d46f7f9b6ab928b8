//! `SpanReader::scan`: a project's spans as rows of `loupe_model::schema()`
//! for the SQL engine that runs above this backend (`POST /api/v1/sql` and
//! the product analytics run DataFusion over them, with the embedded
//! store's dialect and bounds; docs/CLICKHOUSE.md).
//!
//! One `SELECT … FROM spans FINAL WHERE project = …` with the request's
//! time bounds and id or text equalities, its answer read as it arrives:
//! on the modern profile as Arrow IPC (`Client::select_arrow`, ClickHouse's
//! own batches retyped to the table's schema), on 18.16, which has no
//! Arrow format, as `JSONEachRow` rows (`Client::select_rows`) cut into
//! batches. Memory is bounded by a batch, not by the answer, and the
//! consumer's pace holds the server back.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, MapArray, RecordBatch, RecordBatchOptions, StructArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use futures::StreamExt;
use loupe_backend::plan::{Column, value_type};
use loupe_backend::{BatchStream, ScanRequest, StoreError};
use loupe_model::{ProjectId, column, schema};

use crate::client::RowStream;
use crate::schema::Profile;
use crate::sql::{COLUMNS, quote};
use crate::stream::to_batch;
use crate::{Error, Inner};

impl Inner {
    /// The spans `request` selects, newest versions, in batches.
    pub(crate) async fn scan(
        self: Arc<Self>,
        project: &ProjectId,
        request: ScanRequest,
    ) -> Result<BatchStream, Error> {
        let full = schema();
        let projected = Arc::new(
            full.project(&request.columns)
                .map_err(|e| Error::Invalid(format!("scan columns: {e}")))?,
        );
        let arrow = self.layout.profile == Profile::Modern;
        let mut select = Vec::with_capacity(request.columns.len());
        let mut columns = Vec::with_capacity(request.columns.len());
        for (i, field) in projected.fields().iter().enumerate() {
            select.push(format!("{} AS c{i}", self.column_sql(field.name(), arrow)?));
            columns.push(Column {
                name: format!("c{i}"),
                ty: value_type(field.data_type()),
            });
        }
        if select.is_empty() {
            // `SELECT count()`-like scans read no column; any one row's
            // worth will do for DataFusion, which only counts the rows.
            select.push("1 AS c_".into());
        }
        let mut sql = format!(
            "SELECT {} {}",
            select.join(", "),
            self.compiler().scoped_from(project)
        );
        if let Some(t) = request.min_start_ns {
            sql.push_str(&format!(" AND start_time >= {t}"));
        }
        if let Some(t) = request.max_start_ns {
            sql.push_str(&format!(" AND start_time <= {t}"));
        }
        for alternatives in &request.any_of {
            // Only text columns narrow here; anything else is left to the
            // caller, which applies every condition again.
            let ors: Option<Vec<String>> = alternatives
                .iter()
                .map(|(c, v)| {
                    COLUMNS
                        .iter()
                        .any(|(name, ty)| name == c && *ty == loupe_backend::plan::ValueType::Text)
                        .then(|| format!("{c} = {}", quote(v)))
                })
                .collect();
            if let Some(ors) = ors.filter(|o| !o.is_empty()) {
                sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
            }
        }
        let batch_rows = match request.batch_rows {
            0 => usize::try_from(self.stream_batch_rows).unwrap_or(10_000),
            n => n,
        }
        .max(1);
        if arrow {
            // Binary all the way: ClickHouse's Arrow batches, retyped, and
            // sliced (no copy) where a block is longer than asked.
            let batches = self.client.select_arrow(&sql, batch_rows).await?;
            let batches = futures::stream::try_unfold(batches, |mut batches| async move {
                Ok(batches.next().await?.map(|b| (b, batches)))
            });
            return Ok(batches
                .map(move |b: Result<RecordBatch, Error>| {
                    let pieces: Vec<Result<RecordBatch, StoreError>> =
                        match b.and_then(|b| retyped(&b, &projected)) {
                            Ok(b) => (0..b.num_rows())
                                .step_by(batch_rows)
                                .map(|at| Ok(b.slice(at, batch_rows.min(b.num_rows() - at))))
                                .collect(),
                            Err(e) => vec![Err(StoreError::from(e))],
                        };
                    futures::stream::iter(pieces)
                })
                .flatten()
                .boxed());
        }
        let rows = self.client.select_rows(&sql).await?;
        let state = (rows, columns, projected, false);
        Ok(futures::stream::try_unfold(
            state,
            move |(mut rows, columns, projected, done)| async move {
                if done {
                    return Ok(None);
                }
                let (batch, done) = next_batch(&mut rows, &columns, &projected, batch_rows).await?;
                if batch.num_rows() == 0 && done {
                    return Ok(None);
                }
                Ok(Some((batch, (rows, columns, projected, done))))
            },
        )
        .map(|r: Result<RecordBatch, Error>| r.map_err(StoreError::from))
        .boxed())
    }

    /// The SQL of one column of `loupe_model::schema()`; maps as a
    /// keys/values tuple for a JSON answer, as themselves for an Arrow one
    /// (the modern profile's `Map` column).
    fn column_sql(&self, name: &str, arrow: bool) -> Result<String, Error> {
        if name == column::VERSION {
            return Ok("_version".into());
        }
        match COLUMNS.iter().find(|(c, _)| *c == name) {
            Some((c, loupe_backend::plan::ValueType::Map)) if arrow => Ok((*c).to_owned()),
            Some((_, loupe_backend::plan::ValueType::Map)) => {
                let (k, v) = self.layout.map_arrays(name);
                Ok(format!("tuple({k}, {v})"))
            }
            Some((c, _)) => Ok((*c).to_owned()),
            None => Err(Error::Invalid(format!("no column {name:?} to scan"))),
        }
    }
}

/// A batch of ClickHouse's Arrow types in `projected`'s: times from
/// `Int64`, maps with the table's field names, integers narrowed.
fn retyped(batch: &RecordBatch, projected: &SchemaRef) -> Result<RecordBatch, Error> {
    let bad = |e: arrow::error::ArrowError| Error::Decode(format!("arrow batch: {e}"));
    if projected.fields().is_empty() {
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        return RecordBatch::try_new_with_options(projected.clone(), Vec::new(), &options)
            .map_err(bad);
    }
    if batch.num_columns() != projected.fields().len() {
        return Err(Error::Decode(format!(
            "an arrow batch has {} columns for {}",
            batch.num_columns(),
            projected.fields().len()
        )));
    }
    let arrays = batch
        .columns()
        .iter()
        .zip(projected.fields())
        .map(|(a, f)| {
            if a.data_type() == f.data_type() {
                return Ok(a.clone());
            }
            if let DataType::Map(entry, sorted) = f.data_type() {
                let DataType::Struct(fields) = entry.data_type() else {
                    return Err(Error::Decode("the map type has no entries".into()));
                };
                let map = a
                    .as_map_opt()
                    .ok_or_else(|| Error::Decode(format!("{} is not a map", f.name())))?;
                let entries = map.entries();
                let keys = cast(entries.column(0), fields[0].data_type()).map_err(bad)?;
                let values = cast(entries.column(1), fields[1].data_type()).map_err(bad)?;
                let entries =
                    StructArray::try_new(fields.clone(), vec![keys, values], None).map_err(bad)?;
                let map = MapArray::try_new(
                    entry.clone(),
                    map.offsets().clone(),
                    entries,
                    map.nulls().cloned(),
                    *sorted,
                )
                .map_err(bad)?;
                return Ok(Arc::new(map) as ArrayRef);
            }
            cast(a, f.data_type()).map_err(bad)
        })
        .collect::<Result<Vec<ArrayRef>, Error>>()?;
    RecordBatch::try_new(projected.clone(), arrays).map_err(bad)
}

/// Up to `n` rows as a batch of `projected`, and whether the answer ended.
async fn next_batch(
    rows: &mut RowStream,
    columns: &[Column],
    projected: &SchemaRef,
    n: usize,
) -> Result<(RecordBatch, bool), Error> {
    let mut cells = Vec::with_capacity(n.min(65_536));
    let mut done = false;
    while cells.len() < n {
        let Some(mut row) = rows.next().await? else {
            done = true;
            break;
        };
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            out.push(row.remove(&c.name).unwrap_or_default());
        }
        cells.push(out);
    }
    let count = cells.len();
    if columns.is_empty() {
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        let batch = RecordBatch::try_new_with_options(projected.clone(), Vec::new(), &options)
            .map_err(|e| Error::Decode(format!("batch: {e}")))?;
        return Ok((batch, done));
    }
    let decoded = to_batch(columns, cells)?;
    // `to_batch` types columns as answers are typed (Int64 for every
    // integer); the table's schema is narrower in places.
    let arrays = decoded
        .columns()
        .iter()
        .zip(projected.fields())
        .map(|(a, f)| {
            if a.data_type() == f.data_type() {
                Ok(a.clone())
            } else {
                cast(a, f.data_type()).map_err(|e| Error::Decode(format!("{}: {e}", f.name())))
            }
        })
        .collect::<Result<Vec<ArrayRef>, Error>>()?;
    let batch = RecordBatch::try_new(projected.clone(), arrays)
        .map_err(|e| Error::Decode(format!("batch: {e}")))?;
    Ok((batch, done))
}
