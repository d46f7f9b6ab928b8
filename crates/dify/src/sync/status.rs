//! What a running sync reports about itself, for Loupe's own `/metrics`:
//! how far behind it is (the last successful pass), what it read, how often
//! it failed. Updated after every pass of [`super::Syncer::run`]; read
//! without locks by the metrics renderer.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters and gauges of one sync.
#[derive(Debug, Default)]
pub struct SyncStatus {
    passes: AtomicU64,
    failures: AtomicU64,
    rows: AtomicU64,
    spans: AtomicU64,
    open_runs: AtomicU64,
    last_success_unix: AtomicI64,
}

/// A copy of [`SyncStatus`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSnapshot {
    /// Passes finished (successful or not).
    pub passes: u64,
    /// Passes that failed.
    pub failures: u64,
    /// Dify rows read, all tables.
    pub rows: u64,
    /// Spans written.
    pub spans: u64,
    /// Runs in the re-poll set after the last successful pass.
    pub open_runs: u64,
    /// When the last pass succeeded (Unix seconds; 0 = never).
    pub last_success_unix: i64,
}

impl SyncStatus {
    pub(super) fn record(&self, report: Option<&super::SyncReport>) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        match report {
            Some(r) => {
                let rows: u64 = r.rows.values().sum();
                self.rows.fetch_add(rows, Ordering::Relaxed);
                self.spans.fetch_add(r.spans, Ordering::Relaxed);
                self.open_runs.store(r.open_runs as u64, Ordering::Relaxed);
                self.last_success_unix
                    .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
            }
            None => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The current values.
    pub fn snapshot(&self) -> SyncSnapshot {
        SyncSnapshot {
            passes: self.passes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
            open_runs: self.open_runs.load(Ordering::Relaxed),
            last_success_unix: self.last_success_unix.load(Ordering::Relaxed),
        }
    }
}
