//! Typed rows of the Dify tables Loupe reads (dify-internals §1), the SQL
//! that selects them, and the schema check run at connect.
//!
//! Uuids are read as text (`id::text`), `numeric` prices as `float8` and
//! `json` columns as text, so the rows need no extra decimal or uuid types.
//! Timestamps are `timestamp without time zone` holding UTC (§1.0): they are
//! read as [`NaiveDateTime`] and converted with [`utc_ns`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, Row};

use crate::{EXPECTED_DIFY_VERSION, Error};

/// Nanoseconds since the epoch of a naive-UTC Dify timestamp.
pub fn utc_ns(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Reads `column` of a `table` row by name. A column that is missing from
/// the row or holds a type this connector does not read (Dify's schema
/// drifted) is [`Error::Column`] naming `table.column`, never a panic.
pub fn col<'a, T: FromSql<'a>>(
    r: &'a Row,
    table: &'static str,
    column: &'static str,
) -> Result<T, Error> {
    r.try_get(column).map_err(|e| {
        let present = r.columns().iter().any(|c| c.name() == column);
        let reason = match std::error::Error::source(&e) {
            _ if !present => "missing".to_owned(),
            Some(source) => source.to_string(),
            None => e.to_string(),
        };
        Error::Column {
            column: format!("{table}.{column}"),
            reason,
            expected: EXPECTED_DIFY_VERSION,
        }
    })
}

/// Every table read, with the columns the connector needs.
pub const REQUIRED: &[(&str, &[&str])] = &[
    (
        "workflow_runs",
        &[
            "id",
            "tenant_id",
            "app_id",
            "workflow_id",
            "type",
            "triggered_from",
            "version",
            "inputs",
            "status",
            "outputs",
            "error",
            "elapsed_time",
            "total_tokens",
            "total_steps",
            "created_by_role",
            "created_by",
            "created_at",
            "finished_at",
            "exceptions_count",
        ],
    ),
    (
        "workflow_node_executions",
        &[
            "id",
            "tenant_id",
            "app_id",
            "workflow_id",
            "triggered_from",
            "workflow_run_id",
            "index",
            "predecessor_node_id",
            "node_execution_id",
            "node_id",
            "node_type",
            "title",
            "inputs",
            "process_data",
            "outputs",
            "status",
            "error",
            "elapsed_time",
            "execution_metadata",
            "created_at",
            "created_by_role",
            "created_by",
            "finished_at",
        ],
    ),
    (
        "workflow_node_execution_offload",
        &["id", "created_at", "node_execution_id", "type", "file_id"],
    ),
    (
        "workflow_app_logs",
        &[
            "id",
            "workflow_run_id",
            "created_from",
            "created_by_role",
            "created_by",
            "created_at",
        ],
    ),
    (
        "messages",
        &[
            "id",
            "app_id",
            "model_provider",
            "model_id",
            "conversation_id",
            "inputs",
            "query",
            "message_tokens",
            "answer",
            "answer_tokens",
            "provider_response_latency",
            "total_price",
            "currency",
            "status",
            "error",
            "message_metadata",
            "invoke_from",
            "from_source",
            "from_end_user_id",
            "from_account_id",
            "created_at",
            "updated_at",
            "agent_based",
            "workflow_run_id",
            "parent_message_id",
        ],
    ),
    (
        "conversations",
        &[
            "id",
            "app_id",
            "mode",
            "name",
            "from_end_user_id",
            "from_account_id",
            "created_at",
            "is_deleted",
        ],
    ),
    (
        "message_feedbacks",
        &[
            "id",
            "app_id",
            "conversation_id",
            "message_id",
            "rating",
            "content",
            "from_source",
            "from_end_user_id",
            "from_account_id",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "end_users",
        &[
            "id",
            "tenant_id",
            "app_id",
            "type",
            "external_user_id",
            "session_id",
            "created_at",
        ],
    ),
    ("apps", &["id", "tenant_id", "name", "mode"]),
];

/// The table names of [`REQUIRED`].
pub fn tables() -> Vec<&'static str> {
    REQUIRED.iter().map(|(t, _)| *t).collect()
}

/// `upload_files`, read (joined to the offload rows for the storage key)
/// only when the sync restores offloaded payloads (`storage_dir` set), so
/// it is required only then.
pub const UPLOAD_FILES: (&str, &[&str]) = ("upload_files", &["id", "key", "size"]);

/// Opens a connection (the driver task is spawned on the current runtime),
/// names the session `loupe-dify` and pins its time zone to UTC.
/// TLS as the DSN's `sslmode` says (see the `tls` module).
pub async fn connect(dsn: &str) -> Result<Client, Error> {
    let (dsn, verify) = crate::tls::split(dsn);
    let mut config: tokio_postgres::Config = dsn
        .parse()
        .map_err(|e: tokio_postgres::Error| Error::BadDsn(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(Error::BadDsn("no host given".into()));
    }
    config.application_name("loupe-dify");
    config.connect_timeout(std::time::Duration::from_secs(10));
    let tls = crate::tls::connector(&verify)?;
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| Error::Connect(crate::db_message(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "dify database connection closed");
        }
    });
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .map_err(|e| Error::Connect(crate::db_message(&e)))?;
    Ok(client)
}

/// Checks that every table and column of [`REQUIRED`] exists in the current
/// schema and that the login holds `privilege` (`SELECT`, `DELETE`) on each.
pub async fn check(client: &Client, privilege: &str) -> Result<(), Error> {
    check_tables(client, privilege, REQUIRED).await
}

/// [`check`] on the given tables and columns (e.g. [`REQUIRED`] plus
/// [`UPLOAD_FILES`]).
pub async fn check_tables(
    client: &Client,
    privilege: &str,
    required: &[(&str, &[&str])],
) -> Result<(), Error> {
    let names: Vec<String> = required.iter().map(|(t, _)| (*t).to_owned()).collect();
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r','p') \
             AND c.relname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&names],
        )
        .await
        .map_err(|e| Error::query("pg_attribute", &e))?;
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        let table = col(&row, "pg_attribute", "relname")?;
        found
            .entry(table)
            .or_default()
            .insert(col(&row, "pg_attribute", "attname")?);
    }
    let missing_tables: Vec<String> = names
        .iter()
        .filter(|t| !found.contains_key(*t))
        .cloned()
        .collect();
    if !missing_tables.is_empty() {
        return Err(Error::MissingTables {
            missing: missing_tables,
            expected: EXPECTED_DIFY_VERSION,
        });
    }
    let mut missing = Vec::new();
    for (table, columns) in required {
        let have = found.get(*table);
        for column in *columns {
            if !have.is_some_and(|h| h.contains(*column)) {
                missing.push(format!("{table}.{column}"));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::MissingColumns {
            missing,
            expected: EXPECTED_DIFY_VERSION,
        });
    }
    let mut denied = Vec::new();
    for table in &names {
        let row = client
            .query_one(
                "SELECT has_table_privilege(quote_ident($1), $2)",
                &[table, &privilege],
            )
            .await
            .map_err(|e| Error::query("has_table_privilege", &e))?;
        if !col::<bool>(&row, "has_table_privilege", "has_table_privilege")? {
            denied.push(table.clone());
        }
    }
    if !denied.is_empty() {
        return Err(Error::Permission(format!(
            "the login lacks {privilege} on {denied:?}; grant it (GRANT {privilege} ON ... TO <login>)"
        )));
    }
    Ok(())
}

/// A `workflow_runs` row (the `graph` copy is not read).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRun {
    /// Run id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// App.
    pub app_id: String,
    /// Workflow version row executed.
    pub workflow_id: String,
    /// `workflow` / `chat` / `rag-pipeline`.
    pub run_type: String,
    /// See dify-internals §2.5.
    pub triggered_from: String,
    /// `draft` or the published version string.
    pub version: String,
    /// JSON text of the inputs.
    pub inputs: Option<String>,
    /// Raw status.
    pub status: String,
    /// JSON text of the outputs.
    pub outputs: Option<String>,
    /// Error text.
    pub error: Option<String>,
    /// Seconds.
    pub elapsed_time: f64,
    /// Sum over the nodes (kept as an attribute, never as span tokens).
    pub total_tokens: i64,
    /// Node run steps.
    pub total_steps: Option<i32>,
    /// `account` / `end_user`.
    pub created_by_role: String,
    /// Account or end-user id.
    pub created_by: String,
    /// Run start (naive UTC).
    pub created_at: NaiveDateTime,
    /// Run end (naive UTC).
    pub finished_at: Option<NaiveDateTime>,
    /// Handled errors.
    pub exceptions_count: Option<i32>,
}

/// Columns selected for [`WorkflowRun`].
pub const RUN_COLUMNS: &str = "id::text, tenant_id::text, app_id::text, workflow_id::text, type, \
    triggered_from, version, inputs, status, outputs, error, elapsed_time, total_tokens, \
    total_steps, created_by_role, created_by::text, created_at, finished_at, exceptions_count";

impl WorkflowRun {
    /// Reads a row selected with [`RUN_COLUMNS`].
    pub fn from_row(r: &Row) -> Result<Self, Error> {
        const T: &str = "workflow_runs";
        Ok(Self {
            id: col(r, T, "id")?,
            tenant_id: col(r, T, "tenant_id")?,
            app_id: col(r, T, "app_id")?,
            workflow_id: col(r, T, "workflow_id")?,
            run_type: col(r, T, "type")?,
            triggered_from: col(r, T, "triggered_from")?,
            version: col(r, T, "version")?,
            inputs: col(r, T, "inputs")?,
            status: col(r, T, "status")?,
            outputs: col(r, T, "outputs")?,
            error: col(r, T, "error")?,
            elapsed_time: col(r, T, "elapsed_time")?,
            total_tokens: col(r, T, "total_tokens")?,
            total_steps: col(r, T, "total_steps")?,
            created_by_role: col(r, T, "created_by_role")?,
            created_by: col(r, T, "created_by")?,
            created_at: col(r, T, "created_at")?,
            finished_at: col(r, T, "finished_at")?,
            exceptions_count: col(r, T, "exceptions_count")?,
        })
    }

    /// Whether the run may still change (`running`, `paused`, `scheduled`).
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused" | "scheduled")
    }
}

/// A `workflow_node_executions` row.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeExecution {
    /// Node execution id (the span id everywhere).
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// App.
    pub app_id: String,
    /// Workflow.
    pub workflow_id: String,
    /// `single-step` / `workflow-run` / `rag-pipeline-run`.
    pub triggered_from: String,
    /// The run (NULL for single-step debug runs).
    pub workflow_run_id: Option<String>,
    /// Execution order within the run.
    pub index: i32,
    /// Graph id of the predecessor.
    pub predecessor_node_id: Option<String>,
    /// Graph node id.
    pub node_id: String,
    /// Raw node type.
    pub node_type: String,
    /// Node title.
    pub title: String,
    /// JSON text (maybe truncated, see offload).
    pub inputs: Option<String>,
    /// JSON text.
    pub process_data: Option<String>,
    /// JSON text (maybe truncated).
    pub outputs: Option<String>,
    /// Raw status.
    pub status: String,
    /// Error text.
    pub error: Option<String>,
    /// Seconds.
    pub elapsed_time: f64,
    /// JSON object text (§2.4).
    pub execution_metadata: Option<String>,
    /// Node start.
    pub created_at: NaiveDateTime,
    /// `account` / `end_user`.
    pub created_by_role: String,
    /// Node end.
    pub finished_at: Option<NaiveDateTime>,
}

/// Columns selected for [`NodeExecution`].
pub const NODE_COLUMNS: &str = "id::text, tenant_id::text, app_id::text, workflow_id::text, \
    triggered_from, workflow_run_id::text, index, predecessor_node_id, node_id, node_type, title, \
    inputs, process_data, outputs, status, error, elapsed_time, execution_metadata, created_at, \
    created_by_role, finished_at";

impl NodeExecution {
    /// Reads a row selected with [`NODE_COLUMNS`].
    pub fn from_row(r: &Row) -> Result<Self, Error> {
        const T: &str = "workflow_node_executions";
        Ok(Self {
            id: col(r, T, "id")?,
            tenant_id: col(r, T, "tenant_id")?,
            app_id: col(r, T, "app_id")?,
            workflow_id: col(r, T, "workflow_id")?,
            triggered_from: col(r, T, "triggered_from")?,
            workflow_run_id: col(r, T, "workflow_run_id")?,
            index: col(r, T, "index")?,
            predecessor_node_id: col(r, T, "predecessor_node_id")?,
            node_id: col(r, T, "node_id")?,
            node_type: col(r, T, "node_type")?,
            title: col(r, T, "title")?,
            inputs: col(r, T, "inputs")?,
            process_data: col(r, T, "process_data")?,
            outputs: col(r, T, "outputs")?,
            status: col(r, T, "status")?,
            error: col(r, T, "error")?,
            elapsed_time: col(r, T, "elapsed_time")?,
            execution_metadata: col(r, T, "execution_metadata")?,
            created_at: col(r, T, "created_at")?,
            created_by_role: col(r, T, "created_by_role")?,
            finished_at: col(r, T, "finished_at")?,
        })
    }
}

/// A `workflow_node_execution_offload` row: the value of `kind` was
/// truncated in the node row; the full JSON is the upload file `file_id`.
///
/// `key` and `size` come from `upload_files` (joined only when the sync
/// restores offloaded values); `full` and `error` are filled by the sync
/// after reading the file, so the mapping itself does no I/O.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Offload {
    /// The node execution.
    pub node_execution_id: String,
    /// `inputs` / `process_data` / `outputs`.
    pub kind: String,
    /// `upload_files.id` of the full value.
    pub file_id: String,
    /// `upload_files.key`: the storage key (`upload_files/{tenant}/{uuid}.json`);
    /// `None` when not read or when the `upload_files` row is gone.
    pub key: Option<String>,
    /// `upload_files.size` in bytes, as Dify recorded it.
    pub size: Option<i64>,
    /// The full JSON text read from storage; when set, it replaces the
    /// truncated column value.
    pub full: Option<String>,
    /// Why the full value could not be used (short reason), when a read
    /// was attempted and failed.
    pub error: Option<String>,
}

/// A `workflow_app_logs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct AppLog {
    /// Log id.
    pub id: String,
    /// The run.
    pub workflow_run_id: String,
    /// `service-api` / `web-app` / `installed-app`.
    pub created_from: String,
    /// Creator role.
    pub created_by_role: String,
    /// Creator.
    pub created_by: String,
}

/// A `messages` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// App.
    pub app_id: String,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Model.
    pub model_id: Option<String>,
    /// Conversation.
    pub conversation_id: String,
    /// JSON text of the inputs.
    pub inputs: String,
    /// User query.
    pub query: String,
    /// Prompt tokens.
    pub message_tokens: i32,
    /// Answer.
    pub answer: String,
    /// Completion tokens.
    pub answer_tokens: i32,
    /// Seconds.
    pub provider_response_latency: f64,
    /// Price.
    pub total_price: Option<f64>,
    /// Currency.
    pub currency: String,
    /// `normal` / `paused` / `error`.
    pub status: String,
    /// Error text.
    pub error: Option<String>,
    /// JSON text (usage, retriever resources).
    pub message_metadata: Option<String>,
    /// InvokeFrom.
    pub invoke_from: Option<String>,
    /// `api` / `console`.
    pub from_source: String,
    /// End user.
    pub from_end_user_id: Option<String>,
    /// Account.
    pub from_account_id: Option<String>,
    /// Start.
    pub created_at: NaiveDateTime,
    /// Last update.
    pub updated_at: NaiveDateTime,
    /// Agent app.
    pub agent_based: bool,
    /// The chatflow run, if any.
    pub workflow_run_id: Option<String>,
    /// Thread parent.
    pub parent_message_id: Option<String>,
}

/// Columns selected for [`Message`].
pub const MESSAGE_COLUMNS: &str = "id::text, app_id::text, model_provider, model_id, \
    conversation_id::text, inputs::text, query, message_tokens, answer, answer_tokens, \
    provider_response_latency, total_price::float8, currency, status, error, message_metadata, \
    invoke_from, from_source, from_end_user_id::text, from_account_id::text, created_at, \
    updated_at, agent_based, workflow_run_id::text, parent_message_id::text";

impl Message {
    /// Reads a row selected with [`MESSAGE_COLUMNS`].
    pub fn from_row(r: &Row) -> Result<Self, Error> {
        const T: &str = "messages";
        Ok(Self {
            id: col(r, T, "id")?,
            app_id: col(r, T, "app_id")?,
            model_provider: col(r, T, "model_provider")?,
            model_id: col(r, T, "model_id")?,
            conversation_id: col(r, T, "conversation_id")?,
            inputs: col(r, T, "inputs")?,
            query: col(r, T, "query")?,
            message_tokens: col(r, T, "message_tokens")?,
            answer: col(r, T, "answer")?,
            answer_tokens: col(r, T, "answer_tokens")?,
            provider_response_latency: col(r, T, "provider_response_latency")?,
            total_price: col(r, T, "total_price")?,
            currency: col(r, T, "currency")?,
            status: col(r, T, "status")?,
            error: col(r, T, "error")?,
            message_metadata: col(r, T, "message_metadata")?,
            invoke_from: col(r, T, "invoke_from")?,
            from_source: col(r, T, "from_source")?,
            from_end_user_id: col(r, T, "from_end_user_id")?,
            from_account_id: col(r, T, "from_account_id")?,
            created_at: col(r, T, "created_at")?,
            updated_at: col(r, T, "updated_at")?,
            agent_based: col(r, T, "agent_based")?,
            workflow_run_id: col(r, T, "workflow_run_id")?,
            parent_message_id: col(r, T, "parent_message_id")?,
        })
    }
}

/// A `conversations` row (the columns Loupe uses).
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Conversation id (the session id).
    pub id: String,
    /// App mode.
    pub mode: String,
    /// Conversation name.
    pub name: String,
    /// Soft-deleted.
    pub is_deleted: bool,
}

/// A `message_feedbacks` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// Feedback id (the score span id).
    pub id: String,
    /// App.
    pub app_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// The rated message.
    pub message_id: String,
    /// `like` / `dislike`.
    pub rating: String,
    /// Comment.
    pub content: Option<String>,
    /// `user` / `admin`.
    pub from_source: String,
    /// End user.
    pub from_end_user_id: Option<String>,
    /// Account.
    pub from_account_id: Option<String>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Updated (feedback changes in place).
    pub updated_at: NaiveDateTime,
}

/// Columns selected for [`Feedback`].
pub const FEEDBACK_COLUMNS: &str = "id::text, app_id::text, conversation_id::text, \
    message_id::text, rating, content, from_source, from_end_user_id::text, \
    from_account_id::text, created_at, updated_at";

impl Feedback {
    /// Reads a row selected with [`FEEDBACK_COLUMNS`].
    pub fn from_row(r: &Row) -> Result<Self, Error> {
        const T: &str = "message_feedbacks";
        Ok(Self {
            id: col(r, T, "id")?,
            app_id: col(r, T, "app_id")?,
            conversation_id: col(r, T, "conversation_id")?,
            message_id: col(r, T, "message_id")?,
            rating: col(r, T, "rating")?,
            content: col(r, T, "content")?,
            from_source: col(r, T, "from_source")?,
            from_end_user_id: col(r, T, "from_end_user_id")?,
            from_account_id: col(r, T, "from_account_id")?,
            created_at: col(r, T, "created_at")?,
            updated_at: col(r, T, "updated_at")?,
        })
    }
}

/// An `end_users` row (the columns Loupe uses).
#[derive(Debug, Clone, PartialEq)]
pub struct EndUser {
    /// End-user id.
    pub id: String,
    /// The `user` string API callers pass (Loupe's user id).
    pub session_id: String,
    /// `browser`, `service-api`, …
    pub user_type: String,
    /// External id.
    pub external_user_id: Option<String>,
}

/// An `apps` row (the columns Loupe uses).
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// App id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// App mode.
    pub mode: String,
}
