//! Plan pieces → DataFusion expressions: fields, literals, the filter tree,
//! group keys and aggregates.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, Schema};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::functions::core::expr_fn::{coalesce, get_field};
use datafusion::functions::datetime::expr_fn::date_bin;
use datafusion::functions::string::expr_fn::lower;
use datafusion::functions::unicode::expr_fn::strpos;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use datafusion::functions_aggregate::percentile_cont::percentile_cont;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, cast, in_subquery, lit, try_cast, when,
};
use datafusion::prelude::ident;
use loupe_backend::plan::{
    AggKind, Aggregate, Cmp, FieldRef, Filter, GroupKey, Literal, Plan, SortColumn, ValueType,
};
use loupe_model::column;

use super::{Shape, is_map, run_keys, shape_of};
use crate::Error;

/// A timestamp literal in the table's type.
pub(crate) fn ts(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

/// The run key: `run_id`, else `trace_id`.
pub(crate) fn run_key() -> Expr {
    coalesce(vec![ident(column::RUN_ID), ident(column::TRACE_ID)])
}

/// A field's value (map fields: the key's text, null when absent). In a
/// table with mirror columns (`shape.mirrored`), a mirrored key reads its
/// column, which holds the same value (`mirrors.rs`).
pub(crate) fn field_expr(f: &FieldRef, shape: &Shape) -> Expr {
    if let Some(c) = shape
        .mirrored
        .then(|| crate::mirrors::column_of(f))
        .flatten()
    {
        return ident(c);
    }
    match f {
        FieldRef::Column { name, .. } => ident(name.as_str()),
        // Older spans have a message and no stored signature: signed on read.
        FieldRef::Attribute(k) if k == loupe_model::ERROR_SIGNATURE => {
            super::signature::expr(get_field(ident(column::ATTRIBUTES), k.as_str()))
        }
        FieldRef::Attribute(k) => get_field(ident(column::ATTRIBUTES), k.as_str()),
        FieldRef::Tag(k) => get_field(ident(column::TAGS), k.as_str()),
        FieldRef::Json { column, keys } => {
            let mut args = vec![ident(column.as_str())];
            // A key of digits also indexes an array (`output.items.0`).
            args.extend(keys.iter().map(|k| match k.parse::<i64>() {
                Ok(i) if !k.starts_with('+') => lit(i),
                _ => lit(k.as_str()),
            }));
            Expr::ScalarFunction(ScalarFunction::new_udf(
                datafusion_functions_json::udfs::json_as_text_udf(),
                args,
            ))
        }
    }
}

/// A map value as a number (null when it is not one).
fn numeric(f: &FieldRef, shape: &Shape) -> Expr {
    if is_map(f) {
        try_cast(field_expr(f, shape), DataType::Float64)
    } else {
        field_expr(f, shape)
    }
}

fn literal(v: &Literal) -> Expr {
    match v {
        Literal::Text(s) => lit(s.as_str()),
        Literal::Int(n) | Literal::Duration(n) => lit(*n),
        Literal::Float(x) => lit(*x),
        Literal::Timestamp(t) => ts(*t),
    }
}

/// The left side for a literal: map values are cast when the literal is a
/// number.
fn left_for(f: &FieldRef, v: &Literal, shape: &Shape) -> Expr {
    match v {
        Literal::Float(_) | Literal::Int(_) if is_map(f) => numeric(f, shape),
        _ => field_expr(f, shape),
    }
}

fn compare(f: &FieldRef, op: Cmp, v: &Literal, shape: &Shape) -> Expr {
    let (l, r) = (left_for(f, v, shape), literal(v));
    match op {
        Cmp::Eq => l.eq(r),
        Cmp::Ne => l.not_eq(r),
        Cmp::Lt => l.lt(r),
        Cmp::Le => l.lt_eq(r),
        Cmp::Gt => l.gt(r),
        Cmp::Ge => l.gt_eq(r),
    }
}

fn substring(haystack: Expr, needle: &str) -> Expr {
    strpos(haystack, lit(needle)).gt(lit(0i64))
}

/// Joins `exprs` with an associative operator as a balanced tree, so `n`
/// operands nest `log2 n` deep. A left fold (`reduce`) nests `n` deep, and
/// DataFusion's planner, optimizer and evaluator recurse once per level: a
/// 1,000-term `or` overflowed a worker thread's stack (issue 14).
pub(crate) fn balanced(mut exprs: Vec<Expr>, op: fn(Expr, Expr) -> Expr) -> Option<Expr> {
    while exprs.len() > 1 {
        let mut pairs = Vec::with_capacity(exprs.len().div_ceil(2));
        let mut it = exprs.into_iter();
        while let Some(a) = it.next() {
            pairs.push(match it.next() {
                Some(b) => op(a, b),
                None => a,
            });
        }
        exprs = pairs;
    }
    exprs.pop()
}

/// What a `run has` compiles to: the run keys a scan of its own found
/// beforehand ([`crate::Store::run_has_keys`], by the `run has`'s place in
/// the filter tree, depth first), else a subquery over `base`, the
/// time-scoped scan.
pub(crate) struct RunHas<'a> {
    pub(crate) base: &'a LogicalPlan,
    pub(crate) found: &'a [Option<super::RunKeys>],
    /// `run has` compiled so far.
    pub(crate) n: usize,
}

/// The filter tree as one predicate. Null (an unset field) never matches;
/// `NOT` is `IS NOT TRUE`, so it negates "matches" rather than propagating
/// null. `shape` names the columns full text searches.
pub(crate) fn filter_expr(f: &Filter, runs: &mut RunHas<'_>, shape: &Shape) -> Result<Expr, Error> {
    Ok(match f {
        Filter::And(args) => {
            let mut out = Vec::with_capacity(args.len());
            for a in args {
                out.push(filter_expr(a, runs, shape)?);
            }
            balanced(out, Expr::and).unwrap_or(lit(true))
        }
        Filter::Or(args) => {
            let mut out = Vec::with_capacity(args.len());
            for a in args {
                out.push(filter_expr(a, runs, shape)?);
            }
            balanced(out, Expr::or).unwrap_or(lit(false))
        }
        Filter::Not(arg) => filter_expr(arg, runs, shape)?.is_not_true(),
        Filter::Compare { field, op, value } => compare(field, *op, value, shape),
        Filter::In { field, values } => {
            if is_map(field) {
                let each = values
                    .iter()
                    .map(|v| compare(field, Cmp::Eq, v, shape))
                    .collect();
                balanced(each, Expr::or).unwrap_or(lit(false))
            } else if values.is_empty() {
                lit(false)
            } else {
                field_expr(field, shape).in_list(values.iter().map(literal).collect(), false)
            }
        }
        Filter::Contains {
            field,
            value,
            ignore_case: false,
        } => substring(field_expr(field, shape), value),
        Filter::Contains {
            field,
            value,
            ignore_case: true,
        } => substring(lower(field_expr(field, shape)), &value.to_lowercase()),
        // `exists error_signature` is "signed when stored", as the rollups
        // answer it (and what the analysis reads to find older spans).
        Filter::Exists(FieldRef::Attribute(k)) if k == loupe_model::ERROR_SIGNATURE => {
            get_field(ident(column::ATTRIBUTES), k.as_str()).is_not_null()
        }
        Filter::Exists(field) => field_expr(field, shape).is_not_null(),
        // A quoted term is a phrase: its whole text (case-insensitive) must
        // occur in one of the text fields; one word is a term query.
        Filter::Text(text) if text.trim().is_empty() => lit(true),
        Filter::Text(text) => {
            let phrase = text.to_lowercase();
            shape
                .text
                .iter()
                .map(|c| substring(lower(ident(*c)), &phrase))
                .reduce(Expr::or)
                .unwrap_or(lit(false))
        }
        Filter::RunHas(inner) => {
            let found = runs.found.get(runs.n).cloned().flatten();
            runs.n += 1;
            match found {
                // No key: no span of the range is in such a run.
                Some(keys) if keys.is_empty() => lit(false),
                // A few runs: the run key spelled out, a shape the scan's
                // id pruning reads (`Pruning` in `table.rs`), so each side
                // names the rows of these keys in a part's position index.
                Some(keys) if keys.len() <= RUN_LIST_MAX => {
                    let list: Vec<Expr> = keys.iter().map(|k| lit(k.as_str())).collect();
                    let run_id = ident(column::RUN_ID);
                    run_id.clone().in_list(list.clone(), false).or(run_id
                        .is_null()
                        .and(ident(column::TRACE_ID).in_list(list, false)))
                }
                // More: a semi join with the keys as its build side (a
                // long `IN` list checked row by row was slower than the
                // join it replaced).
                Some(keys) => in_subquery(
                    run_key(),
                    keys_plan(&keys, &format!("__run_keys_{}", runs.n))?,
                ),
                None => {
                    let inner = filter_expr(inner, runs, shape)?;
                    let sub = run_keys(runs.base, inner, &format!("__run_has_{}", runs.n))?;
                    in_subquery(run_key(), sub)
                }
            }
        }
    })
}

/// The most run keys a `run has` answered as a key list is compiled to an
/// `IN` list for (more: a semi join with [`keys_plan`]).
pub(crate) const RUN_LIST_MAX: usize = 64;

/// The run keys as a one-column in-memory table.
fn keys_plan(keys: &[String], name: &str) -> Result<Arc<LogicalPlan>, Error> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "run_key",
        DataType::Utf8,
        false,
    )]));
    let values = StringArray::from_iter_values(keys.iter());
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)])?;
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    let plan =
        LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?.build()?;
    Ok(Arc::new(plan))
}

fn aggregate_expr(a: &Aggregate, shape: &Shape) -> Expr {
    let status = || ident(column::STATUS);
    let arg = || {
        a.field
            .as_ref()
            .map(|f| numeric(f, shape))
            .unwrap_or(lit(1i64))
    };
    let e = match a.kind {
        AggKind::Count => count(lit(1i64)),
        AggKind::ErrorRate => avg(when(status().eq(lit("error")), lit(1.0))
            .otherwise(lit(0.0))
            .unwrap_or(lit(0.0))),
        AggKind::SuccessRate => avg(when(status().eq(lit("ok")), lit(1.0))
            .when(status().eq(lit("error")), lit(0.0))
            .end()
            .unwrap_or(lit(ScalarValue::Float64(None)))),
        AggKind::Avg => avg(cast(arg(), DataType::Float64)),
        AggKind::Min => min(arg()),
        AggKind::Max => max(arg()),
        AggKind::Sum => sum(arg()),
        AggKind::Percentile(q) => {
            percentile_cont(cast(arg(), DataType::Float64).sort(true, false), lit(q))
        }
        AggKind::CountDistinct => count_distinct(
            a.field
                .as_ref()
                .map(|f| field_expr(f, shape))
                .unwrap_or(lit(ScalarValue::Null)),
        ),
    };
    e.alias(a.name.as_str())
}

/// The aggregate stage: group keys, aggregates, the total sort and the
/// limit. Returns the frame and per-column type overrides.
pub(crate) fn aggregate(
    df: DataFrame,
    plan: &Plan,
) -> Result<(DataFrame, Vec<Option<ValueType>>), Error> {
    let shape = shape_of(plan.source);
    let mut groups = Vec::new();
    let mut types = Vec::new();
    for key in &plan.group_by {
        match key {
            GroupKey::Field(f) => {
                groups.push(field_expr(f, shape).alias(key.output_name()));
                types.push(Some(f.ty()));
            }
            GroupKey::Bucket { width_ns } => {
                let width = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                    0, 0, *width_ns,
                )));
                let time = ident(shape.time);
                groups.push(date_bin(lit(width), time, ts(0)).alias(key.output_name()));
                types.push(Some(ValueType::Timestamp));
            }
        }
    }
    for a in &plan.aggregates {
        let duration_arg = a
            .field
            .as_ref()
            .is_some_and(|f| f.ty() == ValueType::Duration);
        types.push(match a.kind {
            AggKind::Min | AggKind::Max | AggKind::Sum if duration_arg => Some(ValueType::Duration),
            _ => None,
        });
    }
    let aggs = plan
        .aggregates
        .iter()
        .map(|a| aggregate_expr(a, shape))
        .collect();
    let mut df = df.aggregate(groups, aggs)?;
    let mut order: Vec<_> = plan
        .sort
        .iter()
        .map(|k| {
            let name = match &k.column {
                SortColumn::Output(name) => name.clone(),
                SortColumn::Field(f) => f.output_name(),
            };
            ident(name).sort(!k.descending, false)
        })
        .collect();
    order.extend(
        plan.group_by
            .iter()
            .map(|k| ident(k.output_name()).sort(true, false)),
    );
    if !order.is_empty() {
        df = df.sort(order)?;
    }
    if let Some(n) = plan.limit {
        df = df.limit(0, Some(usize::try_from(n).unwrap_or(usize::MAX)))?;
    }
    Ok((df, types))
}
