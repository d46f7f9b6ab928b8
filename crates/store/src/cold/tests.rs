//! The cold tier on a directory target (the S3 target runs the same code
//! against a real S3 server in `crates/loupe/tests/it/cold.rs`): answers
//! across tiers equal the answers before the move, reopen without
//! fetching, late updates of cold rows, retention in both tiers, what a
//! crash mid-move leaves, config errors, manifest formats.

use std::path::Path;

use loupe_model::{ProjectId, Span, SpanKind, Status};

use super::{ColdConfig, Target};
use crate::parts::Location;
use crate::{Store, StoreConfig};

const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// 2026-12-04T12:00:00Z: "now" of these tests.
const NOW: i64 = 1_796_385_600 * 1_000_000_000;

fn config(data: &Path, cold: &Path) -> StoreConfig {
    StoreConfig {
        data_dir: data.to_owned(),
        retention_days: 30,
        cold: ColdConfig {
            url: cold.to_string_lossy().into_owned(),
            hot_days: 2,
            ..ColdConfig::default()
        },
        ..StoreConfig::default()
    }
}

fn open(cfg: &StoreConfig) -> Store {
    Store::open(cfg.clone(), loupe_rollup::RollupConfig::default()).expect("open store")
}

fn project() -> ProjectId {
    ProjectId::new("p").expect("project")
}

/// Three runs of five spans on each of `days_ago`.
fn spans(days_ago: &[i64]) -> Vec<Span> {
    let mut out = Vec::new();
    for &d in days_ago {
        for run in 0..3 {
            let trace = format!("t{d}-{run}");
            for i in 0..5i64 {
                let mut s = Span::new("p", format!("{trace}-s{i}"));
                s.trace_id = Some(trace.clone());
                s.start_time = Some(NOW - d * DAY_NS + run * 60_000_000_000 + i);
                s.end_time = Some(NOW - d * DAY_NS + run * 60_000_000_000 + i + 1_000_000 * i);
                s.span_kind = Some(if i == 0 {
                    SpanKind::Workflow
                } else {
                    SpanKind::Tool
                });
                s.status = Some(if (run + i) % 4 == 0 {
                    Status::Error
                } else {
                    Status::Ok
                });
                s.tool_name = Some(format!("tool{}", i % 2));
                s.input = Some(format!("question about item {d}-{run}-{i}"));
                out.push(s);
            }
        }
    }
    out
}

/// The answers the test compares before and after a move, as text.
const QUESTIONS: &[&str] = &[
    "SELECT span_id, trace_id, status, tool_name, start_time FROM spans ORDER BY span_id",
    "SELECT tool_name, status, count(*) AS n FROM spans GROUP BY tool_name, status ORDER BY tool_name, status",
    "SELECT span_id FROM spans WHERE trace_id = 't9-1' ORDER BY span_id",
    "SELECT count(*) FROM spans WHERE input LIKE '%item 5-2%'",
];

async fn answers(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for q in QUESTIONS {
        let batches = store.sql(&project(), q).await.expect("sql");
        out.push(
            arrow::util::pretty::pretty_format_batches(&batches)
                .expect("format")
                .to_string(),
        );
    }
    out
}

fn cold_parts(store: &Store) -> Vec<(String, Location)> {
    let st = store.inner.state.lock();
    st.manifest
        .parts
        .iter()
        .map(|p| (p.day.clone(), p.location))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_across_hot_and_cold_parts_equal_the_answers_before_the_move() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, cold) = (dir.path().join("data"), dir.path().join("cold"));
    let cfg = config(&data, &cold);
    let store = open(&cfg);
    store.append(spans(&[9, 5, 0])).await.expect("append");
    store.flush_all().await.expect("flush");
    let before = answers(&store).await;
    assert!(before[0].lines().count() > 45, "{}", before[0]);

    let report = store.maintain_at(NOW).await.expect("maintain");
    assert_eq!(report.moved_parts, 2, "{report:?}");
    let mut locations = cold_parts(&store);
    locations.sort();
    assert_eq!(
        locations.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
        vec![Location::Cold, Location::Cold, Location::Hot],
        "{locations:?}"
    );
    // The tier holds the parts at their relative paths, plain Parquet.
    let moved: Vec<String> = {
        let st = store.inner.state.lock();
        st.parts
            .iter()
            .filter(|p| p.is_cold())
            .map(|p| p.meta.path.clone())
            .collect()
    };
    for rel in &moved {
        let file = std::fs::File::open(cold.join(rel)).expect("object in the tier");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("plain parquet");
        assert_eq!(reader.metadata().file_metadata().num_rows(), 15);
    }
    // The local copies go after the grace period.
    store.collect_garbage(true);
    for rel in &moved {
        assert!(!data.join(rel).exists(), "{rel} still local");
    }
    assert_eq!(answers(&store).await, before, "across tiers");

    // A late update of a cold span: one row, the merged one (the cold
    // part's deletion vector hides the old version).
    let mut late = Span::new("p", "t9-1-s2");
    late.status = Some(Status::Error);
    store.append(vec![late]).await.expect("append");
    store.flush_all().await.expect("flush");
    let rows = store
        .sql(
            &project(),
            "SELECT status, tool_name FROM spans WHERE span_id = 't9-1-s2'",
        )
        .await
        .expect("sql");
    let text = arrow::util::pretty::pretty_format_batches(&rows)
        .expect("format")
        .to_string();
    assert!(
        text.contains("error") && text.contains("tool0") && text.lines().count() == 5,
        "{text}"
    );
    let after_update = answers(&store).await;
    store.shutdown().await.expect("shutdown");
    drop(store);

    // Reopen with an empty cache: the id indexes come from the id files,
    // so opening fetches nothing, and a query of today's parts neither.
    std::fs::remove_dir_all(data.join("cold-cache")).expect("clear cache");
    let store = open(&cfg);
    assert_eq!(store.stats().cold_parts, 2);
    assert_eq!(store.stats().cold_cache_bytes, 0, "open fetched a part");
    let today = store
        .sql(
            &project(),
            &format!(
                "SELECT count(*) AS n FROM spans WHERE start_time >= to_timestamp_nanos({})",
                NOW - DAY_NS
            ),
        )
        .await
        .expect("sql");
    let text = arrow::util::pretty::pretty_format_batches(&today)
        .expect("format")
        .to_string();
    assert!(text.contains("| 15 |"), "{text}");
    assert_eq!(
        store.stats().cold_cache_bytes,
        0,
        "a query of today fetched a cold part"
    );
    assert_eq!(answers(&store).await, after_update, "after reopen");
    assert!(store.stats().cold_cache_bytes > 0);
    // One run read by id from a cold part (the id index path).
    let run = store.trace_spans(&project(), "t5-0").await.expect("trace");
    assert_eq!(run.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_parts_of_both_tiers_and_their_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, cold) = (dir.path().join("data"), dir.path().join("cold"));
    let mut cfg = config(&data, &cold);
    cfg.retention_days = 8;
    let store = open(&cfg);
    store.append(spans(&[12, 7, 5, 0])).await.expect("append");
    store.flush_all().await.expect("flush");
    // Day 12 expires at once (hot); 7 and 5 move.
    let report = store.maintain_at(NOW).await.expect("maintain");
    assert_eq!(
        (
            report.expired_parts,
            report.expired_cold_parts,
            report.moved_parts
        ),
        (1, 0, 2),
        "{report:?}"
    );
    let day7: String = {
        let st = store.inner.state.lock();
        st.parts
            .iter()
            .find(|p| p.meta.day == crate::parts::day_of(NOW - 7 * DAY_NS))
            .map(|p| p.meta.path.clone())
            .expect("day 7")
    };
    assert!(cold.join(&day7).exists());
    let ids = super::ids_path(
        &std::fs::canonicalize(&data).expect("canonical"),
        store
            .inner
            .state
            .lock()
            .parts
            .iter()
            .find(|p| p.meta.path == day7)
            .expect("part")
            .meta
            .id,
    );
    assert!(ids.exists());
    // Two days later, day 7 (cold) is past retention too.
    let report = store.maintain_at(NOW + 2 * DAY_NS).await.expect("maintain");
    assert_eq!(
        (report.expired_parts, report.expired_cold_parts),
        (1, 1),
        "{report:?}"
    );
    store.collect_garbage(true);
    assert!(!cold.join(&day7).exists(), "the cold object stays");
    assert!(!ids.exists(), "the id file stays");
    let rows = store
        .sql(&project(), "SELECT count(*) AS n FROM spans")
        .await
        .expect("sql");
    let text = arrow::util::pretty::pretty_format_batches(&rows)
        .expect("format")
        .to_string();
    assert!(text.contains("| 30 |"), "{text}");
}

/// What a crash leaves at each point of a move, recovered at open: a copy
/// without its commit (and a stale id file), and a committed move whose
/// local file was not yet deleted. (`crates/loupe/tests/it/cold.rs` kills
/// a real server at both points.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_interrupted_before_or_after_its_commit_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, cold) = (dir.path().join("data"), dir.path().join("cold"));
    let cfg = config(&data, &cold);
    let store = open(&cfg);
    store.append(spans(&[9, 0])).await.expect("append");
    store.flush_all().await.expect("flush");
    let before = answers(&store).await;
    let (rel, id) = {
        let st = store.inner.state.lock();
        let p = st
            .parts
            .iter()
            .find(|p| p.meta.day < crate::parts::day_of(NOW))
            .expect("old");
        (p.meta.path.clone(), p.meta.id)
    };
    store.shutdown().await.expect("shutdown");
    drop(store);
    let data = std::fs::canonicalize(&data).expect("canonical");
    // Before the commit: a torn copy in the tier and a stale id file.
    std::fs::create_dir_all(cold.join(&rel).parent().expect("dir")).expect("mkdir");
    std::fs::write(cold.join(&rel), b"PAR1 torn").expect("torn copy");
    std::fs::create_dir_all(data.join(super::IDS_DIR)).expect("mkdir");
    std::fs::write(super::ids_path(&data, id), b"stale").expect("stale ids");
    let store = open(&cfg);
    assert!(!super::ids_path(&data, id).exists(), "stale id file kept");
    assert_eq!(
        answers(&store).await,
        before,
        "after a crash before the commit"
    );
    // The next move overwrites the torn copy and verifies it.
    let report = store.maintain_at(NOW).await.expect("maintain");
    assert_eq!(report.moved_parts, 1);
    let tier = store.inner.cold.clone().expect("tier");
    assert!(tier.exists(&rel).expect("head"));
    // After the commit, before the local delete (the grace period): the
    // crash leaves the local file; the reopen removes it.
    store.shutdown().await.expect("shutdown");
    drop(store);
    assert!(data.join(&rel).exists());
    let store = open(&cfg);
    assert!(!data.join(&rel).exists(), "the moved local file stays");
    assert_eq!(
        answers(&store).await,
        before,
        "after a crash after the commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_naming_cold_parts_needs_the_cold_tier_and_a_new_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, cold) = (dir.path().join("data"), dir.path().join("cold"));
    let cfg = config(&data, &cold);
    let store = open(&cfg);
    store.append(spans(&[9, 0])).await.expect("append");
    store.flush_all().await.expect("flush");
    // No cold part yet: the manifest is format 2, as before the cold tier,
    // with no `location` key.
    let text = std::fs::read_to_string(data.join("manifest.json")).expect("manifest");
    assert!(
        text.contains("\"format_version\":2") && !text.contains("location"),
        "{text}"
    );
    store.maintain_at(NOW).await.expect("maintain");
    let text = std::fs::read_to_string(data.join("manifest.json")).expect("manifest");
    assert!(
        text.contains("\"format_version\":3") && text.contains("\"location\":\"cold\""),
        "{text}"
    );
    store.shutdown().await.expect("shutdown");
    drop(store);
    let mut without = cfg.clone();
    without.cold = ColdConfig::default();
    let err = Store::open(without, loupe_rollup::RollupConfig::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("store.cold.url"), "{err}");
}

/// A backup of a store with cold parts holds the manifest and id files,
/// not the parts (the tier keeps them) nor the cache; the restored
/// directory answers the same through the same tier, fetching nothing to
/// open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_with_cold_parts_restores_and_answers_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, cold) = (dir.path().join("data"), dir.path().join("cold"));
    let cfg = config(&data, &cold);
    let store = open(&cfg);
    store.append(spans(&[9, 5, 0])).await.expect("append");
    store.flush_all().await.expect("flush");
    store.maintain_at(NOW).await.expect("maintain");
    store.collect_garbage(true);
    let before = answers(&store).await;
    assert!(store.stats().cold_cache_bytes > 0);
    let (src, dest) = (data.clone(), dir.path().join("backup"));
    let index = tokio::task::spawn_blocking(move || {
        crate::backup::backup(&src, &dest, &mut |_| {}).expect("backup")
    })
    .await
    .expect("task");
    let files: Vec<&String> = index.files.keys().collect();
    assert!(
        files.iter().any(|f| f.starts_with("cold-ids/")),
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.starts_with("cold-cache")),
        "{files:?}"
    );
    assert_eq!(
        files.iter().filter(|f| f.starts_with("parts/")).count(),
        1,
        "only today's part is local: {files:?}"
    );
    store.shutdown().await.expect("shutdown");
    drop(store);
    let restored = dir.path().join("restored");
    crate::backup::restore(&dir.path().join("backup"), &restored).expect("restore");
    let mut cfg = config(&restored, &cold);
    cfg.cold.cache_dir = Some(dir.path().join("restored-cache"));
    let back = open(&cfg);
    assert_eq!(back.stats().cold_parts, 2);
    assert_eq!(back.stats().cold_cache_bytes, 0, "open fetched a part");
    assert_eq!(answers(&back).await, before, "restored");
}

#[test]
fn cold_config_errors_name_the_key() {
    let ok = ColdConfig {
        url: "s3://bucket/some/prefix/".into(),
        ..ColdConfig::default()
    };
    assert_eq!(
        ok.target().expect("parse"),
        Some(Target::S3 {
            bucket: "bucket".into(),
            prefix: "some/prefix".into()
        })
    );
    assert!(ok.validate(30).is_ok());
    assert_eq!(
        Target::parse("file:///srv/cold", "k").expect("dir"),
        Target::Dir("/srv/cold".into())
    );
    let cases = [
        ("s3:///x", 30, "store.cold.url"),
        ("relative/dir", 30, "store.cold.url"),
        ("gs://b/p", 30, "store.cold.url"),
        ("s3://b/p", 7, "store.cold.hot_days"),
    ];
    for (url, retention, key) in cases {
        let cfg = ColdConfig {
            url: url.into(),
            ..ColdConfig::default()
        };
        let err = cfg.validate(retention).expect_err(url);
        assert!(err.contains(key), "{url}: {err}");
    }
    let half = ColdConfig {
        url: "s3://b".into(),
        access_key_id: Some("id".into()),
        ..ColdConfig::default()
    };
    assert!(
        half.validate(30)
            .expect_err("half")
            .contains("secret_access_key")
    );
    let secret = ColdConfig {
        secret_access_key: Some("hunter2".into()),
        ..half
    };
    assert!(!format!("{secret:?}").contains("hunter2"));
}
