//! Evaluator semantics with a controlled "now": `for`, recovery, no-data,
//! group-by, tag filters and consecutive-failure event rules.

use loupe_model::{Span, SpanKind, Status};
use loupe_rollup::{RollupConfig, Rollups};

use super::{Evaluator, Notice, NoticeState, Phase};
use crate::eval::AlertState;
use crate::rules::Rule;

/// A minute-aligned "now".
pub(crate) const T0: i64 = 1_800_000_000_000;
const MIN: i64 = 60_000;

pub(crate) fn span(
    id: &str,
    kind: SpanKind,
    tool: &str,
    ok: bool,
    at_ms: i64,
    dur_ms: i64,
    category: &str,
) -> Span {
    let mut s = Span::new("p", id);
    s.app_id = Some("app".into());
    s.span_kind = Some(kind);
    if !tool.is_empty() {
        s.tool_name = Some(tool.into());
    }
    s.status = Some(if ok { Status::Ok } else { Status::Error });
    if !ok {
        s.error_class = Some("HTTP500".into());
    }
    s.end_time = Some(at_ms * 1_000_000);
    s.start_time = Some((at_ms - dur_ms) * 1_000_000);
    if !category.is_empty() {
        s.tags.insert("category".into(), category.into());
    }
    s
}

pub(crate) fn workflows(
    r: &mut Rollups,
    prefix: &str,
    at_ms: i64,
    ok: usize,
    failed: usize,
    category: &str,
) {
    for i in 0..ok + failed {
        r.apply(
            None,
            &span(
                &format!("{prefix}{i}"),
                SpanKind::Workflow,
                "",
                i >= failed,
                at_ms,
                100,
                category,
            ),
        );
    }
}

pub(crate) fn rule(toml_text: &str) -> Rule {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("rule parses: {e}"))
}

fn eval() -> Evaluator {
    Evaluator::new(
        AlertState::default(),
        vec!["category".into()],
        "http://loupe".into(),
    )
}

fn states(n: &[Notice]) -> Vec<(NoticeState, String)> {
    n.iter().map(|n| (n.state, n.group_text())).collect()
}

#[test]
fn for_holds_pending_until_it_elapses_then_fires_and_recovers() {
    let r1 = rule(
        "name='wf-fail'\nmetric='failure_rate'\nthreshold='5%'\nfor='2m'\nfilters={span_kind='workflow'}",
    );
    let rules = [r1];
    let mut roll = Rollups::new(RollupConfig::default());
    workflows(&mut roll, "a", T0 - 1000, 8, 2, "phone");
    let mut ev = eval();
    assert!(ev.evaluate(&rules, &roll, T0).is_empty());
    assert_eq!(
        ev.state.alerts.values().next().map(|e| e.phase),
        Some(Phase::Pending)
    );
    assert!(ev.evaluate(&rules, &roll, T0 + MIN).is_empty(), "1m < for");
    let fired = ev.evaluate(&rules, &roll, T0 + 2 * MIN);
    assert_eq!(states(&fired), vec![(NoticeState::Firing, "-".into())]);
    assert_eq!(fired[0].value, Some(0.2));
    assert!(
        fired[0]
            .runs_url
            .starts_with("http://loupe/api/v1/spans?span_kind=workflow&status=error&from="),
        "{}",
        fired[0].runs_url
    );
    assert!(
        ev.evaluate(&rules, &roll, T0 + 2 * MIN + 15_000).is_empty(),
        "no repeat"
    );
    workflows(&mut roll, "b", T0 + 3 * MIN, 200, 0, "phone");
    let resolved = ev.evaluate(&rules, &roll, T0 + 3 * MIN);
    assert_eq!(states(&resolved), vec![(NoticeState::Resolved, "-".into())]);
    assert!(resolved[0].ends_at_ms.is_some());
    assert!(ev.evaluate(&rules, &roll, T0 + 4 * MIN).is_empty());
    assert!(ev.state.alerts.is_empty());
}

#[test]
fn a_condition_that_stops_before_for_never_fires() {
    let rules = [rule(
        "name='r'\nmetric='failure_rate'\nthreshold=0.05\nfor='5m'\nwindow='1m'",
    )];
    let mut roll = Rollups::new(RollupConfig::default());
    workflows(&mut roll, "a", T0, 0, 3, "");
    let mut ev = eval();
    assert!(ev.evaluate(&rules, &roll, T0).is_empty());
    assert!(
        ev.evaluate(&rules, &roll, T0 + 2 * MIN).is_empty(),
        "window passed: no data → ok"
    );
    assert!(ev.state.alerts.is_empty(), "pending dropped, never fired");
}

#[test]
fn no_data_policies_ok_alerting_keep() {
    let mut roll = Rollups::new(RollupConfig::default());
    workflows(&mut roll, "a", T0, 0, 5, "");
    for (policy, expect) in [
        ("ok", Some(NoticeState::Resolved)),
        ("alerting", None),
        ("keep", None),
    ] {
        let rules = [rule(&format!(
            "name='r'\nmetric='failure_rate'\nthreshold='5%'\nno_data='{policy}'"
        ))];
        let mut ev = eval();
        assert_eq!(
            states(&ev.evaluate(&rules, &roll, T0)).len(),
            1,
            "{policy}: fires"
        );
        let later = ev.evaluate(&rules, &roll, T0 + 30 * MIN);
        assert_eq!(later.first().map(|n| n.state), expect, "{policy}");
        let phase = ev.state.alerts.values().next().map(|e| e.phase);
        let want = if policy == "ok" {
            Phase::Resolved
        } else {
            Phase::Firing
        };
        assert_eq!(phase, Some(want), "{policy}");
    }
    // `alerting` also fires a rule that never saw data.
    let rules = [rule(
        "name='quiet'\nmetric='success_rate'\nop='<'\nthreshold='90%'\nno_data='alerting'",
    )];
    let fired = eval().evaluate(&rules, &Rollups::new(RollupConfig::default()), T0);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].value, None);
}

#[test]
fn group_by_gives_one_alert_per_group_and_tag_filters_select() {
    let mut roll = Rollups::new(RollupConfig::default());
    for i in 0..4 {
        roll.apply(
            None,
            &span(
                &format!("i{i}"),
                SpanKind::Tool,
                "inventory",
                true,
                T0,
                1500,
                "",
            ),
        );
        roll.apply(
            None,
            &span(
                &format!("c{i}"),
                SpanKind::Tool,
                "coupon",
                true,
                T0,
                200,
                "",
            ),
        );
        roll.apply(
            None,
            &span(
                &format!("s{i}"),
                SpanKind::Tool,
                "search",
                true,
                T0,
                3000,
                "",
            ),
        );
    }
    let rules = [rule(
        "name='slow'\nmetric='avg_latency'\nthreshold='1s'\ngroup_by=['tool_name']\nfilters={span_kind='tool', tool_name='!search'}",
    )];
    let fired = eval().evaluate(&rules, &roll, T0);
    assert_eq!(
        states(&fired),
        vec![(NoticeState::Firing, "tool_name=inventory".into())]
    );
    assert_eq!(fired[0].value, Some(1.5));
    assert_eq!(
        fired[0].labels.get("tool_name").map(String::as_str),
        Some("inventory")
    );

    let mut roll = Rollups::new(RollupConfig::default());
    workflows(&mut roll, "p", T0, 8, 2, "phone");
    workflows(&mut roll, "c", T0, 10, 0, "clothes");
    let rules = [rule(
        "name='phone'\nmetric='success_rate'\nop='<'\nthreshold='90%'\nfilters={'tags.category'='phone', span_kind='workflow'}",
    )];
    let fired = eval().evaluate(&rules, &roll, T0);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].value, Some(0.8));
    assert_eq!(
        fired[0].labels.get("category").map(String::as_str),
        Some("phone")
    );
    let by_cat = [rule(
        "name='cat'\nmetric='success_rate'\nop='<'\nthreshold='90%'\ngroup_by=['tags.category']\nfilters={span_kind='workflow'}",
    )];
    assert_eq!(
        states(&eval().evaluate(&by_cat, &roll, T0)),
        vec![(NoticeState::Firing, "category=phone".into())]
    );
}

#[test]
fn p95_count_tokens_and_cost_metrics() {
    let mut roll = Rollups::new(RollupConfig::default());
    for i in 0..20 {
        let mut s = span(
            &format!("l{i}"),
            SpanKind::Llm,
            "",
            true,
            T0,
            if i < 19 { 100 } else { 4000 },
            "",
        );
        s.total_tokens = Some(100);
        s.cost = Some(0.01);
        roll.apply(None, &s);
    }
    let mut ev = eval();
    let rules = [
        rule("name='p95'\nmetric='p95_latency'\nthreshold='200ms'\nfilters={span_kind='llm'}"),
        rule("name='n'\nmetric='count'\nop='>='\nthreshold=20"),
        rule("name='tok'\nmetric='tokens_sum'\nthreshold=1999"),
        rule("name='cost'\nmetric='cost_sum'\nthreshold=0.5"),
    ];
    let fired: Vec<String> = ev
        .evaluate(&rules, &roll, T0)
        .into_iter()
        .map(|n| n.rule)
        .collect();
    assert_eq!(
        fired,
        vec!["n", "tok"],
        "p95 is within 100 ms bucket, cost 0.2 < 0.5"
    );
}

#[test]
fn consecutive_failures_of_one_tool_fire_once_and_a_success_resolves() {
    let rules = [rule(
        "name='3x'\ntype='event'\nconsecutive=3\nwithin='5m'\ngroup_by=['tool_name']\nfilters={span_kind='tool'}",
    )];
    let mut roll = Rollups::new(RollupConfig::default());
    let mut ev = eval();
    let t =
        |id: &str, tool: &str, ok: bool, at: i64| span(id, SpanKind::Tool, tool, ok, at, 10, "");
    // inventory: fail, fail, ok, fail, fail → no streak of 3; coupon: fail ×2.
    for (i, ok) in [false, false, true, false, false].into_iter().enumerate() {
        roll.apply(
            None,
            &t(&format!("i{i}"), "inventory", ok, T0 + i as i64 * 1000),
        );
    }
    roll.apply(None, &t("c0", "coupon", false, T0));
    roll.apply(None, &t("c1", "coupon", false, T0 + 1000));
    assert!(ev.evaluate(&rules, &roll, T0 + 10_000).is_empty());
    roll.apply(None, &t("i5", "inventory", false, T0 + 11_000));
    let fired = ev.evaluate(&rules, &roll, T0 + 15_000);
    assert_eq!(
        states(&fired),
        vec![(NoticeState::Firing, "tool_name=inventory".into())]
    );
    assert_eq!(fired[0].value, Some(3.0));
    assert!(fired[0].runs_url.contains("tool_name=inventory"));
    // The notice links to the analysis of failures of that tool.
    let rca = &fired[0].rca_url;
    assert!(rca.contains("/rca?target=status%3Derror&scope="), "{rca}");
    assert!(rca.contains("tool_name%3D%22inventory%22"), "{rca}");
    assert!(rca.contains("&from=") && rca.contains("&to="), "{rca}");
    // More failures while firing: no second notice.
    roll.apply(None, &t("i6", "inventory", false, T0 + 16_000));
    assert!(ev.evaluate(&rules, &roll, T0 + 20_000).is_empty());
    roll.apply(None, &t("i7", "inventory", true, T0 + 21_000));
    let resolved = ev.evaluate(&rules, &roll, T0 + 30_000);
    assert_eq!(
        states(&resolved),
        vec![(NoticeState::Resolved, "tool_name=inventory".into())]
    );
}

#[test]
fn failures_spread_beyond_within_do_not_fire_and_quiet_resolves() {
    let rules = [rule(
        "name='3x'\ntype='event'\nconsecutive=3\nwithin='1m'\ngroup_by=['error_class']",
    )];
    let mut roll = Rollups::new(RollupConfig::default());
    let mut ev = eval();
    for (i, at) in [0, 40_000, 80_000].into_iter().enumerate() {
        roll.apply(
            None,
            &span(
                &format!("x{i}"),
                SpanKind::Tool,
                "inventory",
                false,
                T0 + at,
                10,
                "",
            ),
        );
    }
    assert!(
        ev.evaluate(&rules, &roll, T0 + 90_000).is_empty(),
        "3 failures over 80 s > 1m"
    );
    roll.apply(
        None,
        &span(
            "x3",
            SpanKind::Tool,
            "inventory",
            false,
            T0 + 100_000,
            10,
            "",
        ),
    );
    let fired = ev.evaluate(&rules, &roll, T0 + 100_000);
    assert_eq!(
        states(&fired),
        vec![(NoticeState::Firing, "error_class=HTTP500".into())]
    );
    let quiet = ev.evaluate(&rules, &roll, T0 + 100_000 + 61_000);
    assert_eq!(
        states(&quiet),
        vec![(NoticeState::Resolved, "error_class=HTTP500".into())]
    );
}

#[test]
fn silences_mark_matching_notices_until_they_end() {
    let rules = [rule(
        "name='r'\nmetric='count'\nthreshold=0\ngroup_by=['tool_name']",
    )];
    let mut roll = Rollups::new(RollupConfig::default());
    roll.apply(
        None,
        &span("a", SpanKind::Tool, "inventory", true, T0, 10, ""),
    );
    roll.apply(None, &span("b", SpanKind::Tool, "coupon", true, T0, 10, ""));
    let mut ev = eval();
    let ends = chrono::DateTime::from_timestamp_millis(T0 + MIN).unwrap_or_default();
    ev.state.silences.push(crate::rules::Silence {
        id: "s".into(),
        project: None,
        matchers: [
            ("alertname".to_owned(), "r".to_owned()),
            ("tool_name".to_owned(), "inventory".to_owned()),
        ]
        .into(),
        starts_at: None,
        ends_at: ends,
        created_by: String::new(),
        comment: String::new(),
    });
    let n = ev.evaluate(&rules, &roll, T0);
    let silenced: Vec<(String, bool)> = n.iter().map(|n| (n.group_text(), n.silenced)).collect();
    assert_eq!(
        silenced,
        vec![
            ("tool_name=coupon".into(), false),
            ("tool_name=inventory".into(), true)
        ]
    );
    ev.evaluate(&rules, &roll, T0 + 2 * MIN);
    assert!(ev.state.silences.is_empty(), "expired silences are pruned");
}

#[test]
fn a_firing_alert_repeats_to_channels_at_repeat_interval_but_not_its_actions() {
    let rules = [rule(
        "name='wf-fail'\nmetric='failure_rate'\nthreshold='5%'\nwindow='30m'\nrepeat_interval='10m'\n\
         filters={span_kind='workflow'}\nnotify=['ops']\nactions=['restart']",
    )];
    let mut roll = Rollups::new(RollupConfig::default());
    workflows(&mut roll, "a", T0 - 1000, 8, 2, "phone");
    let mut ev = eval();
    let first = ev.evaluate(&rules, &roll, T0);
    assert_eq!(states(&first), vec![(NoticeState::Firing, "-".into())]);
    assert_eq!(first[0].actions, vec!["restart".to_owned()]);
    assert!(ev.evaluate(&rules, &roll, T0 + 9 * MIN).is_empty(), "< 10m");
    let again = ev.evaluate(&rules, &roll, T0 + 10 * MIN);
    assert_eq!(states(&again), vec![(NoticeState::Firing, "-".into())]);
    assert_eq!(again[0].notify, vec!["ops".to_owned()]);
    assert!(
        again[0].actions.is_empty(),
        "actions ran when it first fired"
    );
    assert_eq!(
        again[0].starts_at_ms, first[0].starts_at_ms,
        "the same alert, not a new one"
    );
    assert!(ev.evaluate(&rules, &roll, T0 + 19 * MIN).is_empty());
    assert_eq!(ev.evaluate(&rules, &roll, T0 + 20 * MIN).len(), 1);

    let never = [rule(
        "name='wf-fail'\nmetric='failure_rate'\nthreshold='5%'\nwindow='30m'\nrepeat_interval='0s'\n\
         filters={span_kind='workflow'}",
    )];
    let mut ev = eval();
    assert_eq!(ev.evaluate(&never, &roll, T0).len(), 1);
    assert!(ev.evaluate(&never, &roll, T0 + 25 * MIN).is_empty());
}

/// Issue 14: one span dated 2255 (or hours ahead) moved the per-minute
/// rollups' window into the future, so a firing alert read no data and
/// resolved, and stayed silent after more traffic.
#[test]
fn a_far_future_span_does_not_resolve_a_firing_alert() {
    let rules = [rule(
        "name='wf-fail'\nmetric='failure_rate'\nthreshold='5%'\nwindow='10m'\nfilters={span_kind='workflow'}",
    )];
    let mut roll = Rollups::new(RollupConfig::default());
    workflows(&mut roll, "a", T0 - 1000, 8, 2, "phone");
    let mut ev = eval();
    let fired = ev.evaluate(&rules, &roll, T0);
    assert_eq!(states(&fired), vec![(NoticeState::Firing, "-".into())]);
    // 2255-01-01 and eight hours ahead of the evaluation clock.
    for (id, at_ms) in [("far", 8_993_721_600_000), ("tz", T0 + 8 * 60 * MIN)] {
        roll.apply(
            None,
            &span(id, SpanKind::Workflow, "", true, at_ms, 100, "phone"),
        );
    }
    workflows(&mut roll, "b", T0 + MIN, 8, 2, "phone");
    let later = ev.evaluate(&rules, &roll, T0 + 2 * MIN);
    assert!(
        later.is_empty(),
        "still firing, nothing resolved: {later:?}"
    );
    assert_eq!(
        ev.state.alerts.values().next().map(|e| e.phase),
        Some(Phase::Firing)
    );
}

#[test]
fn gauge_rules_compare_the_largest_matching_sample_per_group_and_resolve() {
    use crate::eval::gauge::Gauge;
    let r = rule(
        "name='big-table'\ntype='gauge'\ngauge='dify_database_table_size_bytes'\nthreshold=50e9\n\
         filters={table='!messages'}\ngroup_by=['table']\nsummary='table too big'",
    );
    r.validate(&[]).expect("valid");
    let rules = [r];
    let g = |table: &str, v: f64| Gauge {
        name: "dify_database_table_size_bytes".into(),
        labels: [("table".to_owned(), table.to_owned())].into(),
        value: v,
    };
    let big = vec![
        g("workflow_node_executions", 60e9),
        g("workflow_runs", 1e9),
        g("messages", 99e9),
        Gauge {
            name: "dify_database_table_rows".into(),
            ..g("workflow_runs", 1e12)
        },
    ];
    let roll = Rollups::new(RollupConfig::default());
    let mut ev = eval();
    let seen = std::cell::Cell::new(0);
    let source = |project: Option<&str>| {
        assert_eq!(project, None, "a rule over every project");
        seen.set(seen.get() + 1);
        big.clone()
    };
    let fired = ev.evaluate_with(&rules, &roll, &source, T0);
    assert_eq!(seen.get(), 1);
    assert_eq!(
        states(&fired),
        vec![(NoticeState::Firing, "table=workflow_node_executions".into())],
        "messages is filtered out, workflow_runs is under"
    );
    assert_eq!(fired[0].value, Some(60e9));
    assert_eq!(fired[0].metric, "dify_database_table_size_bytes");
    assert_eq!(fired[0].threshold, 50e9);
    // After a cleanup and VACUUM FULL, the table is small again.
    let small = vec![g("workflow_node_executions", 10e9)];
    let resolved = ev.evaluate_with(&rules, &roll, &|_| small.clone(), T0 + MIN);
    assert_eq!(
        states(&resolved),
        vec![(
            NoticeState::Resolved,
            "table=workflow_node_executions".into()
        )]
    );
    // Without a gauge source (plain evaluate) there is no data: nothing fires.
    assert!(ev.evaluate(&rules, &roll, T0 + 2 * MIN).is_empty());
}

#[test]
fn a_gauge_rule_needs_a_gauge_name_and_a_numeric_threshold() {
    let no_gauge = rule("name='x'\ntype='gauge'\nthreshold=1");
    assert!(
        no_gauge
            .validate(&[])
            .expect_err("refused")
            .to_string()
            .contains("needs `gauge`")
    );
    let pct = rule("name='x'\ntype='gauge'\ngauge='dify_database_lock_waits'\nthreshold='5%'");
    assert!(
        pct.validate(&[])
            .expect_err("refused")
            .to_string()
            .contains("numeric `threshold`")
    );
    let bad_label = rule(
        "name='x'\ntype='gauge'\ngauge='dify_database_lock_waits'\nthreshold=0\nfilters={'ta ble'='x'}",
    );
    assert!(bad_label.validate(&[]).is_err());
    let ok = rule(
        "name='x'\ntype='gauge'\ngauge='dify_database_lock_waits'\nthreshold='0'\ngroup_by=['table']",
    );
    ok.validate(&[]).expect("valid");
}
