//! The DataFusion `TableProvider` of one project's spans.
//!
//! A scan unions (1) a snapshot of the memtables' visible rows and (2) a
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
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use loupe_model::{column, schema};
use parquet::arrow::arrow_reader::RowSelection;

use crate::convert::{Row, rows_to_batch};
use crate::parts::{IdKind, Part};
use crate::{Store, live_parts_of};

/// The spans of one project as a DataFusion table.
#[derive(Clone)]
pub struct SpansTable {
    store: Store,
    project: String,
    counter: Option<Arc<crate::query::ScanCounter>>,
    /// Words every row the query keeps contains (a top-level full-text
    /// filter): parts whose text index rules them out are not read.
    text: Option<Arc<Vec<String>>>,
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
            counter: None,
            text: None,
        }
    }

    /// Skips parts whose full-text index shows no row containing every
    /// word. Only for a table whose every scan filters on those words.
    pub(crate) fn with_text(mut self, words: Vec<String>) -> Self {
        if !words.is_empty() {
            self.text = Some(Arc::new(words));
        }
        self
    }

    /// Counts the parts and rows each scan reads into `counter`.
    pub fn with_counter(mut self, counter: Arc<crate::query::ScanCounter>) -> Self {
        self.counter = Some(counter);
        self
    }
}

/// What the filters say that can prune parts.
#[derive(Default, Debug)]
struct Pruning {
    min_time: Option<i64>,
    max_time: Option<i64>,
    /// Each entry: the part must possibly contain one of these ids.
    ids: Vec<Vec<(IdKind, String)>>,
}

impl Pruning {
    fn from_filters(filters: &[Expr]) -> Self {
        let mut p = Pruning::default();
        for f in filters {
            p.absorb(f);
        }
        p
    }

    fn absorb(&mut self, e: &Expr) {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            return;
        };
        if *op == Operator::And {
            self.absorb(left);
            self.absorb(right);
            return;
        }
        if let Some(alts) = id_alternatives(e) {
            self.ids.push(alts);
            return;
        }
        let (Expr::Column(c), Expr::Literal(v, _)) = (left.as_ref(), right.as_ref()) else {
            return;
        };
        if c.name != column::START_TIME {
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
    /// require (position index), or `None` when no required id narrows rows.
    fn rows(&self, part: &Part) -> Option<Vec<u32>> {
        let mut out: Option<Vec<u32>> = None;
        for alts in &self.ids {
            if !alts
                .iter()
                .all(|(k, _)| matches!(k, IdKind::Trace | IdKind::Run))
            {
                continue;
            }
            let mut rows: Vec<u32> = alts
                .iter()
                .flat_map(|(_, id)| part.index.run_rows(id))
                .collect();
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

/// `span_id = 'x'`, `trace_id = 'x'`, `run_id = 'x'`, or an OR of them.
/// What a memtable row must match to be worth copying into a scan: the
/// scan's time bounds and `column = 'value'` equalities on id columns (the
/// filter still runs on the rows copied).
#[derive(Debug, Default)]
pub(crate) struct MemFilter {
    min_time: Option<i64>,
    max_time: Option<i64>,
    equal: Vec<(String, String)>,
}

impl MemFilter {
    fn new(filters: &[Expr], pruning: &Pruning) -> Self {
        let mut equal = Vec::new();
        let mut stack: Vec<&Expr> = filters.iter().collect();
        while let Some(e) = stack.pop() {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
                continue;
            };
            match op {
                Operator::And => stack.extend([left.as_ref(), right.as_ref()]),
                Operator::Eq => {
                    if let (Expr::Column(c), Expr::Literal(ScalarValue::Utf8(Some(v)), _)) =
                        (left.as_ref(), right.as_ref())
                        && MEM_EQ_COLUMNS.contains(&c.name.as_str())
                    {
                        equal.push((c.name.clone(), v.clone()));
                    }
                }
                _ => {}
            }
        }
        Self {
            min_time: pruning.min_time,
            max_time: pruning.max_time,
            equal,
        }
    }

    fn keeps(&self, s: &loupe_model::Span) -> bool {
        let start = s.start_time;
        if let (Some(min), Some(t)) = (self.min_time, start)
            && t < min
        {
            return false;
        }
        if let (Some(max), Some(t)) = (self.max_time, start)
            && t > max
        {
            return false;
        }
        self.equal.iter().all(|(c, v)| {
            let field = match c.as_str() {
                column::TRACE_ID => s.trace_id.as_deref(),
                column::RUN_ID => s.run_id.as_deref(),
                column::SPAN_ID => Some(s.span_id.as_str()),
                column::SESSION_ID => s.session_id.as_deref(),
                column::USER_ID => s.user_id.as_deref(),
                column::APP_ID => s.app_id.as_deref(),
                _ => return true,
            };
            field == Some(v.as_str())
        })
    }
}

/// Columns whose equality filters narrow the memtable rows copied.
const MEM_EQ_COLUMNS: &[&str] = &[
    column::TRACE_ID,
    column::RUN_ID,
    column::SPAN_ID,
    column::SESSION_ID,
    column::USER_ID,
    column::APP_ID,
];

/// A copy of `s` with only the payload columns a scan reads (the others
/// are left empty rather than copied).
fn copy_for_scan(
    s: &loupe_model::Span,
    input: bool,
    output: bool,
    attributes: bool,
    tags: bool,
) -> loupe_model::Span {
    let loupe_model::Span {
        project,
        trace_id,
        span_id,
        parent_span_id,
        run_id,
        session_id,
        user_id,
        app_id,
        app_name,
        workflow_id,
        workflow_version,
        span_kind,
        node_type,
        name,
        status,
        raw_status,
        error_message,
        error_class,
        start_time,
        end_time,
        model_name,
        model_provider,
        input_tokens,
        output_tokens,
        total_tokens,
        cost,
        currency,
        tool_name,
        input: input_text,
        output: output_text,
        attributes: attribute_map,
        tags: tag_map,
        source,
        ingest_version,
    } = s;
    loupe_model::Span {
        project: project.clone(),
        trace_id: trace_id.clone(),
        span_id: span_id.clone(),
        parent_span_id: parent_span_id.clone(),
        run_id: run_id.clone(),
        session_id: session_id.clone(),
        user_id: user_id.clone(),
        app_id: app_id.clone(),
        app_name: app_name.clone(),
        workflow_id: workflow_id.clone(),
        workflow_version: workflow_version.clone(),
        span_kind: *span_kind,
        node_type: node_type.clone(),
        name: name.clone(),
        status: *status,
        raw_status: raw_status.clone(),
        error_message: error_message.clone(),
        error_class: error_class.clone(),
        start_time: *start_time,
        end_time: *end_time,
        model_name: model_name.clone(),
        model_provider: model_provider.clone(),
        input_tokens: *input_tokens,
        output_tokens: *output_tokens,
        total_tokens: *total_tokens,
        cost: *cost,
        currency: currency.clone(),
        tool_name: tool_name.clone(),
        input: if input { input_text.clone() } else { None },
        output: if output { output_text.clone() } else { None },
        attributes: if attributes {
            attribute_map.clone()
        } else {
            Default::default()
        },
        tags: if tags {
            tag_map.clone()
        } else {
            Default::default()
        },
        source: source.clone(),
        ingest_version: *ingest_version,
    }
}

fn id_alternatives(e: &Expr) -> Option<Vec<(IdKind, String)>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    match op {
        Operator::Or => {
            let mut l = id_alternatives(left)?;
            l.extend(id_alternatives(right)?);
            Some(l)
        }
        Operator::Eq => {
            let (Expr::Column(c), Expr::Literal(ScalarValue::Utf8(Some(v)), _)) =
                (left.as_ref(), right.as_ref())
            else {
                return None;
            };
            let kind = match c.name.as_str() {
                column::SPAN_ID => IdKind::Span,
                column::TRACE_ID => IdKind::Trace,
                column::RUN_ID => IdKind::Run,
                _ => return None,
            };
            Some(vec![(kind, v.clone())])
        }
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
                    out.push(row.clone());
                }
            }
        }
        out
    }

    /// Visible memtable rows of a project that may pass `filters`, as one
    /// batch (or none). Payload columns the scan does not read
    /// (`projection`) are left empty: every read used to copy the whole
    /// memtable, prompts included, once per query (issue 14).
    pub(crate) fn memtable_batch(
        &self,
        project: &str,
        filters: &MemFilter,
        projection: Option<&Vec<usize>>,
    ) -> Result<Option<RecordBatch>, crate::Error> {
        let schema = schema();
        let wanted = |name: &str| {
            projection.is_none_or(|p| {
                p.iter()
                    .any(|&i| schema.fields().get(i).is_some_and(|f| f.name() == name))
            })
        };
        let (input, output, attributes, tags) = (
            wanted(column::INPUT),
            wanted(column::OUTPUT),
            wanted(column::ATTRIBUTES),
            wanted(column::TAGS),
        );
        let st = self.inner.state.lock();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mems = std::iter::once(&st.active).chain(st.frozen.iter().rev().map(|m| m.as_ref()));
        for m in mems {
            for ((p, id), row) in &m.rows {
                if p == project
                    && !st.hidden.contains(&row.version)
                    && seen.insert(id.clone())
                    && filters.keeps(&row.span)
                {
                    let span = copy_for_scan(&row.span, input, output, attributes, tags);
                    out.push(Row {
                        span,
                        version: row.version,
                    });
                }
            }
        }
        drop(st);
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows_to_batch(out.iter())?))
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = schema();
        let pruning = Pruning::from_filters(filters);
        let (parts, deletes) = self.store.parts_snapshot();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        if let Some(batch) = self
            .store
            .memtable_batch(
                &self.project,
                &MemFilter::new(filters, &pruning),
                projection,
            )
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?
        {
            if let Some(c) = &self.counter {
                c.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            }
            inputs.push(MemorySourceConfig::try_new_exec(
                &[vec![batch]],
                schema.clone(),
                projection.cloned(),
            )?);
        }

        let files: Vec<&Arc<Part>> = live_parts_of(&parts, &self.project)
            .filter(|p| pruning.keeps(p))
            .filter(|p| {
                self.text
                    .as_ref()
                    .is_none_or(|words| self.store.part_may_contain_text(p, words))
            })
            .collect();
        if let Some(c) = &self.counter {
            c.parts.fetch_add(files.len() as u64, Ordering::Relaxed);
            let rows: u64 = files.iter().map(|p| p.meta.rows).sum();
            c.rows.fetch_add(rows, Ordering::Relaxed);
        }
        if !files.is_empty() {
            let target = state.config().target_partitions().max(1);
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); target.min(files.len())];
            for (i, p) in files.iter().enumerate() {
                let n = groups.len();
                let mut file =
                    PartitionedFile::new(p.path.to_string_lossy().into_owned(), p.meta.bytes);
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
                if let Some(selection) = selection {
                    file = file.with_extension(ParquetRowSelection::new(selection));
                }
                groups[i % n].push(file);
            }
            let mut source = ParquetSource::new(schema.clone())
                .with_pushdown_filters(true)
                .with_bloom_filter_on_read(true)
                .with_enable_page_index(true);
            if let Some(expr) = conjunction(filters.to_vec()) {
                let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
                source = source.with_predicate(state.create_physical_expr(expr, &df_schema)?);
            }
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                    .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                    .with_projection_indices(projection.cloned())?
                    .with_limit(limit)
                    .build();
            let plan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
            inputs.push(plan);
        }

        if inputs.is_empty() {
            let projected = Arc::new(match projection {
                Some(p) => schema.project(p)?,
                None => schema.as_ref().clone(),
            });
            return Ok(MemorySourceConfig::try_new_exec(
                &[vec![]],
                projected,
                None,
            )?);
        }
        UnionExec::try_new(inputs)
    }
}
