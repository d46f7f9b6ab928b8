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
//! A project ClickHouse holds none of is bulk-loaded
//! (`SpanWriter::append_copied`: the spans are inserted without first
//! reading what ClickHouse holds, under a row version below every live
//! write's); a project it already holds spans of, or any with `--merge`,
//! is merged span by span as live writes are.
//!
//! Re-running is safe: a copy again changes nothing. After each append the
//! hour before which every span is stored is written to
//! `<data_dir>/migrate-checkpoint.json`, and a run into the same database
//! resumes each unfinished project there (in the mode it started in), so
//! an interrupted migration of a long history does not start over.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use loupe_backend::copy::{CopyOptions, CopyProgress, copy_project, total};
use loupe_clickhouse::{ClickHouseConfig, ClickHouseStore};
use loupe_model::ProjectId;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

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
    /// Merge every span as a live write does (read what ClickHouse holds
    /// first): for a database a server already writes the same spans to.
    /// Default: bulk-load projects ClickHouse holds none of, merge others.
    #[arg(long)]
    merge: bool,
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
    // Merged copies are counted in ClickHouse's hour tier as they land.
    keep_hour_tier(&target, &config.metrics).await?;
    let projects = if args.projects.is_empty() {
        store.projects()
    } else {
        args.projects.clone()
    };
    let checkpoint_path = config.store.data_dir.join(CHECKPOINT_FILE);
    let target_name = format!("{url}#{database}");
    let checkpoint = Mutex::new(Checkpoint::load(&checkpoint_path, &target_name));
    let mut mismatches = Vec::new();
    for name in projects {
        let project = ProjectId::new(name.clone()).with_context(|| format!("project {name:?}"))?;
        let started = Instant::now();
        let here = total(&store, &project)
            .await
            .context("cannot count the spans of the data directory")?;
        let resume = checkpoint.lock().projects.get(&name).cloned();
        let bulk = match &resume {
            Some(r) => r.bulk,
            None => {
                !args.merge
                    && total(&target, &project)
                        .await
                        .context("cannot count the spans in ClickHouse")?
                        == 0
            }
        };
        if let Some(r) = &resume {
            eprintln!(
                "project {project}: resuming at {} ({} spans copied before)",
                loupe_model::time::format_instant(r.done_before),
                r.copied
            );
        }
        eprintln!(
            "project {project}: {here} spans, {}",
            if bulk {
                "bulk load (ClickHouse holds none of them)"
            } else {
                "merged as live writes"
            }
        );
        let bar = indicatif::ProgressBar::new(here);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {pos}/{len} spans {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(name.clone());
        let before = resume.as_ref().map_or(0, |r| r.copied);
        bar.set_position(before.min(here));
        let progress = |p: CopyProgress| {
            bar.set_position((before + p.copied).min(here));
            let mut c = checkpoint.lock();
            c.projects.insert(
                name.clone(),
                ProjectMark {
                    bulk,
                    done_before: p.done_before,
                    copied: before + p.copied,
                },
            );
            c.save(&checkpoint_path);
        };
        let options = CopyOptions {
            batch: args.batch,
            bulk,
            from_hour_ns: resume.as_ref().map(|r| r.done_before),
        };
        let copied = copy_project(&store, &target, &project, options, &progress).await;
        bar.finish_and_clear();
        let copied = copied?;
        let there = total(&target, &project)
            .await
            .context("cannot count the spans in ClickHouse")?;
        eprintln!(
            "project {project}: {copied} spans copied in {:.1} s; {here} in the data directory, \
             {there} in ClickHouse",
            started.elapsed().as_secs_f64()
        );
        // Copied to the end: a run again starts afresh (merging, as
        // ClickHouse now holds the spans), also after a count mismatch.
        {
            let mut c = checkpoint.lock();
            c.projects.remove(&name);
            c.save(&checkpoint_path);
        }
        if here != there {
            mismatches.push(format!("{project}: {here} here, {there} in ClickHouse"));
        }
    }
    store.shutdown().await.ok();
    // Bulk copies are not counted as they land: the tier is made anew.
    keep_hour_tier(&target, &config.metrics).await?;
    if !mismatches.is_empty() {
        bail!(
            "span counts differ after the copy (run again to retry): {}",
            mismatches.join("; ")
        );
    }
    eprintln!("done: every project's span count matches");
    Ok(())
}

/// Makes ClickHouse's hour tier count every span it holds (under the
/// labels and hour tags of this config), saying so when that means a
/// rebuild.
async fn keep_hour_tier(
    target: &ClickHouseStore,
    metrics: &loupe_rollup::RollupConfig,
) -> anyhow::Result<()> {
    let started = Instant::now();
    match target
        .keep_hour_tier(metrics)
        .await
        .context("cannot make the hour tier in ClickHouse")?
    {
        loupe_clickhouse::HourTierStart::Kept => {}
        loupe_clickhouse::HourTierStart::Rebuilt { spans, .. } => eprintln!(
            "hour tier: made anew from the {spans} spans ClickHouse holds in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    }
    Ok(())
}

/// The checkpoint of `loupe migrate`, in the data directory.
const CHECKPOINT_FILE: &str = "migrate-checkpoint.json";

/// Where each unfinished project's copy into one ClickHouse database
/// stands.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// `url#database` of the target: another target starts afresh.
    target: String,
    projects: BTreeMap<String, ProjectMark>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProjectMark {
    /// Bulk-loaded (`append_copied`) rather than merged.
    bulk: bool,
    /// Every span starting before this (ns) is in ClickHouse.
    done_before: i64,
    /// Spans appended so far.
    copied: u64,
}

impl Checkpoint {
    /// The checkpoint of `target`: empty when the file is missing, names
    /// another target or cannot be read (a copy from the start is always
    /// correct, only slower).
    fn load(path: &Path, target: &str) -> Self {
        let read = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok());
        match read {
            Some(c) if c.target == target => c,
            _ => Checkpoint {
                target: target.to_owned(),
                projects: BTreeMap::new(),
            },
        }
    }

    /// Writes it, or removes the file when no project is unfinished. A
    /// failure is only logged: it costs a resumed run time, not data.
    fn save(&self, path: &Path) {
        let result = if self.projects.is_empty() {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            serde_json::to_vec_pretty(self)
                .map_err(std::io::Error::other)
                .and_then(|b| loupe_fsutil::write_atomic(path, &b))
        };
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the migration checkpoint");
        }
    }
}
