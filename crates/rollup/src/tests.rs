//! Unit tests: contributions, retraction on update, the cardinality guard,
//! snapshots and the exposition formats.

use loupe_model::{Span, SpanKind, Status};

use crate::expose::{Format, render};
use crate::{Histogram, OTHER, RollupConfig, Rollups};

const S: i64 = 1_000_000_000;

fn tool(id: &str, tool: &str, status: Status, dur_ms: i64) -> Span {
    let mut s = Span::new("p", id);
    s.app_id = Some("app".into());
    s.span_kind = Some(SpanKind::Tool);
    s.node_type = Some("tool".into());
    s.tool_name = Some(tool.into());
    s.status = Some(status);
    s.start_time = Some(600 * S);
    s.end_time = Some(600 * S + dur_ms * 1_000_000);
    s.tags.insert("category".into(), "phone".into());
    s
}

fn running(id: &str) -> Span {
    let mut s = tool(id, "inventory", Status::Running, 0);
    s.end_time = None;
    s
}

#[test]
fn running_then_finished_counts_once_and_leaves_no_running_gauge() {
    let mut r = Rollups::new(RollupConfig::default());
    let first = running("a");
    r.apply(None, &first);
    assert_eq!(r.totals().values().map(|m| m.running).sum::<u64>(), 1);
    let done = tool("a", "inventory", Status::Ok, 1500);
    r.apply(Some(&first), &done);
    r.apply(Some(&done), &done);
    let running: u64 = r.totals().values().map(|m| m.running).sum();
    let count: u64 = r.totals().values().map(|m| m.count).sum();
    assert_eq!((running, count), (0, 1));
    let minute: u64 = r
        .minutes()
        .values()
        .flat_map(|m| m.values())
        .map(|m| m.count)
        .sum();
    assert_eq!(minute, 1);
    let m = r.totals().values().find(|m| m.count == 1).expect("series");
    assert_eq!((m.dur_sum_us, m.hist.total()), (1_500_000, 1));
}

#[test]
fn rollups_without_an_hour_tier_count_totals_and_minutes_only() {
    let mut with = Rollups::new(RollupConfig::default());
    let mut without = Rollups::without_hour_tier(RollupConfig::default());
    let first = running("a");
    let done = tool("a", "inventory", Status::Error, 1500);
    for r in [&mut with, &mut without] {
        r.apply(None, &first);
        r.apply(Some(&first), &done);
    }
    assert_eq!(without.totals(), with.totals());
    assert_eq!(without.minutes(), with.minutes());
    assert!(!with.hours().is_empty());
    assert!(without.hours().is_empty());
    assert!(
        !without.hours().is_complete(),
        "nothing is answered from it"
    );
    assert!(without.take_dirty_days(1).is_empty());
}

#[test]
fn warmed_spans_fill_the_minute_windows_only_and_their_updates_count_once() {
    let minute_counts = |r: &Rollups| -> Vec<(i64, u64, u64)> {
        r.minutes()
            .iter()
            .map(|(m, s)| {
                let (n, e) = s
                    .values()
                    .fold((0, 0), |(n, e), v| (n + v.count, e + v.errors));
                (*m, n, e)
            })
            .collect()
    };
    let total = |r: &Rollups| r.totals().values().map(|m| m.count).sum::<u64>();
    let failed = tool("a", "inventory", Status::Error, 1500);
    let ok = tool("b", "search", Status::Ok, 300);
    // The process that stored them counted them everywhere.
    let mut before = Rollups::without_hour_tier(RollupConfig::default());
    before.apply(None, &failed);
    before.apply(None, &ok);
    // The restarted one warms its windows from the stored spans.
    let mut after = Rollups::without_hour_tier(RollupConfig::default());
    after.warm(&failed);
    after.warm(&ok);
    after.warm(&running("c"));
    assert_eq!(minute_counts(&after), minute_counts(&before));
    assert_eq!(
        minute_counts(&after)[0].2,
        1,
        "the failure is in its window"
    );
    assert_eq!(total(&after), 0, "counters start at zero");
    assert_eq!(after.totals().len(), 2, "the series exist, at zero");
    assert_eq!(
        after.recent_events().since(0).count(),
        0,
        "no events replayed"
    );
    // A stored span changed after the restart (a late cost) is retracted
    // from its minute and counted anew: once in the windows, once in the
    // counters.
    let mut priced = ok.clone();
    priced.cost = Some(0.5);
    before.apply(Some(&ok), &priced);
    after.apply_over_warmed(&ok, &priced);
    assert_eq!(minute_counts(&after), minute_counts(&before));
    assert_eq!(total(&after), 1);
    let cost: u64 = after.totals().values().map(|m| m.cost_micros).sum();
    assert_eq!(cost, 500_000);
}

#[test]
fn a_changed_final_state_moves_the_span_between_series() {
    let mut r = Rollups::new(RollupConfig::default());
    let ok = tool("a", "inventory", Status::Ok, 10);
    r.apply(None, &ok);
    let failed = tool("a", "inventory", Status::Error, 10);
    r.apply(Some(&ok), &failed);
    let by_status: Vec<_> = r
        .totals()
        .iter()
        .filter(|(_, m)| m.count > 0)
        .map(|(k, m)| (k.status.clone(), m.count, m.errors))
        .collect();
    assert_eq!(by_status, vec![("error".to_owned(), 1, 1)]);
}

#[test]
fn the_cardinality_guard_folds_new_series_and_counts_them() {
    let config = RollupConfig {
        max_series_per_app: 2,
        ..RollupConfig::default()
    };
    let mut r = Rollups::new(config);
    for (i, name) in ["t1", "t2", "t3", "t4", "t3"].iter().enumerate() {
        r.apply(None, &tool(&format!("s{i}"), name, Status::Ok, 5));
    }
    assert_eq!(r.folded_series(), 2, "t3 and t4, t3 once");
    let other = r
        .totals()
        .iter()
        .find(|(k, _)| k.tool_name == OTHER)
        .map(|(k, m)| (k.tags.clone(), m.count));
    assert_eq!(other, Some((vec![OTHER.to_owned()], 3)));
    // Retracting a folded span takes it out of the folded series.
    let t4 = tool("s3", "t4", Status::Ok, 5);
    r.apply(Some(&t4), &tool("s3", "t4", Status::Error, 5));
    let ok_other: u64 = r
        .totals()
        .iter()
        .filter(|(k, _)| k.tool_name == OTHER && k.status == "ok")
        .map(|(_, m)| m.count)
        .sum();
    assert_eq!(ok_other, 2);
}

#[test]
fn snapshots_round_trip_and_remap_changed_labels() {
    let mut r = Rollups::new(RollupConfig::default());
    r.apply(None, &tool("a", "inventory", Status::Ok, 10));
    r.note_ingested(1);
    let snap = r.snapshot(7);
    let json = serde_json::to_string(&snap).expect("json");
    let back: crate::Snapshot = serde_json::from_str(&json).expect("parse");
    let again =
        Rollups::restore(RollupConfig::default(), back.clone(), Vec::new()).expect("restore");
    assert_eq!(again.snapshot(7), snap);
    let relabelled = RollupConfig {
        labels: vec!["tier".into(), "category".into()],
        ..RollupConfig::default()
    };
    let moved = Rollups::restore(relabelled, back, Vec::new()).expect("restore");
    let tags: Vec<_> = moved.totals().keys().map(|k| k.tags.clone()).collect();
    assert_eq!(tags, vec![vec![String::new(), "phone".to_owned()]]);
}

#[test]
fn histogram_buckets_use_le_semantics_and_estimate_quantiles() {
    assert_eq!(Histogram::bucket_of(1_000), 0);
    assert_eq!(Histogram::bucket_of(1_001), 1);
    assert_eq!(
        Histogram::bucket_of(u64::MAX),
        crate::BUCKET_BOUNDS_US.len()
    );
    let mut h = Histogram::default();
    for _ in 0..10 {
        h.observe(700_000, 1, false);
    }
    let p50 = h.quantile_us(0.5).expect("some");
    assert!((500_000.0..=1_000_000.0).contains(&p50), "{p50}");
}

#[test]
fn exposition_has_the_seed_names_and_both_formats() {
    let mut r = Rollups::new(RollupConfig::default());
    r.apply(None, &tool("a", "inventory", Status::Ok, 1500));
    r.apply(None, &tool("b", "inventory", Status::Error, 500));
    let mut run = Span::new("p", "run");
    run.span_kind = Some(SpanKind::Workflow);
    run.status = Some(Status::Ok);
    run.end_time = Some(S);
    r.apply(None, &run);
    let text = render(&r, Format::Prometheus, None, &[]);
    for needle in [
        "# TYPE workflow_tool_success_total counter",
        "workflow_tool_success_total{tool_name=\"inventory\"} 1",
        "workflow_tool_failure_total{tool_name=\"inventory\"} 1",
        "workflow_tool_duration_seconds_bucket{tool_name=\"inventory\",category=\"phone\",le=\"+Inf\"} 2",
        "workflow_tool_duration_seconds_sum{tool_name=\"inventory\",category=\"phone\"} 2",
        "workflow_tool_duration_seconds_count{tool_name=\"inventory\",category=\"phone\"} 2",
        "workflow_execution_status_total{status=\"success\",category=\"\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let om = render(&r, Format::OpenMetrics, Some("p"), &[]);
    assert!(om.contains("# TYPE workflow_tool_success counter\n"));
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(
        Format::from_accept(Some("application/openmetrics-text;version=1.0.0")),
        Format::OpenMetrics
    );
}

/// `/metrics` labels the most frequent signatures of each project and sums
/// the rest under `__other__`, so messages cannot explode the series.
#[test]
fn error_signatures_are_exposed_top_n_per_project_with_the_rest_as_other() {
    use crate::expose::TOP_SIGNATURES;
    let mut r = Rollups::new(RollupConfig::default());
    let mut n = 0;
    for sig in 0..TOP_SIGNATURES + 5 {
        // Signature i fails (i + 1) times, so the first five are the rarest.
        for _ in 0..=sig {
            let mut s = tool(&format!("s{n}"), "inventory", Status::Error, 10);
            s.attributes.insert(
                loupe_model::ERROR_SIGNATURE.into(),
                format!("timeout: call {sig:03} timed out"),
            );
            r.apply(None, &s);
            n += 1;
        }
    }
    let text = render(&r, Format::Prometheus, None, &[]);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("loupe_error_signatures_total{"))
        .collect();
    assert_eq!(lines.len(), TOP_SIGNATURES + 1, "{text}");
    let last = TOP_SIGNATURES + 4;
    assert!(text.contains(&format!(
        "loupe_error_signatures_total{{project=\"p\",error_signature=\"timeout: call {last:03} timed out\"}} {}",
        last + 1
    )));
    // The five rarest: 1 + 2 + 3 + 4 + 5.
    assert!(
        text.contains(
            "loupe_error_signatures_total{project=\"p\",error_signature=\"__other__\"} 15"
        )
    );
}

/// The hour tier files spans by start hour with exact, retractable
/// measures, survives a snapshot with its day files, and stops claiming
/// completeness when the labels change or a day is lost.
#[test]
fn hour_tier_counts_each_span_once_by_start_hour_and_round_trips() {
    const H: i64 = 3_600 * S;
    let mut r = Rollups::new(RollupConfig::default());
    assert!(r.hours().is_complete());
    let first = running("a");
    r.apply(None, &first);
    let mut done = tool("a", "inventory", Status::Error, 1500);
    done.total_tokens = Some(30);
    done.cost = Some(0.001);
    r.apply(Some(&first), &done);
    let mut late = tool("b", "inventory", Status::Ok, 500);
    late.start_time = Some(2 * H + 5 * S);
    late.end_time = Some(3 * H + 5 * S);
    r.apply(None, &late);
    let sum = |r: &Rollups, from: i64, to: i64| {
        let mut m = crate::HourMeasures::default();
        for (_, _, _, x) in r.hours().range(from, to) {
            m.merge(x);
        }
        m
    };
    let first_hour = sum(&r, 0, 1);
    assert_eq!(
        (first_hour.spans, first_hour.ok, first_hour.errors),
        (1, 0, 1)
    );
    assert_eq!(first_hour.duration.sum, 1_500_000_000);
    assert_eq!(
        (first_hour.total_tokens.sum, first_hour.total_tokens.count),
        (30, 1)
    );
    assert_eq!(first_hour.input_tokens.count, 0);
    assert!((first_hour.cost() - 0.001).abs() < 1e-15);
    // Filed by start hour (2), not end hour (3).
    assert_eq!(sum(&r, 2, 3).spans, 1);
    assert_eq!(sum(&r, 3, 4).spans, 0);
    let days = r.take_dirty_days(9);
    assert_eq!(days.len(), 1);
    assert!(r.take_dirty_days(10).is_empty(), "days are handed out once");
    let snap = r.snapshot(9);
    assert_eq!(snap.day_files.get(&0), Some(&9));
    assert!(snap.hours_complete);
    let back =
        Rollups::restore(RollupConfig::default(), snap.clone(), days.clone()).expect("restore");
    assert!(back.hours().is_complete());
    assert_eq!(sum(&back, 0, 24), sum(&r, 0, 24));
    let relabelled = RollupConfig {
        labels: vec!["tier".into()],
        ..RollupConfig::default()
    };
    let moved = Rollups::restore(relabelled, snap, days).expect("restore");
    assert!(!moved.hours().is_complete());
    // Retention drops whole days of one project.
    r.expire_hours(|project, day| project == "p" && day < 1);
    assert_eq!(sum(&r, 0, 24).spans, 0);
    let gone = r.take_dirty_days(11);
    assert!(gone.is_empty(), "an emptied day has no file");
    assert!(r.snapshot(11).day_files.is_empty());
}

/// Node dimensions: kept per series with the span's name (children only),
/// retracted with it when a span is renamed, folded past the per-series
/// bound (and counted), and carried by snapshots; a snapshot written before
/// them says the tier lacks them.
#[test]
fn hour_tier_keeps_node_dimensions_bounded_and_round_trips_them() {
    let mut r = Rollups::new(RollupConfig::default());
    assert_eq!(r.hours().node_dims().from, i64::MIN);
    let child = |id: &str, name: &str| {
        let mut s = tool(id, "inventory", Status::Ok, 10);
        s.parent_span_id = Some("root".into());
        s.name = Some(name.into());
        s.app_name = Some("Shop".into());
        s.workflow_version = Some("v2".into());
        s
    };
    let mut root = tool("root", "inventory", Status::Ok, 10);
    root.name = Some("run-1234".into());
    r.apply(None, &root);
    let a = child("a", "Check stock");
    r.apply(None, &a);
    let renamed = child("a", "Check stock v2");
    r.apply(Some(&a), &renamed);
    let nodes = |r: &Rollups| {
        let mut v: Vec<(bool, String, String, u64)> = r
            .hours()
            .range(0, 1)
            .filter(|(_, _, _, m)| m.spans > 0)
            .map(|(_, _, n, m)| (n.child, n.name.clone(), n.workflow_version.clone(), m.spans))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        nodes(&r),
        vec![
            (false, String::new(), String::new(), 1),
            (true, "Check stock v2".into(), "v2".into(), 1),
        ],
        "a root keeps no name; a rename moves the span"
    );
    // Names beyond the bound fold into one node, and are counted.
    for i in 0..1100 {
        r.apply(None, &child(&format!("n{i}"), &format!("GET /items/{i}")));
    }
    let held = r.hours().range(0, 1).count();
    assert!(held <= super::hours::MAX_NODES_PER_SERIES + 1, "{held}");
    assert!(r.hours().names_folded() > 0);
    let total: u64 = r.hours().range(0, 1).map(|(_, _, _, m)| m.spans).sum();
    assert_eq!(total, 1102, "folded names still count their spans");
    // A folded span retracts from the folded node.
    let last = child("n1099", "GET /items/1099");
    let mut failed = last.clone();
    failed.status = Some(Status::Error);
    r.apply(Some(&last), &failed);
    let errors: u64 = r.hours().range(0, 1).map(|(_, _, _, m)| m.errors).sum();
    let spans: u64 = r.hours().range(0, 1).map(|(_, _, _, m)| m.spans).sum();
    assert_eq!((errors, spans), (1, 1102));

    let days = r.take_dirty_days(3);
    let snap = r.snapshot(3);
    let back =
        Rollups::restore(RollupConfig::default(), snap.clone(), days.clone()).expect("restore");
    assert_eq!(nodes(&back), nodes(&r));
    assert_eq!(back.hours().node_dims().from, i64::MIN);
    assert_eq!(back.hours().names_folded(), r.hours().names_folded());
    // Folds are kept by hour: plans over other hours still name `name`.
    assert!(back.hours().name_folded_in(0, 1) && !back.hours().name_folded_in(1, 100));
    // A snapshot that counted folds but not their hours: every hour held,
    // and none after.
    let mut legacy = serde_json::to_value(&snap).expect("json");
    let legacy_obj = legacy.as_object_mut().expect("object");
    assert!(legacy_obj.remove("hours_name_fold_hours").is_some());
    let legacy: crate::Snapshot = serde_json::from_value(legacy).expect("legacy snapshot");
    let legacy = Rollups::restore(RollupConfig::default(), legacy, days.clone()).expect("restore");
    assert!(legacy.hours().name_folded_in(0, 1) && !legacy.hours().name_folded_in(5, 6));
    let mut old = serde_json::to_value(&snap).expect("json");
    let obj = old.as_object_mut().expect("object");
    obj.remove("hours_node_dims_from");
    obj.remove("hours_names_folded");
    let old: crate::Snapshot = serde_json::from_value(old).expect("older snapshot");
    // Day files of that build hold no node dimensions.
    let mut days = days;
    for s in days
        .iter_mut()
        .flat_map(|d| &mut d.hours)
        .flat_map(|h| &mut h.1)
    {
        s.node = crate::NodeDims::default();
    }
    let mut older = Rollups::restore(RollupConfig::default(), old, days).expect("restore");
    // Spans of hour 0 were counted before: node dimensions from hour 1 on,
    // and they stay there.
    assert_eq!(older.hours().node_dims().from, 1);
    // An update of one of them is retracted from where it was counted.
    let totals = |r: &Rollups| {
        r.hours()
            .range(0, 1)
            .fold((0, 0), |(s, e), (_, _, _, m)| (s + m.spans, e + m.errors))
    };
    assert_eq!(totals(&older), (1102, 1));
    let mut failed_a = renamed.clone();
    failed_a.status = Some(Status::Error);
    older.apply(Some(&renamed), &failed_a);
    assert_eq!(totals(&older), (1102, 2));
    let mut later = child("z", "Later");
    later.start_time = Some(3 * 3_600 * S);
    older.apply(None, &later);
    let days = older.take_dirty_days(4);
    let again =
        Rollups::restore(RollupConfig::default(), older.snapshot(4), days).expect("restore");
    assert_eq!(again.hours().node_dims().from, 1);
}

/// Tags kept beside the labels: values per node, realigned when the list
/// changes (a kept tag keeps its history, a new one starts at the next
/// hour), folded and counted past the per-series bound.
#[test]
fn hour_tags_are_kept_per_node_realigned_on_restore_and_bounded() {
    let config = |tags: &[&str]| RollupConfig {
        hour_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..RollupConfig::default()
    };
    let mut r = Rollups::new(config(&["tier", "channel"]));
    assert_eq!(r.hours().tags(), ["tier", "channel"]);
    let span = |id: &str, tier: &str| {
        let mut s = tool(id, "inventory", Status::Ok, 10);
        s.tags.insert("tier".into(), tier.into());
        s.tags.insert("channel".into(), "web".into());
        s
    };
    r.apply(None, &span("a", "vip"));
    r.apply(None, &span("b", "vip"));
    r.apply(None, &span("c", "new"));
    let tiers = |r: &Rollups, i: usize| {
        let mut by = std::collections::BTreeMap::<String, u64>::new();
        for (_, _, n, m) in r.hours().range(0, 1) {
            *by.entry(n.tag(i).to_owned()).or_default() += m.spans;
        }
        by.into_iter().collect::<Vec<_>>()
    };
    assert_eq!(tiers(&r, 0), [("new".into(), 1), ("vip".into(), 2)]);
    assert_eq!(r.hours().tag_kept(0).from, i64::MIN);

    let days = r.take_dirty_days(2);
    let mut back = Rollups::restore(config(&["region", "tier"]), r.snapshot(2), days.clone())
        .expect("restore");
    // `channel`, no longer configured, is kept after them (its history).
    assert_eq!(back.hours().tags(), ["region", "tier", "channel"]);
    assert_eq!(tiers(&back, 1), tiers(&r, 0), "tier keeps its values");
    assert_eq!(back.hours().tag_kept(1).from, i64::MIN, "and its history");
    assert_eq!(tiers(&back, 0), [(String::new(), 3)], "region was not kept");
    assert_eq!(
        back.hours().tag_kept(0).from,
        1,
        "region counts from the next hour"
    );
    assert_eq!(back.hours().tag_index("channel"), Some(2));
    assert_eq!(tiers(&back, 2), [("web".to_owned(), 3)]);
    assert_eq!(back.hours().tag_kept(2).from, i64::MIN);
    // Restored again before any write: the day file, still in its own
    // order, is read by that order, not by the snapshot's new list.
    let again = Rollups::restore(config(&["region", "tier"]), back.snapshot(2), days)
        .expect("restore again");
    assert_eq!(tiers(&again, 1), tiers(&r, 0));
    assert_eq!(tiers(&again, 2), [("web".to_owned(), 3)]);
    // A span of that hour updated now (with a region it had before) is
    // retracted from where it was counted: no span counted twice.
    let mut old = span("a", "vip");
    old.tags.insert("region".into(), "eu".into());
    let mut failed = old.clone();
    failed.status = Some(Status::Error);
    back.apply(Some(&old), &failed);
    let sum = |r: &Rollups| {
        r.hours()
            .range(0, 1)
            .fold((0, 0), |(s, e), (_, _, _, m)| (s + m.spans, e + m.errors))
    };
    assert_eq!(sum(&back), (3, 1));
    // A span of that hour first seen now (a late root), then finished:
    // counted as the hour's others were, so both writes meet.
    let mut late = span("late", "vip");
    late.tags.insert("region".into(), "eu".into());
    late.status = Some(Status::Running);
    let mut done = late.clone();
    done.status = Some(Status::Error);
    back.apply(None, &late);
    back.apply(Some(&late), &done);
    assert_eq!(sum(&back), (4, 2));
    assert_eq!(
        tiers(&back, 0),
        [(String::new(), 4)],
        "region stays unknown there"
    );

    // Nodes past the bound fold every tag they have (ids in one tag), and
    // each tag counts it.
    for i in 0..1100 {
        r.apply(None, &span(&format!("u{i}"), &format!("user-{i}")));
    }
    assert!(r.hours().tag_folded_in(0, 0, 1) && r.hours().tag_folded_in(1, 0, 1));
    // Only that hour: plans over others are still answered.
    assert!(!r.hours().tag_folded_in(0, 1, 100));
    let held = r.hours().range(0, 1).count();
    assert!(held <= super::hours::MAX_NODES_PER_SERIES + 1, "{held}");
    let total: u64 = r.hours().range(0, 1).map(|(_, _, _, m)| m.spans).sum();
    assert_eq!(total, 1103);
}

/// A dimension joining a tier counts from the hour after those it holds,
/// but never from later than the next hour of the clock: hours dated after
/// it (a span from the future) stay without it, alone.
#[test]
fn a_joining_dimension_is_kept_from_the_next_hour_and_not_in_future_hours() {
    use crate::hours::Kept;
    let k = Kept::joining(&[0, 1, 1_000_000], 5);
    assert_eq!(k.from, 6);
    assert!(k.holds(6) && k.holds(7) && !k.holds(1) && !k.holds(1_000_000));
    assert!(k.holds_over(6, 100) && !k.holds_over(6, 2_000_000) && !k.holds_over(5, 10));
    let k = Kept::joining(&[0, 1], 5);
    assert_eq!((k.from, k.without.len()), (2, 0));
    assert!(Kept::joining(&[], 5).holds(i64::MIN));
}

/// A tag dropped at the bound and configured again later: the day files
/// written while it was kept still name its values, but the tier counts
/// it only from its return, so those hours read it as unknown and a later
/// write there meets the entry that holds the span.
#[test]
fn a_tag_that_returns_reads_unknown_in_the_hours_it_missed() {
    let config = |tags: &[String]| RollupConfig {
        hour_tags: tags.to_vec(),
        ..RollupConfig::default()
    };
    let x = vec!["x".to_owned()];
    let mut r = Rollups::new(config(&x));
    let mut s = tool("a", "inventory", Status::Ok, 10);
    s.tags.insert("x".into(), "1".into());
    r.apply(None, &s);
    let days = r.take_dirty_days(2);
    let others: Vec<String> = (0..super::hours::MAX_HOUR_TAGS)
        .map(|i| format!("t{i}"))
        .collect();
    let without = Rollups::restore(config(&others), r.snapshot(2), days.clone()).expect("restore");
    assert_eq!(without.dropped_hour_tags(), ["x"]);
    assert_eq!(without.hours().tag_index("x"), None);
    let mut back = Rollups::restore(config(&x), without.snapshot(3), days).expect("restore");
    // x comes first; of the sixteen kept before, the last has no room.
    assert_eq!(back.hours().tags()[..2], ["x", "t0"]);
    assert_eq!(back.dropped_hour_tags(), ["t15"]);
    assert!(!back.hours().tag_kept(0).holds(0));
    let values = |r: &Rollups| {
        r.hours()
            .range(0, 1)
            .filter(|(_, _, _, m)| m.spans > 0)
            .map(|(_, _, n, m)| (n.tag(0).to_owned(), m.spans, m.errors))
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&back), [(String::new(), 1, 0)]);
    let mut failed = s.clone();
    failed.status = Some(Status::Error);
    back.apply(Some(&s), &failed);
    assert_eq!(values(&back), [(String::new(), 1, 1)]);
}

/// A `from` an older build pushed to a future-dated hour is brought back
/// to the clock's next hour; the held hours in between stay without.
#[test]
fn a_from_pinned_in_the_future_comes_back_to_the_clock() {
    let mut r = Rollups::new(RollupConfig::default());
    let now_hour = loupe_model::time::now_ns().div_euclid(3_600 * S);
    let future = now_hour + 1_000;
    let mut ahead = tool("ahead", "inventory", Status::Ok, 10);
    ahead.start_time = Some(future * 3_600 * S);
    ahead.end_time = Some(future * 3_600 * S + 1_000);
    r.apply(None, &tool("now", "inventory", Status::Ok, 10));
    r.apply(None, &ahead);
    let days = r.take_dirty_days(2);
    let mut snap = r.snapshot(2);
    snap.hours_node_dims_from = Some(future + 1);
    let back = Rollups::restore(RollupConfig::default(), snap, days).expect("restore");
    let kept = back.hours().node_dims();
    assert_eq!(kept.from, now_hour + 1);
    assert!(!kept.holds(0) && !kept.holds(future) && kept.holds(now_hour + 2));
    assert!(kept.holds_over(now_hour + 1, future) && !kept.holds_over(now_hour + 1, future + 1));
}
