//! Safe cleanup ("relief") of Dify's execution tables once Loupe holds
//! their rows.
//!
//! A [`Cleaner`] walks `workflow_runs` (scopes `nodes`, `runs`) or
//! `messages` (scope `messages`) by `(created_at, id)` keyset, older than
//! the cutoff and never past the sync checkpoint's position. Per batch:
//! 1. runs `running`/`paused`/`scheduled`, or in the checkpoint's open set
//!    (messages `paused`, open, or of an open run), are skipped as open;
//! 2. the node executions (or feedback) are read in a read-only transaction
//!    and every run (message) is verified against the store (module `verify`):
//!    rows that are not held completely are skipped and reported;
//! 3. one short transaction with `SET LOCAL lock_timeout` and
//!    `statement_timeout` locks the verified runs (`FOR UPDATE`), re-reads
//!    their digests (a row changed since verification is skipped) and
//!    deletes children first, in Dify's order (dify-internals §5).
//!
//! A lock or statement timeout retries the batch with exponential backoff
//! a bounded number of times, then skips it with a report line. A batch
//! slower than the latency target makes the cleaner sleep in proportion
//! and shrink the batch. The position is saved after every batch in
//! `dify-cleanup.json` ([`progress`]), so an interrupted run resumes.

mod batch;
mod delete;
pub(crate) use delete::avg_row_bytes;
mod family;
pub mod progress;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use loupe_backend::SpanReader;
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::Error;
use crate::schema;
use crate::sync::{Checkpoint, Position, database_identity};
pub use progress::{CleanupProgress, ScopeProgress};
use verify::{MessageRow, RunRow};

/// The nil uuid: the first keyset position at a time.
const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Skipped rows listed in the report at most (the counts are complete).
const MAX_LISTED: usize = 1000;

/// What a cleanup deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Node executions and their offload rows of old runs; runs stay.
    Nodes,
    /// Whole runs: offloads, node executions, app logs (trigger logs and
    /// pauses where the tables exist), then the runs.
    Runs,
    /// Chat messages: the related rows Dify deletes with them, feedback,
    /// then the messages. Conversations stay.
    Messages,
}

impl Scope {
    /// The scope's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Nodes => "nodes",
            Scope::Runs => "runs",
            Scope::Messages => "messages",
        }
    }

    /// The table walked by keyset.
    fn keyset_table(self) -> &'static str {
        match self {
            Scope::Nodes | Scope::Runs => "workflow_runs",
            Scope::Messages => "messages",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "nodes" => Ok(Scope::Nodes),
            "runs" => Ok(Scope::Runs),
            "messages" => Ok(Scope::Messages),
            other => Err(Error::Invalid(format!(
                "scope {other:?}: use nodes, runs or messages"
            ))),
        }
    }
}

/// Settings of a cleanup.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// `postgres://user:password@host:port/database`.
    pub dsn: String,
    /// Loupe project the synced spans are in, for rows no rule of
    /// [`Self::projects`] names.
    pub project: String,
    /// The sync's `[[dify.projects]]` rules: each row is verified in the
    /// project the sync wrote it to.
    pub projects: Vec<crate::projects::ProjectRule>,
    /// The data directory (holds `dify-sync.json` and `dify-cleanup.json`).
    pub data_dir: PathBuf,
    /// Only rows created longer ago than this are deleted.
    pub older_than: Duration,
    /// What is deleted.
    pub scope: Scope,
    /// Runs (or messages) per batch at most.
    pub batch: usize,
    /// `lock_timeout` of every cleanup transaction.
    pub lock_timeout: Duration,
    /// `statement_timeout` of every cleanup transaction.
    pub statement_timeout: Duration,
    /// Latency target of a batch; slower batches pause and shrink.
    pub max_batch_latency: Duration,
    /// Verify and count, delete nothing, leave the progress file alone.
    pub dry_run: bool,
    /// Stop after this many batches (the rest is left for a resume).
    pub max_batches: Option<u64>,
    /// Retries of a batch after a lock or statement timeout.
    pub lock_retries: u32,
    /// First retry delay; doubled at each retry.
    pub retry_backoff: Duration,
    /// Who runs it, as the cleanup history records it (`cli`, `serve`,
    /// `console`).
    pub source: String,
    /// Verify each batch with one store read (default). `false` reads
    /// run by run, as before batch verification: for the benchmark's
    /// comparison only.
    pub batch_verify: bool,
    /// Set to ask a running cleanup to stop: it is checked before each
    /// batch, so the batch in flight finishes (or rolls back) and the run
    /// ends with `stopped`, to be resumed like an interrupted one.
    pub stop: Option<Arc<AtomicBool>>,
}

impl CleanupConfig {
    /// Defaults: scope `runs`, batch 500, lock timeout 2 s, statement
    /// timeout 30 s, latency target 500 ms, 3 retries from 250 ms.
    pub fn new(dsn: impl Into<String>, data_dir: impl Into<PathBuf>, older_than: Duration) -> Self {
        Self {
            dsn: dsn.into(),
            project: ProjectId::DEFAULT.to_owned(),
            projects: Vec::new(),
            data_dir: data_dir.into(),
            older_than,
            scope: Scope::Runs,
            batch: 500,
            lock_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(30),
            max_batch_latency: Duration::from_millis(500),
            dry_run: false,
            max_batches: None,
            lock_retries: 3,
            retry_backoff: Duration::from_millis(250),
            source: "cli".into(),
            batch_verify: true,
            stop: None,
        }
    }
}

/// A run or message left in place, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// The run or message id.
    pub id: String,
    /// `unverified`, `locked` or `open`.
    pub reason: String,
    /// Details for the operator.
    pub detail: String,
}

/// The latency of one cheap query, the newest rows of the walked table by
/// its `(created_at, id)` index (what Dify's log pages ask), measured
/// before the first batch (`baseline_ms`, the median of three) and after
/// every batch: how much the cleanup slowed Dify's database down.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DbLatency {
    /// Median before the first batch, ms.
    pub baseline_ms: f64,
    /// Probes after batches.
    pub samples: u64,
    /// Median of the probes, ms.
    pub p50_ms: f64,
    /// 95th percentile of the probes, ms.
    pub p95_ms: f64,
    /// Slowest probe, ms.
    pub max_ms: f64,
}

impl DbLatency {
    fn of(baseline: &[f64], probes: &[f64]) -> Self {
        let q = |v: &[f64], q: f64| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() - 1) as f64 * q).round() as usize;
            v[i.min(v.len() - 1)]
        };
        Self {
            baseline_ms: q(baseline, 0.5),
            samples: probes.len() as u64,
            p50_ms: q(probes, 0.5),
            p95_ms: q(probes, 0.95),
            max_ms: probes.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// What a cleanup did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanupReport {
    /// The scope.
    pub scope: String,
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Rows created before this (naive UTC) were candidates.
    pub cutoff: String,
    /// Rows deleted (would be deleted in a dry run) per table.
    pub deleted: BTreeMap<String, u64>,
    /// Runs (messages) verified against the store.
    pub verified: u64,
    /// Runs (messages) skipped because the store does not hold them.
    pub skipped_unverified: u64,
    /// Runs (messages) skipped after lock or statement timeouts.
    pub skipped_locked: u64,
    /// Runs (messages) skipped because they are still open.
    pub skipped_open: u64,
    /// The first skipped runs (messages), with reasons.
    pub skipped: Vec<Skip>,
    /// Dify's query latency while the cleanup ran (see [`DbLatency`]).
    pub db_latency: DbLatency,
    /// Time spent in Dify's database (page reads, child reads, the delete
    /// transactions), in milliseconds: what the latency target paces.
    pub db_ms: u64,
    /// Time spent verifying against Loupe's store, in milliseconds.
    pub verify_ms: u64,
    /// Average row size per table, in bytes.
    pub avg_row_bytes: BTreeMap<String, f64>,
    /// Estimated bytes freed (deleted rows × average row size). PostgreSQL
    /// reuses the space after VACUUM; it returns it to the OS only after
    /// `VACUUM FULL` or `pg_repack`.
    pub estimated_bytes_freed: u64,
    /// Batches processed.
    pub batches: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
    /// Whether this run resumed an interrupted one.
    pub resumed: bool,
    /// Whether every candidate was handled.
    pub complete: bool,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

impl CleanupReport {
    fn skip(&mut self, id: &str, reason: &str, detail: impl Into<String>) {
        match reason {
            "unverified" => self.skipped_unverified += 1,
            "locked" => self.skipped_locked += 1,
            _ => self.skipped_open += 1,
        }
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(Skip {
                id: id.to_owned(),
                reason: reason.to_owned(),
                detail: detail.into(),
            });
        }
    }

    /// Total rows deleted over all tables.
    pub fn total_deleted(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// A progress event of a cleanup.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Runs (messages) handled so far.
    pub done: u64,
    /// Estimated candidates of this run.
    pub total: u64,
    /// Rows deleted so far (all tables).
    pub deleted: u64,
}

/// A progress callback.
pub type TickFn = Arc<dyn Fn(&Tick) + Send + Sync>;

/// Cleans one synced Dify database.
pub struct Cleaner {
    client: Client,
    store: Arc<dyn SpanReader>,
    /// Where the sync wrote each row.
    projects: crate::projects::Projects,
    config: CleanupConfig,
    checkpoint: Checkpoint,
    progress: CleanupProgress,
    steps: Vec<delete::Step>,
    on_tick: Option<TickFn>,
    /// Where the time of the current run went.
    timing: Timing,
    /// `dify-cleanup.lock`, held while a deleting cleanup lives, so two
    /// (the CLI beside a console-started one) never share the progress
    /// file. Released when the cleaner is dropped.
    _lock: Option<std::fs::File>,
}

/// The file a deleting cleanup locks in the data directory.
pub const LOCK_FILE: &str = "dify-cleanup.lock";

/// Takes the cleanup lock of `data_dir`, failing at once when another
/// cleanup (this process's or another's) holds it.
fn take_lock(data_dir: &std::path::Path) -> Result<std::fs::File, Error> {
    let path = data_dir.join(LOCK_FILE);
    let io = |e: std::io::Error| Error::Checkpoint {
        path: path.clone(),
        reason: e.to_string(),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Refused(format!(
            "another cleanup is running on {} (it holds {LOCK_FILE}); wait for it to finish \
             or stop it (the console's Dify page, or Ctrl-C on the CLI)",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Time spent per side, summed over a run's batches.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    /// In Dify's database.
    db: Duration,
    /// Verifying against the store.
    store: Duration,
}

impl Cleaner {
    /// Connects, checks the schema and privileges, and refuses a database
    /// this data directory has not synced.
    pub async fn connect(config: CleanupConfig, store: Arc<dyn SpanReader>) -> Result<Self, Error> {
        if config.batch == 0 {
            return Err(Error::Invalid("batch must be at least 1".into()));
        }
        if config.older_than.is_zero() {
            return Err(Error::Invalid("older-than must be positive".into()));
        }
        ProjectId::new(config.project.clone())
            .map_err(|e| Error::Invalid(format!("project: {e}")))?;
        let projects = crate::projects::Projects::new(&config.project, &config.projects)?;
        let client = schema::connect(&config.dsn).await?;
        // Session defaults, so even the size estimates and counts outside
        // the batch transactions never wait long on a lock.
        let (lock, stmt) = (
            format!("{}ms", config.lock_timeout.as_millis().max(1)),
            format!("{}ms", config.statement_timeout.as_millis().max(1)),
        );
        client
            .execute(
                "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)",
                &[&lock, &stmt],
            )
            .await
            .map_err(|e| Error::Connect(crate::db_message(&e)))?;
        schema::check(&client, "SELECT").await?;
        let identity = database_identity(&client).await?;
        let cp_path = Checkpoint::path(&config.data_dir);
        let checkpoint = Checkpoint::load(&cp_path)?;
        match &checkpoint.database {
            None => {
                return Err(Error::Refused(format!(
                    "{} has no sync checkpoint: this database was never synced into this data \
                     directory (run `loupe dify sync --once` first, with the same --data-dir)",
                    config.data_dir.display()
                )));
            }
            Some(db) if *db != identity => {
                return Err(Error::Refused(format!(
                    "the sync checkpoint {} belongs to Dify database {db}, not {identity}",
                    cp_path.display()
                )));
            }
            Some(_) => {}
        }
        let table = config.scope.keyset_table();
        if !checkpoint.tables.contains_key(table) {
            return Err(Error::Refused(format!(
                "the sync has not read {table} yet: nothing is verified; run `loupe dify sync --once` first"
            )));
        }
        let present = delete::present(&client)
            .await
            .map_err(|e| Error::query("pg_attribute", &e))?;
        let steps = delete::steps(config.scope, &present);
        if !config.dry_run {
            let tables: BTreeSet<&str> = steps.iter().map(|s| s.table).collect();
            let mut denied = Vec::new();
            for t in tables {
                let row = client
                    .query_one(
                        "SELECT has_table_privilege(quote_ident($1), 'DELETE')",
                        &[&t],
                    )
                    .await
                    .map_err(|e| Error::query("has_table_privilege", &e))?;
                if !row.get::<_, bool>(0) {
                    denied.push(t);
                }
            }
            if !denied.is_empty() {
                return Err(Error::Permission(format!(
                    "cleanup needs DELETE on {denied:?}; grant it or use --dry-run"
                )));
            }
        }
        // Before the progress file is read: the holder may be writing it.
        let lock = if config.dry_run {
            None
        } else {
            Some(take_lock(&config.data_dir)?)
        };
        let progress_path = CleanupProgress::path(&config.data_dir);
        let mut progress = CleanupProgress::load(&progress_path)?;
        match &progress.database {
            Some(db) if *db != identity => {
                return Err(Error::Refused(format!(
                    "{} belongs to Dify database {db}, not {identity}",
                    progress_path.display()
                )));
            }
            Some(_) => {}
            None => {
                progress.version = 1;
                progress.database = Some(identity);
            }
        }
        Ok(Self {
            client,
            store,
            projects,
            config,
            checkpoint,
            progress,
            steps,
            on_tick: None,
            timing: Timing::default(),
            _lock: lock,
        })
    }

    /// Sets the progress callback.
    pub fn on_tick(&mut self, f: TickFn) {
        self.on_tick = Some(f);
    }

    fn save_progress(&self) -> Result<(), Error> {
        self.progress
            .save(&CleanupProgress::path(&self.config.data_dir))
    }

    fn sync_position(&self, table: &str) -> Result<Option<(NaiveDateTime, String)>, Error> {
        self.checkpoint
            .tables
            .get(table)
            .map(|p| Ok((p.time()?, p.id.clone())))
            .transpose()
    }

    /// Runs the cleanup to the end (or to `max_batches`, or until the
    /// keyset table itself stays locked), and appends what it did (or why
    /// it failed) to the cleanup history (`dify-cleanups.json`). A history
    /// that cannot be written is logged; the report is still returned.
    pub async fn run(&mut self) -> Result<CleanupReport, Error> {
        let started_at = chrono::Utc::now();
        let mut report = CleanupReport::default();
        let result = self.run_into(&mut report).await;
        if result.is_err() {
            report.elapsed_ms = millis(
                (chrono::Utc::now() - started_at)
                    .to_std()
                    .unwrap_or_default(),
            );
        }
        let record = crate::health::cleanups::CleanupRecord {
            started_at: started_at.to_rfc3339(),
            finished_at: chrono::Utc::now().to_rfc3339(),
            source: self.config.source.clone(),
            older_than: humantime::format_duration(self.config.older_than).to_string(),
            error: result.as_ref().err().map(ToString::to_string),
            report: report.clone(),
        };
        if let Err(e) =
            crate::health::cleanups::CleanupHistory::append(&self.config.data_dir, record)
        {
            tracing::warn!(error = %e, "dify cleanup: cannot record the run in the cleanup history");
        }
        result.map(|()| report)
    }

    /// The run, filling `report` as it goes (so a failed run still says
    /// what it did before failing).
    async fn run_into(&mut self, report: &mut CleanupReport) -> Result<(), Error> {
        let started = Instant::now();
        let scope = self.config.scope;
        let cutoff = chrono::Utc::now().naive_utc()
            - chrono::TimeDelta::from_std(self.config.older_than)
                .map_err(|e| Error::Invalid(format!("older-than: {e}")))?;
        *report = CleanupReport {
            scope: scope.name().to_owned(),
            dry_run: self.config.dry_run,
            cutoff: Position::new(cutoff, "").at,
            ..CleanupReport::default()
        };
        let table = scope.keyset_table();
        let upto = self
            .sync_position(table)?
            .ok_or_else(|| Error::Refused(format!("the sync has not read {table} yet")))?;
        let feedback_upto = self.sync_position("message_feedbacks")?;
        let resume = if self.config.dry_run {
            None
        } else {
            self.progress.scopes.get(scope.name()).cloned()
        };
        report.resumed = resume.is_some();
        let mut cursor = match &resume {
            Some(p) => (p.position.time()?, p.position.id.clone()),
            None => (chrono::DateTime::UNIX_EPOCH.naive_utc(), NIL.to_owned()),
        };
        let started_at = resume
            .as_ref()
            .map(|p| p.started_at.clone())
            .unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
        let mut batches_total = resume.as_ref().map_or(0, |p| p.batches);
        for s in &self.steps {
            if !report.avg_row_bytes.contains_key(s.table)
                && let Ok(avg) = delete::avg_row_bytes(&self.client, s.table).await
            {
                report.avg_row_bytes.insert(s.table.to_owned(), avg);
            }
        }
        let total = batch::estimate(&self.client, table, &cursor, cutoff, &upto)
            .await
            .unwrap_or(0);
        self.timing = Timing::default();
        let mut baseline = Vec::new();
        for _ in 0..3 {
            if let Some(ms) = probe(&self.client, table).await {
                baseline.push(ms);
            }
        }
        let mut probes = Vec::new();
        let mut size = self.config.batch;
        let mut done = 0u64;
        let target = self.config.max_batch_latency;
        loop {
            if self.config.max_batches.is_some_and(|m| report.batches >= m) {
                report.stopped = Some(format!("stopped after {} batches", report.batches));
                break;
            }
            if self
                .config
                .stop
                .as_ref()
                .is_some_and(|s| s.load(Ordering::Acquire))
            {
                report.stopped = Some(format!(
                    "stopped on request after {} batches",
                    report.batches
                ));
                break;
            }
            let limit = i64::try_from(size).unwrap_or(i64::MAX);
            let bounds = batch::Bounds {
                after: (cursor.0, cursor.1.as_str()),
                cutoff,
                upto: (upto.0, upto.1.as_str()),
                limit,
            };
            let db_before = self.timing.db;
            let fu = feedback_upto.as_ref();
            let outcome = match scope {
                Scope::Nodes | Scope::Runs => self.batch::<RunRow>(&bounds, fu, report).await?,
                Scope::Messages => self.batch::<MessageRow>(&bounds, fu, report).await?,
            };
            // Only the database's share paces the cleanup: verification
            // against Loupe's store costs Dify nothing.
            let latency = self.timing.db.saturating_sub(db_before);
            let (read, last) = match outcome {
                batch::Outcome::Done { read, last } => (read, last),
                batch::Outcome::Empty => {
                    report.complete = true;
                    break;
                }
                batch::Outcome::Stuck(reason) => {
                    report.stopped = Some(reason);
                    break;
                }
            };
            report.batches += 1;
            batches_total += 1;
            if let Some(ms) = probe(&self.client, table).await {
                probes.push(ms);
            }
            done += read as u64;
            cursor = (last.time()?, last.id.clone());
            if !self.config.dry_run {
                self.progress.scopes.insert(
                    scope.name().to_owned(),
                    ScopeProgress {
                        position: last,
                        batches: batches_total,
                        started_at: started_at.clone(),
                    },
                );
                self.save_progress()?;
            }
            if let Some(f) = &self.on_tick {
                f(&Tick {
                    done,
                    total: total.max(done),
                    deleted: report.total_deleted(),
                });
            }
            if read < size {
                report.complete = true;
                break;
            }
            size = adapt(size, self.config.batch, latency, target).await;
        }
        if report.complete && !self.config.dry_run {
            self.progress.scopes.remove(scope.name());
            self.save_progress()?;
        }
        report.estimated_bytes_freed = report
            .deleted
            .iter()
            .map(|(t, n)| report.avg_row_bytes.get(t).copied().unwrap_or(0.0) * *n as f64)
            .sum::<f64>()
            .round() as u64;
        report.elapsed_ms = millis(started.elapsed());
        report.db_ms = millis(self.timing.db);
        report.verify_ms = millis(self.timing.store);
        report.db_latency = DbLatency::of(&baseline, &probes);
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One latency probe of Dify's database: the newest rows of `table` by its
/// `(created_at, id)` index, in ms; `None` when it failed (a timeout is
/// not a reason to stop the cleanup).
async fn probe(client: &Client, table: &'static str) -> Option<f64> {
    let sql = format!("SELECT id FROM {table} ORDER BY created_at DESC, id DESC LIMIT 20");
    let t0 = Instant::now();
    client.query(&sql, &[]).await.ok()?;
    Some(t0.elapsed().as_secs_f64() * 1000.0)
}

/// The adaptive pause: a batch slower than `target` sleeps in proportion
/// to the overshoot (at most 10 s) and shrinks the next batch by the same
/// ratio; a batch under half the target grows it back towards `max`.
async fn adapt(size: usize, max: usize, latency: Duration, target: Duration) -> usize {
    if target.is_zero() {
        return size;
    }
    if latency > target {
        let ratio = latency.as_secs_f64() / target.as_secs_f64();
        let pause = latency.mul_f64(ratio - 1.0).min(Duration::from_secs(10));
        tracing::debug!(?latency, ?pause, "dify cleanup: batch over latency target");
        tokio::time::sleep(pause).await;
        ((size as f64 / ratio).floor() as usize).max(1)
    } else if latency < target / 2 {
        (size + size / 2 + 1).min(max)
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_batches_shrink_and_fast_ones_grow_back() {
        let ms = Duration::from_millis;
        assert_eq!(adapt(400, 500, ms(8), ms(2)).await, 100);
        assert_eq!(adapt(1, 500, ms(8), ms(2)).await, 1);
        assert_eq!(adapt(100, 500, ms(1), ms(10)).await, 151);
        assert_eq!(adapt(400, 500, ms(1), ms(10)).await, 500);
        assert_eq!(adapt(100, 500, ms(7), ms(10)).await, 100);
    }

    #[test]
    fn scopes_parse_by_name() {
        for s in [Scope::Nodes, Scope::Runs, Scope::Messages] {
            assert_eq!(s.name().parse::<Scope>().expect("parses"), s);
        }
        assert!("all".parse::<Scope>().is_err());
    }
}
