//! Persistence of the rollups and their read side.
//!
//! The write path keeps [`loupe_rollup::Rollups`] in the store's state:
//! each applied write retracts the previous merged version's contribution
//! and adds the new one's (`write.rs`), so a span counts once, in its
//! latest state. When a memtable is frozen, the rollups are snapshotted:
//! that snapshot reflects exactly the WAL records up to the memtable's
//! `max_seq`. Its flush writes it to `rollups/<seq>.json` *before* the
//! manifest names `seq` as flushed, and removes older snapshots after. On
//! open, the snapshot of the manifest's `flushed_seq` is loaded and WAL
//! replay re-applies the later records, re-emitting their deltas: nothing
//! is lost or counted twice.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use loupe_rollup::expose::{Format, SelfKind, SelfMetric};
use loupe_rollup::{RollupConfig, Rollups, Snapshot};

use crate::wal::{io_err, sync_dir};
use crate::{Error, Store};

const DIR: &str = "rollups";

fn file_of(data_dir: &Path, seq: u64) -> PathBuf {
    data_dir.join(DIR).join(format!("{seq:020}.json"))
}

/// Loads the rollups persisted with the flush of `flushed_seq`.
pub(crate) fn load(
    data_dir: &Path,
    flushed_seq: u64,
    config: &RollupConfig,
) -> Result<Rollups, Error> {
    let path = file_of(data_dir, flushed_seq);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if flushed_seq > 0 {
                tracing::warn!(
                    path = %path.display(),
                    "no rollups persisted for the flushed data; counters restart from the unflushed records"
                );
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
    Rollups::restore(config.clone(), snap).map_err(|e| corrupt(e.to_string()))
}

/// Writes a snapshot atomically (temp file, fsync, rename, fsync dir).
pub(crate) fn store(data_dir: &Path, snap: &Snapshot) -> Result<(), Error> {
    let dir = data_dir.join(DIR);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let path = file_of(data_dir, snap.seq);
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(snap).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&body).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(&dir)
}

/// Removes snapshots (and temp files) other than the one for `keep`.
pub(crate) fn remove_stale(data_dir: &Path, keep: u64) -> Result<(), Error> {
    let dir = data_dir.join(DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    let keep = file_of(data_dir, keep);
    for entry in entries {
        let path = entry.map_err(io_err(&dir))?.path();
        if path != keep {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

impl Store {
    /// A copy of the current rollups (every applied write counted).
    pub fn rollups(&self) -> Rollups {
        self.inner.state.lock().rollups.clone()
    }

    /// The `/metrics` body: the rollups (of one project when `project` is
    /// set) and the store's own health, from memory only.
    pub fn render_metrics(&self, format: Format, project: Option<&str>) -> String {
        let stats = self.stats();
        let extra = [
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
                name: "loupe_store_memtable_rows",
                help: "Rows in memtables (not yet flushed).",
                kind: SelfKind::Gauge,
                value: stats.memtable_rows as f64,
            },
        ];
        let st = self.inner.state.lock();
        loupe_rollup::expose::render(&st.rollups, format, project, &extra)
    }
}
