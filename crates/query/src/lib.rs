//! Loupe's query layer. For now: the query language.
//!
//! [`Query::parse`] turns text such as
//! `status=error tool_name=inventory duration>1s | by tags.category | p95(duration)`
//! into a [`Query`], whose serde form is the documented JSON form
//! ([`Query::from_json`]); its `Display` prints canonical text that parses
//! back to the same query. Mistakes come back as a [`ParseError`] with a
//! byte span and a suggestion (`tool_nme` → "did you mean `tool_name`?"),
//! and [`ParseError::render`] draws a caret under the span.
//!
//! Field names are the columns of [`loupe_model::column`] plus
//! `attributes.<key>` and `tags.<key>`; see [`Field`] and [`Column`].
//!
//! This crate never sees DataFusion or SQL text: a planner (to come) turns a
//! [`Query`] into the backend's `Plan`. The grammar is in `docs/QUERY.md`.

#![warn(missing_docs)]

pub mod language;

pub use language::{
    AggCall, AggFunc, Aggregate, CmpOp, Column, DurationNs, ErrorKind, Expr, Field, FieldType,
    GroupKey, Limit, Order, ParseError, Query, SortBy, SortKey, TimeRange, Timestamp, Value,
};
