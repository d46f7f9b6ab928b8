//! Write-ahead log: segment files of checksummed records, group commit.
//!
//! On-disk format (version 1). A segment is `wal/<first seq, 20 digits>.wal`:
//!
//! ```text
//! header:  b"LOUPEWAL" | u32 LE format version
//! record:  u32 LE payload length | u32 LE crc32(seq bytes ++ payload) | u64 LE seq | payload
//! ```
//!
//! The payload is the appended `Vec<Span>` (the input of one append, before
//! merging), so replay re-runs exactly what the append did: a `0x00` byte
//! then postcard (compact, no string escaping: JSON payloads cost a tenth of
//! ingest CPU), or, in records written by older versions, JSON (which never
//! starts with `0x00`). See [`encode_spans`] and [`decode_spans`].
//!
//! The header's version is the segment format; a later format must keep
//! reading this one (`golden_segment_of_format_1_replays` replays a segment
//! written by format 1, `tests/data/wal-format-1.wal`, so an upgrade never
//! strands unflushed data). The payload's first byte is its encoding.
//!
//! A failed write (a full disk) may leave part of a record in the segment.
//! It is cut off at once (the segment is truncated to the end of the last
//! whole record, and the write position put back there), and the append
//! fails; if the cut fails too, the next write or rotation retries it
//! first. So no acknowledged record is ever written behind garbage, where
//! recovery would take it for a torn tail.
//!
//! Recovery: records are read in sequence order. A short or bad-checksum
//! record at the end of the *last* segment is a torn write from a crash: the
//! segment is truncated there (it was never acknowledged under `strict`, and
//! under the other modes only writes after the last completed `write` can be
//! lost). The same in an older segment is corruption and stops the open with
//! [`Error::Corrupt`].
//!
//! Read-only opening ([`Wal::read_only`], for `Store::open_read_only`)
//! reads the same records without touching the directory: files are opened
//! read-only, a torn tail is skipped rather than truncated (it may be a
//! write in progress by a live server), no segment is created, and a segment
//! deleted between listing and reading (flushed meanwhile) is skipped.
//!
//! Durability: every record is handed to the OS with `write` before the
//! append is acknowledged, so a killed process loses nothing. `fdatasync`
//! runs per [`Durability`]: before the ack (`strict`, one sync shared by all
//! appends waiting at that moment), on a timer (`interval`), or never.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::Error;
use crate::config::Durability;

mod record;
pub(crate) use record::Record;
use record::{FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_RECORD, RECORD_HEADER_LEN, parse_record};
pub use record::{decode_spans, encode_spans};

/// Start a new segment past this size, so flushed data can be deleted.
const SEGMENT_BYTES: u64 = 64 << 20;

struct Writer {
    dir: PathBuf,
    /// The open segment; `None` for a read-only log.
    file: Option<File>,
    segment_first_seq: u64,
    segment_bytes: u64,
    /// Highest seq handed to the OS.
    written: u64,
    closed: bool,
    /// The segment's tail past `segment_bytes` may hold a partial record
    /// (a failed write whose rollback failed too): no record may be written
    /// until it is cut off.
    dirty_tail: bool,
    /// Test hook: the next write hands only this many bytes to the OS, then
    /// fails as a full disk would.
    #[cfg(test)]
    fail_after: Option<usize>,
}

struct SyncRequest {
    wanted: bool,
    stop: bool,
}

/// The log. Appends are serialised by the caller (the store's append gate).
pub(crate) struct Wal {
    writer: Mutex<Writer>,
    synced_tx: watch::Sender<u64>,
    request: Mutex<SyncRequest>,
    wake: Condvar,
    durability: Durability,
}

impl Wal {
    /// Opens the WAL in `dir`, returning it and every record with a seq
    /// greater than `after` (torn tails repaired, see the module doc).
    pub fn open(
        dir: &Path,
        after: u64,
        durability: Durability,
    ) -> Result<(Arc<Wal>, Vec<Record>), Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (records, last_seq) = read_all(dir, after, true)?;
        // Always start a fresh segment: the tail of an old one may have been
        // truncated, and appending to a clean file keeps the format simple.
        let first_seq = last_seq + 1;
        let (file, path) = create_segment(dir, first_seq)?;
        sync_dir(dir)?;
        tracing::debug!(segment = %path.display(), replay = records.len(), "wal opened");
        Ok((
            Wal::new(dir, Some(file), first_seq, last_seq, durability),
            records,
        ))
    }

    /// Reads the WAL in `dir` without writing anything (see the module doc):
    /// returns a log that refuses writes and every record with a seq greater
    /// than `after`. A missing directory is an empty log.
    pub fn read_only(dir: &Path, after: u64) -> Result<(Arc<Wal>, Vec<Record>), Error> {
        let (records, last_seq) = if dir.is_dir() {
            read_all(dir, after, false)?
        } else {
            (Vec::new(), after)
        };
        tracing::debug!(replay = records.len(), "wal read (read-only)");
        let wal = Wal::new(dir, None, last_seq + 1, last_seq, Durability::None);
        wal.writer.lock().closed = true;
        Ok((wal, records))
    }

    fn new(
        dir: &Path,
        file: Option<File>,
        first_seq: u64,
        last_seq: u64,
        durability: Durability,
    ) -> Arc<Wal> {
        let (synced_tx, _) = watch::channel(last_seq);
        Arc::new(Wal {
            writer: Mutex::new(Writer {
                dir: dir.to_owned(),
                file,
                segment_first_seq: first_seq,
                segment_bytes: HEADER_LEN,
                written: last_seq,
                closed: false,
                dirty_tail: false,
                #[cfg(test)]
                fail_after: None,
            }),
            synced_tx,
            request: Mutex::new(SyncRequest {
                wanted: false,
                stop: false,
            }),
            wake: Condvar::new(),
            durability,
        })
    }

    /// Highest seq written or replayed.
    pub fn last_seq(&self) -> u64 {
        self.writer.lock().written
    }

    /// Writes one record (to the OS, not yet synced). Caller holds the
    /// append gate, so `seq` is strictly increasing.
    pub fn write(&self, seq: u64, payload: &[u8]) -> Result<(), Error> {
        let mut w = self.writer.lock();
        if w.file.is_none() {
            return Err(Error::ReadOnly);
        }
        if w.closed {
            return Err(Error::Closed);
        }
        if w.segment_bytes >= SEGMENT_BYTES {
            self.rotate_locked(&mut w, seq)?;
        }
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l < MAX_RECORD)
            .ok_or_else(|| Error::Invalid("append batch larger than 1 GiB".into()))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&seq.to_le_bytes());
        crc.update(payload);
        let mut buf = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc.finalize().to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(payload);
        let path = segment_path(&w.dir, w.segment_first_seq);
        let start = w.segment_bytes;
        if w.dirty_tail {
            cut_tail(&mut w, start).map_err(|e| Error::io(&path, e))?;
        }
        #[cfg(test)]
        let fail_after = w.fail_after.take();
        #[cfg(not(test))]
        let fail_after: Option<usize> = None;
        let Some(file) = w.file.as_mut() else {
            return Err(Error::ReadOnly);
        };
        let written = match fail_after {
            Some(n) => file
                .write_all(&buf[..n.min(buf.len())])
                .and_then(|()| Err(io::Error::from_raw_os_error(28))),
            None => file.write_all(&buf),
        };
        if let Err(e) = written {
            // A full disk (or any failed write) may have left part of the
            // record in the file. Cut it off now: a later record written
            // behind it would be unreadable, and replay would truncate it
            // with everything after it as a torn tail.
            w.dirty_tail = true;
            if let Err(cut) = cut_tail(&mut w, start) {
                tracing::error!(
                    path = %path.display(),
                    error = %cut,
                    "could not roll back a failed wal write; retrying before the next one"
                );
            }
            return Err(Error::io(&path, e));
        }
        w.segment_bytes += buf.len() as u64;
        w.written = seq;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn fail_next_write_after(&self, bytes: usize) {
        self.writer.lock().fail_after = Some(bytes);
    }

    /// Waits until `seq` is as durable as the durability mode promises.
    pub async fn wait_durable(&self, seq: u64) -> Result<(), Error> {
        if self.durability != Durability::Strict {
            return Ok(());
        }
        {
            let mut r = self.request.lock();
            r.wanted = true;
            self.wake.notify_one();
        }
        let mut rx = self.synced_tx.subscribe();
        rx.wait_for(|synced| *synced >= seq)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    /// Starts a new segment, so segments holding only flushed records can be
    /// deleted. Returns the first seq of the new segment.
    pub fn rotate(&self) -> Result<u64, Error> {
        let mut w = self.writer.lock();
        let next = w.written + 1;
        self.rotate_locked(&mut w, next)?;
        Ok(next)
    }

    fn rotate_locked(&self, w: &mut Writer, first_seq: u64) -> Result<(), Error> {
        if w.segment_first_seq == first_seq {
            return Ok(());
        }
        let old = segment_path(&w.dir, w.segment_first_seq);
        // A segment that is no longer the last must end on a whole record,
        // or the next open reports it as corrupt.
        if w.dirty_tail {
            let len = w.segment_bytes;
            cut_tail(w, len).map_err(|e| Error::io(&old, e))?;
        }
        let Some(current) = w.file.as_ref() else {
            return Err(Error::ReadOnly);
        };
        current.sync_data().map_err(|e| Error::io(&old, e))?;
        let (file, _) = create_segment(&w.dir, first_seq)?;
        sync_dir(&w.dir)?;
        w.file = Some(file);
        w.segment_first_seq = first_seq;
        w.segment_bytes = HEADER_LEN;
        // Everything before the new segment is now synced.
        let written = w.written;
        self.synced_tx.send_if_modified(|s| {
            let changed = *s < written;
            *s = (*s).max(written);
            changed
        });
        Ok(())
    }

    /// Deletes segments whose records are all at or below `flushed`.
    pub fn delete_flushed(&self, flushed: u64) -> Result<(), Error> {
        let w = self.writer.lock();
        if w.file.is_none() {
            return Err(Error::ReadOnly);
        }
        let segments = list_segments(&w.dir)?;
        for pair in segments.windows(2) {
            let (_, path) = &pair[0];
            let (next_first, _) = &pair[1];
            // Segment `pair[0]` holds seqs below `next_first`.
            if *next_first <= flushed + 1 && *next_first <= w.segment_first_seq {
                fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
        }
        Ok(())
    }

    /// Syncs whatever is written now and publishes the synced seq.
    fn sync_now(&self) -> Result<(), Error> {
        let (file, written, path) = {
            let w = self.writer.lock();
            let Some(file) = w.file.as_ref() else {
                // Read-only: nothing was written, nothing to sync.
                return Ok(());
            };
            let file = file
                .try_clone()
                .map_err(|e| Error::io(&segment_path(&w.dir, w.segment_first_seq), e))?;
            (file, w.written, segment_path(&w.dir, w.segment_first_seq))
        };
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        self.synced_tx.send_if_modified(|s| {
            let changed = *s < written;
            *s = (*s).max(written);
            changed
        });
        Ok(())
    }

    /// Runs the sync loop on the calling (dedicated) thread until `stop`.
    pub fn run_syncer(self: &Arc<Self>, interval: Duration) {
        loop {
            {
                let mut r = self.request.lock();
                if !r.wanted && !r.stop {
                    match self.durability {
                        Durability::Strict => self.wake.wait(&mut r),
                        Durability::Interval => {
                            self.wake.wait_for(&mut r, interval);
                        }
                        Durability::None => self.wake.wait(&mut r),
                    }
                }
                if r.stop {
                    break;
                }
                r.wanted = false;
            }
            if self.durability != Durability::None
                && let Err(e) = self.sync_now()
            {
                tracing::error!(error = %e, "wal sync failed");
            }
        }
    }

    /// Final sync and stop: later writes fail with `Closed`.
    pub fn close(&self) -> Result<(), Error> {
        self.sync_now()?;
        self.writer.lock().closed = true;
        let mut r = self.request.lock();
        r.stop = true;
        self.wake.notify_all();
        Ok(())
    }
}

/// Truncates the open segment to `len` (the end of its last whole record)
/// and puts the write position there.
fn cut_tail(w: &mut Writer, len: u64) -> io::Result<()> {
    let Some(file) = w.file.as_mut() else {
        return Ok(());
    };
    file.set_len(len)?;
    file.seek(SeekFrom::Start(len))?;
    w.dirty_tail = false;
    Ok(())
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf), Error> {
    let path = segment_path(dir, first_seq);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    if let Err(e) = file.write_all(&header).and_then(|()| file.sync_data()) {
        // A headerless segment in the middle of the log would stop the next
        // open; none is better than half of one.
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(Error::io(&path, e));
    }
    Ok((file, path))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
        else {
            continue;
        };
        if let Ok(first) = stem.parse::<u64>() {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Every record with a seq above `after`, and the highest seq seen (at
/// least `after`). `repair`: truncate a torn tail (read-write open) rather
/// than skip it and tolerate segments vanishing (read-only open).
fn read_all(dir: &Path, after: u64, repair: bool) -> Result<(Vec<Record>, u64), Error> {
    let segments = list_segments(dir)?;
    let mut records = Vec::new();
    let mut last_seq = after;
    let count = segments.len();
    for (i, (_, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == count;
        let seg_records = match read_segment(path, is_last, repair) {
            Ok(r) => r,
            // Deleted by a live writer after a flush: its records are in parts.
            Err(Error::Io { source, .. })
                if !repair && source.kind() == io::ErrorKind::NotFound =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        for r in seg_records {
            last_seq = last_seq.max(r.seq);
            if r.seq > after {
                records.push(r);
            }
        }
    }
    Ok((records, last_seq))
}

fn read_segment(path: &Path, is_last: bool, repair: bool) -> Result<Vec<Record>, Error> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(repair)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| Error::io(path, e))?;
    if data.len() < HEADER_LEN as usize {
        // A segment created right before a crash may miss its header.
        if is_last {
            return Ok(Vec::new());
        }
        return Err(Error::Corrupt {
            path: path.to_owned(),
            offset: 0,
            reason: "segment shorter than its header".into(),
        });
    }
    if let Err((offset, reason)) = record::check_header(&data) {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            offset,
            reason,
        });
    }
    let mut records = Vec::new();
    let mut pos = HEADER_LEN as usize;
    while pos < data.len() {
        match parse_record(&data[pos..]) {
            Ok((record, used)) => {
                records.push(record);
                pos += used;
            }
            Err(reason) => {
                if !is_last {
                    return Err(Error::Corrupt {
                        path: path.to_owned(),
                        offset: pos as u64,
                        reason,
                    });
                }
                if !repair {
                    tracing::debug!(
                        path = %path.display(),
                        offset = pos,
                        %reason,
                        "ignoring torn or in-progress wal tail (read-only)"
                    );
                    break;
                }
                tracing::warn!(
                    path = %path.display(),
                    offset = pos,
                    dropped_bytes = data.len() - pos,
                    %reason,
                    "truncating torn wal tail"
                );
                file.set_len(pos as u64).map_err(|e| Error::io(path, e))?;
                file.seek(SeekFrom::End(0))
                    .map_err(|e| Error::io(path, e))?;
                file.sync_data().map_err(|e| Error::io(path, e))?;
                break;
            }
        }
    }
    Ok(records)
}

/// Makes a rename or a new file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    loupe_fsutil::sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Wraps an I/O error with its path (used across the store).
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, after: u64) -> (Arc<Wal>, Vec<Record>) {
        Wal::open(dir, after, Durability::Strict).expect("open wal")
    }

    #[test]
    fn payloads_round_trip_and_json_from_older_versions_still_decodes() {
        use loupe_model::{Span, SpanKind, Status};
        let mut full = Span::new("p", "s1");
        full.trace_id = Some("t".into());
        full.run_id = Some("r".into());
        full.span_kind = Some(SpanKind::Tool);
        full.status = Some(Status::Error);
        full.start_time = Some(-5);
        full.end_time = Some(i64::MAX);
        full.input_tokens = Some(7);
        full.cost = Some(0.25);
        full.input = Some("quote \" and 中文 and \u{0}".into());
        full.attributes
            .insert("http.status_code".into(), "500".into());
        full.tags.insert("category".into(), "phone".into());
        full.ingest_version = Some(3);
        let spans = vec![full, Span::new("p", "sparse")];
        let payload = encode_spans(&spans).expect("encode");
        assert_eq!(payload[0], 0, "postcard marker");
        assert_eq!(decode_spans(&payload).expect("decode"), spans);
        let json = serde_json::to_vec(&spans).expect("json");
        assert_eq!(decode_spans(&json).expect("legacy json"), spans);
        assert!(decode_spans(&payload[..payload.len() / 2]).is_err());
    }

    #[test]
    fn records_survive_reopen_and_flushed_ones_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, replay) = open(dir.path(), 0);
        assert!(replay.is_empty());
        for seq in 1..=5 {
            wal.write(seq, format!("payload-{seq}").as_bytes())
                .expect("write");
        }
        drop(wal);
        let (_, replay) = open(dir.path(), 2);
        let seqs: Vec<_> = replay.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(replay[0].payload, b"payload-3");
    }

    #[test]
    fn torn_tail_of_last_segment_is_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 0);
        wal.write(1, b"good").expect("write");
        wal.write(2, b"torn-record").expect("write");
        drop(wal);
        let (_, path) = list_segments(dir.path())
            .expect("list")
            .pop()
            .expect("segment");
        let len = fs::metadata(&path).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len - 3))
            .expect("cut tail");
        let (wal, replay) = open(dir.path(), 0);
        assert_eq!(replay.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
        // The log keeps working after the repair.
        wal.write(2, b"again").expect("write after repair");
        drop(wal);
        let (_, replay) = open(dir.path(), 0);
        assert_eq!(replay.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn flipped_bit_in_an_older_segment_is_reported_as_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 0);
        wal.write(1, b"first").expect("write");
        wal.rotate().expect("rotate");
        wal.write(2, b"second").expect("write");
        drop(wal);
        let segments = list_segments(dir.path()).expect("list");
        let first = &segments[0].1;
        let mut bytes = fs::read(first).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(first, bytes).expect("write back");
        match Wal::open(dir.path(), 0, Durability::Strict) {
            Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, HEADER_LEN),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("corruption not detected"),
        }
    }

    /// A full disk mid-record: the append fails, the partial record is cut
    /// off, and records acknowledged after space came back are all replayed
    /// (they used to sit behind the garbage and be truncated as a torn
    /// tail).
    #[test]
    fn a_write_failing_mid_record_is_rolled_back_and_later_records_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 0);
        wal.write(1, b"before the disk filled").expect("write");
        for cut in [0, 3, 17, 30] {
            wal.fail_next_write_after(cut);
            let err = wal
                .write(2, b"this record hits ENOSPC")
                .expect_err("full disk");
            assert!(
                matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(28)),
                "{err}"
            );
        }
        for seq in 2..=101 {
            wal.write(seq, format!("acked-{seq}").as_bytes())
                .expect("write after space was freed");
        }
        wal.rotate().expect("rotate");
        wal.write(102, b"next segment").expect("write");
        drop(wal);
        let (_, replay) = open(dir.path(), 0);
        let seqs: Vec<u64> = replay.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=102).collect::<Vec<_>>());
        assert_eq!(replay[100].payload, b"acked-101");
    }

    /// Records written by format 1 (segment header version 1; one postcard
    /// record, one JSON record as the first versions wrote) replay to the
    /// same spans. The file is made by this test with `UPDATE_GOLDEN=1`,
    /// once per format; after that it must keep replaying.
    #[test]
    fn golden_segment_of_format_1_replays() {
        use loupe_model::{Span, SpanKind, Status};
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wal-format-1.wal");
        let mut a = Span::new("golden", "s1");
        a.trace_id = Some("t1".into());
        a.run_id = Some("run-1".into());
        a.span_kind = Some(SpanKind::Llm);
        a.status = Some(Status::Ok);
        a.start_time = Some(1_795_000_000_000_000_000);
        a.end_time = Some(1_795_000_001_500_000_000);
        a.input_tokens = Some(120);
        a.output_tokens = Some(30);
        a.cost = Some(0.0042);
        a.model_name = Some("gpt-4o".into());
        a.input = Some("where is my order? 我的订单在哪里".into());
        a.output = Some("It ships tomorrow.".into());
        a.attributes.insert("dify.tenant_id".into(), "w1".into());
        a.tags.insert("category".into(), "phone".into());
        let mut b = Span::new("golden", "s2");
        b.trace_id = Some("t1".into());
        b.parent_span_id = Some("s1".into());
        b.status = Some(Status::Running);
        b.tool_name = Some("inventory".into());
        let postcard_record = vec![a.clone(), b.clone()];
        let json_record = vec![b];
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let dir = tempfile::tempdir().expect("tempdir");
            let (wal, _) = open(dir.path(), 0);
            wal.write(1, &encode_spans(&postcard_record).expect("encode"))
                .expect("write");
            wal.write(2, &serde_json::to_vec(&json_record).expect("json"))
                .expect("write");
            drop(wal);
            let (_, path) = list_segments(dir.path())
                .expect("list")
                .pop()
                .expect("segment");
            fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
            fs::copy(&path, &golden).expect("write golden");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        fs::copy(&golden, segment_path(dir.path(), 1)).expect("golden file present");
        let (_, replay) = open(dir.path(), 0);
        assert_eq!(replay.len(), 2);
        assert_eq!(replay[0].seq, 1);
        assert_eq!(
            decode_spans(&replay[0].payload).expect("postcard"),
            postcard_record
        );
        assert_eq!(decode_spans(&replay[1].payload).expect("json"), json_record);
    }

    #[test]
    fn segments_below_the_flushed_seq_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 0);
        wal.write(1, b"a").expect("write");
        wal.rotate().expect("rotate");
        wal.write(2, b"b").expect("write");
        wal.delete_flushed(1).expect("delete");
        drop(wal);
        let (_, replay) = open(dir.path(), 0);
        assert_eq!(replay.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    }
}
