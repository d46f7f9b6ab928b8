//! The query language: text → [`Query`] (the AST, whose serde form is the
//! JSON form of a query) → canonical text again.
//!
//! ```text
//! status=error node_type=tool duration>1s tags.category=phone
//!   | by tags.category, bucket(1h) | p95(duration), count()
//! ```
//!
//! - `lexer`: words, strings, punctuation, with byte spans.
//! - `parser`: recursive descent; filter precedence `OR` < `AND` < `NOT`,
//!   then the `|` stages. Type checks run as each construct is parsed, so
//!   every [`ParseError`] points at the text at fault.
//! - [`ast`]: the tree; `display` prints it back canonically, and
//!   `parse(display(q)) == q` holds for every valid `q`.
//! - `check`: type and sanity checks shared with the JSON path.
//! - [`error`]: [`ParseError`] with `render`, and Levenshtein suggestions.
//!
//! The grammar, every operator and the JSON form are documented in
//! `docs/QUERY.md`.

pub mod ast;
mod check;
mod display;
pub mod error;
pub mod field;
mod lexer;
mod parser;
pub mod values;

#[cfg(test)]
mod tests;

pub use ast::{
    AggCall, AggFunc, Aggregate, CmpOp, Expr, GroupKey, Limit, Order, Query, SortBy, SortKey,
    Source, TimeRange,
};
pub(crate) use check::severity_level as check_severity;
pub use error::{ErrorKind, ParseError};
pub use field::{Column, Field, FieldType};
pub use values::{DurationNs, Timestamp, Value};

impl Query {
    /// Parses query text. Errors carry the byte span of the offending text
    /// and, where one is likely, a suggestion.
    pub fn parse(text: &str) -> Result<Query, ParseError> {
        parser::parse_query(text)
    }

    /// Decodes the JSON form and applies the same checks as [`Query::parse`].
    /// Syntax errors point into `json`; check errors have an empty span
    /// (`0..0`) because a decoded query has no positions.
    pub fn from_json(json: &str) -> Result<Query, ParseError> {
        let query: Query = serde_json::from_str(json).map_err(|e| {
            let at = byte_offset(json, e.line(), e.column());
            ParseError::syntax(at..at, format!("invalid query JSON: {e}"))
        })?;
        query.validate()?;
        Ok(query)
    }

    /// Checks a query built in code or decoded from JSON: field types,
    /// aggregate arguments, aliases, sort keys, ranges, `and`/`or` arity and
    /// `run has` nesting. Errors have an empty span.
    pub fn validate(&self) -> Result<(), ParseError> {
        check::check_query(self).map_err(|p| p.at(0..0))
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        // A Query has only string map keys and finite numbers (`validate`
        // rejects nothing that would fail here), so this cannot fail; fall
        // back to null rather than panic.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the query groups or aggregates (rather than listing rows).
    pub fn is_aggregating(&self) -> bool {
        !self.group_by.is_empty() || !self.aggregates.is_empty()
    }
}

/// Byte offset of a 1-based line and column (as serde_json reports them;
/// column 0 means "before the first character").
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}
