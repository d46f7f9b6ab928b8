//! The sync checkpoint, `dify-sync.json` in the data directory: per table
//! the last `(created_at, id)` synced, the runs and messages still open
//! (re-polled until final) and the database it belongs to. Written
//! atomically (temp file, fsync, rename, fsync of the directory) and only
//! after the store acknowledged the spans of the rows it covers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::Error;

/// File name of the sync checkpoint in the data directory.
pub const FILE: &str = "dify-sync.json";

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// A keyset position: the last row synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// `created_at` (or `updated_at` for feedback) as naive UTC text.
    pub at: String,
    /// The row id (uuid text).
    pub id: String,
}

impl Position {
    /// A position from a timestamp and an id.
    pub fn new(at: NaiveDateTime, id: impl Into<String>) -> Self {
        Self {
            at: at.format(TIME_FORMAT).to_string(),
            id: id.into(),
        }
    }

    /// The timestamp of this position.
    pub fn time(&self) -> Result<NaiveDateTime, Error> {
        NaiveDateTime::parse_from_str(&self.at, TIME_FORMAT)
            .map_err(|e| Error::Invalid(format!("checkpoint time {:?}: {e}", self.at)))
    }
}

/// The persisted sync state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// Identity of the Dify database synced (`name/oid`).
    pub database: Option<String>,
    /// Last position per table (`workflow_runs`, `messages`, `message_feedbacks`).
    pub tables: BTreeMap<String, Position>,
    /// Runs seen `running`/`paused`, re-polled until final.
    pub open_runs: BTreeSet<String>,
    /// Messages still streaming or paused, re-polled until final.
    pub open_messages: BTreeSet<String>,
}

impl Checkpoint {
    /// The checkpoint path in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Loads the checkpoint; an absent file is an empty checkpoint.
    pub fn load(path: &Path) -> Result<Self, Error> {
        load_json(path).map(Option::unwrap_or_default)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        save_json(path, self)
    }
}

/// Reads a JSON file; `None` when it does not exist.
pub(crate) fn load_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, Error> {
    let err = |reason: String| Error::Checkpoint {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| err(format!("does not parse: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Writes JSON durably ([`loupe_fsutil::write_atomic`]).
pub(crate) fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let err = |reason: String| Error::Checkpoint {
        path: path.to_owned(),
        reason,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| err(e.to_string()))?;
    loupe_fsutil::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_absent_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Checkpoint::path(dir.path());
        assert_eq!(
            Checkpoint::load(&path).expect("absent"),
            Checkpoint::default()
        );
        let mut cp = Checkpoint::default();
        let at =
            NaiveDateTime::parse_from_str("2026-01-02T03:04:05.123456", TIME_FORMAT).expect("time");
        cp.tables
            .insert("workflow_runs".into(), Position::new(at, "abc"));
        cp.open_runs.insert("r1".into());
        cp.save(&path).expect("save");
        let back = Checkpoint::load(&path).expect("load");
        assert_eq!(back, cp);
        assert_eq!(back.tables["workflow_runs"].time().expect("time"), at);
    }
}
