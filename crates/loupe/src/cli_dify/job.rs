//! Dify cleanups started from the console (`/api/v1/dify/cleanups/job`),
//! run inside `loupe serve` by the same `Cleaner` as `loupe dify cleanup`,
//! with the same guarantees: Loupe's retention checked before anything,
//! every batch verified against the server's own store, the progress file
//! and the cleanup history shared with the CLI, and one deleting cleanup
//! per data directory at a time (`dify-cleanup.lock`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use loupe_api::{CleanupControl, CleanupRefusal, CleanupRequest};
use loupe_backend::SpanReader;
use loupe_dify::relief::{Cleaner, CleanupReport, Scope};
use loupe_model::ProjectId;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::Config;

/// Runs per batch a console request may ask for at most.
const MAX_BATCH: usize = 10_000;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// Connecting and checking the database.
    Connecting,
    /// Batches under way.
    Running,
    /// Asked to stop; the batch in flight finishes first.
    Stopping,
    /// Ended with a report (complete or stopped).
    Finished,
    /// Ended with an error (the report says what was done before it).
    Failed,
}

/// One cleanup started from the console.
#[derive(Debug, Clone, Serialize)]
struct Job {
    id: u64,
    phase: Phase,
    /// The request as understood (defaults filled in).
    request: Value,
    started_at: String,
    finished_at: Option<String>,
    /// Runs (messages) handled, the estimated candidates, rows deleted.
    done: u64,
    total: u64,
    deleted: u64,
    report: Option<CleanupReport>,
    error: Option<String>,
    #[serde(skip)]
    stop: Arc<AtomicBool>,
}

impl Job {
    fn live(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting | Phase::Running | Phase::Stopping
        )
    }
}

/// The console's cleanups of the `[dify]` database (one job at a time; the
/// last one is kept until the next starts).
pub struct ConsoleCleanups {
    config: Config,
    reader: Arc<dyn SpanReader>,
    /// The store's retention in force, which the console may change while
    /// the server runs: a cleanup is checked against it, not the start's.
    retention: Arc<dyn Fn() -> std::collections::BTreeMap<String, u32> + Send + Sync>,
    job: Arc<Mutex<Option<Job>>>,
    ids: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl ConsoleCleanups {
    /// Cleanups of `config`'s `[dify]` database, verified through
    /// `reader`; `shutdown` turning true stops a running job after its
    /// batch. `None` when no database is configured.
    pub fn new(
        config: &Config,
        reader: Arc<dyn SpanReader>,
        retention: Arc<dyn Fn() -> std::collections::BTreeMap<String, u32> + Send + Sync>,
        shutdown: watch::Receiver<bool>,
    ) -> Option<Self> {
        config.dify.dsn.as_ref()?;
        Some(Self {
            config: config.clone(),
            reader,
            retention,
            job: Arc::default(),
            ids: AtomicU64::new(1),
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Job>> {
        // A panic while holding it leaves plain data behind: keep going.
        self.job.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cleanups belong to the database's own project, like its health.
    fn owner(&self, project: &ProjectId) -> Result<&str, CleanupRefusal> {
        match &self.config.dify.dsn {
            Some(dsn) if self.config.dify.project == project.as_str() => Ok(dsn),
            _ => Err(CleanupRefusal::NotHere(format!(
                "no Dify database is synced into project {project}: cleanups run from the \
                 project of [dify] project"
            ))),
        }
    }

    /// The request checked and turned into the cleaner's settings.
    fn settings(
        &self,
        project: &ProjectId,
        dsn: &str,
        r: &CleanupRequest,
    ) -> Result<(loupe_dify::relief::CleanupConfig, Value), CleanupRefusal> {
        let invalid = CleanupRefusal::Invalid;
        let older_than = humantime::parse_duration(r.older_than.trim()).map_err(|e| {
            invalid(format!(
                "older_than {:?}: {e} (e.g. 30d, 12h)",
                r.older_than
            ))
        })?;
        let scope: Scope = r
            .scope
            .as_deref()
            .unwrap_or("runs")
            .parse()
            .map_err(|e: loupe_dify::Error| invalid(e.to_string()))?;
        let batch = r.batch.unwrap_or(500);
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(invalid(format!("batch {batch}: expected 1 to {MAX_BATCH}")));
        }
        if r.max_batches == Some(0) {
            return Err(invalid("max_batches: expected at least 1".into()));
        }
        let mut current = self.config.clone();
        current.store.retention_days_by_project = (self.retention)();
        let mut config = super::cleanup::base_config(&current, project.as_str(), dsn, older_than)
            .map_err(|e| invalid(format!("{e:#}")))?;
        config.scope = scope;
        config.batch = batch;
        config.dry_run = r.dry_run;
        config.max_batches = r.max_batches;
        config.source = "console".into();
        let echo = json!({
            "older_than": humantime::format_duration(older_than).to_string(),
            "scope": scope.name(),
            "dry_run": r.dry_run,
            "batch": batch,
            "max_batches": r.max_batches,
        });
        Ok((config, echo))
    }

    fn view(job: &Option<Job>) -> Value {
        json!({ "job": job })
    }
}

/// Whose fault a cleaner's refusal to start is.
fn refusal(e: loupe_dify::Error) -> CleanupRefusal {
    use loupe_dify::Error as E;
    match e {
        E::Connect(_) | E::Query { .. } => CleanupRefusal::Unreachable(e.to_string()),
        E::Refused(ref m) if m.contains(loupe_dify::relief::LOCK_FILE) => {
            CleanupRefusal::Conflict(e.to_string())
        }
        other => CleanupRefusal::Invalid(other.to_string()),
    }
}

impl CleanupControl for ConsoleCleanups {
    fn start<'a>(
        &'a self,
        project: &'a ProjectId,
        request: CleanupRequest,
    ) -> BoxFuture<'a, Result<Value, CleanupRefusal>> {
        Box::pin(async move {
            let dsn = self.owner(project)?;
            let (mut config, echo) = self.settings(project, dsn, &request)?;
            let stop = Arc::new(AtomicBool::new(false));
            config.stop = Some(stop.clone());
            let id = self.ids.fetch_add(1, Ordering::Relaxed);
            let previous = {
                let mut slot = self.lock();
                if slot.as_ref().is_some_and(Job::live) {
                    return Err(CleanupRefusal::Conflict(
                        "a cleanup started from the console is still running; stop it or wait"
                            .into(),
                    ));
                }
                slot.replace(Job {
                    id,
                    phase: Phase::Connecting,
                    request: echo,
                    started_at: chrono::Utc::now().to_rfc3339(),
                    finished_at: None,
                    done: 0,
                    total: 0,
                    deleted: 0,
                    report: None,
                    error: None,
                    stop: stop.clone(),
                })
            };
            let mut cleaner = match Cleaner::connect(config, self.reader.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    // Not started: the last finished job stays the one shown.
                    *self.lock() = previous;
                    return Err(refusal(e));
                }
            };
            let shared = self.job.clone();
            let update = move |f: &mut dyn FnMut(&mut Job)| {
                let mut slot = shared.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(job) = slot.as_mut().filter(|j| j.id == id) {
                    f(job);
                }
            };
            let tick = update.clone();
            cleaner.on_tick(Arc::new(move |t| {
                tick(&mut |job| {
                    job.done = t.done;
                    job.total = t.total;
                    job.deleted = t.deleted;
                });
            }));
            update(&mut |job| {
                if job.phase == Phase::Connecting {
                    job.phase = Phase::Running;
                }
            });
            let mut shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                let run = cleaner.run();
                tokio::pin!(run);
                let result = tokio::select! {
                    r = &mut run => r,
                    () = async {
                        // The guard `wait_for` returns is not `Send`: drop it here.
                        let _ = shutdown.wait_for(|s| *s).await;
                    } => {
                        stop.store(true, Ordering::Release);
                        run.await
                    }
                };
                let now = chrono::Utc::now().to_rfc3339();
                match result {
                    Ok(report) => {
                        tracing::info!(
                            job = id,
                            deleted = report.total_deleted(),
                            complete = report.complete,
                            "dify cleanup from the console ended"
                        );
                        update(&mut |job| {
                            job.phase = Phase::Finished;
                            job.finished_at = Some(now.clone());
                            job.deleted = report.total_deleted();
                            job.report = Some(report.clone());
                        });
                    }
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "dify cleanup from the console failed");
                        update(&mut |job| {
                            job.phase = Phase::Failed;
                            job.finished_at = Some(now.clone());
                            job.error = Some(e.to_string());
                        });
                    }
                }
            });
            Ok(Self::view(&self.lock()))
        })
    }

    fn current(&self, project: &ProjectId) -> Result<Value, CleanupRefusal> {
        self.owner(project)?;
        Ok(Self::view(&self.lock()))
    }

    fn stop(&self, project: &ProjectId) -> Result<Value, CleanupRefusal> {
        self.owner(project)?;
        let mut slot = self.lock();
        match slot.as_mut().filter(|j| j.live()) {
            Some(job) => {
                job.stop.store(true, Ordering::Release);
                job.phase = Phase::Stopping;
            }
            None => {
                return Err(CleanupRefusal::Conflict(
                    "no cleanup started from the console is running".into(),
                ));
            }
        }
        Ok(Self::view(&slot))
    }
}
