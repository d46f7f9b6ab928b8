//! The history of cleanup runs (`dify-cleanups.json` in the data
//! directory): every `loupe dify cleanup` (dry run or not, finished,
//! stopped or failed) appends one record, whichever process ran it, so
//! the CLI, `/api/v1/dify/cleanups`, `/metrics` and the console read the
//! same list. At most [`MAX_RECORDS`] records (the oldest go) and
//! [`MAX_SKIPS`] skipped ids per record (the counts stay complete).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::relief::CleanupReport;

/// Records kept at most.
pub const MAX_RECORDS: usize = 500;

/// Skipped ids kept per record.
pub const MAX_SKIPS: usize = 20;

/// One cleanup run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanupRecord {
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// Who ran it: `cli`, `serve` or `console`.
    pub source: String,
    /// `--older-than`, as given (humantime).
    pub older_than: String,
    /// Why it failed, when it did (the report then holds what was done
    /// before the failure, if anything).
    pub error: Option<String>,
    /// What it did.
    pub report: CleanupReport,
}

impl CleanupRecord {
    /// Rows deleted per second of wall time.
    pub fn rows_per_second(&self) -> f64 {
        if self.report.elapsed_ms == 0 {
            return 0.0;
        }
        self.report.total_deleted() as f64 * 1000.0 / self.report.elapsed_ms as f64
    }
}

/// The persisted list, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanupHistory {
    /// File format version (1).
    pub version: u32,
    /// Records, oldest first.
    pub runs: Vec<CleanupRecord>,
}

impl CleanupHistory {
    /// `dify-cleanups.json` in the data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("dify-cleanups.json")
    }

    /// Loads the history; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
                path: path.to_owned(),
                reason: format!("not a cleanup history: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                version: 1,
                runs: Vec::new(),
            }),
            Err(e) => Err(Error::Checkpoint {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Appends `record` to the history in `data_dir` (read, append, write
    /// atomically). A cleanup runs alone per data directory (its progress
    /// file), so two appends do not race in practice.
    pub fn append(data_dir: &Path, mut record: CleanupRecord) -> Result<(), Error> {
        let path = Self::path(data_dir);
        let mut history = Self::load(&path)?;
        record.report.skipped.truncate(MAX_SKIPS);
        history.version = 1;
        history.runs.push(record);
        if history.runs.len() > MAX_RECORDS {
            let extra = history.runs.len() - MAX_RECORDS;
            history.runs.drain(..extra);
        }
        let bytes = serde_json::to_vec(&history).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        loupe_fsutil::write_atomic(&path, &bytes).map_err(|e| Error::Checkpoint {
            path,
            reason: e.to_string(),
        })
    }

    /// Total rows deleted and bytes estimated freed by the runs that were
    /// not dry runs.
    pub fn totals(&self) -> (u64, u64) {
        self.runs
            .iter()
            .filter(|r| !r.report.dry_run)
            .fold((0, 0), |(rows, bytes), r| {
                (
                    rows + r.report.total_deleted(),
                    bytes + r.report.estimated_bytes_freed,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_bounded_and_skips_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..(MAX_RECORDS + 3) {
            let mut report = CleanupReport {
                dry_run: i % 2 == 1,
                ..CleanupReport::default()
            };
            report.deleted.insert("workflow_runs".into(), 2);
            report.estimated_bytes_freed = 100;
            report.skipped = (0..50)
                .map(|j| crate::relief::Skip {
                    id: j.to_string(),
                    reason: "open".into(),
                    detail: String::new(),
                })
                .collect();
            CleanupHistory::append(
                dir.path(),
                CleanupRecord {
                    started_at: i.to_string(),
                    report,
                    ..CleanupRecord::default()
                },
            )
            .expect("append");
        }
        let h = CleanupHistory::load(&CleanupHistory::path(dir.path())).expect("load");
        assert_eq!(h.runs.len(), MAX_RECORDS);
        assert_eq!(h.runs[0].started_at, "3");
        assert!(h.runs.iter().all(|r| r.report.skipped.len() == MAX_SKIPS));
        assert_eq!(h.totals(), (MAX_RECORDS as u64, 50 * MAX_RECORDS as u64));
    }
}
