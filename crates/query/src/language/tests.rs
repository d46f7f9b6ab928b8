//! Data-driven tests of the language: text → canonical text, text → JSON,
//! text → error (exact byte span, message, suggestion), error rendering,
//! and the round-trip property over generated queries ([`generator`]);
//! error cases live in [`errors`].

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod errors;
mod generator;

use super::Query;

/// Parses `input`, expects its canonical text to be `expected`, and checks
/// that the canonical text and the JSON form both parse back to the same
/// query.
#[track_caller]
fn check(input: &str, expected: &str) {
    let q = match Query::parse(input) {
        Ok(q) => q,
        Err(e) => panic!("{input:?} failed:\n{}", e.render(input)),
    };
    let text = q.to_string();
    assert_eq!(text, expected, "canonical text of {input:?}");
    let again = Query::parse(&text).unwrap_or_else(|e| panic!("{}", e.render(&text)));
    assert_eq!(again, q, "parse(display(q)) != q for {input:?}");
    let json = serde_json::to_string(&q).unwrap();
    assert_eq!(
        Query::from_json(&json).unwrap(),
        q,
        "JSON round trip of {json}"
    );
    q.validate().unwrap();
}

/// Parses `input` and expects its JSON form to be `expected` (compact).
#[track_caller]
fn check_json(input: &str, expected: &str) {
    let q = Query::parse(input).unwrap_or_else(|e| panic!("{}", e.render(input)));
    assert_eq!(
        serde_json::to_string(&q).unwrap(),
        expected,
        "JSON of {input:?}"
    );
}

/// Expects `input` to fail as `"start..end message | suggestion"` (the
/// suggestion part only when there is one).
#[track_caller]
fn check_err(input: &str, expected: &str) {
    let e = match Query::parse(input) {
        Ok(q) => panic!("{input:?} parsed as {q} ({q:?})"),
        Err(e) => e,
    };
    let mut got = format!("{}..{} {}", e.span.start, e.span.end, e.message);
    if let Some(s) = &e.suggestion {
        got.push_str(" | ");
        got.push_str(s);
    }
    assert_eq!(got, expected, "error for {input:?}");
    // Rendering never panics and shows the message.
    assert!(e.render(input).contains(&e.message));
}

#[test]
fn comparison_operators_parse_and_print_canonically() {
    let cases = [
        ("status=error", "status=error"),
        ("status = error", "status=error"),
        ("status == error", "status=error"),
        ("tool_name != inventory", "tool_name!=inventory"),
        ("input_tokens < 100", "input_tokens<100"),
        ("input_tokens <= 100", "input_tokens<=100"),
        ("output_tokens > -5", "output_tokens>-5"),
        ("total_tokens >= 0", "total_tokens>=0"),
        ("cost >= 0.5", "cost>=0.5"),
        ("cost < 1", "cost<1"),
        ("cost>1e-3", "cost>0.001"),
        ("cost>2.0", "cost>2.0"),
        ("cost>1e20", "cost>1e20"),
        ("ingest_version=1", "ingest_version=1"),
        (
            "start_time >= 2026-11-01T00:00:00Z",
            "start_time>=2026-11-01T00:00:00Z",
        ),
        (
            "end_time < \"2026-11-01T08:00:00+08:00\"",
            "end_time<2026-11-01T00:00:00Z",
        ),
        ("start_time > 2026-11-01", "start_time>2026-11-01T00:00:00Z"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn durations_take_every_unit_and_print_in_the_largest_exact_one() {
    let cases = [
        ("duration>1s", "duration>1s"),
        ("duration > 1000ms", "duration>1s"),
        ("duration<1.5s", "duration<1500ms"),
        ("duration<=90m", "duration<=90m"),
        ("duration>3600s", "duration>1h"),
        ("duration>24h", "duration>1d"),
        ("duration>2d", "duration>2d"),
        ("duration>1us", "duration>1us"),
        ("duration>1500ns", "duration>1500ns"),
        ("duration>0.25ms", "duration>250us"),
        ("duration!=0s", "duration!=0s"),
        ("duration>=0ms", "duration>=0s"),
        ("duration>-1s", "duration>-1s"),
        ("duration>+2m", "duration>2m"),
        ("duration in (1s, 2s)", "duration in (1s, 2s)"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn maps_fields_and_their_keys() {
    let cases = [
        ("tags.category=phone", "tags.category=phone"),
        (
            "tags.category = \"phone case\"",
            "tags.category=\"phone case\"",
        ),
        ("tags.tier=500", "tags.tier=500"),
        ("tags.tier=\"500\"", "tags.tier=\"500\""),
        ("tags.tier=1s", "tags.tier=\"1s\""),
        ("tags.ratio>0.5", "tags.ratio>0.5"),
        (
            "attributes.http.status_code>=500",
            "attributes.http.status_code>=500",
        ),
        (
            "attributes[\"http.method\"]=GET",
            "attributes.http.method=GET",
        ),
        (
            "attributes[\"key with spaces\"]=x",
            "attributes[\"key with spaces\"]=x",
        ),
        ("tags[\"a\\\"b\"]=x", "tags[\"a\\\"b\"]=x"),
        ("tags.user-tier=gold", "tags.user-tier=gold"),
        ("exists tags[\"a:b\"]", "exists tags[\"a:b\"]"),
        // Map values are text: a timestamp-looking word is compared as text.
        (
            "tags.x > 2026-11-01T00:00:00Z",
            "tags.x>\"2026-11-01T00:00:00Z\"",
        ),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn in_contains_and_exists() {
    let cases = [
        (
            "tool_name in (inventory, payment)",
            "tool_name in (inventory, payment)",
        ),
        ("status IN (error,ok)", "status in (error, ok)"),
        ("input_tokens in (1, 2, 3)", "input_tokens in (1, 2, 3)"),
        ("tool_name not in (a, b)", "NOT tool_name in (a, b)"),
        ("tags.x in (\"a b\", 1, 2.5)", "tags.x in (\"a b\", 1, 2.5)"),
        (
            "error_message contains \"500\"",
            "error_message contains \"500\"",
        ),
        (
            "error_message contains timeout",
            "error_message contains timeout",
        ),
        (
            "error_message CONTAINS \"or\"",
            "error_message contains \"or\"",
        ),
        ("output not contains x", "NOT output contains x"),
        ("tags.note contains \"\"", "tags.note contains \"\""),
        ("exists tags.category", "exists tags.category"),
        ("tags.category exists", "exists tags.category"),
        ("tags.category not exists", "NOT exists tags.category"),
        ("not exists user_id", "NOT exists user_id"),
        (
            "exists user_id exists session_id",
            "exists user_id exists session_id",
        ),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn boolean_precedence_is_or_then_and_then_not() {
    let cases = [
        ("status=error tool_name=x", "status=error tool_name=x"),
        ("status=error AND tool_name=x", "status=error tool_name=x"),
        ("status=error and tool_name=x", "status=error tool_name=x"),
        ("status=error or status=ok", "status=error OR status=ok"),
        ("name=a OR name=b name=c", "name=a OR name=b name=c"),
        ("(name=a OR name=b) name=c", "(name=a OR name=b) name=c"),
        ("NOT name=a name=b", "NOT name=a name=b"),
        ("NOT (name=a name=b)", "NOT (name=a name=b)"),
        ("not not name=a", "NOT NOT name=a"),
        ("((name=a))", "name=a"),
        ("name=a and (name=b and name=c)", "name=a (name=b name=c)"),
        (
            "name=a or (name=b or name=c)",
            "name=a OR (name=b OR name=c)",
        ),
        (
            "status=error Or NOT tool_name In (a)",
            "status=error OR NOT tool_name in (a)",
        ),
        ("\"connection reset\"", "\"connection reset\""),
        ("\"timeout\" status=error", "\"timeout\" status=error"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
    check_json(
        "name=a OR name=b name=c",
        r#"{"filter":{"op":"or","args":[{"op":"=","field":"name","value":"a"},{"op":"and","args":[{"op":"=","field":"name","value":"b"},{"op":"=","field":"name","value":"c"}]}]}}"#,
    );
    check_json(
        "NOT name=a name=b",
        r#"{"filter":{"op":"and","args":[{"op":"not","arg":{"op":"=","field":"name","value":"a"}},{"op":"=","field":"name","value":"b"}]}}"#,
    );
}

#[test]
fn strings_quote_escape_and_print_bare_only_when_safe() {
    let cases = [
        (r#"name="say \"hi\"""#, r#"name="say \"hi\"""#),
        ("name='single'", "name=single"),
        (r#"name='it\'s'"#, r#"name="it's""#),
        (r#"name="tab\there""#, r#"name="tab\there""#),
        (r#"name="back\\slash""#, r#"name="back\\slash""#),
        (r#"name="line\nbreak\r""#, r#"name="line\nbreak\r""#),
        (r#"name="\u{e9}t\u{e9}""#, "name=été"),
        (r#"name="\u{1}""#, r#"name="\u{1}""#),
        ("name=日本", "name=日本"),
        ("name=\"a b\"", "name=\"a b\""),
        ("name=\"and\"", "name=\"and\""),
        ("name=\"DESC\"", "name=\"DESC\""),
        ("name=\"\"", "name=\"\""),
        ("name=123", "name=\"123\""),
        ("name=\"123\"", "name=\"123\""),
        (
            "user_id=3fa85f64-5717-4562",
            "user_id=\"3fa85f64-5717-4562\"",
        ),
        ("name=http:500", "name=http:500"),
        ("name=a.b-c_d", "name=a.b-c_d"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn time_ranges_go_at_either_end_of_the_filter_stage() {
    let cases = [
        ("last 7d", "last 7d"),
        ("LAST 24h status=error", "last 1d status=error"),
        ("status=error last 15m", "last 15m status=error"),
        (
            "status=error or status=ok last 1h",
            "last 1h status=error OR status=ok",
        ),
        (
            "from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z",
            "from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z",
        ),
        (
            "from 2026-11-01 to 2026-11-02",
            "from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z",
        ),
        (
            "from \"2026-11-01T08:00:00+08:00\" to 2026-11-02T00:00:00.5Z",
            "from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00.500Z",
        ),
        ("last 7d | by status", "last 7d | by status"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
    check_json("last 7d", r#"{"time":{"last":"7d"}}"#);
    check_json(
        "from 2026-11-01 to 2026-11-02",
        r#"{"time":{"from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z"}}"#,
    );
}

#[test]
fn pipeline_stages_group_aggregate_sort_and_limit() {
    let cases = [
        (
            "status=error node_type=tool tool_name=inventory duration>1s tags.category=phone | by tags.category, bucket(1h) | p95(duration), count()",
            "status=error node_type=tool tool_name=inventory duration>1s tags.category=phone | by tags.category, bucket(1h) | p95(duration), count()",
        ),
        (
            "by tags.category | success_rate()",
            "by tags.category | success_rate()",
        ),
        ("count()", "count()"),
        ("| count()", "count()"),
        ("by status", "by status"),
        (
            "status=error | sort duration desc | limit 10",
            "status=error | sort duration desc | limit 10",
        ),
        ("sort start_time asc", "sort start_time"),
        ("top 5", "top 5"),
        (
            "p95(duration) as p95_lat | sort p95_lat desc",
            "p95(duration) as p95_lat | sort p95_lat desc",
        ),
        (
            "by tool_name | p95(duration), count() | sort p95(duration) desc, count() | top 10",
            "by tool_name | p95(duration), count() | sort p95(duration) desc, count() | top 10",
        ),
        (
            "by bucket(5m) | error_rate(), success_rate()",
            "by bucket(5m) | error_rate(), success_rate()",
        ),
        (
            "by status | sort count() desc",
            "by status | sort count() desc",
        ),
        (
            "by tool_name | count() | sort tool_name",
            "by tool_name | count() | sort tool_name",
        ),
        (
            "COUNT(), Avg(cost), min(start_time), max(duration), sum(total_tokens), p50(duration), p90(duration), p99(tags.score), count_distinct(user_id)",
            "count(), avg(cost), min(start_time), max(duration), sum(total_tokens), p50(duration), p90(duration), p99(tags.score), count_distinct(user_id)",
        ),
        ("count() as count", "count() as count"),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
    check_json(
        "tool_name=inventory duration>1s | by tags.category, bucket(1h) | p95(duration) as p95, count() | sort p95 desc | top 3",
        r#"{"filter":{"op":"and","args":[{"op":"=","field":"tool_name","value":"inventory"},{"op":">","field":"duration","value":{"duration":"1s"}}]},"group_by":["tags.category",{"bucket":"1h"}],"aggregates":[{"fn":"p95","field":"duration","as":"p95"},{"fn":"count"}],"sort":[{"by":"p95","order":"desc"}],"limit":{"top":3}}"#,
    );
    check_json("limit 7", r#"{"limit":7}"#);
}

#[test]
fn a_fields_stage_picks_a_listings_columns_in_order() {
    let cases = [
        (
            "span_kind=workflow | sort start_time desc | limit 100 | fields run_id, start_time, status, duration",
            "span_kind=workflow | sort start_time desc | limit 100 | fields run_id, start_time, status, duration",
        ),
        (
            "| FIELDS tags.category, input.query",
            "fields tags.category, input.query",
        ),
        (
            "status=error | fields tags[\"a b\"]",
            "status=error | fields tags[\"a b\"]",
        ),
        (
            "logs | severity=error | fields time, body",
            "logs | severity=error | fields time, body",
        ),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
    check_json(
        "status=error | limit 5 | fields run_id, tags.tier",
        r#"{"filter":{"op":"=","field":"status","value":"error"},"limit":5,"fields":["run_id","tags.tier"]}"#,
    );
    // `fields` with nothing after it is no stage: read as a filter, it
    // names no field.
    assert!(Query::parse("fields").is_err());
    check_err(
        "by status | fields status",
        "12..18 `fields` picks the columns of a listing; this query groups or aggregates, so \
         its columns are its group keys and aggregates | drop the `fields` stage, or the `by` \
         and aggregates to list spans",
    );
    check_err(
        "status=error | fields run_id, start_time, run_id",
        "42..48 `run_id` is already listed",
    );
    check_err(
        "fields run_id | limit 3",
        "16..21 a `limit` stage cannot follow the `fields` stage | stages go in this order: \
         filter | by … | aggregates | sort … | limit N | fields …",
    );
    check_err(
        "fields runid",
        "7..12 unknown field `runid` | did you mean `run_id`?",
    );
    // The JSON form gets the same checks.
    let json = |fields: &str| {
        Query::from_json(&format!(
            r#"{{"aggregates":[{{"fn":"count"}}],"fields":{fields}}}"#
        ))
    };
    assert!(json(r#"["status"]"#).is_err());
    let many: Vec<String> = (0..=super::check::MAX_FIELDS)
        .map(|i| format!("\"tags.k{i}\""))
        .collect();
    let e = Query::from_json(&format!(r#"{{"fields":[{}]}}"#, many.join(","))).unwrap_err();
    assert!(e.message.contains("at most 100 fields"), "{}", e.message);
    let e = Query::from_json(r#"{"fields":["status","status"]}"#).unwrap_err();
    assert!(e.message.contains("already listed"), "{}", e.message);
}

#[test]
fn run_level_filters_match_spans_whose_run_has_a_matching_span() {
    let cases = [
        (
            "run has (tool_name=inventory status=error) and run has (tool_name=payment status=error)",
            "run has (tool_name=inventory status=error) run has (tool_name=payment status=error)",
        ),
        (
            "span_kind=workflow NOT run has (status=error)",
            "span_kind=workflow NOT run has (status=error)",
        ),
        (
            "RUN HAS (node_type=retrieval error_message contains \"500\") | count()",
            "run has (node_type=retrieval error_message contains \"500\") | count()",
        ),
        (
            "run has (tags.a=1 OR tags.b=2)",
            "run has (tags.a=1 OR tags.b=2)",
        ),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
    check_err(
        "run has (a=1)",
        "9..10 unknown field `a` | did you mean `tags.a` or `attributes.a`?",
    );
    check_json(
        "run has (tool_name=payment)",
        r#"{"filter":{"op":"run_has","filter":{"op":"=","field":"tool_name","value":"payment"}}}"#,
    );
}

#[test]
fn column_list_matches_the_model_schema() {
    let mut from_schema: Vec<String> = loupe_model::schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| {
            ![
                loupe_model::column::VERSION,
                loupe_model::column::ATTRIBUTES,
                loupe_model::column::TAGS,
            ]
            .contains(&n.as_str())
        })
        .collect();
    let mut ours: Vec<String> = super::Column::all()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    from_schema.sort();
    ours.sort();
    assert_eq!(ours, from_schema);
}

#[test]
fn levenshtein_counts_single_char_edits() {
    use super::error::{closest, levenshtein};
    assert_eq!(levenshtein("", ""), 0);
    assert_eq!(levenshtein("abc", ""), 3);
    assert_eq!(levenshtein("kitten", "sitting"), 3);
    assert_eq!(levenshtein("tool_nme", "tool_name"), 1);
    assert_eq!(levenshtein("日本", "日本語"), 1);
    assert_eq!(closest("zzzzzz", ["status", "name"]), None);
    assert_eq!(closest("NAME", ["status", "name"]), Some("name"));
}

#[test]
fn examples_in_the_query_doc_parse() {
    let doc = include_str!("../../../../docs/QUERY.md");
    let mut blocks: Vec<(&str, String)> = Vec::new();
    let mut current: Option<(&str, String)> = None;
    for line in doc.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang, String::new())),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    let mut parsed = 0;
    for (lang, body) in &blocks {
        match *lang {
            "json" => {
                Query::from_json(body).unwrap_or_else(|e| panic!("{body}: {e}"));
                parsed += 1;
            }
            "text" if !body.starts_with("error:") => {
                for query in body.split("\n\n") {
                    let text: Vec<&str> = query.lines().filter(|l| !l.starts_with('#')).collect();
                    let text = text.join("\n");
                    if let Err(e) = Query::parse(&text) {
                        panic!("doc example does not parse:\n{}", e.render(&text));
                    }
                    parsed += 1;
                }
            }
            _ => {}
        }
    }
    assert!(parsed >= 5, "only {parsed} examples found");
}

#[test]
fn error_signature_is_a_field_stored_as_an_attribute() {
    check(
        "status=error | by error_signature | count()",
        "status=error | by error_signature | count()",
    );
    check(
        "error_signature contains \"timeout\" | by tool_name",
        "error_signature contains timeout | by tool_name",
    );
    let q = Query::parse("exists attributes[\"loupe.error_signature\"]").unwrap();
    assert_eq!(q.to_string(), "exists error_signature");
}

/// The `logs` source: its prefix, its fields, severity by level name, and
/// the same stages as spans.
#[test]
fn logs_source_parses_prints_and_round_trips() {
    // Already canonical: each prints as written.
    for text in [
        "logs",
        r#"logs | severity>=error "connection reset" | by service"#,
        r#"logs | severity in (warn, 17) attributes.http.status>=500 resource["host name"]=a"#,
        "logs | by bucket(5m), stream | count() as n, max(severity) | sort n desc | top 3",
        "logs | body icontains Reset | sort time | limit 5",
    ] {
        check(text, text);
    }
    check(
        "LOGS | service=plugin_daemon \"timeout\" last 1h",
        "logs | last 1h service=plugin_daemon \"timeout\"",
    );
    check("spans | status=error", "status=error");
    check_json(
        "logs | severity>=error",
        r#"{"source":"logs","filter":{"op":">=","field":"severity","value":"error"}}"#,
    );
    let q = Query::from_json(
        r#"{"source":"logs","filter":{"op":"=","field":"trace_id","value":"t"},"group_by":["service"]}"#,
    )
    .unwrap();
    assert_eq!(q.to_string(), "logs | trace_id=t | by service");
}

#[test]
fn logs_source_errors_name_the_field_and_the_valid_ones() {
    let all = "log fields are time, observed_time, severity, severity_text, body, service, \
               stream, trace_id, span_id, run_id, attributes.<key>, resource.<key>";
    check_err(
        "logs | sevrity>=error",
        &format!("7..14 unknown log field `sevrity`; {all} | did you mean `severity`?"),
    );
    check_err(
        "logs | level=error",
        &format!("7..12 unknown log field `level`; {all} | did you mean `severity`?"),
    );
    check_err(
        "logs | duration>1s",
        &format!("7..15 unknown log field `duration`; {all}"),
    );
    check_err(
        "logs | tags.category=a",
        &format!("7..20 unknown log field `tags.category`; {all}"),
    );
    check_err(
        "logs | severity>=eror",
        "17..21 `eror` is not a severity level (one of trace, debug, info, warn, error, fatal) \
         | did you mean `error`?",
    );
    check_err(
        "logs | severity=warning",
        "16..23 `warning` is not a severity level (one of trace, debug, info, warn, error, fatal) \
         | did you mean `warn`?",
    );
    check_err(
        "logs | severity>99",
        "16..18 `severity` is a severity; the number 99 is not \
         | write a level (trace, debug, info, warn, error, fatal) or a number from 0 to 24",
    );
    check_err(
        "logs | by service | error_rate()",
        "20..32 `error_rate` is a rate of span statuses; log records have a severity \
         | count them instead: `logs | severity>=error | by service | count()`",
    );
    check_err(
        "logs | run has (severity=error)",
        "7..14 `run has` applies to spans; a log record names its run itself \
         | filter on the record's ids: `logs | run_id=…` or `trace_id=…`",
    );
    check_err(
        "logs severity>=error",
        "5..13 expected `|` after the source, found `severity` | write `logs | <filter>`",
    );
    check_err(
        "logs |",
        "6..6 expected a stage after `|`, found the end of the query",
    );
    // Span fields stay span fields: `severity` is not one of them.
    assert!(Query::parse("severity>=error").is_err());
    // The JSON form checks each field against its source.
    let e = Query::from_json(
        r#"{"source":"logs","filter":{"op":"=","field":"tool_name","value":"x"}}"#,
    )
    .unwrap_err();
    assert!(
        e.message.contains("`tool_name` is not a field of logs"),
        "{e:?}"
    );
    let e = Query::from_json(r#"{"filter":{"op":">=","field":"severity","value":"error"}}"#)
        .unwrap_err();
    assert!(
        e.message.contains("`severity` is not a field of spans"),
        "{e:?}"
    );
}
