//! What the server says about itself, read-only, for the console's Dify
//! and Settings pages: `GET /api/v1/settings` (retention, tag rules and
//! metrics labels in effect for the caller's project) and
//! `GET /api/v1/dify/status` (the Dify sync: passes, lag, rows, skips,
//! errors). Answers 404 when the server was built without this
//! information (tests driving the router alone).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/settings", get(settings))
        .route("/api/v1/dify/status", get(dify_status))
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

async fn dify_status(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(info(&state)?.dify_status(&project)))
}
