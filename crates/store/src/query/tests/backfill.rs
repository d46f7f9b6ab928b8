//! The backfill path: runs first stored as running, then finished after
//! they were flushed, updated again, compacted and reopened. Every stage's
//! answers equal the brute-force fold over the final spans, and hidden
//! rows live in per-part deletion vectors, never in a global list.

use loupe_model::{Span, Status};

use super::data::generate;
use super::{check_all, config};
use crate::Store;

/// The first state a backfill or a live source sends for a third of the
/// spans: running, not ended. (Spans without a status keep theirs, so the
/// merge with the final state gives the final state exactly.)
pub(super) fn running_first(spans: &[Span]) -> (Vec<Span>, usize) {
    let mut running = 0;
    let first = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            if i % 3 == 0 && s.status.is_some() {
                s.status = Some(Status::Running);
                s.end_time = None;
                running += 1;
            }
            s
        })
        .collect();
    (first, running)
}

/// A second wave of updates: every fifth span flips between ok and error.
pub(super) fn flip_every_fifth(spans: &mut [Span]) -> Vec<Span> {
    let mut updates = Vec::new();
    for s in spans.iter_mut().step_by(5) {
        s.status = Some(match s.status {
            Some(Status::Ok) => Status::Error,
            _ => Status::Ok,
        });
        updates.push(s.clone());
    }
    updates
}

fn durable_hidden(store: &Store) -> u64 {
    let st = store.inner.state.lock();
    assert!(st.manifest.hidden.is_empty(), "no global hidden list");
    st.manifest.deletes.values().map(|dv| dv.len()).sum()
}

fn live_hidden(store: &Store) -> u64 {
    store.parts_snapshot().1.values().map(|dv| dv.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_after_flush_are_hidden_by_deletion_vectors_through_compaction_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    // Scans, not rollups: the deletion vectors are what is under test.
    store.set_answer_from_rollups(false);
    let mut spans = generate();
    let (first, running) = running_first(&spans);
    assert!(running > 100, "{running}");
    for chunk in first.chunks(500) {
        store.append(chunk.to_vec()).await.expect("append");
    }
    store.flush_all().await.expect("flush");
    let finished: Vec<Span> = spans.iter().step_by(3).cloned().collect();
    store.append(finished.clone()).await.expect("finish");
    // Hidden in memory only: the parts' live vectors, nothing durable.
    assert_eq!(durable_hidden(&store), 0);
    assert_eq!(live_hidden(&store), finished.len() as u64);
    check_all(&store, &spans, "finished in memtable").await;

    store.flush_all().await.expect("flush");
    assert_eq!(durable_hidden(&store), finished.len() as u64);
    check_all(&store, &spans, "finished and flushed").await;

    // Hidden rows of the second parts stay only in memory while compaction
    // rewrites the first ones, whose third hidden is over the threshold.
    let flipped = flip_every_fifth(&mut spans);
    store.append(flipped.clone()).await.expect("flip");
    let report = store.maintain().await.expect("maintain");
    assert!(report.compacted_parts >= 1, "{report:?}");
    assert_eq!(report.dropped_rows, finished.len(), "{report:?}");
    assert_eq!(durable_hidden(&store), 0);
    assert_eq!(live_hidden(&store), flipped.len() as u64);
    check_all(&store, &spans, "compacted, flips unflushed").await;

    // A crash: no shutdown, no flush. Replay hides the same rows again.
    drop(store);
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("reopen");
    store.set_answer_from_rollups(false);
    assert_eq!(live_hidden(&store), flipped.len() as u64);
    check_all(&store, &spans, "reopened after a crash").await;
    store.flush_all().await.expect("flush");
    store.maintain().await.expect("maintain");
    check_all(&store, &spans, "flushed and compacted after reopen").await;
    store.shutdown().await.expect("shutdown");
    drop(store);
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("reopen");
    store.set_answer_from_rollups(false);
    check_all(&store, &spans, "reopened cleanly").await;
}

/// A data directory written before deletion vectors: the manifest (format
/// 1) holds one global set of hidden versions. It opens and answers the
/// same, and the next manifest written is format 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_manifest_with_a_global_hidden_list_opens_and_answers_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    store.set_answer_from_rollups(false);
    let spans = generate();
    let (first, _) = running_first(&spans);
    store.append(first).await.expect("append");
    store.flush_all().await.expect("flush");
    store
        .append(spans.iter().step_by(3).cloned().collect())
        .await
        .expect("finish");
    store.shutdown().await.expect("shutdown");
    drop(store);

    // Rewrite the manifest as format 1 would have: versions, not positions.
    let path = dir.path().join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let manifest: crate::manifest::Manifest =
        serde_json::from_value(json.clone()).expect("manifest");
    let mut hidden = Vec::new();
    for meta in &manifest.parts {
        let Some(dv) = manifest.deletes.get(&meta.id) else {
            continue;
        };
        let rows = crate::parts::read_rows(
            &dir.path().join(&meta.path),
            None,
            &[loupe_model::column::SPAN_ID, loupe_model::column::VERSION],
            &crate::deletes::DeletionVector::default(),
        )
        .expect("rows");
        hidden.extend(dv.0.iter().map(|p| rows[p as usize].version));
    }
    assert!(!hidden.is_empty());
    json["format_version"] = 1.into();
    json["hidden"] = hidden.clone().into();
    json.as_object_mut().expect("object").remove("deletes");
    std::fs::write(&path, serde_json::to_vec(&json).expect("encode")).expect("write");

    let store = Store::open(config(dir.path()), loupe_rollup::RollupConfig::default())
        .expect("open format 1");
    store.set_answer_from_rollups(false);
    assert_eq!(live_hidden(&store), hidden.len() as u64);
    check_all(&store, &spans, "format 1 manifest").await;
    store.append(spans[..1].to_vec()).await.expect("append");
    store.flush_all().await.expect("flush");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    assert_eq!(written["format_version"], 2);
    assert!(written.get("hidden").is_none());
    check_all(&store, &spans, "format 1 upgraded").await;
}
