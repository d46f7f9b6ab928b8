//! The ClickHouse backend: Loupe's storage contract (`loupe_backend`'s
//! [`SpanWriter`] and [`SpanReader`]) on a ClickHouse server or cluster,
//! for installations that outgrow one machine. docs/CLICKHOUSE.md is the
//! operator's page (schema of both profiles, what works, what does not yet).
//!
//! - [`ClickHouseStore::connect`] checks the config, asks the server its
//!   version to pick the schema profile (`schema.rs`: modern, or legacy for
//!   ClickHouse 18.16) and creates the database and tables when missing.
//! - Writes (`writer.rs`) read the stored versions a batch touches, merge
//!   them with the embedded store's rules (`Span::merge_from`, the run
//!   context) and insert whole rows under higher versions into a
//!   `ReplacingMergeTree`; scans (`read.rs`) say `FINAL`, lookups by id
//!   (`latest.rs`) keep the newest version of the few spans they read.
//! - `Plan`s compile to SQL text (`sql.rs`) with the contract's semantics;
//!   the contract suite (`crates/loupe/tests/it/clickhouse.rs`) runs the
//!   same cases here and on the embedded store and compares the answers.
//! - `stream.rs` streams an answer (exports) as Arrow batches, one
//!   window of rows per SELECT; `scan.rs` streams a project's spans as
//!   rows of the embedded schema for the SQL engine above the backend.
//! - `timelines.rs` folds a session's or user's spans into run summaries
//!   with the embedded store's fold.
//! - `client.rs` speaks HTTP (port 8123) with the workspace's `reqwest`,
//!   reading every answer under a size bound.
//!
//! What this crate must not do: see protocol types (it takes `loupe_model`
//! spans and `Plan`s only), serve network traffic, or read a row outside
//! the project a call names (every SELECT filters `project = …`: scans
//! through `sql::Compiler::scoped_from`, lookups in `latest.rs`; the one
//! call that names none, `recent_spans`, lists the projects and then reads
//! each through `scoped_from`).

#![warn(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use futures::FutureExt;
use futures::future::BoxFuture;
use loupe_backend::{
    BatchStream, OffsetPage, PageQuery, Plan, QueryLimits, QueryResult, ScanRequest, SpanPage,
    SpanQuery, SpanReader, SpanWriter, StoreError, TracesQuery, WriteAck,
};
use loupe_model::{ProjectId, Span};

mod client;
mod config;
mod error;
mod hours;
mod latest;
mod read;
mod row;
mod scan;
mod schema;
mod sql;
mod stream;
mod timelines;
mod writer;

pub use config::{ClickHouseConfig, ProfileChoice, Resolved};
pub use error::Error;
pub use hours::{HourAsk, HourTierSlice, HourTierStart};
pub use loupe_rollup::RollupConfig;
pub use loupe_rollup::hours::HourDim;
pub use schema::Profile;

use crate::client::Client;
use crate::schema::Layout;

/// The ClickHouse backend. Cheap to clone (shared state).
#[derive(Clone)]
pub struct ClickHouseStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: Client,
    layout: Layout,
    server_version: String,
    /// One gate per project: a read-merge-write must not interleave with
    /// another on the same spans, and spans of different projects never
    /// meet (keys and traces are per project), so those run side by side.
    write_gates: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last row version handed out.
    last_version: AtomicU64,
    insert_batch_rows: usize,
    stream_batch_rows: u64,
    /// Told of every stored change ([`ClickHouseStore::on_change`]).
    on_change: std::sync::OnceLock<ChangeHook>,
    /// The hour tier writes count in (`hours.rs`); `None` before the
    /// database keeps one.
    tier: std::sync::RwLock<Option<hours::TierRecord>>,
}

/// One row a write changed: its stored version before (`None` for a span
/// new to the database) and the version now stored.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The merged row before this write.
    pub old: Option<&'a Span>,
    /// The row version `old` was stored under: versions are the wall
    /// clock's nanoseconds when written, so a version older than a
    /// process's start was written before it.
    pub old_version: Option<u64>,
    /// The merged row this write stored.
    pub new: &'a Span,
}

/// What [`ClickHouseStore::on_change`] calls once a project's part of an
/// append is stored: the spans it received and the rows they changed.
pub type ChangeHook = Box<dyn Fn(usize, &[Change<'_>]) + Send + Sync>;

impl Inner {
    fn compiler(&self) -> sql::Compiler<'_> {
        sql::Compiler {
            layout: &self.layout,
        }
    }
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("table", &self.inner.layout.table())
            .field("profile", &self.inner.layout.profile)
            .field("server_version", &self.inner.server_version)
            .finish()
    }
}

impl ClickHouseStore {
    /// Checks the config, probes the server's version, picks the schema
    /// profile and creates what is missing. Errors: [`Error::Config`] for a
    /// bad setting or a profile the server cannot hold,
    /// [`Error::Unreachable`] / [`Error::Server`] when the server fails.
    #[tracing::instrument(name = "clickhouse.connect", skip_all)]
    pub async fn connect(config: ClickHouseConfig) -> Result<Self, Error> {
        let config = Resolved::new(config)?;
        let client = Client::new(&config)?;
        let (server_version, probed) = schema::probe(&client).await?;
        client
            .execute(
                &format!("CREATE DATABASE IF NOT EXISTS {}", config.database),
                false,
            )
            .await?;
        // A database keeps the profile it was made with (a server upgraded
        // since still reads its tables).
        let recorded = schema::recorded(&client, &config.database).await?;
        let profile = match (config.profile, recorded, probed) {
            (ProfileChoice::Auto, Some(r), _) => r,
            (ProfileChoice::Modern, Some(Profile::Legacy), _)
            | (ProfileChoice::Legacy, Some(Profile::Modern), _) => {
                return Err(Error::Config(format!(
                    "store.clickhouse.profile: the database {} was made with the {} profile",
                    config.database,
                    recorded.map_or("other", Profile::as_str)
                )));
            }
            (ProfileChoice::Auto, None, p) => p,
            (ProfileChoice::Legacy, _, _) => Profile::Legacy,
            (ProfileChoice::Modern, _, Profile::Modern) => Profile::Modern,
            (ProfileChoice::Modern, _, Profile::Legacy) => {
                return Err(Error::Config(format!(
                    "store.clickhouse.profile: the server is ClickHouse {server_version}, \
                     too old for the modern profile (use `legacy` or `auto`)"
                )));
            }
        };
        let client = match profile {
            // 18.16 merges every part a `FINAL` read selects at once, with a
            // read buffer per column and part (1 MiB by default): 150 day
            // partitions already passed its memory limit. 64 KiB buffers
            // make that 16 times smaller (docs/CLICKHOUSE.md, "Legacy").
            Profile::Legacy => client.with_settings(&[("max_read_buffer_size", "65536")]),
            Profile::Modern => client,
        };
        let layout = Layout {
            profile,
            database: client.database().to_owned(),
            cluster: config.cluster.clone(),
            retention_days: config.retention_days,
            replicated: config.replicated,
        };
        schema::ensure(&client, &layout).await?;
        tracing::info!(
            server = %server_version,
            profile = profile.as_str(),
            table = %layout.table(),
            "clickhouse backend ready"
        );
        let store = Self {
            inner: Arc::new(Inner {
                client,
                layout,
                server_version,
                write_gates: std::sync::Mutex::new(std::collections::HashMap::new()),
                last_version: AtomicU64::new(0),
                insert_batch_rows: config.insert_batch_rows,
                stream_batch_rows: config.stream_batch_rows as u64,
                on_change: std::sync::OnceLock::new(),
                tier: std::sync::RwLock::new(None),
            }),
        };
        // Every writer keeps the database's tier, asked to or not.
        let recorded = store.inner.recorded_tier().await?;
        *store
            .inner
            .tier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = recorded;
        Ok(store)
    }

    /// Makes the database's hour tier count every span under `config`'s
    /// labels and hour tags, rebuilding it from the stored spans when it
    /// was kept with others, left incomplete or never made (`hours.rs`).
    /// Call before this process writes. Aggregate plans over whole hours
    /// are then answered from it ([`ClickHouseStore::hour_slice`]).
    ///
    /// # Errors
    /// ClickHouse's; the tier then stays incomplete and is not read.
    #[tracing::instrument(name = "clickhouse.keep_hour_tier", skip_all)]
    pub async fn keep_hour_tier(&self, config: &RollupConfig) -> Result<HourTierStart, Error> {
        self.inner.keep_hour_tier(config).await
    }

    /// The hours `[first_hour, end_hour)` of `project`'s tier, its entries
    /// that meet `ask.required` summed over every dimension but
    /// `ask.dims`; `None` when the database keeps no complete tier (or a
    /// count came out negative: the tier is then recorded incomplete, as
    /// after a missed write).
    ///
    /// # Errors
    /// ClickHouse's, as every read's.
    pub async fn hour_slice(
        &self,
        project: &ProjectId,
        first_hour: i64,
        end_hour: i64,
        ask: &HourAsk<'_>,
    ) -> Result<Option<HourTierSlice>, Error> {
        self.inner
            .hour_slice(project, first_hour, end_hour, ask)
            .await
    }

    /// The labels and hour tags of the database's hour tier while it is
    /// complete (what [`ClickHouseStore::hour_slice`] answers with).
    pub fn hour_tier(&self) -> Option<(Vec<String>, Vec<String>)> {
        self.inner
            .tier()
            .filter(|t| t.complete)
            .map(|t| (t.labels, t.tags))
    }

    /// The retention the tables were made with, in days (0: none).
    pub fn retention_days(&self) -> u32 {
        self.inner.layout.retention_days
    }

    /// The schema profile in use.
    pub fn profile(&self) -> Profile {
        self.inner.layout.profile
    }

    /// The server's `version()` text.
    pub fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    /// Every span that ended at or after `since_ns` (or, without an end,
    /// started then), of every project, without its payloads, handed to
    /// `each`; the number read. What in-memory rollups are warmed from
    /// after a restart (`loupe serve`'s alert windows).
    ///
    /// # Errors
    /// ClickHouse's, as every read's.
    pub async fn recent_spans(
        &self,
        since_ns: i64,
        each: &mut (dyn FnMut(&Span) + Send),
    ) -> Result<u64, Error> {
        self.inner.recent(since_ns, each).await
    }

    /// Calls `hook` once ClickHouse stored a project's part of an append,
    /// with the spans received and every row changed, each with its
    /// version before: what `loupe serve` keeps its
    /// `/metrics` series and alert windows from (the embedded store does
    /// the same under its write lock). Set once; a second hook is refused.
    ///
    /// # Errors
    /// The hook given back when one is set already.
    pub fn on_change(&self, hook: ChangeHook) -> Result<(), ChangeHook> {
        self.inner.on_change.set(hook)
    }

    /// The statements that make the schema (what `connect` ran), for docs
    /// and operators who create tables by hand.
    pub fn ddl(&self) -> Vec<String> {
        self.inner.layout.ddl()
    }

    /// Merges and stores spans (see `writer.rs`). Errors:
    /// [`Error::Invalid`] for a span without a valid project or span id
    /// (nothing of the batch is written), server errors otherwise (some
    /// projects of the batch may be written; a retry is safe).
    pub async fn append(&self, spans: Vec<Span>) -> Result<WriteAck, Error> {
        self.inner.append(spans).await
    }

    /// Every span whose trace id or run id is `id`, in tree order.
    pub async fn trace(&self, project: &ProjectId, id: &str) -> Result<Vec<Span>, Error> {
        self.inner.trace(project, id).await
    }

    /// Runs a plan (see `sql.rs` for the semantics).
    pub async fn query(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        self.inner.query(project, plan, limits).await
    }
}

impl SpanWriter for ClickHouseStore {
    fn append(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
        async move { self.inner.append(spans).await.map_err(StoreError::from) }.boxed()
    }

    fn append_copied(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
        async move {
            self.inner
                .append_copied(spans)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }
}

impl SpanReader for ClickHouseStore {
    fn trace<'a>(
        &'a self,
        project: &'a ProjectId,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Span>, StoreError>> {
        async move {
            self.inner
                .trace(project, id)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn traces<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a TracesQuery,
    ) -> BoxFuture<'a, Result<Option<Vec<Span>>, StoreError>> {
        async move {
            self.inner
                .traces(project, query)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn list(&self, query: SpanQuery) -> BoxFuture<'_, Result<SpanPage, StoreError>> {
        async move { self.inner.list(query).await.map_err(StoreError::from) }.boxed()
    }

    fn page(&self, query: PageQuery) -> BoxFuture<'_, Result<OffsetPage, StoreError>> {
        async move { self.inner.page(query).await.map_err(StoreError::from) }.boxed()
    }

    fn query<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        async move {
            self.inner
                .query(project, plan, limits)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn session_runs<'a>(
        &'a self,
        project: &'a ProjectId,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<loupe_backend::RunSummary>, StoreError>> {
        async move {
            self.inner
                .session_runs(project, session_id)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn user_summary<'a>(
        &'a self,
        project: &'a ProjectId,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<loupe_backend::UserSummary>, StoreError>> {
        async move {
            self.inner
                .user_summary(project, user_id)
                .await
                .map_err(StoreError::from)
        }
        .boxed()
    }

    fn scan<'a>(
        &'a self,
        project: &'a ProjectId,
        request: ScanRequest,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        let inner = self.inner.clone();
        async move { inner.scan(project, request).await.map_err(StoreError::from) }.boxed()
    }

    fn query_stream<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        _limits: QueryLimits,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        let inner = self.inner.clone();
        let (project, plan) = (project.clone(), plan.clone());
        async move {
            // A plan the backend cannot run fails here, before any batch.
            inner
                .compiler()
                .plan(
                    &project,
                    &plan,
                    sql::Window {
                        offset: 0,
                        count: 1,
                    },
                )
                .map_err(StoreError::from)?;
            Ok(inner.stream(project, plan))
        }
        .boxed()
    }
}
