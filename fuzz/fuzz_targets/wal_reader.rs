//! The WAL reader (`crates/store/src/wal/record.rs`, included as is): a
//! segment's header, its records' framing and checksums, and the span
//! payloads (postcard, or JSON from older versions). Must never panic or
//! allocate without bound, whatever a damaged file holds.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/store/src/wal/record.rs"]
#[allow(dead_code)]
mod record;

fuzz_target!(|data: &[u8]| {
    if data.len() < record::HEADER_LEN as usize || record::check_header(data).is_err() {
        // Also the payload codec alone, on the raw bytes.
        let _ = record::decode_spans(data);
        return;
    }
    let mut pos = record::HEADER_LEN as usize;
    while pos < data.len() {
        let Ok((r, used)) = record::parse_record(&data[pos..]) else {
            break;
        };
        let _ = record::decode_spans(&r.payload);
        pos += used;
    }
});
