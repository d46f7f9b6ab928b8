//! A Dify cleanup started, watched and stopped from the console, run by the
//! server itself with the CLI's guarantees (`loupe_dify::relief`: per-batch
//! verification against the store, Loupe's retention checked first, one
//! deleting cleanup per data directory):
//!
//! - `POST /api/v1/dify/cleanups/job` (admin): body `{"older_than": "30d",
//!   "scope": "runs", "dry_run": true, "batch": 500, "max_batches": n}`
//!   (only `older_than` is required) → 202 with the job once the cleaner
//!   has connected and accepted the database; 409 while another runs; 422
//!   for a bad value or a refusal (a cutoff past Loupe's retention, a
//!   database this data directory never synced);
//! - `GET /api/v1/dify/cleanups/job` (read): the running job's progress,
//!   or the last finished one with its report (`{"job": null}` when none
//!   ran since the server started);
//! - `DELETE /api/v1/dify/cleanups/job` (admin): asks the running job to
//!   stop after its current batch; it resumes where it stopped next time.
//!
//! The Dify DSN is the server's `[dify] dsn`, never the request's. Answers
//! 404 where no Dify database is synced into the caller's project.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/dify/cleanups/job",
        get(current).post(start).delete(stop),
    )
}

/// What the console asks a cleanup to do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// Only rows created longer ago than this (`30d`, `12h`).
    pub older_than: String,
    /// `nodes`, `runs` (default) or `messages`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Verify and count, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Runs (messages) per batch at most (default 500, at most 10,000).
    #[serde(default)]
    pub batch: Option<usize>,
    /// Stop after this many batches.
    #[serde(default)]
    pub max_batches: Option<u64>,
}

/// Why a cleanup could not be started, watched or stopped.
#[derive(Debug)]
pub enum CleanupRefusal {
    /// No Dify database is synced into this project (404).
    NotHere(String),
    /// A bad value, or the cleaner refused the database (422).
    Invalid(String),
    /// Another cleanup is running, or none is to stop (409).
    Conflict(String),
    /// The database could not be reached (502).
    Unreachable(String),
}

impl From<CleanupRefusal> for ApiError {
    fn from(r: CleanupRefusal) -> Self {
        match r {
            CleanupRefusal::NotHere(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            CleanupRefusal::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            CleanupRefusal::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            CleanupRefusal::Unreachable(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
        }
    }
}

/// Runs Dify cleanups inside the server (implemented by the binary, which
/// owns the Dify connector and the store).
pub trait CleanupControl: Send + Sync {
    /// Connects and starts a cleanup for `project`; the answer is the job
    /// as [`CleanupControl::current`] shows it.
    fn start<'a>(
        &'a self,
        project: &'a loupe_model::ProjectId,
        request: CleanupRequest,
    ) -> BoxFuture<'a, Result<Value, CleanupRefusal>>;
    /// `{"job": …}`: the running or last finished job of `project`.
    fn current(&self, project: &loupe_model::ProjectId) -> Result<Value, CleanupRefusal>;
    /// Asks the running job to stop after its batch.
    fn stop(&self, project: &loupe_model::ProjectId) -> Result<Value, CleanupRefusal>;
}

fn control(state: &AppState) -> Result<&std::sync::Arc<dyn CleanupControl>, ApiError> {
    state.cleanup.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server does not run Dify cleanups (no [dify] dsn)",
        )
    })
}

async fn start(
    State(state): State<AppState>,
    Project(project): Project,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CleanupRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("cleanup request: {e}")))?;
    let job = control(&state)?.start(&project, request).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

async fn current(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(control(&state)?.current(&project)?))
}

async fn stop(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(control(&state)?.stop(&project)?))
}
