//! The read queries of the sync: keyset pages of the tables that have a
//! `(created_at, id)` index, and lookups by id (primary keys and the
//! `workflow_run_id` indexes) for everything hanging off a run or message.
//! Node executions are never scanned by time: that table has no
//! `created_at` index (dify-internals §1.2, §10).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use tokio_postgres::Client;

use crate::Error;
use crate::schema::{
    App, AppLog, Conversation, EndUser, FEEDBACK_COLUMNS, Feedback, MESSAGE_COLUMNS, Message,
    NODE_COLUMNS, NodeExecution, Offload, RUN_COLUMNS, WorkflowRun, col,
};

/// A keyset page of `table` after `(at, id)`, at most `limit` rows, only
/// rows older than `lag_secs` (so a row whose transaction commits late is
/// not skipped). `time_col` is `created_at`, or `updated_at` for feedback.
async fn page(
    client: &Client,
    table: &'static str,
    columns: &str,
    time_col: &str,
    after: (NaiveDateTime, &str),
    limit: i64,
    lag_secs: f64,
) -> Result<Vec<tokio_postgres::Row>, Error> {
    let sql = format!(
        "SELECT {columns} FROM {table} \
         WHERE ({time_col}, id) > ($1, $2::text::uuid) \
         AND {time_col} <= (now() AT TIME ZONE 'UTC') - make_interval(secs => $4) \
         ORDER BY {time_col}, id LIMIT $3"
    );
    client
        .query(&sql, &[&after.0, &after.1, &limit, &lag_secs])
        .await
        .map_err(|e| Error::query(table, &e))
}

/// A page of runs after `after`.
pub(crate) async fn runs_after(
    client: &Client,
    after: (NaiveDateTime, &str),
    limit: i64,
    lag_secs: f64,
) -> Result<Vec<WorkflowRun>, Error> {
    let rows = page(
        client,
        "workflow_runs",
        RUN_COLUMNS,
        "created_at",
        after,
        limit,
        lag_secs,
    )
    .await?;
    rows.iter().map(WorkflowRun::from_row).collect()
}

/// Runs by id (re-polls of open runs).
pub(crate) async fn runs_by_id(client: &Client, ids: &[String]) -> Result<Vec<WorkflowRun>, Error> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = ANY($1::text[]::uuid[])");
    let rows = client
        .query(&sql, &[&ids])
        .await
        .map_err(|e| Error::query("workflow_runs", &e))?;
    rows.iter().map(WorkflowRun::from_row).collect()
}

/// A page of messages after `after`.
pub(crate) async fn messages_after(
    client: &Client,
    after: (NaiveDateTime, &str),
    limit: i64,
    lag_secs: f64,
) -> Result<Vec<Message>, Error> {
    let rows = page(
        client,
        "messages",
        MESSAGE_COLUMNS,
        "created_at",
        after,
        limit,
        lag_secs,
    )
    .await?;
    rows.iter().map(Message::from_row).collect()
}

/// Messages by id.
pub(crate) async fn messages_by_id(client: &Client, ids: &[String]) -> Result<Vec<Message>, Error> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::text[]::uuid[])");
    let rows = client
        .query(&sql, &[&ids])
        .await
        .map_err(|e| Error::query("messages", &e))?;
    rows.iter().map(Message::from_row).collect()
}

/// A page of feedback after `after`, by `updated_at` (feedback changes in place).
pub(crate) async fn feedback_after(
    client: &Client,
    after: (NaiveDateTime, &str),
    limit: i64,
    lag_secs: f64,
) -> Result<Vec<Feedback>, Error> {
    let rows = page(
        client,
        "message_feedbacks",
        FEEDBACK_COLUMNS,
        "updated_at",
        after,
        limit,
        lag_secs,
    )
    .await?;
    rows.iter().map(Feedback::from_row).collect()
}

/// Node executions of the runs, by `workflow_run_id` (indexed).
pub(crate) async fn nodes_of(
    client: &Client,
    run_ids: &[String],
) -> Result<Vec<NodeExecution>, Error> {
    let sql = format!(
        "SELECT {NODE_COLUMNS} FROM workflow_node_executions \
         WHERE workflow_run_id = ANY($1::text[]::uuid[]) ORDER BY workflow_run_id, index, id"
    );
    let rows = client
        .query(&sql, &[&run_ids])
        .await
        .map_err(|e| Error::query("workflow_node_executions", &e))?;
    rows.iter().map(NodeExecution::from_row).collect()
}

/// Node execution ids of the runs (run id, node id).
pub(crate) async fn node_ids_of(
    client: &Client,
    run_ids: &[String],
) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT workflow_run_id::text, id::text FROM workflow_node_executions \
             WHERE workflow_run_id = ANY($1::text[]::uuid[])",
            &[&run_ids],
        )
        .await
        .map_err(|e| Error::query("workflow_node_executions", &e))?;
    let t = "workflow_node_executions";
    rows.iter()
        .map(|r| Ok((col(r, t, "workflow_run_id")?, col(r, t, "id")?)))
        .collect()
}

/// Offload rows of the node executions (unique on `(node_execution_id, type)`).
/// With `with_files`, each row also gets its `upload_files` key and size
/// (LEFT JOIN: a missing upload row leaves them NULL).
pub(crate) async fn offloads_of(
    client: &Client,
    node_ids: &[String],
    with_files: bool,
) -> Result<Vec<Offload>, Error> {
    let sql = if with_files {
        "SELECT o.node_execution_id::text, o.type, o.file_id::text, f.key, f.size::int8 \
         FROM workflow_node_execution_offload o LEFT JOIN upload_files f ON f.id = o.file_id \
         WHERE o.node_execution_id = ANY($1::text[]::uuid[])"
    } else {
        "SELECT node_execution_id::text, type, file_id::text FROM workflow_node_execution_offload \
         WHERE node_execution_id = ANY($1::text[]::uuid[])"
    };
    let rows = client
        .query(sql, &[&node_ids])
        .await
        .map_err(|e| Error::query("workflow_node_execution_offload", &e))?;
    let t = "workflow_node_execution_offload";
    rows.iter()
        .map(|r| {
            Ok(Offload {
                node_execution_id: col(r, t, "node_execution_id")?,
                kind: col(r, t, "type")?,
                file_id: col(r, t, "file_id")?,
                key: if with_files {
                    col(r, "upload_files", "key")?
                } else {
                    None
                },
                size: if with_files {
                    col(r, "upload_files", "size")?
                } else {
                    None
                },
                ..Offload::default()
            })
        })
        .collect()
}

/// App-log rows of the runs (indexed by `workflow_run_id`).
pub(crate) async fn app_logs_of(
    client: &Client,
    run_ids: &[String],
) -> Result<HashMap<String, AppLog>, Error> {
    let rows = client
        .query(
            "SELECT id::text, workflow_run_id::text, created_from, created_by_role, created_by::text \
             FROM workflow_app_logs WHERE workflow_run_id = ANY($1::text[]::uuid[])",
            &[&run_ids],
        )
        .await
        .map_err(|e| Error::query("workflow_app_logs", &e))?;
    let t = "workflow_app_logs";
    rows.iter()
        .map(|r| {
            let log = AppLog {
                id: col(r, t, "id")?,
                workflow_run_id: col(r, t, "workflow_run_id")?,
                created_from: col(r, t, "created_from")?,
                created_by_role: col(r, t, "created_by_role")?,
                created_by: col(r, t, "created_by")?,
            };
            Ok((log.workflow_run_id.clone(), log))
        })
        .collect()
}

/// Apps by id.
pub(crate) async fn apps_by_id(client: &Client, ids: &[String]) -> Result<Vec<App>, Error> {
    let rows = client
        .query(
            "SELECT id::text, tenant_id::text, name, mode FROM apps WHERE id = ANY($1::text[]::uuid[])",
            &[&ids],
        )
        .await
        .map_err(|e| Error::query("apps", &e))?;
    rows.iter()
        .map(|r| {
            Ok(App {
                id: col(r, "apps", "id")?,
                tenant_id: col(r, "apps", "tenant_id")?,
                name: col(r, "apps", "name")?,
                mode: col(r, "apps", "mode")?,
            })
        })
        .collect()
}

/// End users by id.
pub(crate) async fn users_by_id(client: &Client, ids: &[String]) -> Result<Vec<EndUser>, Error> {
    let rows = client
        .query(
            "SELECT id::text, session_id, type, external_user_id FROM end_users \
             WHERE id = ANY($1::text[]::uuid[])",
            &[&ids],
        )
        .await
        .map_err(|e| Error::query("end_users", &e))?;
    let t = "end_users";
    rows.iter()
        .map(|r| {
            Ok(EndUser {
                id: col(r, t, "id")?,
                session_id: col(r, t, "session_id")?,
                user_type: col(r, t, "type")?,
                external_user_id: col(r, t, "external_user_id")?,
            })
        })
        .collect()
}

/// Conversations by id.
pub(crate) async fn conversations_by_id(
    client: &Client,
    ids: &[String],
) -> Result<Vec<Conversation>, Error> {
    let rows = client
        .query(
            "SELECT id::text, mode, name, is_deleted FROM conversations WHERE id = ANY($1::text[]::uuid[])",
            &[&ids],
        )
        .await
        .map_err(|e| Error::query("conversations", &e))?;
    let t = "conversations";
    rows.iter()
        .map(|r| {
            Ok(Conversation {
                id: col(r, t, "id")?,
                mode: col(r, t, "mode")?,
                name: col(r, t, "name")?,
                is_deleted: col(r, t, "is_deleted")?,
            })
        })
        .collect()
}

/// Rows of `table` after the keyset position `after` and created before
/// `before` (the history a retention floor would skip).
pub(crate) async fn count_between(
    client: &Client,
    table: &'static str,
    after: (NaiveDateTime, &str),
    before: NaiveDateTime,
) -> Result<u64, Error> {
    count_where(client, table, after, Some(before)).await
}

/// Rows of `table` after the keyset position `after` (for progress).
pub(crate) async fn count_after(
    client: &Client,
    table: &'static str,
    after: (NaiveDateTime, &str),
) -> Result<u64, Error> {
    count_where(client, table, after, None).await
}

async fn count_where(
    client: &Client,
    table: &'static str,
    after: (NaiveDateTime, &str),
    before: Option<NaiveDateTime>,
) -> Result<u64, Error> {
    let sql = format!(
        "SELECT count(*) FROM {table} WHERE (created_at, id) > ($1, $2::text::uuid) \
         AND ($3::timestamp IS NULL OR created_at < $3)"
    );
    let row = client
        .query_one(&sql, &[&after.0, &after.1, &before])
        .await
        .map_err(|e| Error::query(table, &e))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}
