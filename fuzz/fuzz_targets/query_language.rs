//! The query language: parsing (term, `in` and nesting bounds), planning,
//! and the round trip the docs promise: a parsed query prints as text that
//! parses back to the same query.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_query::{PlanOptions, Query};

const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    let _ = loupe_query::plan(&query, PlanOptions::at(NOW));
    let printed = query.to_string();
    let again = Query::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e:?}"));
    assert_eq!(query, again, "{text:?} printed as {printed:?}");
});
