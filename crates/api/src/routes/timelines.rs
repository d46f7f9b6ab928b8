//! Sessions and users: `GET /api/v1/sessions/{id}` (the runs of a
//! conversation in order, with status, latency, tokens and cost) and
//! `GET /api/v1/users/{id}` (runs, failure rate, p50/p95 latency, tokens,
//! cost, feedback scores and the most recent runs).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions/{id}", get(session))
        .route("/api/v1/users/{id}", get(user))
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
