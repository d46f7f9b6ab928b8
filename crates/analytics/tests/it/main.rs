//! Conversations over the real store: sessions with known turns, outcomes,
//! feedback and cost; the analysis recovers each figure exactly, from the
//! memtable and again from Parquet parts after a restart.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use loupe_analytics::{
    ConversationStats, ConversationsRequest, DEFAULT_GAP_NS, GroupBy, UsersRequest, conversations,
    users,
};
use loupe_model::{ProjectId, Span, SpanKind, Status};
use loupe_store::{Store, StoreConfig};

const MIN: i64 = 60_000_000_000;
const T0: i64 = 1_790_000_000_000_000_000;

fn open(dir: &std::path::Path) -> Store {
    Store::open(
        StoreConfig {
            data_dir: dir.to_owned(),
            retention_days: 0,
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .unwrap()
}

/// One turn: its run span (2 s long) and one LLM node costing 0.1 and 10
/// tokens.
fn turn(session: &str, n: usize, at: i64, category: &str, status: Status, raw: &str) -> Vec<Span> {
    let run_id = format!("{session}-run-{n}");
    let mut run = Span::new("p", run_id.clone());
    run.trace_id = Some(run_id.clone());
    run.run_id = Some(run_id.clone());
    run.session_id = Some(session.into());
    run.span_kind = Some(SpanKind::Workflow);
    run.app_name = Some("bot".into());
    run.status = Some(status);
    run.raw_status = Some(raw.into());
    run.start_time = Some(at);
    run.end_time = Some(at + 2_000_000_000);
    run.tags.insert("category".into(), category.into());
    let mut node = Span::new("p", format!("{run_id}-llm"));
    node.trace_id = Some(run_id.clone());
    node.run_id = Some(run_id.clone());
    node.parent_span_id = Some(run_id);
    node.session_id = Some(session.into());
    node.span_kind = Some(SpanKind::Llm);
    node.status = Some(Status::Ok);
    node.start_time = Some(at + 100);
    node.end_time = Some(at + 1_000_000_000);
    node.cost = Some(0.1);
    node.total_tokens = Some(10);
    vec![run, node]
}

fn feedback(session: &str, id: &str, at: i64, value: &str) -> Span {
    let mut s = Span::new("p", id);
    s.trace_id = Some(format!("{session}-run-1"));
    s.session_id = Some(session.into());
    s.span_kind = Some(SpanKind::Other);
    s.node_type = Some("score".into());
    s.start_time = Some(at);
    s.end_time = Some(at);
    s.attributes.insert("score.value".into(), value.into());
    s
}

fn workload() -> Vec<Span> {
    use Status::{Error, Ok};
    let mut spans = Vec::new();
    // s1 (phone): ok, ok, then a failure: abandoned.
    spans.extend(turn("s1", 1, T0 + MIN, "phone", Ok, "succeeded"));
    spans.extend(turn("s1", 2, T0 + 2 * MIN, "phone", Ok, "succeeded"));
    spans.extend(turn("s1", 3, T0 + 3 * MIN, "phone", Error, "failed"));
    // s2 (phone): one good turn, liked: resolved at the first turn.
    spans.extend(turn("s2", 1, T0 + 5 * MIN, "phone", Ok, "succeeded"));
    spans.push(feedback("s2", "fb-2", T0 + 6 * MIN, "like"));
    // s3 (laptop): one good turn, disliked: not resolved.
    spans.extend(turn("s3", 1, T0 + 7 * MIN, "laptop", Ok, "succeeded"));
    spans.push(feedback("s3", "fb-3", T0 + 8 * MIN, "dislike"));
    // s4 (laptop): a good turn, then one the user stopped: abandoned.
    spans.extend(turn("s4", 1, T0 + 9 * MIN, "laptop", Ok, "succeeded"));
    spans.extend(turn("s4", 2, T0 + 10 * MIN, "laptop", Error, "stopped"));
    // s5 (laptop): starts in the window, still going 10 minutes before now.
    spans.extend(turn("s5", 1, T0 + 30 * MIN, "laptop", Ok, "succeeded"));
    spans.extend(turn("s5", 2, T0 + 170 * MIN, "laptop", Error, "failed"));
    // s6: started before the window, went on inside it: not counted.
    spans.extend(turn("s6", 1, T0 - 10 * MIN, "phone", Ok, "succeeded"));
    spans.extend(turn("s6", 2, T0 + 20 * MIN, "phone", Error, "failed"));
    // A run outside any session: not a conversation.
    spans.extend(turn("", 1, T0 + 4 * MIN, "phone", Ok, "succeeded"));
    spans
}

fn request(group_by: Option<GroupBy>) -> ConversationsRequest {
    ConversationsRequest {
        from_ns: T0,
        to_ns: T0 + 60 * MIN,
        now_ns: T0 + 180 * MIN,
        gap_ns: DEFAULT_GAP_NS,
        group_by,
        limits: Default::default(),
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

fn check(total: &ConversationStats, groups: &[ConversationStats]) {
    assert_eq!(total.sessions, 5, "{total:#?}");
    assert_eq!(total.turns, 9);
    assert!((total.turns_per_session - 1.8).abs() < 1e-9);
    assert_eq!(total.failed_turns, 3, "s1's, s4's stopped turn, s5's");
    assert_eq!(total.stopped_turns, 1);
    assert_eq!(total.ended_sessions, 4, "s5 is still open");
    assert_eq!(total.abandoned_sessions, 2);
    assert!(close(total.abandonment_rate, 0.5));
    assert_eq!(total.first_turn_resolved, 1, "s2 only: s3 was disliked");
    assert!(close(total.first_turn_resolution_rate, 0.25));
    assert_eq!((total.likes, total.dislikes), (1, 1));
    assert!(close(total.satisfaction_rate, 0.5));
    assert!((total.cost - 0.9).abs() < 1e-9, "{}", total.cost);
    assert_eq!(total.tokens, 90);
    assert!(close(total.mean_turn_ms, 2_000.0));

    assert_eq!(groups.len(), 2);
    let laptop = &groups[0];
    assert_eq!(
        laptop.group.as_deref(),
        Some("laptop"),
        "most sessions first"
    );
    assert_eq!(
        (laptop.sessions, laptop.turns, laptop.ended_sessions),
        (3, 5, 2)
    );
    assert_eq!(
        (laptop.abandoned_sessions, laptop.first_turn_resolved),
        (1, 0)
    );
    assert_eq!((laptop.likes, laptop.dislikes), (0, 1));
    assert!((laptop.cost - 0.5).abs() < 1e-9);
    let phone = &groups[1];
    assert_eq!(phone.group.as_deref(), Some("phone"));
    assert_eq!(
        (phone.sessions, phone.turns, phone.ended_sessions),
        (2, 4, 2)
    );
    assert_eq!(
        (phone.abandoned_sessions, phone.first_turn_resolved),
        (1, 1)
    );
    assert!(close(phone.satisfaction_rate, 1.0));
    assert_eq!(phone.tokens, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_recover_turns_outcomes_feedback_and_cost_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let project = ProjectId::new("p").unwrap();
    let store = open(dir.path());
    store.append(workload()).await.unwrap();
    let by_category = request(Some(GroupBy::parse("tags.category").unwrap()));
    let report = conversations(&store, &project, &by_category).await.unwrap();
    assert_eq!(report.group_by.as_deref(), Some("tags.category"));
    check(&report.total, &report.groups);

    // The same from Parquet parts after a restart.
    store.shutdown().await.unwrap();
    let store = open(dir.path());
    // (Sums of costs may differ in the last bit with the order of rows.)
    let again = conversations(&store, &project, &by_category).await.unwrap();
    check(&again.total, &again.groups);
    let whole = conversations(&store, &project, &request(None))
        .await
        .unwrap();
    check(&whole.total, &report.groups);
    assert!(whole.groups.is_empty());
    let by_app = conversations(&store, &project, &request(Some(GroupBy::App)))
        .await
        .unwrap();
    assert_eq!(by_app.groups.len(), 1);
    assert_eq!(by_app.groups[0].group.as_deref(), Some("bot"));
    assert_eq!(by_app.groups[0].sessions, 5);
    store.shutdown().await.unwrap();
}

#[test]
fn only_apps_and_well_formed_tag_keys_group_conversations() {
    assert_eq!(GroupBy::parse("app").unwrap(), GroupBy::App);
    assert_eq!(
        GroupBy::parse("tags.user_tier").unwrap(),
        GroupBy::Tag("user_tier".into())
    );
    for bad in ["tags.", "tags.a'b", "user_id", "tags.x] OR 1=1 --"] {
        let err = GroupBy::parse(bad).unwrap_err().to_string();
        assert!(err.contains("app or tags.<key>"), "{bad}: {err}");
    }
}

const DAY: i64 = 24 * 60 * MIN;
const WEEK: i64 = 7 * DAY;

/// A run of `user` at `at`.
fn user_run(user: &str, n: usize, at: i64, failed: bool) -> Span {
    let id = format!("{user}-{n}");
    let mut run = Span::new("p", id.clone());
    run.trace_id = Some(id.clone());
    run.run_id = Some(id);
    run.user_id = Some(user.into());
    run.span_kind = Some(SpanKind::Workflow);
    run.status = Some(if failed { Status::Error } else { Status::Ok });
    run.start_time = Some(at);
    run.end_time = Some(at + 1_000_000_000);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_new_and_returning_comeback_after_failures_and_weekly_retention_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let project = ProjectId::new("p").unwrap();
    let store = open(dir.path());
    let h = 60 * MIN;
    store
        .append(vec![
            // u1: seen before the window; a failed visit, back the next day.
            user_run("u1", 0, T0 - 2 * WEEK, false),
            user_run("u1", 1, T0 + DAY, true),
            user_run("u1", 2, T0 + 2 * DAY, false),
            // u2: new in week 0; two runs 10 minutes apart are one visit;
            // back in week 1.
            user_run("u2", 1, T0 + h, false),
            user_run("u2", 2, T0 + h + 10 * MIN, false),
            user_run("u2", 3, T0 + WEEK + h, false),
            // u3: new in week 0, fails and never comes back.
            user_run("u3", 1, T0 + 3 * h, true),
            // u4: new in week 1, back a week and an hour later (too late).
            user_run("u4", 1, T0 + WEEK + 2 * h, false),
            user_run("u4", 2, T0 + 2 * WEEK + 3 * h, false),
            // u5: first seen after the window: not a user of it, no cohort.
            user_run("u5", 1, T0 + 3 * WEEK + h, true),
        ])
        .await
        .unwrap();
    let req = UsersRequest {
        from_ns: T0,
        to_ns: T0 + 3 * WEEK,
        now_ns: T0 + 5 * WEEK,
        gap_ns: DEFAULT_GAP_NS,
        within_ns: WEEK,
        weeks: 8,
        limits: Default::default(),
    };
    let r = users(&store, &project, &req).await.unwrap();
    assert_eq!(
        (r.new.users, r.new.runs, r.new.failed_runs),
        (3, 6, 1),
        "{r:#?}"
    );
    assert_eq!(
        (r.returning.users, r.returning.runs, r.returning.failed_runs),
        (1, 2, 1)
    );
    assert_eq!((r.after_failure.visits, r.after_failure.returned), (2, 1));
    assert_eq!(r.after_failure.return_rate, Some(0.5));
    assert_eq!((r.after_success.visits, r.after_success.returned), (5, 1));
    assert_eq!(r.after_success.return_rate, Some(0.2));
    assert_eq!(r.retention.len(), 2, "{:#?}", r.retention);
    assert_eq!(r.retention[0].week_start_ns, T0);
    assert_eq!(r.retention[0].users, 2);
    assert_eq!(r.retention[0].active, vec![2, 1, 0, 0, 0, 0]);
    assert_eq!(r.retention[1].week_start_ns, T0 + WEEK);
    assert_eq!(r.retention[1].active, vec![1, 1, 0, 0, 0]);
    let too_many = UsersRequest { weeks: 99, ..req };
    assert!(users(&store, &project, &too_many).await.is_err());
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_bin_runs_by_length_latency_and_cost_with_their_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let project = ProjectId::new("p").unwrap();
    let store = open(dir.path());
    /// (id, output chars, seconds, node cost, failed, feedback)
    type Run<'a> = (&'a str, usize, i64, f64, bool, Option<&'a str>);
    let runs: [Run<'_>; 5] = [
        ("r1", 50, 2, 0.0, false, Some("like")),
        ("r2", 50, 2, 0.0005, false, Some("like")),
        ("r3", 500, 12, 0.05, false, Some("dislike")),
        ("r4", 5_000, 40, 0.5, true, Some("0")),
        ("r5", 500, 2, 0.05, false, None),
    ];
    let mut spans = Vec::new();
    for (i, (id, chars, secs, cost, failed, fb)) in runs.into_iter().enumerate() {
        let at = T0 + i as i64 * MIN;
        let mut run = user_run("u", i, at, failed);
        run.span_id = id.into();
        run.trace_id = Some(id.into());
        run.run_id = Some(id.into());
        run.output = Some("x".repeat(chars));
        run.end_time = Some(at + secs * 1_000_000_000);
        spans.push(run);
        let mut node = Span::new("p", format!("{id}-llm"));
        node.trace_id = Some(id.into());
        node.run_id = Some(id.into());
        node.span_kind = Some(SpanKind::Llm);
        node.start_time = Some(at + 1);
        node.end_time = Some(at + 2);
        node.cost = (cost > 0.0).then_some(cost);
        spans.push(node);
        if let Some(value) = fb {
            let mut score = feedback("-", &format!("{id}-fb"), at + 5, value);
            score.trace_id = Some(id.into());
            spans.push(score);
        }
    }
    store.append(spans).await.unwrap();
    let req = loupe_analytics::RelationsRequest {
        from_ns: T0,
        to_ns: T0 + 60 * MIN,
        limits: Default::default(),
    };
    let r = loupe_analytics::relations(&store, &project, &req)
        .await
        .unwrap();
    let runs = |bins: &[loupe_analytics::Bin]| bins.iter().map(|b| b.runs).collect::<Vec<_>>();
    assert_eq!(runs(&r.answer_length), vec![2, 0, 2, 0, 1], "{r:#?}");
    assert_eq!(r.answer_length[0].label, "< 100 chars");
    assert_eq!(r.answer_length[0].satisfaction_rate, Some(1.0));
    assert_eq!(
        (r.answer_length[2].likes, r.answer_length[2].dislikes),
        (0, 1)
    );
    assert_eq!(r.answer_length[4].failure_rate, Some(1.0));
    assert_eq!(r.answer_length[4].dislikes, 1, "a score of 0 is a dislike");
    assert_eq!(runs(&r.latency), vec![0, 3, 0, 1, 1]);
    assert_eq!(r.latency[4].label, "≥ 30 s");
    assert_eq!(runs(&r.cost), vec![1, 1, 0, 2, 1]);
    assert_eq!(r.cost[0].label, "0");
    assert_eq!(
        r.cost[3].satisfaction_rate,
        Some(0.0),
        "r3 disliked, r5 silent"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_count_turn_sequences_and_what_came_before_users_left() {
    let dir = tempfile::tempdir().unwrap();
    let project = ProjectId::new("p").unwrap();
    let store = open(dir.path());
    store.append(workload()).await.unwrap();
    let req = loupe_analytics::PathsRequest {
        from_ns: T0,
        to_ns: T0 + 60 * MIN,
        now_ns: T0 + 180 * MIN,
        gap_ns: DEFAULT_GAP_NS,
        label: loupe_analytics::Label::parse("outcome").unwrap(),
        depth: 2,
        limits: Default::default(),
    };
    let r = loupe_analytics::paths(&store, &project, &req)
        .await
        .unwrap();
    let shown = |p: &[loupe_analytics::PathStats]| {
        p.iter()
            .map(|s| (s.path.join(" "), s.sessions, s.abandoned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shown(&r.paths),
        vec![
            ("ok".to_owned(), 2, 0),
            ("ok failed".to_owned(), 1, 0),
            ("ok ok …".to_owned(), 1, 1),
            ("ok stopped".to_owned(), 1, 1),
        ],
        "{r:#?}"
    );
    assert_eq!((r.paths[0].likes, r.paths[0].dislikes), (1, 1));
    assert_eq!(r.paths[1].ended, 0, "s5 is still open");
    assert_eq!(
        shown(&r.before_leaving),
        vec![
            ("… ok failed".to_owned(), 1, 1),
            ("ok stopped".to_owned(), 1, 1),
        ]
    );
    // Labelled by a business tag.
    let by_tag = loupe_analytics::PathsRequest {
        label: loupe_analytics::Label::parse("tags.category").unwrap(),
        depth: 1,
        ..req.clone()
    };
    let r = loupe_analytics::paths(&store, &project, &by_tag)
        .await
        .unwrap();
    let firsts: Vec<_> = r
        .paths
        .iter()
        .map(|p| (p.path[0].clone(), p.sessions))
        .collect();
    assert!(firsts.contains(&("laptop".to_owned(), 2)), "{firsts:?}");
    assert!(loupe_analytics::Label::parse("user_id").is_err());
    store.shutdown().await.unwrap();
}

mod budgets {
    use loupe_analytics::budgets::{BudgetConfig, BudgetState, Period, spend};

    use super::*;

    fn budget(per: Option<&str>) -> BudgetConfig {
        BudgetConfig {
            name: "llm".into(),
            project: "p".into(),
            amount: 1.0,
            period: Period::Month,
            filter: [("app_name".to_owned(), "bot".to_owned())].into(),
            per: per.map(str::to_owned),
            currency: None,
            thresholds: vec![0.8, 1.0],
            notify: vec![],
        }
    }

    #[test]
    fn periods_start_at_utc_midnight_monday_and_the_first() {
        // 2026-12-05T13:14:15Z is a Saturday.
        let now = loupe_model::time::parse_instant("2026-12-05T13:14:15Z").unwrap();
        let at = |s| loupe_model::time::parse_instant(s).unwrap();
        assert_eq!(Period::Day.start(now), at("2026-12-05T00:00:00Z"));
        assert_eq!(Period::Week.start(now), at("2026-11-30T00:00:00Z"));
        assert_eq!(Period::Month.start(now), at("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn each_threshold_notifies_once_and_the_next_period_resolves() {
        let b = budget(None);
        let mut st = BudgetState::default();
        let dec = loupe_model::time::parse_instant("2026-12-05T00:00:00Z").unwrap();
        assert!(st.step(&b, &[(None, 0.5)], dec).is_empty());
        let c = st.step(&b, &[(None, 0.85)], dec + 1);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].threshold, c[0].resolved), (0.8, false));
        assert!(st.step(&b, &[(None, 0.9)], dec + 2).is_empty(), "once");
        let c = st.step(&b, &[(None, 1.2)], dec + 3);
        assert_eq!(c.iter().map(|c| c.threshold).collect::<Vec<_>>(), vec![1.0]);
        assert!(st.step(&b, &[(None, 1.5)], dec + 4).is_empty());
        // A restart keeps the state (it is plain data the caller stores).
        let mut st: BudgetState =
            serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert!(st.step(&b, &[(None, 1.5)], dec + 5).is_empty());
        // January: December's alert resolves, nothing is spent yet.
        let jan = loupe_model::time::parse_instant("2027-01-01T00:00:01Z").unwrap();
        let c = st.step(&b, &[], jan);
        assert_eq!(c.len(), 1);
        assert!(c[0].resolved);
        assert_eq!(c[0].threshold, 1.0);
        // A jump past both thresholds notifies both, once.
        let c = st.step(&b, &[(None, 3.0)], jan + 1);
        assert_eq!(
            c.iter().map(|c| c.threshold).collect::<Vec<_>>(),
            vec![0.8, 1.0]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spend_sums_this_periods_cost_with_the_filter_per_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // Every turn's node costs 0.1; the store gives nodes their run's app
        // and tags. All 12 turns start in the same month as `now`.
        store.append(workload()).await.unwrap();
        let now = T0 + 180 * MIN;
        let whole = spend(&store, &budget(None), now, Default::default())
            .await
            .unwrap();
        assert_eq!(whole.len(), 1);
        assert!((whole[0].1 - 1.2).abs() < 1e-9, "{whole:?}");
        let mut per = budget(Some("tags.category"));
        per.filter.clear();
        let by_category = spend(&store, &per, now, Default::default()).await.unwrap();
        let get = |k: &str| {
            by_category
                .iter()
                .find(|(g, _)| g.as_deref() == Some(k))
                .map(|(_, v)| *v)
        };
        assert!(
            get("phone").is_some_and(|v| (v - 0.7).abs() < 1e-9),
            "{by_category:?}"
        );
        assert!(
            get("laptop").is_some_and(|v| (v - 0.5).abs() < 1e-9),
            "{by_category:?}"
        );
        let mut other = budget(None);
        other.filter = [("app_name".to_owned(), "other".to_owned())].into();
        assert!(
            spend(&store, &other, now, Default::default())
                .await
                .unwrap()
                .iter()
                .all(|(_, v)| *v == 0.0)
        );
        let mut bad = budget(None);
        bad.filter = [("input".to_owned(), "x".to_owned())].into();
        assert!(bad.validate().is_err());
        bad = budget(Some("session"));
        assert!(bad.validate().is_err());
        store.shutdown().await.unwrap();
    }
}

/// Every analysis the console's page asks, as JSON with floats rounded (a
/// sum of costs may differ in its last bit with the order of rows).
async fn every_analysis(store: &Store, from: i64, to: i64, now: i64) -> serde_json::Value {
    fn round(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Number(n) if n.is_f64() => {
                serde_json::json!((n.as_f64().unwrap() * 1e9).round() / 1e9)
            }
            Value::Array(a) => Value::Array(a.into_iter().map(round).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, round(v))).collect()),
            other => other,
        }
    }
    let project = ProjectId::new("p").unwrap();
    let mut out = serde_json::Map::new();
    for by in [None, Some("app"), Some("tags.category")] {
        let req = ConversationsRequest {
            from_ns: from,
            to_ns: to,
            now_ns: now,
            gap_ns: DEFAULT_GAP_NS,
            group_by: by.map(|b| GroupBy::parse(b).unwrap()),
            limits: Default::default(),
        };
        let r = conversations(store, &project, &req).await.unwrap();
        out.insert(
            format!("conversations {by:?}"),
            serde_json::to_value(r).unwrap(),
        );
    }
    for label in ["outcome", "tags.category"] {
        let req = loupe_analytics::PathsRequest {
            from_ns: from,
            to_ns: to,
            now_ns: now,
            gap_ns: DEFAULT_GAP_NS,
            label: loupe_analytics::Label::parse(label).unwrap(),
            depth: 3,
            limits: Default::default(),
        };
        let r = loupe_analytics::paths(store, &project, &req).await.unwrap();
        out.insert(format!("paths {label}"), serde_json::to_value(r).unwrap());
    }
    let req = loupe_analytics::RelationsRequest {
        from_ns: from,
        to_ns: to,
        limits: Default::default(),
    };
    let r = loupe_analytics::relations(store, &project, &req)
        .await
        .unwrap();
    out.insert("relations".into(), serde_json::to_value(r).unwrap());
    let req = UsersRequest {
        from_ns: from,
        to_ns: to,
        now_ns: now,
        gap_ns: DEFAULT_GAP_NS,
        within_ns: 2 * 60 * MIN,
        weeks: 2,
        limits: Default::default(),
    };
    let r = users(store, &project, &req).await.unwrap();
    out.insert("users".into(), serde_json::to_value(r).unwrap());
    round(serde_json::Value::Object(out))
}

/// Two stores given the same writes: one keeps the analytics' hourly
/// tables, the other has them off and reads the spans each time.
struct Twins {
    dirs: [tempfile::TempDir; 2],
    cached: Store,
    fresh: Store,
}

impl Twins {
    fn open_at(dirs: [tempfile::TempDir; 2]) -> Self {
        let cached = open(dirs[0].path());
        let fresh = open(dirs[1].path());
        fresh.set_analytics_cache_bytes(0);
        Self {
            dirs,
            cached,
            fresh,
        }
    }

    async fn append(&self, spans: Vec<Span>) {
        self.cached.append(spans.clone()).await.unwrap();
        self.fresh.append(spans).await.unwrap();
    }

    /// Both stores' answers, asserted equal; the cache's stats before and
    /// after.
    async fn check(
        &self,
        window: (i64, i64, i64),
    ) -> (serde_json::Value, loupe_store::AnalyticsCacheStats) {
        let (from, to, now) = window;
        let cached = every_analysis(&self.cached, from, to, now).await;
        let fresh = every_analysis(&self.fresh, from, to, now).await;
        assert_eq!(cached, fresh, "cached hours differ from the spans");
        assert_eq!(self.fresh.analytics_cache().fills, 0);
        (cached, self.cached.analytics_cache())
    }

    async fn restart(self) -> Self {
        self.cached.shutdown().await.unwrap();
        self.fresh.shutdown().await.unwrap();
        Self::open_at(self.dirs)
    }
}

/// The analyses read from cached hours equal the same read from the spans
/// (a twin store with the cache off), after each kind of change to an hour
/// already cached: a run updated in the memtable, a late turn, a run
/// updated in a part (a hidden row version), a node priced later, a run
/// whose heads straddle an hour, and retention dropping everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_hours_equal_a_read_of_the_spans_after_every_kind_of_change() {
    const HOUR: i64 = 60 * MIN;
    let mut twins = Twins::open_at([tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()]);
    let h0 = (T0 / HOUR + 1) * HOUR;
    // Twelve sessions over about six hours, a turn every 20 minutes, some
    // failing; users, outputs of several lengths, feedback on some.
    let mut spans = Vec::new();
    for s in 0..12usize {
        let session = format!("c{s}");
        for n in 0..3usize {
            let at = h0 + (s as i64 * 25 + n as i64 * 20) * MIN + 7_000;
            let status = if (s + n) % 4 == 3 {
                Status::Error
            } else {
                Status::Ok
            };
            let category = if s % 3 == 0 { "phone" } else { "laptop" };
            let mut turn = turn(&session, n, at, category, status, "x");
            turn[0].user_id = Some(format!("u{}", s % 5));
            turn[0].output = Some("y".repeat(40 * (s + 1)));
            spans.extend(turn);
        }
        if s % 2 == 0 {
            let value = if s % 4 == 0 { "like" } else { "dislike" };
            let at = h0 + (s as i64 * 25 + 50) * MIN;
            spans.push(feedback(&session, &format!("fb-{s}"), at, value));
        }
    }
    // A turn whose message span starts just before an hour and its run
    // span just after: one run, two hours; its priced node three hours
    // later.
    let straddle = h0 + 2 * HOUR;
    let mut two = turn("c-edge", 0, straddle - 500, "phone", Status::Ok, "x");
    let mut message = two[0].clone();
    message.span_id = "c-edge-message".into();
    message.start_time = Some(straddle - 1_000);
    two[0].start_time = Some(straddle + 1_000);
    two[1].start_time = Some(straddle + 3 * HOUR);
    two[1].end_time = Some(straddle + 3 * HOUR + 10);
    two.push(message);
    spans.extend(two);
    twins.append(spans).await;

    // The window starts inside an hour (read from the spans each time).
    let window = (h0 - 25 * MIN, h0 + 6 * HOUR + 5 * MIN, h0 + 9 * HOUR);
    let (first, filled) = twins.check(window).await;
    assert!(filled.fills >= 6 && filled.bytes > 0, "{filled:?}");
    assert_eq!(
        first["conversations None"]["total"]["sessions"],
        serde_json::json!(13),
        "{first:#}"
    );
    // Nothing changed: every hour is read from the cache.
    let (warm, stats) = twins.check(window).await;
    assert_eq!(warm, first);
    assert_eq!(stats.fills, filled.fills, "no hour refilled");
    assert!(stats.hits > filled.hits, "{stats:?}");

    // 1. A run updated in the memtable: turn c1-run-0 fails after all.
    let mut update = Span::new("p", "c1-run-0");
    update.status = Some(Status::Error);
    update.raw_status = Some("failed".into());
    twins.append(vec![update]).await;
    let (changed, stats) = twins.check(window).await;
    assert_ne!(changed, first, "the update shows");
    assert!(stats.fills > filled.fills, "its hour was refilled");

    // 2. A late turn of session c2, in its second hour.
    let late = turn("c2", 9, h0 + 80 * MIN, "laptop", Status::Error, "stopped");
    twins.append(late).await;
    let (with_late, _) = twins.check(window).await;
    assert_ne!(with_late, changed, "the late turn shows");

    // 3. From Parquet parts after a restart; then a run updated there (its
    // old row version hidden) and a node priced.
    twins = twins.restart().await;
    let (reopened, _) = twins.check(window).await;
    assert_eq!(reopened, with_late);
    let mut update = Span::new("p", "c5-run-1");
    update.end_time = Some(h0 + (5 * 25 + 20) * MIN + 90_000_000_000);
    let mut priced = Span::new("p", "c7-run-2-llm");
    priced.cost = Some(2.5);
    twins.append(vec![update, priced]).await;
    let (in_parts, _) = twins.check(window).await;
    assert_ne!(in_parts, reopened, "the updates of rows in parts show");

    // 4. Flushed, the same; retention then drops every part.
    twins.cached.flush_all().await.unwrap();
    twins.fresh.flush_all().await.unwrap();
    let (flushed, _) = twins.check(window).await;
    assert_eq!(flushed, in_parts);
    for store in [&twins.cached, &twins.fresh] {
        store.set_retention("p", Some(1)).unwrap();
        store.maintain().await.unwrap();
    }
    let (dropped, _) = twins.check(window).await;
    assert_eq!(
        dropped["conversations None"]["total"]["sessions"],
        serde_json::json!(0),
        "{dropped:#}"
    );
    twins.cached.shutdown().await.unwrap();
    twins.fresh.shutdown().await.unwrap();
}
