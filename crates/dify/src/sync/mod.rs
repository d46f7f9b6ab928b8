//! Read-only incremental sync of Dify's database through the ingest
//! [`Pipeline`] (tag rules apply to synced runs exactly as to pushed ones).
//!
//! One pass ([`Syncer::sync_once`]) runs, in order:
//! 1. new `workflow_runs` by `(created_at, id)` keyset, each batch with its
//!    node executions, offload marks and app logs (looked up by run id);
//!    with [`SyncConfig::storage_dir`] set, the full values of offloaded
//!    payloads are read from Dify's storage ([`offload`]) and replace the
//!    truncated columns;
//! 2. re-polls of runs still `running`/`paused` (the open set) until final,
//!    and of runs that finished less than [`SyncConfig::settle`] ago (Dify's
//!    Celery execution repository may commit node rows after the run row);
//! 3. new `messages` by keyset, then re-polls of open messages (streaming,
//!    paused, or belonging to an open run);
//! 4. `message_feedbacks` by `(updated_at, id)` (feedback changes in place).
//!
//! After each batch the spans are appended and, only once the store has
//! acknowledged them, the checkpoint is saved: a restart resumes after the
//! last acknowledged row (no gap); a batch re-read after a crash is
//! harmless because writes merge by span id.

pub mod checkpoint;
mod fetch;
pub mod offload;
pub mod status;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use loupe_model::Span;
use loupe_pipeline::Pipeline;
use tokio_postgres::Client;

use crate::Error;
use crate::map::{self, Lookups};
use crate::schema::{self, Message, WorkflowRun};
pub use checkpoint::{Checkpoint, Position};

/// The nil uuid: the first keyset position at a time.
const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Settings of a sync.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// `postgres://user:password@host:port/database`.
    pub dsn: String,
    /// Loupe project the spans go to when no rule of [`Self::projects`]
    /// names their app or workspace.
    pub project: String,
    /// Rows of these apps or workspaces go to other projects.
    pub projects: Vec<crate::projects::ProjectRule>,
    /// Rows per keyset batch.
    pub batch: usize,
    /// Rows per second at most (backfill rate limit); `None` = unlimited.
    pub rate: Option<f64>,
    /// Where history starts when a table has no checkpoint yet.
    pub backfill_from: Option<NaiveDateTime>,
    /// Rows younger than this are left for the next pass, so a row whose
    /// transaction commits after a younger one is not skipped.
    pub lag: Duration,
    /// The data directory (holds `dify-sync.json`).
    pub data_dir: PathBuf,
    /// Dify's local storage root (`OPENDAL_FS_ROOT`, or the legacy
    /// `STORAGE_LOCAL_PATH`). When set, offloaded node payloads are read
    /// from `<storage_dir>/<upload_files.key>` and replace the truncated
    /// columns, and `upload_files` becomes a required table. `None` = only
    /// mark truncated payloads.
    pub storage_dir: Option<PathBuf>,
    /// Runs that finished less than this ago (Dify's naive-UTC
    /// `finished_at` against this host's clock) stay in the re-poll set, so
    /// node rows committed after the run row are still read. Default 60 s.
    pub settle: Duration,
    /// Largest offloaded file read (bytes); larger ones stay truncated.
    /// Default [`offload::DEFAULT_MAX_BYTES`] (64 MiB).
    pub offload_max_bytes: u64,
    /// Rows created before this (UTC) fall outside the store's retention:
    /// written, they would be dropped at the next maintenance pass. `None`
    /// (the store keeps everything) = no floor.
    pub retention_floor: Option<NaiveDateTime>,
    /// What a pass does with rows older than [`Self::retention_floor`].
    pub older_than_retention: OlderThanRetention,
}

/// What a sync does with history older than the store's retention window
/// (`older_than_retention` in `[dify]`, `--older-than-retention` on the
/// CLI). Either way it says so before reading: a backfill is never
/// written and then silently deleted by retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OlderThanRetention {
    /// Skip them: the checkpoint moves to the floor, the pass logs a
    /// warning and counts them in [`SyncReport::skipped`]. The default.
    #[default]
    Skip,
    /// Refuse the pass with [`Error::OlderThanRetention`], naming the rows
    /// and the settings to change.
    Stop,
}

impl std::str::FromStr for OlderThanRetention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "stop" => Ok(Self::Stop),
            other => Err(format!("unknown choice {other:?}: use skip or stop")),
        }
    }
}

impl SyncConfig {
    /// Defaults: batch 500, no rate limit, all history, 5 s lag, no storage
    /// directory (offloaded payloads only marked).
    pub fn new(dsn: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            dsn: dsn.into(),
            project: loupe_model::ProjectId::DEFAULT.to_owned(),
            projects: Vec::new(),
            batch: 500,
            rate: None,
            backfill_from: None,
            lag: Duration::from_secs(5),
            settle: Duration::from_secs(60),
            data_dir: data_dir.into(),
            storage_dir: None,
            offload_max_bytes: offload::DEFAULT_MAX_BYTES,
            retention_floor: None,
            older_than_retention: OlderThanRetention::Skip,
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Rows read per table.
    pub rows: HashMap<&'static str, u64>,
    /// Spans written.
    pub spans: u64,
    /// Runs in the re-poll set after the pass (open, or finished within
    /// `settle`).
    pub open_runs: usize,
    /// Rows not synced per table because they are older than the store's
    /// retention ([`OlderThanRetention::Skip`]).
    pub skipped: HashMap<&'static str, u64>,
}

/// A progress event: `done` of about `total` rows of `table` read.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Table being read.
    pub table: &'static str,
    /// Rows read so far in this pass (all tables).
    pub done: u64,
    /// Estimated rows of this pass (runs and messages after the checkpoint).
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Syncs one Dify database into one store.
pub struct Syncer {
    client: Client,
    /// The only write path: tags (and later redaction), then the store.
    pipeline: Pipeline,
    config: SyncConfig,
    /// Where each row goes ([`SyncConfig::project`] and `projects`).
    projects: crate::projects::Projects,
    checkpoint: Checkpoint,
    apps: Lookups,
    progress: Option<ProgressFn>,
    done: u64,
    total: u64,
    limiter: Option<Instant>,
    status: Arc<status::SyncStatus>,
}

/// `name/oid` of the connected database.
pub(crate) async fn database_identity(client: &Client) -> Result<String, Error> {
    let row = client
        .query_one(
            "SELECT current_database()::text, oid::int8 FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| Error::query("pg_database", &e))?;
    Ok(format!(
        "{}/{}",
        row.get::<_, String>(0),
        row.get::<_, i64>(1)
    ))
}

impl Syncer {
    /// Connects, checks the schema and read permissions (plus
    /// `upload_files` and that the storage directory is a directory when
    /// `storage_dir` is set), loads the checkpoint and checks that it
    /// belongs to this database.
    pub async fn connect(config: SyncConfig, pipeline: Pipeline) -> Result<Self, Error> {
        if config.batch == 0 {
            return Err(Error::Invalid("batch must be at least 1".into()));
        }
        let projects = crate::projects::Projects::new(&config.project, &config.projects)?;
        if let Some(dir) = &config.storage_dir {
            let is_dir = tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir());
            if !is_dir {
                return Err(Error::Invalid(format!(
                    "storage directory {} is not a directory: point it at Dify's storage root \
                     (OPENDAL_FS_ROOT or STORAGE_LOCAL_PATH, the directory holding upload_files/)",
                    dir.display()
                )));
            }
        }
        let client = schema::connect(&config.dsn).await?;
        if config.storage_dir.is_some() {
            let mut required = schema::REQUIRED.to_vec();
            required.push(schema::UPLOAD_FILES);
            schema::check_tables(&client, "SELECT", &required).await?;
        } else {
            schema::check(&client, "SELECT").await?;
        }
        let identity = database_identity(&client).await?;
        let path = Checkpoint::path(&config.data_dir);
        let mut checkpoint = Checkpoint::load(&path)?;
        match &checkpoint.database {
            Some(db) if *db != identity => {
                return Err(Error::Invalid(format!(
                    "{} belongs to Dify database {db}, not {identity}: use another --data-dir",
                    path.display()
                )));
            }
            Some(_) => {}
            None => {
                checkpoint.version = 1;
                checkpoint.database = Some(identity);
            }
        }
        Ok(Self {
            client,
            pipeline,
            projects,
            config,
            checkpoint,
            apps: Lookups::default(),
            progress: None,
            done: 0,
            total: 0,
            limiter: None,
            status: Arc::default(),
        })
    }

    /// The counters `run` updates after every pass (for `/metrics`).
    pub fn status(&self) -> Arc<status::SyncStatus> {
        self.status.clone()
    }

    /// Sets the progress callback.
    pub fn on_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    /// The current checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    fn position(&self, table: &str) -> Result<(NaiveDateTime, String), Error> {
        match self.checkpoint.tables.get(table) {
            Some(p) => Ok((p.time()?, p.id.clone())),
            None => Ok((
                self.config
                    .backfill_from
                    .unwrap_or(chrono::DateTime::UNIX_EPOCH.naive_utc()),
                NIL.to_owned(),
            )),
        }
    }

    fn save(&self) -> Result<(), Error> {
        self.checkpoint
            .save(&Checkpoint::path(&self.config.data_dir))
    }

    /// Appends, retrying while the store is overloaded.
    async fn append(&self, spans: Vec<Span>) -> Result<u64, Error> {
        write_all(&self.pipeline, spans).await
    }

    /// Sleeps so that the rows read stay under the configured rate.
    async fn pace(&mut self, rows: usize, report: &mut SyncReport, table: &'static str) {
        *report.rows.entry(table).or_default() += rows as u64;
        self.done += rows as u64;
        if let Some(p) = &self.progress {
            p(&Progress {
                table,
                done: self.done,
                total: self.total.max(self.done),
            });
        }
        let Some(rate) = self.config.rate.filter(|r| *r > 0.0) else {
            return;
        };
        let now = Instant::now();
        let due = self.limiter.unwrap_or(now) + Duration::from_secs_f64(rows as f64 / rate);
        self.limiter = Some(due.max(now));
        if due > now {
            tokio::time::sleep(due - now).await;
        }
    }

    /// Refreshes the apps and end users the rows refer to.
    async fn lookups(
        &mut self,
        app_ids: &[String],
        user_ids: &[String],
        conversation_ids: &[String],
    ) -> Result<Lookups, Error> {
        let missing: Vec<String> = unique(
            app_ids
                .iter()
                .filter(|a| !self.apps.apps.contains_key(*a))
                .cloned(),
        );
        if !missing.is_empty() {
            for app in fetch::apps_by_id(&self.client, &missing).await? {
                self.apps.apps.insert(app.id.clone(), app);
            }
        }
        let mut out = Lookups {
            apps: self.apps.apps.clone(),
            ..Lookups::default()
        };
        let users = unique(user_ids.iter().cloned());
        if !users.is_empty() {
            for u in fetch::users_by_id(&self.client, &users).await? {
                out.users.insert(u.id.clone(), u);
            }
        }
        let convs = unique(conversation_ids.iter().cloned());
        if !convs.is_empty() {
            for c in fetch::conversations_by_id(&self.client, &convs).await? {
                out.conversations.insert(c.id.clone(), c);
            }
        }
        Ok(out)
    }

    /// Maps runs with their nodes, offloads and app logs.
    async fn run_spans(&mut self, runs: &[WorkflowRun]) -> Result<Vec<Span>, Error> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        let nodes = fetch::nodes_of(&self.client, &ids).await?;
        let node_count = nodes.len();
        let node_ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        let storage_dir = self.config.storage_dir.as_deref();
        let mut offloads = if node_ids.is_empty() {
            Vec::new()
        } else {
            fetch::offloads_of(&self.client, &node_ids, storage_dir.is_some()).await?
        };
        if let Some(dir) = storage_dir {
            offload::restore(dir, self.config.offload_max_bytes, &mut offloads).await;
        }
        let logs = fetch::app_logs_of(&self.client, &ids).await?;
        let apps: Vec<String> = runs.iter().map(|r| r.app_id.clone()).collect();
        let users: Vec<String> = runs
            .iter()
            .filter(|r| r.created_by_role != "account")
            .map(|r| r.created_by.clone())
            .collect();
        let lookups = self.lookups(&apps, &users, &[]).await?;
        // Each run's nodes, in the query's order (by run, then `index`),
        // moved rather than copied: their payloads are large.
        let mut by_run: HashMap<String, Vec<schema::NodeExecution>> = HashMap::new();
        for n in nodes {
            if let Some(run) = &n.workflow_run_id {
                by_run.entry(run.clone()).or_default().push(n);
            }
        }
        let mut spans = Vec::with_capacity(runs.len() + node_count);
        for run in runs {
            let project = self.projects.of(Some(&run.tenant_id), &run.app_id);
            spans.push(map::run_span(project, run, logs.get(&run.id), &lookups));
            let mine = by_run.remove(&run.id).unwrap_or_default();
            spans.extend(map::node_spans(project, run, mine, &offloads, &lookups));
        }
        Ok(spans)
    }

    async fn message_spans(&mut self, messages: &[Message]) -> Result<Vec<Span>, Error> {
        let run_ids = unique(messages.iter().filter_map(|m| m.workflow_run_id.clone()));
        let mut nodes_by_run: HashMap<String, Vec<String>> = HashMap::new();
        if !run_ids.is_empty() {
            for (run, node) in fetch::node_ids_of(&self.client, &run_ids).await? {
                nodes_by_run.entry(run).or_default().push(node);
            }
        }
        let apps: Vec<String> = messages.iter().map(|m| m.app_id.clone()).collect();
        let users: Vec<String> = messages
            .iter()
            .filter_map(|m| m.from_end_user_id.clone())
            .collect();
        let convs: Vec<String> = messages.iter().map(|m| m.conversation_id.clone()).collect();
        let lookups = self.lookups(&apps, &users, &convs).await?;
        let mut spans = Vec::new();
        for m in messages {
            let project = self.projects.of(lookups.tenant_of(&m.app_id), &m.app_id);
            let nodes = m
                .workflow_run_id
                .as_ref()
                .and_then(|r| nodes_by_run.get(r))
                .map(Vec::as_slice)
                .unwrap_or_default();
            spans.extend(map::message_spans(project, m, nodes, &lookups));
        }
        Ok(spans)
    }

    /// Whether `r` stays in the re-poll set: open, or finished within
    /// `settle`.
    fn keep_polling(&self, r: &WorkflowRun) -> bool {
        let now = chrono::Utc::now().naive_utc();
        r.is_open()
            || r.finished_at.is_some_and(|f| {
                (now - f).to_std().is_ok_and(|age| age < self.config.settle) || f > now
            })
    }

    fn message_open(&self, m: &Message) -> bool {
        let streaming = m.answer.is_empty()
            && m.error.is_none()
            && m.provider_response_latency == 0.0
            && chrono::Utc::now().naive_utc() - m.created_at < chrono::TimeDelta::hours(1);
        m.status == "paused"
            || streaming
            || m.workflow_run_id
                .as_ref()
                .is_some_and(|r| self.checkpoint.open_runs.contains(r))
    }

    /// Moves the keyset start of runs and messages up to the retention
    /// floor when history before it has not been read yet: skipped (and
    /// counted, and logged) or refused per [`SyncConfig::older_than_retention`].
    async fn apply_retention_floor(&mut self, report: &mut SyncReport) -> Result<(), Error> {
        let Some(floor) = self.config.retention_floor else {
            return Ok(());
        };
        for table in ["workflow_runs", "messages"] {
            let (at, id) = self.position(table)?;
            if at >= floor {
                continue;
            }
            let rows = fetch::count_between(&self.client, table, (at, &id), floor).await?;
            if rows > 0 {
                match self.config.older_than_retention {
                    OlderThanRetention::Stop => {
                        return Err(Error::OlderThanRetention {
                            table,
                            rows,
                            floor: floor.and_utc().to_rfc3339(),
                        });
                    }
                    OlderThanRetention::Skip => {
                        tracing::warn!(
                            table,
                            rows,
                            floor = %floor.and_utc().to_rfc3339(),
                            "dify sync: skipping rows older than the store's retention (set \
                             [store] retention_days = 0 or longer to keep them)"
                        );
                        report.skipped.insert(table, rows);
                    }
                }
            }
            self.checkpoint
                .tables
                .insert(table.into(), Position::new(floor, NIL));
        }
        self.save()
    }

    /// Reads `table` after its checkpoint until caught up. Each page is
    /// read and mapped while the page before it is written (the store
    /// applies a write on its own thread), so the database, the mapping
    /// and the store work at once; at most two pages are in memory. The
    /// checkpoint moves past a page only once its write is acknowledged.
    async fn backfill(&mut self, table: Paged, report: &mut SyncReport) -> Result<(), Error> {
        let pipeline = self.pipeline.clone();
        let (at, id) = self.position(table.name())?;
        let mut next = self.read_page(table, Position::new(at, id)).await?;
        while let Some(page) = next.take() {
            let Page {
                last,
                rows,
                spans,
                open,
                settled,
            } = page;
            let full = rows >= self.config.batch;
            let after = last.clone();
            let read_ahead = async {
                if full {
                    self.read_page(table, after).await
                } else {
                    Ok(None)
                }
            };
            let (written, read) = tokio::join!(write_all(&pipeline, spans), read_ahead);
            report.spans += written?;
            let polled = match table {
                Paged::Runs => &mut self.checkpoint.open_runs,
                Paged::Messages => &mut self.checkpoint.open_messages,
            };
            polled.extend(open);
            for id in &settled {
                polled.remove(id);
            }
            self.checkpoint.tables.insert(table.name().into(), last);
            self.save()?;
            self.pace(rows, report, table.name()).await;
            next = read?;
        }
        Ok(())
    }

    /// The page of `table` after `after`, mapped to spans (`None`: no rows).
    async fn read_page(&mut self, table: Paged, after: Position) -> Result<Option<Page>, Error> {
        let batch = i64::try_from(self.config.batch).unwrap_or(i64::MAX);
        let lag = self.config.lag.as_secs_f64();
        let after = (after.time()?, after.id.as_str());
        let (last, rows, spans, polled) = match table {
            Paged::Runs => {
                let runs = fetch::runs_after(&self.client, after, batch, lag).await?;
                let Some(last) = runs.last() else {
                    return Ok(None);
                };
                let last = Position::new(last.created_at, last.id.clone());
                let spans = self.run_spans(&runs).await?;
                let polled: Vec<(String, bool)> = runs
                    .iter()
                    .map(|r| (r.id.clone(), self.keep_polling(r)))
                    .collect();
                (last, runs.len(), spans, polled)
            }
            Paged::Messages => {
                let messages = fetch::messages_after(&self.client, after, batch, lag).await?;
                let Some(last) = messages.last() else {
                    return Ok(None);
                };
                let last = Position::new(last.created_at, last.id.clone());
                let spans = self.message_spans(&messages).await?;
                let polled: Vec<(String, bool)> = messages
                    .iter()
                    .map(|m| (m.id.clone(), self.message_open(m)))
                    .collect();
                (last, messages.len(), spans, polled)
            }
        };
        let (open, settled) = polled.into_iter().partition::<Vec<_>, _>(|(_, open)| *open);
        Ok(Some(Page {
            last,
            rows,
            spans,
            open: open.into_iter().map(|(id, _)| id).collect(),
            settled: settled.into_iter().map(|(id, _)| id).collect(),
        }))
    }

    /// One pass over every table until caught up.
    #[tracing::instrument(name = "dify.sync_pass", skip_all, fields(project = %self.config.project))]
    pub async fn sync_once(&mut self) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        self.apply_retention_floor(&mut report).await?;
        self.apps = Lookups::default();
        self.done = 0;
        self.total = self.estimate().await.unwrap_or(0);
        let batch = i64::try_from(self.config.batch).unwrap_or(i64::MAX);
        let lag = self.config.lag.as_secs_f64();

        // 1. New runs.
        self.backfill(Paged::Runs, &mut report).await?;

        // 2. Re-poll open runs.
        let open: Vec<String> = self.checkpoint.open_runs.iter().cloned().collect();
        for ids in open.chunks(self.config.batch) {
            let runs = fetch::runs_by_id(&self.client, ids).await?;
            let spans = self.run_spans(&runs).await?;
            report.spans += self.append(spans).await?;
            let still: HashSet<&str> = runs
                .iter()
                .filter(|r| self.keep_polling(r))
                .map(|r| r.id.as_str())
                .collect();
            for id in ids {
                if !still.contains(id.as_str()) {
                    self.checkpoint.open_runs.remove(id);
                }
            }
            self.save()?;
            self.pace(runs.len(), &mut report, "workflow_runs").await;
        }

        // 3. Messages, then open messages.
        self.backfill(Paged::Messages, &mut report).await?;
        let open: Vec<String> = self.checkpoint.open_messages.iter().cloned().collect();
        for ids in open.chunks(self.config.batch) {
            let messages = fetch::messages_by_id(&self.client, ids).await?;
            let spans = self.message_spans(&messages).await?;
            report.spans += self.append(spans).await?;
            let still: HashSet<String> = messages
                .iter()
                .filter(|m| self.message_open(m))
                .map(|m| m.id.clone())
                .collect();
            for id in ids {
                if !still.contains(id) {
                    self.checkpoint.open_messages.remove(id);
                }
            }
            self.save()?;
            self.pace(messages.len(), &mut report, "messages").await;
        }

        // 4. Feedback, by update time.
        loop {
            let (at, id) = self.position("message_feedbacks")?;
            let rows = fetch::feedback_after(&self.client, (at, &id), batch, lag).await?;
            let Some(last) = rows.last() else { break };
            let last = Position::new(last.updated_at, last.id.clone());
            let apps: Vec<String> = rows.iter().map(|f| f.app_id.clone()).collect();
            let users: Vec<String> = rows
                .iter()
                .filter_map(|f| f.from_end_user_id.clone())
                .collect();
            let lookups = self.lookups(&apps, &users, &[]).await?;
            let spans: Vec<Span> = rows
                .iter()
                .map(|f| {
                    let project = self.projects.of(lookups.tenant_of(&f.app_id), &f.app_id);
                    map::feedback_span(project, f, &lookups)
                })
                .collect();
            report.spans += self.append(spans).await?;
            self.checkpoint
                .tables
                .insert("message_feedbacks".into(), last);
            self.save()?;
            self.pace(rows.len(), &mut report, "message_feedbacks")
                .await;
            if rows.len() < self.config.batch {
                break;
            }
        }
        report.open_runs = self.checkpoint.open_runs.len();
        // Also records the database identity on a pass that read nothing.
        self.save()?;
        Ok(report)
    }

    /// Rows of runs and messages after the checkpoint (for the progress bar).
    pub async fn estimate(&self) -> Result<u64, Error> {
        let (at, id) = self.position("workflow_runs")?;
        let runs = fetch::count_after(&self.client, "workflow_runs", (at, &id)).await?;
        let (at, id) = self.position("messages")?;
        let messages = fetch::count_after(&self.client, "messages", (at, &id)).await?;
        Ok(runs + messages + self.checkpoint.open_runs.len() as u64)
    }

    /// Syncs every `interval` until `stop` turns true; a failed pass is
    /// logged and retried at the next tick (reconnecting when needed).
    pub async fn run(mut self, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if self.client.is_closed() {
                match schema::connect(&self.config.dsn).await {
                    Ok(c) => self.client = c,
                    Err(e) => tracing::warn!(error = %e, "dify sync: reconnect failed"),
                }
            }
            // A backfill pass can take hours: stop in the middle of it. The
            // checkpoint is saved only after each acknowledged batch, so the
            // pass dropped here resumes after its last saved batch (a batch
            // acknowledged but not checkpointed is re-read and merges by id).
            let started = std::time::Instant::now();
            let pass = tokio::select! {
                r = self.sync_once() => r,
                _ = stop.wait_for(|s| *s) => {
                    tracing::info!("dify sync stopped mid-pass; it resumes from the checkpoint");
                    return;
                }
            };
            self.status.record_pass(pass.as_ref(), started.elapsed());
            match pass {
                Ok(r) if r.spans > 0 => {
                    tracing::info!(spans = r.spans, open_runs = r.open_runs, "dify sync pass")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "dify sync pass failed; retrying next interval")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

/// The tables read by keyset pages whose rows stay re-polled while open.
#[derive(Clone, Copy)]
enum Paged {
    Runs,
    Messages,
}

impl Paged {
    fn name(self) -> &'static str {
        match self {
            Paged::Runs => "workflow_runs",
            Paged::Messages => "messages",
        }
    }
}

/// A page read and mapped, waiting for its write.
struct Page {
    /// Its last row: where the checkpoint moves once it is written.
    last: Position,
    /// Rows read.
    rows: usize,
    spans: Vec<Span>,
    /// Ids to re-poll on later passes (open, or finished within `settle`).
    open: Vec<String>,
    /// Ids that need no more re-polling.
    settled: Vec<String>,
}

/// Writes `spans` in chunks, waiting while the store is overloaded; the
/// chunks are moved, not copied (the pipeline gives a refused one back).
async fn write_all(pipeline: &Pipeline, spans: Vec<Span>) -> Result<u64, Error> {
    const CHUNK: usize = 2000;
    let n = spans.len() as u64;
    let mut spans = spans.into_iter();
    loop {
        let chunk: Vec<Span> = spans.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            return Ok(n);
        }
        pipeline
            .write_waiting(chunk, Duration::from_millis(50))
            .await?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use loupe_normalise::tags::TagRules;
    use loupe_store::{Store, StoreConfig};

    use super::*;

    /// A backfill page written while the store has no room waits for the
    /// flush and then lands whole and once: the refused chunk comes back
    /// from the store, so the sync keeps no copy of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_written_to_a_full_store_waits_and_lands_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            StoreConfig {
                data_dir: dir.path().to_owned(),
                max_unflushed_bytes: 1,
                ..StoreConfig::default()
            },
            loupe_rollup::RollupConfig::default(),
        )
        .expect("store opens");
        let pipeline = Pipeline::new(Arc::new(store.clone()), TagRules::default());
        let span = |id: &str| {
            let mut s = Span::new("p", id);
            s.trace_id = Some("t".into());
            s.start_time = Some(1_767_225_600_000_000_000);
            s
        };
        write_all(&pipeline, vec![span("first")])
            .await
            .expect("room for one");
        let page: Vec<Span> = (0..2_500).map(|i| span(&format!("s{i}"))).collect();
        let writing = tokio::spawn({
            let pipeline = pipeline.clone();
            async move { write_all(&pipeline, page).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!writing.is_finished(), "written over max_unflushed_bytes");
        assert_eq!(store.stats().part_rows, 0);
        store.flush_all().await.expect("flush");
        // Each chunk of 2,000 fills the store again: flush until done.
        let written = loop {
            if writing.is_finished() {
                break writing.await.expect("task").expect("written");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            store.flush_all().await.expect("flush");
        };
        assert_eq!(written, 2_500);
        store.flush_all().await.expect("flush");
        assert_eq!(store.stats().part_rows, 2_501);
    }
}
