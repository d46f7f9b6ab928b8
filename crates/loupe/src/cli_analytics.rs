//! `loupe conversations --last 7d --by tags.category`: sessions, turns,
//! abandonment, satisfaction, first-turn resolution and cost, as a table
//! (or `--json`), from a running server (`POST
//! /api/v1/analytics/conversations`) or straight from a data directory
//! (`--data-dir`, opened read-only). Exit codes as `loupe query`'s.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use loupe_analytics::{
    AnalyticsError, ConversationStats, ConversationsReport, ConversationsRequest, DEFAULT_GAP_NS,
    GroupBy,
};
use serde_json::{Value, json};

use crate::cli_query::{Failure, Server, SourceArgs, block_on, finish, open_dir};

/// Flags of `loupe conversations`.
#[derive(Debug, clap::Args)]
pub struct ConversationsArgs {
    /// Sessions starting this long back from now (e.g. 7d, 24h). Default 7d.
    #[arg(long, conflicts_with = "from")]
    last: Option<String>,
    /// Window start (RFC 3339 or ns); with --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Window end (RFC 3339 or ns).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Quiet time after a session's last turn before it counts as ended.
    #[arg(long, default_value = "30m")]
    gap: String,
    /// Group by `app` or `tags.<key>` (e.g. tags.category).
    #[arg(long)]
    by: Option<String>,
    /// Print the JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Runs `loupe conversations`.
pub fn run(args: ConversationsArgs) -> ExitCode {
    finish(block_on(run_conversations(args)))
}

fn instant(flag: &str, text: &str) -> anyhow::Result<i64> {
    loupe_model::time::parse_instant(text).with_context(|| format!("--{flag} {text:?}"))
}

async fn run_conversations(args: ConversationsArgs) -> Result<(), Failure> {
    let now = loupe_model::time::now_ns();
    let (from, to) = match (&args.from, &args.to) {
        (Some(f), Some(t)) => (instant("from", f)?, instant("to", t)?),
        _ => {
            let last = args.last.as_deref().unwrap_or("7d");
            let d = humantime::parse_duration(last).with_context(|| format!("--last {last:?}"))?;
            let d =
                i64::try_from(d.as_nanos()).map_err(|_| anyhow!("--last {last:?} is too long"))?;
            (now.saturating_sub(d), now)
        }
    };
    let report: ConversationsReport = match &args.source.data_dir {
        None => {
            let server = Server::new(&args.source)?;
            let mut body = json!({ "from": from, "to": to, "now": now, "gap": args.gap });
            if let Some(by) = &args.by {
                body["by"] = Value::String(by.clone());
            }
            let answer = server
                .post_json("/api/v1/analytics/conversations", &body)
                .await?;
            serde_json::from_value(answer).context("the server's answer is not a report")?
        }
        Some(dir) => {
            let gap = humantime::parse_duration(&args.gap)
                .with_context(|| format!("--gap {:?}", args.gap))?;
            let gap_ns = i64::try_from(gap.as_nanos())
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_GAP_NS);
            let group_by = args
                .by
                .as_deref()
                .map(GroupBy::parse)
                .transpose()
                .map_err(|e| Failure::Query(e.to_string()))?;
            let (store, project) = open_dir(dir, &args.source).await?;
            let req = ConversationsRequest {
                from_ns: from,
                to_ns: to,
                now_ns: now,
                gap_ns,
                group_by,
                limits: Default::default(),
            };
            loupe_analytics::conversations(&store, &project, &req)
                .await
                .map_err(|e| match e {
                    AnalyticsError::Invalid(m) => Failure::Query(m),
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
        print!("{}", table(&report));
    }
    Ok(())
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0))
}

/// The report as an aligned text table: the groups, then the total.
fn table(report: &ConversationsReport) -> String {
    let header = [
        report.group_by.as_deref().unwrap_or(""),
        "sessions",
        "turns/session",
        "abandoned",
        "first-turn resolved",
        "satisfaction",
        "failed turns",
        "cost",
        "tokens",
    ];
    let line = |name: &str, s: &ConversationStats| -> Vec<String> {
        vec![
            name.to_owned(),
            s.sessions.to_string(),
            format!("{:.2}", s.turns_per_session),
            pct(s.abandonment_rate),
            pct(s.first_turn_resolution_rate),
            pct(s.satisfaction_rate),
            s.failed_turns.to_string(),
            format!("{:.4}", s.cost),
            s.tokens.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for g in &report.groups {
        rows.push(line(g.group.as_deref().unwrap_or("(none)"), g));
    }
    rows.push(line("total", &report.total));
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if report.truncated {
        out.push_str("(more groups than shown; the total covers them all)\n");
    }
    out
}
