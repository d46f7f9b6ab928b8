//! The ClickHouse side (`--clickhouse-url`): the spans the embedded store
//! holds after the load, copied into a fresh ClickHouse database through
//! the ClickHouse backend's writer (read, merge, insert: the path `loupe
//! serve` with `[store] backend = "clickhouse"` writes by), then asked the
//! same Loupe queries as the embedded store.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use loupe_clickhouse::{ClickHouseConfig, ClickHouseStore};
use loupe_model::ProjectId;
use loupe_store::Store;

/// Spans per append into ClickHouse (`loupe migrate`'s default).
const BATCH: usize = 5_000;

/// The loaded ClickHouse side.
pub struct ClickHouseSide {
    /// The backend, as `loupe serve` would hold it.
    pub store: ClickHouseStore,
    url: String,
    /// The database made for this run.
    pub database: String,
    /// Spans copied.
    pub spans: u64,
    /// Time of the copy (reads of the embedded store included).
    pub took: Duration,
}

/// Sends one statement over ClickHouse's HTTP interface (the backend's
/// client does not run DDL for callers).
async fn execute(url: &str, sql: &str) -> anyhow::Result<String> {
    let reply = reqwest::Client::new()
        .post(url)
        .body(sql.to_owned())
        .send()
        .await
        .with_context(|| format!("cannot reach ClickHouse at {url}"))?;
    let status = reply.status();
    let text = reply.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "ClickHouse refused {sql:?}: {text}");
    Ok(text)
}

/// Makes a fresh database and copies the default project of `store` into it.
pub async fn load(url: &str, store: &Store) -> anyhow::Result<ClickHouseSide> {
    let database = format!("loupe_bench_{}", std::process::id());
    execute(url, &format!("DROP DATABASE IF EXISTS {database}")).await?;
    let mut config = ClickHouseConfig::new(url);
    config.database.clone_from(&database);
    let ch = ClickHouseStore::connect(config)
        .await
        .with_context(|| format!("cannot use ClickHouse at {url}"))?;
    let project = ProjectId::default_project();
    let started = Instant::now();
    let progress = |p: loupe_backend::copy::CopyProgress| {
        if p.copied % 100_000 < BATCH as u64 {
            eprintln!("bench: {} spans copied into ClickHouse", p.copied);
        }
    };
    // Through the live write path (read, merge, insert): its rate is what
    // the bench reports.
    let options = loupe_backend::copy::CopyOptions {
        batch: BATCH,
        bulk: false,
        from_hour_ns: None,
    };
    let spans = loupe_backend::copy::copy_project(store, &ch, &project, options, &progress)
        .await
        .context("the copy into ClickHouse failed")?;
    let took = started.elapsed();
    let there = loupe_backend::copy::total(&ch, &project).await?;
    anyhow::ensure!(
        there == spans,
        "{spans} spans copied but ClickHouse holds {there}"
    );
    Ok(ClickHouseSide {
        store: ch,
        url: url.to_owned(),
        database,
        spans,
        took,
    })
}

impl ClickHouseSide {
    /// Bytes of the database's active parts on the server's disk.
    pub async fn bytes(&self) -> anyhow::Result<u64> {
        // `bytes_on_disk` from 19.x on; 18.16 calls it `bytes`.
        let mut last = None;
        for column in ["bytes_on_disk", "bytes"] {
            let sql = format!(
                "SELECT sum({column}) FROM system.parts WHERE database = '{}' AND active",
                self.database
            );
            match execute(&self.url, &sql).await {
                Ok(text) => return Ok(text.trim().parse().unwrap_or(0)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no size")))
    }

    /// Drops the database.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        execute(
            &self.url,
            &format!("DROP DATABASE IF EXISTS {}", self.database),
        )
        .await?;
        Ok(())
    }
}
