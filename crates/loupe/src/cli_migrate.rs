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
use loupe_backend::plan::{AggKind, Aggregate, GroupKey, Output, Plan, QueryLimits, Source};
use loupe_backend::{Cursor, PageQuery, SpanFilter, SpanQuery, SpanReader, SpanWriter};
use loupe_clickhouse::{ClickHouseConfig, ClickHouseStore};
use loupe_model::{ProjectId, Span};

use crate::open::{ConfigArgs, Mode, open_store};

/// An hour in ns: the window copied at a time.
const HOUR_NS: i64 = 3_600 * 1_000_000_000;

/// Spans per page read from the data directory.
const PAGE: usize = 1_000;

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
    /// [store.clickhouse] section of --config (with its database, cluster,
    /// user and [store] retention_days, as `loupe serve` connects).
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
        let copied = copy_project(&store, &target, &project, args.batch).await?;
        let (here, there) = (
            total(&store, &project).await?,
            total(&target, &project).await?,
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

/// The number of spans of a project (an offset page's total).
async fn total(reader: &dyn SpanReader, project: &ProjectId) -> anyhow::Result<u64> {
    let page = reader
        .page(PageQuery {
            project: project.clone(),
            filter: SpanFilter::default(),
            conds: Vec::new(),
            offset: 0,
            limit: 1,
            oldest_first: true,
            count: true,
        })
        .await
        .context("cannot count spans")?;
    page.total.context("the count is missing")
}

/// The start hours (ns) that hold spans of a project, oldest first.
async fn busy_hours(reader: &dyn SpanReader, project: &ProjectId) -> anyhow::Result<Vec<i64>> {
    let plan = Plan {
        source: Source::Spans,
        from_ns: i64::MIN,
        to_ns: i64::MAX,
        filter: None,
        group_by: vec![GroupKey::Bucket { width_ns: HOUR_NS }],
        aggregates: vec![Aggregate {
            kind: AggKind::Count,
            field: None,
            name: "spans".into(),
        }],
        sort: Vec::new(),
        limit: None,
        output: Output::Aggregates,
        approx_percentiles: false,
    };
    let limits = QueryLimits {
        max_rows: usize::MAX / 2,
        ..QueryLimits::default()
    };
    let result = reader
        .query(project, &plan, limits)
        .await
        .context("cannot list the hours holding spans")?;
    if result.stats.truncated {
        bail!("too many hours hold spans of {project} to list at once");
    }
    Ok(result
        .rows
        .iter()
        .filter_map(|r| r.first().and_then(serde_json::Value::as_i64))
        .collect())
}

/// Copies one project: each hour that holds spans, oldest first, then the
/// spans without a start time.
async fn copy_project(
    from: &dyn SpanReader,
    to: &dyn SpanWriter,
    project: &ProjectId,
    batch: usize,
) -> anyhow::Result<u64> {
    let mut copied = 0u64;
    let mut pending: Vec<Span> = Vec::new();
    let flush = async |pending: &mut Vec<Span>, copied: &mut u64| -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let n = pending.len() as u64;
        to.append(std::mem::take(pending))
            .await
            .context("ClickHouse refused an append")?;
        *copied += n;
        Ok(())
    };
    let windows: Vec<(Option<i64>, Option<i64>)> = busy_hours(from, project)
        .await?
        .into_iter()
        .map(|at| (Some(at), Some(at.saturating_add(HOUR_NS))))
        .collect();
    for (from_ns, to_ns) in windows {
        let filter = SpanFilter {
            from: from_ns,
            to: to_ns,
            ..SpanFilter::default()
        };
        let mut cursor = None;
        loop {
            let page = from
                .list(SpanQuery {
                    project: project.clone(),
                    filter: filter.clone(),
                    limit: PAGE,
                    cursor,
                })
                .await
                .context("cannot read spans from the data directory")?;
            pending.extend(page.spans);
            if pending.len() >= batch {
                flush(&mut pending, &mut copied).await?;
                if copied % 50_000 < batch as u64 {
                    eprintln!("project {project}: {copied} spans copied");
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    // Spans without a start time sort as the oldest (`i64::MIN`): a cursor
    // at that time and past every id lists exactly them.
    let mut cursor = Some(Cursor {
        start_time: i64::MIN,
        span_id: char::MAX.to_string(),
    });
    while let Some(c) = cursor {
        let page = from
            .list(SpanQuery {
                project: project.clone(),
                filter: SpanFilter::default(),
                limit: PAGE,
                cursor: Some(c),
            })
            .await
            .context("cannot read spans from the data directory")?;
        pending.extend(page.spans.into_iter().filter(|s| s.start_time.is_none()));
        cursor = page.next_cursor;
    }
    flush(&mut pending, &mut copied).await?;
    Ok(copied)
}
