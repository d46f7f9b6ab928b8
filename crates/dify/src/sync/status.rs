//! What a running sync reports about itself, for Loupe's own `/metrics`
//! and the console's Dify page: how far behind it is (the last successful
//! pass), what it read and skipped, how often it failed and why. Updated
//! after every pass of [`super::Syncer::run`]; the counters are read without
//! locks by the metrics renderer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

/// Counters and gauges of one sync.
#[derive(Debug, Default)]
pub struct SyncStatus {
    passes: AtomicU64,
    failures: AtomicU64,
    rows: AtomicU64,
    spans: AtomicU64,
    open_runs: AtomicU64,
    last_success_unix: AtomicI64,
    skipped: AtomicU64,
    last: Mutex<LastPass>,
}

/// The last pass, as the console shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LastPass {
    /// When it ended (Unix ms; 0 = no pass yet).
    pub ended_unix_ms: i64,
    /// How long it took, ms.
    pub took_ms: u64,
    /// Rows read per table.
    pub rows: std::collections::BTreeMap<String, u64>,
    /// Rows skipped per table as older than the store's retention.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// Spans written.
    pub spans: u64,
    /// Its error, when it failed.
    pub error: Option<String>,
    /// The last error of any pass, and when (Unix ms).
    pub last_error: Option<(i64, String)>,
    /// Rows read per table, every pass since the server started.
    pub rows_total: std::collections::BTreeMap<String, u64>,
    /// Rows skipped per table as older than retention, every pass.
    pub skipped_total: std::collections::BTreeMap<String, u64>,
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
    /// Rows skipped as older than the store's retention, all passes.
    pub skipped: u64,
}

impl SyncStatus {
    /// Records a finished pass: its report or its error, and its duration.
    pub(super) fn record_pass(
        &self,
        pass: Result<&super::SyncReport, &super::Error>,
        took: std::time::Duration,
    ) {
        self.record(pass.ok());
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let owned = |m: &std::collections::HashMap<&'static str, u64>| {
            m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        last.ended_unix_ms = now_ms;
        last.took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        match pass {
            Ok(r) => {
                self.skipped
                    .fetch_add(r.skipped.values().sum(), Ordering::Relaxed);
                last.rows = owned(&r.rows);
                last.skipped = owned(&r.skipped);
                for (k, v) in &r.rows {
                    *last.rows_total.entry((*k).to_owned()).or_default() += v;
                }
                for (k, v) in &r.skipped {
                    *last.skipped_total.entry((*k).to_owned()).or_default() += v;
                }
                last.spans = r.spans;
                last.error = None;
            }
            Err(e) => {
                let text = e.to_string();
                last.rows.clear();
                last.skipped.clear();
                last.spans = 0;
                last.error = Some(text.clone());
                last.last_error = Some((now_ms, text));
            }
        }
    }

    /// The last pass (default before the first).
    pub fn last_pass(&self) -> LastPass {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

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
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}
