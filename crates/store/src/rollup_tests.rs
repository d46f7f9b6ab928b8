//! Rollups through the store's write path: every span counts once in its
//! latest merged state (running → finished, two sources, late run context),
//! and restarts (clean, or killed before a flush) give identical rollups.

use loupe_model::{Span, SpanKind, Status};
use loupe_rollup::Snapshot;

use crate::{Store, StoreConfig};

const T0: i64 = 1_795_000_000_000_000_000;
const MS: i64 = 1_000_000;

fn open(dir: &std::path::Path) -> Store {
    Store::open(
        StoreConfig {
            data_dir: dir.to_owned(),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open store")
}

fn tool_start(id: &str, trace: &str) -> Span {
    let mut s = Span::new("p", id);
    s.trace_id = Some(trace.into());
    s.parent_span_id = Some(format!("{trace}-root"));
    s.span_kind = Some(SpanKind::Tool);
    s.tool_name = Some("inventory".into());
    s.status = Some(Status::Running);
    s.start_time = Some(T0);
    s
}

fn tool_end(id: &str, status: Status, ms: i64) -> Span {
    let mut s = Span::new("p", id);
    s.status = Some(status);
    s.end_time = Some(T0 + ms * MS);
    s
}

fn root(trace: &str) -> Span {
    let mut s = Span::new("p", format!("{trace}-root"));
    s.trace_id = Some(trace.into());
    s.span_kind = Some(SpanKind::Workflow);
    s.app_id = Some("shop".into());
    s.status = Some(Status::Ok);
    s.start_time = Some(T0);
    s.end_time = Some(T0 + 2_000 * MS);
    s.tags.insert("category".into(), "phone".into());
    s
}

/// (tool status, category, count, running) of the tool series with data.
fn tools(store: &Store) -> Vec<(String, String, u64, u64)> {
    let mut out: Vec<_> = store
        .rollups()
        .totals()
        .iter()
        .filter(|(k, m)| k.span_kind == "tool" && !m.is_empty())
        .map(|(k, m)| (k.status.clone(), k.tags.join(","), m.count, m.running))
        .collect();
    out.sort();
    out
}

/// The rollup state to compare across restarts: the snapshot (without
/// `day_files`, which only says where days are persisted) and every
/// hour-tier series.
fn snap(store: &Store) -> (Snapshot, Vec<String>) {
    let rollups = store.rollups();
    let mut snapshot = rollups.snapshot(0);
    snapshot.day_files.clear();
    let mut hours: Vec<String> = rollups
        .hours()
        .range(i64::MIN, i64::MAX)
        .filter(|(_, _, _, m)| m.spans > 0)
        .map(|(h, k, n, m)| format!("{h} {k:?} {n:?} {m:?}"))
        .collect();
    hours.sort();
    (snapshot, hours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_then_finished_counts_once_in_memory_and_across_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store
        .append(vec![tool_start("a", "t1")])
        .await
        .expect("append");
    store
        .append(vec![tool_start("b", "t1")])
        .await
        .expect("append");
    assert_eq!(tools(&store), vec![("running".into(), String::new(), 0, 2)]);
    store
        .append(vec![tool_end("a", Status::Ok, 1_500)])
        .await
        .expect("append");
    store.flush_all().await.expect("flush");
    // b's running version is now in a part; its end merges onto it.
    store
        .append(vec![tool_end("b", Status::Error, 20)])
        .await
        .expect("append");
    assert_eq!(
        tools(&store),
        vec![
            ("error".into(), String::new(), 1, 0),
            ("ok".into(), String::new(), 1, 0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_span_from_two_sources_counts_once_and_late_context_moves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut full = tool_start("a", "t1");
    full.merge_from(tool_end("a", Status::Ok, 300));
    store.append(vec![full.clone()]).await.expect("append");
    store.flush_all().await.expect("flush");
    full.source = Some("dify_db".into());
    store.append(vec![full]).await.expect("append");
    assert_eq!(tools(&store), vec![("ok".into(), String::new(), 1, 0)]);
    // The run's root arrives last with the category: the tool span's
    // series gains the tag, still counted once.
    store.append(vec![root("t1")]).await.expect("append");
    assert_eq!(tools(&store), vec![("ok".into(), "phone".into(), 1, 0)]);
    let ingested = store.rollups().ingested_spans();
    assert_eq!(ingested, 3);
}

async fn workload(store: &Store, flush_between: bool) {
    for i in 0..6 {
        let id = format!("s{i}");
        let trace = format!("t{}", i % 2);
        store
            .append(vec![tool_start(&id, &trace)])
            .await
            .expect("append");
        if flush_between && i == 2 {
            store.flush_all().await.expect("flush");
        }
    }
    store.append(vec![root("t0")]).await.expect("append");
    for i in 0..6 {
        let status = if i % 3 == 0 {
            Status::Error
        } else {
            Status::Ok
        };
        let end = tool_end(&format!("s{i}"), status, 100 * (i + 1));
        store.append(vec![end]).await.expect("append");
        if flush_between && i == 3 {
            store.flush_all().await.expect("flush");
        }
    }
    store.append(vec![root("t1")]).await.expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_clean_or_killed_before_flush_give_identical_rollups() {
    let reference_dir = tempfile::tempdir().expect("tempdir");
    let reference = open(reference_dir.path());
    workload(&reference, false).await;
    let expected = snap(&reference);
    assert_eq!(
        tools(&reference),
        vec![
            ("error".into(), "phone".into(), 2, 0),
            ("ok".into(), "phone".into(), 4, 0),
        ]
    );

    // Clean: flush on shutdown, reopen from the persisted rollups.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    workload(&store, true).await;
    assert_eq!(snap(&store), expected, "flushes do not change rollups");
    store.shutdown().await.expect("shutdown");
    drop(store);
    let store = open(dir.path());
    assert_eq!(snap(&store), expected, "after a clean restart");
    drop(store);

    // Killed: flushed twice mid-way, the tail only in the WAL.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        workload(&store, true).await;
        // Dropped without shutdown: the memtable is lost, the WAL is not.
    }
    let store = open(dir.path());
    assert_eq!(snap(&store), expected, "after replaying the WAL tail");
    // And once more after a flush of the replayed tail.
    store.flush_all().await.expect("flush");
    drop(store);
    let store = open(dir.path());
    assert_eq!(snap(&store), expected, "after a second restart");
    assert!(!snap(&store).1.is_empty(), "the hour tier holds the spans");
    let files = |sub: &str| {
        std::fs::read_dir(dir.path().join(sub))
            .expect("rollups dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
            .count()
    };
    assert_eq!(files("rollups"), 1, "only the current snapshot is kept");
    assert_eq!(
        files("rollups/hours"),
        1,
        "only the current file of the one day is kept"
    );
}
