//! File tailing: `loupe serve` follows the JSON-lines files named by
//! `[logs] files` (globs; Dify's `LOG_OUTPUT_FORMAT=json` output) and
//! stores every line as a log record through the pipeline.
//!
//! Files are followed by identity (device and inode), not by name, so a
//! rotated file (renamed `api.log` → `api.log.1`) is read to its end
//! through the handle already open, and the new `api.log` is a new file
//! read from its start. Each batch is stored with the file's position after
//! it in the same WAL record (`Pipeline::write_logs_at`): after a crash,
//! even kill -9, the position read back (`Pipeline::log_cursor`) is exactly
//! the end of what was stored, so no line is lost or stored twice. A
//! position also carries a checksum of the file's first bytes, so a new
//! file that reuses a deleted file's inode is read from its start.
//!
//! A line that is a JSON object maps through
//! `loupe_ingest::logs::from_document` (stream = the file's name); any
//! other line, or one that does not map, is kept as its text with the
//! receive time (and `loupe.parse_error` saying why). A line longer than
//! `ingest.max_log_record_bytes` is cut there (`loupe.truncated`). Nothing
//! read is dropped; when the store refuses (overload), the position does
//! not move and the batch is read again at the next poll.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use loupe_ingest::IngestLimits;
use loupe_model::LogRecord;
use loupe_pipeline::Pipeline;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The `[logs]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsSection {
    /// Files `loupe serve` tails, as globs (`/var/log/dify/api.log*`: let
    /// the glob match rotated names too, so a file rotated while Loupe was
    /// down is still read to its end). Default: none.
    pub files: Vec<String>,
    /// The project the lines are stored in. Default `default`.
    pub project: String,
    /// How often files are checked for new lines and new files. Default 1s.
    #[serde(with = "loupe_model::duration_text")]
    pub poll_interval: Duration,
}

impl Default for LogsSection {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            project: loupe_model::ProjectId::DEFAULT.to_owned(),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Files followed at once at most (more matches are skipped with a warning).
const MAX_FILES: usize = 1_000;
/// Bytes read per batch.
const CHUNK: usize = 1 << 20;
/// Bytes of a file's head its position's checksum covers.
const HEAD: usize = 256;

/// Where a file stands, as stored with its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    offset: u64,
    /// CRC-32 of the file's first `min(offset, HEAD)` bytes.
    head: u32,
    head_len: u64,
}

struct Followed {
    path: PathBuf,
    stream: String,
    file: File,
    offset: u64,
    head: u32,
    head_len: u64,
    /// Bytes of an unfinished last line, kept for the next read.
    partial: Vec<u8>,
}

/// Starts the tailer when `[logs] files` names any; it stops when `stop`
/// turns true.
pub fn spawn(
    section: &LogsSection,
    limits: IngestLimits,
    pipeline: Pipeline,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if section.files.is_empty() {
        return Ok(None);
    }
    for pattern in &section.files {
        glob::Pattern::new(pattern)
            .map_err(|e| anyhow::anyhow!("logs.files: {pattern:?} is not a glob: {e}"))?;
    }
    loupe_model::ProjectId::new(section.project.clone())
        .map_err(|e| anyhow::anyhow!("logs.project: {e}"))?;
    let tailer = Tailer {
        patterns: section.files.clone(),
        project: section.project.clone(),
        interval: section.poll_interval.max(Duration::from_millis(10)),
        limits,
        pipeline,
        followed: HashMap::new(),
    };
    Ok(Some(tokio::spawn(tailer.run(stop))))
}

struct Tailer {
    patterns: Vec<String>,
    project: String,
    interval: Duration,
    limits: IngestLimits,
    pipeline: Pipeline,
    /// By (device, inode).
    followed: HashMap<(u64, u64), Followed>,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

fn key_of(id: (u64, u64)) -> String {
    format!("file:{}:{}", id.0, id.1)
}

/// CRC-32 of the file's first `len` bytes (at most [`HEAD`]), read with
/// `pread`: the position the tailer reads from does not move.
fn head_crc(file: &File, len: u64) -> std::io::Result<u32> {
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(HEAD).min(HEAD)];
    file.read_exact_at(&mut buf, 0)?;
    Ok(crc32fast::hash(&buf))
}

/// What one read gave: whole lines, or the head of a line too long for a
/// record.
enum Chunk {
    Lines(Vec<u8>),
    Cut(Vec<u8>),
}

impl Tailer {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(files = ?self.patterns, "tailing log files");
        loop {
            self.poll().await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    #[tracing::instrument(name = "tail.poll", skip_all)]
    async fn poll(&mut self) {
        self.discover();
        let ids: Vec<(u64, u64)> = self.followed.keys().copied().collect();
        for id in ids {
            if let Err(e) = self.drain(id).await {
                // Retried at the next poll from the stored position.
                tracing::warn!(error = %e, "reading a tailed file failed; retrying");
                break;
            }
        }
        self.forget_gone();
    }

    /// Opens files the globs match that are not followed yet, at the
    /// position stored for them.
    fn discover(&mut self) {
        for pattern in &self.patterns {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() || self.followed.contains_key(&identity(&meta)) {
                    continue;
                }
                if self.followed.len() >= MAX_FILES {
                    tracing::warn!(path = %path.display(), "more than {MAX_FILES} tailed files; skipping");
                    continue;
                }
                match self.open(path.clone(), &meta) {
                    Ok(f) => {
                        tracing::info!(path = %path.display(), offset = f.offset, "following log file");
                        self.followed.insert(identity(&meta), f);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot open log file")
                    }
                }
            }
        }
    }

    fn open(&self, path: PathBuf, meta: &std::fs::Metadata) -> std::io::Result<Followed> {
        let mut file = File::open(&path)?;
        let stored: Option<Position> = self
            .pipeline
            .log_cursor(&key_of(identity(meta)))
            .and_then(|text| serde_json::from_str(&text).ok());
        let mut at = Position {
            offset: 0,
            head: 0,
            head_len: 0,
        };
        if let Some(p) = stored {
            // The same file only if its head is what it was (an inode can
            // be reused by a new file) and it was not cut shorter.
            let same = p.offset <= meta.len()
                && p.head_len <= meta.len()
                && head_crc(&file, p.head_len)? == p.head;
            if same {
                at = p;
            } else {
                tracing::warn!(path = %path.display(), "log file was replaced or truncated; reading it from the start");
            }
        }
        file.seek(SeekFrom::Start(at.offset))?;
        let stream = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Followed {
            path,
            stream,
            file,
            offset: at.offset,
            head: at.head,
            head_len: at.head_len,
            partial: Vec::new(),
        })
    }

    /// Reads a followed file to its end, batch by batch, storing each
    /// batch with the position after it. The file's read position is
    /// always `offset + partial.len()`.
    async fn drain(&mut self, id: (u64, u64)) -> anyhow::Result<()> {
        let max = self.limits.max_log_record_bytes;
        loop {
            let (chunk, consumed, stream) = {
                let Some(f) = self.followed.get_mut(&id) else {
                    return Ok(());
                };
                // Truncated in place (copytruncate): start again from the top.
                if f.file.metadata()?.len() < f.offset + f.partial.len() as u64 {
                    tracing::warn!(path = %f.path.display(), "log file was truncated; reading it from the start");
                    f.offset = 0;
                    f.head_len = 0;
                    f.partial.clear();
                    f.file.seek(SeekFrom::Start(0))?;
                }
                let mut buf = vec![0u8; CHUNK];
                let n = f.file.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                let mut data = std::mem::take(&mut f.partial);
                data.extend_from_slice(&buf[..n]);
                match data.iter().rposition(|b| *b == b'\n') {
                    Some(i) => {
                        f.partial = data.split_off(i + 1);
                        let consumed = data.len() as u64;
                        (Chunk::Lines(data), consumed, f.stream.clone())
                    }
                    // A line longer than any record may be: store its head.
                    None if data.len() > max => {
                        let consumed = data.len() as u64;
                        data.truncate(max);
                        (Chunk::Cut(data), consumed, f.stream.clone())
                    }
                    None => {
                        f.partial = data;
                        continue;
                    }
                }
            };
            let records: Vec<LogRecord> = match &chunk {
                Chunk::Cut(head) => vec![self.plain(head, &stream, true)],
                Chunk::Lines(lines) => lines
                    .split(|b| *b == b'\n')
                    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                    .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                    .map(|l| self.line(l, &stream))
                    .collect(),
            };
            if let Err(e) = self.commit(id, records, consumed).await {
                // Not stored: read the batch again from its start next time.
                if let Some(f) = self.followed.get_mut(&id) {
                    f.partial.clear();
                    f.file.seek(SeekFrom::Start(f.offset))?;
                }
                return Err(e);
            }
        }
    }

    /// Stores `records` with the position `consumed` bytes further on.
    async fn commit(
        &mut self,
        id: (u64, u64),
        records: Vec<LogRecord>,
        consumed: u64,
    ) -> anyhow::Result<()> {
        let Some(f) = self.followed.get_mut(&id) else {
            return Ok(());
        };
        let offset = f.offset + consumed;
        let (head, head_len) = if f.head_len < HEAD as u64 && offset > f.head_len {
            let len = offset.min(HEAD as u64);
            (head_crc(&f.file, len)?, len)
        } else {
            (f.head, f.head_len)
        };
        let position = Position {
            offset,
            head,
            head_len,
        };
        let cursor = (key_of(id), serde_json::to_string(&position)?);
        let count = records.len();
        self.pipeline
            .write_logs_at(records, Some(cursor))
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.path.display()))?;
        f.offset = offset;
        f.head = head;
        f.head_len = head_len;
        tracing::debug!(path = %f.path.display(), records = count, offset, "stored tailed lines");
        Ok(())
    }

    /// Drops files read to their end whose identity no path has any more
    /// (deleted, or rotated out of the globs' reach).
    fn forget_gone(&mut self) {
        let mut live = std::collections::HashSet::new();
        for pattern in &self.patterns {
            if let Ok(paths) = glob::glob(pattern) {
                for path in paths.flatten() {
                    if let Ok(meta) = std::fs::metadata(&path) {
                        live.insert(identity(&meta));
                    }
                }
            }
        }
        self.followed.retain(|id, f| {
            let at_end = f.file.metadata().is_ok_and(|m| m.len() <= f.offset);
            live.contains(id) || !at_end
        });
    }

    fn line(&self, line: &[u8], stream: &str) -> LogRecord {
        let now = loupe_model::time::now_ns();
        let max = self.limits.max_log_record_bytes;
        if line.len() > max {
            return self.plain(&line[..max], stream, true);
        }
        let problem = match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(map)) => {
                let logs = self.limits.logs();
                match loupe_ingest::logs::from_document(
                    &self.project,
                    map,
                    Some(stream),
                    now,
                    &logs,
                ) {
                    Ok(r) => match self.limits.time_problem(r.time, now) {
                        None => return r,
                        Some(why) => format!("time {why}"),
                    },
                    Err(e) => e.to_string(),
                }
            }
            // Plain text lines are common (a startup banner): no problem.
            _ => return self.plain(line, stream, false),
        };
        let mut r = self.plain(line, stream, false);
        r.attributes.insert("loupe.parse_error".into(), problem);
        r
    }

    fn plain(&self, line: &[u8], stream: &str, truncated: bool) -> LogRecord {
        let now = loupe_model::time::now_ns();
        let mut r = LogRecord::new(
            &self.project,
            now,
            String::from_utf8_lossy(line).into_owned(),
        );
        r.stream = Some(stream.to_owned());
        if truncated {
            r.attributes.insert("loupe.truncated".into(), "true".into());
        }
        r
    }
}
