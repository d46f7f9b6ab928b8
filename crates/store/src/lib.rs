//! The embedded store: WAL → memtable → Parquet parts, queried with DataFusion.
//!
//! Write path (`write.rs`): an append takes the append gate, looks up older
//! versions of its spans (memtable, frozen memtables, then parts through
//! their id blooms), writes one WAL record, merges the spans into the active
//! memtable (hiding superseded row versions) and propagates run-level
//! context, then waits for the durability the config promises.
//!
//! Flush (`flush.rs`): the active memtable is frozen, written as one Parquet
//! part per (project, day), and the manifest records the parts, the flushed
//! WAL seq and the rows newly hidden (per-part deletion vectors,
//! `deletes.rs`) in one atomic replacement.
//!
//! Maintenance (`maintenance.rs`): compaction rewrites parts that need it
//! (many hidden rows, or enough small parts of one size tier in a (project,
//! day)) and physically drops rows whose hiding is durable; retention drops
//! whole parts older than the project's retention.
//!
//! Reads (`table.rs`, `read.rs`): a DataFusion `TableProvider` per project over
//! the memtable snapshot plus the parts, pruned by time and id blooms, with
//! each part's hidden rows skipped through a row selection, so every query
//! sees exactly one merged row per span.

#![warn(missing_docs)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

pub mod backup;
pub mod cold;
mod compaction;
mod config;
mod convert;
mod deletes;
mod flush;
mod fts;
mod logs;
mod maintenance;
mod manifest;
mod memscan;
mod memtable;
mod mirrors;
mod part_file;
mod partials;
mod parts;
mod payloads;
mod query;
mod read;
mod reader_table;
mod readonly;
pub mod retention;

/// Answers from an hour tier kept by another backend (ClickHouse's own
/// table): the embedded store's rules over hours that backend sums.
pub mod hour_answers {
    pub use crate::query::rollup::{
        Known, RollupPlan, answer, named_dims, needs_histograms, prepare_over, required_dims,
    };
}
mod rollups;
pub mod settings;
mod table;
mod timelines;
mod traces;
mod wal;
mod warm;
mod write;

pub use cold::ColdConfig;
pub use config::{Durability, MAX_RETENTION_DAYS, StoreConfig};
pub use convert::Row;
pub use logs::LogStats;
pub use maintenance::MaintenanceReport;
pub use partials::AnalyticsCacheStats;
pub use query::{MAX_SQL_BYTES, MAX_SQL_EXPR_DEPTH, ScanCounter};
pub use read::SPANS_TABLE;
pub use reader_table::ReaderTable;
pub use table::SpansTable;
pub use traces::{MAX_TRACE_IDS, MAX_TRACE_SPANS};

use crate::manifest::Manifest;
use crate::memtable::{Key, Memtable, RunContext};
use crate::parts::{Part, PartList};
use crate::wal::Wal;

/// Errors of the embedded store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A persisted file is damaged.
    #[error("{path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Unflushed data is over budget; retry later.
    #[error("store is over its memory budget; retry later")]
    Full,
    /// The store is closed.
    #[error("store is closed")]
    Closed,
    /// Another process has the data directory open for writing.
    #[error(
        "{0} is in use by another Loupe process (a running `loupe serve`?); stop it, or read with `--data-dir` commands that open it read-only"
    )]
    Locked(PathBuf),
    /// The store was opened with [`Store::open_read_only`] and takes no
    /// writes, flushes or maintenance.
    #[error(
        "the store is open read-only: writes, flushes and maintenance go through the server that owns the data directory"
    )]
    ReadOnly,
    /// The request is invalid: the caller's fault (HTTP 4xx).
    #[error("{0}")]
    Invalid(String),
    /// Loupe failed (a task panicked, a value did not serialise, a batch
    /// lacked a column Loupe itself wrote): never the caller's fault
    /// (HTTP 5xx, logged with this context).
    #[error("internal: {0}")]
    Internal(String),
    /// Arrow failure.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failure.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Query engine failure.
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// The cold tier (object storage) failed.
    #[error("cold tier {key}: {}", cold::causes(error.as_ref()))]
    Cold {
        /// The tier and the object key.
        key: String,
        /// The object store's error (its message holds its causes, so it
        /// is not chained as a `source` too).
        error: Box<object_store::Error>,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl From<Error> for loupe_backend::StoreError {
    fn from(e: Error) -> Self {
        use loupe_backend::StoreError as S;
        match e {
            Error::Full => S::Overloaded {
                retry_after: Duration::from_secs(1),
            },
            Error::Closed => S::Closed,
            // ENOSPC / EDQUOT: the failed WAL write was cut off (`wal.rs`),
            // so this is transient and the caller may retry (503).
            Error::Io { path, source } if matches!(source.raw_os_error(), Some(28 | 122)) => {
                S::StorageFull(format!("{}: {source}", path.display()))
            }
            Error::Invalid(m) => S::Invalid(m),
            Error::ReadOnly => S::Unsupported(Error::ReadOnly.to_string()),
            // Plans are built by Loupe from checked queries, so a planning
            // or schema error here is Loupe's fault; user SQL maps its own
            // errors to `Invalid` first (`query/sql.rs`).
            Error::DataFusion(e) => match e.find_root() {
                datafusion::error::DataFusionError::ResourcesExhausted(m)
                    if m.contains(query::BUSY_MARK) =>
                {
                    S::Busy(m.clone())
                }
                datafusion::error::DataFusionError::ResourcesExhausted(m) => {
                    S::ResourcesExhausted(m.clone())
                }
                root => S::Internal(root.to_string()),
            },
            other => S::Internal(other.to_string()),
        }
    }
}

/// Mutable state behind one lock. Held only for in-memory work and the
/// manifest replacement, never across a Parquet read or write.
pub(crate) struct State {
    pub active: Memtable,
    /// Frozen memtables waiting for (or in) flush, oldest first.
    pub frozen: Vec<Arc<Memtable>>,
    pub parts: PartList,
    pub manifest: Manifest,
    /// Versions hidden by memtables not yet flushed (every memtable's
    /// `pending_hidden`): filters memtable rows, and no compaction drops
    /// them. Bounded by the unflushed data.
    pub hidden: Arc<HashSet<u64>>,
    /// Live deletion vectors of the parts: the manifest's durable ones plus
    /// the part rows in `hidden`.
    pub deletes: deletes::LiveDeletes,
    pub contexts: foldhash::HashMap<Key, RunContext>,
    pub next_version: u64,
    pub next_seq: u64,
    /// Files replaced by compaction, retention or a move to the cold tier,
    /// deleted after a grace period.
    pub garbage: Vec<(std::time::Instant, Garbage)>,
    /// Rollups of every visible row: each applied write retracts the old
    /// merged version's contribution and adds the new one.
    pub rollups: loupe_rollup::Rollups,
    /// The hours each write changed, for the analytics' cached hourly
    /// tables (`partials.rs`).
    pub changes: partials::Changes,
}

/// A file to delete once no query can still be reading it.
pub(crate) enum Garbage {
    /// A local file (a replaced or moved part).
    File(PathBuf),
    /// A cold part retention dropped: its object, cached copy and id file.
    Cold {
        /// Part id.
        id: u64,
        /// Relative path (the object key under the tier's prefix).
        rel: String,
    },
}

/// Size and shape numbers for health endpoints and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Rows in memtables (active and frozen).
    pub memtable_rows: usize,
    /// Approximate bytes in memtables.
    pub memtable_bytes: usize,
    /// Bytes of the memtables' columnar copies that scans read.
    pub memtable_columnar_bytes: usize,
    /// Live parts.
    pub parts: usize,
    /// Rows in live parts (including hidden versions).
    pub part_rows: u64,
    /// Bytes of live parts.
    pub part_bytes: u64,
    /// Live parts in the cold tier (counted in `parts` too).
    pub cold_parts: usize,
    /// Bytes of live parts in the cold tier (counted in `part_bytes` too).
    pub cold_bytes: u64,
    /// Bytes of cold parts in the local cache.
    pub cold_cache_bytes: u64,
    /// Highest WAL seq written.
    pub last_seq: u64,
    /// Highest WAL seq in parts.
    pub flushed_seq: u64,
}

/// The embedded store. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: StoreConfig,
    pub state: Mutex<State>,
    /// Serialises appends (lookups, WAL write, apply) so WAL order is apply order.
    pub append_gate: Mutex<()>,
    /// Admission slots for appends (`max_concurrent_appends`).
    pub append_slots: tokio::sync::Semaphore,
    /// Serialises flushes.
    pub flush_gate: Arc<tokio::sync::Mutex<()>>,
    /// Serialises maintenance passes. Not the flush gate: a pass over a
    /// large store runs for minutes, and flushes waiting behind it let
    /// unflushed data fill up until appends were refused (a backfill of
    /// 1M runs stalled twice for two minutes). Compaction instead takes
    /// in, at its commit, what flushes made durable meanwhile.
    pub maintenance_gate: Arc<tokio::sync::Mutex<()>>,
    /// Set by `shutdown`: a running maintenance pass ends after its current
    /// step (a group compacted, a text index built, a part moved), so
    /// shutting down does not wait for a whole pass (minutes at 1M runs,
    /// past a service manager's grace period).
    pub stopping: std::sync::atomic::AtomicBool,
    pub wal: Arc<Wal>,
    pub syncer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub flush_wake: tokio::sync::Notify,
    /// Opened with `open_read_only`: nothing may write to the directory.
    pub read_only: bool,
    /// Exclusive lock on `<data_dir>/LOCK` held by a writable store, so two
    /// processes never append to one WAL. Released when the store drops (or
    /// the process dies).
    pub dir_lock: Mutex<Option<std::fs::File>>,
    /// Whether aggregate queries may be answered from the hour rollups
    /// (`answer_from_rollups`; switchable at run time for benchmarks).
    pub rollup_answers: std::sync::atomic::AtomicBool,
    /// The memory pool every query reserves from (`[query]
    /// total_memory_bytes`; `None`: each query only has its own limit).
    pub query_pool: Mutex<Option<Arc<dyn datafusion::execution::memory_pool::MemoryPool>>>,
    /// The logs table (`logs.rs`): its own WAL, memtable and parts.
    pub logs: logs::LogTable,
    /// Counts of acknowledged log records for `/metrics`.
    pub log_counts: loupe_rollup::logs::LogCounts,
    /// Full-text indexes loaded so far, by part id (`fts.rs`).
    pub text_indexes: Mutex<std::collections::HashMap<u64, Arc<fts::Index>>>,
    /// Parquet footers and page indexes of the parts queries read, shared
    /// by every query's runtime (`query::query_runtime`): parsing a part's
    /// page index was a tenth of a day's scan. Part files never change
    /// under their path (a rewrite is a new part id).
    pub parquet_metadata: Arc<datafusion::execution::cache::cache_manager::FileMetadataCache>,
    /// The analytics' hourly tables (`partials.rs`). Never held together
    /// with `state`.
    pub partials: Mutex<partials::PartialCache>,
    /// The cold tier (`[store.cold]`), if configured.
    pub cold: Option<Arc<cold::Tier>>,
    /// Per-project retention set at run time over the API (`retention.rs`):
    /// read by every retention decision, before the config's.
    pub retention: parking_lot::RwLock<std::collections::BTreeMap<String, u32>>,
    /// Tests: runs once inside the next flush, after the freeze and before
    /// any part is written, so a test can act mid-flush without racing it.
    #[cfg(test)]
    pub after_freeze: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Tests: run by compaction once a group is read and its new part
    /// written, before the commit, so a test can flush in between.
    #[cfg(test)]
    pub before_compaction_commit: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Tests: the most run keys a `run has` is answered with as a list
    /// (`query::run_has`), lowered to take the subquery path.
    #[cfg(test)]
    pub run_has_keys_max: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`: loads the manifest,
    /// removes files a crash left behind, opens the parts and replays the WAL
    /// past the flushed seq. `rollup` (`[metrics]` in `loupe.toml`) says
    /// which tags the rollups key on. Blocking; call from a blocking context.
    pub fn open(config: StoreConfig, rollup: loupe_rollup::RollupConfig) -> Result<Self, Error> {
        let mut config = config;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::io(&config.data_dir, e))?;
        // Parquet scans name files by absolute path.
        config.data_dir =
            std::fs::canonicalize(&config.data_dir).map_err(|e| Error::io(&config.data_dir, e))?;
        let dir = config.data_dir.clone();
        let dir_lock = lock_data_dir(&dir)?;
        let manifest = Manifest::load(&dir)?;
        flush::remove_orphans(&dir, &manifest)?;
        let tier = cold::Tier::open(&config.cold, &dir, &manifest.cold_parts(), false)?;
        let parts = parts::open_parts(&dir, &manifest.parts, tier.as_ref(), false)?;
        // Recorded once the parts open: a start refused for a missing cold
        // tier does not erase the tier other commands adopt from here.
        let set_retention = retention::usable(&config, retention::load(&dir)?);
        let mut recorded = settings::DirSettings::of(&config, &rollup);
        recorded.retention_days_by_project = retention::effective(&config, &set_retention);
        recorded.store(&dir)?;
        let loaded_rollups = rollups::load(&dir, manifest.flushed_seq, &rollup)?;
        let (wal, records) = Wal::open(&dir.join("wal"), manifest.flushed_seq, config.durability)?;
        let logs = logs::LogTable::open(&dir, config.durability, config.fsync_interval, false)?;
        let store = Store::assemble(
            config,
            Loaded {
                manifest,
                parts,
                rollups: loaded_rollups,
                wal: wal.clone(),
                logs,
                cold: tier,
                retention: set_retention,
            },
            false,
        );
        *store.inner.dir_lock.lock() = Some(dir_lock);
        store.replay(records)?;
        // `/metrics` and the log gauges count what is stored, not only what
        // arrived since this start.
        store.seed_log_counts()?;
        let interval = store.inner.config.fsync_interval;
        let syncer = std::thread::Builder::new()
            .name("loupe-wal-sync".into())
            .spawn(move || wal.run_syncer(interval))
            .map_err(|e| Error::io(&dir, e))?;
        *store.inner.syncer.lock() = Some(syncer);
        Ok(store)
    }

    /// The store over loaded parts and an open WAL, before replay.
    pub(crate) fn assemble(config: StoreConfig, loaded: Loaded, read_only: bool) -> Self {
        let Loaded {
            manifest,
            parts,
            rollups,
            wal,
            logs,
            cold,
            retention,
        } = loaded;
        let next_seq = wal.last_seq() + 1;
        let mut manifest = manifest;
        let lost = manifest.upgrade_hidden(&parts);
        if lost > 0 {
            tracing::warn!(
                versions = lost,
                "format 1 manifest hid row versions no part holds; ignored"
            );
        }
        let deletes = manifest
            .deletes
            .iter()
            .map(|(id, dv)| (*id, Arc::new(dv.clone())))
            .collect();
        let state = State {
            active: Memtable::default(),
            frozen: Vec::new(),
            parts: Arc::new(parts),
            hidden: Arc::new(HashSet::new()),
            deletes: Arc::new(deletes),
            next_version: manifest.next_version,
            manifest,
            contexts: Default::default(),
            next_seq,
            garbage: Vec::new(),
            rollups,
            changes: Default::default(),
        };
        let append_slots = tokio::sync::Semaphore::new(config.max_concurrent_appends.max(1));
        let config_rollup_answers = config.answer_from_rollups;
        let partial_cache = partials::PartialCache::new(config.analytics_cache_bytes);
        let store = Store {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                append_gate: Mutex::new(()),
                append_slots,
                flush_gate: Arc::new(tokio::sync::Mutex::new(())),
                maintenance_gate: Arc::new(tokio::sync::Mutex::new(())),
                stopping: std::sync::atomic::AtomicBool::new(false),
                wal,
                syncer: Mutex::new(None),
                flush_wake: tokio::sync::Notify::new(),
                read_only,
                dir_lock: Mutex::new(None),
                rollup_answers: std::sync::atomic::AtomicBool::new(config_rollup_answers),
                query_pool: Mutex::new(None),
                logs,
                log_counts: Default::default(),
                text_indexes: Mutex::new(Default::default()),
                parquet_metadata: Arc::new(
                    datafusion::execution::cache::default_cache::DefaultCache::new(
                        query::PARQUET_METADATA_CACHE_BYTES,
                    )
                    .with_name("loupe parquet metadata"),
                ),
                partials: Mutex::new(partial_cache),
                cold,
                retention: parking_lot::RwLock::new(retention),
                #[cfg(test)]
                after_freeze: Mutex::new(None),
                #[cfg(test)]
                before_compaction_commit: Mutex::new(None),
                #[cfg(test)]
                run_has_keys_max: std::sync::atomic::AtomicUsize::new(query::RUN_HAS_KEYS_MAX),
            }),
        };
        let parts = store.inner.state.lock().parts.clone();
        warm::warm_at_open(store.inner.parquet_metadata.as_ref(), &parts);
        store
    }

    /// Applies replayed WAL records to the memtable.
    pub(crate) fn replay(&self, records: Vec<wal::Record>) -> Result<(), Error> {
        let replayed = records.len();
        for record in records {
            let spans = wal::decode_spans(&record.payload).map_err(|e| Error::Corrupt {
                path: self.inner.config.data_dir.join("wal"),
                offset: record.seq,
                reason: format!("record {} does not decode: {e}", record.seq),
            })?;
            self.apply(record.seq, spans)?;
        }
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed wal");
        }
        Ok(())
    }

    /// Whether the store was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// [`Error::ReadOnly`] for a read-only store.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if self.inner.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Current size numbers.
    pub fn stats(&self) -> StoreStats {
        let st = self.inner.state.lock();
        let mem = std::iter::once(&st.active).chain(st.frozen.iter().map(|m| m.as_ref()));
        let (rows, bytes, columnar) = mem.fold((0, 0, 0), |(r, b, c), m| {
            (r + m.rows.len(), b + m.bytes, c + m.columnar.bytes())
        });
        StoreStats {
            memtable_rows: rows,
            memtable_bytes: bytes,
            memtable_columnar_bytes: columnar,
            parts: st.parts.len(),
            part_rows: st.parts.iter().map(|p| p.meta.rows).sum(),
            part_bytes: st.parts.iter().map(|p| p.meta.bytes).sum(),
            cold_parts: st.parts.iter().filter(|p| p.is_cold()).count(),
            cold_bytes: st
                .parts
                .iter()
                .filter(|p| p.is_cold())
                .map(|p| p.meta.bytes)
                .sum(),
            cold_cache_bytes: self.inner.cold.as_ref().map_or(0, |t| t.cache.bytes()),
            last_seq: st.next_seq - 1,
            flushed_seq: st.manifest.flushed_seq,
        }
    }

    /// Flushes everything, syncs and closes the WAL and releases the data
    /// directory lock. Later appends fail.
    pub async fn shutdown(&self) -> Result<(), Error> {
        if self.inner.read_only {
            return Ok(());
        }
        // A maintenance pass still running (flushes no longer wait for
        // one) stops after its current step, before the directory is
        // released; none starts after.
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _maintenance = self.inner.maintenance_gate.lock().await;
        self.flush_all().await?;
        self.flush_logs().await?;
        self.inner.wal.close()?;
        self.close_logs()?;
        let syncer = self.inner.syncer.lock().take();
        if let Some(handle) = syncer {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        // Closed for writing: another process may now open the directory.
        self.inner.dir_lock.lock().take();
        Ok(())
    }

    /// Every project with spans here (in parts or in memory), sorted:
    /// what `loupe migrate` copies.
    pub fn projects(&self) -> Vec<String> {
        let st = self.inner.state.lock();
        let mut out: std::collections::BTreeSet<String> =
            st.parts.iter().map(|p| p.meta.project.clone()).collect();
        for m in std::iter::once(&st.active).chain(st.frozen.iter().map(|m| m.as_ref())) {
            for (project, _) in m.rows.keys() {
                if !out.contains(project) {
                    out.insert(project.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Runs the background flush and maintenance loop until the returned
    /// handle is aborted or the store closes.
    pub fn spawn_background(&self) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        if store.inner.read_only {
            // Nothing to flush or maintain; the handle just finishes.
            return tokio::spawn(async {});
        }
        tokio::spawn(async move { store.background_loop().await })
    }

    /// Whether `shutdown` has begun (maintenance stops at its next step).
    pub(crate) fn stopping(&self) -> bool {
        self.inner
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The live parts and their live deletion vectors, as one consistent
    /// snapshot.
    pub(crate) fn parts_snapshot(&self) -> (PartList, deletes::LiveDeletes) {
        let st = self.inner.state.lock();
        (st.parts.clone(), st.deletes.clone())
    }
}

pub(crate) fn live_parts_of<'a>(
    parts: &'a [Arc<Part>],
    project: &'a str,
) -> impl Iterator<Item = &'a Arc<Part>> {
    parts.iter().filter(move |p| p.meta.project == project)
}

#[cfg(test)]
mod rollup_tests;
#[cfg(test)]
mod tests;

/// What opening read from a data directory, for [`Store::assemble`].
pub(crate) struct Loaded {
    pub(crate) manifest: Manifest,
    pub(crate) parts: Vec<Arc<Part>>,
    pub(crate) rollups: loupe_rollup::Rollups,
    pub(crate) wal: Arc<Wal>,
    pub(crate) logs: logs::LogTable,
    pub(crate) cold: Option<Arc<cold::Tier>>,
    /// Per-project retention set at run time (`retention.json`).
    pub(crate) retention: std::collections::BTreeMap<String, u32>,
}

/// Takes the exclusive lock on `<dir>/LOCK`, failing at once if another
/// process holds it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, Error> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}
