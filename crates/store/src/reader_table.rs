//! The `spans` table of another backend (`SpanReader::scan`), so the SQL
//! engine of this crate — its dialect, its bounds against hostile
//! statements, its memory pool — answers `POST /api/v1/sql` and the
//! product analytics over spans kept elsewhere (ClickHouse), with the same
//! answers as over the embedded store.
//!
//! The scan asks the backend for the projected columns only and hands it
//! the time bounds and text equalities found in the filters; they are
//! reported `Inexact`, so DataFusion applies every filter again and a
//! backend may ignore any of them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::{StreamExt, TryStreamExt};
use loupe_backend::{ScanRequest, SpanReader};
use loupe_model::{ProjectId, column, schema};

use crate::query::ScanCounter;
use crate::table::Pruning;

/// One project's spans as read through a [`SpanReader::scan`].
pub struct ReaderTable {
    reader: Arc<dyn SpanReader>,
    project: ProjectId,
    counter: Arc<ScanCounter>,
}

impl std::fmt::Debug for ReaderTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderTable")
            .field("project", &self.project)
            .finish()
    }
}

impl ReaderTable {
    /// The spans of `project` in `reader`, counting the rows read.
    pub fn new(reader: Arc<dyn SpanReader>, project: ProjectId, counter: Arc<ScanCounter>) -> Self {
        Self {
            reader,
            project,
            counter,
        }
    }
}

#[async_trait]
impl TableProvider for ReaderTable {
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
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let full = schema();
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..full.fields().len()).collect(),
        };
        let projected = Arc::new(full.project(&columns)?);
        let pruning = Pruning::from_filters(filters, column::START_TIME);
        let request = ScanRequest {
            columns,
            min_start_ns: pruning.min_time,
            max_start_ns: pruning.max_time,
            any_of: filters
                .iter()
                .flat_map(conjuncts)
                .filter_map(text_alternatives)
                .collect(),
            batch_rows: 0,
        };
        let partition = Arc::new(ScanPartition {
            reader: self.reader.clone(),
            project: self.project.clone(),
            request,
            schema: projected.clone(),
            counter: self.counter.clone(),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            projected,
            vec![partition],
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// The one partition of a [`ReaderTable`] scan: the backend's stream.
struct ScanPartition {
    reader: Arc<dyn SpanReader>,
    project: ProjectId,
    request: ScanRequest,
    schema: SchemaRef,
    counter: Arc<ScanCounter>,
}

impl std::fmt::Debug for ScanPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanPartition")
            .field("project", &self.project)
            .field("request", &self.request)
            .finish()
    }
}

impl PartitionStream for ScanPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (reader, project, request) = (
            self.reader.clone(),
            self.project.clone(),
            self.request.clone(),
        );
        let counter = self.counter.clone();
        let external = |e: loupe_backend::StoreError| DataFusionError::External(Box::new(e));
        let stream = futures::stream::once(async move {
            match reader.scan(&project, request).await {
                Ok(batches) => batches.map_err(external).left_stream(),
                Err(e) => futures::stream::once(async move { Err(external(e)) }).right_stream(),
            }
        })
        .flatten()
        .map(move |batch| {
            let batch = batch?;
            counter
                .rows
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            Ok(batch)
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// The terms of an `AND` chain.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut out = conjuncts(left);
            out.extend(conjuncts(right));
            out
        }
        other => vec![other],
    }
}

/// `column = 'text'`, `column IN ('a', 'b')` or an `OR` of them: the
/// `(column, value)` pairs one of which every kept row has.
fn text_alternatives(e: &Expr) -> Option<Vec<(String, String)>> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut l = text_alternatives(left)?;
            l.extend(text_alternatives(right)?);
            Some(l)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                Some(vec![(c.name.clone(), text(v)?)])
            }
            _ => None,
        },
        Expr::InList(list) if !list.negated => {
            let Expr::Column(c) = list.expr.as_ref() else {
                return None;
            };
            list.list
                .iter()
                .map(|v| match v {
                    Expr::Literal(v, _) => Some((c.name.clone(), text(v)?)),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

fn text(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn text_equalities_and_their_ors_narrow_and_nothing_else_does() {
        let e = col("span_kind")
            .eq(lit("workflow"))
            .or(col("trace_id").eq(lit("t1")));
        assert_eq!(
            text_alternatives(&e),
            Some(vec![
                ("span_kind".into(), "workflow".into()),
                ("trace_id".into(), "t1".into())
            ])
        );
        let e = col("status").in_list(vec![lit("error"), lit("ok")], false);
        assert_eq!(text_alternatives(&e).map(|a| a.len()), Some(2));
        // An OR with a term that does not narrow narrows nothing.
        let e = col("span_kind").eq(lit("llm")).or(col("cost").gt(lit(1.0)));
        assert_eq!(text_alternatives(&e), None);
        assert_eq!(
            text_alternatives(&col("status").in_list(vec![lit("a")], true)),
            None
        );
        assert_eq!(text_alternatives(&col("cost").eq(lit(1.0))), None);
        let and = col("a")
            .eq(lit("x"))
            .and(col("b").eq(lit("y")).and(col("c").gt(lit(1))));
        assert_eq!(conjuncts(&and).len(), 3);
    }
}
