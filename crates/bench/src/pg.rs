//! The PostgreSQL side: Dify 1.14.1's tables ([`loupe_dify::ddl`], with
//! Dify's indexes) in a private schema, loaded with COPY, queried with the
//! simple protocol (text results, as `psql` would).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::compare::{Cell, Rows};
use crate::copy::{Buffers, LOG_COLUMNS, NODE_COLUMNS, RUN_COLUMNS};
use loupe_dify::ddl::statements;

/// A connection whose `search_path` is the benchmark's schema.
pub struct Pg {
    client: Client,
    dsn: String,
    schema: String,
}

async fn connect(dsn: &str, schema: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(dsn)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("postgres connection: {e}");
        }
    });
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await?;
    Ok(client)
}

fn redact(dsn: &str) -> String {
    match (dsn.find("://"), dsn.rfind('@')) {
        (Some(a), Some(b)) if b > a => format!("{}***{}", &dsn[..a + 3], &dsn[b..]),
        _ => dsn.to_owned(),
    }
}

/// The schema name goes into statements as it is: letters, digits, `_`.
fn check_schema_name(schema: &str) -> anyhow::Result<()> {
    if !schema
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bail!("schema name {schema:?} must be [A-Za-z0-9_]");
    }
    Ok(())
}

impl Pg {
    /// Drops and recreates `schema` with Dify's tables (indexes come after the load).
    pub async fn create(dsn: &str, schema: &str) -> anyhow::Result<Pg> {
        check_schema_name(schema)?;
        let client = connect(dsn, "public").await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}"
            ))
            .await
            .context("cannot create the benchmark schema")?;
        for stmt in statements().0 {
            client
                .batch_execute(&stmt)
                .await
                .with_context(|| format!("DDL failed: {stmt}"))?;
        }
        Ok(Pg {
            client,
            dsn: dsn.to_owned(),
            schema: schema.to_owned(),
        })
    }

    /// Attaches to `schema` as a previous run left it (`--keep`), for
    /// `--reuse`: nothing is dropped or created.
    pub async fn attach(dsn: &str, schema: &str) -> anyhow::Result<Pg> {
        check_schema_name(schema)?;
        let client = connect(dsn, schema).await?;
        let present = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'workflow_runs'",
                &[&schema],
            )
            .await?
            .get::<_, i64>(0);
        if present == 0 {
            bail!(
                "schema {schema:?} holds no workflow_runs table: --reuse needs the schema a run kept (--keep)"
            );
        }
        Ok(Pg {
            client,
            dsn: dsn.to_owned(),
            schema: schema.to_owned(),
        })
    }

    /// Rows of runs, node executions and app logs (what the load's
    /// counts say), counted.
    pub async fn counts(&self) -> anyhow::Result<Vec<u64>> {
        let mut out = Vec::new();
        for table in [
            "workflow_runs",
            "workflow_node_executions",
            "workflow_app_logs",
        ] {
            let n: i64 = self
                .client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .get(0);
            out.push(u64::try_from(n).unwrap_or_default());
        }
        Ok(out)
    }

    /// Opens three COPY streams (runs, nodes, logs) on their own connections.
    pub async fn loader(&self) -> anyhow::Result<Loader> {
        let mut clients = Vec::new();
        let mut sinks = Vec::new();
        for (table, cols) in [
            ("workflow_runs", RUN_COLUMNS),
            ("workflow_node_executions", NODE_COLUMNS),
            ("workflow_app_logs", LOG_COLUMNS),
        ] {
            let client = connect(&self.dsn, &self.schema).await?;
            let sink = client
                .copy_in::<_, Bytes>(&format!("COPY {table} ({cols}) FROM STDIN"))
                .await
                .with_context(|| format!("COPY {table} failed to start"))?;
            sinks.push(Box::pin(sink));
            clients.push(client);
        }
        Ok(Loader {
            _clients: clients,
            sinks,
        })
    }

    /// Builds Dify's indexes, then `VACUUM ANALYZE` (a settled production table).
    pub async fn finish_load(&self) -> anyhow::Result<()> {
        for stmt in statements().1 {
            self.client
                .batch_execute(&stmt)
                .await
                .with_context(|| format!("index failed: {stmt}"))?;
        }
        for table in [
            "workflow_runs",
            "workflow_node_executions",
            "workflow_app_logs",
        ] {
            self.client
                .batch_execute(&format!("VACUUM ANALYZE {table}"))
                .await?;
        }
        Ok(())
    }

    /// Bytes of the loaded tables with their indexes and TOAST, per table.
    pub async fn sizes(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = self
            .client
            .query(
                "SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 2 DESC",
                &[&self.schema],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Server version and `shared_buffers`.
    pub async fn settings(&self) -> anyhow::Result<String> {
        let v = self.client.query_one("SHOW server_version", &[]).await?;
        let b = self.client.query_one("SHOW shared_buffers", &[]).await?;
        let w = self.client.query_one("SHOW work_mem", &[]).await?;
        Ok(format!(
            "PostgreSQL {}, shared_buffers {}, work_mem {}",
            v.get::<_, String>(0),
            b.get::<_, String>(0),
            w.get::<_, String>(0)
        ))
    }

    /// Runs one statement; returns its rows (columns `keep`, all when empty) and the time.
    pub async fn run(&self, sql: &str, keep: &[&str]) -> anyhow::Result<(Rows, Duration)> {
        let started = Instant::now();
        let messages = self
            .client
            .simple_query(sql)
            .await
            .with_context(|| format!("PostgreSQL failed: {sql}"))?;
        let took = started.elapsed();
        let mut rows = Rows::new();
        for m in &messages {
            if let SimpleQueryMessage::Row(row) = m {
                let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
                let idx = crate::compare::column_positions(&names, keep);
                rows.push(
                    idx.iter()
                        .map(|&i| row.get(i).map_or(Cell::Null, Cell::from_text))
                        .collect(),
                );
            }
        }
        Ok((rows, took))
    }

    /// Writes the `apps` and `end_users` rows the runs name (the sync looks
    /// them up for app names and user ids).
    pub async fn insert_lookups(&self, rows: &LookupRows) -> anyhow::Result<()> {
        let (ids, tenants, names, modes): (Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>) = rows
            .apps
            .values()
            .map(|a| {
                (
                    a.id.as_str(),
                    a.tenant_id.as_str(),
                    a.name.as_str(),
                    a.mode.as_str(),
                )
            })
            .fold(Default::default(), |mut v, (a, b, c, d)| {
                v.0.push(a);
                v.1.push(b);
                v.2.push(c);
                v.3.push(d);
                v
            });
        self.client
            .execute(
                "INSERT INTO apps (id, tenant_id, name, mode) SELECT i::uuid, t::uuid, n, m \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(i, t, n, m)",
                &[&ids, &tenants, &names, &modes],
            )
            .await
            .context("cannot insert the apps")?;
        let mut ids = Vec::new();
        let mut tenants = Vec::new();
        let mut types = Vec::new();
        let mut sessions = Vec::new();
        for (u, tenant) in rows.users.values() {
            ids.push(u.id.as_str());
            tenants.push(tenant.as_str());
            types.push(u.user_type.as_str());
            sessions.push(u.session_id.as_str());
        }
        self.client
            .execute(
                "INSERT INTO end_users (id, tenant_id, type, session_id) \
                 SELECT i::uuid, t::uuid, y, s \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(i, t, y, s)",
                &[&ids, &tenants, &types, &sessions],
            )
            .await
            .context("cannot insert the end users")?;
        Ok(())
    }

    /// Drops the schema.
    pub async fn drop_schema(&self) -> anyhow::Result<()> {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await?;
        Ok(())
    }
}

/// Three open COPY streams.
pub struct Loader {
    _clients: Vec<Client>,
    sinks: Vec<std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>>,
}

impl Loader {
    /// Sends a batch's rows.
    pub async fn send(&mut self, buffers: Buffers) -> anyhow::Result<()> {
        for (sink, text) in self
            .sinks
            .iter_mut()
            .zip([buffers.runs, buffers.nodes, buffers.logs])
        {
            if !text.is_empty() {
                sink.as_mut().send(Bytes::from(text)).await?;
            }
        }
        Ok(())
    }

    /// Ends the COPYs; returns the rows each loaded.
    pub async fn finish(self) -> anyhow::Result<Vec<u64>> {
        let mut counts = Vec::new();
        for mut sink in self.sinks {
            counts.push(sink.as_mut().finish().await?);
        }
        Ok(counts)
    }
}

/// The `apps` and `end_users` rows of the loaded runs, by id.
#[derive(Debug, Default)]
pub struct LookupRows {
    apps: std::collections::BTreeMap<String, loupe_dify::schema::App>,
    /// Each end user with the workspace it was first seen in.
    users: std::collections::BTreeMap<String, (loupe_dify::schema::EndUser, String)>,
}

impl LookupRows {
    /// Notes a run's app and end user.
    pub fn add(
        &mut self,
        app: loupe_dify::schema::App,
        user: loupe_dify::schema::EndUser,
        tenant: &str,
    ) {
        self.apps.entry(app.id.clone()).or_insert(app);
        self.users
            .entry(user.id.clone())
            .or_insert_with(|| (user, tenant.to_owned()));
    }
}
