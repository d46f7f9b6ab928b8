//! Read-only SQL over the project's `spans` table.
//!
//! Only one query statement is accepted (`SELECT …` or `WITH … SELECT …`):
//! DataFusion's [`SQLOptions`] refuse DDL (`CREATE`, `DROP`), DML
//! (`INSERT`, `COPY`) and other statements (`SET`), and more than one
//! statement is a parse error. The session sees only `spans` (no
//! information schema, no URL tables), and operators share a memory pool of
//! `QueryLimits::memory_bytes`; the caller bounds the time.
//!
//! Hostile statements are bounded before and while planning: a statement
//! longer than [`MAX_SQL_BYTES`] is refused unread; brackets nested deeper
//! than [`super::sql_guard::MAX_SQL_NESTING`] (`[` deeper than
//! [`super::sql_guard::MAX_SQL_BRACKET_DEPTH`]) are refused before parsing,
//! since the parser backtracks over some of them in exponential time; the
//! SQL parser refuses nesting deeper than its recursion limit
//! (`sql_parser.recursion_limit`, lowered from 50 to
//! [`super::sql_guard::SQL_RECURSION_LIMIT`] for the same reason); long
//! operator chains (`a OR b OR …`, which parse iteratively into a
//! tree as deep as the chain) are balanced or refused by [`super::sql_guard`]
//! before planning (a 1,000-term `or` aborted the process, issue 14). As a
//! second line, DataFusion is built with `recursive_protection`, which
//! moves deep recursion onto heap-allocated stack segments.

use std::sync::Arc;
use std::time::Instant;

use datafusion::execution::context::SQLOptions;
use loupe_backend::plan::{QueryLimits, QueryResult};
use loupe_model::ProjectId;

use super::{ScanCounter, collect};
use crate::{Error, Store};

/// Longest SQL statement accepted, bytes.
pub const MAX_SQL_BYTES: usize = 256 << 10;

impl Store {
    /// Runs one read-only SQL query over the project's `spans`, returning at
    /// most `limits.max_rows` rows. A statement that is not a query is
    /// [`Error::Invalid`].
    #[tracing::instrument(name = "store.sql", skip_all, fields(project = %project))]
    pub async fn read_only_sql(
        &self,
        project: &ProjectId,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        self.read_only_sql_with(project, sql, limits, None).await
    }

    /// [`Self::read_only_sql`] over the spans another backend keeps
    /// (`SpanReader::scan`): this store's dialect, bounds and memory pool,
    /// the backend's rows (`reader_table.rs`).
    #[tracing::instrument(name = "store.sql_over", skip_all, fields(project = %project))]
    pub async fn read_only_sql_over(
        &self,
        reader: Arc<dyn loupe_backend::SpanReader>,
        project: &ProjectId,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        self.sql_on(Some(reader), project, sql, limits, None).await
    }

    /// [`Self::read_only_sql`] with one more table, `extra` (Loupe's own
    /// statements: the analytics' cached hours).
    pub(crate) async fn read_only_sql_with(
        &self,
        project: &ProjectId,
        sql: &str,
        limits: QueryLimits,
        extra: Option<(&str, Arc<dyn datafusion::datasource::TableProvider>)>,
    ) -> Result<QueryResult, Error> {
        self.sql_on(None, project, sql, limits, extra).await
    }

    /// A session whose `spans` are this store's, or `over`'s.
    pub(crate) fn spans_session(
        &self,
        over: Option<Arc<dyn loupe_backend::SpanReader>>,
        project: &ProjectId,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
    ) -> Result<datafusion::execution::context::SessionContext, Error> {
        match over {
            // The model's columns, as over any backend (no mirrors).
            None => {
                let ctx = self.bare_session(limits)?;
                let table = crate::SpansTable::new(self.clone(), project.as_str())
                    .with_counter(counter)
                    .model_columns();
                ctx.register_table(crate::SPANS_TABLE, Arc::new(table))?;
                Ok(ctx)
            }
            Some(reader) => {
                let ctx = self.bare_session(limits)?;
                let table = crate::reader_table::ReaderTable::new(reader, project.clone(), counter);
                ctx.register_table(crate::SPANS_TABLE, Arc::new(table))?;
                Ok(ctx)
            }
        }
    }

    /// The statement over this store's spans, or over `over`'s.
    pub(crate) async fn sql_on(
        &self,
        over: Option<Arc<dyn loupe_backend::SpanReader>>,
        project: &ProjectId,
        sql: &str,
        limits: QueryLimits,
        extra: Option<(&str, Arc<dyn datafusion::datasource::TableProvider>)>,
    ) -> Result<QueryResult, Error> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(Error::Invalid(format!(
                "the SQL statement is {} bytes, more than the limit of {MAX_SQL_BYTES}",
                sql.len()
            )));
        }
        // Before parsing: some nestings make the parser backtrack for
        // minutes (see `sql_guard::check_nesting`).
        super::sql_guard::check_nesting(sql).map_err(Error::Invalid)?;
        let started = Instant::now();
        let counter = Arc::new(ScanCounter::default());
        let ctx = self.spans_session(over, project, limits, counter.clone())?;
        if let Some((name, table)) = extra {
            ctx.register_table(name, table)?;
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(|e| Error::Invalid(sql_message(&e)))?;
        bound_statement(&mut statement).map_err(Error::Invalid)?;
        let plan = state
            .statement_to_plan(statement)
            .await
            .and_then(|plan| bound_concat_ops(plan, &ctx))
            .map_err(|e| Error::Invalid(sql_message(&e)))?;
        options
            .verify_plan(&plan)
            .map_err(|e| Error::Invalid(sql_message(&e)))?;
        let df = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| Error::Invalid(sql_message(&e)))?;
        let stream = df.execute_stream().await.map_err(sql_error)?;
        let mut result = collect(stream, limits.max_rows, limits.max_answer_bytes, &[])
            .await
            .map_err(|e| match e {
                Error::DataFusion(e) => sql_error(e),
                other => other,
            })?;
        let truncated = result.stats.truncated;
        result.stats = counter.stats(started);
        result.stats.truncated = truncated;
        Ok(result)
    }
}

/// Applies [`super::sql_guard::bound`] to a query (and to the query an
/// `EXPLAIN` shows); other statements are refused before planning.
fn bound_statement(statement: &mut datafusion::sql::parser::Statement) -> Result<(), String> {
    use datafusion::sql::parser::Statement;
    match statement {
        Statement::Statement(inner) => super::sql_guard::bound(inner),
        Statement::Explain(explain) => bound_statement(&mut explain.statement),
        // COPY, CREATE EXTERNAL TABLE and RESET are refused anyway; refuse
        // them before planning reads their (unbounded) contents.
        _ => Err("only a single read-only query (SELECT or WITH) is allowed".into()),
    }
}

/// Rewrites the string `||` operator to the bounded [`super::bounded::CONCAT_OP`]:
/// the operator is not a function, so it cannot be replaced in the
/// registry, and `repeat(…) || column` would copy the constant into every
/// row unchecked. (The planner already turned `||` of arrays into
/// `array_concat`, which is bounded.)
fn bound_concat_ops(
    plan: datafusion::logical_expr::LogicalPlan,
    ctx: &datafusion::execution::context::SessionContext,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
    let Some(udf) = ctx
        .state()
        .scalar_functions()
        .get(super::bounded::CONCAT_OP)
        .cloned()
    else {
        return Ok(plan);
    };
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::StringConcat,
                    right,
                }) => Ok(Transformed::yes(udf.call(vec![*left, *right]))),
                other => Ok(Transformed::no(other)),
            })
        })?
        .transform_data(|node| node.recompute_schema().map(Transformed::yes))
    })
    .map(|t| t.data)
}

/// An error while running the user's SQL: the statement's fault (a cast
/// that fails, a function given the wrong values) unless the engine ran out
/// of memory or could not read a file.
fn sql_error(e: datafusion::error::DataFusionError) -> Error {
    use datafusion::error::DataFusionError as D;
    match e.find_root() {
        D::ResourcesExhausted(_) | D::IoError(_) | D::ObjectStore(_) | D::Internal(_) => {
            Error::DataFusion(e)
        }
        _ => Error::Invalid(sql_message(&e)),
    }
}

/// A planning error as the user should read it.
fn sql_message(e: &datafusion::error::DataFusionError) -> String {
    let text = e.find_root().to_string();
    if text.contains("DDL not supported")
        || text.contains("DML not supported")
        || text.contains("Statement not supported")
    {
        format!("only a single read-only query (SELECT or WITH) is allowed: {text}")
    } else {
        text
    }
}
