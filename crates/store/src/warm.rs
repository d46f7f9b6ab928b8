//! Parts' footers and page indexes, put in the store's metadata cache
//! before the first query reads them.
//!
//! A scan's first read of a part parses its footer and page index (a page
//! every 256 rows, so tens of thousands of page entries per part); after a
//! restart every part paid that once, and the first questions took about
//! three times their warm time (stop 34, 1M runs in 37 parts: "avg and p95
//! per tool per hour, 7 d" 300 ms on a fresh server, 90 ms after). The page
//! cache played no part: dropping it changed nothing. So opening the store
//! loads the live hot parts' metadata, newest first, within
//! [`OPEN_SHARE`] of the cache's budget; a flush and a compaction load the
//! parts they write before publishing them, and a compaction forgets the
//! parts it replaced. Entries are keyed exactly as scans look them up
//! (`table.rs` `scan_file`).

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use datafusion::datasource::listing::PartitionedFile;
// The type `DFParquetMetadata` looks for (`reader.rs` has another of the
// same name, which a scan's lookup would not recognise).
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::{CachedFileMetadataEntry, FileMetadataCache};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

use crate::parts::Part;

/// The share of the metadata cache a store's open fills: the rest is left
/// to what queries ask for, so warming never evicts itself in a loop.
const OPEN_SHARE: f64 = 0.75;

/// What a warming pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Warmed {
    pub parts: usize,
    pub bytes: usize,
}

/// Loads the metadata of `parts` (hot ones; cold parts are fetched on
/// demand and skipped) into `cache`, in the order given, stopping once
/// `budget` bytes are in (`None`: no limit: the parts a flush or a
/// compaction just wrote). A part whose metadata cannot be read is logged
/// and skipped: the scan reads it again, and reports the error there.
pub(crate) fn warm<'a>(
    cache: &FileMetadataCache,
    parts: impl IntoIterator<Item = &'a Arc<Part>>,
    budget: Option<usize>,
) -> Warmed {
    let mut done = Warmed::default();
    for part in parts {
        if part.is_cold() {
            continue;
        }
        if budget.is_some_and(|b| done.bytes >= b) {
            break;
        }
        match load(part) {
            Ok(entry) => {
                done.bytes += entry.file_metadata.memory_size();
                done.parts += 1;
                let key = entry.meta.location.clone();
                cache.put(&key, entry);
            }
            Err(e) => {
                tracing::warn!(part = part.meta.id, error = %e, "cannot read a part's metadata ahead of queries")
            }
        }
    }
    done
}

/// [`warm`] at open: the newest parts first, within [`OPEN_SHARE`] of the
/// cache's budget; logs what it did.
pub(crate) fn warm_at_open(cache: &FileMetadataCache, parts: &[Arc<Part>]) -> Warmed {
    let started = Instant::now();
    let mut newest: Vec<&Arc<Part>> = parts.iter().collect();
    newest.sort_by_key(|p| std::cmp::Reverse((p.meta.max_time, p.meta.id)));
    let budget = (cache.cache_limit() as f64 * OPEN_SHARE) as usize;
    let done = warm(cache, newest, Some(budget));
    tracing::info!(
        parts = done.parts,
        of = parts.len(),
        mb = done.bytes as f64 / 1e6,
        ms = started.elapsed().as_millis() as u64,
        "parts' footers and page indexes loaded ahead of queries"
    );
    done
}

/// Drops the entries of `parts` (replaced by a compaction): a query that
/// still reads one holds its own reference, and the cache's room goes to
/// live parts.
pub(crate) fn forget<'a>(
    cache: &FileMetadataCache,
    parts: impl IntoIterator<Item = &'a Arc<Part>>,
) {
    for part in parts {
        cache.remove(&file_of(part).object_meta.location);
    }
}

/// The footer and page index `cache` holds for `part`, if it holds them
/// (with the offset index, which a read by position needs): what the id
/// path takes instead of parsing the footer again.
pub(crate) fn cached(cache: &FileMetadataCache, part: &Part) -> Option<Arc<ParquetMetaData>> {
    let meta = file_of(part).object_meta;
    let entry = cache.get(&meta.location)?;
    if !entry.is_valid_for(&meta) {
        return None;
    }
    let parquet = entry
        .file_metadata
        .as_any()
        .downcast_ref::<CachedParquetMetaData>()?
        .parquet_metadata()
        .clone();
    parquet.offset_index().is_some().then_some(parquet)
}

/// The file a scan names for `part` ([`crate::table::scan_file`]), whose
/// `object_meta` is the cache's key and validity check.
fn file_of(part: &Part) -> PartitionedFile {
    crate::table::scan_file(&part.path, part.meta.bytes)
}

fn load(part: &Part) -> Result<CachedFileMetadataEntry, crate::Error> {
    let file = File::open(&part.path).map_err(|e| crate::Error::io(&part.path, e))?;
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(&file)?;
    Ok(CachedFileMetadataEntry::new(
        file_of(part).object_meta,
        Arc::new(CachedParquetMetaData::new(Arc::new(metadata))),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::execution::cache::cache_manager::FileMetadata;
    use loupe_model::{ProjectId, Span};

    use super::{CachedParquetMetaData, file_of};
    use crate::parts::Part;
    use crate::{Store, StoreConfig};

    const T0: i64 = 1_795_000_000_000_000_000;

    fn open(dir: &std::path::Path) -> Store {
        let config = StoreConfig {
            data_dir: dir.to_owned(),
            compaction_min_parts: 2,
            answer_from_rollups: false,
            ..StoreConfig::default()
        };
        Store::open(config, loupe_rollup::RollupConfig::default()).expect("open store")
    }

    /// The cached metadata of `part`, when there is one with the page index.
    fn cached(store: &Store, part: &Part) -> Option<Arc<dyn FileMetadata>> {
        let entry = store
            .inner
            .parquet_metadata
            .get(&file_of(part).object_meta.location)?;
        let parquet = entry
            .file_metadata
            .as_any()
            .downcast_ref::<CachedParquetMetaData>()
            .expect("parquet metadata")
            .parquet_metadata()
            .clone();
        assert!(
            parquet.column_index().is_some() && parquet.offset_index().is_some(),
            "the page index is loaded"
        );
        Some(entry.file_metadata)
    }

    /// Asks a scan of every part and checks that it took each part's
    /// metadata from the cache: had it read a footer, it would have put a
    /// new entry in.
    async fn scans_use_the_cache(store: &Store) {
        let parts = store.inner.state.lock().parts.clone();
        let before: Vec<_> = parts
            .iter()
            .map(|p| cached(store, p).expect("every part is cached"))
            .collect();
        let project = ProjectId::new("p").expect("project");
        let got = store
            .sql(
                &project,
                "SELECT count(*) AS n FROM spans WHERE status = 'error' AND start_time > TIMESTAMP '2000-01-01T00:00:00Z'",
            )
            .await
            .expect("query");
        assert_eq!(got[0].num_rows(), 1);
        for (p, b) in parts.iter().zip(&before) {
            let after = cached(store, p).expect("still cached");
            assert!(
                Arc::ptr_eq(b, &after),
                "part {} read its footer again",
                p.meta.id
            );
        }
    }

    fn spans(day: i64, n: usize) -> Vec<Span> {
        (0..n)
            .map(|i| {
                let mut s = Span::new("p", format!("s{day}-{i}"));
                s.trace_id = Some(format!("t{day}-{}", i / 5));
                s.start_time = Some(T0 + day * 86_400_000_000_000 + i as i64 * 1_000_000);
                s.end_time = s.start_time.map(|t| t + 1_000);
                if i % 7 == 0 {
                    s.status = Some(loupe_model::Status::Error);
                }
                s
            })
            .collect()
    }

    /// A flush, a compaction and an open each leave the live parts'
    /// footers and page indexes in the cache before any query, scans use
    /// them, and the parts a compaction replaced leave the cache.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_metadata_is_cached_before_the_first_query() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        for day in 0..2 {
            for _ in 0..2 {
                store.append(spans(day, 300)).await.expect("append");
                store.flush_all().await.expect("flush");
            }
        }
        // The flushed parts (two of each day, same ids: the second pair
        // replaced the first's rows) are cached as written.
        let flushed = store.inner.state.lock().parts.clone();
        assert_eq!(flushed.len(), 4);
        scans_use_the_cache(&store).await;

        let report = store.maintain().await.expect("maintain");
        assert_eq!(report.compacted_parts, 4, "{report:?}");
        let merged = store.inner.state.lock().parts.clone();
        assert_eq!(merged.len(), 2);
        for p in flushed.iter() {
            assert!(
                cached(&store, p).is_none(),
                "replaced part {} forgotten",
                p.meta.id
            );
        }
        scans_use_the_cache(&store).await;
        drop(store);

        // A fresh open, before any query.
        let store = open(dir.path());
        scans_use_the_cache(&store).await;

        // A run read by id takes its part's metadata from the cache: the
        // same footer, not a second parse of it.
        let project = ProjectId::new("p").expect("project");
        let run = store.trace_spans(&project, "t1-3").await.expect("run");
        assert_eq!(run.len(), 5);
        let parts = store.inner.state.lock().parts.clone();
        let holding: Vec<_> = parts
            .iter()
            .filter_map(|p| Some((p, p.held_metadata()?)))
            .collect();
        assert_eq!(holding.len(), 1, "one part holds the run");
        let (part, held) = &holding[0];
        let entry = cached(&store, part).expect("cached");
        let in_cache = entry
            .as_any()
            .downcast_ref::<CachedParquetMetaData>()
            .expect("parquet metadata")
            .parquet_metadata();
        assert!(Arc::ptr_eq(held, in_cache), "the footer was parsed again");
    }
}
