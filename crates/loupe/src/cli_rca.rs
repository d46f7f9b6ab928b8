//! `loupe rca '<target>' --last 6h`: what changed, as a readable report
//! (or `--json`), from a running server (`POST /api/v1/rca`) or straight
//! from a data directory (`--data-dir`, opened read-only like `loupe
//! query`). Exit codes: 0 success (findings or not), 2 a request the
//! analysis refuses (bad filter, empty window), 1 anything else.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use loupe_rca::{RcaError, RcaReport, RcaRequest};
use serde_json::{Value, json};

use crate::cli_query::{Failure, Server, SourceArgs, block_on, finish, open_dir};

/// Flags of `loupe rca`.
#[derive(Debug, clap::Args)]
pub struct RcaArgs {
    /// What rose: a filter such as 'status=error' (the default) or 'duration>2s'.
    #[arg(default_value = "status=error")]
    target: String,
    /// Window: this long back from --now (e.g. 6h, 30m). Default 1h.
    #[arg(long, conflicts_with = "from")]
    last: Option<String>,
    /// Window start (RFC 3339 or ns); with --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Window end (RFC 3339 or ns).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Baseline start; default: the window's length before it.
    #[arg(long, requires = "baseline_to")]
    baseline_from: Option<String>,
    /// Baseline end.
    #[arg(long, requires = "baseline_from")]
    baseline_to: Option<String>,
    /// The population the target is a share of (default: every node span).
    #[arg(long)]
    scope: Option<String>,
    /// Analyse only these fields (repeat); default: app, version, node, type,
    /// tool, model, provider and every tag.
    #[arg(long = "dimension", value_name = "FIELD")]
    dimensions: Vec<String>,
    /// Findings shown at most (1-20).
    #[arg(long, default_value_t = 5)]
    max_findings: usize,
    /// "Now" for --last: RFC 3339 or ns. Default: the current time.
    #[arg(long, value_name = "T")]
    now: Option<String>,
    /// Print the API's JSON answer instead of the report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Runs `loupe rca`.
pub fn run(args: RcaArgs) -> ExitCode {
    finish(block_on(run_rca(args)))
}

fn instant(flag: &str, text: &str) -> anyhow::Result<i64> {
    loupe_model::time::parse_instant(text).with_context(|| format!("--{flag} {text:?}"))
}

/// The request body the flags mean (the API's shape).
fn body(args: &RcaArgs) -> anyhow::Result<Value> {
    let mut body = json!({ "target": args.target, "max_findings": args.max_findings });
    let now = match &args.now {
        Some(t) => instant("now", t)?,
        None => loupe_model::time::now_ns(),
    };
    body["now"] = json!(now);
    match (&args.from, &args.to) {
        (Some(from), Some(to)) => {
            body["from"] = json!(instant("from", from)?);
            body["to"] = json!(instant("to", to)?);
        }
        _ => body["last"] = json!(args.last.as_deref().unwrap_or("1h")),
    }
    if let (Some(from), Some(to)) = (&args.baseline_from, &args.baseline_to) {
        body["baseline"] = json!({
            "from": instant("baseline-from", from)?,
            "to": instant("baseline-to", to)?,
        });
    }
    if let Some(scope) = &args.scope {
        body["scope"] = json!(scope);
    }
    if !args.dimensions.is_empty() {
        body["dimensions"] = json!(args.dimensions);
    }
    Ok(body)
}

/// The analysis request of a body, for `--data-dir` (what the API does).
fn request(body: &Value) -> anyhow::Result<RcaRequest> {
    let now = body["now"]
        .as_i64()
        .unwrap_or_else(loupe_model::time::now_ns);
    let (from_ns, to_ns) = match body["last"].as_str() {
        Some(last) => {
            let d = humantime::parse_duration(last).with_context(|| format!("--last {last:?}"))?;
            let d =
                i64::try_from(d.as_nanos()).map_err(|_| anyhow!("--last {last:?} is too long"))?;
            (now.saturating_sub(d), now)
        }
        None => (
            body["from"].as_i64().unwrap_or(now),
            body["to"].as_i64().unwrap_or(now),
        ),
    };
    Ok(RcaRequest {
        target: body["target"].as_str().unwrap_or("status=error").to_owned(),
        scope: body["scope"].as_str().map(str::to_owned),
        from_ns,
        to_ns,
        baseline_from_ns: body["baseline"]["from"].as_i64(),
        baseline_to_ns: body["baseline"]["to"].as_i64(),
        dimensions: body["dimensions"].as_array().map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        }),
        max_findings: body["max_findings"].as_u64().unwrap_or(5) as usize,
        ..RcaRequest::default()
    })
}

async fn run_rca(args: RcaArgs) -> Result<(), Failure> {
    let body = body(&args)?;
    let report: RcaReport = match &args.source.data_dir {
        None => {
            let server = Server::new(&args.source)?;
            let answer = server.post_json("/api/v1/rca", &body).await?;
            serde_json::from_value(answer).context("the server's answer is not an RCA report")?
        }
        Some(dir) => {
            let (store, project) = open_dir(dir, &args.source).await?;
            let req = request(&body)?;
            loupe_rca::analyse(&store, &project, &req)
                .await
                .map_err(|e| match e {
                    RcaError::Invalid(m) => Failure::Query(m),
                    other => Failure::Other(anyhow!(other)),
                })?
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encode")?
        );
    } else {
        print!("{}", loupe_rca::render_text(&report));
    }
    Ok(())
}
