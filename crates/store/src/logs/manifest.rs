//! The log manifest, `logs/manifest.json`: the live log parts and the
//! highest WAL seq they hold, and the resuming sources' cursors as of it. Replaced atomically (temp file, fsync,
//! rename) by every flush and retention pass; recovery loads it, then
//! replays `logs/wal/` past `flushed_seq`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::part::LogPartMeta;
use crate::Error;

/// The format this version writes and reads.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct LogManifest {
    pub format: u32,
    pub flushed_seq: u64,
    pub next_part_id: u64,
    pub parts: Vec<LogPartMeta>,
    /// Resuming sources' positions as of `flushed_seq` (later ones are in
    /// the WAL records after it).
    #[serde(default)]
    pub cursors: std::collections::BTreeMap<String, String>,
}

impl LogManifest {
    fn path(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("logs").join("manifest.json")
    }

    /// The manifest in `data_dir`, or an empty one when there is none yet.
    pub fn load(data_dir: &Path) -> Result<Self, Error> {
        let path = Self::path(data_dir);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    format: FORMAT,
                    ..Self::default()
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let m: Self = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            offset: e.column() as u64,
            reason: e.to_string(),
        })?;
        if m.format != FORMAT {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: format!(
                    "log manifest format {}, this Loupe reads {FORMAT}",
                    m.format
                ),
            });
        }
        Ok(m)
    }

    /// Replaces the manifest on disk.
    pub fn store(&self, data_dir: &Path) -> Result<(), Error> {
        let path = Self::path(data_dir);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("log manifest does not serialise: {e}")))?;
        loupe_fsutil::write_atomic(&path, &bytes).map_err(|e| Error::io(&path, e))
    }
}
