//! The query AST. Its serde form IS the documented JSON form of a query
//! (`docs/QUERY.md`, "JSON form"), so the API accepts either text or JSON
//! and both mean the same [`Query`].
//!
//! The AST holds no positions: two queries that differ only in spacing,
//! keyword case or literal spelling (`1000ms` vs `1s`) are equal.

use serde::{Deserialize, Serialize};

pub use loupe_backend::plan::Source;

use super::field::Field;
use super::values::{DurationNs, Timestamp, Value};

/// A whole query: which spans (time range and filter), then optionally how
/// to group and aggregate them, how to order the result and how much of it
/// to return.
///
/// With no aggregates and no group keys the result is the matching spans.
/// With group keys and no aggregates, `count()` is implied.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// The table read: spans, or log records (`logs | …`). JSON:
    /// `"source": "logs"`.
    #[serde(default, skip_serializing_if = "Source::is_spans")]
    pub source: Source,
    /// The time range; `None` means the caller's default window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeRange>,
    /// Which spans count; `None` means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Expr>,
    /// Group keys, in order (`by tags.category, bucket(1h)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<GroupKey>,
    /// Aggregates, in output-column order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregates: Vec<Aggregate>,
    /// Sort keys, most significant first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<SortKey>,
    /// How many rows (or top groups) to return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// The columns of a listing, in order (`| fields run_id, start_time`);
    /// empty: every field. Not with `by` or aggregates, whose columns are
    /// their keys and results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
}

/// The time window a query covers. JSON: `{"last": "7d"}` or
/// `{"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum TimeRange {
    /// The window ending now (`last 7d`).
    Last {
        /// Length of the window, positive.
        last: DurationNs,
    },
    /// A closed-open absolute window `[from, to)`.
    Between {
        /// Start, inclusive.
        from: Timestamp,
        /// End, exclusive; after `from`.
        to: Timestamp,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether the operator orders values (all but `=` and `!=`).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A filter expression over one span. JSON: an object tagged by `"op"`
/// (`{"op": ">", "field": "duration", "value": {"duration": "1s"}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ExprRepr", from = "ExprRepr")]
pub enum Expr {
    /// All of `args` hold (at least two). Text: juxtaposition or `AND`.
    And(Vec<Expr>),
    /// Any of `args` holds (at least two). Text: `OR`.
    Or(Vec<Expr>),
    /// The operand does not hold. Text: `NOT`.
    Not(Box<Expr>),
    /// `field op value`. A span without the field never matches (not even
    /// `!=`).
    Compare {
        /// Left side.
        field: Field,
        /// Operator.
        op: CmpOp,
        /// Right side.
        value: Value,
    },
    /// `field in (v1, v2, …)`: equal to one of (at least one) values.
    In {
        /// Left side.
        field: Field,
        /// Candidates.
        values: Vec<Value>,
    },
    /// `field contains "text"`: substring, case-sensitive unless written
    /// `icontains`.
    Contains {
        /// A text field.
        field: Field,
        /// The substring.
        value: String,
        /// `icontains`: compare without regard to case.
        ignore_case: bool,
    },
    /// `exists field`: the field is set (non-null; for maps, the key is
    /// present).
    Exists(Field),
    /// A bare quoted string: full-text search of `input`, `output` and
    /// `error_message` (see `docs/QUERY.md`).
    Text(String),
    /// `run has (…)`: the span's run contains at least one span matching
    /// the inner filter (which may not itself contain `run has`).
    RunHas(Box<Expr>),
}

/// The JSON shape of [`Expr`]: one object per operator, tagged by `op`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ExprRepr {
    And {
        args: Vec<Expr>,
    },
    Or {
        args: Vec<Expr>,
    },
    Not {
        arg: Box<Expr>,
    },
    #[serde(rename = "=")]
    Eq {
        field: Field,
        value: Value,
    },
    #[serde(rename = "!=")]
    Ne {
        field: Field,
        value: Value,
    },
    #[serde(rename = "<")]
    Lt {
        field: Field,
        value: Value,
    },
    #[serde(rename = "<=")]
    Le {
        field: Field,
        value: Value,
    },
    #[serde(rename = ">")]
    Gt {
        field: Field,
        value: Value,
    },
    #[serde(rename = ">=")]
    Ge {
        field: Field,
        value: Value,
    },
    In {
        field: Field,
        values: Vec<Value>,
    },
    Contains {
        field: Field,
        value: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ignore_case: bool,
    },
    Exists {
        field: Field,
    },
    Text {
        text: String,
    },
    RunHas {
        filter: Box<Expr>,
    },
}

impl From<Expr> for ExprRepr {
    fn from(e: Expr) -> Self {
        match e {
            Expr::And(args) => ExprRepr::And { args },
            Expr::Or(args) => ExprRepr::Or { args },
            Expr::Not(arg) => ExprRepr::Not { arg },
            Expr::Compare { field, op, value } => match op {
                CmpOp::Eq => ExprRepr::Eq { field, value },
                CmpOp::Ne => ExprRepr::Ne { field, value },
                CmpOp::Lt => ExprRepr::Lt { field, value },
                CmpOp::Le => ExprRepr::Le { field, value },
                CmpOp::Gt => ExprRepr::Gt { field, value },
                CmpOp::Ge => ExprRepr::Ge { field, value },
            },
            Expr::In { field, values } => ExprRepr::In { field, values },
            Expr::Contains {
                field,
                value,
                ignore_case,
            } => ExprRepr::Contains {
                field,
                value,
                ignore_case,
            },
            Expr::Exists(field) => ExprRepr::Exists { field },
            Expr::Text(text) => ExprRepr::Text { text },
            Expr::RunHas(filter) => ExprRepr::RunHas { filter },
        }
    }
}

impl From<ExprRepr> for Expr {
    fn from(r: ExprRepr) -> Self {
        let cmp = |field, op, value| Expr::Compare { field, op, value };
        match r {
            ExprRepr::And { args } => Expr::And(args),
            ExprRepr::Or { args } => Expr::Or(args),
            ExprRepr::Not { arg } => Expr::Not(arg),
            ExprRepr::Eq { field, value } => cmp(field, CmpOp::Eq, value),
            ExprRepr::Ne { field, value } => cmp(field, CmpOp::Ne, value),
            ExprRepr::Lt { field, value } => cmp(field, CmpOp::Lt, value),
            ExprRepr::Le { field, value } => cmp(field, CmpOp::Le, value),
            ExprRepr::Gt { field, value } => cmp(field, CmpOp::Gt, value),
            ExprRepr::Ge { field, value } => cmp(field, CmpOp::Ge, value),
            ExprRepr::In { field, values } => Expr::In { field, values },
            ExprRepr::Contains {
                field,
                value,
                ignore_case,
            } => Expr::Contains {
                field,
                value,
                ignore_case,
            },
            ExprRepr::Exists { field } => Expr::Exists(field),
            ExprRepr::Text { text } => Expr::Text(text),
            ExprRepr::RunHas { filter } => Expr::RunHas(filter),
        }
    }
}

/// A group key. JSON: a field string, or `{"bucket": "1h"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum GroupKey {
    /// Group by the field's value.
    Field(Field),
    /// Group by `start_time` truncated to a multiple of the width (aligned
    /// to the Unix epoch, UTC).
    Bucket {
        /// Bucket width, positive.
        bucket: DurationNs,
    },
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    /// Number of spans.
    Count,
    /// Fraction (0..=1) of spans with `status = error`.
    ErrorRate,
    /// Fraction (0..=1) of finished spans with `status = ok`.
    SuccessRate,
    /// Mean of a numeric field.
    Avg,
    /// Minimum of a numeric or time field.
    Min,
    /// Maximum of a numeric or time field.
    Max,
    /// Sum of a numeric field.
    Sum,
    /// Median of a numeric field.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Number of distinct non-null values of a field.
    CountDistinct,
}

impl AggFunc {
    /// Every aggregate, in documentation order.
    pub const ALL: &'static [AggFunc] = &[
        AggFunc::Count,
        AggFunc::ErrorRate,
        AggFunc::SuccessRate,
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Sum,
        AggFunc::P50,
        AggFunc::P90,
        AggFunc::P95,
        AggFunc::P99,
        AggFunc::CountDistinct,
    ];

    /// The function name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::ErrorRate => "error_rate",
            AggFunc::SuccessRate => "success_rate",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Sum => "sum",
            AggFunc::P50 => "p50",
            AggFunc::P90 => "p90",
            AggFunc::P95 => "p95",
            AggFunc::P99 => "p99",
            AggFunc::CountDistinct => "count_distinct",
        }
    }

    /// The aggregate called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<AggFunc> {
        AggFunc::ALL
            .iter()
            .copied()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the function takes a field argument (all but `count`,
    /// `error_rate`, `success_rate`).
    pub fn takes_field(self) -> bool {
        !matches!(
            self,
            AggFunc::Count | AggFunc::ErrorRate | AggFunc::SuccessRate
        )
    }

    /// The quantile of a percentile function (`p95` → 0.95).
    pub fn quantile(self) -> Option<f64> {
        match self {
            AggFunc::P50 => Some(0.5),
            AggFunc::P90 => Some(0.9),
            AggFunc::P95 => Some(0.95),
            AggFunc::P99 => Some(0.99),
            _ => None,
        }
    }
}

/// An aggregate call without alias: `p95(duration)`, `count()`. Used by
/// sort keys, which name an aggregate by its call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// Its argument, exactly when [`AggFunc::takes_field`].
    pub field: Option<Field>,
}

/// One output column of an aggregating query. JSON:
/// `{"fn": "p95", "field": "duration", "as": "p95_latency"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The function.
    #[serde(rename = "fn")]
    pub func: AggFunc,
    /// Its argument, exactly when [`AggFunc::takes_field`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<Field>,
    /// Output column name; defaults to the call's text (`p95(duration)`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl Aggregate {
    /// The call without its alias.
    pub fn call(&self) -> AggCall {
        AggCall {
            func: self.func,
            field: self.field.clone(),
        }
    }

    /// The output column name: the alias, else the call as text.
    pub fn output_name(&self) -> String {
        self.alias
            .clone()
            .unwrap_or_else(|| self.call().to_string())
    }
}

/// What a sort key refers to. JSON: its text (`"p95(duration)"`,
/// `"tags.category"`, `"slowest"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortBy {
    /// An aggregate of the query, named by its call.
    Aggregate(AggCall),
    /// A field: a group key when aggregating, any field when listing spans.
    Field(Field),
    /// An aggregate of the query, named by its alias.
    Alias(String),
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Smallest first (the default).
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key. JSON: `{"by": "p95(duration)", "order": "desc"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    /// What to sort by.
    pub by: SortBy,
    /// Direction.
    #[serde(default)]
    pub order: Order,
}

/// How many rows to return. JSON: `10` or `{"top": 10}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Limit {
    /// `limit N`: the first N rows in sort order.
    Rows(u64),
    /// `top N`: the N groups (or spans) with the largest first aggregate
    /// (or `duration` when listing spans), unless a `sort` says otherwise.
    Top {
        /// N, at least 1.
        top: u64,
    },
}

impl Limit {
    /// The number of rows.
    pub fn count(self) -> u64 {
        match self {
            Limit::Rows(n) | Limit::Top { top: n } => n,
        }
    }
}

/// The JSON shape of [`SortBy`]: its canonical text.
impl Serialize for SortBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SortBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        super::parser::parse_sort_by_text(&text)
            .map_err(|e| serde::de::Error::custom(super::field::describe(&e)))
    }
}
