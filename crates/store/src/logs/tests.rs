//! The logs table: durability across reopen, search on every path
//! (memtable, parts, both), the run and text indexes, retention.

use loupe_backend::LogQuery;
use loupe_model::{LogRecord, ProjectId};

use crate::{Store, StoreConfig};

const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// 2026-11-24T00:00:00Z.
const T0: i64 = 1_795_478_400 * 1_000_000_000;

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        retention_days: 7,
        ..StoreConfig::default()
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(config(dir), loupe_rollup::RollupConfig::default()).expect("open")
}

fn record(project: &str, i: i64, body: &str) -> LogRecord {
    let mut r = LogRecord::new(project, T0 + i * 1_000_000_000, body);
    r.severity_number = if body.contains("error") { 17 } else { 9 };
    r.service = Some(if i % 2 == 0 { "api" } else { "worker" }.into());
    r.trace_id = Some(format!("trace-{}", i % 50));
    r
}

fn query(limit: usize) -> LogQuery {
    LogQuery {
        limit,
        ..LogQuery::default()
    }
}

fn p(name: &str) -> ProjectId {
    ProjectId::new(name).expect("project")
}

async fn write_many(store: &Store, project: &str, n: i64) {
    let records: Vec<_> = (0..n)
        .map(|i| {
            let body = if i % 100 == 7 {
                format!("upstream error: connection reset by peer (req {i})")
            } else {
                format!("request {i} served in {} ms", i % 37)
            };
            record(project, i, &body)
        })
        .collect();
    store.append_logs(records).await.expect("append");
}

#[tokio::test]
async fn acknowledged_logs_are_found_after_a_reopen_without_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        write_many(&store, "a", 300).await;
        // No shutdown: the records are only in the WAL, as after kill -9.
    }
    let store = open(dir.path());
    let page = store
        .search_logs(&p("a"), &query(1_000))
        .await
        .expect("search");
    assert_eq!(page.records.len(), 300);
    assert_eq!(store.log_stats().memtable_records, 300);
}

#[tokio::test]
async fn searches_answer_the_same_from_memtable_parts_and_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    write_many(&store, "a", 3_000).await;
    write_many(&store, "b", 10).await;
    let queries = [
        query(10_000),
        LogQuery {
            min_severity: Some(17),
            ..query(10_000)
        },
        LogQuery {
            phrases: vec!["Connection Reset".into()],
            service: Some("worker".into()),
            ..query(10_000)
        },
        LogQuery {
            run: Some("trace-7".into()),
            ..query(10_000)
        },
        LogQuery {
            from: Some(T0 + 100 * 1_000_000_000),
            to: Some(T0 + 200 * 1_000_000_000),
            ..query(5)
        },
    ];
    let mut before = Vec::new();
    for q in &queries {
        before.push(store.search_logs(&p("a"), q).await.expect("search"));
    }
    assert_eq!(before[1].records.len(), 30);
    assert_eq!(
        before[2].records.len(),
        30,
        "every error line is odd-numbered"
    );
    assert_eq!(before[3].records.len(), 60);
    assert_eq!(before[4].records.len(), 5);
    assert!(before[4].truncated);
    assert_eq!(before[4].records[0].time, T0 + 199 * 1_000_000_000);
    store.flush_logs().await.expect("flush");
    assert_eq!(store.log_stats().parts, 2, "one part per (project, day)");
    write_many(&store, "a", 5).await;
    for (q, old) in queries.iter().zip(&before) {
        let now = store.search_logs(&p("a"), q).await.expect("search");
        let extra = now.records.len() - old.records.len();
        assert!(extra <= 5, "only the 5 new records may be added");
        let flushed: Vec<_> = now.records.iter().filter(|r| r.time >= T0).collect();
        assert!(flushed.len() >= old.records.len().min(q.limit) - 5);
    }
    // Project isolation: b's records never show in a's answers.
    let b = store
        .search_logs(&p("b"), &query(100))
        .await
        .expect("search");
    assert_eq!(b.records.len(), 10);
    assert!(b.records.iter().all(|r| r.project == "b"));
}

#[tokio::test]
async fn the_run_and_text_indexes_narrow_what_a_part_read_costs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let mut records: Vec<_> = (0..20_000)
        .map(|i| record("a", i, &format!("request {i} served")))
        .collect();
    records[12_345].body = "plugin daemon crashed: connection reset".into();
    records[12_345].run_id = Some("run-xyz".into());
    // Sent newest first: the part is in time order, and the indexes must
    // name its rows, not the order they arrived in.
    records.reverse();
    store.append_logs(records).await.expect("append");
    store.flush_logs().await.expect("flush");
    let run = store
        .search_logs(
            &p("a"),
            &LogQuery {
                run: Some("run-xyz".into()),
                ..query(100)
            },
        )
        .await
        .expect("search");
    assert_eq!(run.records.len(), 1);
    assert!(run.scanned < 100, "read {} rows for one run", run.scanned);
    let text = store
        .search_logs(
            &p("a"),
            &LogQuery {
                phrases: vec!["daemon crashed".into()],
                ..query(100)
            },
        )
        .await
        .expect("search");
    assert_eq!(text.records.len(), 1);
    assert!(
        text.scanned <= 1_024,
        "read {} rows for a rare phrase",
        text.scanned
    );
    // Reopened: the indexes are rebuilt or read from disk and still answer.
    store.shutdown().await.expect("shutdown");
    drop(store);
    let store = open(dir.path());
    let again = store
        .search_logs(
            &p("a"),
            &LogQuery {
                phrases: vec!["daemon crashed".into()],
                ..query(100)
            },
        )
        .await
        .expect("search");
    assert_eq!(again.records, text.records);
    assert!(again.scanned <= 1_024);
}

#[tokio::test]
async fn retention_drops_whole_log_parts_of_old_days_and_their_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let old = record("a", 0, "old line");
    let mut new = record("a", 0, "new line");
    new.time += 10 * DAY_NS;
    store.append_logs(vec![old, new]).await.expect("append");
    store.flush_logs().await.expect("flush");
    assert_eq!(store.log_stats().parts, 2);
    let parts_dir = dir.path().join("logs/parts/a");
    let report = store.maintain_at(T0 + 11 * DAY_NS).await.expect("maintain");
    assert_eq!(report.expired_log_parts, 1);
    store.collect_garbage(true);
    let page = store
        .search_logs(&p("a"), &query(10))
        .await
        .expect("search");
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].body, "new line");
    let days: Vec<_> = std::fs::read_dir(&parts_dir)
        .expect("parts")
        .flat_map(|d| std::fs::read_dir(d.expect("day").path()).expect("day dir"))
        .collect();
    assert_eq!(days.len(), 1, "the old day's file is deleted");
    let indexes = std::fs::read_dir(dir.path().join("logs/fts"))
        .expect("fts")
        .count();
    assert_eq!(indexes, 1, "the old part's text index is deleted too");
}

#[tokio::test]
async fn a_part_written_but_never_named_by_the_manifest_is_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        write_many(&store, "a", 10).await;
        store.shutdown().await.expect("shutdown");
    }
    let stray = dir
        .path()
        .join("logs/parts/a/2026-11-24/00000000000000ff.parquet");
    std::fs::write(&stray, b"half a part").expect("write");
    let store = open(dir.path());
    assert!(!stray.exists());
    let page = store
        .search_logs(&p("a"), &query(100))
        .await
        .expect("search");
    assert_eq!(page.records.len(), 10, "no record lost, none doubled");
}

#[tokio::test]
async fn a_sources_cursor_comes_back_with_exactly_the_records_it_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cursor = |v: &str| Some(("file:1:2".to_owned(), v.to_owned()));
    {
        let store = open(dir.path());
        store
            .append_logs_at(vec![record("a", 0, "first")], cursor("10"))
            .await
            .expect("append");
        store.flush_logs().await.expect("flush");
        store
            .append_logs_at(vec![record("a", 1, "second")], cursor("20"))
            .await
            .expect("append");
        // Killed: the second cursor is only in the WAL, with its record.
    }
    let store = open(dir.path());
    assert_eq!(store.log_cursor("file:1:2").as_deref(), Some("20"));
    assert_eq!(store.log_cursor("file:9:9"), None);
    let page = store
        .search_logs(&p("a"), &query(10))
        .await
        .expect("search");
    assert_eq!(page.records.len(), 2);
    store.flush_logs().await.expect("flush");
    store.shutdown().await.expect("shutdown");
    drop(store);
    // Flushed: the manifest keeps it once the WAL segment is gone.
    let store = open(dir.path());
    assert_eq!(store.log_cursor("file:1:2").as_deref(), Some("20"));
}

#[tokio::test]
async fn a_days_small_parts_are_merged_and_searches_answer_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    for flush in 0..6 {
        let records: Vec<_> = (0..500)
            .map(|i| {
                let n = flush * 500 + i;
                let body = if n == 1_234 {
                    "plugin daemon crashed: connection reset".to_owned()
                } else {
                    format!("request {n} served")
                };
                record("a", n, &body)
            })
            .collect();
        store.append_logs(records).await.expect("append");
        store.flush_logs().await.expect("flush");
    }
    assert_eq!(store.log_stats().parts, 6);
    let rare = LogQuery {
        phrases: vec!["daemon crashed".into()],
        ..query(10)
    };
    let before = (
        store
            .search_logs(&p("a"), &query(10_000))
            .await
            .expect("all"),
        store.search_logs(&p("a"), &rare).await.expect("rare"),
    );
    let report = store.maintain_at(T0).await.expect("maintain");
    assert_eq!((report.compacted_log_parts, report.new_log_parts), (6, 1));
    assert_eq!(store.log_stats().parts, 1);
    store.collect_garbage(true);
    let files: usize = std::fs::read_dir(dir.path().join("logs/parts/a"))
        .expect("parts")
        .map(|d| {
            std::fs::read_dir(d.expect("day").path())
                .expect("dir")
                .count()
        })
        .sum();
    assert_eq!(files, 1, "the merged parts' files are deleted");
    let after = (
        store
            .search_logs(&p("a"), &query(10_000))
            .await
            .expect("all"),
        store.search_logs(&p("a"), &rare).await.expect("rare"),
    );
    assert_eq!(after.0.records.len(), 3_000);
    let times = |page: &loupe_backend::LogPage| {
        let mut v: Vec<i64> = page.records.iter().map(|r| r.time).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(times(&after.0), times(&before.0));
    assert_eq!(after.1.records, before.1.records);
    assert!(
        after.1.scanned <= 1_024,
        "the merged part has its text index"
    );
    // Reopened: the manifest names the merged part only.
    store.shutdown().await.expect("shutdown");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.log_stats().parts, 1);
    let again = store
        .search_logs(&p("a"), &query(10_000))
        .await
        .expect("all");
    assert_eq!(again.records.len(), 3_000);
}

/// `n` records of one day, one error in a hundred, services and streams
/// mixed, flushed into one part.
async fn flushed_part(store: &Store, n: i64) -> Vec<LogRecord> {
    let records: Vec<LogRecord> = (0..n)
        .map(|i| {
            let mut r = record("a", i / 4, &format!("request {i} served"));
            r.time = T0 + i * 250_000_000;
            r.severity_number = if i % 100 == 7 { 17 } else { 9 };
            r.service = Some(["api", "worker", "plugin_daemon"][(i % 3) as usize].into());
            r.stream = Some(["dify-api", "dify-worker"][(i % 2) as usize].into());
            r.attributes.insert("request".into(), i.to_string());
            r
        })
        .collect();
    for chunk in records.chunks(50_000) {
        store.append_logs(chunk.to_vec()).await.expect("append");
    }
    store.flush_logs().await.expect("flush");
    records
}

/// What the search returned before the cheap columns were pushed into the
/// Parquet reader: every row decoded, then tested.
fn read_everything(store: &Store, q: &LogQuery) -> Vec<LogRecord> {
    let (_, parts) = store.inner.logs.snapshot();
    let mut all: Vec<LogRecord> = parts
        .iter()
        .flat_map(|p| p.read(None).expect("read"))
        .filter(|r| q.matches(r))
        .collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.time));
    all.truncate(q.limit);
    all
}

#[tokio::test]
async fn severity_service_and_stream_filters_skip_the_rows_they_rule_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let records = flushed_part(&store, 200_000).await;
    let queries = [
        LogQuery {
            min_severity: Some(17),
            ..query(10)
        },
        LogQuery {
            min_severity: Some(17),
            service: Some("worker".into()),
            stream: Some("dify-worker".into()),
            ..query(10_000)
        },
        LogQuery {
            service: Some("plugin_daemon".into()),
            from: Some(T0 + 1_000 * 1_000_000_000),
            to: Some(T0 + 1_100 * 1_000_000_000),
            ..query(50)
        },
    ];
    for q in &queries {
        let page = store.search_logs(&p("a"), q).await.expect("search");
        let mut want: Vec<&LogRecord> = records.iter().filter(|r| q.matches(r)).collect();
        want.sort_by_key(|r| std::cmp::Reverse(r.time));
        let truncated = want.len() > q.limit;
        want.truncate(q.limit);
        let got: Vec<&LogRecord> = page.records.iter().collect();
        assert_eq!(got, want, "{q:?}");
        assert_eq!(page.truncated, truncated, "{q:?}");
    }
    // Ten errors: the newest row group holds them; only error rows of it
    // are decoded whole.
    let page = store
        .search_logs(&p("a"), &queries[0])
        .await
        .expect("search");
    assert!(page.scanned <= 1_000, "decoded {} rows", page.scanned);
    // Errors of one service and stream: 1 in 600 rows, and no other row
    // decoded whole.
    let page = store
        .search_logs(&p("a"), &queries[1])
        .await
        .expect("search");
    assert_eq!(page.scanned, page.records.len() as u64);
}

/// Before and after the pushdown, over 250,000 records in one part:
/// `cargo test -p loupe-store --lib -- --ignored --nocapture
/// measure_log_search_pushdown` (numbers in docs/LOGS.md).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn measure_log_search_pushdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    flushed_part(&store, 250_000).await;
    for (name, q) in [
        (
            "severity=error&limit=10",
            LogQuery {
                min_severity: Some(17),
                ..query(10)
            },
        ),
        (
            "severity=error&service=worker&limit=1000",
            LogQuery {
                min_severity: Some(17),
                service: Some("worker".into()),
                ..query(1_000)
            },
        ),
    ] {
        let t = std::time::Instant::now();
        let before = read_everything(&store, &q);
        let before_ms = t.elapsed().as_millis();
        let t = std::time::Instant::now();
        let after = store.search_logs(&p("a"), &q).await.expect("search");
        let after_ms = t.elapsed().as_millis();
        assert_eq!(after.records, before);
        println!(
            "{name}: every row decoded {before_ms} ms; pushed down {after_ms} ms, {} rows decoded",
            after.scanned
        );
    }
}

#[tokio::test]
async fn log_counts_survive_a_restart_from_parts_and_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = loupe_model::time::now_ns();
    let stamped = |i: i64, severity: u8, service: &str| {
        let mut r = LogRecord::new("a", now - i * 1_000_000_000, format!("line {i}"));
        r.severity_number = severity;
        r.service = Some(service.into());
        r
    };
    {
        let store = open(dir.path());
        let flushed: Vec<_> = (0..30).map(|i| stamped(i, 17, "plugin_daemon")).collect();
        store.append_logs(flushed).await.expect("append");
        store.flush_logs().await.expect("flush");
        let unflushed: Vec<_> = (0..12).map(|i| stamped(i, 9, "api")).collect();
        store.append_logs(unflushed).await.expect("append");
        // No shutdown: the 12 are only in the WAL.
    }
    let store = open(dir.path());
    let counts = &store.inner.log_counts;
    assert_eq!(counts.get("a", "plugin_daemon", "error"), 30);
    assert_eq!(counts.get("a", "api", "info"), 12);
    let recent: std::collections::BTreeMap<_, _> =
        store.recent_log_counts(Some("a"), 5).into_iter().collect();
    assert_eq!(
        recent.get(&("a".to_owned(), "plugin_daemon".to_owned(), "error")),
        Some(&30)
    );
    assert_eq!(
        recent.get(&("a".to_owned(), "api".to_owned(), "info")),
        Some(&12)
    );
}

#[tokio::test]
async fn a_resent_elasticsearch_id_is_stored_once_per_stream_across_flush_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let with_id = |i: i64, stream: &str, id: Option<&str>| {
        let mut r = record("a", i, &format!("line {i}"));
        r.stream = Some(stream.into());
        if let Some(id) = id {
            r.attributes.insert(loupe_model::ES_ID.into(), id.into());
        }
        r
    };
    let count = |page: &loupe_backend::LogPage| page.records.len();
    {
        let store = open(dir.path());
        let (ack, dups) = store
            .append_logs_unique(vec![
                with_id(1, "s1", Some("x")),
                with_id(2, "s1", Some("x")),
                with_id(3, "s2", Some("x")),
                with_id(4, "s1", None),
                with_id(5, "s1", None),
            ])
            .await
            .expect("append");
        assert_eq!(dups, [false, true, false, false, false]);
        assert_eq!(ack.spans, 4);
        // Against the memtable.
        let (_, dups) = store
            .append_logs_unique(vec![
                with_id(1, "s1", Some("x")),
                with_id(6, "s1", Some("y")),
            ])
            .await
            .expect("append");
        assert_eq!(dups, [true, false]);
        store.flush_logs().await.expect("flush");
        // Against the part the flush wrote.
        let (ack, dups) = store
            .append_logs_unique(vec![with_id(6, "s1", Some("y"))])
            .await
            .expect("append");
        assert_eq!((ack.spans, dups), (0, vec![true]));
        // Plain appends do not look.
        store
            .append_logs(vec![with_id(7, "s1", Some("x"))])
            .await
            .expect("append");
        store.shutdown().await.expect("shutdown");
    }
    // Reopened: the parts' ids are read from them.
    let store = open(dir.path());
    let (_, dups) = store
        .append_logs_unique(vec![
            with_id(2, "s2", Some("x")),
            with_id(3, "s1", Some("y")),
            with_id(8, "s1", Some("z")),
        ])
        .await
        .expect("append");
    assert_eq!(dups, [true, true, false]);
    let all = store
        .search_logs(&p("a"), &query(100))
        .await
        .expect("search");
    assert_eq!(count(&all), 7);
}
