//! Planner unit tests: time resolution, implicit count, `top N`, literal
//! typing, sort names.

use loupe_backend::plan::{AggKind, Cmp, FieldRef, Filter, Literal, Output, SortColumn};

use super::{PlanOptions, plan};
use crate::Query;

const NOW: i64 = 1_800_000_000_000_000_000;
const S: i64 = 1_000_000_000;

fn p(text: &str) -> loupe_backend::Plan {
    let q = Query::parse(text).expect("parses");
    plan(&q, PlanOptions::at(NOW)).expect("plans")
}

#[test]
fn last_resolves_against_now_and_default_window_applies_without_range() {
    let plan = p("last 7d status=error");
    assert_eq!((plan.from_ns, plan.to_ns), (NOW - 7 * 86_400 * S, NOW));
    let plan = p("status=error");
    assert_eq!((plan.from_ns, plan.to_ns), (NOW - 86_400 * S, NOW));
    let plan = p("from 2026-11-01 to 2026-11-02");
    assert_eq!(plan.to_ns - plan.from_ns, 86_400 * S);
}

#[test]
fn grouping_without_aggregates_counts_and_top_sorts_by_first_aggregate() {
    let plan = p("by tool_name | top 3");
    assert_eq!(plan.aggregates.len(), 1);
    assert_eq!(plan.aggregates[0].kind, AggKind::Count);
    assert_eq!(plan.sort[0].column, SortColumn::Output("count()".into()));
    assert!(plan.sort[0].descending);
    assert_eq!(plan.limit, Some(3));
    let plan = p("by tool_name | p95(duration) as slow, count() | sort count() | top 2");
    assert_eq!(plan.sort[0].column, SortColumn::Output("count()".into()));
    assert!(!plan.sort[0].descending);
    assert_eq!(plan.aggregates[0].kind, AggKind::Percentile(0.95));
}

#[test]
fn listing_defaults_to_newest_first_and_top_means_slowest() {
    let plan = p("status=error");
    assert!(matches!(plan.output, Output::Rows(_)));
    assert_eq!(plan.limit, Some(100));
    assert!(plan.sort[0].descending);
    let plan = p("status=error | top 5");
    let SortColumn::Field(FieldRef::Column { name, .. }) = &plan.sort[0].column else {
        panic!("sorts by a field");
    };
    assert_eq!(name, "duration");
}

#[test]
fn a_fields_stage_is_the_listings_columns_and_the_default_is_every_field() {
    let Output::Rows(all) = p("status=error").output else {
        panic!("a listing");
    };
    assert_eq!(all, super::listing_columns());
    let Output::Rows(picked) = p("status=error | fields run_id, tags.tier, input.query").output
    else {
        panic!("a listing");
    };
    let names: Vec<String> = picked.iter().map(FieldRef::output_name).collect();
    assert_eq!(names, ["run_id", "tags.tier", "input.query"]);
    assert!(
        matches!(&picked[2], FieldRef::Json { column, keys } if column == "input" && keys == &["query"])
    );
    let Output::Rows(logs) = p("logs | fields body, attributes.http.status").output else {
        panic!("a listing");
    };
    assert_eq!(logs.len(), 2);
}

#[test]
fn literals_are_typed_for_their_field() {
    let plan = p("duration>1s tags.code=500 tags.category=phone cost>=1");
    let Some(Filter::And(args)) = plan.filter else {
        panic!("an and");
    };
    let values: Vec<_> = args
        .iter()
        .map(|f| match f {
            Filter::Compare { value, op, .. } => (value.clone(), *op),
            other => panic!("a comparison, got {other:?}"),
        })
        .collect();
    assert_eq!(values[0], (Literal::Duration(S), Cmp::Gt));
    assert_eq!(values[1], (Literal::Float(500.0), Cmp::Eq));
    assert_eq!(values[2], (Literal::Text("phone".into()), Cmp::Eq));
    assert_eq!(values[3], (Literal::Float(1.0), Cmp::Ge));
}

#[test]
fn logs_plans_read_the_logs_with_severity_ranges_and_json_maps() {
    use loupe_backend::plan::{Source, ValueType};
    let sev = || FieldRef::Column {
        name: "severity".into(),
        ty: ValueType::Int,
    };
    let cmp = |op, n| Filter::Compare {
        field: sev(),
        op,
        value: Literal::Int(n),
    };
    let cases = [
        ("logs | severity>=error", cmp(Cmp::Ge, 17)),
        ("logs | severity>error", cmp(Cmp::Gt, 20)),
        ("logs | severity<warn", cmp(Cmp::Lt, 13)),
        ("logs | severity<=warn", cmp(Cmp::Le, 16)),
        ("logs | severity=18", cmp(Cmp::Eq, 18)),
        (
            "logs | severity=error",
            Filter::And(vec![cmp(Cmp::Ge, 17), cmp(Cmp::Le, 20)]),
        ),
        (
            "logs | severity!=info",
            Filter::Or(vec![cmp(Cmp::Lt, 9), cmp(Cmp::Gt, 12)]),
        ),
        (
            "logs | severity in (fatal, 3)",
            Filter::Or(vec![
                Filter::And(vec![cmp(Cmp::Ge, 21), cmp(Cmp::Le, 24)]),
                cmp(Cmp::Eq, 3),
            ]),
        ),
        (
            "logs | attributes.http.status=500",
            Filter::Compare {
                field: FieldRef::Json {
                    column: "attributes".into(),
                    keys: vec!["http.status".into()],
                },
                op: Cmp::Eq,
                value: Literal::Float(500.0),
            },
        ),
    ];
    for (text, want) in cases {
        let plan = p(text);
        assert_eq!(plan.source, Source::Logs, "{text}");
        assert_eq!(plan.filter, Some(want), "{text}");
    }
    let plan = p("logs | service=api");
    assert_eq!(plan.sort.len(), 1);
    assert!(plan.sort[0].descending);
    assert_eq!(
        plan.sort[0].column,
        SortColumn::Field(FieldRef::Column {
            name: "time".into(),
            ty: ValueType::Timestamp
        })
    );
    assert_eq!(plan.limit, Some(100));
    let Output::Rows(cols) = &plan.output else {
        panic!("a listing")
    };
    let names: Vec<String> = cols.iter().map(FieldRef::output_name).collect();
    assert_eq!(
        names.join(" "),
        "time severity severity_text body service stream trace_id span_id run_id attributes resource"
    );
    assert_eq!(p("status=error").source, Source::Spans);
}
