//! Elasticsearch bulk bodies (NDJSON): action lines, documents, field
//! mapping and the per-item results. Must never panic, and every item
//! ends stored or refused.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_ingest::IngestLimits;
use loupe_ingest::logs::es_bulk;

const NOW: i64 = 1_795_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = IngestLimits::default();
    let _ = es_bulk::parse(data, Some("fuzz"), "fuzz", NOW, &limits);
    let _ = es_bulk::parse_doc(data, "fuzz", "fuzz", NOW, &limits);
});
