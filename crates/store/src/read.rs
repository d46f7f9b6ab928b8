//! Reads for the minimal API (one run, a page of spans) and ad-hoc SQL, all
//! through DataFusion over [`SpansTable`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::SessionConfig;
use futures::FutureExt;
use futures::future::BoxFuture;
use loupe_backend::{
    BatchStream, Cond, Cursor, OffsetPage, PageQuery, Plan, QueryLimits, QueryResult, Refused,
    SpanFilter, SpanPage, SpanQuery, SpanReader, SpanWriter, StoreError, TracesQuery, WriteAck,
    tree_order,
};
use loupe_model::{ProjectId, Span, column};

use crate::convert::batch_to_rows;
use crate::parts::RowPick;
use crate::{Error, SpansTable, Store};

/// Name under which the project's spans are registered for SQL.
pub const SPANS_TABLE: &str = "spans";

fn ts(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

impl Store {
    /// A DataFusion session with the project's spans registered as `spans`
    /// (the model's columns: `loupe_model::schema()`).
    pub fn session(&self, project: &ProjectId) -> Result<SessionContext, Error> {
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false);
        // Reads outside `query_plan` (sessions, users, the Langfuse API)
        // reserve from the same pools as queries.
        let runtime = self.query_runtime(QueryLimits::default().memory_bytes)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_table(
            SPANS_TABLE,
            Arc::new(SpansTable::new(self.clone(), project.as_str()).model_columns()),
        )?;
        Ok(ctx)
    }

    /// Runs SQL over the project's `spans` table.
    pub async fn sql(&self, project: &ProjectId, sql: &str) -> Result<Vec<RecordBatch>, Error> {
        let ctx = self.session(project)?;
        Ok(ctx.sql(sql).await?.collect().await?)
    }

    /// Every span of `project` that started in `[from_ns, to_ns)`, all
    /// columns in the stored schema, as a stream of batches: what `loupe
    /// export` writes for a time range of raw spans. Parts outside the
    /// range (hot or cold) are pruned before any is read.
    pub async fn spans_between(
        &self,
        project: &ProjectId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<futures::stream::BoxStream<'static, Result<RecordBatch, Error>>, Error> {
        use futures::StreamExt;
        let ctx = self.session(project)?;
        let df = ctx.table(SPANS_TABLE).await?.filter(
            col(column::START_TIME)
                .gt_eq(ts(from_ns))
                .and(col(column::START_TIME).lt(ts(to_ns))),
        )?;
        let stream = df.execute_stream().await?;
        Ok(stream.map(|b| b.map_err(Error::from)).boxed())
    }

    /// Every span whose trace id or run id is `id`, in tree order.
    ///
    /// The id path, not a scan: the memtables, then in each part only the
    /// rows its position index names for `id` (a part without any costs no
    /// I/O), read as the few pages that hold them.
    pub async fn trace_spans(&self, project: &ProjectId, id: &str) -> Result<Vec<Span>, Error> {
        let store = self.clone();
        let (project, id) = (project.as_str().to_owned(), id.to_owned());
        tokio::task::spawn_blocking(move || store.trace_spans_blocking(&project, &id))
            .await
            .map_err(|e| Error::Internal(format!("trace read task failed: {e}")))?
    }

    fn trace_spans_blocking(&self, project: &str, id: &str) -> Result<Vec<Span>, Error> {
        let of_run =
            |s: &Span| s.trace_id.as_deref() == Some(id) || s.run_id.as_deref() == Some(id);
        let mut seen = std::collections::HashSet::new();
        let mut spans = Vec::new();
        for row in self.memtable_rows(project, of_run) {
            seen.insert(row.span.span_id.clone());
            spans.push(row.span);
        }
        let (parts, deletes) = self.parts_snapshot();
        for part in crate::live_parts_of(&parts, project) {
            let dv = crate::deletes::of(&deletes, part.meta.id);
            let cache = Some(self.inner.parquet_metadata.as_ref());
            for row in part.read_run(RowPick::TraceOrRun(id), dv, cache)? {
                if seen.insert(row.span.span_id.clone()) {
                    spans.push(row.span);
                }
            }
        }
        Ok(tree_order(spans))
    }

    /// A page of spans, newest first.
    pub async fn list_spans(&self, query: SpanQuery) -> Result<SpanPage, Error> {
        let ctx = self.session(&query.project)?;
        let mut filters = filter_exprs(&query.filter);
        // Rows without a start time sort as the oldest (i64::MIN).
        let start =
            datafusion::functions::expr_fn::coalesce(vec![col(column::START_TIME), ts(i64::MIN)]);
        if let Some(Cursor {
            start_time,
            span_id,
        }) = &query.cursor
        {
            filters.push(
                start.clone().lt(ts(*start_time)).or(start
                    .clone()
                    .eq(ts(*start_time))
                    .and(col(column::SPAN_ID).lt(lit(span_id.as_str())))),
            );
        }
        let limit = query.limit.clamp(1, 1000);
        let mut df = ctx.table(SPANS_TABLE).await?;
        for filter in filters {
            df = df.filter(filter)?;
        }
        let df = df
            .sort(vec![
                start.sort(false, false),
                col(column::SPAN_ID).sort(false, false),
            ])?
            .limit(0, Some(limit + 1))?;
        let mut spans = Vec::new();
        for b in &df.collect().await? {
            spans.extend(batch_to_rows(b)?.into_iter().map(|r| r.span));
        }
        Ok(SpanPage::from_overfetched(spans, limit))
    }
}

impl Store {
    /// An offset page of spans (with the total when asked), by start time.
    pub async fn page_spans(&self, query: PageQuery) -> Result<OffsetPage, Error> {
        let ctx = self.session(&query.project)?;
        let mut df = ctx.table(SPANS_TABLE).await?;
        let conds = query.conds.iter().map(cond_expr);
        for filter in filter_exprs(&query.filter).into_iter().chain(conds) {
            df = df.filter(filter)?;
        }
        let total = if query.count {
            Some(df.clone().count().await? as u64)
        } else {
            None
        };
        let start =
            datafusion::functions::expr_fn::coalesce(vec![col(column::START_TIME), ts(i64::MIN)]);
        let asc = query.oldest_first;
        let df = df
            .sort(vec![
                start.sort(asc, false),
                col(column::SPAN_ID).sort(asc, false),
            ])?
            .limit(query.offset, Some(query.limit.clamp(1, 10_000)))?;
        let mut spans = Vec::new();
        for b in &df.collect().await? {
            spans.extend(batch_to_rows(b)?.into_iter().map(|r| r.span));
        }
        Ok(OffsetPage { spans, total })
    }
}

impl SpanWriter for Store {
    fn append(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
        async move { Store::append(self, spans).await.map_err(StoreError::from) }.boxed()
    }

    fn append_or_return(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, Refused>> {
        async move {
            Store::append_or_return(self, spans)
                .await
                .map_err(|(e, spans)| Refused::new(StoreError::from(e), spans))
        }
        .boxed()
    }
}

impl SpanReader for Store {
    fn trace<'a>(
        &'a self,
        project: &'a ProjectId,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Span>, StoreError>> {
        async move {
            self.trace_spans(project, id)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn traces<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a TracesQuery,
    ) -> BoxFuture<'a, Result<Option<Vec<Span>>, StoreError>> {
        async move {
            self.traces_spans(project, query)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn list(&self, query: SpanQuery) -> BoxFuture<'_, Result<SpanPage, StoreError>> {
        async move { self.list_spans(query).await.map_err(StoreError::from) }.boxed()
    }

    fn page(&self, query: PageQuery) -> BoxFuture<'_, Result<OffsetPage, StoreError>> {
        async move { self.page_spans(query).await.map_err(StoreError::from) }.boxed()
    }

    fn query<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        async move {
            self.query_plan(project, plan, limits)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn query_stream<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        async move {
            self.query_plan_stream(project, plan, limits)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn sql<'a>(
        &'a self,
        project: &'a ProjectId,
        sql: &'a str,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        async move {
            self.read_only_sql(project, sql, limits)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn sql_with_partials<'a>(
        &'a self,
        project: &'a ProjectId,
        partials: &'a loupe_backend::Partials<'a>,
        statement: &'a (dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        async move {
            Store::sql_with_partials(self, project, partials, statement, limits)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn session_runs<'a>(
        &'a self,
        project: &'a ProjectId,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<loupe_backend::RunSummary>, StoreError>> {
        async move {
            Store::session_runs(self, project, session_id)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn user_summary<'a>(
        &'a self,
        project: &'a ProjectId,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<loupe_backend::UserSummary>, StoreError>> {
        async move {
            Store::user_summary(self, project, user_id)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }
}

/// The [`SpanFilter`] as DataFusion predicates.
fn filter_exprs(f: &SpanFilter) -> Vec<Expr> {
    let mut filters: Vec<Expr> = Vec::new();
    if let Some(t) = f.from {
        filters.push(col(column::START_TIME).gt_eq(ts(t)));
    }
    if let Some(t) = f.to {
        filters.push(col(column::START_TIME).lt(ts(t)));
    }
    let eq = [
        (column::APP_ID, &f.app_id),
        (column::NODE_TYPE, &f.node_type),
        (column::TOOL_NAME, &f.tool_name),
        (column::RUN_ID, &f.run_id),
        (column::TRACE_ID, &f.trace_id),
        (column::SESSION_ID, &f.session_id),
        (column::USER_ID, &f.user_id),
    ];
    for (name, value) in eq {
        if let Some(v) = value {
            filters.push(col(name).eq(lit(v.as_str())));
        }
    }
    if let Some(s) = f.status {
        filters.push(col(column::STATUS).eq(lit(s.as_str())));
    }
    if let Some(k) = f.span_kind {
        filters.push(col(column::SPAN_KIND).eq(lit(k.as_str())));
    }
    filters
}

/// One [`Cond`] as a DataFusion predicate.
fn cond_expr(cond: &Cond) -> Expr {
    use datafusion::functions::core::expr_fn::get_field;
    let attr = |key: &str| get_field(col(column::ATTRIBUTES), key);
    match cond {
        Cond::Root => col(column::PARENT_SPAN_ID).is_null(),
        Cond::NotRoot => col(column::PARENT_SPAN_ID).is_not_null(),
        Cond::Name(v) => col(column::NAME).eq(lit(v.as_str())),
        Cond::Parent(v) => col(column::PARENT_SPAN_ID).eq(lit(v.as_str())),
        Cond::Kind(k) => col(column::SPAN_KIND).eq(lit(k.as_str())),
        Cond::NodeTypeNot(v) => col(column::NODE_TYPE)
            .is_null()
            .or(col(column::NODE_TYPE).not_eq(lit(v.as_str()))),
        Cond::AttrEq(k, v) => attr(k).eq(lit(v.as_str())),
        Cond::AttrContains(k, v) => {
            datafusion::functions::unicode::expr_fn::strpos(attr(k), lit(v.as_str())).gt(lit(0i32))
        }
        Cond::TraceIn(ids) => {
            col(column::TRACE_ID).in_list(ids.iter().map(|i| lit(i.as_str())).collect(), false)
        }
        Cond::Any(conds) => conds
            .iter()
            .map(cond_expr)
            .reduce(Expr::or)
            .unwrap_or(lit(false)),
        _ => lit(false),
    }
}
