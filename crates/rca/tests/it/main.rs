//! End-to-end attribution over generated workloads with injected causes:
//! the real store, the real pipeline (tag rules, error signatures), and
//! `loupe-gen`'s fault windows, with the generator's own background
//! failures as noise.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use loupe_gen::{DEFAULT_START_NS, Fault, GenConfig};
use loupe_model::{ProjectId, Span, Status};
use loupe_normalise::tags::TagRules;
use loupe_pipeline::Pipeline;
use loupe_rca::{Finding, RcaReport, RcaRequest, analyse};
use loupe_store::{Store, StoreConfig};

const HOUR: i64 = 3_600_000_000_000;
const MIN: i64 = 60_000_000_000;
const T0: i64 = DEFAULT_START_NS;

/// A store holding `hours` of generated runs (1,000 an hour) with `faults`,
/// written through the pipeline as every source is.
async fn workload(dir: &std::path::Path, hours: i64, faults: Vec<Fault>) -> Arc<Store> {
    let store = Arc::new(
        Store::open(
            StoreConfig {
                data_dir: dir.to_owned(),
                retention_days: 0,
                ..StoreConfig::default()
            },
            // `category` a label, `tier` kept by the hour tier only (as
            // `loupe serve` keeps the tag rules' tags): both read from it.
            loupe_rollup::RollupConfig {
                labels: vec!["category".into()],
                hour_tags: vec!["tier".into()],
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let rules = TagRules::new(&loupe_gen::tag_rules()).unwrap();
    let pipeline = Pipeline::new(store.clone(), rules);
    let config = GenConfig {
        seed: 7,
        runs: (hours * 1_000) as usize,
        start_ns: T0,
        spread_ns: hours * HOUR,
        project: "default".into(),
        faults,
    };
    let mut batch = Vec::new();
    for run in loupe_gen::runs(&config) {
        batch.extend(run.spans);
        if batch.len() > 5_000 {
            pipeline.write(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    pipeline.write(batch).await.unwrap();
    store
}

fn request(from: i64, to: i64) -> RcaRequest {
    RcaRequest {
        from_ns: from,
        to_ns: to,
        ..RcaRequest::default()
    }
}

fn value<'a>(f: &'a Finding, field: &str) -> Option<&'a str> {
    f.conditions
        .iter()
        .find(|c| c.field == field)
        .map(|c| c.value.as_str())
}

fn show(r: &RcaReport) -> String {
    loupe_rca::render_text(r)
}

/// The exemplar runs really show the cause: the run holds a failed span of
/// the tool, and the run is of the category.
async fn assert_exemplars_show(store: &Store, f: &Finding, tool: &str, category: Option<&str>) {
    assert!(!f.exemplars.is_empty(), "no exemplars for {f:?}");
    let project = ProjectId::default_project();
    for ex in &f.exemplars {
        let spans: Vec<Span> = loupe_backend::SpanReader::trace(store, &project, &ex.run_id)
            .await
            .unwrap();
        let failed = spans.iter().find(|s| s.span_id == ex.span_id).unwrap();
        assert_eq!(failed.status, Some(Status::Error), "{ex:?}");
        assert_eq!(failed.tool_name.as_deref(), Some(tool), "{ex:?}");
        if let Some(c) = category {
            assert_eq!(failed.tags.get("category").map(String::as_str), Some(c));
        }
        assert!(
            ex.path
                .last()
                .is_some_and(|p| p.starts_with(tool) && p.ends_with('✗')),
            "the path ends at the failure: {:?}",
            ex.path
        );
    }
}

/// A cause that is a combination of two dimensions (inventory calls of
/// phone runs) is the top finding, with both conditions, the start and end
/// of the fault window, and exemplars that show it; the quiet hour before
/// reports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_dimension_cause_is_the_top_finding_and_a_quiet_window_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut fault = Fault::timeout(
        "inventory",
        Some("phone"),
        T0 + 2 * HOUR,
        T0 + 2 * HOUR + 30 * MIN,
    );
    fault.error_rate = 0.9;
    let store = workload(dir.path(), 3, vec![fault]).await;
    let project = ProjectId::default_project();

    let report = analyse(
        store.as_ref(),
        &project,
        &request(T0 + 2 * HOUR, T0 + 3 * HOUR),
    )
    .await
    .unwrap();
    let text = show(&report);
    // Every dimension is one the hour tier keeps (the tags are labels), and
    // the window is whole hours: the four joint tables come from the tier.
    assert_eq!(
        report.stats.from_rollups, 4,
        "{:?} over {:?}",
        report.stats, report.dimensions
    );
    let top = report.findings.first().unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(top, "tool_name"), Some("inventory"), "{text}");
    assert_eq!(value(top, "tags.category"), Some("phone"), "{text}");
    assert!(
        top.lift > 5.0 && top.share_of_change.unwrap() > 0.6,
        "{text}"
    );
    let started = top.started_ns.unwrap_or_else(|| panic!("no start: {text}"));
    assert!((started - (T0 + 2 * HOUR)).abs() <= 5 * MIN, "{text}");
    let ended = top.ended_ns.unwrap_or_else(|| panic!("no end: {text}"));
    assert!(
        (ended - (T0 + 2 * HOUR + 30 * MIN)).abs() <= 5 * MIN,
        "{text}"
    );
    assert!(top.sentence.contains("tool_name=inventory"), "{text}");
    assert_exemplars_show(&store, top, "inventory", Some("phone")).await;
    // Every other finding is far smaller than the cause.
    for f in &report.findings[1..] {
        assert!(f.excess < top.excess / 4.0, "{text}");
    }

    let quiet = analyse(store.as_ref(), &project, &request(T0 + HOUR, T0 + 2 * HOUR))
        .await
        .unwrap();
    assert!(quiet.findings.is_empty(), "{}", show(&quiet));
    assert!(
        quiet.headline.contains("nothing to report"),
        "{}",
        quiet.headline
    );
}

/// Two causes at once (payment failing for everyone, inventory failing
/// for laptop runs) are both found, each with its own conditions, and the
/// failures that follow them in the same runs are not reported as causes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_causes_at_once_are_each_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut payment = Fault::timeout("payment", None, T0 + HOUR, T0 + 2 * HOUR);
    payment.error_rate = 0.5;
    payment.error = "payment gateway returned HTTP 502 Bad Gateway for order 8812".into();
    let mut inventory = Fault::timeout("inventory", Some("laptop"), T0 + HOUR, T0 + 2 * HOUR);
    inventory.error_rate = 0.9;
    let store = workload(dir.path(), 2, vec![payment, inventory]).await;
    let project = ProjectId::default_project();

    let report = analyse(store.as_ref(), &project, &request(T0 + HOUR, T0 + 2 * HOUR))
        .await
        .unwrap();
    let text = show(&report);
    println!("{text}");
    assert!(report.findings.len() >= 2, "{text}");
    let top2 = &report.findings[..2];
    let pay = top2
        .iter()
        .find(|f| value(f, "tool_name") == Some("payment"))
        .unwrap_or_else(|| panic!("payment not in the top two: {text}"));
    assert_eq!(
        value(pay, "tags.category"),
        None,
        "payment fails for all: {text}"
    );
    let inv = top2
        .iter()
        .find(|f| value(f, "tool_name") == Some("inventory"))
        .unwrap_or_else(|| panic!("inventory not in the top two: {text}"));
    assert_eq!(value(inv, "tags.category"), Some("laptop"), "{text}");
    assert_exemplars_show(&store, pay, "payment", None).await;
    assert_exemplars_show(&store, inv, "inventory", Some("laptop")).await;
    // The signature groups the payment messages whatever the order id.
    assert!(
        report.findings.iter().any(|f| value(f, "error_signature")
            == Some("http_502: payment gateway returned HTTP <n> Bad Gateway for order <n>")),
        "{text}"
    );
}

/// A latency target (slower than 3 s) finds the slowed tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_target_finds_the_slowed_tool() {
    let dir = tempfile::tempdir().unwrap();
    let mut slow = Fault::timeout("logistics", None, T0 + HOUR, T0 + 2 * HOUR);
    slow.error_rate = 0.0;
    let store = workload(dir.path(), 2, vec![slow]).await;
    let project = ProjectId::default_project();
    let req = RcaRequest {
        target: "duration>3s".into(),
        ..request(T0 + HOUR, T0 + 2 * HOUR)
    };
    let report = analyse(store.as_ref(), &project, &req).await.unwrap();
    let text = show(&report);
    let top = report.findings.first().unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(top, "tool_name"), Some("logistics"), "{text}");
}

/// Failures that happen together in runs are reported with their order:
/// 40 runs where inventory timed out and then payment failed, 10 where
/// only inventory did (the generator stops a run at its first failure, so
/// these runs are written by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_in_the_same_runs_are_reported_together_in_order() {
    use loupe_model::SpanKind;
    let dir = tempfile::tempdir().unwrap();
    let store = workload(dir.path(), 1, Vec::new()).await;
    let rules = TagRules::new(&loupe_gen::tag_rules()).unwrap();
    let pipeline = Pipeline::new(store.clone(), rules);
    let mut spans = Vec::new();
    for i in 0..50 {
        let at = T0 + 2 * HOUR + i * MIN;
        let run = format!("cooccur-{i}");
        let mut root = Span::new("default", format!("{run}-wf"));
        root.trace_id = Some(run.clone());
        root.run_id = Some(run.clone());
        root.span_kind = Some(SpanKind::Workflow);
        root.status = Some(Status::Error);
        root.start_time = Some(at);
        root.end_time = Some(at + 3_000_000_000);
        spans.push(root);
        let failed = |id: &str, tool: &str, offset: i64, message: &str| {
            let mut s = Span::new("default", format!("{run}-{id}"));
            s.trace_id = Some(run.clone());
            s.run_id = Some(run.clone());
            s.parent_span_id = Some(format!("{run}-wf"));
            s.span_kind = Some(SpanKind::Tool);
            s.tool_name = Some(tool.into());
            s.status = Some(Status::Error);
            s.error_message = Some(message.into());
            s.start_time = Some(at + offset);
            s.end_time = Some(at + offset + 100_000_000);
            s
        };
        spans.push(failed(
            "inv",
            "inventory",
            0,
            "inventory service timed out after 5s",
        ));
        if i < 40 {
            spans.push(failed(
                "pay",
                "payment",
                1_000_000_000,
                "payment gateway returned HTTP 502",
            ));
        }
    }
    pipeline.write(spans).await.unwrap();
    let project = ProjectId::default_project();
    let report = analyse(
        store.as_ref(),
        &project,
        &request(T0 + 2 * HOUR, T0 + 3 * HOUR),
    )
    .await
    .unwrap();
    let text = show(&report);
    let pair = report
        .co_occurrence
        .iter()
        .find(|c| c.first == "inventory: timeout" && c.then == "payment: http_502")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(pair.runs, 40, "{text}");
    assert!((pair.given_first - 0.8).abs() < 1e-9, "{text}");
    assert_eq!(pair.first_precedes, 1.0, "{text}");
    assert!(pair.sentence.starts_with("In 40 runs"), "{}", pair.sentence);
}

/// Over six hours the change is found on whole-hour buckets and its edges
/// placed to the minute: a fault from 08:20 to 09:35 into the run is
/// reported starting and ending within three minutes of those times, not
/// at the hours around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_hours_the_change_is_placed_to_the_minute() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (T0 + 8 * HOUR + 20 * MIN, T0 + 9 * HOUR + 35 * MIN);
    let mut fault = Fault::timeout("inventory", Some("phone"), from, to);
    fault.error_rate = 0.9;
    let store = workload(dir.path(), 13, vec![fault]).await;
    let report = analyse(
        store.as_ref(),
        &ProjectId::default_project(),
        &request(T0 + 7 * HOUR, T0 + 13 * HOUR),
    )
    .await
    .unwrap();
    let text = show(&report);
    let top = report.findings.first().unwrap_or_else(|| panic!("{text}"));
    assert_eq!(value(top, "tool_name"), Some("inventory"), "{text}");
    let started = top.started_ns.unwrap_or_else(|| panic!("no start: {text}"));
    assert!((started - from).abs() <= 3 * MIN, "start {started}: {text}");
    let ended = top.ended_ns.unwrap_or_else(|| panic!("no end: {text}"));
    assert!((ended - to).abs() <= 3 * MIN, "end {ended}: {text}");
}
