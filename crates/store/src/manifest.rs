//! The manifest: which parts exist, how far the WAL is flushed, which row
//! versions are hidden.
//!
//! Stored as `manifest.json` (format version 1), replaced atomically (write a
//! temp file, fsync, rename, fsync the directory), so a crash leaves either
//! the old or the new manifest. Flush, compaction and retention each change it
//! in one such replacement. A JSON file is enough here: it holds one entry per
//! part (thousands, not millions) and is rewritten only on flush and
//! maintenance, never per write.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::parts::PartMeta;
use crate::wal::io_err;

const FILE: &str = "manifest.json";
const FORMAT_VERSION: u32 = 1;

/// The persisted state of the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Format version of this file.
    pub format_version: u32,
    /// Every WAL record with a seq at or below this is in a part.
    pub flushed_seq: u64,
    /// Next row version to hand out (above every version in a part).
    pub next_version: u64,
    /// Next part id.
    pub next_part_id: u64,
    /// Live parts.
    pub parts: Vec<PartMeta>,
    /// Versions of rows in parts that a later version supersedes. Queries
    /// skip them; compaction drops them and removes them from this set.
    pub hidden: BTreeSet<u64>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            format_version: FORMAT_VERSION,
            flushed_seq: 0,
            next_version: 1,
            next_part_id: 1,
            parts: Vec::new(),
            hidden: BTreeSet::new(),
        }
    }
}

impl Manifest {
    /// Loads the manifest of `data_dir`, or an empty one for a new store.
    pub fn load(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(FILE);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: format!("manifest is not valid JSON: {e}"),
        })?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: format!(
                    "manifest format {} is not supported by this build (expects {FORMAT_VERSION})",
                    manifest.format_version
                ),
            });
        }
        Ok(manifest)
    }

    /// Atomically and durably replaces the manifest on disk.
    pub fn store(&self, data_dir: &Path) -> Result<(), Error> {
        let path = data_dir.join(FILE);
        let body = serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("cannot encode the manifest: {e}")))?;
        loupe_fsutil::write_atomic(&path, &body).map_err(io_err(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_a_leftover_temp_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Manifest::load(dir.path()).expect("empty"),
            Manifest::default()
        );
        let mut m = Manifest {
            flushed_seq: 42,
            ..Manifest::default()
        };
        m.hidden.insert(7);
        m.store(dir.path()).expect("store");
        fs::write(dir.path().join("manifest.json.tmp"), b"{half").expect("temp");
        assert_eq!(Manifest::load(dir.path()).expect("load"), m);
    }

    #[test]
    fn a_damaged_manifest_is_reported_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("manifest.json"), b"{not json").expect("write");
        assert!(matches!(
            Manifest::load(dir.path()),
            Err(Error::Corrupt { .. })
        ));
    }
}
