//! OTLP log exports, protobuf and JSON: the counting walk, the decode and
//! the mapping into log records. Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::IngestLimits;
use loupe_ingest::logs::otlp::decode;
use loupe_ingest::otlp::Encoding;

const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = IngestLimits::default();
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        let _ = decode(data, encoding, false, 1 << 20, &limits, "fuzz", NOW);
    }
});
