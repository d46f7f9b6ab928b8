//! Canonical query text: `Display` for every AST type.
//!
//! The printed text parses back to the same AST (tested as a property):
//! boolean keywords print upper-case, `AND` prints as juxtaposition, and
//! parentheses appear exactly where the tree needs them (a nested `OR`
//! inside an `OR` keeps its parentheses so the tree shape survives).

use std::fmt;

use super::ast::{
    AggCall, Aggregate, Expr, GroupKey, Limit, Order, Query, SortBy, SortKey, TimeRange,
};
use super::values::{write_quoted, write_text};

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut stages: Vec<String> = Vec::new();
        if !self.source.is_spans() {
            stages.push(self.source.as_str().to_owned());
        }
        let mut first = Vec::new();
        if let Some(time) = &self.time {
            first.push(time.to_string());
        }
        if let Some(filter) = &self.filter {
            first.push(filter.to_string());
        }
        if !first.is_empty() {
            stages.push(first.join(" "));
        }
        if !self.group_by.is_empty() {
            stages.push(format!("by {}", join(&self.group_by)));
        }
        if !self.aggregates.is_empty() {
            stages.push(join(&self.aggregates));
        }
        if !self.sort.is_empty() {
            stages.push(format!("sort {}", join(&self.sort)));
        }
        if let Some(limit) = &self.limit {
            stages.push(limit.to_string());
        }
        if !self.fields.is_empty() {
            stages.push(format!("fields {}", join(&self.fields)));
        }
        f.write_str(&stages.join(" | "))
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeRange::Last { last } => write!(f, "last {last}"),
            TimeRange::Between { from, to } => write!(f, "from {from} to {to}"),
        }
    }
}

/// Where an expression is printed, which decides its parentheses.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Top,
    OrArg,
    AndArg,
    NotArg,
}

fn write_expr(f: &mut fmt::Formatter<'_>, e: &Expr, slot: Slot) -> fmt::Result {
    match e {
        Expr::Or(args) => {
            let paren = slot != Slot::Top;
            write_list(f, args, " OR ", Slot::OrArg, paren)
        }
        Expr::And(args) => {
            let paren = matches!(slot, Slot::AndArg | Slot::NotArg);
            write_list(f, args, " ", Slot::AndArg, paren)
        }
        Expr::Not(arg) => {
            f.write_str("NOT ")?;
            write_expr(f, arg, Slot::NotArg)
        }
        Expr::Compare { field, op, value } => write!(f, "{field}{}{value}", op.as_str()),
        Expr::In { field, values } => write!(f, "{field} in ({})", join(values)),
        Expr::Contains {
            field,
            value,
            ignore_case,
        } => {
            let op = if *ignore_case {
                "icontains"
            } else {
                "contains"
            };
            write!(f, "{field} {op} ")?;
            write_text(f, value)
        }
        Expr::Exists(field) => write!(f, "exists {field}"),
        Expr::Text(text) => write_quoted(f, text),
        Expr::RunHas(inner) => {
            f.write_str("run has (")?;
            write_expr(f, inner, Slot::Top)?;
            f.write_str(")")
        }
    }
}

fn write_list(
    f: &mut fmt::Formatter<'_>,
    args: &[Expr],
    sep: &str,
    slot: Slot,
    paren: bool,
) -> fmt::Result {
    if paren {
        f.write_str("(")?;
    }
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write_expr(f, arg, slot)?;
    }
    if paren {
        f.write_str(")")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(f, self, Slot::Top)
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupKey::Field(field) => write!(f, "{field}"),
            GroupKey::Bucket { bucket } => write!(f, "bucket({bucket})"),
        }
    }
}

impl fmt::Display for AggCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}({field})", self.func.as_str()),
            None => write!(f, "{}()", self.func.as_str()),
        }
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.call())?;
        match &self.alias {
            Some(alias) => write!(f, " as {alias}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for SortBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SortBy::Aggregate(call) => write!(f, "{call}"),
            SortBy::Field(field) => write!(f, "{field}"),
            SortBy::Alias(alias) => f.write_str(alias),
        }
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.order {
            Order::Asc => write!(f, "{}", self.by),
            Order::Desc => write!(f, "{} desc", self.by),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Rows(n) => write!(f, "limit {n}"),
            Limit::Top { top } => write!(f, "top {top}"),
        }
    }
}
