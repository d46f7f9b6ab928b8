//! The manifest: which parts exist, how far the WAL is flushed, which rows
//! of each part are hidden (durable deletion vectors).
//!
//! Format versions: 1 kept one global set of hidden row versions, which
//! every scan had to test each row against; 2 keeps a deletion vector per
//! part (`deletes.rs`). A version 1 file is read and converted once the
//! parts are open ([`Manifest::upgrade_hidden`]); the next replacement
//! writes version 2.
//!
//! Stored as `manifest.json`, replaced atomically (write a
//! temp file, fsync, rename, fsync the directory), so a crash leaves either
//! the old or the new manifest. Flush, compaction and retention each change it
//! in one such replacement. A JSON file is enough here: it holds one entry per
//! part (thousands, not millions) and is rewritten only on flush and
//! maintenance, never per write.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::deletes::{DeletionVector, locate};
use crate::parts::{Location, Part, PartMeta};
use crate::wal::io_err;

const FILE: &str = "manifest.json";
const FORMAT_VERSION: u32 = 2;
/// The format of a manifest naming a part in the cold tier: format 2 plus
/// `location` on part entries. Written only when some part is cold, so a
/// store without a cold tier stays readable by builds before it, and one
/// with cold parts is refused by them (not misread as missing files).
const FORMAT_COLD: u32 = 3;
/// The format with one global hidden-version set, still read.
const FORMAT_GLOBAL_HIDDEN: u32 = 1;

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
    /// Durable deletion vectors by part id: rows a later, flushed version
    /// supersedes. Queries skip them; compaction may drop them.
    #[serde(default)]
    pub deletes: BTreeMap<u64, DeletionVector>,
    /// Format 1 only: hidden row versions of any part. Emptied by
    /// [`Manifest::upgrade_hidden`]; never written by format 2.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
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
            deletes: BTreeMap::new(),
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
        if ![FORMAT_GLOBAL_HIDDEN, FORMAT_VERSION, FORMAT_COLD].contains(&manifest.format_version) {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: format!(
                    "manifest format {} is not supported by this build (reads {FORMAT_GLOBAL_HIDDEN} to {FORMAT_COLD})",
                    manifest.format_version
                ),
            });
        }
        Ok(manifest)
    }

    /// Converts a format 1 global hidden-version set into deletion vectors of
    /// `parts` (the parts this manifest names, open). Returns how many
    /// versions were found in no part: format 1 could list versions of rows
    /// compaction had not yet dropped only, so none is expected, and one
    /// that is in no part hides nothing.
    pub fn upgrade_hidden(&mut self, parts: &[Arc<Part>]) -> usize {
        if self.format_version == FORMAT_GLOBAL_HIDDEN {
            self.format_version = FORMAT_VERSION;
        }
        // `store` writes the format the parts need (2, or 3 with cold parts).
        if self.hidden.is_empty() {
            return 0;
        }
        let versions: Vec<u64> = std::mem::take(&mut self.hidden).into_iter().collect();
        let (found, missing) = locate(parts, &versions);
        for (part, positions) in found {
            crate::deletes::add_durable(&mut self.deletes, part, &positions);
        }
        missing.len()
    }

    /// Relative path → bytes of every part in the cold tier.
    pub fn cold_parts(&self) -> std::collections::HashMap<String, u64> {
        self.parts
            .iter()
            .filter(|p| p.location == Location::Cold)
            .map(|p| (p.path.clone(), p.bytes))
            .collect()
    }

    /// Atomically and durably replaces the manifest on disk.
    pub fn store(&self, data_dir: &Path) -> Result<(), Error> {
        let path = data_dir.join(FILE);
        let any_cold = self.parts.iter().any(|p| p.location == Location::Cold);
        let wanted = if any_cold {
            FORMAT_COLD
        } else if self.format_version == FORMAT_COLD {
            FORMAT_VERSION
        } else {
            self.format_version
        };
        let versioned;
        let this = if wanted == self.format_version {
            self
        } else {
            versioned = Manifest {
                format_version: wanted,
                ..self.clone()
            };
            &versioned
        };
        let body = serde_json::to_vec(this)
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
        m.deletes.entry(3).or_default().insert(7);
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
