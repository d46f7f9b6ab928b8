//! `loupe analytics conversations --last 7d --by tags.category` (sessions,
//! turns, abandonment, satisfaction, first-turn resolution and cost) and
//! `loupe analytics users --last 12w` (new and returning users, coming back
//! after a failure, weekly retention), as tables (or `--json`), from a
//! running server (`POST /api/v1/analytics/…`) or straight from a data
//! directory (`--data-dir`, opened read-only). Exit codes as `loupe
//! query`'s.
//!
//! `loupe analytics budgets list` shows the cost budgets of a running server
//! with this period's spend; `budgets set NAME --amount 100 …` adds or
//! changes one as the console's form does, `budgets remove NAME` removes
//! it (an admin key; `loupe.toml`'s budgets are changed there).

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use loupe_analytics::{
    AnalyticsError, Bin, Comeback, ConversationStats, ConversationsReport, ConversationsRequest,
    DEFAULT_GAP_NS, GroupBy, Label, PathStats, PathsReport, PathsRequest, RelationsReport,
    RelationsRequest, UserGroup, UsersReport, UsersRequest,
};
use serde_json::{Value, json};

use crate::cli_query::{Failure, Server, SourceArgs, block_on, finish, open_dir};

/// Flags of `loupe analytics`.
#[derive(Debug, clap::Args)]
pub struct AnalyticsArgs {
    #[command(subcommand)]
    command: AnalyticsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AnalyticsCommand {
    /// Sessions: turns, abandonment, first-turn resolution, satisfaction, cost.
    Conversations(ConversationsArgs),
    /// Users: new and returning, coming back after a failure, weekly retention.
    Users(UsersArgs),
    /// Answer length, latency and cost against failures and feedback, binned.
    Relations(RelationsArgs),
    /// The most common turn sequences, and the last steps before users left.
    Paths(PathsArgs),
    /// Cost budgets: this period's spend; add, change or remove one.
    Budgets(BudgetsArgs),
}

/// Flags of `loupe analytics budgets`.
#[derive(Debug, clap::Args)]
struct BudgetsArgs {
    #[command(subcommand)]
    action: BudgetAction,
}

#[derive(Debug, clap::Subcommand)]
enum BudgetAction {
    /// Lists the budgets with this period's spend.
    List {
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Adds a budget, or replaces the one of this name (needs an admin key).
    Set(BudgetSetArgs),
    /// Removes a budget added over the API or the console.
    Remove {
        /// The budget's name.
        name: String,
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// Flags of `loupe analytics budgets set`.
#[derive(Debug, clap::Args)]
struct BudgetSetArgs {
    /// The budget's name (unique in the project).
    name: String,
    /// The limit per period.
    #[arg(long)]
    amount: f64,
    /// day, week or month.
    #[arg(long, default_value = "month")]
    period: String,
    /// Currency of the amount (default: the server's `[costs] currency`).
    #[arg(long)]
    currency: Option<String>,
    /// Count only spans with this value, KEY=VALUE (app_name, app_id,
    /// user_id, workflow_id, model_name or tags.KEY); repeatable.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<String>,
    /// One budget per user, app or tags.KEY value.
    #[arg(long)]
    per: Option<String>,
    /// Percentages of the amount that notify, e.g. 80,100.
    #[arg(long, value_delimiter = ',', default_values_t = [80.0, 100.0])]
    thresholds: Vec<f64>,
    /// Alert channel to notify (an `[[alerts.channels]]` name); repeatable.
    #[arg(long)]
    notify: Vec<String>,
    #[command(flatten)]
    source: SourceArgs,
}

/// Flags of `loupe analytics paths`.
#[derive(Debug, clap::Args)]
struct PathsArgs {
    /// Conversations starting this long back from now (e.g. 7d). Default 7d.
    #[arg(long, conflicts_with = "from")]
    last: Option<String>,
    /// Window start (RFC 3339 or ns); with --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Window end (RFC 3339 or ns).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Quiet time after a conversation's last turn before it counts as ended.
    #[arg(long, default_value = "30m")]
    gap: String,
    /// What names a turn: outcome, app or tags.KEY (e.g. tags.intent).
    #[arg(long, default_value = "outcome")]
    label: String,
    /// Turns per path (1-10).
    #[arg(long, default_value_t = 3)]
    depth: usize,
    /// Print the JSON answer instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Flags of `loupe analytics relations`.
#[derive(Debug, clap::Args)]
struct RelationsArgs {
    /// Runs this long back from now (e.g. 7d). Default 7d.
    #[arg(long, conflicts_with = "from")]
    last: Option<String>,
    /// Window start (RFC 3339 or ns); with --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Window end (RFC 3339 or ns).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Print the JSON answer instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Flags of `loupe analytics users`.
#[derive(Debug, clap::Args)]
struct UsersArgs {
    /// Users active this long back from now (e.g. 12w, 30d). Default 12w.
    #[arg(long, conflicts_with = "from")]
    last: Option<String>,
    /// Window start (RFC 3339 or ns); with --to.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Window end (RFC 3339 or ns).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// Quiet time that ends a visit.
    #[arg(long, default_value = "30m")]
    gap: String,
    /// A user who runs again within this long came back.
    #[arg(long, default_value = "7d")]
    within: String,
    /// Weeks of retention after each cohort's week (at most 26).
    #[arg(long, default_value_t = 8)]
    weeks: usize,
    /// Print the JSON answer instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Flags of `loupe analytics conversations`.
#[derive(Debug, clap::Args)]
struct ConversationsArgs {
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
    /// Group by `app` or `tags.KEY` (e.g. tags.category).
    #[arg(long)]
    by: Option<String>,
    /// Print the JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Runs `loupe analytics …`.
pub fn run(args: AnalyticsArgs) -> ExitCode {
    finish(block_on(async move {
        match args.command {
            AnalyticsCommand::Conversations(a) => run_conversations(a).await,
            AnalyticsCommand::Users(a) => run_users(a).await,
            AnalyticsCommand::Relations(a) => run_relations(a).await,
            AnalyticsCommand::Paths(a) => run_paths(a).await,
            AnalyticsCommand::Budgets(a) => run_budgets(a).await,
        }
    }))
}

fn instant(flag: &str, text: &str) -> anyhow::Result<i64> {
    loupe_model::time::parse_instant(text).with_context(|| format!("--{flag} {text:?}"))
}

/// `(from, to)` of `--from/--to`, else `--last` (default `default`) back from `now`.
fn window(
    last: Option<&str>,
    from: Option<&String>,
    to: Option<&String>,
    now: i64,
    default: &str,
) -> anyhow::Result<(i64, i64)> {
    if let (Some(f), Some(t)) = (from, to) {
        return Ok((instant("from", f)?, instant("to", t)?));
    }
    let last = last.unwrap_or(default);
    let d = duration_ns("last", last)?;
    Ok((now.saturating_sub(d), now))
}

fn duration_ns(flag: &str, text: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(text).with_context(|| format!("--{flag} {text:?}"))?;
    i64::try_from(d.as_nanos())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| anyhow!("--{flag} {text:?} must be positive and finite"))
}

fn analysis_failure(e: AnalyticsError) -> Failure {
    match e {
        AnalyticsError::Invalid(m) => Failure::Query(m),
        other => Failure::Other(anyhow!(other)),
    }
}

async fn run_paths(args: PathsArgs) -> Result<(), Failure> {
    let now = loupe_model::time::now_ns();
    let (from, to) = window(
        args.last.as_deref(),
        args.from.as_ref(),
        args.to.as_ref(),
        now,
        "7d",
    )?;
    let report: PathsReport = match &args.source.data_dir {
        None => {
            let server = Server::new(&args.source)?;
            let body = json!({ "from": from, "to": to, "now": now, "gap": args.gap,
                               "label": args.label, "depth": args.depth });
            let answer = server.post_json("/api/v1/analytics/paths", &body).await?;
            serde_json::from_value(answer).context("the server's answer is not a report")?
        }
        Some(dir) => {
            let label = Label::parse(&args.label).map_err(|e| Failure::Query(e.to_string()))?;
            let (store, project) = open_dir(dir, &args.source).await?;
            let req = PathsRequest {
                from_ns: from,
                to_ns: to,
                now_ns: now,
                gap_ns: duration_ns("gap", &args.gap)?,
                label,
                depth: args.depth,
                limits: Default::default(),
            };
            loupe_analytics::paths(&store, &project, &req)
                .await
                .map_err(analysis_failure)?
        }
    };
    show(&report, args.json, paths_text)
}

fn paths_text(report: &PathsReport) -> String {
    let table = |title: &str, paths: &[PathStats]| {
        let mut rows = vec![vec![
            title.to_owned(),
            "sessions".into(),
            "abandoned".into(),
            "satisfaction".into(),
        ]];
        for p in paths {
            rows.push(vec![
                p.path.join(" \u{2192} "),
                p.sessions.to_string(),
                pct(p.abandonment_rate),
                pct(p.satisfaction_rate),
            ]);
        }
        aligned(&rows)
    };
    format!(
        "{}\n{}",
        table("path", &report.paths),
        table("before leaving", &report.before_leaving)
    )
}

async fn run_relations(args: RelationsArgs) -> Result<(), Failure> {
    let now = loupe_model::time::now_ns();
    let (from, to) = window(
        args.last.as_deref(),
        args.from.as_ref(),
        args.to.as_ref(),
        now,
        "7d",
    )?;
    let report: RelationsReport = match &args.source.data_dir {
        None => {
            let server = Server::new(&args.source)?;
            let body = json!({ "from": from, "to": to, "now": now });
            let answer = server
                .post_json("/api/v1/analytics/relations", &body)
                .await?;
            serde_json::from_value(answer).context("the server's answer is not a report")?
        }
        Some(dir) => {
            let (store, project) = open_dir(dir, &args.source).await?;
            let req = RelationsRequest {
                from_ns: from,
                to_ns: to,
                limits: Default::default(),
            };
            loupe_analytics::relations(&store, &project, &req)
                .await
                .map_err(analysis_failure)?
        }
    };
    show(&report, args.json, relations_text)
}

fn relations_text(report: &RelationsReport) -> String {
    let table = |title: &str, bins: &[Bin]| {
        let mut rows = vec![vec![
            title.to_owned(),
            "runs".into(),
            "failed".into(),
            "likes".into(),
            "dislikes".into(),
            "satisfaction".into(),
        ]];
        for b in bins {
            rows.push(vec![
                b.label.clone(),
                b.runs.to_string(),
                pct(b.failure_rate),
                b.likes.to_string(),
                b.dislikes.to_string(),
                pct(b.satisfaction_rate),
            ]);
        }
        aligned(&rows)
    };
    format!(
        "{}\n{}\n{}",
        table("answer length", &report.answer_length),
        table("latency", &report.latency),
        table("cost", &report.cost)
    )
}

async fn run_users(args: UsersArgs) -> Result<(), Failure> {
    let now = loupe_model::time::now_ns();
    let (from, to) = window(
        args.last.as_deref(),
        args.from.as_ref(),
        args.to.as_ref(),
        now,
        "12w",
    )?;
    let report: UsersReport = match &args.source.data_dir {
        None => {
            let server = Server::new(&args.source)?;
            let body = json!({ "from": from, "to": to, "now": now, "gap": args.gap,
                               "within": args.within, "weeks": args.weeks });
            let answer = server.post_json("/api/v1/analytics/users", &body).await?;
            serde_json::from_value(answer).context("the server's answer is not a report")?
        }
        Some(dir) => {
            let (store, project) = open_dir(dir, &args.source).await?;
            let req = UsersRequest {
                from_ns: from,
                to_ns: to,
                now_ns: now,
                gap_ns: duration_ns("gap", &args.gap)?,
                within_ns: duration_ns("within", &args.within)?,
                weeks: args.weeks,
                limits: Default::default(),
            };
            loupe_analytics::users(&store, &project, &req)
                .await
                .map_err(analysis_failure)?
        }
    };
    show(&report, args.json, users_text)
}

fn users_text(r: &UsersReport) -> String {
    let group = |name: &str, g: &UserGroup| {
        vec![
            name.to_owned(),
            g.users.to_string(),
            g.runs.to_string(),
            pct(g.failure_rate),
        ]
    };
    let back = |name: &str, c: &Comeback| {
        vec![
            name.to_owned(),
            c.visits.to_string(),
            c.returned.to_string(),
            pct(c.return_rate),
        ]
    };
    let mut out = aligned(&[
        vec![
            "users".into(),
            "users".into(),
            "runs".into(),
            "failed".into(),
        ],
        group("new", &r.new),
        group("returning", &r.returning),
    ]);
    out.push('\n');
    out.push_str(&aligned(&[
        vec![
            "visit ended".into(),
            "visits".into(),
            "came back".into(),
            "rate".into(),
        ],
        back("after a failure", &r.after_failure),
        back("after success", &r.after_success),
    ]));
    if !r.retention.is_empty() {
        out.push('\n');
        let weeks = r
            .retention
            .iter()
            .map(|c| c.active.len())
            .max()
            .unwrap_or(0);
        let mut rows = vec![
            ["cohort week".to_owned(), "users".to_owned()]
                .into_iter()
                .chain((0..weeks).map(|k| format!("w{k}")))
                .collect::<Vec<_>>(),
        ];
        for c in &r.retention {
            let start = loupe_model::time::format_instant(c.week_start_ns);
            let day = start.get(..10).unwrap_or(&start).to_owned();
            let mut row = vec![day, c.users.to_string()];
            row.extend(
                c.active
                    .iter()
                    .map(|a| pct((c.users > 0).then(|| *a as f64 / c.users as f64))),
            );
            rows.push(row);
        }
        out.push_str(&aligned(&rows));
    }
    out
}

async fn run_conversations(args: ConversationsArgs) -> Result<(), Failure> {
    let now = loupe_model::time::now_ns();
    let (from, to) = window(
        args.last.as_deref(),
        args.from.as_ref(),
        args.to.as_ref(),
        now,
        "7d",
    )?;
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
            let gap_ns = duration_ns("gap", &args.gap).unwrap_or(DEFAULT_GAP_NS);
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
                .map_err(analysis_failure)?
        }
    };
    show(&report, args.json, table)
}

async fn run_budgets(args: BudgetsArgs) -> Result<(), Failure> {
    let source = match &args.action {
        BudgetAction::List { source, .. } | BudgetAction::Remove { source, .. } => source,
        BudgetAction::Set(b) => &b.source,
    };
    if source.data_dir.is_some() {
        return Err(anyhow!(
            "budgets are kept and checked by a running `loupe serve`: point --server at it instead of --data-dir"
        )
        .into());
    }
    let server = Server::new(source)?;
    let path = |name: &str| {
        format!(
            "/api/v1/budgets/{}",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    match args.action {
        BudgetAction::List { json, .. } => {
            let answer = server
                .send_json(reqwest::Method::GET, "/api/v1/budgets", None)
                .await?;
            show(&answer, json, budgets_table)
        }
        BudgetAction::Set(b) => {
            let mut filter = serde_json::Map::new();
            for f in &b.filters {
                let (key, value) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--filter {f:?}: expected KEY=VALUE"))?;
                filter.insert(
                    key.trim().to_owned(),
                    Value::String(value.trim().to_owned()),
                );
            }
            let mut body = json!({
                "amount": b.amount,
                "period": b.period,
                "filter": filter,
                "thresholds": b.thresholds.iter().map(|t| t / 100.0).collect::<Vec<_>>(),
                "notify": b.notify,
            });
            if let Some(c) = &b.currency {
                body["currency"] = Value::String(c.clone());
            }
            if let Some(p) = &b.per {
                body["per"] = Value::String(p.clone());
            }
            let answer = server
                .send_json(reqwest::Method::PUT, &path(&b.name), Some(&body))
                .await?;
            let verb = if answer["created"] == true {
                "added"
            } else {
                "changed"
            };
            eprintln!("budget {:?} {verb}", b.name);
            Ok(())
        }
        BudgetAction::Remove { name, .. } => {
            server
                .send(reqwest::Method::DELETE, &path(&name), None)
                .await?;
            eprintln!("budget {name:?} removed");
            Ok(())
        }
    }
}

/// `GET /api/v1/budgets` as a table: a line per budget (per group for
/// `per` budgets).
fn budgets_table(answer: &Value) -> String {
    let header = [
        "budget", "set in", "period", "limit", "spent", "share", "notified",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for b in answer["budgets"].as_array().into_iter().flatten() {
        let c = &b["budget"];
        let name = c["name"].as_str().unwrap_or_default();
        let currency = c["currency"].as_str().unwrap_or_default();
        let amount = c["amount"].as_f64().unwrap_or(0.0);
        let mut groups: Vec<&Value> = b["spent"].as_array().into_iter().flatten().collect();
        let none = json!({"group": null, "spent": 0.0, "share": 0.0});
        if groups.is_empty() {
            groups.push(&none);
        }
        for g in groups {
            let key = g["group"].as_str().unwrap_or_default();
            let notified: Vec<String> = b["notified"][key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .map(|t| format!("{:.0}%", t * 100.0))
                .collect();
            rows.push(vec![
                if key.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name} · {key}")
                },
                b["source"].as_str().unwrap_or_default().to_owned(),
                c["period"].as_str().unwrap_or_default().to_owned(),
                format!("{amount} {currency}"),
                format!("{:.4} {currency}", g["spent"].as_f64().unwrap_or(0.0)),
                format!("{:.1}%", g["share"].as_f64().unwrap_or(0.0) * 100.0),
                if notified.is_empty() {
                    "-".to_owned()
                } else {
                    notified.join(", ")
                },
            ]);
        }
    }
    if rows.len() == 1 {
        return "no budgets: add one with `loupe analytics budgets set NAME --amount N`\n"
            .to_owned();
    }
    aligned(&rows)
}

/// Prints a report as the API's JSON (`--json`) or as `text` makes it.
fn show<T: serde::Serialize>(
    report: &T,
    json: bool,
    text: fn(&T) -> String,
) -> Result<(), Failure> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).context("encode")?
        );
    } else {
        print!("{}", text(report));
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
    let mut out = aligned(&rows);
    if report.truncated {
        out.push_str("(more groups than shown; the total covers them all)\n");
    }
    out
}

/// Rows as aligned text: the first column left, the others right.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
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
    out
}
