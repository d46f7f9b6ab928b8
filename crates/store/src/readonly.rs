//! Read-only opening: a consistent in-memory view of a data directory that
//! another process (a running `loupe serve`) may own, without writing a byte.
//!
//! [`Store::open_read_only`] loads the manifest, opens the parts it names and
//! replays the WAL past the flushed seq into a memtable, exactly like
//! [`Store::open`], but: every file is opened for reading only; a torn WAL
//! tail is skipped, not truncated (with a live writer it is usually a write
//! in progress); no WAL segment is created; files a crash left behind are
//! not removed; no sync thread or background loop runs. Appends, flushes and
//! maintenance fail with [`Error::ReadOnly`].
//!
//! Consistency with a live writer: the writer commits a new manifest before
//! deleting the WAL segments it covers, and deletes replaced parts only
//! after a grace period. So the view is consistent when the manifest is the
//! same after reading the WAL as before; otherwise (a flush or compaction
//! ran meanwhile), or when a file named by the manifest vanished, the open
//! starts again, a few times, before giving up.

use std::time::Duration;

use crate::manifest::Manifest;
use crate::wal::Wal;
use crate::{Error, Store, StoreConfig, parts};

/// Attempts before a directory that keeps changing under the open is an error.
const ATTEMPTS: u32 = 6;

impl Store {
    /// Opens the store in `config.data_dir` for queries only, writing nothing
    /// to the directory (see the module doc). The directory must exist; one
    /// without a manifest is an empty store. Blocking; call from a blocking
    /// context.
    pub fn open_read_only(
        config: StoreConfig,
        rollup: loupe_rollup::RollupConfig,
    ) -> Result<Self, Error> {
        let mut config = config;
        let meta =
            std::fs::metadata(&config.data_dir).map_err(|e| Error::io(&config.data_dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is not a directory",
                config.data_dir.display()
            )));
        }
        // Parquet scans name files by absolute path.
        config.data_dir =
            std::fs::canonicalize(&config.data_dir).map_err(|e| Error::io(&config.data_dir, e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::load_read_only(&config, &rollup) {
                Ok(Some(store)) => return Ok(store),
                Ok(None) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, "data directory changed while reading; again");
                }
                Ok(None) => {
                    return Err(Error::Invalid(format!(
                        "{} kept changing while it was read ({ATTEMPTS} attempts); try again",
                        config.data_dir.display()
                    )));
                }
                Err(Error::Io { source, path })
                    if source.kind() == std::io::ErrorKind::NotFound && attempt < ATTEMPTS =>
                {
                    tracing::debug!(path = %path.display(), attempt, "file vanished while reading; again");
                }
                Err(e) => return Err(e),
            }
            std::thread::sleep(Duration::from_millis(25 * u64::from(attempt)));
        }
    }

    /// One attempt: `None` when the manifest changed while the WAL was read.
    fn load_read_only(
        config: &StoreConfig,
        rollup: &loupe_rollup::RollupConfig,
    ) -> Result<Option<Self>, Error> {
        let dir = &config.data_dir;
        let manifest = Manifest::load(dir)?;
        let tier = crate::cold::Tier::open(&config.cold, dir, &manifest.cold_parts(), true)?;
        let parts = parts::open_parts(dir, &manifest.parts, tier.as_ref(), true)?;
        let rollups = crate::rollups::load(dir, manifest.flushed_seq, rollup)?;
        let (wal, records) = Wal::read_only(&dir.join("wal"), manifest.flushed_seq)?;
        if Manifest::load(dir)? != manifest {
            return Ok(None);
        }
        let logs =
            crate::logs::LogTable::open(dir, config.durability, config.fsync_interval, true)?;
        let loaded = crate::Loaded {
            manifest,
            parts,
            rollups,
            wal,
            logs,
            cold: tier,
            retention: crate::retention::usable(config, crate::retention::load(dir)?),
        };
        let store = Store::assemble(config.clone(), loaded, true);
        store.replay(records)?;
        Ok(Some(store))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::SystemTime;

    use loupe_backend::QueryLimits;
    use loupe_model::{ProjectId, Span};

    use super::*;

    const T0: i64 = 1_795_000_000_000_000_000;

    /// Every file and directory under `root`: size and mtime.
    fn snapshot(root: &Path) -> BTreeMap<PathBuf, (bool, u64, SystemTime)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("entry").path();
                let meta = std::fs::metadata(&path).expect("metadata");
                let rel = path.strip_prefix(root).expect("under root").to_owned();
                out.insert(
                    rel,
                    (meta.is_dir(), meta.len(), meta.modified().expect("mtime")),
                );
                if meta.is_dir() {
                    stack.push(path);
                }
            }
        }
        let meta = std::fs::metadata(root).expect("root");
        out.insert(PathBuf::new(), (true, 0, meta.modified().expect("mtime")));
        out
    }

    fn span(i: i64) -> Span {
        let mut s = Span::new("p", format!("s{i}"));
        s.trace_id = Some(format!("t{}", i / 3));
        s.start_time = Some(T0 + i * 1_000_000_000);
        s.name = Some(format!("node {i}"));
        s
    }

    fn config(dir: &Path) -> StoreConfig {
        StoreConfig {
            data_dir: dir.to_owned(),
            ..StoreConfig::default()
        }
    }

    async fn count(store: &Store) -> i64 {
        let project = ProjectId::new("p").expect("project");
        let result = store
            .read_only_sql(
                &project,
                "SELECT count(*) AS n FROM spans",
                QueryLimits::default(),
            )
            .await
            .expect("sql");
        result.rows[0][0].as_i64().expect("count")
    }

    /// A store with 10 spans in parts and 5 only in the WAL, closed without
    /// a flush, then given a torn WAL tail and leftover temp files.
    async fn crashed_store(dir: &Path) {
        let store = Store::open(config(dir), loupe_rollup::RollupConfig::default()).expect("open");
        store
            .append((0..10).map(span).collect())
            .await
            .expect("append");
        store.flush_all().await.expect("flush");
        store
            .append((10..15).map(span).collect())
            .await
            .expect("append");
        store.inner.wal.close().expect("close wal");
        let syncer = store.inner.syncer.lock().take();
        if let Some(h) = syncer {
            h.join().expect("join syncer");
        }
        drop(store);
        let wal_dir = dir.join("wal");
        let last = std::fs::read_dir(&wal_dir)
            .expect("wal dir")
            .map(|e| e.expect("entry").path())
            .max()
            .expect("a segment");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .expect("open segment");
        f.write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("torn tail");
        std::fs::write(dir.join("parts").join("leftover.parquet.tmp"), b"half").expect("tmp");
        std::fs::write(dir.join("manifest.json.tmp"), b"{half").expect("tmp");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_only_open_and_query_leave_every_file_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        crashed_store(dir.path()).await;
        let before = snapshot(dir.path());
        // mtimes have a coarse clock on some file systems: make changes visible.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cfg = config(dir.path());
        let store = tokio::task::spawn_blocking(move || {
            Store::open_read_only(cfg, loupe_rollup::RollupConfig::default())
        })
        .await
        .expect("join")
        .expect("open read-only");
        assert!(store.is_read_only());
        assert_eq!(count(&store).await, 15, "parts and WAL both visible");
        assert!(matches!(
            store.append(vec![span(99)]).await,
            Err(Error::ReadOnly)
        ));
        assert!(matches!(store.flush_all().await, Err(Error::ReadOnly)));
        assert!(matches!(store.maintain().await, Err(Error::ReadOnly)));
        store.spawn_background().await.expect("no-op background");
        store.shutdown().await.expect("shutdown is a no-op");
        drop(store);
        assert_eq!(before, snapshot(dir.path()), "the directory changed");
        // A read-write open afterwards still repairs the tail and sees all.
        let store =
            Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("reopen");
        assert_eq!(count(&store).await, 15);
        assert!(
            !dir.path()
                .join("parts")
                .join("leftover.parquet.tmp")
                .exists()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn read_only_view_follows_a_live_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer =
            Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
        writer
            .append((0..6).map(span).collect())
            .await
            .expect("append");
        writer.flush_all().await.expect("flush");
        writer
            .append((6..9).map(span).collect())
            .await
            .expect("append");
        let open = || {
            let cfg = config(dir.path());
            tokio::task::spawn_blocking(move || {
                Store::open_read_only(cfg, loupe_rollup::RollupConfig::default())
            })
        };
        let reader = open().await.expect("join").expect("open read-only");
        assert_eq!(count(&reader).await, 9);
        writer.flush_all().await.expect("flush");
        writer
            .append((9..12).map(span).collect())
            .await
            .expect("append");
        let reader = open().await.expect("join").expect("open read-only");
        assert_eq!(count(&reader).await, 12);
        writer.shutdown().await.expect("shutdown");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        assert!(
            Store::open_read_only(config(&missing), loupe_rollup::RollupConfig::default()).is_err()
        );
        assert!(!missing.exists());
    }
}
