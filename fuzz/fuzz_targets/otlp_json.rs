//! OTLP/JSON bodies: the counting visitor, the span-by-span decode (a bad
//! value rejects only its span) and normalisation. Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::IngestLimits;
use loupe_ingest::otlp::{Encoding, decode_request, normalise_with};

const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = IngestLimits::default();
    if let Ok(decoded) = decode_request(data, Encoding::Json, false, 1 << 20, &limits) {
        let _ = normalise_with("fuzz", decoded, &limits, Some(NOW), None);
    }
});
