//! What the server says about itself, read-only, for the console's Dify
//! and Settings pages: `GET /api/v1/settings` (retention, tag rules and
//! metrics labels in effect for the caller's project) and
//! `GET /api/v1/dify/status` (the Dify sync: passes, lag, rows, skips,
//! errors), `GET /api/v1/dify/health` (the Dify database's sizes, growth,
//! upkeep and load, and recent cleanups) and `GET /api/v1/dify/cleanups`
//! (the recorded cleanup runs; `?limit=`, default 50, at most 500), and
//! `GET /api/v1/budgets` (the project's budgets with the spend of their
//! current period, per group when `per` is set, what each notified, where
//! it is set, and the channels a budget may notify).
//! Budgets are also changed here (admin): `PUT /api/v1/budgets/{name}`
//! (a `[[budgets]]` entry as JSON, without `name` and `project`, which the
//! path and the key give; 201 added, 200 replaced) and `DELETE
//! /api/v1/budgets/{name}` (204). A `loupe.toml` budget is 409.
//! Retention is also changed here: `POST /api/v1/settings/retention/preview`
//! (read: `{"days": N}` → what the maintenance pass would drop) and `PUT
//! /api/v1/settings/retention` (admin: `{"days": N | null, "confirm":
//! bool}`; a change that drops stored data needs `confirm`, else 409 with
//! the preview).
//! Answers 404 when the server was built without this information (tests
//! driving the router alone).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::Value;

use loupe_backend::StoreError;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/settings", get(settings))
        .route("/api/v1/settings/retention", put(set_retention))
        .route(
            "/api/v1/settings/retention/preview",
            post(retention_preview),
        )
        .route("/api/v1/dify/status", get(dify_status))
        .route("/api/v1/dify/health", get(dify_health))
        .route("/api/v1/dify/cleanups", get(dify_cleanups))
        .route("/api/v1/budgets", get(budgets))
        .route(
            "/api/v1/budgets/{name}",
            put(put_budget).delete(delete_budget),
        )
}

fn info(state: &AppState) -> Result<&std::sync::Arc<dyn crate::ServerInfo>, ApiError> {
    state.info.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server does not report its settings",
        )
    })
}

async fn settings(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(info(&state)?.settings(&project)))
}

/// Body of the retention routes.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionBody {
    /// Days kept (0 = forever); `null` on PUT: back to the default.
    days: Option<u32>,
    /// PUT: the drop the preview showed is intended.
    #[serde(default)]
    confirm: bool,
}

fn retention_body(body: &[u8]) -> Result<RetentionBody, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"days\": <whole days, 0 = forever>, \"confirm\": bool}}: {e}"
        ))
    })
}

async fn retention_preview(
    State(state): State<AppState>,
    Project(project): Project,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b = retention_body(&body)?;
    let days = b
        .days
        .ok_or_else(|| ApiError::bad_request("days: a number of days is needed (0 = forever)"))?;
    Ok(Json(info(&state)?.retention_preview(&project, days)?))
}

async fn set_retention(
    State(state): State<AppState>,
    Project(project): Project,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let b = retention_body(&body)?;
    Ok(Json(
        info(&state)?.set_retention(&project, b.days, b.confirm)?,
    ))
}

async fn dify_status(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(info(&state)?.dify_status(&project)))
}

async fn dify_health(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    let info = info(&state)?.clone();
    // The report reads the cleanup history file: off the async threads.
    let value = tokio::task::spawn_blocking(move || info.dify_health(&project))
        .await
        .map_err(|e| {
            ApiError::from(StoreError::Internal(format!(
                "dify health task failed: {e}"
            )))
        })?;
    Ok(Json(value))
}

/// `?limit=` of the cleanup list.
#[derive(Debug, serde::Deserialize)]
struct CleanupsQuery {
    limit: Option<String>,
}

/// Cleanup runs listed at most per request (the history keeps 500).
const MAX_CLEANUPS: usize = 500;

async fn dify_cleanups(
    State(state): State<AppState>,
    Project(project): Project,
    Query(q): Query<CleanupsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_CLEANUPS).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("limit {text:?}: expected a number from 1 to {MAX_CLEANUPS}"),
                ));
            }
        },
    };
    let info = info(&state)?.clone();
    let value = tokio::task::spawn_blocking(move || info.dify_cleanups(&project, limit))
        .await
        .map_err(|e| {
            ApiError::from(StoreError::Internal(format!(
                "dify cleanups task failed: {e}"
            )))
        })?;
    Ok(Json(value))
}

/// Groups of a `per` budget listed at most (the most spent first).
const MAX_BUDGET_GROUPS: usize = 50;

async fn budgets(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    let info = info(&state)?.clone();
    let now = loupe_model::time::now_ns();
    let mut out = Vec::new();
    for entry in info.budgets(&project) {
        let (budget, notified) = (entry.budget, entry.notified);
        let start = budget.period.start(now);
        let failed = |e: loupe_analytics::AnalyticsError| {
            ApiError::from(StoreError::Internal(format!("budget {}: {e}", budget.name)))
        };
        let limits = loupe_backend::QueryLimits::default();
        let reader = state.reader.as_ref();
        let (spends, uncounted) = futures::try_join!(
            loupe_analytics::budgets::spend(reader, &budget, now, limits),
            loupe_analytics::budgets::uncounted(reader, &budget, now, limits),
        )
        .map_err(failed)?;
        let mut spends = spends;
        spends.sort_by(|a, b| b.1.total_cmp(&a.1));
        let groups = spends.len();
        spends.truncate(MAX_BUDGET_GROUPS);
        let amount = budget.amount;
        let spent: Vec<Value> = spends
            .into_iter()
            .map(|(group, spent)| {
                serde_json::json!({
                    "group": group,
                    "spent": spent,
                    "share": if amount > 0.0 { spent / amount } else { 0.0 },
                })
            })
            .collect();
        // What was notified belongs to the current period only.
        let notified = notified
            .filter(|n| n.period_start_ns == start)
            .map(|n| n.notified)
            .unwrap_or_default();
        out.push(serde_json::json!({
            "budget": budget,
            "source": entry.source,
            "editable": entry.source != "loupe.toml",
            "period_start": loupe_model::time::format_instant(start),
            "spent": spent,
            "groups": groups,
            "notified": notified,
            // Spend in currencies without a rate: shown, never added.
            "other_currencies": uncounted
                .into_iter()
                .map(|(currency, spent)| serde_json::json!({"currency": currency, "spent": spent}))
                .collect::<Vec<_>>(),
        }));
    }
    Ok(Json(serde_json::json!({
        "budgets": out,
        "channels": info.budget_channels(),
    })))
}

/// `PUT /api/v1/budgets/{name}`: the budget from the body, its name from
/// the path and its project from the key.
async fn put_budget(
    State(state): State<AppState>,
    Project(project): Project,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let shape = "expected a budget as JSON: {\"amount\": 100, \"period\": \"month\", \"currency\": \"USD\", \"filter\": {\"app_name\": \"Shop\"}, \"per\": \"user\", \"thresholds\": [0.8, 1.0], \"notify\": [\"ops\"]}";
    let mut fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ApiError::bad_request(shape)),
        Err(e) => return Err(ApiError::bad_request(format!("{shape}: {e}"))),
    };
    for (field, given) in [("name", name.as_str()), ("project", project.as_str())] {
        match fields.get(field) {
            None => {}
            Some(Value::String(v)) if v == given => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{field} {other} differs from the {}: leave it out",
                    if field == "name" {
                        "path's"
                    } else {
                        "key's project"
                    }
                )));
            }
        }
        fields.insert(field.into(), Value::String(given.to_owned()));
    }
    let budget: loupe_analytics::budgets::BudgetConfig =
        serde_json::from_value(Value::Object(fields)).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("budget {name:?}: {e}"),
            )
        })?;
    let info = info(&state)?.clone();
    // Written durably (fsync): off the async threads.
    let (budget, created) = tokio::task::spawn_blocking(move || info.put_budget(budget))
        .await
        .map_err(|e| ApiError::from(StoreError::Internal(format!("budget task failed: {e}"))))??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(serde_json::json!({ "budget": budget, "created": created })),
    ))
}

/// `DELETE /api/v1/budgets/{name}`.
async fn delete_budget(
    State(state): State<AppState>,
    Project(project): Project,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let info = info(&state)?.clone();
    tokio::task::spawn_blocking(move || info.delete_budget(&project, &name))
        .await
        .map_err(|e| ApiError::from(StoreError::Internal(format!("budget task failed: {e}"))))??;
    Ok(StatusCode::NO_CONTENT)
}
