//! The console's server work: a real `loupe serve` (the shipped binary, a
//! child process) on the benchmark's data directory, asked the API calls
//! each console page makes (the same texts as crates/console/assets/pages),
//! concurrently as the browser does, dependent calls after the calls they
//! need. A page's time is the wall time until its last answer: what the
//! server adds to opening the page.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::questions::Context;
use crate::serve::{Killed, free_port};

/// One API call of a page.
#[derive(Debug, Clone)]
enum Call {
    /// `POST /api/v1/query` (`approx`: percentiles from histograms).
    Query { q: String, approx: bool },
    /// `GET` a path.
    Get(String),
    /// `POST` a JSON body to a path.
    Post(String, Value),
}

/// What one page cost.
#[derive(Debug, Clone)]
pub struct PageTiming {
    /// Page.
    pub page: &'static str,
    /// API calls made.
    pub calls: usize,
    /// Aggregate queries answered from the rollups / aggregate queries.
    pub rollups: (usize, usize),
    /// Median wall time of the page's calls.
    pub wall: Duration,
    /// Wall time of the first view (the warm-up: the server's caches, such
    /// as the analytics' hourly tables, still empty).
    pub first: Duration,
    /// The slowest call (median over the repetitions) and its text.
    pub slowest: (Duration, String),
}

fn rfc(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A query text's first characters, for the report.
fn short(text: &str) -> String {
    let t: String = text.chars().take(90).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

impl Call {
    fn q(text: String) -> Call {
        Call::Query {
            q: text,
            approx: false,
        }
    }

    fn text(&self) -> String {
        match self {
            Call::Query { q, .. } => q.clone(),
            Call::Get(p) => format!("GET {p}"),
            Call::Post(p, _) => format!("POST {p}"),
        }
    }

    /// Sends the call; the answer and whether it came from the rollups
    /// (`None`: not an aggregate query).
    async fn send(
        &self,
        client: &reqwest::Client,
        base: &str,
        now: &str,
    ) -> anyhow::Result<(Value, Option<bool>, Duration)> {
        let started = Instant::now();
        let resp = match self {
            Call::Query { q, approx } => {
                client
                    .post(format!("{base}/api/v1/query"))
                    .json(&json!({"q": q, "now": now, "approx_percentiles": approx}))
                    .send()
                    .await?
            }
            Call::Get(path) => client.get(format!("{base}{path}")).send().await?,
            Call::Post(path, body) => {
                client
                    .post(format!("{base}{path}"))
                    .json(body)
                    .send()
                    .await?
            }
        };
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let took = started.elapsed();
        if !status.is_success() && status.as_u16() != 404 {
            bail!("{} answered {status}: {body}", self.text());
        }
        let rollups = match self {
            Call::Query { q, .. } if q.contains('|') && !q.contains("| sort start_time") => {
                Some(body["stats"]["from_rollups"].as_bool().unwrap_or(false))
            }
            _ => None,
        };
        Ok((body, rollups, took))
    }
}

/// Runs `calls` concurrently; their answers, rollup flags and times.
async fn all(
    client: &reqwest::Client,
    base: &str,
    now: &str,
    calls: &[Call],
) -> anyhow::Result<Vec<(Value, Option<bool>, Duration)>> {
    futures::future::try_join_all(calls.iter().map(|c| c.send(client, base, now))).await
}

/// Column `name` of every row of a query answer.
fn column(body: &Value, name: &str) -> Vec<Value> {
    let Some(i) = body["columns"]
        .as_array()
        .and_then(|cs| cs.iter().position(|c| c["name"] == name))
    else {
        return Vec::new();
    };
    body["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r[i].clone()).collect())
        .unwrap_or_default()
}

fn quoted(values: &[Value]) -> String {
    values
        .iter()
        .filter_map(Value::as_str)
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The calls a page makes after its first ones, from their answers.
type NextCalls = fn(&[Value], &Context) -> Vec<Call>;

/// The pages: each a list of stages; the calls of a stage run together,
/// and a stage may use the previous stage's answers.
struct Page {
    name: &'static str,
    first: Vec<Call>,
    then: Option<NextCalls>,
}

fn pages(ctx: &Context) -> Vec<Page> {
    let t = format!("from {} to {}", rfc(ctx.start_ns), rfc(ctx.end_ns));
    let b = "3h"; // the console's bucket for a 7-day range
    let approx = |q: String| Call::Query { q, approx: true };
    let overview = vec![
        Call::q(format!(
            "span_kind=workflow {t} | by bucket({b}) | count() as n, error_rate() as err"
        )),
        approx(format!(
            "span_kind=workflow {t} | by bucket({b}) | p50(duration) as p50, p95(duration) as p95"
        )),
        approx(format!(
            "span_kind=workflow {t} | p50(duration) as p50, p95(duration) as p95"
        )),
        Call::q(format!(
            "span_kind=llm {t} | by bucket({b}) | sum(total_tokens) as tokens, sum(cost) as spend, count() as calls"
        )),
        Call::q(format!(
            "span_kind=workflow {t} | by app_id | count() as n, error_rate() as err | sort n desc | limit 8"
        )),
        Call::q(format!(
            "node_type exists {t} | by node_type | count() as n, error_rate() as err | sort n desc | limit 10"
        )),
        Call::q(format!(
            "span_kind=tool tool_name exists {t} | by tool_name | count() as n, error_rate() as err | sort n desc | limit 10"
        )),
        Call::q(format!(
            "span_kind=llm model_name exists {t} | by model_name | sum(total_tokens) as tokens, sum(cost) as spend, count() as n | sort tokens desc | limit 10"
        )),
        Call::q(format!(
            "span_kind=tool status=error {t} | by tool_name | count() as n | sort n desc | limit 8"
        )),
        Call::q(format!(
            "status=error exists error_class {t} | by error_class | count() as n | sort n desc | limit 8"
        )),
        Call::Get("/api/v1/settings".into()),
        Call::q(format!(
            "span_kind=workflow workflow_id exists {t} | by workflow_id | count() as n, error_rate() as err | sort n desc | limit 8"
        )),
    ];
    let runs_base = format!("{t} span_kind=workflow");
    // The Runs page unfiltered: every facet from the rollups (the node type,
    // tool and model facets count calls), the first page by the listing
    // that reads the newest hours first.
    let runs = vec![
        Call::q(format!(
            "{runs_base} | sort start_time desc, span_id desc | limit 51"
        )),
        Call::q(format!("{runs_base} | count() as n, error_rate() as err")),
        Call::Get("/api/v1/settings".into()),
        Call::q(format!(
            "{runs_base} | by status | count() as n | sort n desc | limit 8"
        )),
        Call::q(format!(
            "{runs_base} | by app_id | count() as n | sort n desc | limit 8"
        )),
        Call::q(format!(
            "{runs_base} | by tags.category | count() as n | sort n desc | limit 8"
        )),
        Call::q(format!(
            "{t} node_type exists | by node_type | count() as n | sort n desc | limit 8"
        )),
        Call::q(format!(
            "{t} tool_name exists | by tool_name | count() as n | sort n desc | limit 8"
        )),
        Call::q(format!(
            "{t} model_name exists | by model_name | count() as n | sort n desc | limit 8"
        )),
    ];
    let list = |kind: &str| {
        Call::Get(format!(
            "/api/v1/{kind}?from={}&to={}&limit=100",
            ctx.start_ns, ctx.end_ns
        ))
    };
    vec![
        Page {
            name: "Overview (7 d)",
            first: overview,
            then: Some(|answers, ctx| {
                // App names of the top apps, from their last hour of runs,
                // and a panel per metrics label.
                let ids = column(&answers[4], "app_id");
                let hour = format!(
                    "from {} to {}",
                    rfc(ctx.end_ns - 3_600_000_000_000),
                    rfc(ctx.end_ns)
                );
                let t = format!("from {} to {}", rfc(ctx.start_ns), rfc(ctx.end_ns));
                let workflows = column(&answers[11], "workflow_id");
                let mut calls = vec![
                    Call::q(format!(
                        "{hour} span_kind=workflow app_id in ({}) exists app_name | by app_id, app_name | count() as n | sort n desc",
                        quoted(&ids)
                    )),
                    Call::q(format!(
                        "{hour} span_kind=workflow workflow_id in ({}) exists app_name | by workflow_id, app_name | count() as n | sort n desc",
                        quoted(&workflows)
                    )),
                ];
                for label in answers[10]["metrics"]["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let Some(l) = label.as_str() {
                        calls.push(Call::q(format!(
                            "span_kind=workflow tags.{l} exists {t} | by tags.{l} | count() as n, success_rate() as ok | sort n desc | limit 10"
                        )));
                    }
                }
                calls
            }),
        },
        Page {
            name: "Runs (7 d, first page + facets)",
            first: runs,
            then: Some(|answers, ctx| {
                // The page's run totals (from its oldest run's start to 6 h
                // after its newest, as the console asks) and app names
                // (from the last hour).
                let ids = column(&answers[0], "run_id");
                let starts: Vec<i64> = column(&answers[0], "start_time")
                    .iter()
                    .filter_map(Value::as_i64)
                    .collect();
                let lo = starts.iter().min().copied().unwrap_or(ctx.start_ns) - 1_000_000_000;
                let hi = starts.iter().max().copied().unwrap_or(ctx.end_ns) + 6 * 3_600_000_000_000;
                let apps = column(&answers[4], "app_id");
                vec![
                    Call::q(format!(
                        "from {} to {} span_kind=llm run_id in ({}) | by run_id | sum(total_tokens) as tokens, sum(cost) as spend | limit {}",
                        rfc(lo),
                        rfc(hi),
                        quoted(&ids),
                        ids.len().max(1)
                    )),
                    Call::q(format!(
                        "from {} to {} span_kind=workflow app_id in ({}) exists app_name | by app_id, app_name | count() as n | sort n desc",
                        rfc(ctx.end_ns - 3_600_000_000_000),
                        rfc(ctx.end_ns),
                        quoted(&apps)
                    )),
                ]
            }),
        },
        Page {
            name: "Run view",
            first: vec![
                Call::Get(format!("/api/v1/traces/{}?payload_limit=8192", ctx.run_id)),
                Call::Get("/api/v1/settings".into()),
            ],
            then: None,
        },
        Page {
            name: "Sessions (7 d)",
            first: vec![list("sessions")],
            then: None,
        },
        Page {
            name: "Users (7 d)",
            first: vec![list("users")],
            then: None,
        },
        Page {
            // Issue 20's page (the console's "Users & conversations").
            name: "Users & conversations (7 d)",
            first: {
                let window = json!({"from": rfc(ctx.start_ns), "to": rfc(ctx.end_ns)});
                let mut paths = window.clone();
                paths["label"] = json!("outcome");
                vec![
                    Call::Post("/api/v1/analytics/conversations".into(), window.clone()),
                    Call::Post("/api/v1/analytics/paths".into(), paths),
                    Call::Post("/api/v1/analytics/relations".into(), window.clone()),
                    Call::Post("/api/v1/analytics/users".into(), window),
                    Call::Get("/api/v1/settings".into()),
                ]
            },
            // The page asks for the budgets after the four analyses.
            then: Some(|_, _| vec![Call::Get("/api/v1/budgets".into())]),
        },
        Page {
            // Issue 17's page, on the last day of the data.
            name: "Root cause (24 h)",
            first: vec![Call::Post(
                "/api/v1/rca".into(),
                json!({"target": "status=error", "from": rfc(ctx.end_ns - 86_400_000_000_000),
                    "to": rfc(ctx.end_ns)}),
            )],
            then: None,
        },
        Page {
            name: "Alert rule preview (24 h)",
            first: vec![Call::Post(
                "/api/v1/alerts/rules/preview".into(),
                json!({"rule": {"name": "bench", "metric": "failure_rate", "threshold": "10%",
                    "window": "5m", "filters": {"tool_name": "inventory"}}, "hours": 24}),
            )],
            then: None,
        },
        Page {
            name: "Alerts",
            first: vec![
                Call::Get("/api/v1/alerts".into()),
                Call::Get("/api/v1/alerts/rules".into()),
                Call::Get("/api/v1/alerts/silences".into()),
            ],
            then: None,
        },
        Page {
            name: "Dify",
            first: vec![Call::Get("/api/v1/dify/status".into())],
            then: None,
        },
        Page {
            name: "Settings",
            first: vec![Call::Get("/api/v1/settings".into())],
            then: None,
        },
    ]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Starts `loupe serve` on `data_dir` (alerting on, no rule) and times
/// every page `reps` times after a warm-up.
pub async fn run(
    loupe: &Path,
    data_dir: &Path,
    ctx: &Context,
    reps: usize,
) -> anyhow::Result<Vec<PageTiming>> {
    let conf = data_dir.with_extension("console.toml");
    std::fs::write(
        &conf,
        "[store]\nretention_days = 0\n\n[metrics]\nlabels = [\"category\"]\n\n[alerts]\nenabled = true\n",
    )?;
    let (http, grpc) = (free_port()?, free_port()?);
    let child = Command::new(loupe)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(&conf)
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start loupe serve")?;
    let _server = Killed(child);
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("loupe serve did not become ready on {}", data_dir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = rfc(ctx.end_ns);
    let mut out = Vec::new();
    for page in pages(ctx) {
        let mut walls = Vec::new();
        let mut per_call: Vec<Vec<Duration>> = Vec::new();
        let mut texts = Vec::new();
        let mut rollups = (0, 0);
        let mut first_view = Duration::ZERO;
        for rep in 0..=reps.max(1) {
            let started = Instant::now();
            let first = all(&client, &base, &now, &page.first).await?;
            let mut answers: Vec<Value> = first.iter().map(|a| a.0.clone()).collect();
            let mut results = first;
            let mut calls = page.first.clone();
            if let Some(then) = page.then {
                let next = then(&answers, ctx);
                let more = all(&client, &base, &now, &next).await?;
                answers.extend(more.iter().map(|a| a.0.clone()));
                results.extend(more);
                calls.extend(next);
            }
            let wall = started.elapsed();
            if rep == 0 {
                // Warm-up; record the shape once.
                first_view = wall;
                texts = calls.iter().map(Call::text).collect();
                per_call = vec![Vec::new(); calls.len()];
                rollups = results.iter().fold((0, 0), |(r, n), x| match x.1 {
                    Some(true) => (r + 1, n + 1),
                    Some(false) => (r, n + 1),
                    None => (r, n),
                });
                continue;
            }
            walls.push(wall);
            for (i, r) in results.iter().enumerate() {
                if let Some(v) = per_call.get_mut(i) {
                    v.push(r.2);
                }
            }
        }
        let slowest = per_call
            .into_iter()
            .enumerate()
            .map(|(i, v)| (median(v), texts.get(i).cloned().unwrap_or_default()))
            .max_by_key(|(d, _)| *d)
            .unwrap_or_default();
        eprintln!(
            "bench: console page {}: {:?}",
            page.name,
            median(walls.clone())
        );
        out.push(PageTiming {
            page: page.name,
            calls: texts.len(),
            rollups,
            wall: median(walls),
            first: first_view,
            slowest: (slowest.0, short(&slowest.1)),
        });
    }
    let _ = std::fs::remove_file(&conf);
    Ok(out)
}

/// The report's table.
pub fn table(rows: &[PageTiming]) -> String {
    let mut md = String::from(
        "| page | API calls | aggregates from rollups | server wall ms (median) | first view ms | slowest call ms | slowest call |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {}/{} | {} | {} | {} | `{}` |\n",
            r.page,
            r.calls,
            r.rollups.0,
            r.rollups.1,
            crate::report::ms(r.wall),
            crate::report::ms(r.first),
            crate::report::ms(r.slowest.0),
            r.slowest.1.replace('|', "\\|"),
        ));
    }
    md
}
