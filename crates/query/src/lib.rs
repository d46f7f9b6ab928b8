//! Loupe's query layer: the query language and its planner.
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
//! [`planner::plan`] lowers a [`Query`] into the backend-neutral
//! [`loupe_backend::Plan`] (times resolved, literals typed, implicit
//! aggregates and orders explicit). This crate never sees DataFusion or SQL
//! text. The grammar and semantics are in `docs/QUERY.md`.

#![warn(missing_docs)]

#[cfg(feature = "export")]
pub mod export;
pub mod language;
pub mod planner;

pub use language::{
    AggCall, AggFunc, Aggregate, CmpOp, Column, DurationNs, ErrorKind, Expr, Field, FieldType,
    GroupKey, Limit, Order, ParseError, Query, SortBy, SortKey, Source, TimeRange, Timestamp,
    Value,
};
pub use planner::{PlanError, PlanOptions, plan};
