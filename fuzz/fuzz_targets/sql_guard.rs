//! The SQL guard (`crates/store/src/query/sql_guard.rs`, included as is):
//! statements parsed as `loupe serve` parses them (generic dialect, recursion
//! limit `SQL_RECURSION_LIMIT`) once their bracket nesting passed, then
//! balanced and bounded. Must never overflow the stack or
//! panic, and a statement it accepts is no deeper than its limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

#[path = "../../crates/store/src/query/sql_guard.rs"]
#[allow(dead_code)]
mod sql_guard;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As `loupe serve` does: deep brackets are refused before parsing.
    if sql_guard::check_nesting(text).is_err() {
        return;
    }
    let Ok(mut parser) = Parser::new(&GenericDialect {})
        .with_recursion_limit(sql_guard::SQL_RECURSION_LIMIT)
        .try_with_sql(text)
    else {
        return;
    };
    let Ok(statements) = parser.parse_statements() else {
        return;
    };
    for mut statement in statements {
        let _ = sql_guard::bound(&mut statement);
    }
});
