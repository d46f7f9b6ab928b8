//! `GET /metrics`: the rollups in the Prometheus text format, or OpenMetrics
//! when the scraper's `Accept` names `application/openmetrics-text`.
//!
//! Served from the in-memory rollups only (never a span scan), so a scrape
//! costs the same at any data volume. With `metrics_public` the body covers
//! every project; otherwise the key's project only.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use loupe_rollup::expose::Format;

use crate::AppState;
use crate::auth::Project;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>, req: Request) -> Response {
    let Some(render) = state.metrics.clone() else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response();
    };
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let project = req
        .extensions()
        .get::<Project>()
        .map(|p| p.0.as_str().to_owned());
    let body = match tokio::task::spawn_blocking(move || render(format, project.as_deref())).await {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response();
        }
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}
