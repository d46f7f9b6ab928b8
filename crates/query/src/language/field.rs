//! Field references: first-class columns of the spans table, and keys of
//! the `attributes` and `tags` maps.
//!
//! The column list mirrors [`loupe_model::column`] (a test checks it against
//! [`loupe_model::schema`]); `_version` is internal and not queryable, and
//! the maps themselves are only reachable through a key.

use std::fmt;

use loupe_model::{SpanKind, Status, column as c, log_column as lc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ast::Source;
use super::error::{ErrorKind, Problem, closest};
use super::values::write_quoted;

/// The type of a field, as far as the query language cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// UTF-8 text.
    Text,
    /// A whole number (token counts, `ingest_version`).
    Int,
    /// A floating-point number (`cost`).
    Float,
    /// Nanoseconds, written with a unit in queries (`duration`).
    Duration,
    /// A point in time, ns since the Unix epoch (`start_time`, `end_time`).
    Time,
    /// A value of the `attributes` or `tags` map: stored as text, compared
    /// as a number when the literal is a number.
    MapValue,
    /// A log record's severity: OpenTelemetry's number (1–24), written as
    /// a level name (`error` is 17–20) or a number.
    Severity,
}

impl FieldType {
    /// Whether numeric aggregates (`avg`, `sum`, percentiles) apply.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int | FieldType::Float | FieldType::Duration | FieldType::MapValue
        )
    }

    /// How the type is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Int => "an integer",
            FieldType::Float => "a number",
            FieldType::Duration => "a duration",
            FieldType::Time => "a timestamp",
            FieldType::MapValue => "a map value",
            FieldType::Severity => "a severity",
        }
    }
}

/// A queryable first-class column. Obtain one with [`Column::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Column {
    name: &'static str,
    ty: FieldType,
}

const fn col(name: &'static str, ty: FieldType) -> Column {
    Column { name, ty }
}

use FieldType::{Duration as D, Float as F, Int as I, Text as T, Time as Tm};

/// Every queryable column, in schema order (without the maps and `_version`).
static COLUMNS: &[Column] = &[
    col(c::PROJECT, T),
    col(c::TRACE_ID, T),
    col(c::SPAN_ID, T),
    col(c::PARENT_SPAN_ID, T),
    col(c::RUN_ID, T),
    col(c::SESSION_ID, T),
    col(c::USER_ID, T),
    col(c::APP_ID, T),
    col(c::APP_NAME, T),
    col(c::WORKFLOW_ID, T),
    col(c::WORKFLOW_VERSION, T),
    col(c::SPAN_KIND, T),
    col(c::NODE_TYPE, T),
    col(c::NAME, T),
    col(c::STATUS, T),
    col(c::RAW_STATUS, T),
    col(c::ERROR_MESSAGE, T),
    col(c::ERROR_CLASS, T),
    col(c::START_TIME, Tm),
    col(c::END_TIME, Tm),
    col(c::DURATION, D),
    col(c::MODEL_NAME, T),
    col(c::MODEL_PROVIDER, T),
    col(c::INPUT_TOKENS, I),
    col(c::OUTPUT_TOKENS, I),
    col(c::TOTAL_TOKENS, I),
    col(c::COST, F),
    col(c::CURRENCY, T),
    col(c::TOOL_NAME, T),
    col(c::INPUT, T),
    col(c::OUTPUT, T),
    col(c::SOURCE, T),
    col(c::INGEST_VERSION, I),
];

/// The name of a log record's severity in queries (stored as
/// `severity_number`).
pub const SEVERITY_NAME: &str = "severity";

/// Every queryable column of log records (`logs | …`), in schema order
/// (`project` is the key's, never a filter).
static LOG_COLUMNS: &[Column] = &[
    col(lc::TIME, Tm),
    col(lc::OBSERVED_TIME, Tm),
    col(SEVERITY_NAME, FieldType::Severity),
    col(lc::SEVERITY_TEXT, T),
    col(lc::BODY, T),
    col(lc::SERVICE, T),
    col(lc::STREAM, T),
    col(lc::TRACE_ID, T),
    col(lc::SPAN_ID, T),
    col(lc::RUN_ID, T),
];

/// The name of the error signature in queries: the pipeline stores it as
/// the attribute [`loupe_model::ERROR_SIGNATURE`], and the query language
/// reads `error_signature` as that attribute.
pub const ERROR_SIGNATURE_NAME: &str = "error_signature";

/// Words people reach for that are not column names, and what they mean.
/// Used only for suggestions; the query must still use the real name.
const SYNONYMS: &[(&str, &str)] = &[
    ("latency", c::DURATION),
    ("elapsed", c::DURATION),
    ("kind", c::SPAN_KIND),
    ("type", c::NODE_TYPE),
    ("tool", c::TOOL_NAME),
    ("model", c::MODEL_NAME),
    ("provider", c::MODEL_PROVIDER),
    ("error", c::ERROR_MESSAGE),
    ("signature", ERROR_SIGNATURE_NAME),
    ("user", c::USER_ID),
    ("session", c::SESSION_ID),
    ("conversation_id", c::SESSION_ID),
    ("trace", c::TRACE_ID),
    ("app", c::APP_NAME),
    ("tokens", c::TOTAL_TOKENS),
    ("price", c::COST),
    ("timestamp", c::START_TIME),
    ("time", c::START_TIME),
];

impl Column {
    /// Every queryable column.
    pub fn all() -> &'static [Column] {
        COLUMNS
    }

    /// The column called `name` (exact, case-sensitive), if queryable.
    pub fn lookup(name: &str) -> Option<Column> {
        COLUMNS.iter().copied().find(|col| col.name == name)
    }

    /// Every queryable column of `source`.
    pub fn all_in(source: Source) -> &'static [Column] {
        match source {
            Source::Spans => COLUMNS,
            Source::Logs => LOG_COLUMNS,
        }
    }

    /// The column of `source` called `name`, if queryable.
    pub fn lookup_in(source: Source, name: &str) -> Option<Column> {
        Column::all_in(source)
            .iter()
            .copied()
            .find(|col| col.name == name)
    }

    /// The column name, as in [`loupe_model::column`].
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The column's type.
    pub fn ty(self) -> FieldType {
        self.ty
    }

    /// The closed set of values the column can hold, for normalised enums
    /// (`status`, `span_kind`); `None` for free text.
    pub fn allowed_values(self) -> Option<Vec<&'static str>> {
        match self.name {
            c::STATUS => Some(Status::ALL.iter().map(|s| s.as_str()).collect()),
            c::SPAN_KIND => Some(SpanKind::ALL.iter().map(|k| k.as_str()).collect()),
            _ => None,
        }
    }
}

/// A reference to something a span has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// A first-class column (`duration`, `tool_name`).
    Column(Column),
    /// A key of the `attributes` map (`attributes.http.status_code`).
    Attribute(String),
    /// A key of the `tags` map (`tags.category`).
    Tag(String),
    /// A value inside the JSON text of `input` or `output`
    /// (`input.query`, `input.profile.tier`, `input["sys.query"]`).
    Json(JsonPath),
    /// A key of a log record's `resource` map (`resource.host.name`).
    Resource(String),
}

/// A path into the JSON text of `input` or `output`: object keys from the
/// top (an array index is a key of digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JsonPath {
    /// `input` or `output`.
    pub column: &'static str,
    /// Keys from the top; never empty.
    pub keys: Vec<String>,
}

impl JsonPath {
    /// Whether `head` is a column a JSON path can start from.
    pub(crate) fn column_named(head: &str) -> Option<&'static str> {
        match head {
            c::INPUT => Some(c::INPUT),
            c::OUTPUT => Some(c::OUTPUT),
            _ => None,
        }
    }
}

impl Field {
    /// The field's type.
    pub fn ty(&self) -> FieldType {
        match self {
            Field::Column(col) => col.ty,
            Field::Attribute(_) | Field::Tag(_) | Field::Json(_) | Field::Resource(_) => {
                FieldType::MapValue
            }
        }
    }

    /// Whether `source`'s records have this field (the JSON form names
    /// fields before it says which source it reads).
    pub fn valid_in(&self, source: Source) -> bool {
        match self {
            Field::Column(col) => Column::lookup_in(source, col.name) == Some(*col),
            Field::Attribute(key) => source == Source::Spans || key != loupe_model::ERROR_SIGNATURE,
            Field::Tag(_) | Field::Json(_) => source == Source::Spans,
            Field::Resource(_) => source == Source::Logs,
        }
    }

    /// Parses a field as written in a query (`duration`, `tags.category`,
    /// `attributes["key with spaces"]`).
    pub fn parse(text: &str) -> Result<Field, super::ParseError> {
        super::parser::parse_field_text(text)
    }

    /// Resolves a bare word (`tool_name`, `tags.category`,
    /// `attributes.http.method`) to a field, or explains why not.
    pub(crate) fn from_word(word: &str) -> Result<Field, Problem> {
        Field::from_word_in(word, Source::Spans)
    }

    /// As [`Field::from_word`], for the fields of `source`.
    pub(crate) fn from_word_in(word: &str, source: Source) -> Result<Field, Problem> {
        if source == Source::Logs {
            return log_field(word);
        }
        if let Some(col) = Column::lookup(word) {
            return Ok(Field::Column(col));
        }
        if word == ERROR_SIGNATURE_NAME {
            return Ok(Field::Attribute(loupe_model::ERROR_SIGNATURE.to_owned()));
        }
        let (head, rest) = match word.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (word, None),
        };
        let map = match head {
            c::ATTRIBUTES => Some(Field::Attribute as fn(String) -> Field),
            c::TAGS => Some(Field::Tag as fn(String) -> Field),
            _ => None,
        };
        if let (Some(column), Some(path)) = (JsonPath::column_named(head), rest) {
            if !is_simple_key(path) {
                return Err(Problem::new(
                    ErrorKind::Syntax,
                    format!("`{path}` cannot be written bare after `{head}.`"),
                )
                .suggest(Some(format!("quote the key: {}", quoted_path(head, path)))));
            }
            return Ok(Field::Json(JsonPath {
                column,
                keys: path.split('.').map(str::to_owned).collect(),
            }));
        }
        match (map, rest) {
            (Some(make), Some(key)) if is_simple_key(key) => Ok(make(key.to_string())),
            (Some(_), Some(key)) => Err(Problem::new(
                ErrorKind::Syntax,
                format!("`{key}` cannot be written bare after `{head}.`"),
            )
            .suggest(Some(format!("quote the key: {}", quoted_path(head, key))))),
            (Some(_), None) => Err(Problem::new(
                ErrorKind::UnknownField,
                format!("`{head}` is a map; name a key"),
            )
            .suggest(Some(format!("write `{head}.<key>` or `{head}[\"key\"]`")))),
            (None, _) => Err(unknown_field(word, head, rest)),
        }
    }
}

/// A log record's field: a log column, `attributes.<key>` or
/// `resource.<key>`.
fn log_field(word: &str) -> Result<Field, Problem> {
    if let Some(col) = Column::lookup_in(Source::Logs, word) {
        return Ok(Field::Column(col));
    }
    let (head, rest) = match word.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (word, None),
    };
    let make = match head {
        lc::ATTRIBUTES => Field::Attribute as fn(String) -> Field,
        lc::RESOURCE => Field::Resource as fn(String) -> Field,
        _ => return Err(unknown_log_field(word)),
    };
    match rest {
        Some(key) if is_simple_key(key) => Ok(make(key.to_owned())),
        Some(key) => Err(Problem::new(
            ErrorKind::Syntax,
            format!("`{key}` cannot be written bare after `{head}.`"),
        )
        .suggest(Some(format!("quote the key: {}", quoted_path(head, key))))),
        None => Err(Problem::new(
            ErrorKind::UnknownField,
            format!("`{head}` is a map; name a key"),
        )
        .suggest(Some(format!("write `{head}.<key>` or `{head}[\"key\"]`")))),
    }
}

/// The error for a word that names no log field: the closest name, and
/// every valid one.
fn unknown_log_field(word: &str) -> Problem {
    let names: Vec<&str> = LOG_COLUMNS.iter().map(|col| col.name).collect();
    let lower = word.to_ascii_lowercase();
    let synonym = match lower.as_str() {
        "level" | "severity_number" | "loglevel" => Some(SEVERITY_NAME),
        "message" | "msg" | "text" => Some(lc::BODY),
        "timestamp" | "ts" | "@timestamp" => Some(lc::TIME),
        "index" => Some(lc::STREAM),
        _ => None,
    };
    let guess = closest(&lower, names.iter().copied()).or(synonym);
    Problem::new(
        ErrorKind::UnknownField,
        format!(
            "unknown log field `{word}`; log fields are {}, attributes.<key>, resource.<key>",
            names.join(", ")
        ),
    )
    .suggest(guess.map(|name| format!("did you mean `{name}`?")))
}

fn quoted_path(head: &str, key: &str) -> String {
    let mut out = format!("{head}[");
    // Writing into a String cannot fail.
    let _ = write_quoted(&mut out, key);
    out.push(']');
    out
}

/// The error for a word that names no field, with the likeliest fix.
fn unknown_field(word: &str, head: &str, rest: Option<&str>) -> Problem {
    let problem = Problem::new(ErrorKind::UnknownField, format!("unknown field `{word}`"));
    let names = COLUMNS.iter().map(|col| col.name);
    if let Some(rest) = rest {
        let prefix = closest(
            head,
            [c::TAGS, c::ATTRIBUTES, "tag", "attribute", "attrs", "attr"],
        );
        let fixed = match prefix {
            Some("tag" | c::TAGS) => Some(c::TAGS),
            Some(_) => Some(c::ATTRIBUTES),
            None => None,
        };
        if let Some(fixed) = fixed {
            return problem.suggest(Some(format!("did you mean `{fixed}.{rest}`?")));
        }
    }
    let lower = word.to_ascii_lowercase();
    let guess = closest(&lower, names)
        .or_else(|| SYNONYMS.iter().find(|(s, _)| *s == lower).map(|(_, n)| *n))
        .map(|name| format!("did you mean `{name}`?"));
    let guess = guess.or_else(|| {
        is_simple_key(word).then(|| format!("did you mean `tags.{word}` or `attributes.{word}`?"))
    });
    problem.suggest(guess)
}

/// Whether a map key can be written after a dot: dot-separated non-empty
/// segments of `[A-Za-z0-9_-]`.
pub(crate) fn is_simple_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        })
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, key) = match self {
            Field::Column(col) => return f.write_str(col.name),
            Field::Attribute(key) if key == loupe_model::ERROR_SIGNATURE => {
                return f.write_str(ERROR_SIGNATURE_NAME);
            }
            Field::Attribute(key) => (c::ATTRIBUTES, key),
            Field::Tag(key) => (c::TAGS, key),
            Field::Resource(key) => (lc::RESOURCE, key),
            Field::Json(path)
                if path
                    .keys
                    .iter()
                    .all(|k| is_simple_key(k) && !k.contains('.')) =>
            {
                return write!(f, "{}.{}", path.column, path.keys.join("."));
            }
            Field::Json(path) => {
                write!(f, "{}", path.column)?;
                for key in &path.keys {
                    f.write_str("[")?;
                    write_quoted(f, key)?;
                    f.write_str("]")?;
                }
                return Ok(());
            }
        };
        if is_simple_key(key) {
            write!(f, "{head}.{key}")
        } else {
            write!(f, "{head}[")?;
            write_quoted(f, key)?;
            f.write_str("]")
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Field::parse(&text).map_err(|e| serde::de::Error::custom(describe(&e)))
    }
}

/// An error's message and suggestion on one line, for serde messages.
pub(crate) fn describe(e: &super::ParseError) -> String {
    match &e.suggestion {
        Some(s) => format!("{} ({s})", e.message),
        None => e.message.clone(),
    }
}
