//! The DataFusion `TableProvider` of one project's log records (the `logs`
//! source of the query language).
//!
//! A scan unions the memtables' records of the project (converted to
//! batches of [`log_schema`], pruned by time) and a Parquet scan of the
//! project's parts that overlap the time range. Parts are narrowed before
//! they are opened: by the full-text index (blocks of rows that may hold
//! every required phrase; a part with none is skipped) and by the run index
//! (`trace_id = …` / `run_id = …`). The filters go into the Parquet reader
//! (`table::parquet_scan`): severity, service and stream comparisons prune
//! row groups and pages by their statistics and run as row filters, so the
//! body and maps are decoded only for rows that pass. Filters are reported
//! `Inexact`: DataFusion applies them again on top, so indexes and
//! statistics change cost, never answers.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use loupe_model::{LogRecord, log_column, log_schema};
use parquet::arrow::arrow_reader::RowSelection;

use super::intersect;
use super::part::{LogPart, to_batch};
use crate::Store;
use crate::query::ScanCounter;
use crate::table::{FileScan, ParquetScan, Pruning, memory_scan, parquet_scan, union_or_empty};

/// The log records of one project as a DataFusion table.
pub(crate) struct LogsTable {
    store: Store,
    project: String,
    counter: Arc<ScanCounter>,
    /// Phrases every row the query keeps contains (top-level full text).
    text: Vec<String>,
}

impl std::fmt::Debug for LogsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogsTable")
            .field("project", &self.project)
            .finish()
    }
}

impl LogsTable {
    /// The table of `project`; records of other projects are never visible.
    pub(crate) fn new(
        store: Store,
        project: &str,
        counter: Arc<ScanCounter>,
        text: Vec<String>,
    ) -> Self {
        Self {
            store,
            project: project.to_owned(),
            counter,
            text,
        }
    }

    /// The rows of `part` the indexes leave: `None` for all, an empty list
    /// for none.
    fn rows(&self, part: &LogPart, pruning: &Pruning) -> Option<Vec<Range<usize>>> {
        let by_id = pruning.rows_by(|id| {
            part.run_rows(id)
                .into_iter()
                .map(|r| u32::try_from(r.start).unwrap_or(u32::MAX))
                .collect()
        });
        let mut out: Option<Vec<Range<usize>>> = by_id.map(|rows| {
            rows.into_iter()
                .map(|r| r as usize..r as usize + 1)
                .collect()
        });
        if !self.text.is_empty()
            && let Some(ix) = self.store.inner.logs.text_index(part)
        {
            let text = ix.candidates(&self.text);
            out = Some(match out {
                None => text,
                Some(prev) => intersect(&prev, &text),
            });
        }
        out
    }
}

#[async_trait]
impl TableProvider for LogsTable {
    fn schema(&self) -> SchemaRef {
        log_schema()
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
        let schema = log_schema();
        let pruning = Pruning::from_filters(filters, log_column::TIME);
        let in_range = |min: i64, max: i64| {
            pruning.min_time.is_none_or(|t| max >= t) && pruning.max_time.is_none_or(|t| min <= t)
        };
        let (memtable, parts) = self.store.inner.logs.snapshot();
        let records: Vec<LogRecord> = memtable
            .iter()
            .filter(|r| r.project == self.project && in_range(r.time, r.time))
            .map(|r| LogRecord::clone(r))
            .collect();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        self.counter
            .rows
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        if !records.is_empty() {
            let external = |e: crate::Error| DataFusionError::External(Box::new(e));
            let batch = to_batch(&records).map_err(external)?;
            let batch = match projection {
                Some(p) => batch.project(p)?,
                None => batch,
            };
            inputs.extend(memory_scan(vec![batch], &schema, projection)?);
        }
        let mut files = Vec::new();
        for part in parts.iter().filter(|p| {
            p.meta.project == self.project && in_range(p.meta.min_time, p.meta.max_time)
        }) {
            let total = usize::try_from(part.meta.rows).unwrap_or(usize::MAX);
            let selection = match self.rows(part, &pruning) {
                Some(ranges) if ranges.is_empty() => continue,
                Some(ranges) => Some(RowSelection::from_consecutive_ranges(
                    ranges.into_iter(),
                    total,
                )),
                None => None,
            };
            let rows = selection
                .as_ref()
                .map_or(part.meta.rows, |s| s.row_count() as u64);
            self.counter.rows.fetch_add(rows, Ordering::Relaxed);
            self.counter.parts.fetch_add(1, Ordering::Relaxed);
            files.push(FileScan {
                path: part.path.clone(),
                bytes: part.meta.bytes,
                selection,
                part: part.meta.id,
            });
        }
        let scan = ParquetScan {
            files,
            projection,
            filters,
            limit,
            adapter: None,
            row_filters: true,
            parts: false,
            selectors: false,
        };
        inputs.extend(parquet_scan(state, &schema, scan)?);
        union_or_empty(inputs, &schema, projection)
    }
}
