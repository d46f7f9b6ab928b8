//! Type and sanity checks shared by the text parser (which attaches byte
//! spans) and the JSON path ([`crate::Query::validate`], which has none).
//!
//! Each check answers one question about one construct and returns a
//! [`Problem`]; the caller decides where it points.

use super::ast::{AggCall, AggFunc, Aggregate, Expr, GroupKey, Query, SortBy, Source, TimeRange};
use super::error::{ErrorKind, Problem, did_you_mean};
use super::field::{Column, Field, FieldType};
use super::values::{KEYWORDS, Value};

const UNIT_HELP: &str = "units are ns, us, ms, s, m, h, d";

fn type_error(message: String) -> Problem {
    Problem::new(ErrorKind::Type, message)
}

/// Can `field` be compared with `value` at all (`=`, `in`, `<`, …)?
pub(crate) fn check_value(field: &Field, value: &Value) -> Result<(), Problem> {
    let ty = field.ty();
    let mismatch = || {
        type_error(format!(
            "`{field}` is {}; {} is not",
            ty.describe(),
            value.describe()
        ))
    };
    match (ty, value) {
        (FieldType::Text, Value::Str(s)) => check_enum_value(field, s),
        (FieldType::Int | FieldType::Float, Value::Int(_) | Value::Float(_)) => Ok(()),
        (FieldType::Duration, Value::Duration(_)) | (FieldType::Time, Value::Time(_)) => Ok(()),
        (FieldType::MapValue, Value::Str(_) | Value::Int(_) | Value::Float(_)) => Ok(()),
        (FieldType::Severity, Value::Str(s)) => severity_level(s).map(|_| ()),
        (FieldType::Severity, Value::Int(0..=24)) => Ok(()),
        (FieldType::Severity, _) => Err(mismatch().suggest(Some(format!(
            "write a level ({}) or a number from 0 to 24",
            SEVERITY_LEVELS.join(", ")
        )))),
        (FieldType::Duration, Value::Int(n)) => Err(type_error(format!(
            "`{field}` is a duration; the number {n} needs a unit"
        ))
        .suggest(Some(format!("did you mean `{n}ms`? ({UNIT_HELP})")))),
        (FieldType::Duration, _) => Err(mismatch().suggest(Some(format!(
            "write a number with a unit, e.g. `1s` ({UNIT_HELP})"
        )))),
        (FieldType::Time, _) => Err(mismatch().suggest(Some(
            "write an RFC 3339 timestamp, e.g. `2026-11-01T00:00:00Z`".into(),
        ))),
        (FieldType::MapValue, _) => Err(type_error(format!(
            "`{field}` holds text; compare it with a string or a number, not {}",
            value.describe()
        ))),
        (FieldType::Int | FieldType::Float, Value::Str(s)) => Err(mismatch().suggest(
            s.parse::<f64>()
                .is_ok()
                .then(|| format!("write the number without quotes: `{s}`")),
        )),
        _ => Err(mismatch()),
    }
}

/// The level names a severity is written with, lowest first.
const SEVERITY_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// The level a severity literal names (`error`), case-insensitively.
pub(crate) fn severity_level(s: &str) -> Result<loupe_model::Severity, Problem> {
    loupe_model::Severity::ALL
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let lower = s.to_ascii_lowercase();
            let known = loupe_model::Severity::from_text(&lower).map(|l| l.as_str());
            type_error(format!(
                "`{s}` is not a severity level (one of {})",
                SEVERITY_LEVELS.join(", ")
            ))
            .suggest(
                known
                    .map(|l| format!("did you mean `{l}`?"))
                    .or_else(|| did_you_mean(&lower, SEVERITY_LEVELS)),
            )
        })
}

/// `status` and `span_kind` hold normalised values; anything else is a typo.
fn check_enum_value(field: &Field, s: &str) -> Result<(), Problem> {
    let Field::Column(col) = field else {
        return Ok(());
    };
    match col.allowed_values() {
        Some(allowed) if !allowed.contains(&s) => Err(type_error(format!(
            "`{s}` is not a value of `{field}` (one of {})",
            allowed.join(", ")
        ))
        .suggest(did_you_mean(s, allowed.iter().copied()))),
        _ => Ok(()),
    }
}

/// `field contains "…"` needs a text field.
pub(crate) fn check_contains(field: &Field) -> Result<(), Problem> {
    match field.ty() {
        FieldType::Text | FieldType::MapValue => Ok(()),
        ty => Err(type_error(format!(
            "`contains` needs a text field; `{field}` is {}",
            ty.describe()
        ))),
    }
}

/// Does `func` accept `field` (or its absence) over `source`?
pub(crate) fn check_aggregate(
    source: Source,
    func: AggFunc,
    field: Option<&Field>,
) -> Result<(), Problem> {
    let name = func.as_str();
    if source == Source::Logs && matches!(func, AggFunc::ErrorRate | AggFunc::SuccessRate) {
        return Err(type_error(format!(
            "`{name}` is a rate of span statuses; log records have a severity"
        ))
        .suggest(Some(
            "count them instead: `logs | severity>=error | by service | count()`".into(),
        )));
    }
    let Some(field) = field else {
        return if func.takes_field() {
            Err(type_error(format!("`{name}` needs a field"))
                .suggest(Some(format!("e.g. `{name}(duration)`"))))
        } else {
            Ok(())
        };
    };
    if !func.takes_field() {
        let hint = match func {
            AggFunc::Count => format!("write `count()`, or `count_distinct({field})`"),
            _ => format!("write `{name}()`"),
        };
        return Err(type_error(format!("`{name}` takes no field")).suggest(Some(hint)));
    }
    let ty = field.ty();
    let ok = match func {
        AggFunc::CountDistinct => true,
        AggFunc::Min | AggFunc::Max => {
            ty.is_numeric() || matches!(ty, FieldType::Time | FieldType::Severity)
        }
        _ => ty.is_numeric(),
    };
    if ok {
        return Ok(());
    }
    let what = if matches!(func, AggFunc::Min | AggFunc::Max) {
        "a numeric or time field"
    } else {
        "a numeric field"
    };
    Err(type_error(format!(
        "`{name}` needs {what}; `{field}` is {}",
        ty.describe()
    ))
    .suggest(Some(format!(
        "count its values instead: `count_distinct({field})`, or group by it"
    ))))
}

/// A bucket must be a positive duration.
pub(crate) fn check_bucket(width: i64) -> Result<(), Problem> {
    if width > 0 {
        Ok(())
    } else {
        Err(type_error("bucket width must be positive".into())
            .suggest(Some("e.g. `bucket(1m)`, `bucket(1h)`".into())))
    }
}

/// `last` must be positive and `from` before `to`.
pub(crate) fn check_time(range: &TimeRange) -> Result<(), Problem> {
    match range {
        TimeRange::Last { last } if last.0 <= 0 => {
            Err(type_error("`last` needs a positive duration".into())
                .suggest(Some("e.g. `last 7d`".into())))
        }
        TimeRange::Between { from, to } if from >= to => Err(Problem::new(
            ErrorKind::Invalid,
            format!("the range ends ({to}) before it starts ({from})"),
        )),
        _ => Ok(()),
    }
}

/// `limit` / `top` must be at least 1.
pub(crate) fn check_limit(n: u64) -> Result<(), Problem> {
    if n >= 1 {
        Ok(())
    } else {
        Err(Problem::new(
            ErrorKind::Invalid,
            "a limit must be at least 1",
        ))
    }
}

/// An alias is a plain identifier that is not a keyword or a field name,
/// so a sort key can never be ambiguous.
pub(crate) fn check_alias(alias: &str) -> Result<(), Problem> {
    let ident = alias.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_')
        && alias
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !ident {
        return Err(Problem::new(
            ErrorKind::Invalid,
            format!("alias `{alias}` must be a plain name (letters, digits, `_`)"),
        ));
    }
    let lower = alias.to_ascii_lowercase();
    let clash = KEYWORDS.contains(&lower.as_str())
        || Column::lookup(alias).is_some()
        || Column::lookup_in(Source::Logs, alias).is_some()
        || matches!(alias, "tags" | "attributes" | "resource");
    if clash {
        return Err(Problem::new(
            ErrorKind::Invalid,
            format!("alias `{alias}` is already a keyword or field name"),
        )
        .suggest(Some(format!("e.g. `{alias}_value`"))));
    }
    Ok(())
}

/// Aliases must be unique among the aggregates before `index`.
pub(crate) fn check_alias_unique(aggs: &[Aggregate], alias: &str) -> Result<(), Problem> {
    if aggs.iter().any(|a| a.alias.as_deref() == Some(alias)) {
        Err(Problem::new(
            ErrorKind::Invalid,
            format!("alias `{alias}` is used twice"),
        ))
    } else {
        Ok(())
    }
}

/// A sort key must name something the result has.
pub(crate) fn check_sort(query: &Query, by: &SortBy) -> Result<(), Problem> {
    let aggregating = !query.group_by.is_empty() || !query.aggregates.is_empty();
    let computed = |call: &AggCall| {
        query.aggregates.iter().any(|a| a.call() == *call)
            || (query.aggregates.is_empty() && call.func == AggFunc::Count && call.field.is_none())
    };
    match by {
        SortBy::Aggregate(call) if !computed(call) => Err(Problem::new(
            ErrorKind::Invalid,
            format!("`{call}` is not computed by this query"),
        )
        .suggest(Some(format!("add it to the aggregates: `| {call}`")))),
        SortBy::Field(field) if aggregating && !is_group_field(query, field) => Err(Problem::new(
            ErrorKind::Invalid,
            format!("`{field}` is not a group key, so the result has no such column"),
        )
        .suggest(Some(format!("group by it: `by {field}`")))),
        SortBy::Alias(alias)
            if !query
                .aggregates
                .iter()
                .any(|a| a.alias.as_deref() == Some(alias)) =>
        {
            let mut names: Vec<String> = query
                .aggregates
                .iter()
                .filter_map(|a| a.alias.clone())
                .collect();
            if !aggregating {
                names.extend(
                    Column::all_in(query.source)
                        .iter()
                        .map(|c| c.name().to_string()),
                );
            }
            Err(Problem::new(
                ErrorKind::UnknownField,
                format!("`{alias}` is neither a field nor an alias of this query"),
            )
            .suggest(did_you_mean(alias, names.iter().map(String::as_str))))
        }
        _ => Ok(()),
    }
}

fn is_group_field(query: &Query, field: &Field) -> bool {
    query
        .group_by
        .iter()
        .any(|k| matches!(k, GroupKey::Field(f) if f == field))
}

/// Checks an expression tree from JSON: arity, nesting and every leaf.
pub(crate) fn check_expr(e: &Expr, in_run: bool) -> Result<(), Problem> {
    match e {
        Expr::And(args) | Expr::Or(args) => {
            if args.len() < 2 {
                return Err(Problem::new(
                    ErrorKind::Invalid,
                    "`and` and `or` need at least two operands",
                ));
            }
            args.iter().try_for_each(|a| check_expr(a, in_run))
        }
        Expr::Not(arg) => check_expr(arg, in_run),
        Expr::Compare { field, value, .. } => check_value(field, value),
        Expr::In { field, values } => {
            if values.is_empty() {
                return Err(Problem::new(
                    ErrorKind::Invalid,
                    "`in` needs at least one value",
                ));
            }
            values.iter().try_for_each(|v| check_value(field, v))
        }
        Expr::Contains { field, .. } => check_contains(field),
        Expr::Exists(_) => Ok(()),
        Expr::Text(text) if text.trim().is_empty() => {
            Err(Problem::new(ErrorKind::Invalid, "the search text is empty"))
        }
        Expr::Text(_) => Ok(()),
        Expr::RunHas(_) if in_run => Err(nested_run_has()),
        Expr::RunHas(inner) => check_expr(inner, true),
    }
}

/// `run has` over logs: runs are sets of spans.
pub(crate) fn run_has_on_logs() -> Problem {
    Problem::new(
        ErrorKind::Invalid,
        "`run has` applies to spans; a log record names its run itself",
    )
    .suggest(Some(
        "filter on the record's ids: `logs | run_id=…` or `trace_id=…`".into(),
    ))
}

/// Every field and construct of `q` exists in its source (the JSON form
/// names fields before its `source`; the parser checks as it reads).
fn check_source(q: &Query) -> Result<(), Problem> {
    let field_ok = |f: &Field| -> Result<(), Problem> {
        if f.valid_in(q.source) {
            return Ok(());
        }
        Err(Problem::new(
            ErrorKind::UnknownField,
            format!("`{f}` is not a field of {}", q.source.as_str()),
        )
        .suggest(Some(format!(
            "{} fields are {}",
            q.source.as_str(),
            Column::all_in(q.source)
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))))
    };
    let mut stack: Vec<&Expr> = q.filter.iter().collect();
    while let Some(e) = stack.pop() {
        match e {
            Expr::And(args) | Expr::Or(args) => stack.extend(args),
            Expr::Not(arg) => stack.push(arg),
            Expr::RunHas(_) if q.source == Source::Logs => return Err(run_has_on_logs()),
            Expr::RunHas(arg) => stack.push(arg),
            Expr::Compare { field, .. }
            | Expr::In { field, .. }
            | Expr::Contains { field, .. }
            | Expr::Exists(field) => field_ok(field)?,
            Expr::Text(_) => {}
        }
    }
    for key in &q.group_by {
        if let GroupKey::Field(f) = key {
            field_ok(f)?;
        }
    }
    for f in q.aggregates.iter().filter_map(|a| a.field.as_ref()) {
        field_ok(f)?;
    }
    for key in &q.sort {
        match &key.by {
            SortBy::Field(f) => field_ok(f)?,
            SortBy::Aggregate(call) => call.field.iter().try_for_each(field_ok)?,
            SortBy::Alias(_) => {}
        }
    }
    q.fields.iter().try_for_each(field_ok)
}

pub(crate) fn nested_run_has() -> Problem {
    Problem::new(
        ErrorKind::Invalid,
        "`run has` cannot appear inside another `run has`",
    )
    .suggest(Some(
        "combine them at the top level: `run has (a) run has (b)`".into(),
    ))
}

/// Checks a whole query (the JSON path; the parser checks as it goes).
/// The text parser's size limits, for a query that did not come through
/// it (JSON): nesting, terms and `in` values. Walks with an explicit stack,
/// so a deep tree is measured, not recursed into.
fn check_size(filter: &Expr) -> Result<(), Problem> {
    use super::parser::{MAX_DEPTH, MAX_IN_VALUES, MAX_TERMS};
    let invalid = |message: String| Problem::new(ErrorKind::Invalid, message);
    let mut terms = 0usize;
    let mut stack = vec![(filter, 0usize)];
    while let Some((e, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "the filter is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        match e {
            Expr::And(args) | Expr::Or(args) => {
                stack.extend(args.iter().map(|a| (a, depth + 1)));
            }
            Expr::Not(arg) | Expr::RunHas(arg) => stack.push((arg, depth + 1)),
            Expr::In { values, .. } if values.len() > MAX_IN_VALUES => {
                return Err(invalid(format!(
                    "an `in` list has more than {MAX_IN_VALUES} values"
                )));
            }
            _ => {
                terms += 1;
                if terms > MAX_TERMS {
                    return Err(invalid(format!(
                        "the filter has more than {MAX_TERMS} terms"
                    )));
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn check_query(q: &Query) -> Result<(), Problem> {
    check_source(q)?;
    if let Some(time) = &q.time {
        check_time(time)?;
    }
    if let Some(filter) = &q.filter {
        check_size(filter)?;
        check_expr(filter, false)?;
    }
    for key in &q.group_by {
        if let GroupKey::Bucket { bucket } = key {
            check_bucket(bucket.0)?;
        }
    }
    for (i, agg) in q.aggregates.iter().enumerate() {
        check_aggregate(q.source, agg.func, agg.field.as_ref())?;
        if let Some(alias) = &agg.alias {
            check_alias(alias)?;
            check_alias_unique(&q.aggregates[..i], alias)?;
        }
    }
    for key in &q.sort {
        check_sort(q, &key.by)?;
    }
    if let Some(limit) = q.limit {
        check_limit(limit.count())?;
    }
    if !q.fields.is_empty() {
        check_fields_allowed(q)?;
    }
    for (i, field) in q.fields.iter().enumerate() {
        check_field_new(&q.fields[..i], field)?;
    }
    Ok(())
}

/// The most columns a `fields` stage names (a listing has 34 fields; map
/// values add more, but not without bound).
pub(crate) const MAX_FIELDS: usize = 100;

/// A `fields` stage picks a listing's columns: a query that groups or
/// aggregates has its keys and results as columns instead.
pub(crate) fn check_fields_allowed(q: &Query) -> Result<(), Problem> {
    if !q.group_by.is_empty() || !q.aggregates.is_empty() {
        return Err(Problem::new(
            ErrorKind::Invalid,
            "`fields` picks the columns of a listing; this query groups or aggregates, so its \
             columns are its group keys and aggregates",
        )
        .suggest(Some(
            "drop the `fields` stage, or the `by` and aggregates to list spans".into(),
        )));
    }
    Ok(())
}

/// A field a `fields` stage adds to `fields`: not one already there, and
/// no more than [`MAX_FIELDS`] in all.
pub(crate) fn check_field_new(fields: &[Field], field: &Field) -> Result<(), Problem> {
    if fields.contains(field) {
        return Err(Problem::new(
            ErrorKind::Invalid,
            format!("`{field}` is already listed"),
        ));
    }
    if fields.len() >= MAX_FIELDS {
        return Err(Problem::new(
            ErrorKind::Invalid,
            format!("a `fields` stage names at most {MAX_FIELDS} fields"),
        ));
    }
    Ok(())
}
