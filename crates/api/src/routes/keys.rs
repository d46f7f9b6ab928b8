//! Key management: `GET /api/v1/keys` (the caller's project's keys, public
//! parts only), `POST /api/v1/keys` (`{"scope": "ingest"|"read"|"admin"}`;
//! 201 with the secret, shown once) and `DELETE /api/v1/keys/{public_key}`.
//! Every route needs an `admin` key ([`crate::auth::required_scope`]) and
//! acts on the caller's project only: another project's key is a 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{KeyEditError, Project, Scope};
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/keys", get(list).post(create))
        .route("/api/v1/keys/{public_key}", delete(revoke))
}

/// Body of `POST /api/v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    scope: String,
}

impl From<KeyEditError> for ApiError {
    fn from(e: KeyEditError) -> Self {
        let status = match &e {
            KeyEditError::NotFound(_) => StatusCode::NOT_FOUND,
            KeyEditError::NotManaged | KeyEditError::InConfig(_) | KeyEditError::LastAdmin(_) => {
                StatusCode::CONFLICT
            }
            KeyEditError::FirstNotAdmin => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    let auth = state.auth.clone();
    let p = project.clone();
    let keys = tokio::task::spawn_blocking(move || auth.list_keys(&p))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(Json(json!({
        "project": project.as_str(),
        "enforced": state.auth.enforced(),
        "keys": keys,
    })))
}

async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let scope: Scope = body.scope.parse().map_err(ApiError::bad_request)?;
    let auth = state.auth.clone();
    let created = tokio::task::spawn_blocking(move || auth.create_key(&project, scope))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn revoke(
    State(state): State<AppState>,
    Project(project): Project,
    Path(public_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let auth = state.auth.clone();
    tokio::task::spawn_blocking(move || auth.revoke_key(&project, &public_key))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(StatusCode::NO_CONTENT)
}
