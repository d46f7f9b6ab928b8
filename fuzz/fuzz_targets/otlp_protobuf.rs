//! OTLP/HTTP protobuf bodies (also every gRPC message): the wire scan and
//! its caps, prost's decode, then normalisation with the span time window
//! and Dify's id linking. Must never panic or allocate without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::IngestLimits;
use loupe_ingest::otlp::{Encoding, decode_request, normalise_with};

/// 2026-11-18T08:53Z: the fixtures' spans are inside the window.
const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = IngestLimits::default();
    // The first byte says whether the rest is gzip, so inflation is fuzzed
    // too (bounded at 1 MiB here).
    let (gzip, body) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => (false, data),
    };
    if let Ok(decoded) = decode_request(body, Encoding::Protobuf, gzip, 1 << 20, &limits) {
        let ids = loupe_ingest::otlp::IdCache::default();
        let _ = normalise_with("fuzz", decoded, &limits, Some(NOW), Some(&ids));
    }
});
