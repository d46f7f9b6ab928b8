//! Unit tests of the analysis: filter lowering, request checks, finding
//! filters that parse back.

use super::*;
use crate::text::filter_text;

#[test]
fn filters_must_be_plain_filters_and_name_what_is_wrong() {
    assert!(
        lower_filter("target", "status=error")
            .expect("ok")
            .is_some()
    );
    let err = |t: &str| match lower_filter("target", t) {
        Err(RcaError::Invalid(m)) => m,
        other => panic!("{t}: {other:?}"),
    };
    assert!(err("status=error | by tool_name").contains("filter only"));
    assert!(err("last 6h status=error").contains("window"));
    assert!(err("statu=error").starts_with("target: unknown field"));
}

#[test]
fn a_finding_filter_parses_back_whatever_the_values() {
    let conds = vec![
        Condition {
            field: "tool_name".into(),
            value: "inventory".into(),
        },
        Condition {
            field: "error_signature".into(),
            value: "timeout: call \"x\" \\ after <n>s".into(),
        },
        Condition {
            field: "tags.category".into(),
            value: "phone".into(),
        },
    ];
    let text = filter_text(&conds);
    let q = Query::parse(&text).unwrap_or_else(|e| panic!("{text}: {}", e.render(&text)));
    let plan = loupe_query::plan(&q, PlanOptions::at(1)).expect("plan");
    let Some(Filter::And(parts)) = plan.filter else {
        panic!("{text}")
    };
    assert_eq!(parts.len(), 3);
    assert!(parts.contains(&Filter::Compare {
        field: FieldRef::Attribute(loupe_model::ERROR_SIGNATURE.into()),
        op: Cmp::Eq,
        value: Literal::Text("timeout: call \"x\" \\ after <n>s".into()),
    }));
}

#[test]
fn requests_are_checked_before_anything_is_read() {
    let bad = |req: RcaRequest| match Resolved::new(&req) {
        Err(RcaError::Invalid(m)) => m,
        Ok(_) => panic!("accepted {req:?}"),
        Err(e) => panic!("{e}"),
    };
    let ok = RcaRequest {
        from_ns: 10,
        to_ns: 20,
        ..RcaRequest::default()
    };
    assert!(Resolved::new(&ok).is_ok());
    assert!(
        bad(RcaRequest {
            to_ns: 10,
            ..ok.clone()
        })
        .contains("window is empty")
    );
    assert!(
        bad(RcaRequest {
            max_findings: 0,
            ..ok.clone()
        })
        .contains("max_findings")
    );
    assert!(
        bad(RcaRequest {
            alpha: 1.5,
            ..ok.clone()
        })
        .contains("alpha")
    );
    assert!(
        bad(RcaRequest {
            baseline_from_ns: Some(30),
            baseline_to_ns: Some(30),
            ..ok
        })
        .contains("baseline is empty")
    );
}

#[test]
fn the_best_split_is_where_the_rate_moves() {
    // Ten minutes at 1 in 100, then ten at 50 in 100.
    let series: Vec<(u64, u64)> = (0..20)
        .map(|i| (100, if i < 10 { 1 } else { 50 }))
        .collect();
    assert_eq!(best_split(&series, 0.01, 0.5), Some(10));
    // The other way round (an end): the rate falls back.
    let back: Vec<(u64, u64)> = series.iter().rev().copied().collect();
    assert_eq!(best_split(&back, 0.5, 0.01), Some(10));
    // Empty minutes do not move it; nothing at all gives none.
    let mut gappy = series.clone();
    gappy.insert(10, (0, 0));
    assert_eq!(best_split(&gappy, 0.01, 0.5), Some(10));
    assert_eq!(best_split(&[(0, 0); 5], 0.01, 0.5), None);
}
