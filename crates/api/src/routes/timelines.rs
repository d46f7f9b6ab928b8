//! Sessions and users: `GET /api/v1/sessions/{id}` (the runs of a
//! conversation in order, with status, latency, tokens and cost),
//! `GET /api/v1/users/{id}` (runs, failure rate, p50/p95 latency, tokens,
//! cost, feedback scores and the most recent runs), and the lists of the
//! most recently active ones, `GET /api/v1/sessions` and `GET /api/v1/users`
//! (`?from=&to=` RFC 3339 or ns, default the last 7 days; `limit` 1–500,
//! default 100).
//!
//! A list reads the newest [`RECENT_RUNS`] runs of the range that have the
//! id (a listing by start time, which reads the newest hours first) and
//! groups them: the sessions (users) most recently active, each with its
//! runs, failures and last activity among those runs. `complete` says
//! whether those were all the range's runs; when not, the counts cover the
//! runs since `since`, and a session's own page shows all of its runs. So
//! the list costs the same at 10M spans as at 10k, where grouping every
//! run of a week by a high-cardinality id would scan the week.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use loupe_backend::Plan;
use loupe_backend::plan::{Cmp, FieldRef, Filter, Literal, Output, SortColumn, SortKey, ValueType};
use loupe_model::column;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

/// Runs a session or user list reads at most.
pub(crate) const RECENT_RUNS: u64 = 1_000;
const WEEK_NS: i64 = 7 * 86_400 * 1_000_000_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", get(list_sessions))
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/sessions/{id}", get(session))
        .route("/api/v1/users/{id}", get(user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

fn instant(name: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(ns) = v.parse::<i64>() {
        return Ok(ns);
    }
    loupe_model::time::parse_instant(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

/// One id's runs among those read.
#[derive(Default)]
struct Group {
    runs: u64,
    failed: u64,
    first_seen: i64,
    last_seen: i64,
    other: Option<String>,
    durations: Vec<i64>,
}

/// The list of the ids of `field` most recently active in the range.
async fn recent(
    state: &AppState,
    project: &loupe_model::ProjectId,
    params: ListParams,
    field: &str,
    other: &str,
) -> Result<Value, ApiError> {
    let now = loupe_model::time::now_ns();
    let to = params
        .to
        .as_deref()
        .map(|v| instant("to", v))
        .transpose()?
        .unwrap_or(now);
    let from = params
        .from
        .as_deref()
        .map(|v| instant("from", v))
        .transpose()?
        .unwrap_or(to - WEEK_NS);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 500, not {limit}"
        )));
    }
    let col = |name: &str, ty| FieldRef::Column {
        name: name.to_owned(),
        ty,
    };
    let plan = Plan {
        source: loupe_backend::plan::Source::Spans,
        from_ns: from,
        to_ns: to,
        filter: Some(Filter::And(vec![
            Filter::Compare {
                field: col(column::SPAN_KIND, ValueType::Text),
                op: Cmp::Eq,
                value: Literal::Text("workflow".into()),
            },
            Filter::Exists(col(field, ValueType::Text)),
        ])),
        group_by: Vec::new(),
        aggregates: Vec::new(),
        sort: vec![
            SortKey {
                column: SortColumn::Field(col(column::START_TIME, ValueType::Timestamp)),
                descending: true,
            },
            SortKey {
                column: SortColumn::Field(col(column::SPAN_ID, ValueType::Text)),
                descending: true,
            },
        ],
        limit: Some(RECENT_RUNS),
        output: Output::Rows(vec![
            col(field, ValueType::Text),
            col(column::START_TIME, ValueType::Timestamp),
            col(column::STATUS, ValueType::Text),
            col(column::DURATION, ValueType::Duration),
            col(other, ValueType::Text),
        ]),
        approx_percentiles: false,
    };
    let limits = state.config.query_limits();
    let result = tokio::time::timeout(
        state.config.query_timeout,
        state.reader.query(project, &plan, limits),
    )
    .await
    .map_err(|_| ApiError::new(StatusCode::REQUEST_TIMEOUT, "the list took too long"))??;
    let read = result.rows.len() as u64;
    let mut groups: HashMap<String, Group> = HashMap::new();
    let mut oldest = to;
    for row in &result.rows {
        let (Some(id), Some(start)) = (row[0].as_str(), row[1].as_i64()) else {
            continue;
        };
        oldest = oldest.min(start);
        let g = groups.entry(id.to_owned()).or_insert_with(|| Group {
            first_seen: start,
            last_seen: start,
            ..Group::default()
        });
        g.runs += 1;
        g.failed += u64::from(row[2].as_str() == Some("error"));
        g.first_seen = g.first_seen.min(start);
        g.last_seen = g.last_seen.max(start);
        if let Some(d) = row[3].as_i64() {
            g.durations.push(d);
        }
        if g.other.is_none() {
            g.other = row[4].as_str().map(str::to_owned);
        }
    }
    let mut list: Vec<(String, Group)> = groups.into_iter().collect();
    list.sort_by(|a, b| b.1.last_seen.cmp(&a.1.last_seen).then(a.0.cmp(&b.0)));
    list.truncate(limit);
    let items: Vec<Value> = list
        .into_iter()
        .map(|(id, mut g)| {
            g.durations.sort_unstable();
            let pct = |q: f64| {
                (!g.durations.is_empty()).then(|| {
                    let i = ((g.durations.len() - 1) as f64 * q).round() as usize;
                    g.durations[i]
                })
            };
            json!({
                field: id,
                other: g.other,
                "runs": g.runs,
                "failed": g.failed,
                "failure_rate": g.failed as f64 / g.runs.max(1) as f64,
                "first_seen": g.first_seen,
                "last_seen": g.last_seen,
                "p50_latency_ns": pct(0.5),
                "p95_latency_ns": pct(0.95),
            })
        })
        .collect();
    let complete = read < RECENT_RUNS;
    Ok(json!({
        "items": items,
        "from": from,
        "to": to,
        "runs_read": read,
        "complete": complete,
        "since": if complete { from } else { oldest },
        "elapsed_ms": result.stats.elapsed_ms,
    }))
}

async fn list_sessions(
    State(state): State<AppState>,
    Project(project): Project,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(
        recent(
            &state,
            &project,
            params,
            column::SESSION_ID,
            column::USER_ID,
        )
        .await?,
    ))
}

async fn list_users(
    State(state): State<AppState>,
    Project(project): Project,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(
        recent(
            &state,
            &project,
            params,
            column::USER_ID,
            column::SESSION_ID,
        )
        .await?,
    ))
}

async fn session(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let runs = state.reader.session_runs(&project, &id).await?;
    if runs.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no runs with session id {id:?} in project {project}"),
        ));
    }
    let total_tokens: i64 = runs.iter().map(|r| r.total_tokens).sum();
    let cost: f64 = runs.iter().map(|r| r.cost).sum();
    Ok(Json(json!({
        "session_id": id,
        "user_id": runs.iter().find_map(|r| r.user_id.clone()),
        "run_count": runs.len(),
        "total_tokens": total_tokens,
        "cost": cost,
        "runs": runs,
    })))
}

async fn user(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.reader.user_summary(&project, &id).await? {
        Some(summary) => Ok(Json(json!(summary))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no runs of user {id:?} in project {project}"),
        )),
    }
}
