//! Restores node payloads Dify offloaded (dify-internals §1.3): when a
//! node's inputs, outputs or process data exceeded Dify's truncation limits,
//! the column holds a truncated JSON and the full JSON is an upload file
//! (`upload_files.key`, `upload_files/{tenant}/{uuid}.json`) in Dify's
//! storage. With local storage (`OPENDAL_SCHEME=fs`, `OPENDAL_FS_ROOT`, or
//! the legacy `STORAGE_LOCAL_PATH`) that file is `<storage_dir>/<key>`.
//!
//! This is the only file I/O of the sync. The mapping stays pure: each
//! [`Offload`] gets either `full` (the file's JSON text) or `error` (a short
//! reason, also logged as a warning naming the file). A failed read never
//! fails the sync; the span keeps the truncated value and its marks.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::schema::Offload;

/// Default cap on one offloaded file (64 MiB): larger files are not read
/// and the span keeps the truncated value.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Files read at once.
const CONCURRENT_READS: usize = 4;

/// The payload kinds a node row has (the offload table's `type`).
const KINDS: [&str; 3] = ["inputs", "process_data", "outputs"];

/// Reads the full value of every offload of a known kind from
/// `storage_dir`, filling `full` or `error`. Offloads of other kinds are
/// left untouched (marked only).
pub(crate) async fn restore(storage_dir: &Path, max_bytes: u64, offloads: &mut [Offload]) {
    let reads: Vec<(usize, Option<String>, Option<i64>)> = offloads
        .iter()
        .enumerate()
        .filter(|(_, o)| KINDS.contains(&o.kind.as_str()))
        .map(|(i, o)| (i, o.key.clone(), o.size))
        .collect();
    let results: Vec<(usize, Result<String, Failure>)> = futures::stream::iter(reads)
        .map(|(i, key, size)| async move {
            (
                i,
                read_one(storage_dir, key.as_deref(), size, max_bytes).await,
            )
        })
        .buffer_unordered(CONCURRENT_READS)
        .collect()
        .await;
    for (i, result) in results {
        let o = &mut offloads[i];
        match result {
            Ok(text) => {
                o.full = Some(text);
                o.error = None;
            }
            Err(f) => {
                tracing::warn!(
                    file = %f.file,
                    node_execution_id = %o.node_execution_id,
                    kind = %o.kind,
                    file_id = %o.file_id,
                    reason = %f.reason,
                    "dify sync: offloaded value not restored; keeping the truncated value"
                );
                o.full = None;
                o.error = Some(f.reason);
            }
        }
    }
}

/// Why one file was not used, and which file (path or key) it was.
struct Failure {
    file: String,
    reason: String,
}

/// `key` as a relative path inside the storage directory, or why not:
/// absolute keys, `..` components and empty keys are rejected so a key
/// cannot name a file outside the storage directory.
fn relative_key(key: &str) -> Result<PathBuf, String> {
    let path = Path::new(key);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("storage key contains '..'".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("storage key is absolute".into());
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err("storage key is empty".into());
    }
    Ok(out)
}

async fn read_one(
    storage_dir: &Path,
    key: Option<&str>,
    size: Option<i64>,
    max_bytes: u64,
) -> Result<String, Failure> {
    let Some(key) = key else {
        return Err(Failure {
            file: "(no upload_files row)".into(),
            reason: "no upload_files row for the file id".into(),
        });
    };
    let rel = relative_key(key).map_err(|reason| Failure {
        file: key.to_owned(),
        reason: format!("{reason}; rejected"),
    })?;
    let path = storage_dir.join(rel);
    let fail = |reason: String| Failure {
        file: path.display().to_string(),
        reason,
    };
    let too_big = |n: u64| format!("file too big ({n} bytes, limit {max_bytes})");
    if let Some(n) = size.and_then(|s| u64::try_from(s).ok())
        && n > max_bytes
    {
        return Err(fail(too_big(n)));
    }
    // Metadata first: never open (and block on) a FIFO or a directory.
    let meta = tokio::fs::metadata(&path).await.map_err(|e| {
        fail(match e.kind() {
            ErrorKind::NotFound => "file not found".into(),
            _ => format!("file unreadable: {e}"),
        })
    })?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > max_bytes {
        return Err(fail(too_big(meta.len())));
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| fail(format!("file unreadable: {e}")))?;
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)
        .await
        .map_err(|e| fail(format!("file unreadable: {e}")))?;
    if buf.len() as u64 > max_bytes {
        return Err(fail(too_big(buf.len() as u64)));
    }
    let text = String::from_utf8(buf).map_err(|_| fail("not JSON (not UTF-8)".into()))?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| fail(format!("not JSON ({e})")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_outside_the_storage_dir_are_rejected() {
        assert_eq!(
            relative_key("upload_files/t/a.json"),
            Ok(PathBuf::from("upload_files/t/a.json"))
        );
        assert_eq!(
            relative_key("./upload_files/a.json"),
            Ok(PathBuf::from("upload_files/a.json"))
        );
        assert!(relative_key("upload_files/../../etc/passwd").is_err());
        assert!(relative_key("../secret.json").is_err());
        assert!(relative_key("/etc/passwd").is_err());
        assert!(relative_key("").is_err());
        assert!(relative_key(".").is_err());
    }

    fn offload(kind: &str, key: Option<&str>) -> Offload {
        Offload {
            node_execution_id: "n".into(),
            kind: kind.into(),
            file_id: "f".into(),
            key: key.map(str::to_owned),
            ..Offload::default()
        }
    }

    #[tokio::test]
    async fn reads_caps_and_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("upload_files/t")).expect("mkdir");
        std::fs::write(
            dir.path().join("upload_files/t/ok.json"),
            br#"{"a": [1, 2]}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("upload_files/t/bad.json"), b"{\"a\": ").expect("write");
        std::fs::write(dir.path().join("upload_files/t/big.json"), vec![b' '; 33]).expect("write");
        let mut rows = vec![
            offload("outputs", Some("upload_files/t/ok.json")),
            offload("outputs", Some("upload_files/t/bad.json")),
            offload("outputs", Some("upload_files/t/big.json")),
            offload("outputs", Some("upload_files/t/none.json")),
            offload("outputs", None),
            offload("outputs", Some("upload_files/t")),
            offload("other", Some("upload_files/t/ok.json")),
        ];
        restore(dir.path(), 32, &mut rows).await;
        assert_eq!(rows[0].full.as_deref(), Some(r#"{"a": [1, 2]}"#));
        assert_eq!(rows[0].error, None);
        let err = |i: usize| {
            assert_eq!(rows[i].full, None, "row {i}");
            rows[i].error.clone().unwrap_or_default()
        };
        assert!(err(1).starts_with("not JSON"), "{}", err(1));
        assert_eq!(err(2), "file too big (33 bytes, limit 32)");
        assert_eq!(err(3), "file not found");
        assert_eq!(err(4), "no upload_files row for the file id");
        assert_eq!(err(5), "not a regular file");
        assert_eq!((&rows[6].full, &rows[6].error), (&None, &None));
        // The recorded size alone refuses a file before reading it.
        let mut sized = vec![offload("outputs", Some("upload_files/t/ok.json"))];
        sized[0].size = Some(1 << 40);
        restore(dir.path(), 32, &mut sized).await;
        assert_eq!(
            sized[0].error.as_deref(),
            Some("file too big (1099511627776 bytes, limit 32)")
        );
    }
}
