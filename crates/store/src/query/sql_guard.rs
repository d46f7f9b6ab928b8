//! Bounds on a parsed SQL statement, applied before DataFusion plans it.
//!
//! The SQL parser reads an operator chain (`a OR b OR …`, `1 + 1 + …`)
//! iteratively but builds a tree as deep as the chain, and DataFusion's
//! planner, optimizer and evaluator recurse once per level: a 1,000-term
//! `or` overflowed a worker's stack and aborted the process (issue 14).
//! Nesting through parentheses, function calls and subqueries is already
//! bounded by the parser's recursion limit; the chains are what this module
//! handles:
//!
//! - a chain of one `AND` or `OR` is rebuilt as a balanced tree (both are
//!   associative in SQL's three-valued logic, so the answer is unchanged),
//!   `log2 n` deep;
//! - any other chain, and any expression, deeper than [`MAX_SQL_EXPR_DEPTH`]
//!   is refused with an error naming the limit. The refused chain is taken
//!   apart iteratively, since dropping it recursively would overflow the
//!   stack just the same.
//!
//! The guard works on `sqlparser`'s syntax tree only (the same `sqlparser`
//! DataFusion parses with), so `fuzz/` builds this file alone.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Statement, Value, VisitMut, VisitorMut};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Deepest expression a SQL statement may hold (after `AND`/`OR` chains are
/// balanced).
pub const MAX_SQL_EXPR_DEPTH: usize = 128;

/// Chains of `AND`/`OR` shorter than this are left as written.
const REBALANCE_FROM: usize = 16;

/// The SQL parser's recursion limit (DataFusion's default is 50). The
/// parser backtracks over some nestings in time exponential in their depth
/// (a fuzzed 320-byte `1 :a.b.c…` path took over 5 s at 50 and over 60 s
/// at 32 in the fuzz build, 23 ms at 24); Loupe's own statements stay well
/// below it.
pub const SQL_RECURSION_LIMIT: usize = 24;

/// Deepest nesting of `[` a statement may have. The parser backtracks
/// over a failing `ARRAY[` inside `ARRAY[` in time exponential in the
/// depth (16 levels: 1 s in the fuzz build; each level doubles it). A
/// fuzz run hung for 20 minutes in this family of inputs.
pub const MAX_SQL_BRACKET_DEPTH: usize = 8;

/// Deepest nesting of `(`, `[` and `{` together (the parser's own
/// recursion limit, 50, counts more than brackets; this says it first and
/// names the bracket).
pub const MAX_SQL_NESTING: usize = 32;

/// Checks the raw statement's bracket nesting before it is parsed, in one
/// pass over its tokens (string literals and comments are not brackets).
/// A statement the tokenizer refuses is left to the parser, which refuses
/// it with its own message just as fast.
pub fn check_nesting(sql: &str) -> Result<(), String> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let (mut depth, mut brackets) = (0usize, 0usize);
    // Open brackets, innermost last: whether each is a `[`.
    let mut open: Vec<bool> = Vec::new();
    for token in &tokens {
        match token {
            Token::LParen | Token::LBrace | Token::LBracket => {
                let square = matches!(token, Token::LBracket);
                open.push(square);
                depth += 1;
                brackets += usize::from(square);
                if brackets > MAX_SQL_BRACKET_DEPTH {
                    return Err(format!(
                        "the statement nests `[` more than {MAX_SQL_BRACKET_DEPTH} deep; \
                         flatten the array or index expression"
                    ));
                }
                if depth > MAX_SQL_NESTING {
                    return Err(format!(
                        "the statement nests brackets more than {MAX_SQL_NESTING} deep; \
                         use WITH to name the inner parts"
                    ));
                }
            }
            Token::RParen | Token::RBrace | Token::RBracket => {
                if let Some(square) = open.pop() {
                    depth -= 1;
                    brackets -= usize::from(square);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Balances `statement`'s `AND`/`OR` chains and checks its depth; the error
/// says what to change.
pub fn bound(statement: &mut Statement) -> Result<(), String> {
    let mut guard = Guard { depth: 0 };
    match statement.visit(&mut guard) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(message) => Err(message),
    }
}

struct Guard {
    depth: usize,
}

impl VisitorMut for Guard {
    type Break = String;

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
        if let Expr::BinaryOp {
            op: op @ (BinaryOperator::And | BinaryOperator::Or),
            ..
        } = expr
        {
            let op = op.clone();
            if chain_len(expr, &op) >= REBALANCE_FROM {
                rebalance(expr, op);
            }
        }
        let spine = spine_len(expr);
        self.depth += 1;
        if self.depth + spine > MAX_SQL_EXPR_DEPTH + 1 {
            dismantle(std::mem::replace(expr, Expr::value(Value::Null)));
            return ControlFlow::Break(format!(
                "the SQL expression is nested more than {MAX_SQL_EXPR_DEPTH} levels deep \
                 (a chain of {spine} operators); shorten it or use IN (…)"
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

/// The child an infix or postfix operator's chain continues through: the
/// parser builds `a + b + c` as `(a + b) + c`, `x::int::int` as
/// `cast(cast(x))`, so chains grow down these children without recursion.
fn spine_child(expr: &Expr) -> Option<&Expr> {
    Some(match expr {
        Expr::BinaryOp { left, .. } | Expr::AnyOp { left, .. } | Expr::AllOp { left, .. } => left,
        Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsTrue(e)
        | Expr::IsNotTrue(e)
        | Expr::IsFalse(e)
        | Expr::IsNotFalse(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotUnknown(e)
        | Expr::IsDistinctFrom(e, _)
        | Expr::IsNotDistinctFrom(e, _) => e,
        Expr::Cast { expr, .. }
        | Expr::InList { expr, .. }
        | Expr::InSubquery { expr, .. }
        | Expr::InUnnest { expr, .. }
        | Expr::Between { expr, .. }
        | Expr::Like { expr, .. }
        | Expr::ILike { expr, .. }
        | Expr::SimilarTo { expr, .. }
        | Expr::RLike { expr, .. }
        | Expr::Collate { expr, .. }
        | Expr::IsNormalized { expr, .. } => expr,
        Expr::AtTimeZone { timestamp, .. } => timestamp,
        Expr::CompoundFieldAccess { root, .. } => root,
        Expr::JsonAccess { value, .. } => value,
        _ => return None,
    })
}

fn spine_child_mut(expr: &mut Expr) -> Option<&mut Box<Expr>> {
    Some(match expr {
        Expr::BinaryOp { left, .. } | Expr::AnyOp { left, .. } | Expr::AllOp { left, .. } => left,
        Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsTrue(e)
        | Expr::IsNotTrue(e)
        | Expr::IsFalse(e)
        | Expr::IsNotFalse(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotUnknown(e)
        | Expr::IsDistinctFrom(e, _)
        | Expr::IsNotDistinctFrom(e, _) => e,
        Expr::Cast { expr, .. }
        | Expr::InList { expr, .. }
        | Expr::InSubquery { expr, .. }
        | Expr::InUnnest { expr, .. }
        | Expr::Between { expr, .. }
        | Expr::Like { expr, .. }
        | Expr::ILike { expr, .. }
        | Expr::SimilarTo { expr, .. }
        | Expr::RLike { expr, .. }
        | Expr::Collate { expr, .. }
        | Expr::IsNormalized { expr, .. } => expr,
        Expr::AtTimeZone { timestamp, .. } => timestamp,
        Expr::CompoundFieldAccess { root, .. } => root,
        Expr::JsonAccess { value, .. } => value,
        _ => return None,
    })
}

/// Operators below `expr` along its spine (0 for a leaf).
fn spine_len(expr: &Expr) -> usize {
    let mut n = 0;
    let mut at = expr;
    while let Some(next) = spine_child(at) {
        n += 1;
        at = next;
    }
    n
}

/// Operands of the left-deep chain of `op` at `expr`, minus one.
fn chain_len(expr: &Expr, op: &BinaryOperator) -> usize {
    let mut n = 0;
    let mut at = expr;
    while let Expr::BinaryOp { left, op: o, .. } = at
        && o == op
    {
        n += 1;
        at = left;
    }
    n
}

/// Rebuilds the left-deep chain of `op` at `expr` as a balanced tree of the
/// same operands in the same order.
fn rebalance(expr: &mut Expr, op: BinaryOperator) {
    let mut rights = Vec::new();
    let mut at = std::mem::replace(expr, Expr::value(Value::Null));
    let first = loop {
        match at {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                rights.push(*right);
                at = *left;
            }
            other => break other,
        }
    };
    let mut operands = Vec::with_capacity(rights.len() + 1);
    operands.push(first);
    operands.extend(rights.into_iter().rev());
    while operands.len() > 1 {
        let mut next = Vec::with_capacity(operands.len().div_ceil(2));
        let mut it = operands.into_iter();
        while let Some(left) = it.next() {
            next.push(match it.next() {
                Some(right) => Expr::BinaryOp {
                    left: Box::new(left),
                    op: op.clone(),
                    right: Box::new(right),
                },
                None => left,
            });
        }
        operands = next;
    }
    if let Some(balanced) = operands.pop() {
        *expr = balanced;
    }
}

/// Drops `expr` without recursing down its spine.
fn dismantle(mut expr: Expr) {
    while let Some(child) = spine_child_mut(&mut expr) {
        let next = std::mem::replace(child.as_mut(), Expr::value(Value::Null));
        drop(expr);
        expr = next;
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::{DFParser, Statement as DfStatement};

    use super::*;

    /// The fuzzer's find: `ARRAY[` nested and left failing makes the parser
    /// backtrack exponentially. Refused before parsing, naming the limit;
    /// what people write passes.
    #[test]
    fn deep_brackets_are_refused_before_parsing() {
        let deep = format!("SELECT {}1 +", "ARRAY[".repeat(40));
        let err = check_nesting(&deep).expect_err("40 deep");
        assert!(err.contains(&MAX_SQL_BRACKET_DEPTH.to_string()), "{err}");
        let parens = format!("SELECT {}1{}", "(".repeat(40), ")".repeat(40));
        let err = check_nesting(&parens).expect_err("40 parentheses");
        assert!(err.contains("WITH"), "{err}");
        // Closed brackets do not add up; brackets inside strings and
        // comments are text.
        let flat = format!(
            "SELECT {} FROM spans",
            vec!["ARRAY[1, 2][1]"; 50].join(", ")
        );
        assert_eq!(check_nesting(&flat), Ok(()));
        let quoted = format!("SELECT '{}' -- {}", "[".repeat(100), "(".repeat(100));
        assert_eq!(check_nesting(&quoted), Ok(()));
        assert_eq!(
            check_nesting("SELECT attributes['score.value'], ARRAY[ARRAY[1]] FROM spans"),
            Ok(())
        );
        let at_limit = format!(
            "SELECT {}1{}",
            "ARRAY[".repeat(MAX_SQL_BRACKET_DEPTH),
            "]".repeat(MAX_SQL_BRACKET_DEPTH)
        );
        assert_eq!(check_nesting(&at_limit), Ok(()));
    }

    fn parse(sql: &str) -> Statement {
        let mut statements = DFParser::parse_sql(sql).expect("parse");
        match statements.pop_front().expect("one statement") {
            DfStatement::Statement(inner) => *inner,
            other => panic!("not a query: {other}"),
        }
    }

    #[test]
    fn or_chains_are_balanced_in_order() {
        let terms: Vec<String> = (0..1_000).map(|i| format!("a = {i}")).collect();
        let mut statement = parse(&format!("SELECT * FROM t WHERE {}", terms.join(" OR ")));
        bound(&mut statement).expect("bounded");
        let inner = &statement;
        let mut depth = 0;
        let mut seen = Vec::new();
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(inner, |e| {
            if let Expr::BinaryOp {
                op: BinaryOperator::Or,
                left,
                ..
            } = e
            {
                depth = depth.max(1 + spine_len(left).min(64));
            }
            if let Expr::BinaryOp {
                op: BinaryOperator::Eq,
                right,
                ..
            } = e
            {
                seen.push(right.to_string());
            }
            ControlFlow::<()>::Continue(())
        });
        assert!(depth <= 11, "{depth}");
        let want: Vec<String> = (0..1_000).map(|i| i.to_string()).collect();
        assert_eq!(seen, want, "operands keep their order");
    }

    #[test]
    fn other_long_chains_are_refused_naming_the_limit() {
        let sum = vec!["1"; 10_000].join(" + ");
        let mut statement = parse(&format!("SELECT {sum}"));
        let err = bound(&mut statement).expect_err("refused");
        assert!(err.contains("128 levels"), "{err}");
        let mut fine = parse(&format!("SELECT {}", vec!["1"; 100].join(" + ")));
        bound(&mut fine).expect("100 terms are fine");
    }
}
