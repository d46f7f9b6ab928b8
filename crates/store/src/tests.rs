//! Store behaviour through its public API: upsert and merge across memtable,
//! parts and compaction; run context propagation in any arrival order;
//! retention; recovery after reopen.

use loupe_model::{ProjectId, Span, SpanKind, Status};
use parking_lot::Mutex;

use crate::{Error, Store, StoreConfig};

const DAY_NS: i64 = 86_400 * 1_000_000_000;
const T0: i64 = 1_795_000_000_000_000_000;

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        compaction_min_parts: 2,
        ..StoreConfig::default()
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(config(dir), loupe_rollup::RollupConfig::default()).expect("open store")
}

fn project() -> ProjectId {
    ProjectId::new("p").expect("project")
}

fn node(id: &str, trace: &str, parent: Option<&str>, start: i64) -> Span {
    let mut s = Span::new("p", id);
    s.trace_id = Some(trace.into());
    s.parent_span_id = parent.map(str::to_owned);
    s.start_time = Some(start);
    s.span_kind = Some(SpanKind::Tool);
    s
}

fn root(trace: &str, start: i64) -> Span {
    let mut s = Span::new("p", format!("{trace}-root"));
    s.trace_id = Some(trace.into());
    s.run_id = Some(format!("run-{trace}"));
    s.span_kind = Some(SpanKind::Workflow);
    s.start_time = Some(start);
    s.workflow_id = Some("wf".into());
    s.tags.insert("category".into(), "phone".into());
    s
}

/// A pause at a test point of the store (`after_freeze`,
/// `before_compaction_commit`): the hook tells the test it was reached,
/// then holds the blocking step until released (or `hold` has passed), so
/// the test acts mid-step without racing it.
struct Pause {
    reached: Option<tokio::sync::oneshot::Receiver<()>>,
    release: std::sync::mpsc::Sender<()>,
}

impl Pause {
    /// Installs the pause at `point`.
    fn at(point: &Mutex<Option<Box<dyn FnOnce() + Send>>>, hold: std::time::Duration) -> Self {
        let (reached_tx, reached) = tokio::sync::oneshot::channel::<()>();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        *point.lock() = Some(Box::new(move || {
            let _ = reached_tx.send(());
            let _ = release_rx.recv_timeout(hold);
        }));
        Self {
            reached: Some(reached),
            release,
        }
    }

    /// Waits (30 s at most) until the step reached the point; `what` names
    /// the step in the failure.
    async fn reached(&mut self, what: &str) {
        let reached = self.reached.take().expect("waited once");
        tokio::time::timeout(std::time::Duration::from_secs(30), reached)
            .await
            .unwrap_or_else(|_| panic!("{what} never reached the test point"))
            .expect("the hook ran");
    }

    /// Lets the held step go on.
    fn release(&self) {
        self.release.send(()).expect("release the held step");
    }
}

async fn spans_of(store: &Store, sql_where: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let batches = store
        .sql(
            &project(),
            &format!("SELECT span_id, name, status FROM spans WHERE {sql_where} ORDER BY span_id"),
        )
        .await
        .expect("sql");
    let mut out = Vec::new();
    for b in &batches {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("ids");
        let names = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("names");
        let st = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("status");
        for i in 0..b.num_rows() {
            let opt =
                |a: &arrow::array::StringArray| (!a.is_null(i)).then(|| a.value(i).to_owned());
            out.push((ids.value(i).to_owned(), opt(names), opt(st)));
        }
    }
    out
}

use arrow::array::Array;

/// The same expectation on every path: memtable only, parts only, and compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_events_merge_field_by_field_wherever_the_older_version_lives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut running = node("s1", "t1", None, T0);
    running.name = Some("inventory".into());
    running.status = Some(Status::Running);
    store.append(vec![running]).await.expect("append");

    let mut finished = Span::new("p", "s1");
    finished.status = Some(Status::Ok);
    finished.end_time = Some(T0 + 5);
    store.append(vec![finished]).await.expect("append");
    let expect = vec![(
        "s1".to_owned(),
        Some("inventory".to_owned()),
        Some("ok".to_owned()),
    )];
    assert_eq!(spans_of(&store, "true").await, expect, "memtable only");

    store.flush_all().await.expect("flush");
    assert_eq!(spans_of(&store, "true").await, expect, "parts only");

    // An update of a flushed span: the part row is hidden, the merge is new.
    let mut failed = Span::new("p", "s1");
    failed.status = Some(Status::Error);
    store.append(vec![failed]).await.expect("append");
    let expect = vec![(
        "s1".to_owned(),
        Some("inventory".to_owned()),
        Some("error".to_owned()),
    )];
    assert_eq!(
        spans_of(&store, "true").await,
        expect,
        "memtable over parts"
    );
    store.flush_all().await.expect("flush");
    assert_eq!(
        spans_of(&store, "true").await,
        expect,
        "two parts, one hidden row"
    );

    let report = store.maintain_at(T0).await.expect("compact");
    assert_eq!(report.compacted_parts, 2);
    assert_eq!(report.dropped_rows, 1);
    assert_eq!(spans_of(&store, "true").await, expect, "after compaction");
    assert_eq!(store.stats().part_rows, 1);

    // And after a restart.
    store.shutdown().await.expect("shutdown");
    drop(store);
    let store = open(dir.path());
    assert_eq!(spans_of(&store, "true").await, expect, "after reopen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unflushed_writes_are_replayed_from_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store
            .append(vec![node("a", "t", None, T0)])
            .await
            .expect("append");
        store.flush_all().await.expect("flush");
        let mut update = Span::new("p", "a");
        update.name = Some("late name".into());
        store
            .append(vec![update, node("b", "t", Some("a"), T0 + 1)])
            .await
            .expect("append");
        // Dropped without shutdown: the memtable is lost, the WAL is not.
    }
    let store = open(dir.path());
    let rows = spans_of(&store, "true").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1.as_deref(), Some("late name"));
}

/// A full disk mid-record: the append is refused (an I/O error, a 5xx to
/// the sender, who retries), and the 100 spans acknowledged once space is
/// back survive a crash (they used to be truncated as a torn tail behind
/// the partial record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_after_a_full_disk_survive_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store
            .append(vec![node("before", "t", None, T0)])
            .await
            .expect("append");
        store.inner.wal.fail_next_write_after(9);
        let err = store
            .append(vec![node("refused", "t", None, T0)])
            .await
            .expect_err("disk full");
        assert!(matches!(err, crate::Error::Io { .. }), "{err}");
        for i in 0..100 {
            store
                .append(vec![node(&format!("acked-{i}"), "t", None, T0 + i)])
                .await
                .expect("append after space was freed");
        }
        // Dropped without shutdown: only the WAL holds them.
    }
    let store = open(dir.path());
    let rows = spans_of(&store, "true").await;
    assert_eq!(rows.len(), 101);
    assert!(rows.iter().all(|r| r.0 != "refused"));
}

/// Tags and run ids reach every span of a run whatever the arrival order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_context_reaches_every_span_whether_the_root_comes_first_or_last() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    // Root first.
    store.append(vec![root("first", T0)]).await.expect("append");
    store
        .append(vec![node("first-a", "first", Some("first-root"), T0 + 1)])
        .await
        .expect("append");
    // Root last, children already flushed.
    store
        .append(vec![node("last-a", "last", Some("last-root"), T0 + 1)])
        .await
        .expect("append");
    store.flush_all().await.expect("flush");
    store
        .append(vec![node("last-b", "last", Some("last-root"), T0 + 2)])
        .await
        .expect("append");
    store.append(vec![root("last", T0)]).await.expect("append");
    for (trace, n) in [("first", 2), ("last", 3)] {
        let q = format!(
            "trace_id = '{trace}' AND tags['category'] = 'phone' AND run_id = 'run-{trace}' AND workflow_id = 'wf'"
        );
        assert_eq!(spans_of(&store, &q).await.len(), n, "trace {trace}");
    }
    store.flush_all().await.expect("flush");
    store.maintain_at(T0).await.expect("compact");
    let tagged = spans_of(&store, "tags['category'] = 'phone' AND span_kind = 'tool'").await;
    assert_eq!(
        tagged.len(),
        3,
        "all tool spans carry the run's tag: {tagged:?}"
    );
    assert_eq!(spans_of(&store, "true").await.len(), 5, "no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_only_whole_old_days() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.retention_days = 7;
    cfg.compaction_min_parts = 100;
    let store = Store::open(cfg, loupe_rollup::RollupConfig::default()).expect("open");
    let now = T0 + 30 * DAY_NS;
    store
        .append(vec![node("old", "t1", None, now - 10 * DAY_NS)])
        .await
        .expect("append");
    store
        .append(vec![node("edge", "t2", None, now - 7 * DAY_NS + 1)])
        .await
        .expect("append");
    store
        .append(vec![node("new", "t3", None, now - DAY_NS)])
        .await
        .expect("append");
    store.flush_all().await.expect("flush");
    assert_eq!(store.stats().parts, 3);
    let report = store.maintain_at(now).await.expect("maintain");
    assert_eq!(report.expired_parts, 1);
    let ids: Vec<_> = spans_of(&store, "true")
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(ids, ["edge", "new"]);
}

/// Regression (issue 14): `retention_days = 999999` overflowed the cutoff
/// arithmetic and the first maintenance pass deleted every part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retention_keeps_every_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.retention_days = 999_999;
    cfg.compaction_min_parts = 100;
    let store = Store::open(cfg, loupe_rollup::RollupConfig::default()).expect("open");
    let now = T0 + 30 * DAY_NS;
    for (id, at) in [("old", now - 20 * DAY_NS), ("today", now)] {
        store
            .append(vec![node(id, id, None, at)])
            .await
            .expect("append");
    }
    store.flush_all().await.expect("flush");
    let report = store.maintain_at(now).await.expect("maintain");
    assert_eq!(report.expired_parts, 0);
    let ids: Vec<_> = spans_of(&store, "true")
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(ids, ["old", "today"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_preserves_every_row_and_the_trace_api_finds_runs_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for batch in 0..4 {
        let spans = (0..50)
            .map(|i| node(&format!("s{batch}-{i}"), &format!("t{i}"), None, T0 + i))
            .collect();
        store.append(spans).await.expect("append");
        store.flush_all().await.expect("flush");
    }
    let before = spans_of(&store, "true").await;
    let report = store.maintain_at(T0).await.expect("maintain");
    assert_eq!(report.compacted_parts, 4);
    assert_eq!(spans_of(&store, "true").await, before);
    assert_eq!(before.len(), 200);
    let trace = store.trace_spans(&project(), "t7").await.expect("trace");
    assert_eq!(trace.len(), 4);
    let other = ProjectId::new("other").expect("project");
    assert!(
        store
            .trace_spans(&other, "t7")
            .await
            .expect("trace")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_same_data_dir_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = open(dir.path());
    match Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()) {
        Err(crate::Error::Locked(path)) => {
            assert!(path.ends_with(dir.path().file_name().expect("name")))
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("two writers opened one data dir"),
    }
    // Readers are still welcome.
    let reader = Store::open_read_only(config(dir.path()), loupe_rollup::RollupConfig::default())
        .expect("read-only open");
    drop(reader);
    first.shutdown().await.expect("shutdown");
    drop(first);
    open(dir.path());
}

/// Overload: with every admission slot taken, an append waits at most
/// `append_queue_timeout` and is then refused (503 + Retry-After upstream),
/// instead of queueing without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_beyond_the_admission_queue_are_refused_not_queued_forever() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.max_concurrent_appends = 1;
    cfg.append_queue_timeout = std::time::Duration::from_millis(50);
    let store = Store::open(cfg, loupe_rollup::RollupConfig::default()).expect("open");
    let held = store.inner.append_slots.acquire().await.expect("slot");
    let refused = store.append(vec![node("x", "t", None, T0)]).await;
    assert!(matches!(refused, Err(crate::Error::Full)), "{refused:?}");
    drop(held);
    store
        .append(vec![node("x", "t", None, T0)])
        .await
        .expect("accepted once a slot is free");
}

/// A refused append gives its spans back as they were sent, from either
/// place that refuses for lack of room (the admission queue, the unflushed
/// bytes), so a caller that waits and retries keeps no copy; refusals for
/// other reasons give nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_refused_for_room_gives_its_spans_back_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.max_concurrent_appends = 1;
    cfg.append_queue_timeout = std::time::Duration::from_millis(50);
    cfg.max_unflushed_bytes = 1;
    let store = Store::open(cfg, loupe_rollup::RollupConfig::default()).expect("open");
    let mut sent = node("a", "t", None, T0);
    sent.input = Some("a question".into());

    let held = store.inner.append_slots.acquire().await.expect("slot");
    let (error, back) = store
        .append_or_return(vec![sent.clone()])
        .await
        .expect_err("no slot");
    assert!(matches!(error, Error::Full), "{error:?}");
    assert_eq!(back, Some(vec![sent.clone()]));
    drop(held);

    // The first append fits; after it the unflushed bytes are over 1.
    store
        .append(vec![node("b", "t", None, T0)])
        .await
        .expect("append");
    let (error, back) = store
        .append_or_return(vec![sent.clone()])
        .await
        .expect_err("over max_unflushed_bytes");
    assert!(matches!(error, Error::Full), "{error:?}");
    assert_eq!(back, Some(vec![sent.clone()]));

    let (error, back) = store
        .append_or_return(vec![Span::new("", "no project")])
        .await
        .expect_err("invalid");
    assert!(matches!(error, Error::Invalid(_)), "{error:?}");
    assert!(back.is_none());

    // Through the backend trait: the same spans, as `Overloaded`.
    let refused = loupe_backend::SpanWriter::append_or_return(&store, vec![sent.clone()])
        .await
        .expect_err("still full");
    assert!(
        matches!(refused.error, loupe_backend::StoreError::Overloaded { .. }),
        "{:?}",
        refused.error
    );
    assert_eq!(refused.spans, Some(vec![sent]));
}

/// Shutdown aborts the background loop, possibly mid-flush. The aborted
/// flush's blocking work still finishes, and until it has, no other flush
/// may start: the one in `shutdown` used to write the same frozen memtable
/// a second time, so every row of it was stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_dropped_midway_finishes_before_the_next_one_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let n = 20_000;
    let spans: Vec<Span> = (0..n)
        .map(|i| node(&format!("s{i}"), &format!("t{}", i % 997), None, T0 + i))
        .collect();
    store.append(spans).await.expect("append");
    // The flush stops right after freezing until the test releases it, so
    // the abort lands mid-flush every time (no race with a fast flush).
    let mut pause = Pause::at(
        &store.inner.after_freeze,
        std::time::Duration::from_secs(30),
    );
    let flushing = tokio::spawn({
        let store = store.clone();
        async move { store.flush_all().await }
    });
    pause.reached("the flush").await;
    assert_eq!(store.inner.state.lock().frozen.len(), 1);
    flushing.abort();
    assert_eq!(store.stats().parts, 0, "the flush ended before the abort");
    // The aborted flush resumes; shutdown's own flush must wait for it.
    pause.release();
    store.shutdown().await.expect("shutdown");
    assert_eq!(store.stats().part_rows, n as u64);
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.stats().part_rows, n as u64);
    let all = spans_of(&reopened, "true").await;
    assert_eq!(all.len(), n as usize);
}

/// Flushes do not wait for maintenance (a pass over a large store runs for
/// minutes, and appends were refused meanwhile). A flush that lands while
/// compaction rewrites a group makes the hiding of some of the group's
/// rows durable after compaction read them: the new part keeps them, and
/// they must stay hidden there, across a reopen, until the next pass
/// drops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_during_compaction_keeps_the_rows_it_hid_hidden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let named = |i: i64, name: &str| {
        let mut s = node(&format!("s{i:03}"), &format!("t{}", i % 10), None, T0 + i);
        s.name = Some(name.into());
        s
    };
    // Two parts of one day: a compaction group.
    for half in [0..100, 100..200] {
        store
            .append(half.map(|i| named(i, "v1")).collect())
            .await
            .expect("append");
        store.flush_all().await.expect("flush");
    }
    // Newer versions of 50 rows of the first part, not yet flushed.
    store
        .append((0..50).map(|i| named(i, "v2")).collect())
        .await
        .expect("append updates");
    // Compaction pauses after reading the group; the flush runs then.
    let mut pause = Pause::at(
        &store.inner.before_compaction_commit,
        std::time::Duration::from_secs(30),
    );
    let maintaining = tokio::spawn({
        let store = store.clone();
        async move { store.maintain().await }
    });
    pause.reached("compaction").await;
    tokio::time::timeout(std::time::Duration::from_secs(30), store.flush_all())
        .await
        .expect("the flush waited for the compaction")
        .expect("flush");
    pause.release();
    let report = maintaining.await.expect("join").expect("maintain");
    assert_eq!(report.compacted_parts, 2, "{report:?}");

    let expected: Vec<(String, Option<String>, Option<String>)> = (0..200)
        .map(|i| {
            let name = if i < 50 { "v2" } else { "v1" };
            (format!("s{i:03}"), Some(name.to_owned()), None)
        })
        .collect();
    assert_eq!(spans_of(&store, "true").await, expected);
    drop(store);
    let store = open(dir.path());
    assert_eq!(spans_of(&store, "true").await, expected, "after a reopen");
    // The next pass drops the 50 superseded rows for good.
    let report = store.maintain().await.expect("maintain");
    assert_eq!(report.dropped_rows, 50, "{report:?}");
    assert_eq!(store.stats().part_rows, 200);
    assert_eq!(
        spans_of(&store, "true").await,
        expected,
        "after the next pass"
    );
}

/// The background loop flushes while its maintenance pass runs: the pass
/// is held mid-compaction, and data appended meanwhile still reaches a
/// part (the loop used to wait for the pass, so nothing flushed and, past
/// `max_unflushed_bytes`, appends were refused until it ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_loop_flushes_while_maintenance_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        StoreConfig {
            maintenance_interval: std::time::Duration::from_secs(1),
            flush_age: std::time::Duration::from_secs(1),
            ..config(dir.path())
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open store");
    for half in [0..100, 100..200] {
        store
            .append(
                half.map(|i| node(&format!("s{i}"), "t", None, T0 + i))
                    .collect(),
            )
            .await
            .expect("append");
        store.flush_all().await.expect("flush");
    }
    let mut pause = Pause::at(
        &store.inner.before_compaction_commit,
        std::time::Duration::from_secs(60),
    );
    let background = store.spawn_background();
    pause
        .reached("the background loop's maintenance pass")
        .await;
    let parts = store.stats().parts;
    store
        .append(
            (200..300)
                .map(|i| node(&format!("s{i}"), "t", None, T0 + i))
                .collect(),
        )
        .await
        .expect("append during maintenance");
    let flushed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while store.stats().parts == parts {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    pause.release();
    assert!(flushed.is_ok(), "nothing flushed while maintenance ran");
    background.abort();
    store.shutdown().await.expect("shutdown");
    assert_eq!(store.stats().part_rows, 300);
}

/// Shutdown does not wait for a whole maintenance pass (minutes at 1M
/// runs): a pass held in its first compaction group ends after that group
/// once shutdown has begun (the other day's group stays, no text index is
/// built), and every row is there after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_a_maintenance_pass_after_its_current_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    // Two days of two parts each: two compaction groups.
    for day in 0..2 {
        for half in 0..2 {
            let spans = (0..50)
                .map(|i| {
                    node(
                        &format!("d{day}h{half}s{i}"),
                        "t",
                        None,
                        T0 + day * DAY_NS + i,
                    )
                })
                .collect();
            store.append(spans).await.expect("append");
            store.flush_all().await.expect("flush");
        }
    }
    let mut pause = Pause::at(
        &store.inner.before_compaction_commit,
        std::time::Duration::from_secs(30),
    );
    let maintaining = tokio::spawn({
        let store = store.clone();
        async move { store.maintain().await }
    });
    pause.reached("compaction").await;
    let stopping = tokio::spawn({
        let store = store.clone();
        async move { store.shutdown().await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !store
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("shutdown never began");
    pause.release();
    let report = maintaining.await.expect("join").expect("maintain");
    stopping.await.expect("join").expect("shutdown");
    assert_eq!(report.compacted_parts, 2, "{report:?}");
    assert_eq!(report.indexed_parts, 0, "{report:?}");
    assert_eq!(store.stats().parts, 3);
    drop(store);
    let store = open(dir.path());
    assert_eq!(spans_of(&store, "true").await.len(), 200);
}

#[test]
fn loupes_own_failures_map_to_internal_and_the_callers_mistakes_to_invalid() {
    use loupe_backend::StoreError as S;
    assert!(matches!(
        S::from(Error::Internal("x".into())),
        S::Internal(_)
    ));
    assert!(matches!(S::from(Error::Invalid("x".into())), S::Invalid(_)));
    // Plans are Loupe's: a planning error there is not the caller's fault.
    let plan = datafusion::error::DataFusionError::Plan("no field x".into());
    assert!(matches!(S::from(Error::DataFusion(plan)), S::Internal(_)));
}
