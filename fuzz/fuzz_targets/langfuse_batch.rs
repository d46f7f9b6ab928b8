//! Langfuse ingestion batches (`POST /api/public/ingestion`): the event
//! count cap, per-event parsing (a bad event fails only itself) and the
//! mapping to spans. Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::IngestLimits;

const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = loupe_ingest::langfuse::prepare_with("fuzz", data, &IngestLimits::default(), Some(NOW));
});
