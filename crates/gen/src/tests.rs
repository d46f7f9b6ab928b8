//! Determinism, shape, fault injection and agreement of the three forms.

use std::collections::{BTreeMap, HashSet};

use loupe_model::{SpanKind, Status};

use super::*;

const HOUR: i64 = 3_600_000_000_000;

fn config(seed: u64, runs: usize) -> GenConfig {
    GenConfig {
        seed,
        runs,
        ..GenConfig::default()
    }
}

#[test]
fn the_same_config_gives_the_same_runs_and_another_seed_different_ones() {
    let a: Vec<Run> = runs(&config(7, 50)).collect();
    let b: Vec<Run> = runs(&config(7, 50)).collect();
    let c: Vec<Run> = runs(&config(8, 50)).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let ids = |r: &[Run]| r.iter().map(|r| r.run_id.clone()).collect::<HashSet<_>>();
    assert!(ids(&a).is_disjoint(&ids(&c)));
    let lf = |s| langfuse::batches(&config(s, 20), 5).collect::<Vec<_>>();
    assert_eq!(lf(7), lf(7));
    let ot = |s| otlp::requests(&config(s, 20), 5).collect::<Vec<_>>();
    assert_eq!(ot(7), ot(7));
}

#[test]
fn every_run_has_one_workflow_root_and_consistent_ids() {
    let cfg = config(1, 300);
    let mut last_start = i64::MIN;
    let mut node_types = HashSet::new();
    let mut failed = 0;
    for run in runs(&cfg) {
        let workflows: Vec<_> = run
            .spans
            .iter()
            .filter(|s| s.span_kind == Some(SpanKind::Workflow))
            .collect();
        assert_eq!(workflows.len(), 1, "run {}", run.run_id);
        let wf = workflows[0];
        assert!(
            wf.start_time.unwrap_or(0) >= last_start,
            "runs are in time order"
        );
        last_start = wf.start_time.unwrap_or(0);
        assert!(
            wf.start_time >= Some(cfg.start_ns)
                && wf.start_time < Some(cfg.start_ns + cfg.spread_ns)
        );
        let input: serde_json::Value =
            serde_json::from_str(wf.input.as_deref().unwrap_or("")).expect("json input");
        assert!(CATEGORIES.contains(&input["category"].as_str().unwrap_or("")));
        assert!(TIERS.contains(&input["profile"]["tier"].as_str().unwrap_or("")));
        assert_eq!(input, run.inputs);
        assert!(wf.workflow_id.is_some() && wf.workflow_version.is_some() && wf.app_id.is_some());
        let roots = run
            .spans
            .iter()
            .filter(|s| s.parent_span_id.is_none())
            .count();
        assert_eq!(roots, 1);
        let ids: HashSet<_> = run.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids.len(), run.spans.len(), "span ids unique");
        for s in &run.spans {
            if let Some(p) = &s.parent_span_id {
                assert!(ids.contains(p.as_str()), "parent of {:?} exists", s.name);
            }
            assert_eq!(s.run_id.as_deref(), Some(run.run_id.as_str()));
            assert_eq!(s.trace_id.as_deref(), Some(run.trace_id.as_str()));
            assert_eq!(s.project, "default");
            assert!(s.user_id.is_some() && s.session_id.is_some());
            assert!(s.start_time <= s.end_time);
            if let Some(t) = &s.node_type {
                node_types.insert(t.clone());
            }
            if s.span_kind == Some(SpanKind::Llm) {
                assert!(s.model_name.is_some() && s.model_provider.is_some());
                assert!(s.input_tokens > Some(0) && s.cost.is_some());
                assert_eq!(
                    s.total_tokens,
                    Some(s.input_tokens.unwrap_or(0) + s.output_tokens.unwrap_or(0))
                );
            }
            if s.span_kind == Some(SpanKind::Tool) {
                assert!(
                    TOOLS.contains(&s.tool_name.as_deref().unwrap_or("")),
                    "{:?}",
                    s.tool_name
                );
            }
            if s.status == Some(Status::Error) {
                assert!(s.error_message.is_some());
            }
        }
        if wf.status == Some(Status::Error) {
            failed += 1;
            assert!(
                run.spans
                    .iter()
                    .any(|s| s.node_type.is_some() && s.status == Some(Status::Error))
            );
        }
    }
    for t in [
        "start",
        "llm",
        "knowledge-retrieval",
        "tool",
        "if-else",
        "http-request",
        "end",
    ] {
        assert!(node_types.contains(t), "{t} missing");
    }
    assert!((5..100).contains(&failed), "{failed} failed runs of 300");
}

#[test]
fn retrieval_sometimes_fails_with_http_500_and_texts_are_realistic() {
    let spans: Vec<_> = runs(&config(3, 600)).flat_map(|r| r.spans).collect();
    assert!(spans.iter().any(|s| {
        s.node_type.as_deref() == Some("knowledge-retrieval")
            && s.error_message
                .as_deref()
                .is_some_and(|m| m.contains("500"))
    }));
    let outputs: Vec<usize> = spans
        .iter()
        .filter(|s| {
            s.node_type.as_deref() == Some("knowledge-retrieval") && s.status == Some(Status::Ok)
        })
        .map(|s| s.output.as_deref().map_or(0, str::len))
        .collect();
    assert!(
        outputs.iter().all(|n| (300..6000).contains(n)),
        "{outputs:?}"
    );
    let llm_ms: Vec<i64> = spans
        .iter()
        .filter(|s| s.span_kind == Some(SpanKind::Llm))
        .filter_map(|s| s.duration_ns())
        .map(|d| d / 1_000_000)
        .collect();
    assert!(llm_ms.iter().all(|ms| (50..60_000).contains(ms)));
}

#[test]
fn faults_apply_only_in_their_window_and_category_at_their_rate() {
    let mut cfg = config(11, 3000);
    let (from, to) = (cfg.start_ns + 6 * HOUR, cfg.start_ns + 12 * HOUR);
    let mut fault = Fault::timeout("inventory", Some("phone"), from, to);
    fault.error_rate = 0.6;
    fault.error = "FAULT: inventory timed out".into();
    cfg.faults = vec![fault];
    let (mut hit, mut affected) = (0u32, 0u32);
    let mut slow = Vec::new();
    for run in runs(&cfg) {
        let category = run.inputs["category"].as_str().unwrap_or("").to_owned();
        for s in run.spans.iter().filter(|s| s.tool_name.is_some()) {
            let start = s.start_time.unwrap_or(0);
            let in_scope = s.tool_name.as_deref() == Some("inventory")
                && category == "phone"
                && (from..to).contains(&start);
            let faulted = s.error_message.as_deref() == Some("FAULT: inventory timed out");
            assert!(!faulted || in_scope, "fault outside its scope");
            if in_scope {
                affected += 1;
                hit += u32::from(faulted);
                slow.push(s.duration_ns().unwrap_or(0));
            }
        }
    }
    assert!(affected >= 30, "only {affected} affected calls");
    let n = f64::from(affected);
    let rate = f64::from(hit) / n;
    let tolerance = 4.0 * (0.6 * 0.4 / n).sqrt();
    assert!(
        (rate - 0.6).abs() <= tolerance,
        "rate {rate} over {affected} calls"
    );
    assert!(
        slow.iter().all(|d| *d >= 5_000_000_000),
        "latency added to every affected call"
    );
}

#[test]
fn fault_specs_parse() {
    let f = Fault::parse(
        "tool=inventory,category=phone,from=2026-01-01T06:00:00Z,to=1767261600000000000,error_rate=0.8,latency=2s",
        (0, 1),
    )
    .expect("parse");
    assert_eq!(f.tool, "inventory");
    assert_eq!(f.category.as_deref(), Some("phone"));
    assert_eq!(f.from_ns, DEFAULT_START_NS + 6 * HOUR);
    assert_eq!(f.to_ns, DEFAULT_START_NS + 10 * HOUR);
    assert_eq!(f.extra_latency_ns, 2_000_000_000);
    assert!((f.error_rate - 0.8).abs() < 1e-12);
    assert!(Fault::parse("category=phone", (0, 1)).is_err());
    assert!(Fault::parse("tool=x,error_rate=2", (0, 1)).is_err());
    assert!(Fault::parse("tool=x,bogus=1", (0, 1)).is_err());
}

#[test]
fn the_otlp_form_normalises_back_to_the_direct_spans() {
    let cfg = config(5, 40);
    let direct: Vec<Run> = runs(&cfg).collect();
    let mut by_trace: BTreeMap<String, Vec<loupe_model::Span>> = BTreeMap::new();
    let mut total = 0;
    // As one server receives them: one id cache across requests.
    let ids = loupe_normalise::otel::IdCache::default();
    for request in otlp::requests(&cfg, 7) {
        total += otlp::span_count(&request);
        let out = loupe_ingest::otlp::normalise_with(
            "default",
            request.into(),
            &loupe_ingest::IngestLimits::default(),
            None,
            Some(&ids),
        );
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        for s in out.spans {
            by_trace
                .entry(s.trace_id.clone().unwrap_or_default())
                .or_default()
                .push(s);
        }
    }
    assert_eq!(total, direct.iter().map(|r| r.spans.len()).sum::<usize>());
    for run in &direct {
        let mut spans = by_trace.remove(&run.trace_id).expect("trace present");
        fill_run_context(&mut spans);
        assert_eq!(spans, run.spans, "run {}", run.run_id);
    }
}

#[test]
fn the_langfuse_form_has_one_trace_and_one_observation_per_node() {
    let cfg = config(5, 10);
    let direct: Vec<Run> = runs(&cfg).collect();
    let batches: Vec<_> = langfuse::batches(&cfg, 3).collect();
    assert_eq!(batches.len(), 4);
    let events: Vec<&serde_json::Value> = batches
        .iter()
        .flat_map(|b| b["batch"].as_array().into_iter().flatten())
        .collect();
    let nodes: usize = direct.iter().map(|r| r.spans.len() - 2).sum();
    assert_eq!(events.len(), nodes + direct.len());
    let traces: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "trace-create")
        .collect();
    assert_eq!(traces.len(), direct.len());
    assert_eq!(traces[0]["body"]["id"], direct[0].run_id.as_str());
    assert_eq!(traces[0]["body"]["input"], direct[0].inputs);
    assert!(events.iter().any(
        |e| e["type"] == "generation-create" && e["body"]["usage"]["input"].as_i64() > Some(0)
    ));
}

#[test]
fn workspaces_split_the_runs_with_their_own_tenant_and_app_ids() {
    let cfg = config(3, 1200);
    // One workspace is the plain workload.
    assert_eq!(
        runs_in_workspaces(&cfg, 1).collect::<Vec<_>>(),
        runs(&cfg).collect::<Vec<_>>()
    );
    let single: Vec<Run> = runs(&cfg).collect();
    let split: Vec<Run> = runs_in_workspaces(&cfg, 3).collect();
    let tenant_of = |r: &Run| {
        let root = r
            .spans
            .iter()
            .find(|s| s.span_kind == Some(SpanKind::Workflow))
            .expect("workflow span");
        // Every span of the run names the same workspace.
        let t = root.attributes.get("metadata.tenant_id").cloned();
        for s in r.spans.iter().filter(|s| s.node_type.is_some()) {
            assert_eq!(s.attributes.get("metadata.tenant_id").cloned(), t);
        }
        (
            t.expect("tenant"),
            root.app_name.clone(),
            root.app_id.clone(),
        )
    };
    let base_tenant = tenant_of(&single[0]).0;
    let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
    let mut apps: BTreeMap<(String, Option<String>), HashSet<Option<String>>> = BTreeMap::new();
    for (a, b) in single.iter().zip(&split) {
        // Only the workspace changes: same run, times and inputs' draws.
        assert_eq!(a.run_id, b.run_id);
        assert_eq!(a.inputs["query"], b.inputs["query"]);
        let (tenant, name, app) = tenant_of(b);
        if tenant == base_tenant {
            assert_eq!(tenant_of(a), (tenant.clone(), name.clone(), app.clone()));
        }
        *per_tenant.entry(tenant.clone()).or_default() += 1;
        apps.entry((tenant, name)).or_default().insert(app);
    }
    assert_eq!(per_tenant.len(), 3, "{per_tenant:?}");
    // Shares of about 6:3:2.
    let mut shares: Vec<usize> = per_tenant.values().copied().collect();
    shares.sort_unstable();
    assert!(
        shares[2] > 550 && shares[1] > 250 && shares[0] > 150,
        "{shares:?}"
    );
    // Each app of each workspace has one id, and no id is shared.
    let ids: Vec<&Option<String>> = apps.values().flatten().collect();
    assert!(apps.values().all(|ids| ids.len() == 1), "{apps:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
}
