//! Shared test harness: a fresh database per test on the PostgreSQL started
//! by `scripts/peers/postgres.sh`, Dify 1.14.1's DDL, a store in a temp dir,
//! and row builders.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use loupe_backend::SpanReader;
use loupe_dify::sync::{SyncConfig, Syncer};
use loupe_model::{ProjectId, Span};
use loupe_normalise::tags::TagRules;
use loupe_pipeline::Pipeline;
use loupe_store::{Store, StoreConfig};
use tokio_postgres::{Client, NoTls};

/// The DDL of Dify 1.14.1's tables.
pub const DDL: &str = loupe_dify::ddl::DIFY_1_14_1;

/// The server URL; fails (never skips) when the peer is not started.
pub fn pg_url() -> String {
    std::env::var("LOUPE_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "LOUPE_TEST_PG_URL is not set: run `eval \"$(bash scripts/peers/postgres.sh)\"` first \
             (it starts PostgreSQL 15 on 127.0.0.1 and prints the variable)"
        )
    })
}

/// A client on `dsn`.
pub async fn client(dsn: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .expect("connect to test postgres");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A test database and a store.
pub struct Env {
    /// DSN of the test's own database.
    pub dsn: String,
    /// A client on it (the "Dify" side).
    pub db: Client,
    /// The store.
    pub store: Store,
    /// Temp dir holding the data dir.
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Creates a database with Dify's tables and an empty store.
    pub async fn new() -> Self {
        let url = pg_url();
        let admin = client(&url).await;
        let name = format!("loupe_t_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let (base, _) = url.rsplit_once('/').expect("url has a database");
        let dsn = format!("{base}/{name}");
        let db = client(&dsn).await;
        db.batch_execute(DDL).await.expect("dify ddl");
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(dir.path().to_owned());
        Self {
            dsn,
            db,
            store,
            dir,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sync settings for this env (no lag, batch 100).
    pub fn config(&self) -> SyncConfig {
        let mut c = SyncConfig::new(self.dsn.clone(), self.data_dir());
        c.lag = std::time::Duration::ZERO;
        c.batch = 100;
        c
    }

    /// A syncer writing to the env's store through a pipeline without tag
    /// rules.
    pub async fn syncer(&self, config: SyncConfig) -> Syncer {
        self.syncer_with_tags(config, TagRules::default()).await
    }

    /// A pipeline without tag rules into the env's store.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::new(Arc::new(self.store.clone()), TagRules::default())
    }

    /// A syncer writing to the env's store through a pipeline with `tags`.
    pub async fn syncer_with_tags(&self, config: SyncConfig, tags: TagRules) -> Syncer {
        let pipeline = Pipeline::new(Arc::new(self.store.clone()), tags);
        Syncer::connect(config, pipeline)
            .await
            .expect("syncer connects")
    }

    /// Every span of a trace/run.
    pub async fn trace(&self, id: &str) -> Vec<Span> {
        self.store
            .trace(&ProjectId::default_project(), id)
            .await
            .expect("trace read")
    }

    /// One span by id, searched in the trace `trace`.
    pub async fn span(&self, trace: &str, id: &str) -> Span {
        self.trace(trace)
            .await
            .into_iter()
            .find(|s| s.span_id == id)
            .unwrap_or_else(|| panic!("span {id} not in trace {trace}"))
    }

    /// Row count of a table.
    pub async fn count(&self, table: &str) -> i64 {
        self.db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0)
    }
}

/// Opens a store in `dir/store`.
pub fn open_store(dir: PathBuf) -> Store {
    Store::open(
        StoreConfig {
            data_dir: dir.join("store"),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("store opens")
}

/// A new random uuid text.
pub fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub const TENANT: &str = "c620c103-fd6c-4fef-a6d5-07deeb985b15";
pub const APP: &str = "4f3a79b4-ea93-49ef-80c2-fad1a9001a14";
pub const WORKFLOW: &str = "37059656-d740-4323-8168-9c55beede6c8";
pub const END_USER: &str = "9a0d6a59-51d9-4c0b-a8a5-4a3e3f1c0d11";

/// Inserts the app and the end user every run refers to.
pub async fn seed_app(db: &Client) {
    db.batch_execute(&format!(
        "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{APP}', '{TENANT}', 'Probe app', 'workflow');
         INSERT INTO end_users (id, tenant_id, app_id, type, session_id, external_user_id)
           VALUES ('{END_USER}', '{TENANT}', '{APP}', 'service-api', 'probe-user-1', 'ext-1');"
    ))
    .await
    .expect("seed app");
}

/// Inserts a workflow run. `status` and `created_at` as given (SQL literal).
pub async fn insert_run(db: &Client, id: &str, status: &str, created_at: &str) {
    let finished = if matches!(status, "running" | "paused") {
        "NULL".to_owned()
    } else {
        format!("({created_at})::timestamp + interval '87 milliseconds'")
    };
    db.batch_execute(&format!(
        "INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
           graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
           created_by_role, created_by, created_at, finished_at, exceptions_count)
         VALUES ('{id}', '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow', 'app-run', '2026-11-24 18:54:52.149589',
           '{{}}', '{{\"query\": \"hello langfuse\"}}', '{status}', '{{\"status_code\": 200}}', NULL, 0.087, 0, 4,
           'end_user', '{END_USER}', {created_at}, {finished}, 0)"
    ))
    .await
    .expect("insert run");
}

/// Inserts a node execution of `run`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_node(
    db: &Client,
    run: &str,
    id: &str,
    index: i32,
    node_type: &str,
    title: &str,
    status: &str,
    created_at: &str,
    metadata: Option<&str>,
) {
    let meta = metadata.map_or("NULL".to_owned(), |m| format!("'{m}'"));
    let finished = if matches!(status, "running" | "paused") {
        "NULL".to_owned()
    } else {
        format!("({created_at})::timestamp + interval '1 millisecond'")
    };
    db.batch_execute(&format!(
        "INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
           workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title,
           inputs, process_data, outputs, status, error, elapsed_time, execution_metadata,
           created_at, created_by_role, created_by, finished_at)
         VALUES ('{id}', '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow-run', '{run}', {index}, NULL,
           '{id}', 'node-{title}', '{node_type}', '{title}', '{{\"in\": {index}}}', NULL,
           '{{\"out\": {index}}}', '{status}', NULL, 0.001, {meta}, {created_at}, 'end_user',
           '{END_USER}', {finished})"
    ))
    .await
    .expect("insert node");
}
