//! The DataFusion `TableProvider` of one project's spans.
//!
//! A scan unions (1) the memtables' visible rows, as columnar pieces
//! (`memscan.rs`) pruned by time and projected, and (2) a
//! Parquet scan of the project's parts, pruned by the time range and by id
//! equalities found in the filters: span ids through each part's bloom,
//! trace and run ids through its row positions, which also restrict the
//! read to the rows (pages) they name. Hidden
//! row versions are skipped through each part's deletion vector, given to
//! the Parquet reader as a row selection, so each span appears exactly once
//! and a part pays only for its own hidden rows. Filters are reported `Inexact`:
//! they prune and are pushed into the Parquet reader, and DataFusion applies
//! them again on top.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileReaderFactory, ParquetRowSelection,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr_adapter::PhysicalExprAdapterFactory;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use futures::FutureExt;
use futures::future::BoxFuture;
use loupe_model::{Status, column};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use crate::convert::Row;
use crate::memscan::TimeBounds;
use crate::mirrors::{MirrorAdapterFactory, storage_schema};
use crate::parts::{IdKind, Part};
use crate::{Store, live_parts_of};

/// The spans of one project as a DataFusion table.
#[derive(Clone)]
pub struct SpansTable {
    store: Store,
    project: String,
    /// The store's schema (the query language's compile reads the mirror
    /// columns), or the model's (SQL, as every backend serves it).
    schema: SchemaRef,
    counter: Option<Arc<crate::query::ScanCounter>>,
    /// Words every row the query keeps contains (a top-level full-text
    /// filter): parts and blocks of rows whose text index rules them out
    /// are not read.
    text: Option<Arc<Vec<String>>>,
    /// The rows of some runs, read ahead by id ([`SpansTable::with_rows`]):
    /// then the whole table.
    rows: Option<RecordBatch>,
}

impl std::fmt::Debug for SpansTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpansTable")
            .field("project", &self.project)
            .finish()
    }
}

impl SpansTable {
    /// The table of `project` in `store`. Rows of other projects are never
    /// visible through it.
    pub fn new(store: Store, project: impl Into<String>) -> Self {
        Self {
            store,
            project: project.into(),
            schema: storage_schema(),
            counter: None,
            text: None,
            rows: None,
        }
    }

    /// The table with the model's columns only (`loupe_model::schema()`),
    /// without the store's mirror columns: what SQL sees, the same table
    /// every backend serves.
    pub fn model_columns(mut self) -> Self {
        self.schema = loupe_model::schema();
        self
    }

    /// Skips parts whose full-text index shows no row containing every
    /// word. Only for a table whose every scan filters on those words.
    pub(crate) fn with_text(mut self, words: Vec<String>) -> Self {
        if !words.is_empty() {
            self.text = Some(Arc::new(words));
        }
        self
    }

    /// The table as just `rows` (in the store's schema, mirrors included):
    /// the rows of a few runs read ahead by id, which a plan that requires
    /// one of those runs reads instead of the parts (`query.rs`, `by_ids`).
    /// Scans apply the time bounds to them as to any rows.
    pub(crate) fn with_rows(mut self, rows: RecordBatch) -> Self {
        self.rows = Some(rows);
        self
    }

    /// Counts the parts and rows each scan reads into `counter`.
    pub fn with_counter(mut self, counter: Arc<crate::query::ScanCounter>) -> Self {
        self.counter = Some(counter);
        self
    }
}

/// The most trace or run ids whose rows a scan reads by position; a longer
/// list only skips parts. A run's spans sit in every span kind's rows of a
/// part, so the rows of thousands of runs are spread over most pages of
/// every column: read by position, those of 2,132 runs (a `run has`
/// answered as a key list) took 152 ms, where a semi join took 83 ms.
const ROW_PICK_IDS_MAX: usize = 64;

/// What the filters say that can prune parts: bounds on the table's time
/// column and required ids.
#[derive(Default, Debug)]
pub(crate) struct Pruning {
    pub(crate) min_time: Option<i64>,
    pub(crate) max_time: Option<i64>,
    /// Each entry: the part must possibly contain one of these ids.
    pub(crate) ids: Vec<Vec<(IdKind, String)>>,
    /// A conjunct `status = 'error'`: only rows with that status match.
    pub(crate) errors: bool,
}

impl Pruning {
    /// The bounds on `time_column` and the id equalities in `filters`.
    pub(crate) fn from_filters(filters: &[Expr], time_column: &str) -> Self {
        let mut p = Pruning::default();
        for f in filters {
            p.absorb(f, time_column);
        }
        p
    }

    fn absorb(&mut self, e: &Expr, time_column: &str) {
        if let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) = e
        {
            self.absorb(left, time_column);
            self.absorb(right, time_column);
            return;
        }
        if let Some(alts) = id_alternatives(e) {
            self.ids.push(alts);
            return;
        }
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return;
        };
        let (Expr::Column(c), Expr::Literal(v, _)) = (left.as_ref(), right.as_ref()) else {
            return;
        };
        if c.name == column::STATUS && *op == Operator::Eq {
            self.errors |= matches!(
                v,
                ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))
                    if s == Status::Error.as_str()
            );
            return;
        }
        if c.name != time_column {
            return;
        }
        let Some(t) = timestamp_ns(v) else { return };
        match op {
            Operator::Gt | Operator::GtEq => {
                self.min_time = Some(self.min_time.map_or(t, |m| m.max(t)))
            }
            Operator::Lt | Operator::LtEq => {
                self.max_time = Some(self.max_time.map_or(t, |m| m.min(t)))
            }
            Operator::Eq => {
                self.min_time = Some(t);
                self.max_time = Some(t);
            }
            _ => {}
        }
    }

    /// The rows of `part` that may hold the trace or run ids the filters
    /// require (position index) and, under `status = 'error'`, an error
    /// status (the part's error rows); `None` when neither narrows rows.
    fn rows(&self, part: &Part) -> Option<Vec<u32>> {
        let by_id = self.rows_by(|id| part.index.run_rows(id));
        let errors = if self.errors {
            part.index.error_rows()
        } else {
            None
        };
        match (by_id, errors) {
            (Some(rows), Some(errors)) => Some(
                rows.into_iter()
                    .filter(|r| errors.binary_search(r).is_ok())
                    .collect(),
            ),
            (Some(rows), None) => Some(rows),
            (None, Some(errors)) => Some(errors.to_vec()),
            (None, None) => None,
        }
    }

    /// The rows that may hold the trace or run ids the filters require,
    /// `rows_of(id)` naming the rows of one id; `None` when no required id
    /// narrows rows. A list of more than [`ROW_PICK_IDS_MAX`] ids narrows
    /// parts only.
    pub(crate) fn rows_by(&self, rows_of: impl Fn(&str) -> Vec<u32>) -> Option<Vec<u32>> {
        let mut out: Option<Vec<u32>> = None;
        for alts in &self.ids {
            if alts.len() > ROW_PICK_IDS_MAX
                || !alts
                    .iter()
                    .all(|(k, _)| matches!(k, IdKind::Trace | IdKind::Run))
            {
                continue;
            }
            let mut rows: Vec<u32> = alts.iter().flat_map(|(_, id)| rows_of(id)).collect();
            rows.sort_unstable();
            rows.dedup();
            out = Some(match out {
                None => rows,
                Some(prev) => prev
                    .into_iter()
                    .filter(|r| rows.binary_search(r).is_ok())
                    .collect(),
            });
        }
        out
    }

    fn keeps(&self, part: &Part) -> bool {
        if self.min_time.is_some_and(|t| part.meta.max_time < t) {
            return false;
        }
        if self.max_time.is_some_and(|t| part.meta.min_time > t) {
            return false;
        }
        self.ids
            .iter()
            .all(|alts| alts.iter().any(|(k, id)| part.index.may_contain(*k, id)))
    }
}

/// Whether the scan reads only the rows a conjunct names, from a part's
/// position indexes ([`Pruning::rows`]): a run or trace id (or a short list
/// of them), or `status = 'error'`. A later scan for rows known to match
/// the whole filter can carry such conjuncts to read those rows alone.
pub(crate) fn narrows_rows(e: &Expr) -> bool {
    let mut p = Pruning::default();
    p.absorb(e, column::START_TIME);
    p.errors || p.rows_by(|_| Vec::new()).is_some()
}

/// `start_time` compared with a timestamp (`>`, `>=`, `<`, `<=`): a
/// conjunct the scan applies exactly.
fn time_bound(e: &Expr) -> Option<(Operator, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let (Expr::Column(c), Expr::Literal(v, _)) = (left.as_ref(), right.as_ref()) else {
        return None;
    };
    let op = match op {
        Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq => *op,
        _ => return None,
    };
    (c.name == column::START_TIME).then_some(())?;
    Some((op, timestamp_ns(v)?))
}

/// Whether every time in `min..=max` satisfies each bound.
fn holds_all(bounds: &[(Operator, i64)], min: i64, max: i64) -> bool {
    bounds.iter().all(|&(op, t)| match op {
        Operator::Gt => min > t,
        Operator::GtEq => min >= t,
        Operator::Lt => max < t,
        Operator::LtEq => max <= t,
        _ => false,
    })
}

/// The input `make` builds for a projection of the table's columns,
/// filtered by the time bounds `times` (none: `make(projection)` as it
/// is). The input is built with `start_time` among its columns, filtered,
/// and projected back.
fn exact_time(
    state: &dyn Session,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    times: &[Expr],
    make: impl FnOnce(Option<&Vec<usize>>) -> DfResult<Option<Arc<dyn ExecutionPlan>>>,
) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    let Some(predicate) = conjunction(times.to_vec()) else {
        return make(projection);
    };
    let time = schema.index_of(column::START_TIME)?;
    let wanted: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..schema.fields().len()).collect(),
    };
    let mut columns = wanted.clone();
    if !columns.contains(&time) {
        columns.push(time);
    }
    let Some(input) = make(Some(&columns))? else {
        return Ok(None);
    };
    let df_schema = DFSchema::try_from(input.schema().as_ref().clone())?;
    let predicate = state.create_physical_expr(predicate, &df_schema)?;
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, input)?);
    if columns.len() == wanted.len() {
        return Ok(Some(filtered));
    }
    let out = filtered.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = (0..wanted.len())
        .map(|i| {
            let name = out.field(i).name().clone();
            (
                Arc::new(PhysicalColumn::new(&name, i)) as Arc<dyn PhysicalExpr>,
                name,
            )
        })
        .collect();
    Ok(Some(Arc::new(ProjectionExec::try_new(exprs, filtered)?)))
}

/// `span_id = 'x'`, `trace_id = 'x'`, `run_id = 'x'`, one of them
/// `IN ('x', …)`, an OR of these, or an AND with one of these (its rows hold
/// those ids): a `run has` answered as a key list is
/// `run_id IN (…) OR (run_id IS NULL AND trace_id IN (…))`.
fn id_alternatives(e: &Expr) -> Option<Vec<(IdKind, String)>> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => id_alternatives(left).or_else(|| id_alternatives(right)),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut l = id_alternatives(left)?;
            l.extend(id_alternatives(right)?);
            Some(l)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let Expr::Literal(ScalarValue::Utf8(Some(v)), _) = right.as_ref() else {
                return None;
            };
            Some(vec![(id_kind(left)?, v.clone())])
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let kind = id_kind(expr)?;
            list.iter()
                .map(|v| match v {
                    Expr::Literal(ScalarValue::Utf8(Some(v)), _) => Some((kind, v.clone())),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

/// The id column an expression reads.
fn id_kind(e: &Expr) -> Option<IdKind> {
    let Expr::Column(c) = e else { return None };
    match c.name.as_str() {
        column::SPAN_ID => Some(IdKind::Span),
        column::TRACE_ID => Some(IdKind::Trace),
        column::RUN_ID => Some(IdKind::Run),
        _ => None,
    }
}

fn timestamp_ns(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

impl Store {
    /// Visible memtable rows of a project that `keep` accepts: the newest
    /// version of each span (active memtable first, then the frozen ones
    /// newest first), hidden versions skipped.
    pub(crate) fn memtable_rows(
        &self,
        project: &str,
        keep: impl Fn(&loupe_model::Span) -> bool,
    ) -> Vec<Row> {
        let st = self.inner.state.lock();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mems = std::iter::once(&st.active).chain(st.frozen.iter().rev().map(|m| m.as_ref()));
        for m in mems {
            for ((p, id), row) in &m.rows {
                if p == project
                    && !st.hidden.contains(&row.version)
                    && keep(&row.span)
                    && seen.insert(id.clone())
                {
                    out.push(Row::clone(row));
                }
            }
        }
        out
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Bounds on the start time are applied exactly by the scan (so no
    /// filter above it reads every row's time again, and a part wholly
    /// inside them is read without one); every other filter prunes and
    /// filters rows in the reader where it can, and again above.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match time_bound(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema.clone();
        // The model's columns are a prefix of the store's: with no
        // projection, a model-schema table still projects the pieces.
        let prefix: Vec<usize>;
        let projection = match projection {
            None if schema.fields().len() < storage_schema().fields().len() => {
                prefix = (0..schema.fields().len()).collect();
                Some(&prefix)
            }
            p => p,
        };
        // The time bounds the scan applies itself (`supports_filters_pushdown`).
        let (times, others): (Vec<Expr>, Vec<Expr>) = filters
            .iter()
            .cloned()
            .partition(|f| time_bound(f).is_some());
        if let Some(rows) = &self.rows {
            if let Some(c) = &self.counter {
                c.rows.fetch_add(rows.num_rows() as u64, Ordering::Relaxed);
            }
            let scan = exact_time(state, &schema, projection, &times, |columns| {
                let batch = match columns {
                    Some(c) => rows.project(c)?,
                    None => rows.clone(),
                };
                memory_scan(vec![batch], &schema, columns)
            })?;
            return union_or_empty(scan.into_iter().collect(), &schema, projection);
        }
        let pruning = Pruning::from_filters(filters, column::START_TIME);
        let external = |e: crate::Error| datafusion::error::DataFusionError::External(Box::new(e));
        let time = TimeBounds {
            min: pruning.min_time,
            max: pruning.max_time,
        };
        // Parts and memtable rows of one instant: a flush between two
        // snapshots could otherwise show a row twice or not at all.
        let snapshot = self
            .store
            .scan_snapshot(&self.project, time)
            .map_err(external)?;
        let (parts, deletes) = (snapshot.parts, snapshot.deletes);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let bounds: Vec<(Operator, i64)> = times.iter().filter_map(time_bound).collect();

        let memtable = exact_time(state, &schema, projection, &times, |columns| {
            let mut batches = Vec::with_capacity(snapshot.pieces.len());
            for piece in &snapshot.pieces {
                let batch = piece.visible(columns).map_err(external)?;
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
            }
            if let Some(c) = &self.counter {
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                c.rows.fetch_add(rows as u64, Ordering::Relaxed);
            }
            memory_scan(batches, &schema, columns)
        })?;
        inputs.extend(memtable);

        // With a full-text filter, each indexed part names the blocks of
        // rows that may match; a part with none is not read at all.
        let files: Vec<(&Arc<Part>, Option<RowSelection>)> = live_parts_of(&parts, &self.project)
            .filter(|p| pruning.keeps(p))
            .filter_map(|p| {
                let Some(words) = &self.text else {
                    return Some((p, None));
                };
                match self.store.text_candidates(p, words) {
                    None => Some((p, None)),
                    Some(ranges) if ranges.is_empty() => None,
                    Some(ranges) => {
                        let rows = usize::try_from(p.meta.rows).unwrap_or(usize::MAX);
                        Some((
                            p,
                            Some(RowSelection::from_consecutive_ranges(
                                ranges.into_iter(),
                                rows,
                            )),
                        ))
                    }
                }
            })
            .collect();
        if let Some(c) = &self.counter {
            c.parts.fetch_add(files.len() as u64, Ordering::Relaxed);
        }
        // Cold parts the pruning kept are fetched into the cache; nothing
        // else of the cold tier is touched by a query.
        let mut paths = Vec::with_capacity(files.len());
        for (p, _) in &files {
            if p.is_cold() {
                let part = Arc::clone(p);
                let fetched = tokio::task::spawn_blocking(move || part.local())
                    .await
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                paths.push(fetched.map_err(external)?);
            } else {
                paths.push(p.path.clone());
            }
        }
        // Parts written before the mirror columns are a scan of their own;
        // so are parts with their texts in run order when the scan reads a
        // text (`payloads.rs`; without one they read like the others).
        let texts = projection.is_none_or(|p| {
            p.iter()
                .any(|&i| crate::payloads::is_payload(schema.field(i).name()))
        });
        // A part whose every row's start time lies within the bounds is
        // read without the time filter (decoding every row's time was a
        // sixth of a day's "errors by node type"); the others keep it.
        let (mut scans, mut old) = (Vec::with_capacity(files.len()), Vec::new());
        let mut inside = Vec::new();
        let mut run_order: Vec<(FileScan, (Arc<Part>, std::path::PathBuf))> = Vec::new();
        let mut run_order_inside = Vec::new();
        for (i, (p, text)) in files.iter().enumerate() {
            // `trace_id = …` / `run_id = …`: read only the rows the
            // part's position index names (the filter still runs on
            // them); hidden rows are skipped by the part's deletion
            // vector, a selection as long as its hidden rows.
            let rows_total = usize::try_from(p.meta.rows).unwrap_or(usize::MAX);
            let dv = crate::deletes::of(&deletes, p.meta.id);
            let selection = match pruning.rows(p) {
                Some(mut rows) => {
                    dv.retain_visible(&mut rows);
                    let ranges = rows.iter().map(|&r| r as usize..r as usize + 1);
                    Some(RowSelection::from_consecutive_ranges(ranges, rows_total))
                }
                None => dv.visible_selection(rows_total),
            };
            let selection = match (selection, text) {
                (Some(a), Some(b)) => Some(a.intersection(b)),
                (a, b) => a.or_else(|| b.clone()),
            };
            if let Some(c) = &self.counter {
                let rows = selection
                    .as_ref()
                    .map_or(p.meta.rows, |s| s.row_count() as u64);
                c.rows.fetch_add(rows, Ordering::Relaxed);
            }
            let file = FileScan {
                path: paths[i].clone(),
                bytes: p.meta.bytes,
                selection,
                part: p.meta.id,
            };
            let within = p.index.timed() && holds_all(&bounds, p.meta.min_time, p.meta.max_time);
            if p.meta.layout < crate::parts::LAYOUT_MIRRORS {
                old.push(file);
            } else if texts && p.meta.layout >= crate::parts::LAYOUT_PAYLOADS {
                let entry = (file, (Arc::clone(p), paths[i].clone()));
                if within {
                    run_order_inside.push(entry);
                } else {
                    run_order.push(entry);
                }
            } else if within {
                inside.push(file);
            } else {
                scans.push(file);
            }
        }
        let selectors = pruning.errors;
        inputs
            .extend(self.run_order_scan(state, run_order, projection, filters, limit, selectors)?);
        inputs.extend(self.run_order_scan(
            state,
            run_order_inside,
            projection,
            &others,
            limit,
            selectors,
        )?);
        for (files, filters) in [(scans, filters), (inside, others.as_slice())] {
            let scan = ParquetScan {
                files,
                projection,
                filters,
                limit,
                adapter: None,
                row_filters: true,
                parts: false,
                selectors: pruning.errors,
            };
            inputs.extend(parquet_scan(state, &schema, scan)?);
        }
        // Their mirrors are read from the maps (`MirrorAdapterFactory`).
        // The reader cannot filter rows on a map lookup, and would drop
        // such a filter after claiming it: when a filter names a mirror,
        // they get no row filters, so the filters stay above the scan (and
        // still prune by statistics).
        // Without row filters, the time bounds are a filter of their own
        // above the scan (they are not applied again further up).
        let adapter: Arc<dyn PhysicalExprAdapterFactory> = Arc::new(MirrorAdapterFactory);
        let row_filters = !filters.iter().any(crate::mirrors::names_a_mirror);
        let unfiltered: &[Expr] = if row_filters { &[] } else { &times };
        let scan = exact_time(state, &schema, projection, unfiltered, |columns| {
            let scan = ParquetScan {
                files: old,
                projection: columns,
                filters,
                limit: if unfiltered.is_empty() { limit } else { None },
                adapter: Some(adapter),
                row_filters,
                parts: false,
                selectors: pruning.errors,
            };
            parquet_scan(state, &schema, scan)
        })?;
        inputs.extend(scan);
        union_or_empty(inputs, &schema, projection)
    }
}

impl SpansTable {
    /// The scan of parts whose texts are in run order, for a projection
    /// that reads a text: the parts without their texts, each row with its
    /// run-order position and part, under a `PayloadExec` that reads the
    /// texts of those rows and yields the table's projected schema. A
    /// filter on a text cannot run in the reader (the column is not there
    /// yet): it stays above, as every filter does (`Inexact`).
    fn run_order_scan(
        &self,
        state: &dyn Session,
        files: Vec<(FileScan, (Arc<Part>, std::path::PathBuf))>,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        selectors: bool,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        use crate::payloads::{PayloadExec, ROW, Source, file_schema};
        if files.is_empty() {
            return Ok(None);
        }
        let (files, parts): (Vec<_>, Vec<_>) = files.into_iter().unzip();
        let file = file_schema();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // The scan's columns: the projection's others, then the position
        // and the part (a partition column, after the file's).
        let index = |name: &str| {
            file.index_of(name).map_err(|_| {
                datafusion::error::DataFusionError::Internal(format!("part files lack {name}"))
            })
        };
        let mut scan_columns: Vec<usize> = Vec::with_capacity(wanted.len() + 2);
        let mut sources = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let name = self.schema.field(i).name();
            if let Some(model) = crate::payloads::COLUMNS.into_iter().find(|m| m == name) {
                sources.push(Source::Text(model));
            } else {
                sources.push(Source::Input(scan_columns.len()));
                scan_columns.push(index(name)?);
            }
        }
        scan_columns.push(index(ROW)?);
        let part_column = scan_columns.len();
        scan_columns.push(file.fields().len());
        let kept: Vec<Expr> = filters
            .iter()
            .filter(|f| !crate::payloads::names_a_payload(f))
            .cloned()
            .collect();
        let scan = ParquetScan {
            files,
            projection: Some(&scan_columns),
            filters: &kept,
            limit: (kept.len() == filters.len()).then_some(limit).flatten(),
            adapter: None,
            row_filters: true,
            parts: true,
            selectors,
        };
        let Some(input) = parquet_scan(state, &file, scan)? else {
            return Ok(None);
        };
        let output = Arc::new(self.schema.project(&wanted)?);
        Ok(Some(Arc::new(PayloadExec::new(
            input,
            output,
            sources,
            part_column,
            parts,
            state.runtime_env().cache_manager.get_file_metadata_cache(),
        ))))
    }
}

/// One Parquet file a scan reads, and the rows of it (all: `None`).
pub(crate) struct FileScan {
    pub(crate) path: std::path::PathBuf,
    pub(crate) bytes: u64,
    pub(crate) selection: Option<RowSelection>,
    /// The part's id: the value of the scan's part column, if it has one.
    pub(crate) part: u64,
}

/// In-memory batches (already in the table's schema, projected) as one
/// partition each, so DataFusion scans them in parallel; `None` when there
/// are none.
pub(crate) fn memory_scan(
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(None);
    }
    let projected = match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => schema.clone(),
    };
    let partitions: Vec<Vec<RecordBatch>> = batches.into_iter().map(|b| vec![b]).collect();
    Ok(Some(MemorySourceConfig::try_new_exec(
        &partitions,
        projected,
        None,
    )?))
}

/// What a Parquet scan reads: the files, the table's projection, filters
/// and limit, how a file's schema is adapted to the table's (DataFusion's
/// default when `None`), and whether the reader filters rows (else the
/// filters only prune, and are applied above the scan); with `parts`, the
/// scan's columns end with the part column (`payloads::PART`, each file's
/// `FileScan::part`) after the file's.
pub(crate) struct ParquetScan<'a> {
    pub(crate) files: Vec<FileScan>,
    pub(crate) projection: Option<&'a Vec<usize>>,
    pub(crate) filters: &'a [Expr],
    pub(crate) limit: Option<usize>,
    pub(crate) adapter: Option<Arc<dyn PhysicalExprAdapterFactory>>,
    pub(crate) row_filters: bool,
    pub(crate) parts: bool,
    /// Read the files' row selections range by range instead of decoding
    /// whole pages and masking them: for sparse selections (a part's error
    /// rows), whose skipped rows are then never materialised.
    pub(crate) selectors: bool,
}

/// A Parquet scan of `files`, spread over the session's partitions, with
/// the filters pushed into the reader (row-group and page statistics,
/// bloom filters, and row filters that decode the other columns only for
/// rows that pass); `None` when there are no files.
pub(crate) fn parquet_scan(
    state: &dyn Session,
    schema: &SchemaRef,
    scan: ParquetScan<'_>,
) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    let ParquetScan {
        files,
        projection,
        filters,
        limit,
        adapter,
        row_filters,
        parts,
        selectors,
    } = scan;
    if files.is_empty() {
        return Ok(None);
    }
    let target = state.config().target_partitions().max(1);
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); target.min(files.len())];
    let n = groups.len();
    for (i, f) in files.into_iter().enumerate() {
        let mut file = scan_file(&f.path, f.bytes);
        if let Some(selection) = f.selection {
            file = file.with_extension(ParquetRowSelection::new(selection));
        }
        if parts {
            file = file.with_partition_values(vec![ScalarValue::UInt64(Some(f.part))]);
        }
        groups[i % n].push(file);
    }
    // Footers and page indexes from the store's cache (`query_runtime`).
    let runtime = state.runtime_env();
    let readers = PartReaders(CachedParquetFileReaderFactory::new(
        runtime.object_store(ObjectStoreUrl::local_filesystem())?,
        runtime.cache_manager.get_file_metadata_cache(),
    ));
    let table = datafusion::datasource::table_schema::TableSchema::builder(schema.clone());
    let table = if parts {
        table.with_table_partition_cols(vec![Arc::new(arrow::datatypes::Field::new(
            crate::payloads::PART,
            arrow::datatypes::DataType::UInt64,
            false,
        ))])
    } else {
        table
    };
    let mut options = datafusion::config::TableParquetOptions::default();
    options.global.force_filter_selections = selectors;
    let mut source = ParquetSource::new(table.build())
        .with_table_parquet_options(options)
        .with_parquet_file_reader_factory(Arc::new(readers))
        .with_pushdown_filters(row_filters)
        .with_bloom_filter_on_read(true)
        .with_enable_page_index(true);
    if let Some(expr) = conjunction(filters.to_vec()) {
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        source = source.with_predicate(state.create_physical_expr(expr, &df_schema)?);
    }
    let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
        .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .with_expr_adapter(adapter)
        .build();
    Ok(Some(DataSourceExec::from_data_source(config)))
}

/// The file a scan names for a part at `path` of `bytes`: its
/// `object_meta` (location, size, a fixed modification time) is the key
/// and validity check of the metadata cache, which `warm.rs` fills the
/// same way.
pub(crate) fn scan_file(path: &std::path::Path, bytes: u64) -> PartitionedFile {
    PartitionedFile::new(path.to_string_lossy().into_owned(), bytes)
}

/// Readers of parts whose metadata comes with the page index, through the
/// store's metadata cache. DataFusion asks for the footer alone and then
/// parses the page index on its own, which the cache never keeps: every
/// scan parsed every part's page index again.
#[derive(Debug)]
struct PartReaders(CachedParquetFileReaderFactory);

impl ParquetFileReaderFactory for PartReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> DfResult<Box<dyn AsyncFileReader + Send>> {
        let reader = self
            .0
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(WithPageIndex(reader)))
    }
}

/// A part reader whose metadata always includes the page index.
struct WithPageIndex(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for WithPageIndex {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.0.get_metadata(Some(&options)).await }.boxed()
    }
}

/// The union of a scan's inputs, or an empty scan of the projected schema.
pub(crate) fn union_or_empty(
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    if inputs.is_empty() {
        let projected = Arc::new(match projection {
            Some(p) => schema.project(p)?,
            None => schema.as_ref().clone(),
        });
        return MemorySourceConfig::try_new_exec(&[vec![]], projected, None)
            .map(|e| e as Arc<dyn ExecutionPlan>);
    }
    UnionExec::try_new(inputs)
}
