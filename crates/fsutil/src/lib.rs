//! Durable replacement of a file: the one way Loupe crates write a file
//! that must survive a crash whole (manifest, rollup snapshots, Parquet
//! parts, checkpoints, key and alert state).
//!
//! [`write_atomic`] writes a temp file beside the target, fsyncs it,
//! renames it over the target and fsyncs the directory, so after a crash
//! the target holds either the old or the new content, never a torn one,
//! and the rename itself is on disk before the call returns. Readers never
//! see the temp file's name as the target's.
//!
//! [`ports::free_port`] gives tests and benchmarks a port for a server they
//! start (the other way every test meets the operating system).
//!
//! A crate of its own, with no dependencies, because its users sit at
//! every layer (store, dify, api, alerts) and `loupe-model`, the only crate
//! below all of them, does no I/O by rule.

pub mod ports;

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` durably (temp file, fsync, rename, fsync
/// of the directory). Creates the parent directory when missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |e| e, |file| file.write_all(bytes))
}

/// As [`write_atomic`], the content written by `write` into the temp file
/// (e.g. a streaming encoder); returns what `write` returns. `io` turns the
/// helper's own I/O errors into the caller's error type. On any error the
/// temp file is removed and the target is untouched.
pub fn write_atomic_with<R, E>(
    path: &Path,
    io: impl Fn(io::Error) -> E,
    write: impl FnOnce(&mut File) -> Result<R, E>,
) -> Result<R, E> {
    let dir = parent(path);
    std::fs::create_dir_all(&dir).map_err(&io)?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(&io)?;
        let out = write(&mut file)?;
        file.sync_all().map_err(&io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(&io)?;
        Ok(out)
    })();
    if result.is_err() {
        // Best effort: the failure being reported matters more than the
        // leftover, which the next write of this file replaces anyway.
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir).map_err(&io)?;
    result
}

/// Fsyncs a directory, making the creations, renames and removals of its
/// entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The temp file [`write_atomic`] writes before renaming:
/// `<name>.<pid>.tmp` beside `path`. The process id keeps two processes
/// writing the same file (a CLI and a server) from sharing one temp file;
/// the `.tmp` suffix marks it as a leftover for cleanups that look.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("state.json");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_removes_the_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manifest.json");
        write_atomic(&path, b"old").expect("write");
        let err = write_atomic_with(
            &path,
            |e| e.to_string(),
            |file| {
                file.write_all(b"half").map_err(|e| e.to_string())?;
                Err::<(), _>("encoder failed".to_owned())
            },
        )
        .expect_err("the writer failed");
        assert_eq!(err, "encoder failed");
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn the_temp_file_sits_beside_the_target_with_a_tmp_suffix() {
        let tmp = temp_path(Path::new("/data/parts/p.parquet"));
        assert_eq!(tmp.parent(), Some(Path::new("/data/parts")));
        let name = tmp.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            name.starts_with("p.parquet.") && name.ends_with(".tmp"),
            "{name}"
        );
        assert_eq!(parent(Path::new("keys.json")), PathBuf::from("."));
    }
}
