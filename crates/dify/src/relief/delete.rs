//! The write side of cleanup: short transactions with `SET LOCAL`
//! timeouts, the delete steps of each scope in Dify's dependency order
//! (dify-internals §5), the optional tables of newer Dify versions, and the
//! average row sizes behind the "bytes freed" estimate.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio_postgres::{Client, GenericClient, Transaction};

use super::Scope;

/// Which id list a step deletes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Verified run ids.
    Runs,
    /// Node execution ids of verified runs.
    Nodes,
    /// Verified message ids.
    Messages,
    /// Feedback ids of verified messages.
    Feedbacks,
}

/// One delete: `DELETE FROM table WHERE <predicate on $1>`.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub table: &'static str,
    predicate: &'static str,
    pub key: Key,
}

fn step(table: &'static str, predicate: &'static str, key: Key) -> Step {
    Step {
        table,
        predicate,
        key,
    }
}

/// Tables Dify deletes with a run that exist only in some versions,
/// with the column that refers to the run.
const OPTIONAL_RUN_TABLES: &[(&str, &str)] = &[
    ("workflow_trigger_logs", "workflow_run_id"),
    ("workflow_pauses", "workflow_run_id"),
    ("workflow_pause_reasons", "pause_id"),
];

/// Tables Dify's message cleanup deletes before `messages` (§1.13, §5).
const MESSAGE_TABLES: &[&str] = &[
    "app_annotation_hit_histories",
    "dataset_retriever_resources",
    "message_agent_thoughts",
    "message_chains",
    "message_files",
    "message_annotations",
    "saved_messages",
];

/// `(table, column)` pairs present in the current schema, among the
/// optional tables.
pub(crate) async fn present(
    client: &Client,
) -> Result<BTreeSet<(String, String)>, tokio_postgres::Error> {
    let mut tables: Vec<String> = OPTIONAL_RUN_TABLES
        .iter()
        .map(|(t, _)| (*t).to_owned())
        .collect();
    tables.extend(MESSAGE_TABLES.iter().map(|t| (*t).to_owned()));
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r','p') \
             AND c.relname = ANY($1) AND a.attname IN ('workflow_run_id', 'pause_id', 'message_id') \
             AND a.attnum > 0 AND NOT a.attisdropped",
            &[&tables],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The steps of `scope`, children first, given the optional tables present.
pub(crate) fn steps(scope: Scope, present: &BTreeSet<(String, String)>) -> Vec<Step> {
    let has = |t: &str, c: &str| present.contains(&(t.to_owned(), c.to_owned()));
    let nodes = [
        step(
            "workflow_node_execution_offload",
            "node_execution_id = ANY($1::text[]::uuid[])",
            Key::Nodes,
        ),
        step(
            "workflow_node_executions",
            "id = ANY($1::text[]::uuid[])",
            Key::Nodes,
        ),
    ];
    let mut out = Vec::new();
    match scope {
        Scope::Nodes => out.extend(nodes),
        Scope::Runs => {
            out.extend(nodes);
            out.push(step(
                "workflow_app_logs",
                "workflow_run_id = ANY($1::text[]::uuid[])",
                Key::Runs,
            ));
            if has("workflow_trigger_logs", "workflow_run_id") {
                out.push(step(
                    "workflow_trigger_logs",
                    "workflow_run_id = ANY($1::text[]::uuid[])",
                    Key::Runs,
                ));
            }
            if has("workflow_pauses", "workflow_run_id") {
                if has("workflow_pause_reasons", "pause_id") {
                    out.push(step(
                        "workflow_pause_reasons",
                        "pause_id IN (SELECT id FROM workflow_pauses \
                         WHERE workflow_run_id = ANY($1::text[]::uuid[]))",
                        Key::Runs,
                    ));
                }
                out.push(step(
                    "workflow_pauses",
                    "workflow_run_id = ANY($1::text[]::uuid[])",
                    Key::Runs,
                ));
            }
            out.push(step(
                "workflow_runs",
                "id = ANY($1::text[]::uuid[])",
                Key::Runs,
            ));
        }
        Scope::Messages => {
            for t in MESSAGE_TABLES {
                if has(t, "message_id") {
                    out.push(step(
                        t,
                        "message_id = ANY($1::text[]::uuid[])",
                        Key::Messages,
                    ));
                }
            }
            out.push(step(
                "message_feedbacks",
                "id = ANY($1::text[]::uuid[])",
                Key::Feedbacks,
            ));
            out.push(step(
                "messages",
                "id = ANY($1::text[]::uuid[])",
                Key::Messages,
            ));
        }
    }
    out
}

/// Opens a transaction whose lock wait and statement time are bounded
/// (`SET LOCAL`, so nothing outlives the transaction).
pub(crate) async fn begin<'a>(
    client: &'a mut Client,
    lock_timeout: Duration,
    statement_timeout: Duration,
    read_only: bool,
) -> Result<Transaction<'a>, tokio_postgres::Error> {
    let mut builder = client.build_transaction();
    if read_only {
        builder = builder.read_only(true);
    }
    let tx = builder.start().await?;
    let lock = format!("{}ms", lock_timeout.as_millis().max(1));
    let stmt = format!("{}ms", statement_timeout.as_millis().max(1));
    tx.execute(
        "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
        &[&lock, &stmt],
    )
    .await?;
    Ok(tx)
}

/// Runs the steps (or, for a dry run, counts what they would delete).
/// Returns rows per table; an error names the table it happened on.
pub(crate) async fn run_steps(
    tx: &impl GenericClient,
    steps: &[Step],
    ids: impl Fn(Key) -> Vec<String>,
    dry_run: bool,
) -> Result<BTreeMap<&'static str, u64>, (&'static str, tokio_postgres::Error)> {
    let mut out = BTreeMap::new();
    for s in steps {
        let list = ids(s.key);
        if list.is_empty() {
            continue;
        }
        let n = if dry_run {
            let sql = format!("SELECT count(*) FROM {} WHERE {}", s.table, s.predicate);
            let row = tx
                .query_one(&sql, &[&list])
                .await
                .map_err(|e| (s.table, e))?;
            u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)
        } else {
            let sql = format!("DELETE FROM {} WHERE {}", s.table, s.predicate);
            tx.execute(&sql, &[&list]).await.map_err(|e| (s.table, e))?
        };
        *out.entry(s.table).or_default() += n;
    }
    Ok(out)
}

/// Average bytes per row of `table`: `pg_total_relation_size / reltuples`
/// when the table has been analysed, else the mean `pg_column_size` of a
/// sample of up to 1000 rows (heap only).
pub(crate) async fn avg_row_bytes(
    client: &Client,
    table: &str,
) -> Result<f64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT pg_total_relation_size(c.oid)::float8, c.reltuples::float8 FROM pg_class c \
             WHERE c.oid = to_regclass($1)",
            &[&table],
        )
        .await?;
    let (size, tuples): (f64, f64) = (row.get(0), row.get(1));
    if tuples > 0.0 {
        return Ok(size / tuples);
    }
    let sql = format!(
        "SELECT coalesce(avg(pg_column_size(t.*)), 0)::float8 FROM (SELECT * FROM {table} LIMIT 1000) t"
    );
    Ok(client.query_one(&sql, &[]).await?.get(0))
}
