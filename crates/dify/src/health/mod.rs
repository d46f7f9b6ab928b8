//! Dify's database health as a DBA wants it before and after turning on
//! Loupe's cleanup: size per table (heap, TOAST, indexes), rows, dead
//! tuples and (auto)vacuum times, the oldest row of each execution table,
//! connections, long-running queries and lock waits on the execution
//! tables ([`catalog`]); growth rates and 30/90-day projections from the
//! samples Loupe keeps ([`history`]); what each cleanup did
//! ([`cleanups`]); and all of it as Prometheus families ([`metrics`]).
//!
//! Read-only and cheap: a sample reads the catalogue and index-ordered
//! rows only (no table scan), on its own interval (`[dify]
//! health_interval`), with a short statement timeout.

pub mod catalog;
pub mod cleanups;
pub mod history;
pub mod metrics;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_postgres::Client;

use crate::Error;
pub use catalog::{CollectConfig, Sample};
pub use cleanups::{CleanupHistory, CleanupRecord};
pub use history::{Growth, HealthHistory};

/// Settings of the health collector.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// `postgres://user:password@host:port/database`.
    pub dsn: String,
    /// The data directory (`dify-health.json`, `dify-cleanups.json`).
    pub data_dir: PathBuf,
    /// Pause between samples.
    pub interval: Duration,
    /// What a sample reads.
    pub collect: CollectConfig,
}

/// Points a chart gets at most (the history is thinned evenly to this).
pub const CHART_POINTS: usize = 240;

/// Cleanup runs listed in a [`HealthReport`] (the full list is
/// `/api/v1/dify/cleanups`).
pub const RECENT_CLEANUPS: usize = 10;

/// The health of the database as the API, the CLI and the console show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HealthReport {
    /// The database (`name/oid`), when sampled.
    pub database: Option<String>,
    /// The latest sample.
    pub sample: Option<Sample>,
    /// Growth of the whole database.
    pub database_growth: Option<Growth>,
    /// Growth per tracked table.
    pub growth: BTreeMap<String, Growth>,
    /// Size history for charts: Unix seconds, database bytes and bytes per
    /// execution table, at most [`CHART_POINTS`] points.
    pub chart: Vec<ChartPoint>,
    /// The latest cleanup runs, newest first.
    pub cleanups: Vec<CleanupRecord>,
    /// Rows deleted and bytes estimated freed by all recorded cleanups.
    pub cleanup_totals: CleanupTotals,
    /// The collector's last error, if the last sample failed.
    pub last_error: Option<String>,
}

/// One point of the size charts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChartPoint {
    /// Unix seconds.
    pub at: i64,
    /// Database size.
    pub database_bytes: i64,
    /// Total bytes per execution table.
    pub tables: BTreeMap<String, i64>,
    /// The latency probe, ms.
    pub probe_ms: Option<f64>,
    /// Sessions running a query.
    pub active: i64,
    /// Sessions waiting for a lock on an execution table.
    pub lock_waits: i64,
}

/// Totals over the recorded cleanups (dry runs excluded).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupTotals {
    /// Runs recorded (dry runs included).
    pub runs: usize,
    /// Rows deleted.
    pub rows_deleted: u64,
    /// Estimated bytes freed.
    pub bytes_freed: u64,
}

impl HealthReport {
    /// The report from the latest sample, the size history and the
    /// cleanup history.
    pub fn build(
        sample: Option<&Sample>,
        history: &HealthHistory,
        cleanups: &CleanupHistory,
        last_error: Option<String>,
    ) -> Self {
        let mut growth = BTreeMap::new();
        if let Some(last) = history.points.last() {
            for t in last.tables.keys() {
                if let Some(g) = history.growth(Some(t)) {
                    growth.insert(t.clone(), g);
                }
            }
        }
        let step = history.points.len().div_ceil(CHART_POINTS).max(1);
        let last_index = history.points.len().saturating_sub(1);
        let chart = history
            .points
            .iter()
            .enumerate()
            // Evenly thinned, always ending on the newest point.
            .filter(|(i, _)| (last_index - i).is_multiple_of(step))
            .map(|(_, p)| ChartPoint {
                at: p.at,
                database_bytes: p.database_bytes,
                tables: p
                    .tables
                    .iter()
                    .filter(|(t, _)| catalog::EXECUTION_TABLES.contains(&t.as_str()))
                    .map(|(t, x)| (t.clone(), x.bytes))
                    .collect(),
                probe_ms: p.probe_ms,
                active: p.active,
                lock_waits: p.lock_waits,
            })
            .collect();
        let (rows_deleted, bytes_freed) = cleanups.totals();
        Self {
            database: history.database.clone(),
            sample: sample.cloned(),
            database_growth: history.growth(None),
            growth,
            chart,
            cleanups: cleanups
                .runs
                .iter()
                .rev()
                .take(RECENT_CLEANUPS)
                .cloned()
                .collect(),
            cleanup_totals: CleanupTotals {
                runs: cleanups.runs.len(),
                rows_deleted,
                bytes_freed,
            },
            last_error,
        }
    }
}

/// What a running collector shares with the API and `/metrics`.
#[derive(Debug, Default)]
pub struct HealthState {
    inner: Mutex<StateInner>,
    data_dir: PathBuf,
}

#[derive(Debug, Default)]
struct StateInner {
    sample: Option<Sample>,
    history: HealthHistory,
    last_error: Option<String>,
    samples: u64,
    failures: u64,
}

impl HealthState {
    fn lock(&self) -> std::sync::MutexGuard<'_, StateInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The report now: the latest sample and history in memory, the
    /// cleanup history read from the data directory (the CLI writes it).
    pub fn report(&self) -> HealthReport {
        let cleanups = self.cleanups();
        let s = self.lock();
        HealthReport::build(
            s.sample.as_ref(),
            &s.history,
            &cleanups,
            s.last_error.clone(),
        )
    }

    /// The cleanup history (empty, with a warning, when unreadable).
    pub fn cleanups(&self) -> CleanupHistory {
        CleanupHistory::load(&CleanupHistory::path(&self.data_dir)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the cleanup history");
            CleanupHistory::default()
        })
    }

    /// Samples taken and failed since start.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.samples, s.failures)
    }

    /// The `dify_database_*` families now (for `/metrics` and gauge alert
    /// rules).
    pub fn families(&self) -> Vec<metrics::Family> {
        let cleanups = self.cleanups();
        let s = self.lock();
        metrics::families(
            s.sample.as_ref(),
            &s.history,
            &cleanups,
            (s.samples, s.failures),
        )
    }

    /// The `dify_database_*` exposition of the latest sample.
    pub fn render_metrics(&self, out: &mut String, openmetrics: bool) {
        let cleanups = self.cleanups();
        let s = self.lock();
        metrics::render(
            out,
            s.sample.as_ref(),
            &s.history,
            &cleanups,
            (s.samples, s.failures),
            openmetrics,
        );
    }
}

/// Samples Dify's database on an interval and keeps the history.
pub struct Monitor {
    config: HealthConfig,
    client: Option<Client>,
    state: Arc<HealthState>,
}

impl Monitor {
    /// Loads the history from the data directory and connects. A database
    /// that cannot be reached is an error here; later, the collector
    /// reconnects at the next interval.
    pub async fn connect(config: HealthConfig) -> Result<Self, Error> {
        let history = HealthHistory::load(&HealthHistory::path(&config.data_dir))?;
        let client = crate::schema::connect(&config.dsn).await?;
        let state = Arc::new(HealthState {
            inner: Mutex::new(StateInner {
                history,
                ..StateInner::default()
            }),
            data_dir: config.data_dir.clone(),
        });
        Ok(Self {
            config,
            client: Some(client),
            state,
        })
    }

    /// The shared state.
    pub fn state(&self) -> Arc<HealthState> {
        self.state.clone()
    }

    /// Takes one sample, adds it to the history and saves the history.
    pub async fn sample_once(&mut self) -> Result<Sample, Error> {
        let result = self.sample_inner().await;
        let mut s = self.state.lock();
        match &result {
            Ok(sample) => {
                s.samples += 1;
                s.last_error = None;
                s.sample = Some(sample.clone());
            }
            Err(e) => {
                s.failures += 1;
                s.last_error = Some(e.to_string());
                // A broken connection is replaced at the next sample.
                if self.client.as_ref().is_some_and(Client::is_closed) {
                    self.client = None;
                }
            }
        }
        result
    }

    async fn sample_inner(&mut self) -> Result<Sample, Error> {
        if self.client.is_none() {
            self.client = Some(crate::schema::connect(&self.config.dsn).await?);
        }
        let Some(client) = self.client.as_ref() else {
            return Err(Error::Connect("no connection".into()));
        };
        let identity = crate::sync::database_identity(client).await?;
        let sample = catalog::collect(client, &self.config.collect).await?;
        let history = {
            let mut s = self.state.lock();
            s.history.push(&identity, history::Point::of(&sample));
            s.history.clone()
        };
        history.save(&HealthHistory::path(&self.config.data_dir))?;
        Ok(sample)
    }

    /// Samples every interval until `stop` turns true. Failures are logged
    /// and kept as the state's last error; the next interval retries.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.sample_once().await {
                tracing::warn!(error = %e, "dify health: sample failed (retried next interval)");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
}
