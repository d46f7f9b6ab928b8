//! Every operator and aggregate against a brute-force fold over the same
//! generated spans, on the memtable only and after a flush to parts.
//!
//! `data.rs` generates Dify-shaped runs; `brute.rs` evaluates a [`Plan`] in
//! plain Rust; each check parses a query, plans it, runs it through
//! DataFusion and compares the answers.

use loupe_backend::plan::{Plan, QueryLimits};
use loupe_model::{ProjectId, Span};
use loupe_query::{PlanOptions, Query, plan};
use serde_json::Value;

use crate::{Store, StoreConfig};

mod backfill;
mod bombs;
mod brute;
mod data;
mod deep;
mod fresh;

use data::{NOW, T0, generate};

const QUERIES: &[&str] = &[
    // Comparisons on text, numbers, durations, times and map values.
    "status=error | count()",
    "status!=ok | count()",
    "duration>1s | count()",
    "duration<=250ms | count()",
    "duration>=1s duration<2s | count()",
    "duration<500ms | count()",
    "total_tokens>300 | count()",
    "cost>=0.004 | count()",
    "start_time>=2026-11-17T02:00:00Z | count()",
    "tags.category=phone | count()",
    "tags.category!=phone | count()",
    "tags.category>laptop | count()",
    "attributes.http.status_code>=500 | count()",
    "attributes.http.status_code=\"500\" | count()",
    "attributes.http.status_code<300 | count()",
    // in, contains, exists.
    "tool_name in (inventory, payment) | count()",
    "status not in (ok) | count()",
    "tags.category in (phone, books) | count()",
    "error_message contains \"500\" | count()",
    "error_message not contains \"500\" | count()",
    "output contains \"refund\" | count()",
    "tags.category contains ho | count()",
    // Case-insensitive substrings and JSON paths into input/output.
    "output icontains REFUND | count()",
    "output not icontains refund | count()",
    "input.query icontains refund | count()",
    "input.query contains Refund | count()",
    "input.profile.tier=gold | count()",
    "input.profile.tier in (gold, free) | count()",
    "input.profile.level>=3 | count()",
    "input[\"sys.query\"] contains \"order 1\" | count()",
    "input.items.0=widget | count()",
    "input.items.1 contains gadget | count()",
    "exists input.profile | count()",
    "span_kind=workflow | by input.profile.tier | count() | sort input.profile.tier",
    "run has (input.query icontains refund) span_kind=tool status=error | count()",
    "exists tool_name | count()",
    "not exists tool_name | count()",
    "exists tags.category | count()",
    "exists attributes.http.status_code | count()",
    "status not exists | count()",
    // Boolean structure.
    "NOT status=error | count()",
    "NOT tags.category=phone | count()",
    "(tool_name=inventory OR tool_name=payment) status=error | count()",
    "status=error OR duration>2s | count()",
    "NOT (status=ok OR tool_name=coupon) | count()",
    // Full text (scan).
    "\"timeout\" | count()",
    "\"Connection RESET\" | count()",
    "\"http 500\" status=error | count()",
    // Run level.
    "span_kind=workflow run has (tool_name=inventory status=error) run has (tool_name=payment status=error) | count()",
    "span_kind=workflow run has (node_type=retrieval error_message contains \"500\") | count()",
    "node_type=tool duration>2s NOT run has (span_kind=llm) | count()",
    "run has (status=error) OR status=running | count()",
    "span_kind=workflow NOT run has (status=error) | by tags.category | count()",
    // Aggregates.
    "by tags.category | count(), error_rate(), success_rate(), avg(duration), min(duration), max(duration), sum(duration), count_distinct(user_id)",
    "by tags.category | p50(duration), p90(duration), p95(duration), p99(duration)",
    "by tool_name, bucket(1h) | p95(duration), count()",
    "| avg(total_tokens), sum(cost), min(start_time), max(start_time), sum(total_tokens)",
    // LLM spans without a status or still running.
    "by status | count()",
    "span_kind=llm | by status | count()",
    "by span_kind | success_rate(), error_rate()",
    "| avg(attributes.http.status_code), max(attributes.http.status_code), count_distinct(attributes.http.status_code)",
    "by bucket(30m) | count()",
    "last 3h | by tool_name | count()",
    "from 2026-11-17T01:00:00Z to 2026-11-17T03:00:00Z | by tags.category | p99(duration)",
    // Sort, limit, top.
    "by tags.category | top 2",
    "by tool_name | count() as n | sort n desc | limit 3",
    "by tool_name | p95(duration) as slow, count() | sort slow desc",
    "by tags.category, tool_name | avg(duration) | sort tags.category desc, avg(duration) | limit 7",
    "status=error | sort duration desc | limit 20",
    "tool_name=payment | top 5",
    "status=error",
    "tags.category=phone node_type=tool | sort tags.category, start_time | limit 30",
    // Id lookups (part positions → a row selection; the filter still runs).
    "trace_id=t0042 | sort start_time | limit 50",
    "run_id=run-0100 OR trace_id=t0003 | sort start_time | limit 50",
    "trace_id=t0010 status=error | count()",
    "trace_id=nope | count()",
    "run_id in (run-0100, run-0007, nope) | sort start_time | limit 50",
    "trace_id in (t0003, t0042) status=error | count()",
    // Listings fetched in two phases (late materialisation), incl. none.
    "span_kind=workflow run has (tool_name=inventory status=error) | sort start_time desc | limit 15",
    "span_kind=workflow run has (\"refund\") | sort start_time desc | limit 7",
    "span_kind=workflow run has (tool_name=no-such-tool) | sort start_time desc | limit 7",
    "tool_name=no-such-tool | sort start_time desc | limit 10",
    "| sort duration desc, start_time | limit 10000",
    // Listings by start time read newest (or oldest) windows first and
    // stop at the limit: across window edges, with a keyset, ascending.
    "span_kind=workflow | sort start_time desc, span_id desc | limit 51",
    "span_kind=workflow start_time<2026-11-17T04:10:00Z | sort start_time desc, span_id desc | limit 51",
    "span_kind=workflow (start_time<2026-11-17T02:10:00Z OR (start_time=2026-11-17T02:10:00Z span_id<zzz)) | sort start_time desc, span_id desc | limit 51",
    "start_time<=2026-11-17T03:00:00Z OR status=error | sort start_time desc | limit 30",
    "status=error | sort start_time | limit 120",
    "from 2026-11-10 to 2026-11-20 span_kind=tool | sort start_time desc | limit 700",
    "span_kind=workflow | sort start_time desc | limit 5000",
];

/// Filters, groups and sorts on the keys the store mirrors in columns
/// (`mirrors.rs`): the same answers from the columns as from the maps.
const MIRRORED: &[&str] = &[
    "attributes.dify.tenant_id=ws-a | count()",
    "attributes.dify.tenant_id!=ws-a | count()",
    "attributes.dify.tenant_id in (ws-b, ws-c, nope) status=error | by node_type | count()",
    "exists attributes.dify.tenant_id | count()",
    "not exists attributes.dify.tenant_id span_kind=tool | count()",
    "attributes.dify.tenant_id>ws-a | count()",
    "attributes.dify.tenant_id contains \"-b\" | count()",
    "by attributes.dify.tenant_id | count(), count_distinct(tags.workspace)",
    "tags.workspace=ws-d span_kind=workflow | by tags.category | success_rate()",
    "tags.workspace in (ws-a, ws-b) attributes.dify.tenant_id=ws-c | count()",
    "by tags.workspace, attributes.dify.tenant_id | count() as n | sort n desc | limit 5",
    "span_kind=llm run has (attributes.dify.tenant_id=ws-b status=error) | by model_name | count()",
    "tags.workspace=ws-c | sort start_time desc | limit 9",
    "status=error | sort attributes.dify.tenant_id, start_time | limit 12",
];

fn project() -> ProjectId {
    ProjectId::new("p").expect("project")
}

fn plan_of(text: &str) -> Plan {
    let q = Query::parse(text).unwrap_or_else(|e| panic!("{text}: {}", e.render(text)));
    plan(&q, PlanOptions::at(NOW)).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

/// Asserts that `got` has the brute-force answer's columns and rows;
/// returns that answer.
fn assert_brute_force(
    plan: &Plan,
    got: &loupe_backend::plan::QueryResult,
    spans: &[Span],
    what: &str,
) -> brute::Want {
    let want = brute::run(plan, spans);
    let names: Vec<String> = got.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, want.columns, "{what}: columns");
    let got_rows = brute::project_rows(plan, got);
    assert_eq!(
        got_rows.len(),
        want.rows.len(),
        "{what}: row count\n got {got_rows:?}\nwant {:?}",
        want.rows
    );
    for (i, (g, w)) in got_rows.iter().zip(&want.rows).enumerate() {
        let same = g.len() == w.len() && g.iter().zip(w).all(|(a, b)| close(a, b));
        assert!(same, "{what}: row {i}\n got {g:?}\nwant {w:?}");
    }
    want
}

/// A store in `dir` holding the generated spans, in its memtable.
async fn loaded(dir: &std::path::Path) -> (Store, Vec<Span>) {
    let store = Store::open(config(dir), loupe_rollup::RollupConfig::default()).expect("open");
    let spans = generate();
    for chunk in spans.chunks(500) {
        store.append(chunk.to_vec()).await.expect("append");
    }
    (store, spans)
}

async fn check_all(store: &Store, spans: &[Span], stage: &str) {
    check_queries(store, spans, stage, QUERIES).await;
    check_queries(store, spans, stage, MIRRORED).await;
}

async fn check_queries(store: &Store, spans: &[Span], stage: &str, queries: &[&str]) {
    for text in queries {
        let (_, want) = brute_checked(store, spans, stage, text).await;
        // Non-trivial data: most checks match something.
        if text.contains("| count()") && !text.contains("by") {
            assert!(want.rows[0][0].as_i64().is_some(), "{text}");
        }
    }
}

/// Kept forever: the data's dates must not age out of retention (which
/// would also stop rollups from answering) as the calendar moves on.
fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        retention_days: 0,
        ..StoreConfig::default()
    }
}

/// A plan naming the tier's node dimensions (root-cause analysis' table).
const NODE_DIMS: &str = "exists parent_span_id span_kind!=workflow | by name, app_name, workflow_version, model_provider | count(), error_rate()";

/// Aggregates the hour rollups answer (whole hours, rollup dimensions).
const FROM_ROLLUPS: &[&str] = &[
    "status=error | count()",
    "tags.category=phone | count()",
    "by tags.category | count(), error_rate(), success_rate(), avg(duration), sum(duration)",
    "span_kind=tool | by tool_name, bucket(1h) | count(), avg(duration)",
    "status=error exists node_type | by node_type | count()",
    "span_kind=llm | by model_name, bucket(1d) | sum(total_tokens), sum(cost), avg(total_tokens)",
    "NOT status=ok tool_name in (inventory, payment) | count()",
    "tags.category!=phone | by span_kind | count() as n | sort n desc | limit 3",
    "| count(), sum(total_tokens), avg(cost)",
    "from 2020-01-01 to 2020-01-02 | count(), avg(duration)",
    "from 2020-01-01 to 2020-01-02 | by tool_name | count()",
    "not exists tool_name | by bucket(2h) | count()",
    // Partial hours at either end: whole hours from rollups, edges scanned.
    "from 2026-11-17T01:30:00Z to 2026-11-17T03:00:00Z | count()",
    "from 2026-11-17T00:20:00Z to 2026-11-17T05:40:00Z | by tags.category, bucket(1h) | count(), avg(duration), success_rate(), error_rate()",
    "from 2026-11-17T01:15:00Z to 2026-11-17T06:59:00Z span_kind=llm | by model_name | sum(total_tokens), sum(cost), avg(cost)",
    "from 2026-11-16T23:50:00Z to 2026-11-17T04:10:00Z NOT status=ok | by tool_name | count(), sum(duration)",
    // Error classes, where the filter keeps failed spans only.
    "status=error exists error_class | by error_class | count() as n | sort n desc | limit 8",
    "status=error error_class=Timeout span_kind=tool | by tool_name | count()",
    "status=error | by error_class | count()",
    "status=error | by error_signature, tool_name | count()",
    // Status groups where every series read is finished ok or error (the
    // console's runs facet); any other status falls back to a scan (below).
    "span_kind=workflow | by status | count() as n | sort n desc | limit 8",
    "span_kind=workflow | by status, bucket(1h) | count(), avg(duration)",
    "from 2026-11-17T00:20:00Z to 2026-11-17T05:40:00Z span_kind=tool | by tool_name, status | count() as n, avg(duration) | sort n desc | limit 8",
    "status=error error_signature=\"error: signature 1\" | by tags.category | count()",
    // Node dimensions (what root-cause analysis groups by): the node name
    // where the filter keeps child spans only.
    NODE_DIMS,
    "from 2026-11-17T00:20:00Z to 2026-11-17T05:40:00Z exists parent_span_id status=error | by name, error_signature, tags.category | count()",
    "app_name=shop workflow_version!=v1 | by model_provider, span_kind | count(), sum(total_tokens)",
    "not exists parent_span_id | by app_name | count(), avg(duration)",
    "exists parent_span_id name in (answer, inventory) | by bucket(1h) | count()",
];

/// Aggregates only a scan answers exactly.
const SCANNED: &[&str] = &[
    "by tool_name | p95(duration)",
    "by status | count()",
    "status!=ok | count()",
    "from 2026-11-17T01:10:00Z to 2026-11-17T01:50:00Z | count()",
    "by bucket(30m) | count()",
    "attributes.http.status_code>=500 | count()",
    "| min(duration)",
    // The class of a span that did not fail is not in the rollups.
    "exists error_class | by error_class | count()",
    "status!=error error_class=Retried | count()",
    // Error dimensions are exact in the tier only among failed spans.
    "by error_signature | count()",
    "error_class exists | count()",
    // A root's name is its run's: the tier keeps names of child spans only.
    "by name | count()",
    "name=customer-service | count()",
    // The tier knows whether a span has a parent, not which.
    "exists parent_span_id | by parent_span_id | count()",
];

/// Runs `text`, checks it was answered from the rollups or not as
/// `rollups` says and that the answer equals brute force; returns the plan
/// and the answer.
async fn assert_routed(
    store: &Store,
    spans: &[Span],
    stage: &str,
    text: &str,
    rollups: bool,
) -> (Plan, loupe_backend::plan::QueryResult) {
    let plan = plan_of(text);
    let got = store
        .query_plan(&project(), &plan, QueryLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{stage}: {text}: {e}"));
    assert_eq!(got.stats.from_rollups, rollups, "{stage}: {text}");
    assert_brute_force(&plan, &got, spans, &format!("{stage}: {text}"));
    (plan, got)
}

async fn check_rollup_routing(store: &Store, spans: &[Span], stage: &str) {
    for (text, rollups) in FROM_ROLLUPS
        .iter()
        .map(|t| (t, true))
        .chain(SCANNED.iter().map(|t| (t, false)))
    {
        let (plan, got) = assert_routed(store, spans, stage, text, rollups).await;
        store.set_answer_from_rollups(false);
        let scanned = store
            .query_plan(&project(), &plan, QueryLimits::default())
            .await
            .expect("scan");
        store.set_answer_from_rollups(true);
        assert!(!scanned.stats.from_rollups);
        assert_eq!(
            scanned.columns, got.columns,
            "{stage}: {text}: column types"
        );
    }
    check_histogram_percentiles(store, spans, stage).await;
}

/// Queries asking for percentiles from histograms (`approx_percentiles`).
const APPROX: &[&str] = &[
    "span_kind=tool | by tool_name, bucket(1h) | p50(duration), p95(duration), count()",
    "span_kind=workflow | p50(duration) as p50, p95(duration) as p95",
    "from 2026-11-17T00:20:00Z to 2026-11-17T05:40:00Z | by bucket(1h) | p95(duration)",
];

/// With `approx_percentiles`, duration percentiles come from the hour
/// histograms: same groups and counts as the exact scan, and every estimate
/// within one histogram bucket of the exact percentile.
async fn check_histogram_percentiles(store: &Store, spans: &[Span], stage: &str) {
    use loupe_rollup::Histogram;
    for text in APPROX {
        let mut plan = plan_of(text);
        let exact = brute::run(&plan, spans);
        plan.approx_percentiles = true;
        let got = store
            .query_plan(&project(), &plan, QueryLimits::default())
            .await
            .unwrap_or_else(|e| panic!("{stage}: {text}: {e}"));
        assert!(
            got.stats.from_rollups && got.stats.approximate,
            "{stage}: {text}"
        );
        let rows = brute::project_rows(&plan, &got);
        assert_eq!(rows.len(), exact.rows.len(), "{stage}: {text}");
        for (g, w) in rows.iter().zip(&exact.rows) {
            for (i, name) in exact.columns.iter().enumerate() {
                let (a, b) = (&g[i], &w[i]);
                if name.starts_with('p') {
                    let bucket =
                        |v: &Value| v.as_f64().map(|ns| Histogram::bucket_of((ns / 1e3) as u64));
                    let (x, y) = (bucket(a), bucket(b));
                    assert!(
                        matches!((x, y), (Some(x), Some(y)) if x.abs_diff(y) <= 1)
                            || (a.is_null() && b.is_null()),
                        "{stage}: {text}: {name}: estimate {a} vs exact {b}"
                    );
                } else {
                    assert!(close(a, b), "{stage}: {text}: {name}: {a} vs {b}");
                }
            }
        }
        // Without the flag the same query scans, exactly.
        plan.approx_percentiles = false;
        let scanned = store
            .query_plan(&project(), &plan, QueryLimits::default())
            .await
            .expect("scan");
        assert!(!scanned.stats.from_rollups && !scanned.stats.approximate);
    }
}

/// The hour rollups answer exactly what a scan would, before and after a
/// flush, after a reopen (the day files are read back), and after updates
/// moved spans between series; with a day file lost they stop answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_answers_equal_brute_force_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    let mut spans = generate();
    for chunk in spans.chunks(500) {
        store.append(chunk.to_vec()).await.expect("append");
    }
    check_rollup_routing(&store, &spans, "memtable").await;
    store.flush_all().await.expect("flush");
    // Updates after the flush: statuses flip and a span moves an hour.
    let mut updates = Vec::new();
    for s in spans
        .iter_mut()
        .filter(|s| s.tool_name.is_some())
        .step_by(7)
    {
        s.status = Some(match s.status {
            Some(loupe_model::Status::Ok) => loupe_model::Status::Error,
            _ => loupe_model::Status::Ok,
        });
        if let (Some(start), Some(end)) = (s.start_time, s.end_time) {
            let hour = 3_600_000_000_000;
            s.start_time = Some(start + hour);
            s.end_time = Some(end + hour);
        }
        updates.push(s.clone());
    }
    store.append(updates).await.expect("update");
    check_rollup_routing(&store, &spans, "updated").await;
    store.shutdown().await.expect("shutdown");
    drop(store);
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("reopen");
    check_rollup_routing(&store, &spans, "reopened").await;
    store.shutdown().await.expect("shutdown");
    drop(store);

    // A tier persisted before node dimensions, by a build that wrote plain
    // JSON: plans naming them scan (the hours it holds lack them), the
    // others are still answered.
    let mut rewritten = 0;
    for entry in std::fs::read_dir(dir.path().join("rollups")).expect("rollups dir") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".json.zst") {
            let json = zstd::stream::decode_all(std::fs::read(&path).expect("read").as_slice())
                .expect("zstd");
            let mut snap: serde_json::Value = serde_json::from_slice(&json).expect("json");
            let obj = snap.as_object_mut().expect("object");
            assert!(obj.remove("hours_node_dims_from").is_some(), "{path:?}");
            std::fs::write(
                path.with_extension(""),
                serde_json::to_vec(&snap).expect("json"),
            )
            .expect("write");
            std::fs::remove_file(&path).expect("remove");
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 1, "one compressed snapshot");
    let store = Store::open(config(dir.path()), loupe_rollup::RollupConfig::default())
        .expect("reopen an older tier");
    for (text, rollups) in [(FROM_ROLLUPS[2], true), (NODE_DIMS, false)] {
        let plan = plan_of(text);
        let got = store
            .query_plan(&project(), &plan, QueryLimits::default())
            .await
            .expect("query");
        assert_eq!(got.stats.from_rollups, rollups, "older tier: {text}");
        assert_brute_force(&plan, &got, &spans, &format!("older tier: {text}"));
    }
    store.shutdown().await.expect("shutdown");
    drop(store);
    std::fs::remove_dir_all(dir.path().join("rollups/hours")).expect("remove day files");
    let store = Store::open(config(dir.path()), loupe_rollup::RollupConfig::default())
        .expect("reopen without day files");
    let plan = plan_of(FROM_ROLLUPS[2]);
    let got = store
        .query_plan(&project(), &plan, QueryLimits::default())
        .await
        .expect("query");
    assert!(!got.stats.from_rollups, "a lost day file must not answer");
    assert_eq!(
        brute::project_rows(&plan, &got).len(),
        brute::run(&plan, &spans).rows.len()
    );
}

/// Plans naming `tags.tier`, a tag the tier keeps beside the labels when
/// `hour_tags` names it.
const HOUR_TAG_PLANS: &[&str] = &[
    "by tags.tier | count(), error_rate(), avg(duration)",
    "tags.tier=vip | by tags.category, tool_name | count()",
    "exists tags.tier tags.tier!=new | by bucket(1h) | count(), sum(cost)",
    "from 2026-11-17T00:20:00Z to 2026-11-17T05:40:00Z exists parent_span_id status=error | by name, tags.tier, error_signature | count()",
    "not exists tags.tier | by span_kind | count()",
    // Filters mixing the series key and the nodes: decided per series
    // where the key decides, per node elsewhere.
    "span_kind=tool OR tags.tier=vip | by span_kind | count()",
    "NOT (span_kind=llm tags.tier=vip) | by tags.tier | count()",
    "(span_kind=tool OR app_name=shop) tags.tier!=vip | count(), sum(duration)",
];

fn with_hour_tags(tags: &[&str]) -> loupe_rollup::RollupConfig {
    loupe_rollup::RollupConfig {
        hour_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        ..loupe_rollup::RollupConfig::default()
    }
}

async fn check_routed(store: &Store, spans: &[Span], stage: &str, rollups: bool) {
    for text in HOUR_TAG_PLANS {
        assert_routed(store, spans, stage, text, rollups).await;
    }
}

/// Tags in `hour_tags` are answered from the tier like labels, exactly,
/// also after updates and a reopen; a tier begun without a tag counts it
/// from the next hour on, so plans over older hours scan; a tag no longer
/// kept is scanned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_tags_are_answered_from_the_tier_from_the_hour_they_were_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path()), with_hour_tags(&["tier"])).expect("open");
    let mut spans = generate();
    for chunk in spans.chunks(500) {
        store.append(chunk.to_vec()).await.expect("append");
    }
    check_routed(&store, &spans, "memtable", true).await;
    store.flush_all().await.expect("flush");
    // A run changes tier: its spans move between node dimensions.
    let mut updates = Vec::new();
    for s in spans
        .iter_mut()
        .filter(|s| s.trace_id.as_deref() == Some("t0007"))
    {
        s.tags.insert("tier".into(), "vip".into());
        updates.push(s.clone());
    }
    assert!(!updates.is_empty());
    store.append(updates).await.expect("update");
    check_routed(&store, &spans, "updated", true).await;
    store.shutdown().await.expect("shutdown");
    drop(store);

    let store = Store::open(config(dir.path()), with_hour_tags(&["tier"])).expect("reopen");
    check_routed(&store, &spans, "reopened", true).await;
    store.shutdown().await.expect("shutdown");
    drop(store);

    // Configured without it: the tier keeps it on (its history), and what
    // this process writes is counted with it.
    const HOUR: i64 = 3_600_000_000_000;
    let last_hour = spans
        .iter()
        .filter_map(|s| s.start_time)
        .max()
        .expect("spans")
        .div_euclid(HOUR);
    let span_at = |id: &str, at: i64| {
        let mut s = spans[0].clone();
        s.span_id = id.into();
        s.start_time = Some(at);
        s.end_time = Some(at + 1_000_000);
        s.tags.insert("tier".into(), "vip".into());
        s
    };
    let between = span_at("between", last_hour * HOUR + HOUR / 2);
    let later = span_at("later", (last_hour + 2) * HOUR + HOUR / 60);
    let store = Store::open(config(dir.path()), with_hour_tags(&[])).expect("reopen");
    assert_eq!(store.hour_tags(), ["tier"]);
    store.append(vec![between.clone()]).await.expect("append");
    spans.push(between);
    check_routed(&store, &spans, "kept without a rule", true).await;
    store.shutdown().await.expect("shutdown");
    drop(store);

    // A tier from before the tag (snapshot and day files name none): the
    // hours held were counted without it, so plans over them scan; plans
    // from the next hour on are answered.
    strip_hour_tags(&dir.path().join("rollups"));
    let store = Store::open(config(dir.path()), with_hour_tags(&["tier"])).expect("reopen");
    check_routed(&store, &spans, "joined", false).await;
    // Spans of those hours updated now leave where they were counted
    // (without the tag): plans not naming it still equal a scan.
    let mut updates = Vec::new();
    for s in spans
        .iter_mut()
        .filter(|s| s.tool_name.is_some())
        .step_by(5)
    {
        s.status = Some(loupe_model::Status::Error);
        updates.push(s.clone());
    }
    store.append(updates).await.expect("update");
    for text in [FROM_ROLLUPS[2], FROM_ROLLUPS[0]] {
        assert_routed(&store, &spans, "joined, updated", text, true).await;
    }
    store.append(vec![later.clone()]).await.expect("append");
    spans.push(later);
    let text = "from 2026-11-17T08:00:00Z to 2026-11-18T00:00:00Z | by tags.tier | count()";
    let (plan, got) = assert_routed(&store, &spans, "hours after the tag joined", text, true).await;
    assert_eq!(
        brute::project_rows(&plan, &got),
        vec![vec![Value::from("vip"), Value::from(1)]]
    );
}

/// Rewrites the rollup files under `dir` as a build before hour tags wrote
/// them: no tag list in the snapshot, no tags in the day files.
fn strip_hour_tags(dir: &std::path::Path) {
    // Rewritten as such a build wrote them: plain JSON.
    let edit = |path: &std::path::Path, f: &dyn Fn(&mut Value)| {
        let json =
            zstd::stream::decode_all(std::fs::read(path).expect("read").as_slice()).expect("zstd");
        let mut v: Value = serde_json::from_slice(&json).expect("json");
        f(&mut v);
        std::fs::write(
            path.with_extension(""),
            serde_json::to_vec(&v).expect("json"),
        )
        .expect("write");
        std::fs::remove_file(path).expect("remove");
    };
    let json_in = |d: std::path::PathBuf| {
        let found = std::fs::read_dir(d)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.to_string_lossy().ends_with(".json.zst"))
            .collect::<Vec<_>>();
        assert!(!found.is_empty(), "rollup files to rewrite");
        found
    };
    for path in json_in(dir.to_owned()) {
        edit(&path, &|v| {
            let obj = v.as_object_mut().expect("snapshot");
            assert!(obj.remove("hours_tags").is_some(), "{path:?}");
            obj.remove("hours_tags_kept");
            obj.remove("hours_tags_fold_hours");
        });
    }
    for path in json_in(dir.join("hours")) {
        edit(&path, &|v| {
            let obj = v.as_object_mut().expect("day file");
            obj.remove("tags");
            for hour in obj["hours"].as_array_mut().expect("hours") {
                for series in hour[1].as_array_mut().expect("series") {
                    if let Some(node) = series.get_mut("node").and_then(Value::as_object_mut) {
                        node.remove("tags");
                    }
                }
            }
        });
    }
}

/// Node names that carry ids fold in the hour they arrive: plans naming
/// `name` over that hour scan, over the others the tier still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_names_make_only_their_hours_scan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    let mut spans = generate();
    let child = spans
        .iter()
        .find(|s| s.parent_span_id.is_some() && s.tool_name.is_some())
        .expect("a tool call")
        .clone();
    let burst = T0 + 10 * 3_600_000_000_000;
    spans.extend((0..1_100).map(|i| {
        let mut s = child.clone();
        s.span_id = format!("burst-{i}");
        s.name = Some(format!("GET /items/{i}"));
        s.start_time = Some(burst + i * 1_000_000);
        s.end_time = Some(burst + i * 1_000_000 + 500_000);
        s
    }));
    for chunk in spans.chunks(500) {
        store.append(chunk.to_vec()).await.expect("append");
    }
    for (text, rollups) in [
        (
            "from 2026-11-17T00:00:00Z to 2026-11-17T08:00:00Z exists parent_span_id | by name | count()",
            true,
        ),
        (
            "from 2026-11-17T00:00:00Z to 2026-11-18T00:00:00Z exists parent_span_id | by name | count()",
            false,
        ),
        // Plans not naming `name` are answered over the burst too.
        (
            "from 2026-11-17T00:00:00Z to 2026-11-18T00:00:00Z exists parent_span_id | by tool_name | count()",
            true,
        ),
    ] {
        assert_routed(&store, &spans, "folded names", text, rollups).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_and_aggregate_matches_brute_force_in_memtable_and_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans) = loaded(dir.path()).await;
    check_all(&store, &spans, "memtable").await;
    store.flush_all().await.expect("flush");
    assert!(store.stats().parts > 0);
    check_all(&store, &spans, "parts").await;
}

/// Parts written before the mirror columns (`mirrors.rs`) answer the
/// same: the reader looks the keys up in the parts' maps. Here the parts
/// are rewritten without the columns (the layout of earlier builds), the
/// manifest is told their new sizes, and the store is reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_without_mirror_columns_answer_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans, stripped) = reopened_with_parts_as(dir.path(), 0).await;
    check_queries(&store, &spans, "parts without mirrors", MIRRORED).await;
    // Some of the old queries too: maps, ids, run has, listings.
    check_queries(&store, &spans, "parts without mirrors", &QUERIES[..40]).await;
    // Newer rows beside the old parts: a memtable with the columns.
    let mut late = spans[0].clone();
    late.span_id = "late-1".into();
    late.attributes
        .insert("dify.tenant_id".into(), "ws-new".into());
    store.append(vec![late.clone()]).await.expect("append");
    let mut all = spans.clone();
    all.push(late);
    check_queries(&store, &all, "old parts and new rows", MIRRORED).await;
    check_queries(
        &store,
        &all,
        "old parts and new rows",
        &["attributes.dify.tenant_id=ws-new | count()"],
    )
    .await;
    // Maintenance rewrites the old parts with the columns; answers stay.
    store.flush_all().await.expect("flush");
    assert!(layouts(&store).contains(&0), "{:?}", layouts(&store));
    rewrite_to_the_layout(&store, stripped).await;
    check_queries(&store, &all, "old parts rewritten", MIRRORED).await;
    check_queries(&store, &all, "old parts rewritten", &QUERIES[..40]).await;
}

/// Parts written with the texts in the rows' order (layout 1, before
/// `payloads.rs`) answer the same beside parts with them in run order, and
/// maintenance rewrites them in run order, answers unchanged: every query,
/// texts, JSON paths into them, listings and `run has` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_with_texts_in_row_order_answer_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans, rewritten) =
        reopened_with_parts_as(dir.path(), crate::parts::LAYOUT_MIRRORS).await;
    check_queries(&store, &spans, "texts in row order", QUERIES).await;
    // New parts in run order beside the old ones.
    let late: Vec<Span> = spans
        .iter()
        .take(50)
        .map(|s| {
            let mut s = s.clone();
            s.span_id = format!("late-{}", s.span_id);
            s.input = Some(format!("late input of {}", s.span_id));
            s
        })
        .collect();
    store.append(late.clone()).await.expect("append");
    store.flush_all().await.expect("flush");
    let mixed = layouts(&store);
    assert!(
        mixed.contains(&crate::parts::LAYOUT_MIRRORS) && mixed.contains(&crate::parts::LAYOUT),
        "{mixed:?}"
    );
    let mut all = spans.clone();
    all.extend(late);
    check_queries(&store, &all, "both layouts", QUERIES).await;
    rewrite_to_the_layout(&store, rewritten).await;
    check_queries(&store, &all, "rewritten in run order", QUERIES).await;
}

/// The loaded spans flushed to parts, the parts rewritten in an earlier
/// build's `layout` ([`rewrite_parts_as`]) and the store reopened on them;
/// with how many parts were rewritten (at least one).
async fn reopened_with_parts_as(dir: &std::path::Path, layout: u32) -> (Store, Vec<Span>, usize) {
    let (store, spans) = loaded(dir).await;
    store.flush_all().await.expect("flush");
    store.shutdown().await.expect("shutdown");
    drop(store);
    let rewritten = rewrite_parts_as(dir, layout);
    assert!(rewritten > 0, "no part rewritten");
    let store = Store::open(config(dir), loupe_rollup::RollupConfig::default()).expect("reopen");
    (store, spans, rewritten)
}

/// The layout of each of the store's parts.
fn layouts(store: &Store) -> Vec<u32> {
    let st = store.inner.state.lock();
    st.parts.iter().map(|p| p.meta.layout).collect()
}

/// One maintenance pass rewrites at least the `old` parts, and leaves every
/// part in the current layout.
async fn rewrite_to_the_layout(store: &Store, old: usize) {
    let report = store.maintain().await.expect("maintain");
    assert!(report.compacted_parts >= old, "{report:?}");
    assert!(
        layouts(store).iter().all(|l| *l == crate::parts::LAYOUT),
        "{:?}",
        layouts(store)
    );
}

/// Rewrites every span part under `dir` as earlier builds wrote it: without
/// the mirror columns (`layout` 0: the model's columns) or with them and
/// the texts in the rows' order (1); records them in the manifest as those
/// builds did; returns how many were rewritten.
fn rewrite_parts_as(dir: &std::path::Path, layout: u32) -> usize {
    use parquet::arrow::ArrowWriter;
    let schema = match layout {
        0 => loupe_model::schema(),
        _ => crate::mirrors::storage_schema(),
    };
    let mut sizes = std::collections::HashMap::new();
    let mut stack = vec![dir.join("parts")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            // In the file's row order: positions (deletion vectors) stay.
            let rows = crate::parts::read_rows(
                &path,
                None,
                &[],
                &crate::deletes::DeletionVector::default(),
            )
            .expect("read part");
            let batch = crate::convert::rows_to_batch(rows.iter()).expect("batch");
            let keep: Vec<usize> = (0..schema.fields().len()).collect();
            let batch = batch.project(&keep).expect("project");
            let batch =
                arrow::array::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .expect("batch of the layout");
            let out = std::fs::File::create(&path).expect("create");
            let mut writer = ArrowWriter::try_new(out, schema.clone(), None).expect("writer");
            writer.write(&batch).expect("write");
            writer.close().expect("close");
            let rel = path.strip_prefix(dir).expect("relative");
            let bytes = std::fs::metadata(&path).expect("size").len();
            sizes.insert(rel.to_string_lossy().into_owned(), bytes);
        }
    }
    let manifest = dir.join("manifest.json");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    for part in m["parts"].as_array_mut().expect("parts") {
        let path = part["path"].as_str().expect("path").to_owned();
        if let Some(bytes) = sizes.get(&path) {
            part["bytes"] = Value::from(*bytes);
            let part = part.as_object_mut().expect("part");
            if layout == 0 {
                // As builds before the mirrors wrote it: no layout.
                part.remove("layout");
            } else {
                part.insert("layout".into(), Value::from(layout));
            }
        }
    }
    std::fs::write(&manifest, serde_json::to_vec(&m).expect("json")).expect("write manifest");
    sizes.len()
}

/// `run has` is answered from the run keys found first (an `IN` list, or a
/// semi join with them), or, past `run_has_keys_max`, as a subquery: all
/// equal brute force, and with the keys "both failed" reads fewer rows (the
/// two lists' intersection leaves no run to read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_has_answers_equal_as_a_key_list_and_as_a_subquery() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans) = loaded(dir.path()).await;
    let run_has: Vec<&str> = QUERIES
        .iter()
        .copied()
        .filter(|q| q.contains("run has"))
        .collect();
    assert!(run_has.len() >= 8, "{run_has:?}");
    let both_failed = "span_kind=workflow run has (tool_name=inventory status=error) \
        run has (tool_name=payment status=error) | count()";
    for stage in ["memtable", "parts"] {
        if stage == "parts" {
            store.flush_all().await.expect("flush");
        }
        let mut rows_read = Vec::new();
        for max in [super::RUN_HAS_KEYS_MAX, 1, 0] {
            store.inner.run_has_keys_max.store(max, Ordering::Relaxed);
            check_queries(
                &store,
                &spans,
                &format!("{stage}, at most {max} keys"),
                &run_has,
            )
            .await;
            let got = store
                .query_plan(&project(), &plan_of(both_failed), QueryLimits::default())
                .await
                .expect("query");
            rows_read.push(got.stats.rows_scanned);
        }
        if stage == "parts" {
            assert!(
                rows_read[0] < rows_read[2],
                "the key list reads fewer rows than the subquery: {rows_read:?}"
            );
        }
    }
}

/// A listing by start time whose `run has` found `k` runs starts with the
/// window that holds about `limit` of them (at least the 1 h probe, at
/// most the range); runs that bound nothing (under `NOT`, left a subquery,
/// none found) leave it the probe.
#[test]
fn first_window_of_a_listing_follows_the_runs_found() {
    use super::{FIRST_WINDOW_NS, first_window};
    let week = 7 * 86_400 * 1_000_000_000_i64;
    let in_a_week = |q: &str| Plan {
        from_ns: 0,
        to_ns: week,
        ..plan_of(q)
    };
    let runs = |n: usize| Some((0..n).map(|i| i.to_string()).collect::<super::RunKeys>());
    let listing =
        in_a_week("span_kind=workflow run has (status=error) | sort start_time desc | limit 100");
    // 100 of 2,000 runs, with half again as margin: 7.5 % of the week.
    assert_eq!(
        first_window(&listing, &[runs(2_000)], 100),
        (week as f64 * 0.075) as i64
    );
    assert_eq!(first_window(&listing, &[runs(50)], 100), week);
    assert_eq!(
        first_window(&listing, &[runs(10_000_000)], 100),
        FIRST_WINDOW_NS
    );
    assert_eq!(first_window(&listing, &[runs(0)], 100), FIRST_WINDOW_NS);
    assert_eq!(first_window(&listing, &[None], 100), FIRST_WINDOW_NS);
    // Two that every span must satisfy: the smaller bounds.
    let both = in_a_week(
        "span_kind=workflow run has (status=error) run has (tool_name=payment) \
         | sort start_time desc | limit 100",
    );
    assert_eq!(
        first_window(&both, &[runs(200_000), runs(2_000)], 100),
        (week as f64 * 0.075) as i64
    );
    let not = in_a_week(
        "span_kind=workflow NOT run has (status=error) | sort start_time desc | limit 100",
    );
    assert_eq!(first_window(&not, &[runs(2_000)], 100), FIRST_WINDOW_NS);
    let none = in_a_week("span_kind=workflow | sort start_time desc | limit 100");
    assert_eq!(first_window(&none, &[], 100), FIRST_WINDOW_NS);
}

/// Queries share one cache of Parquet footers and page indexes: a scan of
/// the parts fills it with one entry per part read, page index included
/// (DataFusion asks for the footer alone), the same scan again adds none,
/// and its limit is the store's, not DataFusion's default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_share_the_parquet_metadata_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    store.set_answer_from_rollups(false);
    store.append(generate()).await.expect("append");
    store.flush_all().await.expect("flush");
    let cache = store.inner.parquet_metadata.clone();
    // The flush put its parts in (`warm.rs`); queries add nothing.
    let flushed = store.stats().parts;
    assert_eq!(cache.len(), flushed);
    let plan = plan_of("status=error | by tool_name | count()");
    let first = store
        .query_plan(&project(), &plan, QueryLimits::default())
        .await
        .expect("query");
    let parts = usize::try_from(first.stats.parts_scanned).expect("parts");
    assert!(parts > 0);
    assert_eq!(cache.len(), flushed);
    let again = store
        .query_plan(&project(), &plan, QueryLimits::default())
        .await
        .expect("query");
    assert_eq!(again.rows, first.rows);
    assert_eq!(cache.len(), flushed);
    assert_eq!(cache.cache_limit(), super::PARQUET_METADATA_CACHE_BYTES);
    let (all, _) = store.parts_snapshot();
    for part in crate::live_parts_of(&all, "p") {
        let key = datafusion::object_store::path::Path::from(part.path.to_string_lossy().as_ref());
        let entry = cache.get(&key).expect("cached");
        let meta = entry
            .file_metadata
            .as_any()
            .downcast_ref::<datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData>()
            .expect("Parquet metadata")
            .parquet_metadata();
        assert!(meta.offset_index().is_some(), "{}", part.path.display());
        assert!(meta.column_index().is_some(), "{}", part.path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_range_prunes_parts_and_stats_report_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        StoreConfig {
            data_dir: dir.path().to_owned(),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open");
    // Pruning is about scans: whole-hour counts would come from rollups.
    store.set_answer_from_rollups(false);
    store.append(generate()).await.expect("append");
    store.flush_all().await.expect("flush");
    let all = store
        .query_plan(&project(), &plan_of("| count()"), QueryLimits::default())
        .await
        .expect("query");
    assert!(all.stats.parts_scanned >= 1, "{:?}", all.stats);
    let none = store
        .query_plan(
            &project(),
            &plan_of("from 2020-01-01 to 2020-01-02 | count()"),
            QueryLimits::default(),
        )
        .await
        .expect("query");
    assert_eq!(none.stats.parts_scanned, 0, "{:?}", none.stats);
    assert_eq!(none.rows, vec![vec![Value::from(0)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_runs_selects_and_refuses_ddl_dml_and_statements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        StoreConfig {
            data_dir: dir.path().to_owned(),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open");
    let spans = generate();
    store.append(spans.clone()).await.expect("append");
    let limits = QueryLimits::default();
    let ok = store
        .read_only_sql(
            &project(),
            "WITH e AS (SELECT * FROM spans WHERE status = 'error') SELECT count(*) AS n FROM e",
            limits,
        )
        .await
        .expect("select");
    let errors = spans
        .iter()
        .filter(|s| s.status == Some(loupe_model::Status::Error))
        .count();
    assert_eq!(ok.rows, vec![vec![Value::from(errors as i64)]]);
    for bad in [
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO spans SELECT * FROM spans",
        "DROP TABLE spans",
        "COPY spans TO '/tmp/x.csv'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let err = store
            .read_only_sql(&project(), bad, limits)
            .await
            .expect_err(bad);
        assert!(matches!(err, crate::Error::Invalid(_)), "{bad}: {err}");
    }
    let tight = QueryLimits {
        memory_bytes: 1 << 20,
        max_rows: 10,
        ..QueryLimits::default()
    };
    let capped = store
        .read_only_sql(&project(), "SELECT span_id FROM spans", tight)
        .await
        .expect("select");
    assert_eq!(capped.rows.len(), 10);
    assert!(capped.stats.truncated);
}

/// JSON paths and `icontains` find what they name (the brute-force
/// comparison above could agree on nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_paths_and_icontains_match_real_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    let spans = generate();
    store.append(spans.clone()).await.expect("append");
    let count = |q: &'static str| {
        let store = store.clone();
        async move {
            let got = store
                .query_plan(&project(), &plan_of(q), QueryLimits::default())
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
            got.rows[0][0].as_i64().unwrap_or_default()
        }
    };
    // 400 runs; every fifth has a plain-text input; tiers cycle by run.
    let json_runs = (0..400).filter(|r| r % 5 != 4).count() as i64;
    let gold = (0..400).filter(|r| r % 5 != 4 && r % 3 == 0).count() as i64;
    assert_eq!(count("exists input.profile | count()").await, json_runs);
    assert_eq!(count("input.profile.tier=gold | count()").await, gold);
    assert_eq!(count("input.items.0=widget | count()").await, json_runs);
    // "a Refund" and "the REFUND policy": two of four asks, case-insensitive;
    // only one of them with the exact case.
    let refund = (0..400)
        .filter(|r| r % 5 != 4 && matches!(r % 4, 0 | 2))
        .count() as i64;
    assert_eq!(
        count("input.query icontains refund | count()").await,
        refund
    );
    let exact = (0..400).filter(|r| r % 5 != 4 && r % 4 == 0).count() as i64;
    assert_eq!(count("input.query contains Refund | count()").await, exact);
    assert_eq!(
        count("input[\"sys.query\"]=\"order 10\" | count()").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_small_columns_runs_in_one_windowed_phase_and_matches_brute_force() {
    use loupe_backend::plan::{FieldRef, Output, ValueType};
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans) = loaded(dir.path()).await;
    let col = |name: &str, ty| FieldRef::Column {
        name: name.to_owned(),
        ty,
    };
    let fields = vec![
        col("span_id", ValueType::Text),
        col("session_id", ValueType::Text),
        col("start_time", ValueType::Timestamp),
        col("status", ValueType::Text),
        col("duration", ValueType::Duration),
        FieldRef::Tag("category".into()),
    ];
    for stage in ["memtable", "parts"] {
        if stage == "parts" {
            store.flush_all().await.expect("flush");
        }
        for text in [
            "span_kind=workflow | sort start_time desc, span_id desc | limit 51",
            "span_kind=workflow (start_time<2026-11-17T02:10:00Z OR (start_time=2026-11-17T02:10:00Z span_id<zzz)) | sort start_time desc, span_id desc | limit 51",
            "status=error | sort start_time | limit 120",
            "span_kind=workflow | sort start_time desc, span_id desc | limit 1000",
            "span_kind=tool | sort duration desc | limit 40",
        ] {
            let mut plan = plan_of(text);
            plan.output = Output::Rows(fields.clone());
            let got = store
                .query_plan(&project(), &plan, QueryLimits::default())
                .await
                .unwrap_or_else(|e| panic!("{stage}: {text}: {e}"));
            assert_brute_force(&plan, &got, &spans, &format!("{stage}: {text}"));
            assert_eq!(got.columns[4].ty, ValueType::Duration, "{text}");
        }
        // The language's `fields` stage: the same plans, from the text (with
        // `span_id`, which the brute-force answer is compared by).
        for text in [
            "span_kind=workflow run has (status=error) | sort start_time desc | limit 30 | fields span_id, run_id, start_time, duration",
            "status=error | sort start_time | limit 50 | fields span_id, tags.category, input",
        ] {
            let plan = plan_of(text);
            let got = store
                .query_plan(&project(), &plan, QueryLimits::default())
                .await
                .unwrap_or_else(|e| panic!("{stage}: {text}: {e}"));
            assert!(!got.rows.is_empty(), "{stage}: {text}: tests nothing");
            assert_eq!(
                got.columns.len(),
                if text.contains("input") { 3 } else { 4 }
            );
            assert_brute_force(&plan, &got, &spans, &format!("{stage}: {text}"));
        }
    }
}

/// Bounds on the start time are applied by the scan itself, not again
/// above it: a part wholly inside them is read without a time filter,
/// unless one of its rows has no start time (its place in the part's time
/// range comes from its end time, and `start_time >= …` is not true of
/// it); parts across a bound and the memtable's rows are filtered row by
/// row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_bounds_hold_in_parts_inside_and_across_them_and_in_the_memtable() {
    const MIN: i64 = 60 * 1_000_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    store.set_answer_from_rollups(false);
    let span = |id: &str, start: Option<i64>, end: i64| {
        let mut s = Span::new("p", id.to_owned());
        s.trace_id = Some(format!("t-{id}"));
        s.start_time = start;
        s.end_time = Some(end);
        s
    };
    // One part: a row at 01:00 and one with only an end time at 01:30.
    let first = vec![
        span("a", Some(T0 + 60 * MIN), T0 + 61 * MIN),
        span("b", None, T0 + 90 * MIN),
    ];
    store.append(first.clone()).await.expect("append");
    store.flush_all().await.expect("flush");
    // Another: 02:00 and 02:10, all timed.
    let second = vec![
        span("c", Some(T0 + 120 * MIN), T0 + 121 * MIN),
        span("d", Some(T0 + 130 * MIN), T0 + 131 * MIN),
    ];
    store.append(second.clone()).await.expect("append");
    store.flush_all().await.expect("flush");
    assert_eq!(store.stats().parts, 2);
    // In the memtable: 02:05 and 05:00.
    let fresh = vec![
        span("e", Some(T0 + 125 * MIN), T0 + 126 * MIN),
        span("f", Some(T0 + 300 * MIN), T0 + 301 * MIN),
    ];
    store.append(fresh.clone()).await.expect("append");
    let all: Vec<Span> = [first, second, fresh].concat();
    let at = |m: i64| {
        chrono::DateTime::from_timestamp_nanos(T0 + m * MIN)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    for (from, to, want) in [
        // Both parts inside: "b" has no start time, "f" is later.
        (30, 240, 4),
        // The second part across the lower bound, the first outside.
        (125, 240, 2),
        // Across the upper bound; "a" exactly at the lower one.
        (60, 125, 2),
        (0, 24 * 60, 5),
    ] {
        let text = format!("from {} to {} | count()", at(from), at(to));
        let (got, _) = brute_checked(&store, &all, "", &text).await;
        assert_eq!(got.rows, vec![vec![Value::from(want)]], "{text}");
        let listed = format!(
            "from {} to {} | sort start_time desc | limit 10",
            at(from),
            at(to)
        );
        brute_checked(&store, &all, "", &listed).await;
    }
}

/// A filter on `status=error` reads only the rows each part's index names
/// as errors (`IdIndex::error_rows`), as written and as rebuilt at open;
/// the answers equal brute force, with ids, groups and listings too, and
/// a filter that does not require the status (`NOT`, `OR`) reads them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_filters_read_only_the_error_rows_of_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans) = loaded(dir.path()).await;
    store.flush_all().await.expect("flush");
    let mut store = Some(store);
    for stage in ["flushed", "reopened"] {
        let s = store.take().expect("store");
        let s = if stage == "reopened" {
            s.shutdown().await.expect("shutdown");
            drop(s);
            Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("reopen")
        } else {
            s
        };
        s.set_answer_from_rollups(false);
        let (errors, read) = scanned(&s, &spans, stage, "status=error | count()").await;
        let (all, read_all) = scanned(&s, &spans, stage, "| count()").await;
        assert!(errors > 0 && errors * 3 < all, "{errors} of {all}");
        assert_eq!(read, Some(errors), "{stage}: only the error rows are read");
        assert_eq!(read_all, Some(all), "{stage}");
        for text in [
            "NOT status=error | count()",
            "status=error OR duration>2s | count()",
        ] {
            assert_eq!(
                scanned(&s, &spans, stage, text).await.1,
                Some(all),
                "{stage}: {text}"
            );
        }
        check_queries(
            &s,
            &spans,
            stage,
            &[
                "status=error | by node_type | count()",
                "trace_id=t0010 status=error | count()",
                "span_kind=tool status=error | sort start_time desc | limit 5",
                "span_kind=workflow run has (status=error) | count()",
            ],
        )
        .await;
        store = Some(s);
    }
}

/// A listing that requires a few runs (`run_id = …`, `trace_id in (…)`)
/// is answered over those runs' rows read by id: it reads exactly the rows
/// of the runs. A listing by errors fetches its second phase from the error
/// rows alone, not every span id of the parts a span-id bloom keeps (all
/// the stored spans here, in one part): it reads fewer rows than are
/// stored (its first phase reads the error rows again per window). Every
/// answer equals brute force; in the memtable, flushed and reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_of_a_few_runs_read_only_their_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, spans) = loaded(dir.path()).await;
    let stored = spans.len() as u64;
    let of = |ids: &[&str]| {
        spans
            .iter()
            .filter(|s| {
                ids.iter().any(|id| {
                    s.trace_id.as_deref() == Some(*id) || s.run_id.as_deref() == Some(*id)
                })
            })
            .count() as u64
    };
    let mut store = Some(store);
    for stage in ["memtable", "flushed", "reopened"] {
        let s = store.take().expect("store");
        let s = match stage {
            "flushed" => {
                s.flush_all().await.expect("flush");
                s
            }
            "reopened" => {
                s.shutdown().await.expect("shutdown");
                drop(s);
                Store::open(config(dir.path()), loupe_rollup::RollupConfig::default())
                    .expect("reopen")
            }
            _ => s,
        };
        s.set_answer_from_rollups(false);
        for (text, ids) in [
            (
                "trace_id=t0042 | sort start_time | limit 50",
                &["t0042"][..],
            ),
            ("run_id=run-0100 | limit 50", &["run-0100"][..]),
            (
                "trace_id in (t0003, t0042) span_kind=tool | sort start_time desc | limit 3",
                &["t0003", "t0042"][..],
            ),
            ("trace_id=nope | limit 5", &["nope"][..]),
        ] {
            let (got, _) = brute_checked(&s, &spans, stage, text).await;
            assert_eq!(
                got.stats.rows_scanned,
                Some(of(ids)),
                "{stage}: {text}: the rows of its runs"
            );
        }
        if stage != "memtable" {
            let text = "span_kind=tool status=error | sort start_time desc | limit 5";
            let (got, _) = brute_checked(&s, &spans, stage, text).await;
            let read = got.stats.rows_scanned.expect("rows scanned");
            assert!(read < stored, "{stage}: {text}: read {read} of {stored}");
        }
        store = Some(s);
    }
}

/// A run too large to hold in memory for one listing (more than
/// `BY_IDS_ROWS_MAX` spans) is scanned as any plan: the same answer, and
/// more rows read than the run has (both phases of the listing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_a_huge_run_is_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    store.set_answer_from_rollups(false);
    let n = super::BY_IDS_ROWS_MAX as i64 + 100;
    let spans: Vec<Span> = (0..n)
        .map(|i| {
            let mut s = Span::new(project().as_str(), format!("s{i:05}"));
            s.trace_id = Some("huge".into());
            s.start_time = Some(data::T0 + i * 1_000_000);
            s.end_time = Some(data::T0 + i * 1_000_000 + 500);
            s.input = Some(format!("input {i}"));
            s
        })
        .collect();
    store.append(spans.clone()).await.expect("append");
    store.flush_all().await.expect("flush");
    let (got, want) = brute_checked(
        &store,
        &spans,
        "flushed",
        "trace_id=huge | sort start_time desc | limit 5",
    )
    .await;
    assert_eq!(want.rows.len(), 5);
    let read = got.stats.rows_scanned.expect("rows scanned");
    assert!(read > n as u64, "read {read}: scanned, not read by id");
}

/// The store's answer to `text`, asserted equal to brute force over
/// `spans`, and brute force's.
async fn brute_checked(
    s: &Store,
    spans: &[Span],
    stage: &str,
    text: &str,
) -> (loupe_backend::plan::QueryResult, brute::Want) {
    let plan = plan_of(text);
    let got = s
        .query_plan(&project(), &plan, QueryLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{stage}: {text}: {e}"));
    let want = assert_brute_force(&plan, &got, spans, &format!("{stage}: {text}"));
    (got, want)
}

/// The brute-force count of `text` (asserted equal to the store's) and the
/// rows the store read for it.
async fn scanned(s: &Store, spans: &[Span], stage: &str, text: &str) -> (u64, Option<u64>) {
    let (got, want) = brute_checked(s, spans, stage, text).await;
    (
        want.rows[0][0].as_u64().expect("count"),
        got.stats.rows_scanned,
    )
}
