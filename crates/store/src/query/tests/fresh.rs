//! Fresh data: scans between writes build the memtables' columnar copies
//! incrementally (`memscan.rs`): rows converted once, updated in place
//! afterwards, superseded in a frozen memtable, frozen with changes not yet
//! converted. After every append a scanned count equals the distinct spans
//! written so far (no row lost or doubled as chunks merge), and each stage's
//! answers equal the brute-force fold.

use std::collections::HashSet;

use loupe_backend::plan::QueryLimits;
use loupe_model::Span;

use super::backfill::{flip_every_fifth, running_first};
use super::data::generate;
use super::{check_all, config, plan_of, project};
use crate::Store;

async fn scanned_count(store: &Store) -> i64 {
    let got = store
        .query_plan(&project(), &plan_of("| count()"), QueryLimits::default())
        .await
        .expect("count");
    assert!(!got.stats.from_rollups, "a scan, not the rollups");
    got.rows[0][0].as_i64().expect("a number")
}

async fn append_counting(store: &Store, spans: &[Span], batch: usize, ids: &mut HashSet<String>) {
    for chunk in spans.chunks(batch) {
        store.append(chunk.to_vec()).await.expect("append");
        ids.extend(chunk.iter().map(|s| s.span_id.clone()));
        assert_eq!(scanned_count(store).await, ids.len() as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_between_writes_see_every_span_once_through_updates_and_freezes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    store.set_answer_from_rollups(false);
    let mut spans = generate();
    let (first, running) = running_first(&spans);
    assert!(running > 100, "{running}");
    let mut ids = HashSet::new();
    // Batches that split runs, so late roots re-fill rows already converted.
    append_counting(&store, &first, 97, &mut ids).await;
    append_counting(&store, &spans, 131, &mut ids).await;
    assert!(store.stats().memtable_columnar_bytes > 0);
    check_all(&store, &spans, "memtable converted incrementally").await;

    // Updates after the last scan, then a freeze: the frozen memtable holds
    // changes its copies have not seen.
    let flipped = flip_every_fifth(&mut spans);
    store.append(flipped).await.expect("flip");
    store.freeze().expect("freeze");
    assert_eq!(scanned_count(&store).await, ids.len() as i64);
    // Updates of frozen rows: the frozen versions are hidden.
    let flipped_back = flip_every_fifth(&mut spans);
    append_counting(&store, &flipped_back, 53, &mut ids).await;
    check_all(&store, &spans, "frozen and active memtables").await;

    store.flush_all().await.expect("flush");
    assert_eq!(store.stats().memtable_columnar_bytes, 0, "freed at flush");
    check_all(&store, &spans, "parts").await;
    // Rows in parts and in the memtable, updated again.
    let again = flip_every_fifth(&mut spans);
    append_counting(&store, &again, 211, &mut ids).await;
    check_all(&store, &spans, "parts and memtable").await;
}
