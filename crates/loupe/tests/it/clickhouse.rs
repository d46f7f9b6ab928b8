//! The storage contract suite: the same spans, sent the same way, to the
//! embedded store and to every ClickHouse the test peers provide, then the
//! same questions asked of each; the answers must be equal.
//!
//! Peers (`scripts/peers/clickhouse.sh`, `scripts/peers/chdb.sh`):
//! `LOUPE_TEST_CLICKHOUSE_URL` (Debian's 18.16: the legacy profile),
//! `LOUPE_TEST_CHDB_URL` (chDB 26.x behind `scripts/peers/chdb_shim.py`:
//! the modern profile) and `LOUPE_TEST_CLICKHOUSE_SHARD_URLS` +
//! `LOUPE_TEST_CLICKHOUSE_CLUSTER` (two 18.16 servers, a `Distributed`
//! table). Unset outside CI, a ClickHouse case says so and returns;
//! under CI it fails (`support::optional_peer`).
//!
//! The data: Dify-shaped runs from `loupe-gen` in two projects, with the
//! business tags on the run's root only (the run context must carry them
//! to every span), a third of the runs sending their root last, some roots
//! sent first as `running` and finished later, some tool spans completed by
//! a partial update, and one batch sent twice (a retry).

use std::sync::Arc;

use loupe_backend::plan::{Plan, QueryLimits, QueryResult};
use loupe_backend::{PageQuery, SpanFilter, SpanQuery, SpanReader, SpanWriter, TracesQuery};
use loupe_clickhouse::{ClickHouseConfig, ClickHouseStore, Profile};
use loupe_model::{ProjectId, Span, Status};
use loupe_query::{PlanOptions, Query, plan};
use loupe_store::{Store, StoreConfig};
use serde_json::Value;

use crate::support::optional_peer;

const MIN_NS: i64 = 60 * 1_000_000_000;

/// One backend under test.
struct Backend {
    name: String,
    writer: Arc<dyn SpanWriter>,
    reader: Arc<dyn SpanReader>,
    modern: bool,
    _dir: Option<tempfile::TempDir>,
}

fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        data_dir: dir.path().to_path_buf(),
        ..StoreConfig::default()
    };
    let store = Store::open(config, loupe_rollup::RollupConfig::default()).expect("open store");
    Backend {
        name: "embedded".into(),
        writer: Arc::new(store.clone()),
        reader: Arc::new(store),
        modern: true,
        _dir: Some(dir),
    }
}

/// A fresh database name per test and process, so runs never share rows.
fn database(test: &str) -> String {
    format!("loupe_it_{}_{test}", std::process::id())
}

async fn clickhouse(name: &str, url: &str, db: &str) -> Backend {
    let mut config = ClickHouseConfig::new(url);
    config.database = db.to_owned();
    // The modern profile creates its TTL; streams come in small windows.
    config.retention_days = Some(3650);
    config.stream_batch_rows = 50;
    let store = ClickHouseStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect to {name} at {url}: {e}"));
    Backend {
        name: format!(
            "{name} ({}, {})",
            store.server_version(),
            store.profile().as_str()
        ),
        modern: store.profile() == Profile::Modern,
        writer: Arc::new(store.clone()),
        reader: Arc::new(store),
        _dir: None,
    }
}

/// The ClickHouse peers that are up (none outside CI when unset).
async fn clickhouses(test: &str) -> Vec<Backend> {
    let mut out = Vec::new();
    for (name, url) in peer_urls() {
        out.push(clickhouse(name, &url, &database(test)).await);
    }
    out
}

/// The single-server ClickHouse peers that are up, by name: Debian's 18.16
/// (legacy profile) and chDB (modern); none outside CI when unset.
pub(crate) fn peer_urls() -> Vec<(&'static str, String)> {
    [
        (
            "clickhouse",
            "LOUPE_TEST_CLICKHOUSE_URL",
            "scripts/peers/clickhouse.sh",
        ),
        ("chdb", "LOUPE_TEST_CHDB_URL", "scripts/peers/chdb.sh"),
    ]
    .into_iter()
    .filter_map(|(name, var, script)| optional_peer(var, script).map(|url| (name, url)))
    .collect()
}

/// Generated runs of one project, starting `ago` before now.
fn runs(project: &str, seed: u64, count: usize, now: i64) -> Vec<loupe_gen::Run> {
    let config = loupe_gen::GenConfig {
        seed,
        runs: count,
        start_ns: now - 3 * 3_600 * 1_000_000_000,
        spread_ns: 2 * 3_600 * 1_000_000_000,
        project: project.to_owned(),
        faults: vec![loupe_gen::Fault::timeout(
            "inventory",
            Some("phone"),
            now - 3 * 3_600 * 1_000_000_000,
            now,
        )],
    };
    loupe_gen::runs(&config).collect()
}

/// The batches, in arrival order, that every backend receives.
fn batches(now: i64) -> Vec<Vec<Span>> {
    let mut out: Vec<Vec<Span>> = Vec::new();
    let mut later: Vec<Span> = Vec::new();
    for (project, seed) in [("alpha", 11), ("beta", 29)] {
        for (i, run) in runs(project, seed, 40, now).into_iter().enumerate() {
            let mut spans = run.spans;
            // Business tags on the root only: the run context fills them in.
            let category = run.inputs.get("category").and_then(Value::as_str);
            let tier = run.inputs.pointer("/profile/tier").and_then(Value::as_str);
            for s in spans.iter_mut().filter(|s| s.parent_span_id.is_none()) {
                if let Some(c) = category {
                    s.tags.insert("category".into(), c.to_owned());
                }
                if let Some(t) = tier {
                    s.tags.insert("tier".into(), t.to_owned());
                }
            }
            if i % 6 == 0
                && let Some(root) = spans.iter().find(|s| s.parent_span_id.is_none())
            {
                // User feedback (a Langfuse score): read whole by the
                // session and user summaries.
                let mut score = Span::new(root.project.clone(), format!("score-{i}"));
                score.trace_id.clone_from(&root.trace_id);
                score.parent_span_id = Some(root.span_id.clone());
                score.node_type = Some("score".into());
                score.name = Some("satisfaction".into());
                score.start_time = root.start_time;
                score.user_id.clone_from(&root.user_id);
                score.session_id.clone_from(&root.session_id);
                score
                    .attributes
                    .insert("score.value".into(), format!("{}", i % 5 + 1));
                spans.push(score);
            }
            if i % 3 == 0 {
                // The root arrives last.
                spans.sort_by_key(|s| s.parent_span_id.is_none());
            }
            if i % 4 == 1
                && let Some(root) = spans.iter().find(|s| s.parent_span_id.is_none())
            {
                // The root first as running; its finished copy comes later.
                let mut running = root.clone();
                running.status = Some(Status::Running);
                running.raw_status = Some("running".into());
                running.end_time = None;
                running.output = None;
                running.error_message = None;
                out.push(vec![running]);
                later.push(root.clone());
                spans.retain(|s| s.parent_span_id.is_some());
            }
            if i % 5 == 2
                && let Some(tool) = spans.iter_mut().find(|s| s.tool_name.is_some())
            {
                // A tool span first without its output, completed by a
                // partial update (identity and the new fields only).
                let mut update = Span::new(tool.project.clone(), tool.span_id.clone());
                update.output = tool.output.take();
                update.end_time = tool.end_time.take();
                later.push(update);
            }
            for chunk in spans.chunks(7) {
                out.push(chunk.to_vec());
            }
        }
    }
    // A retry: the same batch again, as a client does when a reply is lost.
    if let Some(b) = out.get(3).cloned() {
        out.push(b);
    }
    out.push(later);
    out
}

async fn load(backend: &Backend, batches: &[Vec<Span>]) {
    for b in batches {
        backend
            .writer
            .append(b.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: append: {e}", backend.name));
    }
}

/// The batches split by project, each project's sent in order, the
/// projects side by side (as concurrent requests of two tenants arrive).
async fn load_concurrently(backend: &Backend, batches: &[Vec<Span>]) {
    let mut by_project: std::collections::BTreeMap<String, Vec<Vec<Span>>> = Default::default();
    for b in batches {
        let mut parts: std::collections::BTreeMap<String, Vec<Span>> = Default::default();
        for s in b {
            parts.entry(s.project.clone()).or_default().push(s.clone());
        }
        for (p, spans) in parts {
            by_project.entry(p).or_default().push(spans);
        }
    }
    let loads = by_project.values().map(|b| load(backend, b));
    futures::future::join_all(loads).await;
}

fn planned(text: &str, now: i64) -> Plan {
    let q = Query::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut opts = PlanOptions::at(now);
    opts.default_window_ns = 6 * 3_600 * 1_000_000_000;
    plan(&q, opts).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Questions every profile answers.
const QUERIES: &[&str] = &[
    "| count()",
    "status=error | count()",
    "status!=ok | count()",
    "status=running | count()",
    "NOT status=error | count()",
    "duration>1s | count()",
    "duration<=250ms span_kind=tool | count()",
    "tags.category=phone | count()",
    "tags.category=phone span_kind=tool | count()",
    "tags.category!=phone | count()",
    "NOT tags.category=phone | count()",
    "exists tags.tier | count()",
    "not exists tool_name | count()",
    "tool_name in (inventory, payment) | count()",
    "tags.category in (phone, books) status=error | count()",
    "error_message contains \"timed out\" | count()",
    "name icontains SEARCH | count()",
    "\"timed out\" | count()",
    // `_` and `%` are text, not patterns.
    "\"_\" | count()",
    "\"50%\" | count()",
    "total_tokens>100 | count()",
    "(tool_name=inventory OR tool_name=coupon) status=error | count()",
    "span_kind=workflow run has (tool_name=inventory status=error) | count()",
    "| by span_kind | count(), error_rate(), success_rate()",
    "| by span_kind | avg(duration), p50(duration), p90(duration), p95(duration), p99(duration)",
    "| by tags.category, tool_name | count(), min(duration), max(duration), sum(duration)",
    "| by tags.tier | sum(total_tokens), sum(cost), avg(cost), count_distinct(user_id)",
    "| by bucket(10m) | count(), error_rate()",
    "span_kind=tool | by tool_name | count() as n | sort n desc | limit 3",
    "span_kind=tool | by tool_name | p95(duration) | top 2",
    "| by error_class, attributes.loupe.error_signature | count()",
    "status=error | sort start_time desc | limit 25",
    "span_kind=workflow run has (tool_name=inventory status=error) | sort start_time desc | limit 20 | fields run_id, start_time, status, duration, tags.category",
    "span_kind=tool | sort duration desc | limit 10",
    "tags.category=phone span_kind=llm | sort start_time | limit 30",
    "status not in (ok) | count()",
    "status not exists | count()",
    "tags.category>laptop | count()",
    "tags.category contains ho | count()",
    "error_message not contains \"timed\" | count()",
    "name contains \"\" | count()",
    "NOT (status=ok OR tool_name=coupon) | count()",
    "status=error OR duration>2s | count()",
    "input_tokens>=10 input_tokens<=500 | count()",
    "span_kind=workflow run has (tool_name=inventory status=error) run has (span_kind=llm) | count()",
    "NOT run has (status=error) span_kind=workflow | count()",
    "attributes.loupe.error_signature contains timed | count()",
    "exists error_class | by error_class | count()",
    "exists model_name | by model_name | sum(input_tokens), sum(output_tokens), max(cost)",
    "| by tags.category | min(total_tokens), max(total_tokens), avg(total_tokens) | sort tags.category desc",
    "| by bucket(30m), span_kind | count()",
    "| count_distinct(session_id), count_distinct(tags.category), count_distinct(trace_id)",
    "span_kind=tool | by tool_name, status | count() as n | sort n desc, tool_name",
    // More rows than one stream window (50 in these tests).
    "| sort start_time | limit 300",
];

/// Questions only the modern profile answers (JSON inside input/output).
const MODERN_QUERIES: &[&str] = &[
    "span_kind=workflow | by input.category | count()",
    "exists input.category | count()",
    "exists input.profile.tier | by input.profile.tier | count()",
    "exists input.category | sort start_time desc | limit 30 | fields span_id, input.category, output",
];

/// Whether two answers are equal: same columns, same rows in the same
/// order; floats to 1e-9 relative (sums in another order).
fn same(a: &QueryResult, b: &QueryResult) -> Result<(), String> {
    if a.columns != b.columns {
        return Err(format!("columns {:?} vs {:?}", a.columns, b.columns));
    }
    if a.rows.len() != b.rows.len() {
        return Err(format!("{} rows vs {}", a.rows.len(), b.rows.len()));
    }
    for (i, (ra, rb)) in a.rows.iter().zip(&b.rows).enumerate() {
        for (x, y) in ra.iter().zip(rb) {
            let close = match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) if x.is_f64() || y.is_f64() => {
                    (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0)
                }
                _ => x == y,
            };
            if !close {
                return Err(format!("row {i}: {ra:?} vs {rb:?}"));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_gives_the_same_answer_on_every_backend() {
    let now = loupe_model::time::now_ns();
    let clickhouses = clickhouses("queries").await;
    if clickhouses.is_empty() {
        return;
    }
    let data = batches(now);
    let reference = embedded();
    load(&reference, &data).await;
    for b in &clickhouses {
        load_concurrently(b, &data).await;
    }
    let limits = QueryLimits::default();
    let mut failures = Vec::new();
    for project in ["alpha", "beta"] {
        let project = ProjectId::new(project).expect("project");
        for text in QUERIES.iter().chain(MODERN_QUERIES) {
            let plan = planned(text, now);
            let want = reference
                .reader
                .query(&project, &plan, limits)
                .await
                .unwrap_or_else(|e| panic!("embedded: {text}: {e}"));
            assert!(
                !want.rows.is_empty(),
                "{text}: the reference answer is empty, so it tests nothing"
            );
            for b in &clickhouses {
                if !b.modern && MODERN_QUERIES.contains(text) {
                    let got = b.reader.query(&project, &plan, limits).await;
                    assert!(
                        matches!(got, Err(loupe_backend::StoreError::Unsupported(_))),
                        "{}: {text}: want a typed Unsupported error",
                        b.name
                    );
                    continue;
                }
                match b.reader.query(&project, &plan, limits).await {
                    Ok(got) => {
                        if let Err(why) = same(&want, &got) {
                            failures.push(format!("{} [{project}] {text}: {why}", b.name));
                        }
                    }
                    Err(e) => failures.push(format!("{} [{project}] {text}: {e}", b.name)),
                }
                // The streamed answer (exports) holds the same rows.
                let streamed = streamed(&*b.reader, &project, &plan).await;
                if let Err(why) = same(&rows_only(&want), &streamed) {
                    failures.push(format!("{} [{project}] stream {text}: {why}", b.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A reader's streamed answer as rows (columns left out).
async fn streamed(reader: &dyn SpanReader, project: &ProjectId, plan: &Plan) -> QueryResult {
    use futures::StreamExt;
    let mut stream = reader
        .query_stream(project, plan, QueryLimits::default())
        .await
        .expect("query_stream");
    let mut rows = Vec::new();
    while let Some(batch) = stream.next().await {
        rows.extend(loupe_backend::plan::batch_rows(&batch.expect("batch")));
    }
    QueryResult {
        rows,
        ..QueryResult::default()
    }
}

fn rows_only(r: &QueryResult) -> QueryResult {
    QueryResult {
        rows: r.rows.clone(),
        ..QueryResult::default()
    }
}

fn json(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).expect("serialise")
}

/// JSON values equal but for float rounding (sums in another order).
fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        (Value::Number(p), Value::Number(q)) if p.is_f64() || q.is_f64() => {
            match (p.as_f64(), q.as_f64()) {
                (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                _ => false,
            }
        }
        _ => a == b,
    }
}

/// The spans of a reader's answer, comparable: sorted by id.
fn by_id(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_pages_and_merges_are_the_same_on_every_backend() {
    let now = loupe_model::time::now_ns();
    let clickhouses = clickhouses("reads").await;
    if clickhouses.is_empty() {
        return;
    }
    let data = batches(now);
    let reference = embedded();
    load(&reference, &data).await;
    for b in &clickhouses {
        load(b, &data).await;
    }
    let alpha = ProjectId::new("alpha").expect("project");
    let beta = ProjectId::new("beta").expect("project");
    let roots: Vec<Span> = data
        .iter()
        .flatten()
        .filter(|s| s.project == "alpha" && s.parent_span_id.is_none())
        .cloned()
        .collect();
    let run_ids: Vec<String> = roots.iter().filter_map(|s| s.run_id.clone()).collect();
    assert!(run_ids.len() >= 10);

    for b in &clickhouses {
        // One run: the same spans in the same tree order.
        for id in run_ids.iter().take(8) {
            let want = reference.reader.trace(&alpha, id).await.expect("trace");
            let got = b.reader.trace(&alpha, id).await.expect("trace");
            assert!(!want.is_empty());
            assert_eq!(want, got, "{}: trace {id}", b.name);
            // Another project never sees it.
            assert!(
                b.reader.trace(&beta, id).await.expect("trace").is_empty(),
                "{}: beta sees alpha's run",
                b.name
            );
        }
        // Many runs at once, and the bound.
        let q = TracesQuery {
            ids: run_ids.clone(),
            columns: Vec::new(),
            max_spans: 100_000,
        };
        let want = reference.reader.traces(&alpha, &q).await.expect("traces");
        let got = b.reader.traces(&alpha, &q).await.expect("traces");
        assert_eq!(want.map(by_id), got.map(by_id), "{}: traces", b.name);
        let small = TracesQuery {
            max_spans: 3,
            ..q.clone()
        };
        assert_eq!(b.reader.traces(&alpha, &small).await.expect("traces"), None);

        // Keyset pages, newest first, walked to the end with a filter.
        for filter in [
            SpanFilter::default(),
            SpanFilter {
                status: Some(Status::Error),
                ..SpanFilter::default()
            },
        ] {
            let mut walk = Vec::new();
            for reader in [&reference.reader, &b.reader] {
                let mut cursor = None;
                let mut pages = Vec::new();
                loop {
                    let page = reader
                        .list(SpanQuery {
                            project: alpha.clone(),
                            filter: filter.clone(),
                            limit: 37,
                            cursor: cursor.clone(),
                        })
                        .await
                        .expect("list");
                    pages.push(page.spans);
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                walk.push(pages);
            }
            assert!(walk[0].len() > 1 || filter.status.is_some());
            assert_eq!(walk[0], walk[1], "{}: list pages", b.name);
        }

        // Sessions and users: the same run summaries.
        let sessions: Vec<String> = roots.iter().filter_map(|s| s.session_id.clone()).collect();
        let users: Vec<String> = roots.iter().filter_map(|s| s.user_id.clone()).collect();
        assert!(!sessions.is_empty() && !users.is_empty());
        for id in sessions.iter().take(5) {
            let want = reference
                .reader
                .session_runs(&alpha, id)
                .await
                .expect("runs");
            let got = b.reader.session_runs(&alpha, id).await.expect("runs");
            assert!(!want.is_empty());
            let (want, got) = (json(&want), json(&got));
            assert!(
                close(&want, &got),
                "{}: session {id}: {want} vs {got}",
                b.name
            );
        }
        let mut feedback = 0;
        for id in users.iter().take(12) {
            let want = reference
                .reader
                .user_summary(&alpha, id)
                .await
                .expect("user");
            let got = b.reader.user_summary(&alpha, id).await.expect("user");
            assert!(want.is_some());
            feedback += want.as_ref().map_or(0, |u| u.feedback.len());
            let (want, got) = (json(&want), json(&got));
            assert!(close(&want, &got), "{}: user {id}: {want} vs {got}", b.name);
        }
        assert!(feedback > 0, "no compared user had feedback scores");
        // The same user name in another project is another user.
        let want = reference.reader.user_summary(&beta, &users[0]).await;
        let got = b.reader.user_summary(&beta, &users[0]).await;
        let (want, got) = (json(&want.expect("user")), json(&got.expect("user")));
        assert!(close(&want, &got), "{}: beta's {}", b.name, users[0]);
        assert_eq!(
            b.reader.user_summary(&beta, "nobody").await.expect("user"),
            None,
            "{}",
            b.name
        );

        // Offset pages with a total.
        for oldest_first in [true, false] {
            let q = PageQuery {
                project: alpha.clone(),
                filter: SpanFilter::default(),
                conds: vec![loupe_backend::Cond::Root],
                offset: 5,
                limit: 10,
                oldest_first,
                count: true,
            };
            let want = reference.reader.page(q.clone()).await.expect("page");
            let got = b.reader.page(q).await.expect("page");
            assert_eq!(want.total, got.total, "{}: page total", b.name);
            assert_eq!(want.spans, got.spans, "{}: page", b.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_span_sent_again_finished_is_one_finished_row() {
    let now = loupe_model::time::now_ns();
    let clickhouses = clickhouses("merge").await;
    if clickhouses.is_empty() {
        return;
    }
    let project = ProjectId::new("gamma").expect("project");
    let mut root = Span::new("gamma", "root-1");
    root.trace_id = Some("trace-1".into());
    root.run_id = Some("run-1".into());
    root.span_kind = Some(loupe_model::SpanKind::Workflow);
    root.start_time = Some(now - 10 * MIN_NS);
    root.status = Some(Status::Running);
    root.tags.insert("category".into(), "phone".into());
    let mut child = Span::new("gamma", "tool-1");
    child.trace_id = Some("trace-1".into());
    child.parent_span_id = Some("root-1".into());
    child.tool_name = Some("inventory".into());
    child.start_time = Some(now - 9 * MIN_NS);
    child.end_time = Some(now - 8 * MIN_NS);
    child.status = Some(Status::Error);
    let mut finished = Span::new("gamma", "root-1");
    finished.status = Some(Status::Ok);
    finished.end_time = Some(now - 5 * MIN_NS);
    finished.output = Some("done".into());
    // A database copy outranks a provider's later copy (`merge_from`).
    let mut db = finished.clone();
    db.source = Some("dify_db".into());
    db.output = Some("exact output".into());
    let mut provider = finished.clone();
    provider.source = Some("otlp".into());
    provider.output = Some("truncated".into());
    // A later child brings a new tag: the run's stored spans get it too.
    let mut tagged = child.clone();
    tagged.span_id = "tool-2".into();
    tagged.status = Some(Status::Ok);
    tagged.tags.insert("priority".into(), "high".into());
    // A span first filed under another trace, then moved: only its newest
    // version counts, in lookups as in queries.
    let mut moved = Span::new("gamma", "moved-1");
    moved.trace_id = Some("trace-old".into());
    moved.start_time = Some(now - 7 * MIN_NS);
    let mut moved_later = Span::new("gamma", "moved-1");
    moved_later.trace_id = Some("trace-new".into());
    let sends = [
        vec![child.clone()],
        vec![root.clone()],
        vec![finished.clone()],
        vec![finished],
        vec![db],
        vec![provider],
        vec![tagged],
        vec![moved],
        vec![moved_later],
    ];
    let reference = embedded();
    load(&reference, &sends).await;
    for b in &clickhouses {
        load(b, &sends).await;
        for reader in [&reference.reader, &b.reader] {
            let spans = reader.trace(&project, "run-1").await.expect("trace");
            assert_eq!(spans.len(), 3, "{}: {spans:#?}", b.name);
            assert!(
                spans
                    .iter()
                    .all(|s| s.tags.get("priority").map(String::as_str) == Some("high")),
                "{}: the late tag reached every span: {spans:#?}",
                b.name
            );
            let root = &spans[0];
            assert_eq!(root.span_id, "root-1");
            assert_eq!(root.status, Some(Status::Ok));
            assert_eq!(root.output.as_deref(), Some("exact output"));
            assert_eq!(root.duration_ns(), Some(5 * MIN_NS));
            // The late root's run id and tag reached the child.
            assert_eq!(spans[1].run_id.as_deref(), Some("run-1"));
            assert_eq!(
                spans[1].tags.get("category").map(String::as_str),
                Some("phone")
            );
        }
        for reader in [&reference.reader, &b.reader] {
            let old = reader.trace(&project, "trace-old").await.expect("trace");
            assert!(old.is_empty(), "{}: {old:#?}", b.name);
            let new = reader.trace(&project, "trace-new").await.expect("trace");
            assert_eq!(new.len(), 1, "{}", b.name);
            let q = TracesQuery {
                ids: vec!["trace-old".into(), "trace-new".into()],
                columns: Vec::new(),
                max_spans: 10,
            };
            let many = reader.traces(&project, &q).await.expect("traces");
            assert_eq!(many.map(|s| s.len()), Some(1), "{}", b.name);
        }
        let plan = planned("status=running | count()", now);
        let got = b
            .reader
            .query(&project, &plan, QueryLimits::default())
            .await
            .expect("query");
        assert_eq!(got.rows, vec![vec![Value::from(0)]], "{}", b.name);
        let plan = planned("tags.category=phone | count()", now);
        let got = b
            .reader
            .query(&project, &plan, QueryLimits::default())
            .await
            .expect("query");
        assert_eq!(got.rows, vec![vec![Value::from(3)]], "{}", b.name);
    }
}

/// The peer servers of a multi-server case: their URLs (`urls_var`) and
/// the cluster they form (`cluster_var`); `None` outside CI when unset.
fn cluster_peers(urls_var: &str, cluster_var: &str) -> Option<(Vec<String>, String)> {
    let urls = optional_peer(urls_var, "scripts/peers/clickhouse.sh")?;
    let cluster = std::env::var(cluster_var)
        .unwrap_or_else(|_| panic!("{cluster_var} is not set: run scripts/peers/clickhouse.sh"));
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    assert!(urls.len() >= 2, "two server urls expected in {urls_var}");
    Some((urls, cluster))
}

/// Every question of `QUERIES` asked of `store` about `alpha` equals the
/// embedded store's answer.
async fn answers_like_embedded(reference: &Backend, store: &ClickHouseStore, now: i64, what: &str) {
    let alpha = ProjectId::new("alpha").expect("project");
    for text in QUERIES {
        let plan = planned(text, now);
        let want = reference
            .reader
            .query(&alpha, &plan, QueryLimits::default())
            .await
            .expect("embedded");
        let got = store
            .query(&alpha, &plan, QueryLimits::default())
            .await
            .unwrap_or_else(|e| panic!("{what}: {text}: {e}"));
        if let Err(why) = same(&want, &got) {
            panic!("{what}: {text}: {why}");
        }
    }
}

/// A number one server answers to `sql` (a count), asked directly.
async fn count_on(url: &str, sql: String) -> u64 {
    let text = reqwest::Client::new()
        .post(url)
        .body(sql)
        .send()
        .await
        .expect("count")
        .text()
        .await
        .expect("text");
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{url}: not a number: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_table_over_two_shards_answers_like_one_server() {
    let Some((urls, cluster)) = cluster_peers(
        "LOUPE_TEST_CLICKHOUSE_SHARD_URLS",
        "LOUPE_TEST_CLICKHOUSE_CLUSTER",
    ) else {
        return;
    };
    let now = loupe_model::time::now_ns();
    let db = database("dist");
    // Each server gets the local and Distributed tables (no ZooKeeper for
    // `ON CLUSTER`); the first one is written and read.
    let mut stores = Vec::new();
    for url in urls.iter().rev() {
        let mut config = ClickHouseConfig::new(url);
        config.database = db.clone();
        config.cluster = Some(cluster.clone());
        stores.push(ClickHouseStore::connect(config).await.expect("connect"));
    }
    let Some(store) = stores.pop() else {
        return;
    };
    let data = batches(now);
    let reference = embedded();
    load(&reference, &data).await;
    let tier = tier_config(&["category"], &["tier"]);
    store.keep_hour_tier(&tier).await.expect("hour tier");
    for b in &data {
        store.append(b.clone()).await.expect("append");
    }
    answers_like_embedded(&reference, &store, now, "distributed").await;
    // The hour tier's deltas, sharded too, sum to the spans' entries.
    assert_tier_counts_the_stored_spans(&store, &tier, "distributed").await;
    // Both shards hold rows: the table is really sharded.
    for url in &urls {
        let n = count_on(url, format!("SELECT count() FROM {db}.spans_local")).await;
        assert!(n > 0, "shard {url} holds no rows");
    }
}

/// Two replicas of one shard (`ReplicatedReplacingMergeTree` through
/// ZooKeeper, inserts acknowledged by both: `insert_quorum = 2`) behind a
/// `Distributed` table: what is written through one server is answered by
/// the other exactly as the embedded store answers, and each replica holds
/// every span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_tables_answer_the_same_from_either_replica() {
    let Some((urls, cluster)) = cluster_peers(
        "LOUPE_TEST_CLICKHOUSE_REPLICA_URLS",
        "LOUPE_TEST_CLICKHOUSE_REPLICA_CLUSTER",
    ) else {
        return;
    };
    let now = loupe_model::time::now_ns();
    let db = database("repl");
    let mut stores = Vec::new();
    for url in &urls {
        let mut config = ClickHouseConfig::new(url);
        config.database = db.clone();
        config.cluster = Some(cluster.clone());
        config.replicated = true;
        config.insert_quorum = 2;
        stores.push(ClickHouseStore::connect(config).await.expect("connect"));
    }
    let data = batches(now);
    let reference = embedded();
    load(&reference, &data).await;
    let tier = tier_config(&["category"], &["tier"]);
    stores[0].keep_hour_tier(&tier).await.expect("hour tier");
    for b in &data {
        stores[0]
            .append(b.clone())
            .await
            .expect("append with a quorum of two");
    }
    answers_like_embedded(&reference, &stores[1], now, "replica").await;
    // The tier's replicated table too sums to the spans' entries.
    assert_tier_counts_the_stored_spans(&stores[0], &tier, "replica").await;
    // Each replica's own table holds every span: the quorum acknowledged
    // each insert once both had it.
    let alpha = ProjectId::new("alpha").expect("project");
    let want = loupe_backend::copy::total(&*reference.reader, &alpha)
        .await
        .expect("count");
    for url in &urls {
        let sql = format!("SELECT count() FROM {db}.spans_local FINAL WHERE project = 'alpha'");
        assert_eq!(count_on(url, sql).await, want, "replica {url}");
    }
    // The same database asked for without replication is refused: its
    // table is replicated, and the config would not say so.
    let mut plain = ClickHouseConfig::new(&urls[0]);
    plain.database = db.clone();
    plain.cluster = Some(cluster.clone());
    let e = ClickHouseStore::connect(plain)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("store.clickhouse.replicated")),
        "{e:?}"
    );
    // A quorum without replication is a config error naming the key.
    let mut bad = ClickHouseConfig::new(&urls[0]);
    bad.insert_quorum = 2;
    let e = ClickHouseStore::connect(bad)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("store.clickhouse.insert_quorum")),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_would_end_a_sql_literal_is_stored_and_matched_exactly() {
    use loupe_backend::plan::{
        AggKind, Aggregate, Cmp, FieldRef, Filter, GroupKey, Literal, Output, Source,
    };
    let now = loupe_model::time::now_ns();
    let clickhouses = clickhouses("quotes").await;
    if clickhouses.is_empty() {
        return;
    }
    let key = "we'ird\\key\n";
    let value = "it's a \\\"trap\\\" \n\t ünïcode ') OR 1=1 --";
    let mut s = Span::new("delta", "s'1\\");
    s.trace_id = Some("t'1".into());
    s.start_time = Some(now - MIN_NS);
    s.name = Some("'); DROP TABLE spans; --".into());
    s.attributes.insert(key.into(), value.into());
    s.tags.insert(key.into(), value.into());
    let mut other = Span::new("delta", "s2");
    other.start_time = Some(now - MIN_NS);
    other.attributes.insert(key.into(), "plain".into());
    let project = ProjectId::new("delta").expect("project");
    let count = |filter: Filter| Plan {
        source: Source::Spans,
        from_ns: now - 3_600 * 1_000_000_000,
        to_ns: now,
        filter: Some(filter),
        group_by: vec![GroupKey::Field(FieldRef::Tag(key.into()))],
        aggregates: vec![Aggregate {
            kind: AggKind::Count,
            field: None,
            name: "n".into(),
        }],
        sort: vec![],
        limit: None,
        output: Output::Aggregates,
        approx_percentiles: false,
    };
    let plans = [
        count(Filter::Compare {
            field: FieldRef::Attribute(key.into()),
            op: Cmp::Eq,
            value: Literal::Text(value.into()),
        }),
        count(Filter::Contains {
            field: FieldRef::Column {
                name: "name".into(),
                ty: loupe_backend::plan::ValueType::Text,
            },
            value: "DROP TABLE".into(),
            ignore_case: false,
        }),
        count(Filter::Exists(FieldRef::Attribute(key.into()))),
    ];
    let reference = embedded();
    let sends = [vec![s.clone(), other]];
    load(&reference, &sends).await;
    for b in &clickhouses {
        load(b, &sends).await;
        let got = b.reader.trace(&project, "t'1").await.expect("trace");
        assert_eq!(got, vec![s.clone()], "{}", b.name);
        for plan in &plans {
            let want = reference
                .reader
                .query(&project, plan, QueryLimits::default())
                .await
                .expect("embedded");
            let got = b
                .reader
                .query(&project, plan, QueryLimits::default())
                .await
                .expect("clickhouse");
            same(&want, &got).unwrap_or_else(|why| panic!("{}: {plan:?}: {why}", b.name));
        }
        let first = b
            .reader
            .query(&project, &plans[0], QueryLimits::default())
            .await
            .expect("query");
        assert_eq!(
            first.rows,
            vec![vec![Value::from(value), Value::from(1)]],
            "{}",
            b.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_typed_and_say_whose_fault_they_are() {
    use loupe_backend::StoreError;
    // No server needed: a closed port is unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let e = ClickHouseStore::connect(ClickHouseConfig::new(format!("http://127.0.0.1:{port}")))
        .await
        .err();
    assert!(
        matches!(e, Some(loupe_clickhouse::Error::Unreachable(_))),
        "{e:?}"
    );
    // A server that takes the request and never answers: the timeout ends
    // the wait (streamed answers only wait that long for each piece, so a
    // silent server must still be given up on).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let mut config = ClickHouseConfig::new(format!("http://127.0.0.1:{port}"));
    config.timeout = std::time::Duration::from_millis(500);
    let e = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        ClickHouseStore::connect(config),
    )
    .await
    .expect("still waiting for a silent server after 20 s")
    .err();
    assert!(
        matches!(e, Some(loupe_clickhouse::Error::Unreachable(_))),
        "{e:?}"
    );
    held.abort();
    let Some(url) = optional_peer("LOUPE_TEST_CLICKHOUSE_URL", "scripts/peers/clickhouse.sh")
    else {
        return;
    };
    let now = loupe_model::time::now_ns();
    // The modern profile on 18.16 is refused, naming the key.
    let mut modern = ClickHouseConfig::new(&url);
    modern.profile = loupe_clickhouse::ProfileChoice::Modern;
    let e = ClickHouseStore::connect(modern)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("store.clickhouse.profile")),
        "{e:?}"
    );
    let mut config = ClickHouseConfig::new(&url);
    config.database = database("errors");
    config.max_response_bytes = 1 << 16;
    let store = ClickHouseStore::connect(config).await.expect("connect");
    let project = ProjectId::new("eps").expect("project");
    let mut big = Span::new("eps", "big");
    big.trace_id = Some("tb".into());
    big.start_time = Some(now - MIN_NS);
    big.input = Some("x".repeat(200_000));
    SpanWriter::append(&store, vec![big]).await.expect("append");
    // An answer over the bound fails; it is Loupe's failure (5xx).
    let e = SpanReader::trace(&store, &project, "tb").await.err();
    assert!(
        matches!(&e, Some(StoreError::Internal(m)) if m.contains("larger than")),
        "{e:?}"
    );
    // A scan reads its answer as it arrives, each row under the bound: the
    // row with the big input fails it, the same rows without it do not.
    {
        use futures::TryStreamExt;
        let schema = loupe_model::schema();
        let mut request = loupe_backend::ScanRequest {
            columns: vec![schema.index_of("span_id").expect("column")],
            ..Default::default()
        };
        let rows: Vec<arrow::array::RecordBatch> =
            SpanReader::scan(&store, &project, request.clone())
                .await
                .expect("scan")
                .try_collect()
                .await
                .expect("scan batches");
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        request
            .columns
            .push(schema.index_of("input").expect("column"));
        let e = match SpanReader::scan(&store, &project, request).await {
            Ok(batches) => batches.try_collect::<Vec<_>>().await.err(),
            Err(e) => Some(e),
        };
        assert!(
            matches!(&e, Some(StoreError::Internal(m)) if m.contains("larger than")),
            "{e:?}"
        );
    }
    // A plan naming no output column to sort by is the caller's mistake.
    let mut plan = planned("| by tool_name | count()", now);
    plan.sort = vec![loupe_backend::plan::SortKey {
        column: loupe_backend::plan::SortColumn::Output("nope".into()),
        descending: false,
    }];
    let e = SpanReader::query(&store, &project, &plan, QueryLimits::default())
        .await
        .err();
    assert!(matches!(e, Some(StoreError::Invalid(_))), "{e:?}");
    let e = SpanReader::query_stream(&store, &project, &plan, QueryLimits::default())
        .await
        .err();
    assert!(matches!(e, Some(StoreError::Invalid(_))), "{e:?}");
    // A database records its schema version: another version is refused,
    // and so is a `spans` table Loupe did not make.
    let client = reqwest::Client::new();
    let run = async |sql: String| {
        let resp = client.post(&url).body(sql).send().await.expect("send");
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    };
    let db = database("errors");
    run(format!("DROP TABLE {db}.loupe_meta")).await;
    run(format!(
        "CREATE TABLE {db}.loupe_meta (key String, value String) ENGINE = TinyLog"
    ))
    .await;
    run(format!(
        "INSERT INTO {db}.loupe_meta VALUES ('schema_version', '99'), ('profile', 'legacy')"
    ))
    .await;
    let mut again = ClickHouseConfig::new(&url);
    again.database = db.clone();
    let e = ClickHouseStore::connect(again)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("schema version 99")),
        "{e:?}"
    );
    let foreign = database("foreign");
    run(format!("CREATE DATABASE {foreign}")).await;
    run(format!(
        "CREATE TABLE {foreign}.spans (x UInt8) ENGINE = TinyLog"
    ))
    .await;
    let mut other = ClickHouseConfig::new(&url);
    other.database = foreign;
    let e = ClickHouseStore::connect(other)
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("not made by this version of Loupe")),
        "{e:?}"
    );
    // A span without an id writes nothing and says why.
    let e = SpanWriter::append(&store, vec![Span::new("eps", "")])
        .await
        .err();
    assert!(matches!(e, Some(StoreError::Invalid(_))), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_across_many_days_with_long_ids_is_stored_whole() {
    // More days than one INSERT may span (ClickHouse refuses a block over
    // 100 partitions) and ids long enough that one `IN` list of them would
    // pass the 256 KiB statement limit: the backend splits both.
    let now = loupe_model::time::now_ns();
    let clickhouses = clickhouses("days").await;
    if clickhouses.is_empty() {
        return;
    }
    const DAY: i64 = 86_400 * 1_000_000_000;
    let id = |kind: &str, i: i64| format!("{kind}-{i:0>1500}");
    let spans: Vec<Span> = (1..=150)
        .map(|i| {
            let mut s = Span::new("epsilon", id("span", i));
            s.trace_id = Some(id("trace", i));
            s.start_time = Some(now - i * DAY);
            s.end_time = Some(now - i * DAY + MIN_NS);
            s.status = Some(Status::Ok);
            s
        })
        .collect();
    let project = ProjectId::new("epsilon").expect("project");
    let plan = Plan {
        from_ns: now - 200 * DAY,
        ..planned("| count(), sum(duration)", now)
    };
    for b in &clickhouses {
        load(b, std::slice::from_ref(&spans)).await;
        // Sent twice: still one row per span.
        load(b, std::slice::from_ref(&spans)).await;
        let got = b
            .reader
            .query(&project, &plan, QueryLimits::default())
            .await
            .expect("query");
        assert_eq!(
            got.rows,
            vec![vec![Value::from(150), Value::from(150 * MIN_NS)]],
            "{}",
            b.name
        );
        let q = TracesQuery {
            ids: (1..=150).map(|i| id("trace", i)).collect(),
            columns: Vec::new(),
            max_spans: 1_000,
        };
        let found = b.reader.traces(&project, &q).await.expect("traces");
        assert_eq!(found.map(|s| s.len()), Some(150), "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_data_directory_into_clickhouse_with_equal_answers() {
    let mut peers = Vec::new();
    if let Some(url) = optional_peer("LOUPE_TEST_CLICKHOUSE_URL", "scripts/peers/clickhouse.sh") {
        peers.push(url);
    }
    if let Some(url) = optional_peer("LOUPE_TEST_CHDB_URL", "scripts/peers/chdb.sh") {
        peers.push(url);
    }
    if peers.is_empty() {
        return;
    }
    let now = loupe_model::time::now_ns();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        data_dir: dir.path().to_path_buf(),
        ..StoreConfig::default()
    };
    {
        let store =
            Store::open(config.clone(), loupe_rollup::RollupConfig::default()).expect("open store");
        let mut data = batches(now);
        // A span without a start time is copied too.
        let mut timeless = Span::new("alpha", "no-start");
        timeless.status = Some(Status::Ok);
        data.push(vec![timeless]);
        for b in data {
            store.append(b).await.expect("append");
        }
        store.flush_all().await.expect("flush");
        store.shutdown().await.expect("shutdown");
    }
    let source = Store::open_read_only(config, loupe_rollup::RollupConfig::default())
        .expect("open read-only");
    let db = database("migrate");
    let migrate = |url: &str, db: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args(["migrate", "--to", "clickhouse", "--clickhouse-url"])
            .arg(url)
            .args(["--clickhouse-database", db, "--batch", "300", "--data-dir"])
            .arg(dir.path())
            .env_remove("LOUPE_CONFIG")
            .output()
            .expect("run loupe migrate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let checkpoint = dir.path().join("migrate-checkpoint.json");
    let forge = |url: &str, db: &str, bulk: bool, done_before: i64| {
        let mark = serde_json::json!({
            "target": format!("{url}#{db}"),
            "projects": {"alpha": {"bulk": bulk, "done_before": done_before, "copied": 0}}
        });
        std::fs::write(&checkpoint, mark.to_string()).expect("write checkpoint");
    };
    for url in &peers {
        for (attempt, mode) in [(0, "bulk load"), (1, "merged as live writes")] {
            // The first run bulk-loads an empty database; the second finds
            // everything there, merges, and changes nothing.
            let (ok, stderr) = migrate(url, &db);
            assert!(
                ok && stderr.contains("every project's span count matches")
                    && stderr.contains(mode),
                "{url} run {attempt}: {stderr}"
            );
            assert!(
                !checkpoint.exists(),
                "{url}: a finished copy keeps no checkpoint"
            );
        }
        let mut config = ClickHouseConfig::new(url);
        config.database = db.clone();
        let target = ClickHouseStore::connect(config).await.expect("connect");
        for project in ["alpha", "beta"] {
            let project = ProjectId::new(project).expect("project");
            for text in QUERIES {
                let plan = planned(text, now);
                let want = SpanReader::query(&source, &project, &plan, QueryLimits::default())
                    .await
                    .expect("data directory");
                let got = target
                    .query(&project, &plan, QueryLimits::default())
                    .await
                    .expect("clickhouse");
                same(&want, &got).unwrap_or_else(|why| panic!("{url} {text}: {why}"));
            }
        }
        let alpha = ProjectId::new("alpha").expect("project");
        let timeless = SpanReader::list(
            &target,
            SpanQuery {
                project: alpha.clone(),
                filter: SpanFilter::default(),
                limit: 1000,
                cursor: Some(loupe_backend::Cursor {
                    start_time: i64::MIN,
                    span_id: char::MAX.to_string(),
                }),
            },
        )
        .await
        .expect("list");
        assert_eq!(timeless.spans.len(), 1, "{url}: the span without a start");

        // A live write wins over a bulk copy made after it: the copy's
        // rows are stored under a version below every live write's.
        let first = SpanReader::list(
            &source,
            SpanQuery {
                project: alpha.clone(),
                filter: SpanFilter::default(),
                limit: 1,
                cursor: None,
            },
        )
        .await
        .expect("list")
        .spans
        .remove(0);
        let mut live = Span::new("alpha", first.span_id.clone());
        live.attributes.insert("live".into(), "yes".into());
        SpanWriter::append(&target, vec![live])
            .await
            .expect("live write");
        forge(url, &db, true, i64::MIN);
        let (ok, stderr) = migrate(url, &db);
        assert!(ok && stderr.contains("resuming"), "{url}: {stderr}");
        let trace_id = first.trace_id.clone().expect("trace id");
        let stored = SpanReader::trace(&target, &alpha, &trace_id)
            .await
            .expect("trace")
            .into_iter()
            .find(|s| s.span_id == first.span_id)
            .expect("the span");
        assert_eq!(
            stored.attributes.get("live").map(String::as_str),
            Some("yes"),
            "{url}: the bulk copy replaced a live write"
        );

        // An interrupted copy resumes at its checkpoint: the hours before
        // it are not read again (here, forged past the first hours, the
        // counts then differ), and the run after starts afresh.
        let db2 = format!("{db}_resume");
        let resume_at = now - 2 * 3_600 * 1_000_000_000;
        forge(url, &db2, true, resume_at);
        let (ok, stderr) = migrate(url, &db2);
        assert!(
            !ok && stderr.contains("resuming") && stderr.contains("span counts differ"),
            "{url}: {stderr}"
        );
        let (ok, stderr) = migrate(url, &db2);
        assert!(
            ok && stderr.contains("merged as live writes") && !stderr.contains("resuming"),
            "{url}: {stderr}"
        );
    }
}

/// `SpanReader::scan` (what the SQL engine above ClickHouse reads): the
/// columns asked for, in batches of the size asked for, narrowed by the
/// time bounds and equalities given, newest versions, one project; and
/// SQL through the data directory's engine over it answers as the
/// embedded store's own SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_narrow_as_asked_and_sql_over_them_answers_as_the_embedded_store() {
    use futures::TryStreamExt;
    let now = loupe_model::time::now_ns();
    let clickhouses = clickhouses("scans").await;
    if clickhouses.is_empty() {
        return;
    }
    let data = batches(now);
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = Store::open(
        StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open store");
    for b in &data {
        SpanWriter::append(&reference, b.clone())
            .await
            .expect("append");
    }
    let schema = loupe_model::schema();
    let index = |name: &str| schema.index_of(name).expect("column");
    let (from, to) = (now - 150 * MIN_NS, now - 30 * MIN_NS);
    let request = loupe_backend::ScanRequest {
        columns: vec![
            index("span_id"),
            index("span_kind"),
            index("start_time"),
            index("tags"),
            index("_version"),
        ],
        min_start_ns: Some(from),
        max_start_ns: Some(to),
        any_of: vec![vec![("span_kind".into(), "llm".into())]],
        batch_rows: 7,
    };
    let limits = QueryLimits::default();
    let count = |r: &QueryResult| r.rows[0][0].as_u64().expect("count");
    let want = reference
        .read_only_sql(
            &ProjectId::new("alpha").expect("project"),
            &format!(
                "SELECT count(*) FROM spans WHERE span_kind = 'llm' \
                 AND start_time >= to_timestamp_nanos({from}) \
                 AND start_time <= to_timestamp_nanos({to})"
            ),
            limits,
        )
        .await
        .expect("reference count");
    assert!(count(&want) > 14, "{want:?}: more than two batches' worth");
    // SQL over ClickHouse's rows runs in an engine that holds no spans.
    let engine_dir = tempfile::tempdir().expect("tempdir");
    let engine = Store::open(
        StoreConfig {
            data_dir: engine_dir.path().to_path_buf(),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open engine");
    for b in &clickhouses {
        load_concurrently(b, &data).await;
        let project = ProjectId::new("alpha").expect("project");
        let batches: Vec<arrow::array::RecordBatch> = b
            .reader
            .scan(&project, request.clone())
            .await
            .unwrap_or_else(|e| panic!("{}: scan: {e}", b.name))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{}: scan batches: {e}", b.name));
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, count(&want), "{}: rows scanned", b.name);
        for batch in &batches {
            assert!(
                batch.num_rows() <= 7,
                "{}: a batch of {}",
                b.name,
                batch.num_rows()
            );
            assert_eq!(
                batch.schema(),
                Arc::new(schema.project(&request.columns).expect("project schema")),
                "{}",
                b.name
            );
            for row in loupe_backend::plan::batch_rows(batch) {
                assert_eq!(row[1], "llm", "{}: {row:?}", b.name);
                let t = row[2].as_i64().expect("start");
                assert!((from..=to).contains(&t), "{}: {row:?}", b.name);
            }
        }
        for sql in [
            "SELECT count(*) AS n, count(DISTINCT span_id) AS spans FROM spans",
            "SELECT status, tags['category'] AS c, count(*) AS n FROM spans \
             GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT span_id, output FROM spans WHERE tool_name IS NOT NULL \
             ORDER BY start_time, span_id LIMIT 5",
            "SELECT count(*) FROM spans WHERE trace_id = 'no-such-trace'",
            // A literal that would end ClickHouse's if it were not quoted.
            "SELECT count(*) FROM spans WHERE name = 'no-such-name'' OR =--\\'",
        ] {
            for p in ["alpha", "beta"] {
                let project = ProjectId::new(p).expect("project");
                let want = reference
                    .read_only_sql(&project, sql, limits)
                    .await
                    .unwrap_or_else(|e| panic!("embedded: {sql}: {e}"));
                let got = engine
                    .read_only_sql_over(b.reader.clone(), &project, sql, limits)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {sql}: {e}", b.name));
                assert_eq!(json(&got.rows), json(&want.rows), "{} [{p}]: {sql}", b.name);
                assert_eq!(
                    got.stats.rows_scanned.is_some_and(|n| n > 0),
                    !sql.contains("no-such-"),
                    "{}: {sql}: {:?}",
                    b.name,
                    got.stats
                );
            }
        }
    }
}

/// The rollup config of the hour tier tests: a label and an hour tag, both
/// business tags the batches carry on every span (the run context fills
/// them in from the root).
fn tier_config(labels: &[&str], tags: &[&str]) -> loupe_rollup::RollupConfig {
    loupe_rollup::RollupConfig {
        labels: labels.iter().map(|s| (*s).to_owned()).collect(),
        hour_tags: tags.iter().map(|s| (*s).to_owned()).collect(),
        ..loupe_rollup::RollupConfig::default()
    }
}

/// Every dimension of a tier with `labels` labels and `tags` hour tags.
fn every_dim(labels: usize, tags: usize) -> Vec<loupe_clickhouse::HourDim> {
    use loupe_clickhouse::HourDim as D;
    let mut dims = vec![
        D::SpanKind,
        D::NodeType,
        D::ToolName,
        D::ModelName,
        D::AppId,
        D::WorkflowId,
        D::Status,
        D::ErrorClass,
        D::ErrorSignature,
        D::Child,
        D::Name,
        D::AppName,
        D::WorkflowVersion,
        D::ModelProvider,
    ];
    dims.extend((0..labels).map(D::Label));
    dims.extend((0..tags).map(D::HourTag));
    dims
}

type TierEntries = std::collections::BTreeMap<String, loupe_rollup::HourMeasures>;

/// ClickHouse's hour tier of `project`, every dimension kept, by entry.
async fn tier_of(
    store: &ClickHouseStore,
    project: &ProjectId,
    config: &loupe_rollup::RollupConfig,
) -> TierEntries {
    let dims = every_dim(config.labels.len(), config.hour_tags.len());
    let tier = store
        .hour_slice(
            project,
            i64::MIN / 2,
            i64::MAX / 2,
            &loupe_clickhouse::HourAsk {
                dims: &dims,
                required: &[],
                histograms: true,
            },
        )
        .await
        .expect("hour slice")
        .expect("a complete tier");
    assert_eq!(
        (tier.labels, tier.tags),
        (config.labels.clone(), config.hour_tags.clone())
    );
    let mut out = TierEntries::new();
    for (hour, key, nodes) in tier.slice.series() {
        for (node, m) in nodes {
            out.insert(format!("{hour} {key:?} {node:?}"), m.clone());
        }
    }
    out
}

/// What the tier should hold: the entries of every span stored, as the
/// embedded store's rollups count them.
async fn entries_of_stored(
    store: &ClickHouseStore,
    project: &ProjectId,
    config: &loupe_rollup::RollupConfig,
) -> TierEntries {
    let mut out = TierEntries::new();
    let mut cursor = None;
    loop {
        let page = SpanReader::list(
            store,
            SpanQuery {
                project: project.clone(),
                filter: SpanFilter::default(),
                limit: 1000,
                cursor,
            },
        )
        .await
        .expect("list");
        for s in &page.spans {
            if let Some(e) = loupe_rollup::HourEntry::of(s, config) {
                out.entry(format!("{} {:?} {:?}", e.hour, e.key, e.node))
                    .or_default()
                    .merge(&e.measures);
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out
}

async fn assert_tier_counts_the_stored_spans(
    store: &ClickHouseStore,
    config: &loupe_rollup::RollupConfig,
    what: &str,
) {
    for project in ["alpha", "beta"] {
        let project = ProjectId::new(project).expect("project");
        let want = entries_of_stored(store, &project, config).await;
        assert!(want.len() > 20, "{what}: {} entries", want.len());
        let got = tier_of(store, &project, config).await;
        let differ: Vec<&String> = want
            .keys()
            .chain(got.keys())
            .filter(|k| want.get(*k) != got.get(*k))
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "{what}: {project}: {} entries wanted, {} held; differing: {:#?}",
            want.len(),
            got.len(),
            differ
                .iter()
                .map(|k| (k, want.get(*k), got.get(*k)))
                .collect::<Vec<_>>()
        );
    }
}

/// ClickHouse's hour tier (`span_hours`) holds exactly what the embedded
/// store's rollups would count for the spans stored, through every kind
/// of write: running spans finished later, partial updates, roots sent
/// last (their context re-filling the trace), a retried batch; and after a
/// rebuild with other labels and tags, and after a bulk copy (which leaves
/// it incomplete, so no answer is read from it, until it is rebuilt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hour_tier_counts_every_stored_span_through_merges_and_rebuilds() {
    for (name, url) in peer_urls() {
        let now = loupe_model::time::now_ns();
        let db = database(&format!("tier_{name}"));
        let mut config = ClickHouseConfig::new(&url);
        config.database = db.clone();
        let store = ClickHouseStore::connect(config.clone())
            .await
            .expect("connect");
        assert_eq!(store.hour_tier(), None, "{name}: a new database keeps none");
        let first = tier_config(&["category"], &["tier"]);
        assert_eq!(
            store.keep_hour_tier(&first).await.expect("keep"),
            loupe_clickhouse::HourTierStart::Rebuilt {
                spans: 0,
                generation: 1
            },
            "{name}"
        );
        for b in batches(now) {
            store.append(b).await.expect("append");
        }
        assert_tier_counts_the_stored_spans(&store, &first, &format!("{name}: written")).await;

        // Another process with the same config keeps the tier as it is and
        // writes into it.
        let again = ClickHouseStore::connect(config.clone())
            .await
            .expect("connect");
        assert_eq!(
            again.keep_hour_tier(&first).await.expect("keep"),
            loupe_clickhouse::HourTierStart::Kept,
            "{name}"
        );
        let more = runs("alpha", 77, 5, now)
            .into_iter()
            .flat_map(|r| r.spans)
            .collect::<Vec<_>>();
        again.append(more).await.expect("append");
        assert_tier_counts_the_stored_spans(&again, &first, &format!("{name}: reopened")).await;

        // Other labels and tags: made anew from the stored spans.
        let second = tier_config(&["tier"], &["category"]);
        let stored = loupe_backend::copy::total(&again, &ProjectId::new("alpha").expect("p"))
            .await
            .expect("count")
            + loupe_backend::copy::total(&again, &ProjectId::new("beta").expect("p"))
                .await
                .expect("count");
        assert_eq!(
            again.keep_hour_tier(&second).await.expect("keep"),
            loupe_clickhouse::HourTierStart::Rebuilt {
                spans: stored,
                generation: 2
            },
            "{name}"
        );
        assert_tier_counts_the_stored_spans(&again, &second, &format!("{name}: rebuilt")).await;
        // The first process reads the generation the record names, never
        // the one it began with (deleted by the rebuild).
        assert_tier_counts_the_stored_spans(&store, &second, &format!("{name}: the first process"))
            .await;

        // A bulk copy is not counted as it lands: the tier says it is
        // incomplete (and is not read) until it is made anew.
        let copied: Vec<Span> = runs("beta", 91, 5, now)
            .into_iter()
            .flat_map(|r| r.spans)
            .collect();
        SpanWriter::append_copied(&again, copied)
            .await
            .expect("copy");
        assert_eq!(again.hour_tier(), None, "{name}: incomplete after a copy");
        let beta = ProjectId::new("beta").expect("p");
        assert!(
            store
                .hour_slice(
                    &beta,
                    0,
                    i64::MAX / 2,
                    &loupe_clickhouse::HourAsk {
                        dims: &[],
                        required: &[],
                        histograms: false,
                    },
                )
                .await
                .expect("slice")
                .is_none(),
            "{name}: read by another process while incomplete"
        );
        let reopened = ClickHouseStore::connect(config).await.expect("connect");
        assert_eq!(reopened.hour_tier(), None, "{name}: recorded incomplete");
        assert!(
            matches!(
                reopened.keep_hour_tier(&second).await.expect("keep"),
                loupe_clickhouse::HourTierStart::Rebuilt { generation: 3, .. }
            ),
            "{name}"
        );
        assert_tier_counts_the_stored_spans(&reopened, &second, &format!("{name}: after a copy"))
            .await;
    }
}
