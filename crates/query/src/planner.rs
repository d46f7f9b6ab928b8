//! The planner: a parsed [`Query`] → the backend-neutral [`Plan`].
//!
//! What it decides, so every backend answers the same way:
//!
//! - the time range, resolved against the caller's `now` (`last 7d` →
//!   `[now − 7d, now)`), or the caller's default window;
//! - literals typed for their field: durations and timestamps in ns, integer
//!   columns as integers, `cost` as a float, map values as text or (when the
//!   literal is a number) as a float the backend compares against the value
//!   cast to a number;
//! - implicit `count()` when grouping without aggregates;
//! - `top N`: sort by the first aggregate (or `duration` when listing spans)
//!   descending, unless the query sorts; then it is `limit N`;
//! - the default order when the query has none (newest spans first);
//! - the columns of a span listing (every field, or the query's `fields`).
//!
//! Errors are [`PlanError`]s with a byte span when the text position is
//! known (the AST carries none, so most are `0..0`).

use std::ops::Range;

use loupe_backend::plan::{
    AggKind, Aggregate as PAgg, Cmp, FieldRef, Filter, GroupKey as PKey, Literal, Output, Plan,
    SortColumn, SortKey as PSort, ValueType,
};
use loupe_model::{column as c, log_column as lc};

use crate::language::{
    AggCall, AggFunc, CmpOp, Column, Expr, Field, FieldType, GroupKey, Limit, Order, Query, SortBy,
    Source, TimeRange, Value,
};

#[cfg(test)]
mod tests;

/// What the caller decides for a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// "Now", ns since the epoch: the end of `last D` and of the default
    /// window.
    pub now_ns: i64,
    /// Window used when the query has no time range, ns (default 24 h).
    pub default_window_ns: i64,
    /// Row limit of a span listing without `limit`/`top` (default 100;
    /// `None`: no limit, for exports).
    pub default_row_limit: Option<u64>,
}

impl PlanOptions {
    /// Defaults at `now_ns`: a 24 h window, listings capped at 100 rows.
    pub fn at(now_ns: i64) -> Self {
        Self {
            now_ns,
            default_window_ns: 24 * 3_600 * 1_000_000_000,
            default_row_limit: Some(100),
        }
    }
}

/// Why a query cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    /// Byte span in the query text (`0..0` when unknown).
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
}

impl PlanError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            span: 0..0,
            message: message.into(),
        }
    }
}

/// Lowers a checked query into a [`Plan`]. The query should have passed
/// [`Query::validate`] (parsing does that); a literal of the wrong type for
/// its field is a [`PlanError`] rather than a panic.
pub fn plan(query: &Query, opts: PlanOptions) -> Result<Plan, PlanError> {
    let (from_ns, to_ns) = match query.time {
        Some(TimeRange::Last { last }) => (opts.now_ns.saturating_sub(last.0), opts.now_ns),
        Some(TimeRange::Between { from, to }) => (from.0, to.0),
        None => (
            opts.now_ns.saturating_sub(opts.default_window_ns),
            opts.now_ns,
        ),
    };
    if to_ns <= from_ns {
        return Err(PlanError::new(
            "the time range is empty: it must end after it starts",
        ));
    }
    let source = query.source;
    let filter = query
        .filter
        .as_ref()
        .map(|e| lower_expr(e, source))
        .transpose()?;
    let aggregating = query.is_aggregating();
    let group_by: Vec<PKey> = query
        .group_by
        .iter()
        .map(|k| match k {
            GroupKey::Field(f) => PKey::Field(field_ref_in(f, source)),
            GroupKey::Bucket { bucket } => PKey::Bucket { width_ns: bucket.0 },
        })
        .collect();
    let mut aggregates: Vec<PAgg> = query
        .aggregates
        .iter()
        .map(|a| lower_agg(&a.call(), a.output_name(), source))
        .collect::<Result<_, _>>()?;
    if aggregating && aggregates.is_empty() {
        aggregates.push(PAgg {
            kind: AggKind::Count,
            field: None,
            name: "count()".into(),
        });
    }
    let mut sort = query
        .sort
        .iter()
        .map(|k| {
            Ok(PSort {
                column: sort_column(query, &k.by, aggregating, source)?,
                descending: k.order == Order::Desc,
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    if sort.is_empty() {
        match (query.limit, aggregating) {
            (Some(Limit::Top { .. }), true) => sort.push(PSort {
                column: SortColumn::Output(aggregates[0].name.clone()),
                descending: true,
            }),
            // Log records have no duration: a listing is newest first.
            (_, false) if source == Source::Logs => sort.push(PSort {
                column: SortColumn::Field(FieldRef::Column {
                    name: lc::TIME.into(),
                    ty: ValueType::Timestamp,
                }),
                descending: true,
            }),
            (Some(Limit::Top { .. }), false) => sort.push(PSort {
                column: SortColumn::Field(column_ref(c::DURATION)),
                descending: true,
            }),
            (_, false) => sort.push(PSort {
                column: SortColumn::Field(column_ref(c::START_TIME)),
                descending: true,
            }),
            (_, true) => {}
        }
    }
    let limit = match query.limit {
        Some(l) => Some(l.count()),
        None if aggregating => None,
        None => opts.default_row_limit,
    };
    let output = match (aggregating, source) {
        (true, _) => Output::Aggregates,
        (false, _) if !query.fields.is_empty() => Output::Rows(
            query
                .fields
                .iter()
                .map(|f| field_ref_in(f, source))
                .collect(),
        ),
        (false, Source::Spans) => Output::Rows(listing_columns()),
        (false, Source::Logs) => Output::Rows(log_listing_columns()),
    };
    Ok(Plan {
        source,
        from_ns,
        to_ns,
        filter,
        group_by,
        aggregates: if aggregating { aggregates } else { Vec::new() },
        sort,
        limit,
        output,
        approx_percentiles: false,
    })
}

/// The columns of a span listing: every span field but `project`, then
/// `attributes` and `tags`.
pub fn listing_columns() -> Vec<FieldRef> {
    listing(Source::Spans, c::PROJECT, [c::ATTRIBUTES, c::TAGS])
}

/// The columns of a log listing: every log field but `observed_time`, then
/// `attributes` and `resource` (JSON object text).
pub fn log_listing_columns() -> Vec<FieldRef> {
    listing(
        Source::Logs,
        lc::OBSERVED_TIME,
        [lc::ATTRIBUTES, lc::RESOURCE],
    )
}

/// Every column of `source` but `skip`, then its two maps.
fn listing(source: Source, skip: &str, maps: [&str; 2]) -> Vec<FieldRef> {
    Column::all_in(source)
        .iter()
        .filter(|col| col.name() != skip)
        .map(|col| field_ref_in(&Field::Column(*col), source))
        .chain(maps.into_iter().map(|name| FieldRef::Column {
            name: name.into(),
            ty: ValueType::Map,
        }))
        .collect()
}

fn column_ref(name: &str) -> FieldRef {
    match Column::lookup(name) {
        Some(col) => field_ref(&Field::Column(col)),
        None => FieldRef::Column {
            name: name.into(),
            ty: ValueType::Text,
        },
    }
}

fn value_type(ty: FieldType) -> ValueType {
    match ty {
        FieldType::Int => ValueType::Int,
        FieldType::Float => ValueType::Float,
        FieldType::Duration => ValueType::Duration,
        FieldType::Time => ValueType::Timestamp,
        FieldType::Severity => ValueType::Int,
        _ => ValueType::Text,
    }
}

/// The plan's name for a span field.
pub fn field_ref(f: &Field) -> FieldRef {
    field_ref_in(f, Source::Spans)
}

/// The plan's name for a field of `source`. A log record's maps are JSON
/// object text of flattened keys, so `attributes.k` is the value at the
/// one key `k` of that text.
pub fn field_ref_in(f: &Field, source: Source) -> FieldRef {
    match (f, source) {
        (Field::Attribute(k), Source::Logs) => {
            return FieldRef::Json {
                column: lc::ATTRIBUTES.into(),
                keys: vec![k.clone()],
            };
        }
        (Field::Resource(k), _) => {
            return FieldRef::Json {
                column: lc::RESOURCE.into(),
                keys: vec![k.clone()],
            };
        }
        _ => {}
    }
    match f {
        Field::Column(col) => FieldRef::Column {
            name: col.name().into(),
            ty: value_type(col.ty()),
        },
        Field::Attribute(k) => FieldRef::Attribute(k.clone()),
        Field::Tag(k) => FieldRef::Tag(k.clone()),
        Field::Json(path) => FieldRef::Json {
            column: path.column.to_owned(),
            keys: path.keys.clone(),
        },
        Field::Resource(k) => FieldRef::Json {
            column: lc::RESOURCE.into(),
            keys: vec![k.clone()],
        },
    }
}

fn sort_column(
    q: &Query,
    by: &SortBy,
    aggregating: bool,
    source: Source,
) -> Result<SortColumn, PlanError> {
    if !aggregating {
        return match by {
            SortBy::Field(f) => Ok(SortColumn::Field(field_ref_in(f, source))),
            other => Err(PlanError::new(format!(
                "`sort {other}` needs an aggregate; this query lists {}",
                source.as_str()
            ))),
        };
    }
    let name = match by {
        SortBy::Aggregate(call) => q
            .aggregates
            .iter()
            .find(|a| &a.call() == call)
            .map(|a| a.output_name())
            // `sort count()` on an implicit count.
            .or_else(|| {
                (q.aggregates.is_empty() && call.func == AggFunc::Count).then(|| "count()".into())
            }),
        SortBy::Alias(alias) => q
            .aggregates
            .iter()
            .find(|a| a.alias.as_deref() == Some(alias))
            .map(|a| a.output_name()),
        SortBy::Field(f) => q
            .group_by
            .iter()
            .any(|k| matches!(k, GroupKey::Field(g) if g == f))
            .then(|| field_ref_in(f, source).output_name()),
    };
    name.map(SortColumn::Output)
        .ok_or_else(|| PlanError::new(format!("`{by}` is not computed by this query")))
}

fn lower_agg(call: &AggCall, name: String, source: Source) -> Result<PAgg, PlanError> {
    let kind = match call.func {
        AggFunc::Count => AggKind::Count,
        AggFunc::ErrorRate => AggKind::ErrorRate,
        AggFunc::SuccessRate => AggKind::SuccessRate,
        AggFunc::Avg => AggKind::Avg,
        AggFunc::Min => AggKind::Min,
        AggFunc::Max => AggKind::Max,
        AggFunc::Sum => AggKind::Sum,
        AggFunc::CountDistinct => AggKind::CountDistinct,
        f => AggKind::Percentile(
            f.quantile()
                .ok_or_else(|| PlanError::new(format!("unknown aggregate {}", f.as_str())))?,
        ),
    };
    if call.func.takes_field() != call.field.is_some() {
        return Err(PlanError::new(format!("`{call}` has the wrong argument")));
    }
    Ok(PAgg {
        kind,
        field: call.field.as_ref().map(|f| field_ref_in(f, source)),
        name,
    })
}

fn lower_expr(e: &Expr, source: Source) -> Result<Filter, PlanError> {
    let all = |args: &[Expr]| -> Result<Vec<Filter>, PlanError> {
        args.iter().map(|a| lower_expr(a, source)).collect()
    };
    Ok(match e {
        Expr::And(args) => Filter::And(all(args)?),
        Expr::Or(args) => Filter::Or(all(args)?),
        Expr::Not(arg) => Filter::Not(Box::new(lower_expr(arg, source)?)),
        Expr::Compare { field, op, value } if field.ty() == FieldType::Severity => {
            severity_filter(field_ref_in(field, source), *op, value)?
        }
        Expr::In { field, values } if field.ty() == FieldType::Severity => {
            let fref = field_ref_in(field, source);
            Filter::Or(
                values
                    .iter()
                    .map(|v| severity_filter(fref.clone(), CmpOp::Eq, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        Expr::Compare { field, op, value } => {
            let op = match op {
                CmpOp::Eq => Cmp::Eq,
                CmpOp::Ne => Cmp::Ne,
                CmpOp::Lt => Cmp::Lt,
                CmpOp::Le => Cmp::Le,
                CmpOp::Gt => Cmp::Gt,
                CmpOp::Ge => Cmp::Ge,
            };
            Filter::Compare {
                field: field_ref_in(field, source),
                op,
                value: literal(field, value)?,
            }
        }
        Expr::In { field, values } => Filter::In {
            field: field_ref_in(field, source),
            values: values
                .iter()
                .map(|v| literal(field, v))
                .collect::<Result<_, _>>()?,
        },
        Expr::Contains {
            field,
            value,
            ignore_case,
        } => Filter::Contains {
            field: field_ref_in(field, source),
            value: value.clone(),
            ignore_case: *ignore_case,
        },
        Expr::Exists(field) => Filter::Exists(field_ref_in(field, source)),
        Expr::Text(text) => Filter::Text(text.clone()),
        Expr::RunHas(_) if source == Source::Logs => {
            return Err(PlanError::new("`run has` applies to spans, not logs"));
        }
        Expr::RunHas(inner) => {
            let inner = lower_expr(inner, source)?;
            if contains_run_has(&inner) {
                return Err(PlanError::new(
                    "`run has` cannot appear inside another `run has`",
                ));
            }
            Filter::RunHas(Box::new(inner))
        }
    })
}

/// A severity comparison on OpenTelemetry's numbers. A level name stands
/// for its range (`error` is 17–20), so `severity=error` keeps 17–20,
/// `severity>=error` 17 and up, `severity>error` 21 and up, and
/// `severity<error` 16 and down; a number compares as itself.
fn severity_filter(field: FieldRef, op: CmpOp, value: &Value) -> Result<Filter, PlanError> {
    let (lo, hi) = match value {
        Value::Int(n) => (*n, *n),
        Value::Str(s) => {
            let level = crate::language::check_severity(s)
                .map_err(|p| PlanError::new(p.message.clone()))?;
            let lo = i64::from(level.number());
            (lo, lo + 3)
        }
        other => {
            return Err(PlanError::new(format!(
                "`severity` is a level or a number; {} does not fit",
                other.describe()
            )));
        }
    };
    let cmp = |op, n| Filter::Compare {
        field: field.clone(),
        op,
        value: Literal::Int(n),
    };
    Ok(match op {
        CmpOp::Eq if lo == hi => cmp(Cmp::Eq, lo),
        CmpOp::Eq => Filter::And(vec![cmp(Cmp::Ge, lo), cmp(Cmp::Le, hi)]),
        CmpOp::Ne if lo == hi => cmp(Cmp::Ne, lo),
        CmpOp::Ne => Filter::Or(vec![cmp(Cmp::Lt, lo), cmp(Cmp::Gt, hi)]),
        CmpOp::Lt => cmp(Cmp::Lt, lo),
        CmpOp::Le => cmp(Cmp::Le, hi),
        CmpOp::Gt => cmp(Cmp::Gt, hi),
        CmpOp::Ge => cmp(Cmp::Ge, lo),
    })
}

fn contains_run_has(f: &Filter) -> bool {
    match f {
        Filter::RunHas(_) => true,
        Filter::And(a) | Filter::Or(a) => a.iter().any(contains_run_has),
        Filter::Not(a) => contains_run_has(a),
        _ => false,
    }
}

/// The literal typed for the field (see the module doc).
fn literal(field: &Field, v: &Value) -> Result<Literal, PlanError> {
    let ty = field.ty();
    let lit = match (ty, v) {
        (FieldType::Text, Value::Str(s)) => Literal::Text(s.clone()),
        (FieldType::Text, Value::Int(n)) => Literal::Text(n.to_string()),
        (FieldType::MapValue, Value::Str(s)) => Literal::Text(s.clone()),
        (FieldType::MapValue, Value::Int(n)) => Literal::Float(*n as f64),
        (FieldType::MapValue | FieldType::Float, Value::Float(x)) => Literal::Float(*x),
        (FieldType::Float, Value::Int(n)) => Literal::Float(*n as f64),
        (FieldType::Int, Value::Int(n)) => Literal::Int(*n),
        (FieldType::Duration, Value::Duration(d)) => Literal::Duration(d.0),
        (FieldType::Time, Value::Time(t)) => Literal::Timestamp(t.0),
        _ => {
            return Err(PlanError::new(format!(
                "`{field}` is {}; {} does not fit",
                ty.describe(),
                v.describe()
            )));
        }
    };
    Ok(lit)
}
