//! `loupe tags apply`: the tag rules in effect, applied to runs already
//! stored (a rule added today tags last month's runs). Through a running
//! server (`POST /api/v1/tags/apply`, an admin key), or straight into a data
//! directory no server holds (`--data-dir`, with `serve`'s `--config`, whose
//! `[[tags]]` rules are the ones applied).

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use loupe_model::ProjectId;
use loupe_pipeline::Retagged;
use serde_json::{Value, json};

use crate::cli_query::{Failure, Server};
use crate::open::{ConfigArgs, Mode, open_store};

/// Flags of `loupe tags`.
#[derive(Debug, clap::Args)]
pub struct TagsArgs {
    #[command(subcommand)]
    command: TagsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TagsCommand {
    /// Apply the configured tag rules to stored runs (only tags a run lacks
    /// are added; payloads are not rewritten; running it twice tags nothing).
    Apply(ApplyArgs),
}

/// Flags of `loupe tags apply`.
#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// Only runs of this long back from now (e.g. 30d, 12h).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    last: Option<String>,
    /// Only runs starting at or after this instant (RFC 3339 or ns).
    #[arg(long)]
    from: Option<String>,
    /// Only runs starting before this instant (RFC 3339 or ns).
    #[arg(long)]
    to: Option<String>,
    /// Read at most this many runs, newest first; the answer says where to go on.
    #[arg(long, default_value_t = 1_000_000)]
    max_runs: u64,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// Base URL of a running `loupe serve`.
    #[arg(long, env = "LOUPE_SERVER", default_value = "http://127.0.0.1:4318")]
    server: String,
    /// Public key of an admin key of the project (with --secret-key).
    #[arg(long, env = "LOUPE_PUBLIC_KEY")]
    public_key: Option<String>,
    /// Secret key for HTTP Basic auth.
    #[arg(long, env = "LOUPE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Write into this data directory instead of through a server (the
    /// server must be stopped: it holds the directory's lock).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the config file whose tag rules apply (`serve`'s).
    #[arg(long, env = "LOUPE_CONFIG")]
    config: Option<PathBuf>,
    /// Project of the runs with --data-dir (over HTTP the key decides).
    #[arg(long, default_value = "default")]
    project: String,
}

/// Runs `loupe tags …`.
pub fn run(args: TagsArgs) -> anyhow::Result<()> {
    match args.command {
        TagsCommand::Apply(a) => apply(a),
    }
}

fn instant(flag: &str, text: &Option<String>) -> anyhow::Result<Option<i64>> {
    text.as_deref()
        .map(|t| loupe_model::time::parse_instant(t).with_context(|| format!("--{flag} {t:?}")))
        .transpose()
}

/// `[from, to)` the flags mean.
fn range(args: &ApplyArgs) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    if let Some(last) = &args.last {
        let d = humantime::parse_duration(last).with_context(|| format!("--last {last:?}"))?;
        let d = i64::try_from(d.as_nanos()).map_err(|_| anyhow!("--last {last:?} is too long"))?;
        let now = loupe_model::time::now_ns();
        return Ok((Some(now.saturating_sub(d)), None));
    }
    let (from, to) = (instant("from", &args.from)?, instant("to", &args.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        bail!("--from must be before --to");
    }
    Ok((from, to))
}

fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let (from, to) = range(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let done: Retagged = runtime.block_on(async {
        match &args.data_dir {
            None => {
                let server = Server::with_keys(&args.server, &args.public_key, &args.secret_key)?;
                let body = json!({ "from": from, "to": to, "max_runs": args.max_runs });
                let answer: Value = server
                    .post_json("/api/v1/tags/apply", &body)
                    .await
                    .map_err(|e| match e {
                        Failure::Query(message) => anyhow!(message),
                        Failure::Other(e) => e,
                    })?;
                retagged(&answer)
            }
            Some(dir) => apply_in_dir(&args, dir.clone(), from, to).await,
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "{} runs read, {} gained tags",
            done.runs_scanned, done.runs_tagged
        );
        if done.truncated
            && let Some(oldest) = done.oldest_start
        {
            println!(
                "stopped at --max-runs {}: continue with --to {oldest}",
                args.max_runs
            );
        }
    }
    Ok(())
}

/// The API's answer as a [`Retagged`].
fn retagged(answer: &Value) -> anyhow::Result<Retagged> {
    let count = |k: &str| {
        answer[k]
            .as_u64()
            .ok_or_else(|| anyhow!("the server's answer lacks {k}: {answer}"))
    };
    Ok(Retagged {
        runs_scanned: count("runs_scanned")?,
        runs_tagged: count("runs_tagged")?,
        truncated: answer["truncated"].as_bool().unwrap_or(false),
        oldest_start: answer["oldest_start"].as_i64(),
    })
}

async fn apply_in_dir(
    args: &ApplyArgs,
    dir: PathBuf,
    from: Option<i64>,
    to: Option<i64>,
) -> anyhow::Result<Retagged> {
    let project = ProjectId::new(args.project.clone())
        .with_context(|| format!("--project {:?} is not a valid project name", args.project))?;
    let mut config = ConfigArgs {
        config: args.config.clone(),
        data_dir: Some(dir),
    }
    .resolve()?;
    // Without the server's config only the built-in workspace rules would
    // run: more likely a forgotten --config than the intent.
    if args.config.is_none() && config.tags.is_empty() {
        bail!("no [[tags]] rule is configured: pass the config file `loupe serve` uses (--config)");
    }
    let store = open_store(&mut config, Mode::Write).await?;
    let pipeline = crate::open::pipeline(&config, &store)?;
    let result = pipeline
        .retag(&store, &project, from, to, args.max_runs)
        .await
        .context("applying the tag rules failed");
    store.shutdown().await.context("flush on shutdown failed")?;
    result
}
