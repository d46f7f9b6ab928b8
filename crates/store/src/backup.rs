//! Backup and restore of a data directory, while a server may be writing it.
//!
//! [`backup`] copies a consistent snapshot: the manifest, the parts and
//! text indexes it names, the rollup snapshots, the WAL (so unflushed,
//! acknowledged writes are in the backup too) and the small files beside
//! them (`settings.json`, `keys.json`, the Dify checkpoints, alert state).
//! It relies on the same guarantees as `Store::open_read_only`: parts are
//! immutable, a flush commits the manifest before deleting the WAL segments
//! it covers, and replaced files are deleted only after a grace period. So
//! a copy is consistent when the manifest did not change while it ran;
//! otherwise (or when a file vanished) it starts again, a few times.
//!
//! The copy goes into `<dest>.partial/`, ends with `BACKUP.json` (every file
//! with its size and CRC-32), is fsynced, and only then renamed to `<dest>`:
//! a backup killed midway leaves a `.partial` directory that [`restore`]
//! refuses. [`restore`] checks every file against `BACKUP.json` before it
//! copies them into a new data directory; opening that directory replays
//! the WAL tail as after a crash.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::manifest::Manifest;

/// The index file written last into a finished backup.
pub const INDEX: &str = "BACKUP.json";
const FORMAT_VERSION: u32 = 1;
const ATTEMPTS: u32 = 8;

/// Files of a data directory a backup never copies: the writer's lock and
/// temp files of an operation in progress.
fn skipped(name: &str) -> bool {
    // The cold cache holds copies of what the cold tier keeps.
    name == "LOCK" || name.ends_with(".tmp") || name == INDEX || name == "cold-cache"
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupIndex {
    /// Format of this file.
    pub format_version: u32,
    /// When the copy finished (RFC 3339).
    pub created_at: String,
    /// The source directory.
    pub source: PathBuf,
    /// WAL records at or below this seq are in the backup's parts.
    pub flushed_seq: u64,
    /// Every file, by path relative to the backup root.
    pub files: BTreeMap<String, FileEntry>,
}

/// One copied file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Bytes.
    pub bytes: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
}

impl BackupIndex {
    /// Total bytes of the backed-up files.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.bytes).sum()
    }
}

/// Copies a consistent snapshot of `data_dir` to `dest` (which must not
/// exist). `progress` is called with the bytes copied so far. Blocking.
///
/// # Errors
/// [`Error::Invalid`] when `dest` exists or the source is not a data
/// directory; [`Error::Io`] on a copy failure; [`Error::Internal`] when the
/// directory kept changing through every attempt.
pub fn backup(
    data_dir: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupIndex, Error> {
    if dest.exists() {
        return Err(Error::Invalid(format!(
            "{} exists: back up into a new directory",
            dest.display()
        )));
    }
    if !data_dir.join("manifest.json").is_file() && !data_dir.join("wal").is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a Loupe data directory (no manifest.json or wal/)",
            data_dir.display()
        )));
    }
    let partial = partial_path(dest);
    for attempt in 1..=ATTEMPTS {
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        }
        match copy_once(data_dir, &partial, progress) {
            Ok(Some(index)) => {
                write_index(&partial, &index)?;
                fs::rename(&partial, dest).map_err(|e| Error::io(dest, e))?;
                if let Some(parent) = dest.parent() {
                    crate::wal::sync_dir(parent)?;
                }
                return Ok(index);
            }
            Ok(None) => tracing::debug!(attempt, "data directory changed during the backup; again"),
            Err(Error::Io { source, path }) if source.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(attempt, path = %path.display(), "file vanished during the backup; again");
            }
            Err(e) => return Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)));
    }
    Err(Error::Internal(format!(
        "{} kept changing through {ATTEMPTS} backup attempts; try again when it is less busy",
        data_dir.display()
    )))
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// One attempt: `None` when the manifest changed while copying.
fn copy_once(
    data_dir: &Path,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Option<BackupIndex>, Error> {
    // The logs table (`logs.rs`) follows the same rules with its own
    // manifest and WAL: a change to either also means copy again.
    let manifests = || {
        (
            fs::read(data_dir.join("manifest.json")).ok(),
            fs::read(data_dir.join("logs/manifest.json")).ok(),
        )
    };
    let segments = || {
        (
            wal_segments(&data_dir.join("wal")),
            wal_segments(&data_dir.join("logs/wal")),
        )
    };
    let before = manifests();
    let segments_before = segments();
    let manifest = Manifest::load(data_dir)?;
    let live: std::collections::HashSet<PathBuf> = manifest
        .parts
        .iter()
        .map(|p| PathBuf::from(&p.path))
        .collect();
    let mut files = BTreeMap::new();
    let mut copied = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = data_dir.join(&rel);
        fs::create_dir_all(out.join(&rel)).map_err(|e| Error::io(&out.join(&rel), e))?;
        for entry in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if skipped(&name) {
                continue;
            }
            let rel_path = rel.join(&name);
            let kind = entry.file_type().map_err(|e| Error::io(&entry.path(), e))?;
            if kind.is_dir() {
                stack.push(rel_path);
                continue;
            }
            // Parts a crash or a compaction left behind are not data (log
            // parts are never replaced: a stray one is removed at open).
            if rel_path.starts_with("parts") && !live.contains(&rel_path) {
                continue;
            }
            let file = copy_file(&data_dir.join(&rel_path), &out.join(&rel_path))?;
            copied += file.bytes;
            progress(copied);
            files.insert(rel_path.to_string_lossy().replace('\\', "/"), file);
        }
    }
    // Only the newest WAL segment is ever appended to, so its copy alone
    // may end in a torn record (replayed as after a crash). A rotation
    // during the copy could leave a torn record inside an older segment:
    // then copy again.
    if before != manifests() || segments_before != segments() {
        return Ok(None);
    }
    crate::wal::sync_dir(out)?;
    Ok(Some(BackupIndex {
        format_version: FORMAT_VERSION,
        created_at: loupe_model::time::format_instant(loupe_model::time::now_ns()),
        source: data_dir.to_owned(),
        flushed_seq: manifest.flushed_seq,
        files,
    }))
}

/// The WAL segment names in `wal_dir`, sorted.
fn wal_segments(wal_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(wal_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads `path` in 1 MiB chunks, handing each to `each`; returns the
/// file's size and CRC-32.
fn stream(
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<FileEntry, Error> {
    let mut src = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        each(&buf[..n])?;
        bytes += n as u64;
    }
    Ok(FileEntry {
        bytes,
        crc32: crc.finalize(),
    })
}

/// Copies `from` to `to`, fsyncs it, and returns its size and CRC.
fn copy_file(from: &Path, to: &Path) -> Result<FileEntry, Error> {
    let mut dst = fs::File::create(to).map_err(|e| Error::io(to, e))?;
    let entry = stream(from, |chunk| {
        dst.write_all(chunk).map_err(|e| Error::io(to, e))
    })?;
    dst.sync_all().map_err(|e| Error::io(to, e))?;
    Ok(entry)
}

fn write_index(dir: &Path, index: &BackupIndex) -> Result<(), Error> {
    let path = dir.join(INDEX);
    let body = serde_json::to_vec_pretty(index)
        .map_err(|e| Error::Internal(format!("cannot encode {INDEX}: {e}")))?;
    loupe_fsutil::write_atomic(&path, &body).map_err(|e| Error::io(&path, e))
}

/// Reads and checks a finished backup: its index, and every file's size
/// and CRC-32.
///
/// # Errors
/// [`Error::Invalid`] for an unfinished (`.partial`) or foreign directory;
/// [`Error::Corrupt`] naming the first file that does not match.
pub fn verify(backup: &Path) -> Result<BackupIndex, Error> {
    let index_path = backup.join(INDEX);
    let body = fs::read(&index_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Invalid(format!(
            "{} has no {INDEX}: not a finished Loupe backup (a backup killed midway leaves \
             a .partial directory; run the backup again)",
            backup.display()
        )),
        _ => Error::io(&index_path, e),
    })?;
    let index: BackupIndex = serde_json::from_slice(&body).map_err(|e| Error::Corrupt {
        path: index_path.clone(),
        offset: 0,
        reason: e.to_string(),
    })?;
    if index.format_version != FORMAT_VERSION {
        return Err(Error::Corrupt {
            path: index_path,
            offset: 0,
            reason: format!(
                "backup format {} is not supported by this build (expects {FORMAT_VERSION})",
                index.format_version
            ),
        });
    }
    for (rel, entry) in &index.files {
        let path = backup.join(rel);
        if stream(&path, |_| Ok(()))? != *entry {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: "size or checksum differs from the backup index".into(),
            });
        }
    }
    Ok(index)
}

/// Checks `backup` and copies it into `data_dir`, which must not exist or
/// be empty. Blocking.
///
/// # Errors
/// As [`verify`], plus [`Error::Invalid`] when `data_dir` holds anything.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupIndex, Error> {
    let index = verify(backup)?;
    if data_dir.exists() {
        let mut entries = fs::read_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
        if entries.next().is_some() {
            return Err(Error::Invalid(format!(
                "{} is not empty: restore into a new directory",
                data_dir.display()
            )));
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    for rel in index.files.keys() {
        let to = data_dir.join(rel);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            dirs.insert(parent.to_owned());
        }
        copy_file(&backup.join(rel), &to)?;
    }
    // Deepest first, so each directory entry is durable before its parent's.
    for dir in dirs.iter().rev() {
        crate::wal::sync_dir(dir)?;
    }
    crate::wal::sync_dir(data_dir)?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreConfig};

    fn config(dir: &Path) -> StoreConfig {
        StoreConfig {
            data_dir: dir.to_owned(),
            retention_days: 0,
            ..StoreConfig::default()
        }
    }

    fn spans(prefix: &str, n: usize) -> Vec<loupe_model::Span> {
        (0..n)
            .map(|i| {
                let mut s = loupe_model::Span::new("p", format!("{prefix}{i}"));
                s.trace_id = Some(format!("t-{prefix}"));
                s.start_time = Some(1_795_514_400_000_000_000 + i as i64);
                s
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_of_a_live_store_restores_flushed_and_unflushed_spans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, dest, restored) = (
            dir.path().join("data"),
            dir.path().join("backup"),
            dir.path().join("restored"),
        );
        let store =
            Store::open(config(&data), loupe_rollup::RollupConfig::default()).expect("open");
        store.append(spans("flushed", 20)).await.expect("append");
        store.flush_all().await.expect("flush");
        store.append(spans("wal", 7)).await.expect("append");

        let src = data.clone();
        let (dst, index) = tokio::task::spawn_blocking(move || {
            let index = backup(&src, &dest, &mut |_| {}).expect("backup");
            (dest, index)
        })
        .await
        .expect("task");
        assert!(
            index.files.keys().any(|f| f.starts_with("parts/")),
            "{index:?}"
        );
        assert!(
            index.files.keys().any(|f| f.starts_with("wal/")),
            "{index:?}"
        );
        assert!(!index.files.contains_key("LOCK"));
        drop(store);

        restore(&dst, &restored).expect("restore");
        let back = Store::open_read_only(config(&restored), loupe_rollup::RollupConfig::default())
            .expect("open restored");
        let project = loupe_model::ProjectId::new("p".to_owned()).expect("project");
        assert_eq!(
            back.trace_spans(&project, "t-flushed")
                .await
                .expect("read")
                .len(),
            20
        );
        assert_eq!(
            back.trace_spans(&project, "t-wal")
                .await
                .expect("read")
                .len(),
            7
        );
    }

    #[test]
    fn a_damaged_or_unfinished_backup_is_refused_by_restore() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let store =
            Store::open(config(&data), loupe_rollup::RollupConfig::default()).expect("open");
        drop(store);
        let dest = dir.path().join("backup");
        let index = backup(&data, &dest, &mut |_| {}).expect("backup");
        assert!(
            backup(&data, &dest, &mut |_| {}).is_err(),
            "never over an existing backup"
        );

        // Unfinished: no index.
        let partial = dir.path().join("half.partial");
        fs::create_dir_all(&partial).expect("mkdir");
        let err = restore(&partial, &dir.path().join("r1")).expect_err("partial");
        assert!(err.to_string().contains("not a finished"), "{err}");

        // Damaged: one byte of one file changed.
        let (rel, _) = index.files.iter().next().expect("a file");
        let path = dest.join(rel);
        let mut body = fs::read(&path).expect("read");
        body.push(b'x');
        fs::write(&path, body).expect("write");
        let err = restore(&dest, &dir.path().join("r2")).expect_err("damaged");
        assert!(err.to_string().contains(rel.as_str()), "{err}");
        assert!(
            !dir.path().join("r2").exists(),
            "nothing restored from a damaged backup"
        );
    }
}
