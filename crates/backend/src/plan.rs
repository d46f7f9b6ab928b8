//! The backend-neutral query plan (`Plan`) and its result (`QueryResult`).
//!
//! `loupe-query`'s planner lowers a parsed query into a [`Plan`]: every
//! relative time resolved to absolute ns, every literal typed for its field,
//! implicit aggregates and `top N` ordering made explicit. A backend compiles
//! the same `Plan` (the embedded store to DataFusion, later ClickHouse to
//! SQL text) and must give the same answer; the semantics each backend
//! implements are written on the types below and in `docs/QUERY.md`.
//!
//! Three-valued logic never leaks out: a leaf whose field is unset does not
//! match, and [`Filter::Not`] is plain boolean negation of "matches".

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;

/// Which table a query reads: spans (the default) or log records
/// (`logs | …`, docs/QUERY.md "Logs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Spans.
    #[default]
    Spans,
    /// Log records: the plan's time range is on `time`, full text on `body`.
    Logs,
}

impl Source {
    /// Whether this is the default source (serde skips it).
    pub fn is_spans(&self) -> bool {
        *self == Source::Spans
    }

    /// The source as written in a query (`logs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Spans => "spans",
            Source::Logs => "logs",
        }
    }
}

/// A field of a span as the plan names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldRef {
    /// A first-class column (`loupe_model::column`), with its type.
    Column {
        /// Column name.
        name: String,
        /// Its type.
        ty: ValueType,
    },
    /// `attributes[key]` (text; cast to numbers where the plan says so).
    Attribute(String),
    /// `tags[key]`.
    Tag(String),
    /// A value inside the JSON text of a column (`input`, `output`): the
    /// keys from the top, its text (strings unquoted, other values as
    /// JSON); null when the text is not JSON or the path is absent.
    Json {
        /// `input` or `output`.
        column: String,
        /// Object keys (or array indexes) from the top.
        keys: Vec<String>,
    },
}

impl FieldRef {
    /// The field's type; map values are [`ValueType::Text`] as stored.
    pub fn ty(&self) -> ValueType {
        match self {
            FieldRef::Column { ty, .. } => *ty,
            FieldRef::Attribute(_) | FieldRef::Tag(_) | FieldRef::Json { .. } => ValueType::Text,
        }
    }

    /// The output column name: the column, or `tags.<key>` /
    /// `attributes.<key>`.
    pub fn output_name(&self) -> String {
        match self {
            FieldRef::Column { name, .. } => name.clone(),
            FieldRef::Attribute(k) => format!("attributes.{k}"),
            FieldRef::Tag(k) => format!("tags.{k}"),
            FieldRef::Json { column, keys } => format!("{column}.{}", keys.join(".")),
        }
    }

    /// Whether the field is a map value.
    pub fn is_map_value(&self) -> bool {
        !matches!(self, FieldRef::Column { .. })
    }
}

/// Type of a value in a plan or a result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueType {
    /// UTF-8 text.
    Text,
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Integer ns.
    Duration,
    /// Integer ns since the Unix epoch (UTC).
    Timestamp,
    /// Boolean.
    Bool,
    /// A string → string map (`attributes`, `tags`), as a JSON object.
    Map,
    /// Anything else (SQL results), rendered as text.
    Other,
}

/// A typed literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Literal {
    /// Text, compared bytewise.
    Text(String),
    /// An integer (integer columns).
    Int(i64),
    /// A float (`cost`; map values compared numerically: the map value is
    /// cast to a float and values that are not numbers never match).
    Float(f64),
    /// ns (the `duration` column).
    Duration(i64),
    /// ns since the epoch (`start_time`, `end_time`).
    Timestamp(i64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    /// Equal.
    Eq,
    /// Set and not equal.
    Ne,
    /// Less than.
    Lt,
    /// At most.
    Le,
    /// Greater than.
    Gt,
    /// At least.
    Ge,
}

/// A filter over one span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// All hold (empty: true).
    And(Vec<Filter>),
    /// Any holds (empty: false).
    Or(Vec<Filter>),
    /// The operand does not match (unset fields count as "does not match",
    /// so `NOT status=error` matches spans without a status).
    Not(Box<Filter>),
    /// `field op value`; an unset field never matches.
    Compare {
        /// Left side.
        field: FieldRef,
        /// Operator.
        op: Cmp,
        /// Right side, typed for the field.
        value: Literal,
    },
    /// Equal to one of the values.
    In {
        /// Left side.
        field: FieldRef,
        /// Candidates, typed for the field.
        values: Vec<Literal>,
    },
    /// Substring of a text or map field: case-sensitive, or with
    /// `ignore_case` after Unicode lowercasing of both sides.
    Contains {
        /// A text or map field.
        field: FieldRef,
        /// The substring.
        value: String,
        /// Compare without regard to case.
        #[serde(default)]
        ignore_case: bool,
    },
    /// The field is set (map: the key is present).
    Exists(FieldRef),
    /// Full-text search: every word (split on whitespace) appears,
    /// case-insensitively, in at least one of `input`, `output`,
    /// `error_message`.
    Text(String),
    /// Some span of the same run (same `run_id`, or the same `trace_id`
    /// when `run_id` is unset) within the plan's time range matches the
    /// inner filter.
    RunHas(Box<Filter>),
}

/// A group key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKey {
    /// The field's value (unset is its own group).
    Field(FieldRef),
    /// `start_time` floored to a multiple of `width_ns` since the epoch.
    Bucket {
        /// Width in ns, positive.
        width_ns: i64,
    },
}

impl GroupKey {
    /// The output column name (`tool_name`, `tags.category`, `bucket(1h)`
    /// is named `bucket`).
    pub fn output_name(&self) -> String {
        match self {
            GroupKey::Field(f) => f.output_name(),
            GroupKey::Bucket { .. } => "bucket".into(),
        }
    }
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggKind {
    /// Number of spans.
    Count,
    /// Fraction of spans with `status = error` (Float, 0–1).
    ErrorRate,
    /// Fraction of finished (`ok`/`error`) spans with `status = ok`; null
    /// when no span finished.
    SuccessRate,
    /// Mean (Float).
    Avg,
    /// Minimum (the field's type; map values as Float).
    Min,
    /// Maximum.
    Max,
    /// Sum (Int for integer and duration fields, else Float).
    Sum,
    /// Exact percentile, linear interpolation between closest ranks
    /// (`q·(n−1)`), as Float.
    Percentile(f64),
    /// Distinct non-null values.
    CountDistinct,
}

/// One aggregate output column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Function.
    pub kind: AggKind,
    /// Argument (none for count, error_rate, success_rate). Map values are
    /// cast to floats except for `count_distinct`.
    pub field: Option<FieldRef>,
    /// Output column name.
    pub name: String,
}

/// One sort key, naming an output column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortKey {
    /// Output column: a group key's or aggregate's name (aggregating), or a
    /// field (listing spans).
    pub column: SortColumn,
    /// Largest first.
    pub descending: bool,
}

/// What a sort key refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortColumn {
    /// An output column by name (aggregating plans).
    Output(String),
    /// A span field (listing plans).
    Field(FieldRef),
}

/// What the plan returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// Matching spans, these columns in order.
    Rows(Vec<FieldRef>),
    /// One row per group: group keys, then aggregates.
    Aggregates,
}

/// A resolved query. Sorting is total: after the explicit keys, aggregating
/// plans order by the group keys ascending and listing plans by `span_id`
/// ascending, so a `limit` always keeps the same rows. Nulls sort last in
/// both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The table read; its time column (`start_time`, logs: `time`) bounds
    /// the range.
    #[serde(default, skip_serializing_if = "Source::is_spans")]
    pub source: Source,
    /// `start_time` in `[from_ns, to_ns)`.
    pub from_ns: i64,
    /// End of the range, exclusive.
    pub to_ns: i64,
    /// Span filter; `None` keeps every span in the range.
    pub filter: Option<Filter>,
    /// Group keys (aggregating plans).
    pub group_by: Vec<GroupKey>,
    /// Aggregates (aggregating plans; at least one).
    pub aggregates: Vec<Aggregate>,
    /// Sort keys, most significant first.
    pub sort: Vec<SortKey>,
    /// At most this many rows.
    pub limit: Option<u64>,
    /// Rows or aggregates.
    pub output: Output,
    /// Percentiles of `duration` may be estimated from the hour rollups'
    /// latency histograms (bucket-interpolated, as Prometheus'
    /// `histogram_quantile`) instead of scanned exactly; the answer then
    /// says [`QueryStats::approximate`]. Dashboards ask for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approx_percentiles: bool,
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type (how to read the JSON values).
    #[serde(rename = "type")]
    pub ty: ValueType,
}

/// What a query cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryStats {
    /// Rows in the memtable snapshot and the parts read, before filters
    /// (an upper bound; the Parquet reader may skip row groups).
    pub rows_scanned: Option<u64>,
    /// Parquet parts read after pruning.
    pub parts_scanned: u64,
    /// Wall time in ms.
    pub elapsed_ms: u64,
    /// Whether rows were cut at the backend's row cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Whether the answer came from rollups (no span was read).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_rollups: bool,
    /// Whether percentiles were estimated from histograms
    /// ([`Plan::approx_percentiles`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
}

/// A query's answer: typed columns and rows of JSON values (timestamps and
/// durations as integer ns, maps as objects, unset as null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Columns, in output order.
    pub columns: Vec<Column>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Cost.
    pub stats: QueryStats,
}

/// Limits on one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory the engine may use for operators (sorts, joins, groups), bytes.
    pub memory_bytes: usize,
    /// Rows returned at most (more set [`QueryStats::truncated`]).
    pub max_rows: usize,
    /// Bytes one call of a size-building SQL function (`repeat`, `lpad`,
    /// `concat`, `||`, …) may build for one batch; a constant result may
    /// build this divided by the batch size (`[query] max_function_bytes`).
    pub max_function_bytes: u64,
    /// Bytes of values in one collected answer at most (more set
    /// [`QueryStats::truncated`]; `[query] max_answer_bytes`).
    pub max_answer_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            max_rows: 100_000,
            max_function_bytes: 64 << 20,
            max_answer_bytes: 64 << 20,
        }
    }
}

/// About the bytes a JSON answer value holds (strings by length, others
/// 8): what [`QueryLimits::max_answer_bytes`] counts, the same way in
/// every backend.
pub fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 8,
        Value::Array(a) => a.iter().map(value_bytes).sum::<usize>() + 8,
        Value::Object(o) => {
            o.iter()
                .map(|(k, v)| k.len() + value_bytes(v))
                .sum::<usize>()
                + 8
        }
        _ => 8,
    }
}

/// A stream of Arrow batches (exports).
pub type BatchStream = BoxStream<'static, Result<RecordBatch, StoreError>>;

/// The [`ValueType`] of an Arrow type.
pub fn value_type(dt: &DataType) -> ValueType {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ValueType::Text,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => ValueType::Int,
        DataType::Float32 | DataType::Float64 => ValueType::Float,
        DataType::Timestamp(_, _) => ValueType::Timestamp,
        DataType::Boolean => ValueType::Bool,
        DataType::Map(_, _) => ValueType::Map,
        _ => ValueType::Other,
    }
}

/// Rows of a batch as JSON values (see [`QueryResult`]). Timestamps of any
/// unit become ns; types without a JSON mapping become display text.
pub fn batch_rows(batch: &RecordBatch) -> Vec<Vec<Value>> {
    let cols: Vec<_> = batch.columns().iter().collect();
    (0..batch.num_rows())
        .map(|r| cols.iter().map(|c| cell(c.as_ref(), r)).collect())
        .collect()
}

/// One cell as JSON.
pub fn cell(a: &dyn Array, r: usize) -> Value {
    use arrow::datatypes::TimeUnit;
    if a.is_null(r) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => Value::from(a.as_string::<i32>().value(r)),
        DataType::LargeUtf8 => Value::from(a.as_string::<i64>().value(r)),
        DataType::Utf8View => Value::from(a.as_string_view().value(r)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(r)),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(r)),
        DataType::UInt32 => Value::from(a.as_primitive::<UInt32Type>().value(r)),
        DataType::UInt64 => Value::from(a.as_primitive::<UInt64Type>().value(r)),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(r)),
        DataType::Boolean => Value::from(a.as_boolean().value(r)),
        DataType::Timestamp(unit, _) => {
            use arrow::datatypes::{
                TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
                TimestampNanosecondType as Ns, TimestampSecondType as S,
            };
            let ns = match unit {
                TimeUnit::Nanosecond => Some(a.as_primitive::<Ns>().value(r)),
                TimeUnit::Microsecond => a.as_primitive::<Us>().value(r).checked_mul(1_000),
                TimeUnit::Millisecond => a.as_primitive::<Ms>().value(r).checked_mul(1_000_000),
                TimeUnit::Second => a.as_primitive::<S>().value(r).checked_mul(1_000_000_000),
            };
            ns.map_or(Value::Null, Value::from)
        }
        DataType::Map(_, _) => {
            let map = a.as_map();
            let entries = map.value(r);
            let mut out = BTreeMap::new();
            let (keys, values) = (entries.column(0), entries.column(1));
            for i in 0..entries.len() {
                let k = match cell(keys.as_ref(), i) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, cell(values.as_ref(), i));
            }
            Value::Object(out.into_iter().collect())
        }
        _ => arrow::util::display::array_value_to_string(a, r)
            .map(Value::from)
            .unwrap_or(Value::Null),
    }
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}
