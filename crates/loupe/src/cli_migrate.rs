//! `loupe migrate --to clickhouse`: copies every span of a data directory
//! into a ClickHouse database (docs/CLICKHOUSE.md, "Migrating").
//!
//! The data directory is opened read-only (beside a running server, as
//! `loupe query --data-dir` is), the ClickHouse database is created when
//! missing, and each project is copied hour by hour through the contract:
//! `SpanReader::list` pages out of the embedded store, `SpanWriter::append`
//! into ClickHouse, so the rows are merged there by the same rules as any
//! write. Spans without a start time come last. Then the span count of
//! every project is compared on both sides; a difference fails the command.
//!
//! Re-running is safe: an append of spans ClickHouse already holds merges
//! onto them and changes nothing (the backend's writes are idempotent), so
//! an interrupted migration is finished by running it again.

use std::time::Instant;

use anyhow::{Context, bail};
use loupe_backend::copy::{copy_project, total};
use loupe_clickhouse::{ClickHouseConfig, ClickHouseStore};
use loupe_model::ProjectId;

use crate::open::{ConfigArgs, Mode, open_store};

/// Where to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A ClickHouse server or cluster (`--clickhouse-url`).
    Clickhouse,
}

/// Flags of `loupe migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The backend to copy into.
    #[arg(long, value_enum)]
    to: Target,
    /// ClickHouse HTTP endpoint, e.g. http://127.0.0.1:8123. Default: the
    /// `[store.clickhouse]` section of --config (with its database, cluster,
    /// user and `[store] retention_days`, as `loupe serve` connects).
    #[arg(long, env = "LOUPE_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
    /// ClickHouse database (created when missing). Default loupe.
    #[arg(long, env = "LOUPE_CLICKHOUSE_DATABASE")]
    clickhouse_database: Option<String>,
    /// Cluster name: write through a Distributed table (docs/CLICKHOUSE.md).
    #[arg(long, env = "LOUPE_CLICKHOUSE_CLUSTER")]
    clickhouse_cluster: Option<String>,
    /// ClickHouse user. Default `default`.
    #[arg(long, env = "LOUPE_CLICKHOUSE_USER")]
    clickhouse_user: Option<String>,
    /// ClickHouse password (prefer the variable: flags show in `ps`).
    #[arg(long, env = "LOUPE_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    clickhouse_password: Option<String>,
    /// Copy only this project (repeat the flag). Default: every project.
    #[arg(long = "project")]
    projects: Vec<String>,
    /// Spans per append into ClickHouse.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    #[command(flatten)]
    source: ConfigArgs,
}

/// Runs `loupe migrate`.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(migrate(args))
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let Target::Clickhouse = args.to;
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let mut config = args.source.resolve()?;
    // The server's own ClickHouse when the config names one; then this
    // command reads the data directory's embedded store, its source.
    let mut ch = match (&args.clickhouse_url, config.store.clickhouse_for_serve()) {
        (Some(url), _) => ClickHouseConfig::new(url),
        (None, Some(configured)) => configured,
        (None, None) => bail!(
            "where to? give --clickhouse-url, or a --config with [store] backend = \"clickhouse\" \
             and its [store.clickhouse] url"
        ),
    };
    config.store.backend = loupe_backend::SpanBackend::Embedded;
    if let Some(d) = &args.clickhouse_database {
        ch.database.clone_from(d);
    }
    if let Some(c) = &args.clickhouse_cluster {
        ch.cluster = Some(c.clone());
    }
    if let Some(u) = &args.clickhouse_user {
        ch.user.clone_from(u);
    }
    if let Some(p) = &args.clickhouse_password {
        ch.password.clone_from(p);
    }
    let (url, database) = (ch.url.clone(), ch.database.clone());
    let store = open_store(&mut config, Mode::ReadOnly).await?;
    let target = ClickHouseStore::connect(ch)
        .await
        .with_context(|| format!("cannot use ClickHouse at {url}"))?;
    eprintln!(
        "migrating {} into ClickHouse {} ({} profile), database {}",
        config.store.data_dir.display(),
        target.server_version(),
        target.profile().as_str(),
        database
    );
    let projects = if args.projects.is_empty() {
        store.projects()
    } else {
        args.projects.clone()
    };
    let mut mismatches = Vec::new();
    for name in projects {
        let project = ProjectId::new(name.clone()).with_context(|| format!("project {name:?}"))?;
        let started = Instant::now();
        let progress = |copied: u64| {
            if copied % 50_000 < args.batch as u64 {
                eprintln!("project {project}: {copied} spans copied");
            }
        };
        let copied = copy_project(&store, &target, &project, args.batch, &progress).await?;
        let (here, there) = (
            total(&store, &project)
                .await
                .context("cannot count the spans of the data directory")?,
            total(&target, &project)
                .await
                .context("cannot count the spans in ClickHouse")?,
        );
        eprintln!(
            "project {project}: {copied} spans copied in {:.1} s; {here} in the data directory, \
             {there} in ClickHouse",
            started.elapsed().as_secs_f64()
        );
        if here != there {
            mismatches.push(format!("{project}: {here} here, {there} in ClickHouse"));
        }
    }
    store.shutdown().await.ok();
    if !mismatches.is_empty() {
        bail!(
            "span counts differ after the copy (run again to retry): {}",
            mismatches.join("; ")
        );
    }
    eprintln!("done: every project's span count matches");
    Ok(())
}
