//! `Plan` → DataFusion over the logs table: the `logs | …` source.
//!
//! The plan compiles as a span plan does (`compile.rs`: the same filter
//! tree, aggregates, sort and limit), over a view of the project's
//! [`LogsTable`] with the language's names (`severity` is the stored
//! `severity_number`, as a 64-bit integer) and the range on `time`. A
//! listing's order is total: the plan's keys, then newest first, then the
//! time received and the body. `attributes` and `resource` are stored as
//! JSON object text; a listing answers them as objects.

use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::ident;
use loupe_backend::plan::{
    FieldRef, Output, Plan, QueryLimits, QueryResult, SortColumn, ValueType,
};
use loupe_model::{ProjectId, log_column as lc, log_schema};

use super::compile::{self, field_expr, ts};
use super::{LOGS_SHAPE, ScanCounter, collect, pinned_text_fields, required_text};
use crate::logs::table::LogsTable;
use crate::{Error, Store};

/// The table's name in a query session.
const LOGS_TABLE: &str = "logs";

/// The language's name of `severity_number`.
const SEVERITY: &str = "severity";

impl Store {
    /// The plan (its source is logs) as a DataFrame, and its output column
    /// types.
    pub(super) async fn logs_frame(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
        counter: Arc<ScanCounter>,
    ) -> Result<(DataFrame, Vec<Option<ValueType>>), Error> {
        let ctx = self.bare_session(limits)?;
        let table = LogsTable::new(
            self.clone(),
            project.as_str(),
            counter,
            required_text(plan, &[]),
        );
        ctx.register_table(LOGS_TABLE, Arc::new(table))?;
        let view: Vec<Expr> = log_schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|name| *name != lc::PROJECT)
            .map(|name| match name {
                lc::SEVERITY_NUMBER => cast(ident(name), DataType::Int64).alias(SEVERITY),
                _ => ident(name),
            })
            .collect();
        let scoped = ctx
            .table(LOGS_TABLE)
            .await?
            .select(view)?
            .filter(ident(lc::TIME).gt_eq(ts(plan.from_ns)))?
            .filter(ident(lc::TIME).lt(ts(plan.to_ns)))?;
        let base = scoped.logical_plan().clone();
        let mut df = scoped;
        if let Some(f) = &plan.filter {
            let mut runs = compile::RunHas {
                base: &base,
                found: &[],
                n: 0,
            };
            df = df.filter(compile::filter_expr(f, &mut runs, &LOGS_SHAPE)?)?;
        }
        let Output::Rows(fields) = &plan.output else {
            return compile::aggregate(df, plan);
        };
        let column = |name: &str, ty| FieldRef::Column {
            name: name.into(),
            ty,
        };
        let ties = [
            (column(lc::TIME, ValueType::Timestamp), true),
            (column(lc::OBSERVED_TIME, ValueType::Timestamp), true),
            (column(lc::BODY, ValueType::Text), false),
        ];
        let pinned = pinned_text_fields(plan.filter.as_ref());
        let order = plan
            .sort
            .iter()
            .map(|k| match &k.column {
                SortColumn::Field(f) => (f.clone(), k.descending),
                SortColumn::Output(name) => (column(name, ValueType::Text), k.descending),
            })
            .chain(ties)
            .filter(|(f, _)| !pinned.contains(&f))
            .map(|(f, descending)| field_expr(&f, &LOGS_SHAPE).sort(!descending, false))
            .collect();
        df = df.sort(order)?;
        if let Some(n) = plan.limit {
            df = df.limit(0, Some(usize::try_from(n).unwrap_or(usize::MAX)))?;
        }
        let select: Vec<Expr> = fields
            .iter()
            .map(|f| field_expr(f, &LOGS_SHAPE).alias(f.output_name()))
            .collect();
        let types = fields.iter().map(|f| Some(f.ty())).collect();
        Ok((df.select(select)?, types))
    }

    /// Runs a plan over the logs table and collects at most
    /// `limits.max_rows` rows.
    pub(super) async fn query_logs(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
        started: Instant,
    ) -> Result<QueryResult, Error> {
        let counter = Arc::new(ScanCounter::default());
        let (df, types) = self
            .logs_frame(project, plan, limits, counter.clone())
            .await?;
        let stream = df.execute_stream().await?;
        let mut result = collect(stream, limits.max_rows, limits.max_answer_bytes, &types).await?;
        let maps: Vec<usize> = (result.columns.iter().enumerate())
            .filter(|(_, c)| c.ty == ValueType::Map)
            .map(|(i, _)| i)
            .collect();
        for row in &mut result.rows {
            for &i in &maps {
                if let Some(serde_json::Value::String(text)) = row.get(i) {
                    row[i] = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
                }
            }
        }
        let truncated = result.stats.truncated;
        result.stats = counter.stats(started);
        result.stats.truncated = truncated;
        Ok(result)
    }
}
