//! Error cases: exact byte spans, messages and suggestions for unknown
//! names, type mistakes and syntax errors; error kinds; rendering; and the
//! checks applied to the JSON form.

use super::check_err;
use crate::language::{ErrorKind, Query};

#[test]
fn unknown_names_suggest_the_closest_known_one() {
    let cases = [
        (
            "status=error tool_nme=inventory",
            "13..21 unknown field `tool_nme` | did you mean `tool_name`?",
        ),
        (
            "Status=error",
            "0..6 unknown field `Status` | did you mean `status`?",
        ),
        (
            "tag.category=phone",
            "0..12 unknown field `tag.category` | did you mean `tags.category`?",
        ),
        (
            "atributes.x=1",
            "0..11 unknown field `atributes.x` | did you mean `attributes.x`?",
        ),
        (
            "category=phone",
            "0..8 unknown field `category` | did you mean `tags.category` or `attributes.category`?",
        ),
        (
            "latency>1s",
            "0..7 unknown field `latency` | did you mean `duration`?",
        ),
        (
            "by modle_name | count()",
            "3..13 unknown field `modle_name` | did you mean `model_name`?",
        ),
        (
            "p95(duraton)",
            "4..11 unknown field `duraton` | did you mean `duration`?",
        ),
        (
            "cout()",
            "0..4 unknown aggregate `cout` | did you mean `count`?",
        ),
        (
            "error_rat()",
            "0..9 unknown aggregate `error_rat` | did you mean `error_rate`?",
        ),
        (
            "mean(duration)",
            "0..4 unknown aggregate `mean` | did you mean `avg`?",
        ),
        (
            "median(duration)",
            "0..6 unknown aggregate `median` | did you mean `p50`?",
        ),
        (
            "p59(duration)",
            "0..3 unknown aggregate `p59` | did you mean `p50`?",
        ),
        (
            "frobnicate(duration)",
            "0..10 unknown aggregate `frobnicate`",
        ),
        (
            "status=eror",
            "7..11 `eror` is not a value of `status` (one of ok, error, running, unset) | did you mean `error`?",
        ),
        (
            "span_kind in (tool, retreival)",
            "20..29 `retreival` is not a value of `span_kind` (one of workflow, llm, tool, retrieval, agent, chain, embedding, rerank, http, code, branch, other) | did you mean `retrieval`?",
        ),
        (
            "xyzzy_qq=1",
            "0..8 unknown field `xyzzy_qq` | did you mean `tags.xyzzy_qq` or `attributes.xyzzy_qq`?",
        ),
        (
            "attributes=1",
            "0..10 `attributes` is a map; name a key | write `attributes.<key>` or `attributes[\"key\"]`",
        ),
        (
            "tags.a:b=1",
            "0..8 `a:b` cannot be written bare after `tags.` | quote the key: tags[\"a:b\"]",
        ),
        (
            "p95(duration) as slow | sort slo",
            "29..32 `slo` is neither a field nor an alias of this query | did you mean `slow`?",
        ),
        (
            "sort duraton desc",
            "5..12 `duraton` is neither a field nor an alias of this query | did you mean `duration`?",
        ),
    ];
    for (input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn type_errors_point_at_the_value_or_call() {
    let cases = [
        (
            "duration > \"abc\"",
            "11..16 `duration` is a duration; the string \"abc\" is not | write a number with a unit, e.g. `1s` (units are ns, us, ms, s, m, h, d)",
        ),
        (
            "duration > 1000",
            "11..15 `duration` is a duration; the number 1000 needs a unit | did you mean `1000ms`? (units are ns, us, ms, s, m, h, d)",
        ),
        (
            "duration > abc",
            "11..14 `duration` is a duration; the string \"abc\" is not | write a number with a unit, e.g. `1s` (units are ns, us, ms, s, m, h, d)",
        ),
        (
            "duration > 1.5ns",
            "11..16 `1.5ns` is not a valid number, duration or timestamp | durations are whole ns with a unit (ns, us, ms, s, m, h, d), e.g. `1.5s`",
        ),
        (
            "input_tokens > abc",
            "15..18 `input_tokens` is an integer; the string \"abc\" is not",
        ),
        (
            "input_tokens > \"12\"",
            "15..19 `input_tokens` is an integer; the string \"12\" is not | write the number without quotes: `12`",
        ),
        (
            "input_tokens > 3x",
            "15..17 `3x` is not a valid number, duration or timestamp | durations are whole ns with a unit (ns, us, ms, s, m, h, d), e.g. `1.5s`",
        ),
        (
            "cost > 1s",
            "7..9 `cost` is a number; the duration 1s is not",
        ),
        (
            "start_time > yesterday",
            "13..22 `start_time` is a timestamp; the string \"yesterday\" is not | write an RFC 3339 timestamp, e.g. `2026-11-01T00:00:00Z`",
        ),
        (
            "duration contains \"x\"",
            "0..8 `contains` needs a text field; `duration` is a duration",
        ),
        (
            "avg(status)",
            "0..11 `avg` needs a numeric field; `status` is text | count its values instead: `count_distinct(status)`, or group by it",
        ),
        (
            "max(name)",
            "0..9 `max` needs a numeric or time field; `name` is text | count its values instead: `count_distinct(name)`, or group by it",
        ),
        (
            "by status | avg()",
            "12..17 `avg` needs a field | e.g. `avg(duration)`",
        ),
        (
            "count(duration)",
            "0..15 `count` takes no field | write `count()`, or `count_distinct(duration)`",
        ),
        (
            "error_rate(status)",
            "0..18 `error_rate` takes no field | write `error_rate()`",
        ),
        (
            "count",
            "5..5 expected `(` after `count`, found the end of the query | write `count()`",
        ),
        (
            "by bucket(0s) | count()",
            "3..13 bucket width must be positive | e.g. `bucket(1m)`, `bucket(1h)`",
        ),
        (
            "by bucket(-1m)",
            "3..14 bucket width must be positive | e.g. `bucket(1m)`, `bucket(1h)`",
        ),
        (
            "by bucket(5) | count()",
            "10..11 `5` is not a duration | did you mean `5s`? (units: ns, us, ms, s, m, h, d)",
        ),
        (
            "last 0s",
            "0..7 `last` needs a positive duration | e.g. `last 7d`",
        ),
        (
            "last week",
            "5..9 `week` is not a duration | a duration is a number with a unit: ns, us, ms, s, m, h, d",
        ),
        (
            "from 2026-11-02 to 2026-11-01",
            "0..29 the range ends (2026-11-01T00:00:00Z) before it starts (2026-11-02T00:00:00Z)",
        ),
        (
            "from 2026-13-02 to 2026-11-01",
            "5..15 `2026-13-02` is not a timestamp | write RFC 3339, e.g. `2026-11-01T00:00:00Z`",
        ),
        ("\"  \"", "0..4 the search text is empty"),
    ];
    for (input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn syntax_errors_point_at_the_position() {
    let cases = [
        ("name=\"abc", "5..9 unterminated string | close it with \""),
        (
            "name=\"a\\qb\"",
            "7..9 unknown escape `\\q` | escapes are \\\" \\' \\\\ \\n \\t \\r \\u{hex}",
        ),
        (
            "name=\"\\u{zz}\"",
            "6..10 bad unicode escape | write it as \\u{1F600}",
        ),
        (
            "status=error )",
            "13..14 expected a filter, `|` or the end of the query, found `)`",
        ),
        (
            "(status=error",
            "13..13 expected `)`, found the end of the query | to close the `(` at byte 0",
        ),
        (
            "status=error |",
            "14..14 expected a stage after `|`, found the end of the query",
        ),
        (
            "status=error | | count()",
            "15..16 expected a stage after `|`, found `|`",
        ),
        (
            "count() | by status",
            "10..12 a `by` stage cannot follow the aggregates stage | stages go in this order: filter | by … | aggregates | sort … | limit N | fields …",
        ),
        (
            "status=error | tool_name=x",
            "15..24 a second filter stage | put every filter in the first stage",
        ),
        (
            "limit 5 | limit 6",
            "10..15 a second `limit` stage | stages go in this order: filter | by … | aggregates | sort … | limit N | fields …",
        ),
        (
            "status",
            "6..6 expected an operator after `status`, found the end of the query | operators are = != < <= > >= in contains icontains exists, e.g. `status=error`",
        ),
        (
            "status=",
            "7..7 expected a value, found the end of the query",
        ),
        (
            "status=error OR",
            "15..15 expected a filter, found the end of the query",
        ),
        ("a # b", "2..3 unexpected character `#`"),
        (
            "OR status=error",
            "0..2 expected a filter, found `OR` | `OR` joins two filters, e.g. `status=error OR tool_name=payment`",
        ),
        (
            "status=error and and x=1",
            "17..20 expected a filter, found `and` | `AND` joins two filters, e.g. `status=error AND tool_name=payment`",
        ),
        (
            "status ! error",
            "7..8 unexpected `!` | write `!=` or `NOT`",
        ),
        ("tool_name in ()", "14..15 `in` needs at least one value"),
        (
            "tool_name in (a b)",
            "16..17 expected `,` or `)`, found `b`",
        ),
        (
            "tool_name in a",
            "13..14 expected `(` after `in`, found `a`",
        ),
        (
            "error_message contains",
            "22..22 expected the text to look for after `contains`, found the end of the query",
        ),
        (
            "tags[\"a\"",
            "8..8 expected `]`, found the end of the query",
        ),
        ("tags[a]=1", "5..6 expected a quoted key, found `a`"),
        ("attributes[\"\"]=1", "11..13 a map key cannot be empty"),
        (
            "run has (run has (status=error))",
            "9..16 `run has` cannot appear inside another `run has` | combine them at the top level: `run has (a) run has (b)`",
        ),
        (
            "run has status=error",
            "8..14 expected `(` after `run has`, found `status`",
        ),
        ("status=error last 1h last 2h", "21..25 a second time range"),
        (
            "(last 1h)",
            "1..5 a time range goes at the start or the end of the filter stage | e.g. `last 7d status=error`",
        ),
        (
            "from 2026-11-01",
            "15..15 expected `to`, found the end of the query | write `from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z`",
        ),
        ("limit 0", "6..7 a limit must be at least 1"),
        ("limit ten", "6..9 expected a whole number, found `ten`"),
        (
            "count() as duration",
            "11..19 alias `duration` is already a keyword or field name | e.g. `duration_value`",
        ),
        (
            "count() as a, sum(cost) as a",
            "27..28 alias `a` is used twice",
        ),
        (
            "count() as",
            "10..10 expected an alias after `as`, found the end of the query",
        ),
        (
            "by status | count() | sort p95(duration) desc",
            "27..40 `p95(duration)` is not computed by this query | add it to the aggregates: `| p95(duration)`",
        ),
        (
            "by status | count() | sort tool_name",
            "27..36 `tool_name` is not a group key, so the result has no such column | group by it: `by tool_name`",
        ),
        (
            "by status, status",
            "11..17 `status` is already a group key",
        ),
        (
            "p95(duration) extra",
            "14..19 expected `|` or the end of the query, found `extra`",
        ),
    ];
    for (input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn errors_have_a_kind_for_the_api_status() {
    let kind = |input: &str| Query::parse(input).unwrap_err().kind;
    assert_eq!(kind("a # b"), ErrorKind::Syntax);
    assert_eq!(kind("tool_nme=x"), ErrorKind::UnknownField);
    assert_eq!(kind("cout()"), ErrorKind::UnknownAggregate);
    assert_eq!(kind("avg(status)"), ErrorKind::Type);
    assert_eq!(kind("limit 0"), ErrorKind::Invalid);
}

#[test]
fn render_draws_a_caret_under_the_span() {
    let src = "status=error tool_nme=inventory";
    let e = Query::parse(src).unwrap_err();
    assert_eq!(
        e.render(src),
        "error: unknown field `tool_nme`\n  |\n1 | status=error tool_nme=inventory\n  |              ^^^^^^^^\n  = help: did you mean `tool_name`?\n"
    );
    // Multi-line source, non-ASCII before the span: columns count chars.
    let src = "name=日本\n  | p95(statuss)";
    let e = Query::parse(src).unwrap_err();
    assert_eq!(
        e.render(src),
        "error: unknown field `statuss`\n  |\n2 |   | p95(statuss)\n  |         ^^^^^^^\n  = help: did you mean `status`?\n"
    );
    // An empty span at the end still gets one caret.
    let src = "status=";
    assert!(
        Query::parse(src)
            .unwrap_err()
            .render(src)
            .ends_with("|        ^\n")
    );
}

#[test]
fn json_form_is_checked_like_text() {
    let err = |json: &str| {
        let e = Query::from_json(json).unwrap_err();
        let mut s = format!("{}..{} {}", e.span.start, e.span.end, e.message);
        if let Some(h) = e.suggestion {
            s.push_str(" | ");
            s.push_str(&h);
        }
        s
    };
    assert_eq!(
        err(r#"{"filter": {"op": "and", "args": [{"op": "exists", "field": "name"}]}}"#),
        "0..0 `and` and `or` need at least two operands"
    );
    assert_eq!(
        err(r#"{"aggregates": [{"fn": "avg", "field": "status"}]}"#),
        "0..0 `avg` needs a numeric field; `status` is text | count its values instead: `count_distinct(status)`, or group by it"
    );
    assert!(
        err(r#"{"filter": {"op": "=", "field": "tool_nme", "value": "x"}}"#)
            .contains("did you mean `tool_name`?")
    );
    let e = err(r#"{"limit": 5, "colour": 1}"#);
    assert!(
        e.starts_with("20..20 invalid query JSON: unknown field `colour`"),
        "{e}"
    );
    assert_eq!(
        err(
            r#"{"filter": {"op": "run_has", "filter": {"op": "run_has", "filter": {"op": "exists", "field": "name"}}}}"#
        ),
        "0..0 `run has` cannot appear inside another `run has` | combine them at the top level: `run has (a) run has (b)`"
    );
    // Durations and timestamps also accept integer ns in JSON.
    let q = Query::from_json(
        r#"{"time": {"from": 0, "to": 1000000000}, "group_by": [{"bucket": 60000000000}], "filter": {"op": ">", "field": "duration", "value": {"duration": 1500000}}}"#,
    )
    .unwrap();
    assert_eq!(
        q.to_string(),
        "from 1970-01-01T00:00:00Z to 1970-01-01T00:00:01Z duration>1500us | by bucket(1m)"
    );
}

#[test]
fn hostile_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}status=error{}", "(".repeat(100_000), ")".repeat(100_000));
    let e = Query::parse(&deep).unwrap_err();
    assert_eq!(e.message, "the filter is nested more than 64 levels deep");
    assert_eq!(e.span, 64..65);
    let nots = "NOT ".repeat(10_000) + "status=error";
    assert_eq!(Query::parse(&nots).unwrap_err().kind, ErrorKind::Invalid);
    // Sixty levels are fine.
    let ok = format!("{}status=error{}", "(".repeat(60), ")".repeat(60));
    assert!(Query::parse(&ok).is_ok());
}

/// Issue 14: 1,000 `or` terms took the server down further down the line;
/// the parser bounds the terms and names the limit and the term at fault.
#[test]
fn too_many_terms_name_the_limit_and_the_term() {
    let terms: Vec<String> = (0..1_100).map(|i| format!("tool_name=t{i}")).collect();
    let text = terms.join(" or ");
    let e = Query::parse(&text).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.message, "the filter has more than 1024 terms");
    let at = text.find("tool_name=t1024").expect("term");
    assert_eq!(e.span, at..at + "tool_name".len());
    assert!(e.suggestion.as_deref().is_some_and(|s| s.contains("in (")));
    // 1,024 terms are fine, however they are joined.
    assert!(Query::parse(&terms[..1_024].join(" or ")).is_ok());
    assert!(Query::parse(&terms[..1_024].join(" ")).is_ok());
    // Quoted text and `exists` are terms too.
    let texts = vec!["\"a\""; 1_025].join(" or ");
    assert!(Query::parse(&texts).is_err());
}

#[test]
fn in_lists_and_query_text_are_bounded() {
    let values: Vec<String> = (0..10_001).map(|i| format!("t{i}")).collect();
    let text = format!("tool_name in ({})", values.join(", "));
    let e = Query::parse(&text).unwrap_err();
    assert_eq!(e.message, "an `in` list has more than 10000 values");
    let at = text.find("t10000").expect("value");
    assert_eq!(e.span, at..at + "t10000".len());
    let ok = format!("tool_name in ({})", values[..10_000].join(", "));
    assert!(Query::parse(&ok).is_ok());
    let long = format!("\"{}\"", "x".repeat(1 << 20));
    let e = Query::parse(&long).unwrap_err();
    assert!(
        e.message.contains("more than the limit of 1048576"),
        "{}",
        e.message
    );
}

#[test]
fn the_json_form_has_the_same_bounds() {
    let term = serde_json::json!({"op": "=", "field": "tool_name", "value": "a"});
    let wide = serde_json::json!({"filter": {"op": "or", "args": vec![term.clone(); 1_025]}});
    let e = Query::from_json(&wide.to_string()).unwrap_err();
    assert_eq!(e.message, "the filter has more than 1024 terms");
    let fine = serde_json::json!({"filter": {"op": "or", "args": vec![term.clone(); 1_024]}});
    assert!(Query::from_json(&fine.to_string()).is_ok());
    let mut deep = term;
    for _ in 0..70 {
        deep = serde_json::json!({"op": "not", "arg": deep});
    }
    let deep = serde_json::json!({ "filter": deep }).to_string();
    let e = Query::from_json(&deep).unwrap_err();
    assert!(e.message.contains("nested more than 64"), "{}", e.message);
}
