//! `Plan` → DataFusion: the embedded store's answer to a query.
//!
//! A plan compiles to one `DataFrame` over the project's [`SpansTable`]:
//! the time range as `start_time` bounds (so parts outside it are pruned),
//! the filter tree as one predicate (`compile.rs`), then either the listing
//! columns or an aggregate (group keys, `date_bin` buckets, aggregates), the
//! total sort order and the limit. `run has (…)` is first answered by a
//! scan of its own as a list of run keys (`run_id`, else `trace_id`;
//! `run_has.rs`); past 100,000 runs it stays an uncorrelated
//! `IN (subquery)`, which DataFusion turns into a semi join (a mark join
//! under `OR`/`NOT`).
//!
//! Read-only SQL (`sql.rs`) runs over the same table with DDL, DML and
//! statements disabled and a memory pool limit.
//!
//! Full-text search (`Filter::Text`) is a case-insensitive substring match
//! on `input`, `output` and `error_message`. When the words are required by
//! the whole filter (top level, no `run has`), the scan skips the parts and
//! the blocks of rows whose side index (`fts.rs`, trigram filters per
//! block) rules them out; parts without an index are scanned whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, SortExpr, lit};
use datafusion::prelude::{SessionConfig, ident};
use futures::StreamExt;
use loupe_backend::StoreError;
use loupe_backend::plan::{
    BatchStream, Cmp, Column, FieldRef, Filter, Literal, Output, Plan, QueryLimits, QueryResult,
    QueryStats, SortColumn, Source, ValueType, batch_rows, value_bytes, value_type,
};
use loupe_model::{ProjectId, column, log_column};

use crate::read::SPANS_TABLE;
use crate::{Error, SpansTable, Store};

mod bounded;
mod compile;
mod logs;
mod pool;
pub(crate) mod rollup;
mod run_has;
mod signature;
mod sql;
mod sql_guard;
pub(crate) use pool::BUSY_MARK;
pub use sql::MAX_SQL_BYTES;
pub use sql_guard::MAX_SQL_EXPR_DEPTH;

#[cfg(test)]
mod tests;

pub(crate) use compile::{field_expr, ts};
#[cfg(test)]
pub(crate) use run_has::RUN_HAS_KEYS_MAX;
use run_has::RunKeys;

/// Memory for the Parquet footers and page indexes queries keep between
/// them, least recently used out first.
pub(crate) const PARQUET_METADATA_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Listings with a limit up to this run in two phases ([`Store::late_rows`]).
const LATE_ROWS_MAX: u64 = 10_000;

/// Rows the runs a plan requires may hold for it to be answered over them
/// alone ([`Store::by_ids`]); more are scanned as any plan. (A Dify run
/// is tens to hundreds of spans.)
const BY_IDS_ROWS_MAX: usize = 2_000;

/// Ids in the list a plan requires ([`required_ids`]): a short list is a
/// few runs; a long one is left to the scan's pruning.
const BY_IDS_MAX: usize = 64;

/// The span id column carried through the second phase of a listing.
const LATE_ID: &str = "__late_span_id";

/// The first window of a listing ordered by start time (then at least 4×
/// wider each time, wider when the rows found so far say so).
const FIRST_WINDOW_NS: i64 = 3_600_000_000_000;

/// What differs between the tables a plan can read.
pub(crate) struct Shape {
    /// The time column: the plan's range, `bucket()`, the default order.
    pub(crate) time: &'static str,
    /// The columns a full-text filter searches.
    pub(crate) text: &'static [&'static str],
    /// The table has the store's mirror columns (`mirrors.rs`).
    pub(crate) mirrored: bool,
}

pub(crate) const SPANS_SHAPE: Shape = Shape {
    time: column::START_TIME,
    text: &[column::INPUT, column::OUTPUT, column::ERROR_MESSAGE],
    mirrored: true,
};

const LOGS_SHAPE: Shape = Shape {
    time: log_column::TIME,
    text: &[log_column::BODY],
    mirrored: false,
};

/// The shape of the table `source` names.
pub(crate) fn shape_of(source: Source) -> &'static Shape {
    match source {
        Source::Spans => &SPANS_SHAPE,
        Source::Logs => &LOGS_SHAPE,
    }
}

/// Parts and rows a scan read (shared with the table provider).
#[derive(Debug, Default)]
pub struct ScanCounter {
    /// Parquet parts read after pruning.
    pub parts: AtomicU64,
    /// Rows in the memtable snapshot and the parts read.
    pub rows: AtomicU64,
}

impl ScanCounter {
    fn stats(&self, started: Instant) -> QueryStats {
        QueryStats {
            rows_scanned: Some(self.rows.load(Ordering::Relaxed)),
            parts_scanned: self.parts.load(Ordering::Relaxed),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            truncated: false,
            from_rollups: false,
            approximate: false,
        }
    }
}

impl Store {
    /// Makes every query reserve its memory from one pool of `total_bytes`
    /// (`[query] total_memory_bytes`), besides its own limit.
    pub fn set_query_memory(&self, total_bytes: usize) {
        *self.inner.query_pool.lock() = Some(pool::global(total_bytes));
    }

    /// A runtime whose memory pool is `limit` bytes inside the shared pool,
    /// with the store's Parquet metadata cache.
    pub(crate) fn query_runtime(
        &self,
        limit: usize,
    ) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>, Error> {
        let cache = CacheManagerConfig::default()
            .with_file_metadata_cache(Some(self.inner.parquet_metadata.clone()))
            .with_metadata_cache_limit(PARQUET_METADATA_CACHE_BYTES);
        Ok(RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool::QueryPool::new(
                self.inner.query_pool.lock().clone(),
                limit,
            )))
            .with_cache_manager(cache)
            .build_arc()?)
    }

    /// Bytes the queries running now have reserved (`None`: no shared pool).
    pub fn query_memory_reserved(&self) -> Option<usize> {
        self.inner.query_pool.lock().as_ref().map(|p| p.reserved())
    }

    /// A session over the project's `spans` with a memory pool of
    /// `limits.memory_bytes`, counting what its scans read.
    pub(crate) fn limited_session(
        &self,
        project: &ProjectId,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
        text: Vec<String>,
    ) -> Result<SessionContext, Error> {
        let runtime = self.query_runtime(limits.memory_bytes)?;
        self.limited_session_on(runtime, project, limits, counter, text)
    }

    /// [`Self::limited_session`] on `runtime`: sessions sharing one runtime
    /// share its memory pool (the scans of one query's `run has`).
    pub(crate) fn limited_session_on(
        &self,
        runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
        project: &ProjectId,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
        text: Vec<String>,
    ) -> Result<SessionContext, Error> {
        let ctx = self.bare_session_on(runtime, limits)?;
        let table = SpansTable::new(self.clone(), project.as_str())
            .with_counter(counter)
            .with_text(text);
        ctx.register_table(SPANS_TABLE, Arc::new(table))?;
        Ok(ctx)
    }

    /// A session with no table yet: the memory pool of
    /// `limits.memory_bytes`, the JSON functions and the bounded builders.
    pub(crate) fn bare_session(&self, limits: QueryLimits) -> Result<SessionContext, Error> {
        let runtime = self.query_runtime(limits.memory_bytes)?;
        self.bare_session_on(runtime, limits)
    }

    /// [`Self::bare_session`] on `runtime`.
    fn bare_session_on(
        &self,
        runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
        limits: QueryLimits,
    ) -> Result<SessionContext, Error> {
        let mut config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(false);
        // A recursive CTE grows its working table without bound (doubling
        // a string each step); Loupe's queries need none.
        config.options_mut().execution.enable_recursive_ctes = false;
        config.options_mut().sql_parser.recursion_limit =
            datafusion::common::config::ConfigNonZeroUsize::try_new(
                sql_guard::SQL_RECURSION_LIMIT,
            )?;
        let mut ctx = SessionContext::new_with_config_rt(config, runtime);
        // json_as_text, json_get_str, … for SQL over the JSON payloads.
        datafusion_functions_json::register_all(&mut ctx)?;
        bounded::register(&ctx, limits.max_function_bytes);
        Ok(ctx)
    }

    /// The plan as a DataFrame, and its output column types. For a
    /// listing, `only` replaces the plan's columns (the first phase of
    /// [`Self::late_rows`]).
    async fn plan_frame(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
        only: Option<Vec<Expr>>,
        found: &[Option<RunKeys>],
    ) -> Result<(DataFrame, Vec<Option<ValueType>>), Error> {
        let ctx = self.limited_session(project, limits, counter, required_text(plan, found))?;
        frame_on(&ctx, plan, only, found).await
    }

    /// A listing whose filter requires one of a few runs (a conjunct
    /// `run_id = …`, `trace_id = …` or an `in` list of them,
    /// [`required_ids`]) answered in one phase over those runs' rows, read
    /// by position as the run view reads them: one run's spans at 1M runs
    /// took 23–28 ms as a scan (two phases, each planning over the parts
    /// and decoding a page per column and row), 8–11 ms this way. `None`:
    /// not such a listing, or its runs hold more than [`BY_IDS_ROWS_MAX`]
    /// rows (it is then scanned).
    async fn by_ids(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
        started: Instant,
    ) -> Result<Option<QueryResult>, Error> {
        // An aggregate reads few columns, and the scan reads them for the
        // runs' rows alone already (`Pruning` in `table.rs`): 5 ms for a
        // run's count at 1M runs, 7 ms by id, which reads every column.
        if !matches!(plan.output, Output::Rows(_)) {
            return Ok(None);
        }
        let Some(ids) = plan.filter.as_ref().and_then(required_ids) else {
            return Ok(None);
        };
        let store = self.clone();
        let name = project.as_str().to_owned();
        let read = tokio::task::spawn_blocking(move || {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            store.rows_of_ids(&name, &ids, &[], BY_IDS_ROWS_MAX)
        })
        .await
        .map_err(|e| Error::Internal(format!("read by id failed: {e}")))??;
        let Some((rows, parts)) = read else {
            return Ok(None);
        };
        // The rows are held whole, outside the query's memory pool: runs
        // larger than the pool are scanned, under it, instead.
        let bytes: usize = rows.iter().map(|r| r.span.approx_bytes()).sum();
        if bytes > limits.memory_bytes {
            return Ok(None);
        }
        let counter = Arc::new(ScanCounter::default());
        counter.parts.fetch_add(parts, Ordering::Relaxed);
        let batch = crate::convert::rows_to_batch(rows.iter())?;
        let ctx = self.bare_session(limits)?;
        let table = SpansTable::new(self.clone(), project.as_str())
            .with_counter(counter.clone())
            .with_rows(batch);
        ctx.register_table(SPANS_TABLE, Arc::new(table))?;
        let (df, types) = frame_on(&ctx, plan, None, &[]).await?;
        Ok(Some(answer(df, &types, limits, &counter, started).await?))
    }

    /// A limited listing in two phases (late materialisation): filter,
    /// sort and limit reading only the span id and start time, then fetch
    /// the requested columns of just those spans (by id, within their time
    /// bounds, so id blooms and page statistics prune) and put them back in
    /// the first phase's order. Without it, every matching row would carry
    /// its input/output text and attribute maps into the sort.
    async fn late_rows(
        &self,
        project: &ProjectId,
        plan: &Plan,
        fields: &[FieldRef],
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
        found: &[Option<RunKeys>],
    ) -> Result<QueryResult, Error> {
        let picked = self
            .first_phase(project, plan, limits, counter.clone(), true, found)
            .await?;
        let mut order = std::collections::HashMap::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (i, row) in picked.rows.iter().enumerate() {
            let (Some(id), Some(t)) = (
                row.first().and_then(serde_json::Value::as_str),
                row.get(1).and_then(serde_json::Value::as_i64),
            ) else {
                continue;
            };
            order.insert(id.to_owned(), i);
            lo = lo.min(t);
            hi = hi.max(t);
        }
        let mut select: Vec<Expr> = fields
            .iter()
            .map(|f| field_expr(f, &SPANS_SHAPE).alias(f.output_name()))
            .collect();
        select.push(ident(column::SPAN_ID).alias(LATE_ID));
        let mut types: Vec<Option<ValueType>> = fields.iter().map(|f| Some(f.ty())).collect();
        types.push(None);
        let ctx = self.limited_session(project, limits, counter, Vec::new())?;
        let ids: Vec<Expr> = order.keys().map(|id| lit(id.as_str())).collect();
        // The filter's conjuncts that name rows by a part's position
        // indexes (a run or trace id, `status=error`): the spans fetched
        // match them, and with them the scan reads those rows alone instead
        // of every span id of the parts a span-id bloom keeps (an error
        // listing at 1M runs: 7,682 rows read instead of 200,504).
        let narrowing: Vec<Expr> = match &plan.filter {
            Some(f) => {
                let base = ctx.table(SPANS_TABLE).await?.logical_plan().clone();
                let mut runs = compile::RunHas {
                    base: &base,
                    found,
                    n: 0,
                };
                let all = compile::filter_expr(f, &mut runs, &SPANS_SHAPE)?;
                split_conjunction(&all)
                    .into_iter()
                    .filter(|c| crate::table::narrows_rows(c))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        let fetch = async |from: i64, to: i64| -> Result<QueryResult, Error> {
            let mut df = ctx
                .table(SPANS_TABLE)
                .await?
                .filter(ident(column::START_TIME).gt_eq(ts(from)))?
                .filter(ident(column::START_TIME).lt_eq(ts(to)))?
                .filter(ident(column::SPAN_ID).in_list(ids.clone(), false))?;
            for c in &narrowing {
                df = df.filter(c.clone())?;
            }
            let df = df.select(select.clone())?;
            collect(
                df.execute_stream().await?,
                usize::MAX,
                limits.max_answer_bytes,
                &types,
            )
            .await
        };
        let mut result = if ids.is_empty() {
            fetch(0, -1).await?
        } else {
            fetch(lo, hi).await?
        };
        if result.rows.len() < order.len() {
            // A span updated between the phases may have moved in time.
            result = fetch(plan.from_ns, plan.to_ns).await?;
        }
        let position = |row: &Vec<serde_json::Value>| {
            row.last()
                .and_then(serde_json::Value::as_str)
                .and_then(|id| order.get(id).copied())
                .unwrap_or(usize::MAX)
        };
        result.rows.sort_by_key(position);
        for row in &mut result.rows {
            row.pop();
        }
        result.columns.pop();
        result.stats.truncated = picked.stats.truncated;
        Ok(result)
    }

    /// The first phase of [`Self::late_rows`]: the span id and start time
    /// of the rows the listing keeps. A listing ordered by start time reads
    /// its range in windows from the end it starts at (the newest hour,
    /// then at least 4 times as long each time, longer when the rows found
    /// so far say the rest needs it) and stops once the limit is reached:
    /// every row of a window sorts before every row of the next, so the
    /// answer is the whole range's, and the first page of a week-long range
    /// reads only its newest hours. Not with a `run has` left as a subquery
    /// (none of `found`), whose inner spans must come from the whole range.
    ///
    /// `keys_only`: the span id and start time (the first phase); else the
    /// plan's own columns (a listing of light columns needs no second phase).
    async fn first_phase(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
        keys_only: bool,
        found: &[Option<RunKeys>],
    ) -> Result<QueryResult, Error> {
        let keys = || keys_only.then(|| vec![ident(column::SPAN_ID), ident(column::START_TIME)]);
        let by_start = plan.sort.first().is_some_and(|k| {
            matches!(&k.column, SortColumn::Field(FieldRef::Column { name, .. }) if name == column::START_TIME)
        });
        let limit = plan.limit.unwrap_or(u64::MAX);
        let subquery = plan
            .filter
            .as_ref()
            .is_some_and(|f| has_run_has_subquery(f, found));
        if !by_start || subquery || limit == u64::MAX {
            let (df, types) = self
                .plan_frame(project, plan, limits, counter, keys(), found)
                .await?;
            return collect(
                df.execute_stream().await?,
                limits.max_rows,
                limits.max_answer_bytes,
                &types,
            )
            .await;
        }
        let descending = plan.sort.first().is_some_and(|k| k.descending);
        let mut width = first_window(plan, found, limit);
        // A keyset page (`start_time<T OR (start_time=T …)`) starts at T,
        // not at the range's end: no empty windows above it.
        let mut edge = if descending {
            start_time_bound(plan.filter.as_ref()).map_or(plan.to_ns, |b| b.min(plan.to_ns))
        } else {
            plan.from_ns
        };
        let mut out: Option<QueryResult> = None;
        loop {
            let mut window = plan.clone();
            if descending {
                window.from_ns = edge.saturating_sub(width).max(plan.from_ns);
                window.to_ns = edge;
                edge = window.from_ns;
            } else {
                window.from_ns = edge;
                window.to_ns = edge.saturating_add(width).min(plan.to_ns);
                edge = window.to_ns;
            }
            let got = out.as_ref().map_or(0, |r| r.rows.len() as u64);
            window.limit = Some(limit - got);
            let (df, types) = self
                .plan_frame(project, &window, limits, counter.clone(), keys(), found)
                .await?;
            let part = collect(
                df.execute_stream().await?,
                limits.max_rows,
                limits.max_answer_bytes,
                &types,
            )
            .await?;
            let result = match out.take() {
                None => part,
                Some(mut r) => {
                    r.rows.extend(part.rows);
                    r.stats.truncated |= part.stats.truncated;
                    r
                }
            };
            let done = result.rows.len() as u64 >= limit
                || if descending {
                    edge <= plan.from_ns
                } else {
                    edge >= plan.to_ns
                };
            let got = result.rows.len() as u64;
            out = Some(result);
            if done {
                break;
            }
            // The next window: 4× wider, or as wide as the rows found so
            // far say the rest needs (with a margin), whichever is wider.
            let covered = if descending {
                plan.to_ns.saturating_sub(edge)
            } else {
                edge.saturating_sub(plan.from_ns)
            };
            let estimate = if got == 0 {
                width.saturating_mul(16)
            } else {
                let per_row = covered as f64 / got as f64;
                (per_row * (limit - got) as f64 * 1.5).min(i64::MAX as f64) as i64
            };
            width = width.saturating_mul(4).max(estimate);
        }
        Ok(out.unwrap_or_default())
    }

    /// Runs a plan and collects at most `limits.max_rows` rows.
    #[tracing::instrument(name = "store.query", skip_all, fields(project = %project))]
    pub async fn query_plan(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        let started = Instant::now();
        if plan.source == Source::Logs {
            return self.query_logs(project, plan, limits, started).await;
        }
        if let Some(mut result) = self.rollup_answer(project, plan, limits).await? {
            if result.rows.len() > limits.max_rows {
                result.rows.truncate(limits.max_rows);
                result.stats.truncated = true;
            }
            result.stats.elapsed_ms =
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            return Ok(result);
        }
        if let Some(result) = self.by_ids(project, plan, limits, started).await? {
            return Ok(result);
        }
        let counter = Arc::new(ScanCounter::default());
        let found = self
            .run_has_keys(project, plan, limits, counter.clone())
            .await?;
        if let (Output::Rows(fields), Some(n)) = (&plan.output, plan.limit)
            && n <= LATE_ROWS_MAX
            && fields.iter().all(is_light)
        {
            // Small columns only: one phase (windowed by start time).
            let result = self
                .first_phase(project, plan, limits, counter.clone(), false, &found)
                .await?;
            return Ok(stamped(result, &counter, started));
        }
        if let (Output::Rows(fields), Some(n)) = (&plan.output, plan.limit)
            && n <= LATE_ROWS_MAX
        {
            let result = self
                .late_rows(project, plan, fields, limits, counter.clone(), &found)
                .await?;
            return Ok(stamped(result, &counter, started));
        }
        let (df, types) = self
            .plan_frame(project, plan, limits, counter.clone(), None, &found)
            .await?;
        answer(df, &types, limits, &counter, started).await
    }

    /// Whether aggregate queries may be answered from the hour rollups
    /// (`[store] answer_from_rollups`; `false` makes every query scan).
    pub fn set_answer_from_rollups(&self, on: bool) {
        self.inner.rollup_answers.store(on, Ordering::Relaxed);
    }

    /// Whether aggregate queries may be answered from hour rollups (also
    /// a ClickHouse backend's own, which the server asks this of).
    pub fn answers_from_rollups(&self) -> bool {
        self.inner.rollup_answers.load(Ordering::Relaxed)
    }

    /// The plan's answer from the hour rollups when they give it exactly
    /// (`query/rollup.rs`): whole hours from the tier, partial hours at the
    /// ends by listing their spans. `None`: the plan must be scanned.
    async fn rollup_answer(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
    ) -> Result<Option<QueryResult>, Error> {
        if plan.output != Output::Aggregates || !self.inner.rollup_answers.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let now_ns = loupe_model::time::now_ns();
        let oldest_kept_ns = self
            .retention_cutoff_day_ns(project.as_str(), now_ns)
            .unwrap_or(i64::MIN);
        let prepared = {
            let st = self.inner.state.lock();
            rollup::prepare(&st.rollups, plan, oldest_kept_ns)
        };
        let Some(prepared) = prepared else {
            return Ok(None);
        };
        let counter = Arc::new(ScanCounter::default());
        let mut edge_rows = Vec::new();
        for &(from_ns, to_ns) in &prepared.edges {
            let edge = prepared.edge_plan(plan, from_ns, to_ns);
            let (df, types) = self
                .plan_frame(project, &edge, limits, counter.clone(), None, &[])
                .await?;
            let listed = collect(
                df.execute_stream().await?,
                limits.max_rows,
                limits.max_answer_bytes,
                &types,
            )
            .await?;
            if listed.stats.truncated {
                // More edge spans than a listing may hold: scan instead.
                return Ok(None);
            }
            edge_rows.extend(listed.rows);
        }
        // The hours are taken under the lock and read after it (a week is
        // ~10^5 series at 10M spans: answers run side by side, and never
        // hold up appends).
        let (known, slice) = {
            let st = self.inner.state.lock();
            if !rollup::tier_answers(&st.rollups, plan, prepared.first_hour, prepared.end_hour) {
                return Ok(None);
            }
            (
                rollup::Known::of(&st.rollups),
                st.rollups
                    .hours()
                    .slice(prepared.first_hour, prepared.end_hour),
            )
        };
        let answer = rollup::answer(
            &known,
            &slice,
            project.as_str(),
            plan,
            &prepared,
            &edge_rows,
        );
        Ok(answer.map(|mut result| {
            let scanned = counter.stats(Instant::now());
            result.stats.rows_scanned = scanned.rows_scanned;
            result.stats.parts_scanned = scanned.parts_scanned;
            result
        }))
    }

    /// Runs a plan and streams its batches (no row cap).
    #[tracing::instrument(name = "store.query_stream", skip_all, fields(project = %project))]
    pub async fn query_plan_stream(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
    ) -> Result<BatchStream, Error> {
        let counter = Arc::new(ScanCounter::default());
        let (df, _) = match plan.source {
            Source::Spans => {
                let found = self
                    .run_has_keys(project, plan, limits, counter.clone())
                    .await?;
                self.plan_frame(project, plan, limits, counter, None, &found)
                    .await?
            }
            Source::Logs => self.logs_frame(project, plan, limits, counter).await?,
        };
        let stream = df.execute_stream().await?;
        Ok(stream
            .map(|b| b.map_err(|e| StoreError::from(Error::from(e))))
            .boxed())
    }
}

/// The frame's rows, with the stats of what its scans read.
async fn answer(
    df: DataFrame,
    types: &[Option<ValueType>],
    limits: QueryLimits,
    counter: &ScanCounter,
    started: Instant,
) -> Result<QueryResult, Error> {
    let stream = df.execute_stream().await?;
    let result = collect(stream, limits.max_rows, limits.max_answer_bytes, types).await?;
    Ok(stamped(result, counter, started))
}

/// `result` with the stats of the whole query (what `counter` saw since
/// `started`), keeping whether its rows were truncated.
fn stamped(mut result: QueryResult, counter: &ScanCounter, started: Instant) -> QueryResult {
    let truncated = result.stats.truncated;
    result.stats = counter.stats(started);
    result.stats.truncated = truncated;
    result
}

/// The plan as a DataFrame over the `spans` table of `ctx` (see
/// [`Store::plan_frame`]).
async fn frame_on(
    ctx: &SessionContext,
    plan: &Plan,
    only: Option<Vec<Expr>>,
    found: &[Option<RunKeys>],
) -> Result<(DataFrame, Vec<Option<ValueType>>), Error> {
    let scoped = ctx
        .table(SPANS_TABLE)
        .await?
        .filter(ident(column::START_TIME).gt_eq(ts(plan.from_ns)))?
        .filter(ident(column::START_TIME).lt(ts(plan.to_ns)))?;
    let base = scoped.logical_plan().clone();
    let mut df = scoped;
    if let Some(f) = &plan.filter {
        let mut runs = compile::RunHas {
            base: &base,
            found,
            n: 0,
        };
        df = df.filter(compile::filter_expr(f, &mut runs, &SPANS_SHAPE)?)?;
    }
    match &plan.output {
        Output::Rows(fields) => {
            let pinned = pinned_text_fields(plan.filter.as_ref());
            let mut order: Vec<SortExpr> = plan
                .sort
                .iter()
                .filter(|k| !matches!(&k.column, SortColumn::Field(f) if pinned.contains(&f)))
                .map(|k| match &k.column {
                    SortColumn::Field(f) => field_expr(f, &SPANS_SHAPE).sort(!k.descending, false),
                    SortColumn::Output(name) => ident(name.as_str()).sort(!k.descending, false),
                })
                .collect();
            order.push(ident(column::SPAN_ID).sort(true, false));
            df = df.sort(order)?;
            if let Some(n) = plan.limit {
                df = df.limit(0, Some(usize::try_from(n).unwrap_or(usize::MAX)))?;
            }
            let (select, types) = match only {
                Some(select) => {
                    let types = vec![None; select.len()];
                    (select, types)
                }
                None => (
                    fields
                        .iter()
                        .map(|f| field_expr(f, &SPANS_SHAPE).alias(f.output_name()))
                        .collect(),
                    fields.iter().map(|f| Some(f.ty())).collect(),
                ),
            };
            Ok((df.select(select)?, types))
        }
        Output::Aggregates => {
            let (df, types) = compile::aggregate(df, plan)?;
            Ok((df, types))
        }
    }
}
/// Collects a stream into a result, stopping after `max_rows` rows or
/// about `max_bytes` bytes of values (`[query] max_answer_bytes`: a
/// hundred thousand rows of megabyte inputs would not fit in memory).
/// `types[i]`, when set, overrides the column type read from Arrow.
pub(crate) async fn collect(
    mut stream: SendableRecordBatchStream,
    max_rows: usize,
    max_bytes: usize,
    types: &[Option<ValueType>],
) -> Result<QueryResult, Error> {
    let schema = stream.schema();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Column {
            name: f.name().clone(),
            ty: types
                .get(i)
                .copied()
                .flatten()
                .unwrap_or_else(|| value_type(f.data_type())),
        })
        .collect();
    let mut rows = Vec::new();
    let mut truncated = false;
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch?;
        let mut batch_rows = batch_rows(&batch);
        if rows.len() + batch_rows.len() > max_rows {
            batch_rows.truncate(max_rows - rows.len());
            truncated = true;
        }
        for (i, row) in batch_rows.iter().enumerate() {
            bytes = bytes.saturating_add(row.iter().map(value_bytes).sum::<usize>());
            if bytes > max_bytes {
                batch_rows.truncate(i);
                truncated = true;
                break;
            }
        }
        rows.extend(batch_rows);
        if truncated {
            break;
        }
    }
    Ok(QueryResult {
        columns,
        rows,
        stats: QueryStats {
            truncated,
            ..QueryStats::default()
        },
    })
}

/// Fields the filter pins to one text value (a top-level `field = "text"`):
/// sorting by one changes nothing, so the sort leaves them out. DataFusion
/// would otherwise drop the key itself as a constant below the union of
/// memtable and parts, and then fail its plan sanity check above it.
fn pinned_text_fields(filter: Option<&Filter>) -> Vec<&FieldRef> {
    let mut out = Vec::new();
    let mut stack: Vec<&Filter> = filter.into_iter().collect();
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(all) => stack.extend(all),
            Filter::Compare {
                field,
                op: Cmp::Eq,
                value: Literal::Text(_),
                ..
            } => out.push(field),
            _ => {}
        }
    }
    out
}

/// Whether a listed field is small enough to carry through a sort: not a
/// payload, a map or a value inside one.
fn is_light(f: &FieldRef) -> bool {
    match f {
        FieldRef::Column { name, .. } => !matches!(
            name.as_str(),
            column::INPUT | column::OUTPUT | column::ATTRIBUTES | column::TAGS
        ),
        FieldRef::Attribute(_) | FieldRef::Tag(_) => true,
        FieldRef::Json { .. } => false,
    }
}

/// An exclusive upper bound on `start_time` that every span the filter
/// keeps is under (`start_time < T`, `<= T`, through `and`, and through
/// `or` when every branch has one).
fn start_time_bound(f: Option<&Filter>) -> Option<i64> {
    use loupe_backend::plan::{Cmp, Literal};
    match f? {
        Filter::Compare {
            field: FieldRef::Column { name, .. },
            op,
            value: Literal::Timestamp(t),
        } if name == column::START_TIME => match op {
            Cmp::Lt => Some(*t),
            Cmp::Le | Cmp::Eq => Some(t.saturating_add(1)),
            _ => None,
        },
        Filter::And(c) => c.iter().filter_map(|f| start_time_bound(Some(f))).min(),
        Filter::Or(c) if !c.is_empty() => c
            .iter()
            .map(|f| start_time_bound(Some(f)))
            .collect::<Option<Vec<_>>>()
            .and_then(|b| b.into_iter().max()),
        _ => None,
    }
}

/// The inner filters of the `run has` in `f`, depth first (the order
/// [`compile::filter_expr`] numbers them in), each with whether every span
/// the filter keeps must satisfy it (`top`: a conjunct of the whole filter,
/// not under an OR or a NOT).
fn run_has_inners<'a>(f: &'a Filter, top: bool, out: &mut Vec<(&'a Filter, bool)>) {
    match f {
        Filter::RunHas(inner) => out.push((inner, top)),
        Filter::And(c) => c.iter().for_each(|c| run_has_inners(c, top, out)),
        Filter::Or(c) => c.iter().for_each(|c| run_has_inners(c, false, out)),
        Filter::Not(inner) => run_has_inners(inner, false, out),
        _ => {}
    }
}

/// The run or trace ids every span `f` keeps has one of: the shortest
/// list of a conjunct `run_id = x`, `trace_id = x` or `run_id in (…)` /
/// `trace_id in (…)` (at most [`BY_IDS_MAX`] ids). None when there is none,
/// or when the filter has a `run has`, whose spans may lie in other runs.
fn required_ids(f: &Filter) -> Option<Vec<String>> {
    fn conjuncts<'a>(f: &'a Filter, out: &mut Vec<&'a Filter>) {
        match f {
            Filter::And(c) => c.iter().for_each(|c| conjuncts(c, out)),
            other => out.push(other),
        }
    }
    fn ids_of(f: &Filter) -> Option<Vec<String>> {
        let is_id = |field: &FieldRef| {
            matches!(field, FieldRef::Column { name, .. }
                if name == column::RUN_ID || name == column::TRACE_ID)
        };
        let text = |v: &Literal| match v {
            Literal::Text(t) => Some(t.clone()),
            _ => None,
        };
        match f {
            Filter::Compare {
                field,
                op: Cmp::Eq,
                value,
            } if is_id(field) => Some(vec![text(value)?]),
            Filter::In { field, values } if is_id(field) && values.len() <= BY_IDS_MAX => {
                values.iter().map(text).collect()
            }
            _ => None,
        }
    }
    let mut inners = Vec::new();
    run_has_inners(f, true, &mut inners);
    if !inners.is_empty() {
        return None;
    }
    let mut all = Vec::new();
    conjuncts(f, &mut all);
    all.into_iter().filter_map(ids_of).min_by_key(Vec::len)
}

/// The first window of a listing by start time: [`FIRST_WINDOW_NS`], or,
/// when a `run has` that every kept span must satisfy matched `k` runs,
/// the share of the range that holds about `limit` of them if they are
/// spread evenly (with a margin). The newest 100 of 2,132 runs in a week
/// are then found in one window instead of the 1 h probe and a wider
/// second try, each a scan with its own plan and join (docs/BENCHMARKS.md,
/// "newest 100 runs whose retrieval failed"). An uneven spread costs a
/// second window, as before.
fn first_window(plan: &Plan, found: &[Option<RunKeys>], limit: u64) -> i64 {
    let mut inners = Vec::new();
    if let Some(f) = &plan.filter {
        run_has_inners(f, true, &mut inners);
    }
    let runs = inners
        .iter()
        .zip(found)
        .filter(|((_, top), _)| *top)
        .filter_map(|(_, keys)| keys.as_ref().map(|k| k.len()))
        .min();
    match runs {
        Some(k) if k > 0 => {
            let range = plan.to_ns.saturating_sub(plan.from_ns);
            let share = (limit as f64 * 1.5 / k as f64).min(1.0);
            ((range as f64 * share) as i64).max(FIRST_WINDOW_NS)
        }
        _ => FIRST_WINDOW_NS,
    }
}

/// Whether some `run has` of `f` is left a subquery: its keys are not in
/// `found` (too many, or not looked for).
fn has_run_has_subquery(f: &Filter, found: &[Option<RunKeys>]) -> bool {
    let mut inners = Vec::new();
    run_has_inners(f, true, &mut inners);
    (0..inners.len()).any(|i| found.get(i).is_none_or(Option::is_none))
}

/// The full-text phrases every span the plan keeps contains: `Text` filters
/// at the top level (alone or under `And`). None when a `run has` subquery
/// (one not in `found`) scans the same table with other filters.
pub(crate) fn required_text(plan: &Plan, found: &[Option<RunKeys>]) -> Vec<String> {
    fn collect(f: &Filter, out: &mut Vec<String>) {
        match f {
            // The whole phrase: the predicate matches it as one substring,
            // so its trigrams across words and its inner words narrow too.
            Filter::Text(t) if !t.trim().is_empty() => out.push(t.clone()),
            Filter::And(c) => c.iter().for_each(|c| collect(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(f) = &plan.filter
        && !has_run_has_subquery(f, found)
    {
        collect(f, &mut out);
    }
    out
}

/// Whether a field is a map value (cast to numbers in numeric contexts).
pub(crate) fn is_map(f: &FieldRef) -> bool {
    f.is_map_value()
}

/// The subquery plan of `run has`: run keys of the spans in the range that
/// match `inner`.
pub(crate) fn run_keys(
    base: &datafusion::logical_expr::LogicalPlan,
    inner: Expr,
    alias: &str,
) -> Result<Arc<datafusion::logical_expr::LogicalPlan>, Error> {
    let plan = LogicalPlanBuilder::from(base.clone())
        .filter(inner)?
        .project(vec![compile::run_key().alias("run_key")])?
        .alias(alias)?
        .build()?;
    Ok(Arc::new(plan))
}
