//! The cleanup progress file, `dify-cleanup.json` in the data directory,
//! separate from the sync checkpoint: per scope, the keyset position of an
//! unfinished cleanup, so an interrupted run resumes where it stopped. A
//! finished run clears its scope: the next run starts from the oldest row
//! again, which retries the rows an earlier run skipped (locked or
//! unverified rows are still there; deleted ones are not).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::sync::Position;
use crate::sync::checkpoint::{load_json, save_json};

/// File name of the cleanup progress in the data directory.
pub const FILE: &str = "dify-cleanup.json";

/// The position of one unfinished cleanup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeProgress {
    /// The last row (run or message) handled: deleted, skipped or checked.
    pub position: Position,
    /// Batches done so far by the unfinished cleanup.
    pub batches: u64,
    /// When the unfinished cleanup started (RFC 3339).
    pub started_at: String,
}

/// The persisted cleanup state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanupProgress {
    /// Format version.
    pub version: u32,
    /// Identity of the Dify database (`name/oid`), as in the sync checkpoint.
    pub database: Option<String>,
    /// Unfinished cleanups by scope name.
    pub scopes: BTreeMap<String, ScopeProgress>,
}

impl CleanupProgress {
    /// The progress path in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Loads the progress; an absent file is an empty progress.
    pub fn load(path: &Path) -> Result<Self, Error> {
        load_json(path).map(Option::unwrap_or_default)
    }

    /// Writes the progress atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        save_json(path, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = CleanupProgress::path(dir.path());
        assert_eq!(
            CleanupProgress::load(&path).expect("absent"),
            CleanupProgress::default()
        );
        let mut p = CleanupProgress {
            version: 1,
            database: Some("db/1".into()),
            ..CleanupProgress::default()
        };
        p.scopes.insert(
            "runs".into(),
            ScopeProgress {
                position: Position {
                    at: "2026-01-01T00:00:00.000000".into(),
                    id: "x".into(),
                },
                batches: 3,
                started_at: "2026-01-02T00:00:00Z".into(),
            },
        );
        p.save(&path).expect("save");
        assert_eq!(CleanupProgress::load(&path).expect("load"), p);
    }
}
