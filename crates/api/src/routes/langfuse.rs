//! The Langfuse-compatible public API, so Langfuse SDKs and Dify's Langfuse
//! provider work against Loupe unchanged (host = Loupe's HTTP address, keys
//! from `loupe keys create`). Every route authenticates like the rest of
//! Loupe (HTTP Basic `public_key:secret_key`, see [`crate::auth`]).
//!
//! - `POST /api/public/ingestion`: a batch of events → HTTP 207
//!   `{"successes": [{"id", "status": 201}], "errors": [{"id", "status",
//!   "message", "error"}]}`; 201 means durable in Loupe's WAL (and, unlike
//!   Langfuse, readable at once). 400 when the body is not `{"batch": [...]}`,
//!   413 over 4.5 MiB, 503 + Retry-After when the store is over budget.
//! - `GET /api/public/projects`: the key's project as
//!   `{"data": [{"id", "name", "organization": {"id", "name"}, "metadata"}]}`
//!   (Dify's `auth_check()` needs one entry; its project link uses `id`).
//! - `GET /api/public/health`: `{"status": "OK", "version"}`.
//! - Reads ([`read`]): `GET /api/public/traces`, `/api/public/traces/{id}`,
//!   `/api/public/observations`.

mod read;
mod view;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loupe_ingest::langfuse::{BatchError, MAX_BODY_BYTES, prepare_with};
use loupe_ingest::otlp::now_ns;
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/public/ingestion",
            post(ingestion).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/api/public/projects", get(projects))
        .route("/api/public/health", get(health))
        .route("/api/public/traces", get(read::traces))
        .route("/api/public/traces/{id}", get(read::trace))
        .route("/api/public/observations", get(read::observations))
}

async fn ingestion(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!("request body exceeds the Langfuse ingestion limit of {MAX_BODY_BYTES} bytes; send smaller batches"),
            )
        } else {
            ApiError::new(status, format!("could not read the request body: {rejection}"))
        }
    })?;
    let _slot = state.ingest_gate.admit().await?;
    let config = state.config.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        prepare_with(project.as_str(), &body, &config.ingest, Some(now_ns()))
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "langfuse prepare task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the Loupe server log",
        )
    })?
    .map_err(|e| match e {
        BatchError::TooManyEvents { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    })?;
    let stored = prepared.spans.len();
    state.pipeline.write(prepared.spans).await?;
    let mut successes = Vec::new();
    let mut errors = Vec::new();
    for result in prepared.results {
        match result.outcome {
            Ok(()) => successes.push(json!({ "id": result.id, "status": 201 })),
            Err(e) => errors.push(json!({
                "id": result.id,
                "status": e.status,
                "message": e.message,
                "error": e.error,
            })),
        }
    }
    tracing::debug!(
        stored,
        events = successes.len(),
        rejected = errors.len(),
        "langfuse ingestion"
    );
    Ok((
        StatusCode::MULTI_STATUS,
        Json(json!({ "successes": successes, "errors": errors })),
    )
        .into_response())
}

async fn projects(Project(project): Project) -> Json<Value> {
    Json(json!({
        "data": [{
            "id": project.as_str(),
            "name": project.as_str(),
            "organization": { "id": "loupe", "name": "Loupe" },
            "metadata": {},
        }]
    }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "OK", "version": env!("CARGO_PKG_VERSION") }))
}
