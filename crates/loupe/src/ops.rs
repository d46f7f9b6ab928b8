//! Loupe's own operational metrics beyond the store's: what the API refused
//! and how the Dify sync is doing, added to `/metrics` beside the store's
//! (`loupe_wal_*`, `loupe_store_*`), so the operator of Loupe can watch it
//! with the Prometheus it feeds.

use loupe_api::admission::IngestGate;
use loupe_dify::sync::status::SyncStatus;
use loupe_rollup::expose::{SelfKind, SelfMetric};

/// The API's and the sync's metrics, as label-less samples.
pub fn own_metrics(gate: &IngestGate, sync: Option<&SyncStatus>) -> Vec<SelfMetric> {
    let mut out = vec![SelfMetric {
        name: "loupe_ingest_refused_total",
        help: "Ingest requests refused with 503 + Retry-After because every ingest slot was busy.",
        kind: SelfKind::Counter,
        value: gate.refused_total() as f64,
    }];
    if let Some(sync) = sync {
        let s = sync.snapshot();
        out.extend([
            SelfMetric {
                name: "loupe_dify_sync_passes_total",
                help: "Dify sync passes finished, successful or not.",
                kind: SelfKind::Counter,
                value: s.passes as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_failures_total",
                help: "Dify sync passes that failed (see the server log; retried next interval).",
                kind: SelfKind::Counter,
                value: s.failures as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_rows_total",
                help: "Rows read from Dify's database.",
                kind: SelfKind::Counter,
                value: s.rows as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_spans_total",
                help: "Spans the Dify sync wrote through the ingest pipeline.",
                kind: SelfKind::Counter,
                value: s.spans as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_open_runs",
                help: "Dify runs still re-polled (running, or finished within the settle time).",
                kind: SelfKind::Gauge,
                value: s.open_runs as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_last_success_timestamp_seconds",
                help: "When the last Dify sync pass succeeded (Unix seconds; 0 = never). time() minus this is the sync lag.",
                kind: SelfKind::Gauge,
                value: s.last_success_unix as f64,
            },
        ]);
    }
    out
}
