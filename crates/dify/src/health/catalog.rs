//! One sample of Dify's database health, from the catalogue only
//! (`pg_class`, `pg_stat_user_tables`, `pg_stat_activity`, `pg_locks`) and
//! index-ordered reads: no query here scans a table, so a sample costs
//! milliseconds on a 200 GB database. Each query runs with a short
//! `statement_timeout`; one that fails leaves its part empty and says why
//! in [`Sample::errors`] instead of failing the sample.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::Error;

/// Dify's execution tables: the ones that grow with traffic, whose oldest
/// row, long-running queries and lock waits are reported.
pub const EXECUTION_TABLES: &[&str] = &[
    "workflow_runs",
    "workflow_node_executions",
    "workflow_node_execution_offload",
    "workflow_app_logs",
    "messages",
    "message_feedbacks",
];

/// Tables reported at most (largest first); Dify has about a hundred.
pub const MAX_TABLES: i64 = 200;

/// Long-running queries and lock waits listed at most.
const MAX_LISTED: i64 = 20;

/// Characters of a query's text kept (the text may hold user data; it is
/// shown to read-scoped keys of the Dify project).
const QUERY_TEXT_CHARS: usize = 160;

/// What the collector reads, besides the tables.
#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// A query running longer than this is listed as long-running.
    pub long_query: Duration,
    /// Age of the node executions the cleanup recommendation is about.
    pub recommend_older_than: Duration,
    /// `statement_timeout` of each catalogue query.
    pub statement_timeout: Duration,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            long_query: Duration::from_secs(30),
            recommend_older_than: Duration::from_secs(30 * 86_400),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// Size and upkeep of one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableStats {
    /// Table name (in the connection's `current_schema()`).
    pub table: String,
    /// `pg_total_relation_size`: heap + TOAST + indexes.
    pub total_bytes: i64,
    /// `pg_table_size` minus the TOAST relation: the main fork, free space
    /// and visibility maps.
    pub heap_bytes: i64,
    /// `pg_total_relation_size` of the TOAST relation (large column values).
    pub toast_bytes: i64,
    /// `pg_indexes_size`.
    pub index_bytes: i64,
    /// The planner's row estimate (`pg_class.reltuples`; -1 = never analysed).
    pub rows_estimate: f64,
    /// Live rows (`n_live_tup`).
    pub live_rows: i64,
    /// Dead rows awaiting vacuum (`n_dead_tup`).
    pub dead_rows: i64,
    /// Last manual VACUUM (Unix seconds).
    pub last_vacuum: Option<f64>,
    /// Last autovacuum (Unix seconds).
    pub last_autovacuum: Option<f64>,
    /// Last manual ANALYZE (Unix seconds).
    pub last_analyze: Option<f64>,
    /// Last autoanalyze (Unix seconds).
    pub last_autoanalyze: Option<f64>,
    /// Oldest row (`created_at`, Unix seconds), execution tables only.
    pub oldest_row: Option<f64>,
}

impl TableStats {
    /// Dead rows as a share of live + dead (0..1).
    pub fn dead_ratio(&self) -> f64 {
        let all = self.live_rows + self.dead_rows;
        if all > 0 {
            self.dead_rows as f64 / all as f64
        } else {
            0.0
        }
    }
}

/// A query running longer than [`CollectConfig::long_query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongQuery {
    /// Backend pid.
    pub pid: i32,
    /// `active`, `idle in transaction`, …
    pub state: String,
    /// Seconds since the query (or the idle transaction) started.
    pub seconds: f64,
    /// `wait_event_type` (`Lock`, `IO`, …; empty when not waiting).
    pub wait: String,
    /// The execution tables the query names.
    pub tables: Vec<String>,
    /// The query's first characters.
    pub query: String,
}

/// Sessions waiting for a lock on one execution table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockWait {
    /// The table.
    pub table: String,
    /// Sessions waiting.
    pub waiting: i64,
    /// The longest wait, seconds.
    pub max_seconds: f64,
}

/// What a `nodes` cleanup older than the recommendation's age would free,
/// estimated as the dry run estimates it: rows × average row size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The table.
    pub table: String,
    /// Age in days.
    pub older_than_days: u32,
    /// Rows older than that (the planner's estimate: no scan).
    pub rows: f64,
    /// Average bytes per row (`pg_total_relation_size / reltuples`).
    pub avg_row_bytes: f64,
    /// `rows × avg_row_bytes`.
    pub bytes: f64,
}

/// One health sample of the database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// When it was taken (Unix seconds).
    pub at: i64,
    /// `pg_database_size(current_database())`.
    pub database_bytes: i64,
    /// Tables, largest first (at most [`MAX_TABLES`]).
    pub tables: Vec<TableStats>,
    /// Sessions of this database by state (`active`, `idle`, …).
    pub connections: BTreeMap<String, i64>,
    /// The server's `max_connections`.
    pub max_connections: i64,
    /// Long-running queries on the execution tables, longest first.
    pub long_queries: Vec<LongQuery>,
    /// Lock waits on the execution tables.
    pub lock_waits: Vec<LockWait>,
    /// The cleanup recommendation, when the node table has rows that old.
    pub recommendation: Option<Recommendation>,
    /// Latency of one cheap query, the newest 20 runs by the
    /// `(created_at, id)` index (what Dify's log pages ask), ms: the
    /// database's responsiveness, charted against workflow latency.
    pub probe_ms: Option<f64>,
    /// How long the sample took, ms.
    pub collect_ms: u64,
    /// Parts that could not be read, and why (the rest is still reported).
    pub errors: Vec<String>,
}

impl Sample {
    /// Sessions running a query now.
    pub fn active(&self) -> i64 {
        self.connections.get("active").copied().unwrap_or(0)
    }

    /// Sessions waiting for a lock on an execution table.
    pub fn waiting(&self) -> i64 {
        self.lock_waits.iter().map(|w| w.waiting).sum()
    }

    /// The stats of `table`.
    pub fn table(&self, table: &str) -> Option<&TableStats> {
        self.tables.iter().find(|t| t.table == table)
    }
}

/// Takes one sample. Fails only when the database cannot be asked at all;
/// a part that fails is listed in [`Sample::errors`].
pub async fn collect(client: &Client, config: &CollectConfig) -> Result<Sample, Error> {
    let started = Instant::now();
    let timeout = format!("{}ms", config.statement_timeout.as_millis().max(1));
    client
        .execute(
            "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', '1s', false)",
            &[&timeout],
        )
        .await
        .map_err(|e| Error::query("pg_settings", &e))?;
    let mut s = Sample {
        at: chrono::Utc::now().timestamp(),
        ..Sample::default()
    };
    match client
        .query_one(
            "SELECT pg_database_size(current_database()), current_setting('max_connections')::int8",
            &[],
        )
        .await
    {
        Ok(r) => {
            s.database_bytes = r.get(0);
            s.max_connections = r.get(1);
        }
        Err(e) => s
            .errors
            .push(format!("database size: {}", crate::db_message(&e))),
    }
    match tables(client, None).await {
        Ok(t) => s.tables = t,
        // A table locked exclusively (VACUUM FULL, a migration) blocks the
        // size functions: size the others one by one and name it.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            match names(client).await {
                Ok(all) => {
                    for name in all {
                        match tables(client, Some(&name)).await {
                            Ok(t) => s.tables.extend(t),
                            Err(e) => s
                                .errors
                                .push(format!("size of {name}: {}", crate::db_message(&e))),
                        }
                    }
                    s.tables.sort_by(|a, b| {
                        b.total_bytes
                            .cmp(&a.total_bytes)
                            .then(a.table.cmp(&b.table))
                    });
                }
                Err(e) => s
                    .errors
                    .push(format!("table sizes: {}", crate::db_message(&e))),
            }
        }
        Err(e) => s
            .errors
            .push(format!("table sizes: {}", crate::db_message(&e))),
    }
    for t in EXECUTION_TABLES {
        // Node executions, offloads and app logs are found through the
        // runs: not when the runs could not be read (locked).
        let through_runs = matches!(
            *t,
            "workflow_node_executions" | "workflow_node_execution_offload" | "workflow_app_logs"
        );
        if s.table(t).is_none() || (through_runs && s.table("workflow_runs").is_none()) {
            continue;
        }
        match oldest(client, t).await {
            Ok(at) => {
                if let Some(stats) = s.tables.iter_mut().find(|x| x.table == *t) {
                    stats.oldest_row = at;
                }
            }
            Err(e) => s
                .errors
                .push(format!("oldest row of {t}: {}", crate::db_message(&e))),
        }
    }
    match connections(client).await {
        Ok(c) => s.connections = c,
        Err(e) => s
            .errors
            .push(format!("connections: {}", crate::db_message(&e))),
    }
    match long_queries(client, config.long_query).await {
        Ok(q) => s.long_queries = q,
        Err(e) => s
            .errors
            .push(format!("long-running queries: {}", crate::db_message(&e))),
    }
    match lock_waits(client).await {
        Ok(w) => s.lock_waits = w,
        Err(e) => s
            .errors
            .push(format!("lock waits: {}", crate::db_message(&e))),
    }
    if s.table("workflow_runs").is_some() {
        let t0 = Instant::now();
        match client
            .query(
                "SELECT id FROM workflow_runs ORDER BY created_at DESC, id DESC LIMIT 20",
                &[],
            )
            .await
        {
            Ok(_) => s.probe_ms = Some(t0.elapsed().as_secs_f64() * 1000.0),
            Err(e) => s
                .errors
                .push(format!("latency probe: {}", crate::db_message(&e))),
        }
    }
    if let Some(nodes) = s.table("workflow_node_executions").cloned() {
        match recommend(client, &nodes, config.recommend_older_than).await {
            Ok(r) => s.recommendation = r,
            Err(e) => s
                .errors
                .push(format!("cleanup estimate: {}", crate::db_message(&e))),
        }
    }
    s.collect_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(s)
}

/// Names of the schema's tables, largest first by the catalogue's page
/// count (takes no lock on them).
async fn names(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm') \
             ORDER BY c.relpages DESC, 1 LIMIT $1",
            &[&MAX_TABLES],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Sizes and statistics of the schema's tables (or of `only`).
async fn tables(
    client: &Client,
    only: Option<&str>,
) -> Result<Vec<TableStats>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text, pg_total_relation_size(c.oid), pg_table_size(c.oid), \
               pg_indexes_size(c.oid), \
               CASE WHEN c.reltoastrelid = 0 THEN 0::int8 ELSE pg_total_relation_size(c.reltoastrelid) END, \
               c.reltuples::float8, coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0), \
               extract(epoch FROM s.last_vacuum)::float8, extract(epoch FROM s.last_autovacuum)::float8, \
               extract(epoch FROM s.last_analyze)::float8, extract(epoch FROM s.last_autoanalyze)::float8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm') \
               AND ($2::text IS NULL OR c.relname = $2) \
             ORDER BY 2 DESC, 1 LIMIT $1",
            &[&MAX_TABLES, &only],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let table_size: i64 = r.get(2);
            let toast: i64 = r.get(4);
            TableStats {
                table: r.get(0),
                total_bytes: r.get(1),
                heap_bytes: table_size - toast,
                toast_bytes: toast,
                index_bytes: r.get(3),
                rows_estimate: r.get(5),
                live_rows: r.get(6),
                dead_rows: r.get(7),
                last_vacuum: r.get(8),
                last_autovacuum: r.get(9),
                last_analyze: r.get(10),
                last_autoanalyze: r.get(11),
                oldest_row: None,
            }
        })
        .collect())
}

/// The oldest `created_at` of an execution table, read through an index:
/// `workflow_runs` and `messages` have `(created_at, id)`; node executions,
/// their offloads and app logs have no `created_at` index, so their oldest
/// row is found from the oldest runs that still have one (through the
/// `workflow_run_id` index; offloads through their node). Rows whose run
/// is gone are not seen; the statement timeout bounds the walk when a
/// `nodes` cleanup left many runs without nodes.
async fn oldest(client: &Client, table: &str) -> Result<Option<f64>, tokio_postgres::Error> {
    let via_runs = |child: &str| {
        format!(
            "SELECT extract(epoch FROM (SELECT min(x.created_at) FROM {child} x \
               WHERE x.workflow_run_id = r.id))::float8 \
             FROM workflow_runs r WHERE EXISTS (SELECT 1 FROM {child} x WHERE x.workflow_run_id = r.id) \
             ORDER BY r.created_at, r.id LIMIT 1"
        )
    };
    let sql = match table {
        "workflow_runs" | "messages" => format!(
            "SELECT extract(epoch FROM (SELECT created_at FROM {table} ORDER BY created_at, id LIMIT 1))::float8"
        ),
        "workflow_node_executions" | "workflow_app_logs" => via_runs(table),
        "workflow_node_execution_offload" => "SELECT extract(epoch FROM (SELECT min(o.created_at) \
               FROM workflow_node_executions n JOIN workflow_node_execution_offload o \
               ON o.node_execution_id = n.id WHERE n.workflow_run_id = r.id))::float8 \
             FROM workflow_runs r WHERE EXISTS (SELECT 1 FROM workflow_node_executions n \
               JOIN workflow_node_execution_offload o ON o.node_execution_id = n.id \
               WHERE n.workflow_run_id = r.id) \
             ORDER BY r.created_at, r.id LIMIT 1"
            .to_owned(),
        // Feedback has no created_at index either; its message's is used.
        "message_feedbacks" => "SELECT extract(epoch FROM (SELECT min(f.created_at) \
               FROM message_feedbacks f WHERE f.message_id = m.id))::float8 \
             FROM messages m WHERE EXISTS (SELECT 1 FROM message_feedbacks f WHERE f.message_id = m.id) \
             ORDER BY m.created_at, m.id LIMIT 1"
            .to_owned(),
        _ => return Ok(None),
    };
    let rows = client.query(&sql, &[]).await?;
    Ok(rows.first().and_then(|r| r.get::<_, Option<f64>>(0)))
}

async fn connections(client: &Client) -> Result<BTreeMap<String, i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity \
             WHERE datname = current_database() GROUP BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The execution tables a query's text names.
fn tables_named(query: &str) -> Vec<String> {
    let lower = query.to_lowercase();
    // Longest first, so `workflow_node_executions` is not also counted as
    // a mention of a shorter name it contains.
    let mut found = Vec::new();
    let mut rest = lower.clone();
    let mut names: Vec<&str> = EXECUTION_TABLES.to_vec();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in names {
        if rest.contains(n) {
            found.push(n.to_owned());
            rest = rest.replace(n, " ");
        }
    }
    found.sort();
    found
}

async fn long_queries(
    client: &Client,
    over: Duration,
) -> Result<Vec<LongQuery>, tokio_postgres::Error> {
    let pattern = EXECUTION_TABLES.join("|");
    let rows = client
        .query(
            "SELECT pid, coalesce(state, ''), \
               extract(epoch FROM now() - coalesce(CASE WHEN state LIKE 'idle in%' THEN xact_start END, query_start))::float8, \
               coalesce(wait_event_type, ''), left(query, 2000) \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' \
               AND coalesce(CASE WHEN state LIKE 'idle in%' THEN xact_start END, query_start) \
                   < now() - make_interval(secs => $1) \
               AND query ~* $2 \
             ORDER BY 3 DESC LIMIT $3",
            &[&over.as_secs_f64(), &pattern, &MAX_LISTED],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let text: String = r.get(4);
            LongQuery {
                pid: r.get(0),
                state: r.get(1),
                seconds: r.get(2),
                wait: r.get(3),
                tables: tables_named(&text),
                query: text.chars().take(QUERY_TEXT_CHARS).collect(),
            }
        })
        .collect())
}

/// Sessions waiting on a lock, per execution table: the relation of a
/// table lock they wait for, else (row locks wait on a transaction id) the
/// execution tables their query names.
async fn lock_waits(client: &Client) -> Result<Vec<LockWait>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.pid, extract(epoch FROM now() - coalesce(a.query_start, now()))::float8, \
               (SELECT c.relname::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE l.pid = a.pid AND NOT l.granted LIMIT 1), left(a.query, 2000) \
             FROM pg_stat_activity a \
             WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' \
             LIMIT 1000",
            &[],
        )
        .await?;
    let mut by: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    for r in &rows {
        let seconds: f64 = r.get(1);
        let relation: Option<String> = r.get(2);
        let query: String = r.get(3);
        let tables = match relation.filter(|t| EXECUTION_TABLES.contains(&t.as_str())) {
            Some(t) => vec![t],
            None => tables_named(&query),
        };
        for t in tables {
            let e = by.entry(t).or_default();
            e.0 += 1;
            e.1 = e.1.max(seconds);
        }
    }
    Ok(by
        .into_iter()
        .map(|(table, (waiting, max_seconds))| LockWait {
            table,
            waiting,
            max_seconds,
        })
        .collect())
}

/// The recommendation: node executions older than `older_than`, counted
/// by the planner (EXPLAIN, no scan), times the dry run's average row size.
async fn recommend(
    client: &Client,
    nodes: &TableStats,
    older_than: Duration,
) -> Result<Option<Recommendation>, tokio_postgres::Error> {
    let days = u32::try_from(older_than.as_secs() / 86_400).unwrap_or(u32::MAX);
    let cutoff = chrono::Utc::now().naive_utc()
        - chrono::TimeDelta::from_std(older_than).unwrap_or(chrono::TimeDelta::MAX);
    // A literal the server parses; EXPLAIN does not run the query.
    let sql = format!(
        "EXPLAIN SELECT 1 FROM workflow_node_executions WHERE created_at < '{}'::timestamp",
        cutoff.format("%Y-%m-%d %H:%M:%S")
    );
    let plan = client.query(&sql, &[]).await?;
    let first: Option<String> = plan.first().map(|r| r.get(0));
    let rows = first.as_deref().and_then(plan_rows).unwrap_or(0.0);
    // The estimate never exceeds the table's own row count.
    let all = nodes.rows_estimate.max(nodes.live_rows as f64);
    let rows = if all > 0.0 { rows.min(all) } else { rows };
    if rows < 1.0 {
        return Ok(None);
    }
    let avg = crate::relief::avg_row_bytes(client, "workflow_node_executions").await?;
    Ok(Some(Recommendation {
        table: "workflow_node_executions".into(),
        older_than_days: days,
        rows,
        avg_row_bytes: avg,
        bytes: rows * avg,
    }))
}

/// `rows=N` of a plan line.
fn plan_rows(line: &str) -> Option<f64> {
    let at = line.find(" rows=")? + " rows=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rows_reads_the_estimate_of_the_top_node() {
        assert_eq!(
            plan_rows("Seq Scan on workflow_node_executions  (cost=0.00..35.50 rows=1234 width=4)"),
            Some(1234.0)
        );
        assert_eq!(plan_rows("Result"), None);
    }

    #[test]
    fn a_query_names_each_execution_table_once() {
        assert_eq!(
            tables_named(
                "DELETE FROM workflow_node_executions WHERE workflow_run_id IN (SELECT id FROM workflow_runs)"
            ),
            vec!["workflow_node_executions", "workflow_runs"]
        );
        assert_eq!(tables_named("select * from Messages"), vec!["messages"]);
        assert!(tables_named("SELECT 1").is_empty());
    }
}
