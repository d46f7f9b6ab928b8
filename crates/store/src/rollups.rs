//! Persistence of the rollups and their read side.
//!
//! The write path keeps [`loupe_rollup::Rollups`] in the store's state:
//! each applied write retracts the previous merged version's contribution
//! and adds the new one's (`write.rs`), so a span counts once, in its
//! latest state. When a memtable is frozen, the rollups are snapshotted:
//! that snapshot reflects exactly the WAL records up to the memtable's
//! `max_seq`. Its flush writes it to `rollups/<seq>.json.zst` *before* the
//! manifest names `seq` as flushed, and removes older snapshots after. On
//! open, the snapshot of the manifest's `flushed_seq` is loaded and WAL
//! replay re-applies the later records, re-emitting their deltas: nothing
//! is lost or counted twice.
//!
//! The hour tier (every span ever stored, by start hour) would make that
//! snapshot grow without bound, so it is persisted per UTC day instead:
//! a flush writes only the days changed since the previous freeze, as
//! `rollups/hours/<day>-<seq>.json.zst`, and the snapshot names the file that
//! holds each day. Files the committed snapshot does not name are removed
//! after the manifest is stored, so a crash before that leaves the previous
//! snapshot's files in place.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use loupe_rollup::expose::{Format, SelfKind, SelfMetric};
use loupe_rollup::{DayFile, RollupConfig, Rollups, Snapshot};

use crate::wal::io_err;
use crate::{Error, Store};

const DIR: &str = "rollups";
const HOURS_DIR: &str = "hours";

/// zstd level of the files written: JSON of repeated series names and
/// tag values shrinks about tenfold (a day of 100k runs with two hour
/// tags: 17 MB of JSON).
const ZSTD_LEVEL: i32 = 3;

/// The snapshot of `seq` as this build writes it (`.json.zst`); `.json`,
/// as builds before compression wrote it, is still read.
fn file_of(data_dir: &Path, seq: u64) -> PathBuf {
    data_dir.join(DIR).join(format!("{seq:020}.json.zst"))
}

/// A day file as this build writes it (`.json.zst`; see [`file_of`]).
fn day_file_of(data_dir: &Path, day: i64, seq: u64) -> PathBuf {
    data_dir
        .join(DIR)
        .join(HOURS_DIR)
        .join(format!("{day}-{seq:020}.json.zst"))
}

/// The same file as an older build wrote it: plain JSON.
fn plain(path: &Path) -> PathBuf {
    path.with_extension("")
}

/// The JSON of a file written by [`encode`], or of its plain older
/// version; `NotFound` when neither exists.
fn read_json(path: &Path) -> std::io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => zstd::stream::decode_all(bytes.as_slice()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::read(plain(path)),
        Err(e) => Err(e),
    }
}

/// `value` as compressed JSON.
fn encode(value: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(value)
        .map_err(|e| Error::Internal(format!("cannot encode rollups: {e}")))?;
    zstd::bulk::compress(&json, ZSTD_LEVEL)
        .map_err(|e| Error::Internal(format!("cannot compress rollups: {e}")))
}

/// Loads the rollups persisted with the flush of `flushed_seq`.
pub(crate) fn load(
    data_dir: &Path,
    flushed_seq: u64,
    config: &RollupConfig,
) -> Result<Rollups, Error> {
    let path = file_of(data_dir, flushed_seq);
    let text = match read_json(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if flushed_seq > 0 {
                tracing::warn!(
                    path = %path.display(),
                    "no rollups persisted for the flushed data; counters restart from the unflushed records"
                );
                return Ok(Rollups::new_incomplete(config.clone()));
            }
            return Ok(Rollups::new(config.clone()));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let corrupt = |reason: String| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        reason,
    };
    let snap: Snapshot = serde_json::from_slice(&text)
        .map_err(|e| corrupt(format!("not valid rollups JSON: {e}")))?;
    if snap.seq != flushed_seq {
        return Err(corrupt(format!(
            "rollups are for seq {} but the manifest says {flushed_seq}",
            snap.seq
        )));
    }
    let mut days = Vec::with_capacity(snap.day_files.len());
    let mut lost = false;
    for (&day, &seq) in &snap.day_files {
        let path = day_file_of(data_dir, day, seq);
        let parsed = read_json(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_slice::<DayFile>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(file) => days.push(file),
            Err(reason) => {
                // The tier is an accelerator: without this day it cannot
                // answer exactly, so queries fall back to scans.
                tracing::warn!(path = %path.display(), %reason, "hour rollups of a day are unreadable; queries will scan");
                lost = true;
            }
        }
    }
    let mut rollups =
        Rollups::restore(config.clone(), snap, days).map_err(|e| corrupt(e.to_string()))?;
    if lost {
        rollups.mark_hours_incomplete();
    }
    if !rollups.dropped_hour_tags().is_empty() {
        tracing::warn!(
            dropped = ?rollups.dropped_hour_tags(),
            kept = ?rollups.config().hour_tags,
            "the hour rollups kept these tags, and no longer have room for them beside the \
             configured ones: their history there is dropped (queries naming them scan)"
        );
    }
    Ok(rollups)
}

/// Writes hour-tier day files atomically.
pub(crate) fn store_days(data_dir: &Path, days: &[DayFile]) -> Result<(), Error> {
    if days.is_empty() {
        return Ok(());
    }
    let dir = data_dir.join(DIR).join(HOURS_DIR);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    for day in days {
        write_synced(&day_file_of(data_dir, day.day, day.seq), &encode(day)?)?;
    }
    Ok(())
}

/// Durable replacement of one file (the directory's fsync included).
fn write_synced(path: &Path, body: &[u8]) -> Result<(), Error> {
    loupe_fsutil::write_atomic(path, body).map_err(io_err(path))
}

/// Writes a snapshot atomically (temp file, fsync, rename, fsync dir).
pub(crate) fn store(data_dir: &Path, snap: &Snapshot) -> Result<(), Error> {
    let dir = data_dir.join(DIR);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    write_synced(&file_of(data_dir, snap.seq), &encode(snap)?)
}

/// Removes snapshots (and temp files) other than the one for `keep`, and
/// hour-tier day files other than those `day_files` (its map) names.
pub(crate) fn remove_stale(
    data_dir: &Path,
    keep: u64,
    day_files: &BTreeMap<i64, u64>,
) -> Result<(), Error> {
    // Either spelling of a named file is kept: a day not changed since an
    // older build wrote it is still plain JSON.
    let keep = file_of(data_dir, keep);
    let keep_plain = plain(&keep);
    remove_unlisted(&data_dir.join(DIR), |p| *p == keep || *p == keep_plain)?;
    let named: HashSet<PathBuf> = day_files
        .iter()
        .map(|(&day, &seq)| day_file_of(data_dir, day, seq))
        .flat_map(|p| [plain(&p), p])
        .collect();
    remove_unlisted(&data_dir.join(DIR).join(HOURS_DIR), |p| named.contains(p))
}

/// Removes the files (not directories) of `dir` that `keep` rejects.
fn remove_unlisted(dir: &Path, keep: impl Fn(&PathBuf) -> bool) -> Result<(), Error> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        if !path.is_dir() && !keep(&path) {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

impl Store {
    /// A copy of the current rollups (every applied write counted),
    /// including the hour tier, whose size grows with the data kept.
    pub fn rollups(&self) -> Rollups {
        self.inner.state.lock().rollups.clone()
    }

    /// The tags the hour tier keeps besides the labels: the configured
    /// ones, then those it kept before and the configuration no longer
    /// names.
    pub fn hour_tags(&self) -> Vec<String> {
        self.inner.state.lock().rollups.hours().tags().to_vec()
    }

    /// A copy of the rollups without the hour tier (cumulative and
    /// per-minute series, recent events): what alerting evaluates, taken
    /// every interval.
    pub fn recent_rollups(&self) -> Rollups {
        self.inner.state.lock().rollups.clone_recent()
    }

    /// The `/metrics` body: the rollups (of one project when `project` is
    /// set) and the store's own health, from memory only.
    pub fn render_metrics(&self, format: Format, project: Option<&str>) -> String {
        self.render_metrics_with(format, project, Vec::new())
    }

    /// The analytics cache's size, hits and fills as self-metrics (also
    /// what a server whose spans are elsewhere reports of it).
    pub fn analytics_cache_metrics(&self) -> Vec<SelfMetric> {
        let analytics = self.analytics_cache();
        vec![
            SelfMetric {
                name: "loupe_analytics_cache_bytes",
                help: "Bytes of the product analytics' cached hourly run tables ([store] analytics_cache_bytes bounds it).",
                kind: SelfKind::Gauge,
                value: analytics.bytes as f64,
            },
            SelfMetric {
                name: "loupe_analytics_cache_hits_total",
                help: "Hours of run tables the product analytics read from the cache.",
                kind: SelfKind::Counter,
                value: analytics.hits as f64,
            },
            SelfMetric {
                name: "loupe_analytics_cache_fills_total",
                help: "Hours of run tables the product analytics computed from the spans and cached.",
                kind: SelfKind::Counter,
                value: analytics.fills as f64,
            },
        ]
    }

    /// [`Self::render_metrics`] plus the caller's own metrics (the API's,
    /// the Dify sync's), rendered in the same body.
    pub fn render_metrics_with(
        &self,
        format: Format,
        project: Option<&str>,
        own: Vec<SelfMetric>,
    ) -> String {
        let stats = self.stats();
        let extra = self.analytics_cache_metrics().into_iter().chain([
            SelfMetric {
                name: "loupe_wal_unflushed_records",
                help: "WAL records not yet flushed to Parquet parts.",
                kind: SelfKind::Gauge,
                value: stats.last_seq.saturating_sub(stats.flushed_seq) as f64,
            },
            SelfMetric {
                name: "loupe_wal_unflushed_bytes",
                help: "Approximate bytes of written data not yet flushed to Parquet parts.",
                kind: SelfKind::Gauge,
                value: stats.memtable_bytes as f64,
            },
            SelfMetric {
                name: "loupe_store_part_bytes",
                help: "Bytes of live Parquet parts.",
                kind: SelfKind::Gauge,
                value: stats.part_bytes as f64,
            },
            SelfMetric {
                name: "loupe_store_parts",
                help: "Live Parquet parts.",
                kind: SelfKind::Gauge,
                value: stats.parts as f64,
            },
            SelfMetric {
                name: "loupe_store_cold_parts",
                help: "Live parts in the cold tier (counted in loupe_store_parts too).",
                kind: SelfKind::Gauge,
                value: stats.cold_parts as f64,
            },
            SelfMetric {
                name: "loupe_store_cold_bytes",
                help: "Bytes of live parts in the cold tier (counted in loupe_store_part_bytes too).",
                kind: SelfKind::Gauge,
                value: stats.cold_bytes as f64,
            },
            SelfMetric {
                name: "loupe_store_cold_cache_bytes",
                help: "Bytes of cold parts in the local cache ([store.cold] cache_bytes bounds it).",
                kind: SelfKind::Gauge,
                value: stats.cold_cache_bytes as f64,
            },
            SelfMetric {
                name: "loupe_store_memtable_columnar_bytes",
                help: "Bytes of the columnar copies of memtable rows that queries read (built by queries, freed at flush).",
                kind: SelfKind::Gauge,
                value: stats.memtable_columnar_bytes as f64,
            },
            SelfMetric {
                name: "loupe_store_memtable_rows",
                help: "Rows in memtables (not yet flushed).",
                kind: SelfKind::Gauge,
                value: stats.memtable_rows as f64,
            },
        ]);
        let st = self.inner.state.lock();
        let hour_series = SelfMetric {
            name: "loupe_rollup_hour_series",
            help: "(Hour, series) entries of the rollups' hour tier, which answers aggregate queries; its memory grows with them.",
            kind: SelfKind::Gauge,
            value: st.rollups.hours().len() as f64,
        };
        let extra: Vec<SelfMetric> = extra.into_iter().chain([hour_series]).chain(own).collect();
        let mut text = loupe_rollup::expose::render(&st.rollups, format, project, &extra);
        drop(st);
        self.render_log_metrics_into(&mut text, format, project);
        text
    }

    /// The log record counters alone (what `/metrics` shows of this store
    /// when another backend holds the spans).
    pub fn render_log_metrics_into(
        &self,
        text: &mut String,
        format: Format,
        project: Option<&str>,
    ) {
        self.inner.log_counts.render_into(text, format, project);
    }
}
