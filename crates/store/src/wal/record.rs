//! The WAL's byte format, apart from any file: the segment header, record
//! framing and the span payload codec (see the format in `wal.rs`).
//!
//! Everything here is a pure function of bytes and depends on no other
//! module of the store, so `fuzz/` builds it alone (its WAL-reader target
//! includes this file) without compiling DataFusion.

/// The first bytes of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"LOUPEWAL";
/// The segment format this version writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Magic and version.
pub(crate) const HEADER_LEN: u64 = 12;
/// Length, checksum and seq.
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// A record longer than this is corruption, not data (bounds allocation).
pub(crate) const MAX_RECORD: u32 = 1 << 30;

/// One replayed record.
pub(crate) struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Checks a segment's header: `Err((offset, reason))` when it is not a
/// Loupe WAL segment of a format this version reads. `data` must hold at
/// least [`HEADER_LEN`] bytes (shorter segments are handled by the reader).
pub(crate) fn check_header(data: &[u8]) -> Result<(), (u64, String)> {
    if data.get(..8) != Some(MAGIC.as_slice()) {
        return Err((0, "not a Loupe WAL segment (bad magic)".into()));
    }
    let version = match data.get(8..12) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => return Err((8, "segment shorter than its header".into())),
    };
    if version != FORMAT_VERSION {
        return Err((8, format!("unsupported WAL format version {version}")));
    }
    Ok(())
}

/// The record at the start of `data` and the bytes it takes, or why there
/// is no whole, intact record there.
pub(crate) fn parse_record(data: &[u8]) -> Result<(Record, usize), String> {
    if data.len() < RECORD_HEADER_LEN {
        return Err("short record header".into());
    }
    let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let len = word(0);
    let crc = word(4);
    if len >= MAX_RECORD {
        return Err(format!("record length {len} out of range"));
    }
    let end = RECORD_HEADER_LEN + len as usize;
    if data.len() < end {
        return Err("short record payload".into());
    }
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&data[8..16]);
    let payload = &data[RECORD_HEADER_LEN..end];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq_bytes);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err("checksum mismatch".into());
    }
    Ok((
        Record {
            seq: u64::from_le_bytes(seq_bytes),
            payload: payload.to_vec(),
        },
        end,
    ))
}

/// The marker byte of a postcard payload.
const POSTCARD: u8 = 0;

/// The WAL payload of an append.
pub fn encode_spans(spans: &[loupe_model::Span]) -> Result<Vec<u8>, String> {
    let estimate: usize = spans.iter().map(loupe_model::Span::approx_bytes).sum();
    let mut buf = Vec::with_capacity(estimate + 1);
    buf.push(POSTCARD);
    postcard::to_extend(spans, buf).map_err(|e| e.to_string())
}

/// The spans of a payload written by [`encode_spans`] or, by an older
/// version, as JSON.
pub fn decode_spans(payload: &[u8]) -> Result<Vec<loupe_model::Span>, String> {
    match payload.split_first() {
        Some((&POSTCARD, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        _ => serde_json::from_slice(payload).map_err(|e| e.to_string()),
    }
}
