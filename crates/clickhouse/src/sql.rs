//! `Plan` → ClickHouse SQL text, with the semantics `loupe_backend::plan`
//! writes down (the embedded store's answers are the reference):
//!
//! - every read is `FROM <spans> FINAL WHERE project = '…'`, so each span is
//!   read once, in its latest version, and never outside its project;
//! - a leaf whose field is unset does not match: each leaf is wrapped in
//!   `ifNull(…, 0)`, so `AND`/`OR`/`NOT` are plain boolean logic over
//!   "matches" (the store's `IS NOT TRUE` negation gives the same truth
//!   table);
//! - map values are `NULL` when the key is absent, cast with
//!   `toFloat64OrNull` where a number is compared or aggregated;
//! - exact percentiles interpolate linearly between closest ranks
//!   (`q·(n−1)`) over the sorted values, with the interpolation weight
//!   quantised to 1e-6 as DataFusion's `percentile_cont` does (the same
//!   arithmetic in both profiles; 18.16 has no `quantileExactInclusive`);
//! - sorting is total (explicit keys, then the group keys or `span_id`),
//!   nulls last in both directions.
//!
//! Output columns are named `__cN` in SQL (a user's aggregate name can never
//! shadow a column in ClickHouse's alias scope) and renamed when read.

use loupe_backend::plan::{
    AggKind, Aggregate, Cmp, Column, FieldRef, Filter, GroupKey, Literal, Output, Plan, SortColumn,
    Source, ValueType,
};
use loupe_model::ProjectId;

use crate::Error;
use crate::schema::{Layout, Profile};

/// Filters and nesting deeper than this are refused (the planner bounds
/// them already; this keeps the SQL text bounded whatever the caller).
const MAX_DEPTH: usize = 64;

/// A string literal in ClickHouse syntax.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The columns full-text search reads (`Filter::Text`).
pub(crate) const TEXT_COLUMNS: [&str; 3] = ["input", "output", "error_message"];

/// Text matched literally inside a `LIKE` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A float literal ClickHouse reads back as the same `f64`.
fn float_literal(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        // `{:?}` is the shortest text that round-trips (`1.0`, `1e-7`).
        format!("toFloat64({x:?})")
    }
}

/// Quoted text of one `IN (…)` list at most (ClickHouse refuses a
/// statement longer than `max_query_size`, 256 KiB by default).
const MAX_LIST_BYTES: usize = 96 << 10;

/// Values per `IN (…)` list at most.
const MAX_LIST_ITEMS: usize = 2_000;

/// `values` as quoted `IN` lists, each within [`MAX_LIST_ITEMS`] values and
/// [`MAX_LIST_BYTES`] of text (one value longer than that is a list alone).
pub(crate) fn in_lists<S: AsRef<str>>(values: &[S]) -> Vec<String> {
    let mut out = Vec::new();
    let (mut list, mut n) = (String::new(), 0usize);
    for v in values {
        let q = quote(v.as_ref());
        if n > 0 && (n == MAX_LIST_ITEMS || list.len() + q.len() + 2 > MAX_LIST_BYTES) {
            out.push(std::mem::take(&mut list));
            n = 0;
        }
        if n > 0 {
            list.push_str(", ");
        }
        list.push_str(&q);
        n += 1;
    }
    if n > 0 {
        out.push(list);
    }
    out
}

/// The first-class columns a plan may name, with their stored types.
pub(crate) const COLUMNS: &[(&str, ValueType)] = &[
    ("project", ValueType::Text),
    ("trace_id", ValueType::Text),
    ("span_id", ValueType::Text),
    ("parent_span_id", ValueType::Text),
    ("run_id", ValueType::Text),
    ("session_id", ValueType::Text),
    ("user_id", ValueType::Text),
    ("app_id", ValueType::Text),
    ("app_name", ValueType::Text),
    ("workflow_id", ValueType::Text),
    ("workflow_version", ValueType::Text),
    ("span_kind", ValueType::Text),
    ("node_type", ValueType::Text),
    ("name", ValueType::Text),
    ("status", ValueType::Text),
    ("raw_status", ValueType::Text),
    ("error_message", ValueType::Text),
    ("error_class", ValueType::Text),
    ("start_time", ValueType::Timestamp),
    ("end_time", ValueType::Timestamp),
    ("duration", ValueType::Duration),
    ("model_name", ValueType::Text),
    ("model_provider", ValueType::Text),
    ("input_tokens", ValueType::Int),
    ("output_tokens", ValueType::Int),
    ("total_tokens", ValueType::Int),
    ("cost", ValueType::Float),
    ("currency", ValueType::Text),
    ("tool_name", ValueType::Text),
    ("input", ValueType::Text),
    ("output", ValueType::Text),
    ("attributes", ValueType::Map),
    ("tags", ValueType::Map),
    ("source", ValueType::Text),
    ("ingest_version", ValueType::Int),
];

/// Which rows of a plan's answer one SELECT returns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Rows skipped.
    pub offset: u64,
    /// Rows returned at most.
    pub count: u64,
}

impl Window {
    /// The first rows of the plan's answer, at most `max_rows + 1` of them
    /// (one more than a caller keeps says the answer was truncated).
    pub fn first(plan: &Plan, max_rows: usize) -> Self {
        let cap = (max_rows as u64).saturating_add(1);
        Window {
            offset: 0,
            count: plan.limit.map_or(cap, |l| l.min(cap)),
        }
    }
}

/// A compiled query: its SQL and the columns its rows hold.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub sql: String,
    pub columns: Vec<Column>,
}

/// Compiles plans for one table layout.
pub(crate) struct Compiler<'a> {
    pub layout: &'a Layout,
}

impl Compiler<'_> {
    /// `FROM … FINAL WHERE project = …`: the one way every read starts.
    pub fn scoped_from(&self, project: &ProjectId) -> String {
        format!(
            "FROM {} FINAL WHERE project = {}",
            self.layout.table(),
            quote(project.as_str())
        )
    }

    pub(crate) fn in_op(&self) -> &'static str {
        // A subquery over a Distributed table must be sent to every shard
        // once, not evaluated by each shard against its own rows.
        if self.layout.cluster.is_some() {
            "GLOBAL IN"
        } else {
            "IN"
        }
    }

    /// A field's value; `NULL` when unset (map key absent).
    pub fn field(&self, f: &FieldRef) -> Result<String, Error> {
        Ok(match f {
            FieldRef::Column { name, .. } => {
                let Some((name, ty)) = COLUMNS.iter().find(|(c, _)| c == name) else {
                    return Err(Error::Invalid(format!("unknown column {name:?}")));
                };
                if *ty == ValueType::Map {
                    let (k, v) = self.layout.map_arrays(name);
                    format!("tuple({k}, {v})")
                } else {
                    (*name).to_owned()
                }
            }
            FieldRef::Attribute(k) => self.layout.map_get("attributes", &quote(k)),
            FieldRef::Tag(k) => self.layout.map_get("tags", &quote(k)),
            FieldRef::Json { column, keys } => {
                if self.layout.profile == Profile::Legacy {
                    return Err(Error::Unsupported(format!(
                        "`{}`: values inside JSON need ClickHouse 20.1 or later (JSONExtract)",
                        f.output_name()
                    )));
                }
                if column != "input" && column != "output" {
                    return Err(Error::Invalid(format!("{column:?} holds no JSON")));
                }
                let mut args = column.clone();
                for k in keys {
                    args.push_str(", ");
                    // A key of digits also indexes an array: 0-based in the
                    // plan, 1-based in ClickHouse.
                    match k.parse::<i64>() {
                        Ok(i) if !k.starts_with('+') => {
                            let i = if i >= 0 { i.saturating_add(1) } else { i };
                            args.push_str(&i.to_string());
                        }
                        _ => args.push_str(&quote(k)),
                    }
                }
                format!(
                    "multiIf(JSONType({args}) = 'String', JSONExtractString({args}), \
                     JSONType({args}) = 'Null', NULL, JSONExtractRaw({args}))"
                )
            }
        })
    }

    fn is_map_column(f: &FieldRef) -> bool {
        matches!(f, FieldRef::Column { name, .. } if name == "attributes" || name == "tags")
    }

    /// A field as a number: map values cast (null when not a number).
    fn numeric(&self, f: &FieldRef) -> Result<String, Error> {
        let e = self.field(f)?;
        Ok(if f.is_map_value() {
            format!("toFloat64OrNull({e})")
        } else {
            e
        })
    }

    fn literal(v: &Literal) -> String {
        match v {
            Literal::Text(s) => quote(s),
            Literal::Int(n) | Literal::Duration(n) | Literal::Timestamp(n) => format!("{n}"),
            Literal::Float(x) => float_literal(*x),
        }
    }

    fn compare(&self, f: &FieldRef, op: Cmp, v: &Literal) -> Result<String, Error> {
        if Self::is_map_column(f) {
            return Err(Error::Invalid(format!(
                "`{}` is a map: compare one of its keys",
                f.output_name()
            )));
        }
        let left = match v {
            Literal::Float(_) | Literal::Int(_) if f.is_map_value() => self.numeric(f)?,
            _ => self.field(f)?,
        };
        let op = match op {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        };
        Ok(format!("ifNull({left} {op} {}, 0)", Self::literal(v)))
    }

    /// The filter as a UInt8 expression that is never null.
    pub fn filter(
        &self,
        f: &Filter,
        scope: &str,
        source: Source,
        depth: usize,
    ) -> Result<String, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Invalid("the filter nests too deeply".into()));
        }
        let sub = |g: &Filter| self.filter(g, scope, source, depth + 1);
        Ok(match f {
            Filter::And(args) if args.is_empty() => "1".into(),
            Filter::Or(args) if args.is_empty() => "0".into(),
            Filter::And(args) => {
                let parts = args.iter().map(sub).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" AND "))
            }
            Filter::Or(args) => {
                let parts = args.iter().map(sub).collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" OR "))
            }
            Filter::Not(inner) => format!("(NOT {})", sub(inner)?),
            Filter::Compare { field, op, value } => self.compare(field, *op, value)?,
            Filter::In { field, values } => {
                if values.is_empty() {
                    "0".into()
                } else if field.is_map_value() {
                    let each = values
                        .iter()
                        .map(|v| self.compare(field, Cmp::Eq, v))
                        .collect::<Result<Vec<_>, _>>()?;
                    format!("({})", each.join(" OR "))
                } else {
                    let list: Vec<String> = values.iter().map(Self::literal).collect();
                    format!("ifNull({} IN ({}), 0)", self.field(field)?, list.join(", "))
                }
            }
            Filter::Contains {
                field,
                value,
                ignore_case,
            } => {
                let e = self.field(field)?;
                if *ignore_case {
                    format!(
                        "ifNull(positionUTF8(lowerUTF8({e}), {}) > 0, 0)",
                        quote(&value.to_lowercase())
                    )
                } else {
                    format!("ifNull(position({e}, {}) > 0, 0)", quote(value))
                }
            }
            Filter::Exists(FieldRef::Attribute(k)) => self.layout.map_has("attributes", &quote(k)),
            Filter::Exists(FieldRef::Tag(k)) => self.layout.map_has("tags", &quote(k)),
            Filter::Exists(field) => format!("isNotNull({})", self.field(field)?),
            Filter::Text(text) if text.trim().is_empty() => "1".into(),
            Filter::Text(text) => {
                if source != Source::Spans {
                    return Err(Error::Unsupported("log records".into()));
                }
                // `LIKE` on the indexed expression, so the modern profile's
                // n-gram skip indexes (`schema.rs`) prune granules.
                let pattern = quote(&format!("%{}%", like_escape(&text.to_lowercase())));
                let each: Vec<String> = TEXT_COLUMNS
                    .iter()
                    .map(|c| format!("(lowerUTF8(ifNull({c}, '')) LIKE {pattern})"))
                    .collect();
                format!("({})", each.join(" OR "))
            }
            Filter::RunHas(inner) => {
                let inner = sub(inner)?;
                format!(
                    "ifNull(coalesce(run_id, trace_id) {} (SELECT coalesce(run_id, trace_id) \
                     {scope} AND {inner}), 0)",
                    self.in_op()
                )
            }
        })
    }

    fn aggregate(&self, a: &Aggregate) -> Result<(String, ValueType), Error> {
        let arg = || {
            a.field
                .as_ref()
                .ok_or_else(|| Error::Invalid(format!("{} needs a field", a.name)))
        };
        let ty_of = |f: &FieldRef| {
            if f.is_map_value() {
                ValueType::Float
            } else {
                f.ty()
            }
        };
        Ok(match a.kind {
            AggKind::Count => ("toInt64(count())".into(), ValueType::Int),
            AggKind::ErrorRate => (
                "avg(if(ifNull(status = 'error', 0), 1., 0.))".into(),
                ValueType::Float,
            ),
            AggKind::SuccessRate => (
                "avg(multiIf(ifNull(status = 'ok', 0), 1., ifNull(status = 'error', 0), 0., NULL))"
                    .into(),
                ValueType::Float,
            ),
            AggKind::Avg => (
                format!("avg(toFloat64({}))", self.numeric(arg()?)?),
                ValueType::Float,
            ),
            AggKind::Min => (format!("min({})", self.numeric(arg()?)?), ty_of(arg()?)),
            AggKind::Max => (format!("max({})", self.numeric(arg()?)?), ty_of(arg()?)),
            AggKind::Sum => {
                let f = arg()?;
                let ty = match ty_of(f) {
                    ValueType::Duration => ValueType::Duration,
                    ValueType::Float => ValueType::Float,
                    _ => ValueType::Int,
                };
                (format!("sum({})", self.numeric(f)?), ty)
            }
            AggKind::Percentile(q) => {
                if !(0.0..=1.0).contains(&q) {
                    return Err(Error::Invalid(format!("percentile {q} is not in 0..=1")));
                }
                let s = format!(
                    "arraySort(groupArray(toFloat64({})))",
                    self.numeric(arg()?)?
                );
                let n = format!("length({s})");
                let pos = format!("({} * ({n} - 1))", float_literal(q));
                let lo = format!("toUInt64(floor({pos}) + 1)");
                let hi = format!("toUInt64(least(floor({pos}) + 2, toFloat64({n})))");
                // The weight is quantised to 1e-6 as the embedded store's
                // engine (DataFusion's `percentile_cont`) does, so both
                // backends give the same float, not two close ones.
                let weight = format!("(floor(({pos} - floor({pos})) * 1000000.) / 1000000.)");
                (
                    format!(
                        "if({n} = 0, NULL, arrayElement({s}, {lo}) + \
                         (arrayElement({s}, {hi}) - arrayElement({s}, {lo})) * {weight})"
                    ),
                    ValueType::Float,
                )
            }
            AggKind::CountDistinct => (
                format!("toInt64(uniqExact({}))", self.field(arg()?)?),
                ValueType::Int,
            ),
        })
    }

    /// The plan as one SELECT of the rows `window` picks from its answer
    /// (the answer's order is total, so windows never overlap).
    pub fn plan(
        &self,
        project: &ProjectId,
        plan: &Plan,
        window: Window,
    ) -> Result<Compiled, Error> {
        if plan.source != Source::Spans {
            return Err(Error::Unsupported(
                "log records (`logs | …`): the ClickHouse backend stores spans only".into(),
            ));
        }
        let scope = format!(
            "{} AND start_time >= {} AND start_time < {}",
            self.scoped_from(project),
            plan.from_ns,
            plan.to_ns
        );
        let mut where_ = scope.clone();
        if let Some(f) = &plan.filter {
            where_.push_str(" AND ");
            where_.push_str(&self.filter(f, &scope, plan.source, 0)?);
        }
        let limit = format!("LIMIT {}, {}", window.offset, window.count);
        match &plan.output {
            Output::Rows(fields) => self.listing(plan, fields, &where_, limit),
            Output::Aggregates => self.grouped(plan, &where_, limit),
        }
    }

    fn listing(
        &self,
        plan: &Plan,
        fields: &[FieldRef],
        where_: &str,
        limit: String,
    ) -> Result<Compiled, Error> {
        let mut select = Vec::new();
        let mut columns = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            select.push(format!("{} AS __c{i}", self.field(f)?));
            columns.push(Column {
                name: f.output_name(),
                ty: f.ty(),
            });
        }
        let mut order = Vec::new();
        for k in &plan.sort {
            let f = match &k.column {
                SortColumn::Field(f) => f.clone(),
                SortColumn::Output(name) => fields
                    .iter()
                    .find(|f| f.output_name() == *name)
                    .cloned()
                    .ok_or_else(|| Error::Invalid(format!("cannot sort by {name:?}")))?,
            };
            if Self::is_map_column(&f) {
                return Err(Error::Invalid("cannot sort by a whole map".into()));
            }
            let dir = if k.descending { "DESC" } else { "ASC" };
            order.push(format!("{} {dir} NULLS LAST", self.field(&f)?));
        }
        order.push("span_id ASC".into());
        if select.is_empty() {
            return Err(Error::Invalid("a listing needs at least one field".into()));
        }
        Ok(Compiled {
            sql: format!(
                "SELECT {} {where_} ORDER BY {} {limit}",
                select.join(", "),
                order.join(", ")
            ),
            columns,
        })
    }

    fn grouped(&self, plan: &Plan, where_: &str, limit: String) -> Result<Compiled, Error> {
        let mut select = Vec::new();
        let mut columns = Vec::new();
        let mut groups = Vec::new();
        for key in &plan.group_by {
            let i = select.len();
            let (expr, ty) = match key {
                GroupKey::Field(f) => {
                    if Self::is_map_column(f) {
                        return Err(Error::Invalid("cannot group by a whole map".into()));
                    }
                    (self.field(f)?, f.ty())
                }
                GroupKey::Bucket { width_ns } => {
                    if *width_ns <= 0 {
                        return Err(Error::Invalid("a bucket width must be positive".into()));
                    }
                    // Floor towards minus infinity, as `date_bin` from 0.
                    (
                        format!(
                            "(start_time - (((start_time % {width_ns}) + {width_ns}) % {width_ns}))"
                        ),
                        ValueType::Timestamp,
                    )
                }
            };
            select.push(format!("{expr} AS __c{i}"));
            groups.push(format!("__c{i}"));
            columns.push(Column {
                name: key.output_name(),
                ty,
            });
        }
        if plan.aggregates.is_empty() {
            return Err(Error::Invalid(
                "an aggregating plan needs an aggregate".into(),
            ));
        }
        for a in &plan.aggregates {
            let i = select.len();
            let (expr, ty) = self.aggregate(a)?;
            select.push(format!("{expr} AS __c{i}"));
            columns.push(Column {
                name: a.name.clone(),
                ty,
            });
        }
        let mut order = Vec::new();
        for k in &plan.sort {
            let name = match &k.column {
                SortColumn::Output(name) => name.clone(),
                SortColumn::Field(f) => f.output_name(),
            };
            let i = columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| Error::Invalid(format!("cannot sort by {name:?}")))?;
            let dir = if k.descending { "DESC" } else { "ASC" };
            order.push(format!("__c{i} {dir} NULLS LAST"));
        }
        order.extend(groups.iter().map(|g| format!("{g} ASC NULLS LAST")));
        let mut sql = format!("SELECT {} {where_}", select.join(", "));
        if !groups.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
        }
        if !order.is_empty() {
            sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        }
        sql.push(' ');
        sql.push_str(&limit);
        Ok(Compiled { sql, columns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_stay_under_the_statement_size_limit() {
        let long: Vec<String> = (0..100).map(|i| format!("{i:0>2000}")).collect();
        let lists = in_lists(&long);
        assert!(lists.len() > 1);
        assert!(lists.iter().all(|l| l.len() <= MAX_LIST_BYTES));
        assert_eq!(
            lists
                .iter()
                .map(|l| l.matches(", ").count() + 1)
                .sum::<usize>(),
            100
        );
        let many: Vec<String> = (0..4_001).map(|i| i.to_string()).collect();
        assert_eq!(in_lists(&many).len(), 3);
        assert!(in_lists::<&str>(&[]).is_empty());
        let huge = vec!["x".repeat(200_000)];
        assert_eq!(in_lists(&huge).len(), 1, "one value alone, never dropped");
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_escape("50%_a\\b"), "50\\%\\_a\\\\b");
    }

    #[test]
    fn quoting_escapes_what_would_end_the_literal() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quote("x\n"), "'x\\n'");
    }

    #[test]
    fn every_read_is_scoped_to_its_project_and_final() {
        let l = Layout::plain(Profile::Modern);
        let c = Compiler { layout: &l };
        let plan = Plan {
            source: Source::Spans,
            from_ns: 0,
            to_ns: 10,
            filter: Some(Filter::Compare {
                field: FieldRef::Tag("category".into()),
                op: Cmp::Eq,
                value: Literal::Text("o'phone".into()),
            }),
            group_by: vec![],
            aggregates: vec![Aggregate {
                kind: AggKind::Count,
                field: None,
                name: "count".into(),
            }],
            sort: vec![],
            limit: None,
            output: Output::Aggregates,
            approx_percentiles: false,
        };
        let project = ProjectId::new("p1").expect("project");
        let sql = c
            .plan(&project, &plan, Window::first(&plan, 10))
            .expect("compiles")
            .sql;
        assert!(
            sql.contains("FROM loupe.spans FINAL WHERE project = 'p1'"),
            "{sql}"
        );
        assert!(sql.contains("'o\\'phone'"), "{sql}");
        assert!(sql.contains("LIMIT 0, 11"), "{sql}");
    }

    #[test]
    fn json_paths_are_refused_on_the_legacy_profile_with_a_reason() {
        let l = Layout::plain(Profile::Legacy);
        let c = Compiler { layout: &l };
        let e = c.field(&FieldRef::Json {
            column: "input".into(),
            keys: vec!["a".into()],
        });
        assert!(matches!(e, Err(Error::Unsupported(_))));
        let l = Layout::plain(Profile::Modern);
        let c = Compiler { layout: &l };
        let sql = c
            .field(&FieldRef::Json {
                column: "input".into(),
                keys: vec!["items".into(), "0".into()],
            })
            .expect("modern");
        assert!(sql.contains("input, 'items', 1"), "{sql}");
    }

    #[test]
    fn unknown_columns_are_the_callers_mistake() {
        let l = Layout::plain(Profile::Modern);
        let c = Compiler { layout: &l };
        let e = c.field(&FieldRef::Column {
            name: "x; DROP TABLE".into(),
            ty: ValueType::Text,
        });
        assert!(matches!(e, Err(Error::Invalid(_))));
    }
}
