//! Alerting API: `GET/POST /api/v1/alerts/rules`,
//! `DELETE /api/v1/alerts/rules/{name}`, `POST /api/v1/alerts/rules/preview`
//! (what a rule would have fired, [`super::alert_preview`]),
//! `GET/POST /api/v1/alerts/silences`, `DELETE /api/v1/alerts/silences/{id}`,
//! `GET /api/v1/alerts` (active alerts), `GET /api/v1/alerts/history`
//! (`?limit=`, 1–1000, default 200: the notices sent, newest first, with
//! each channel's and action's result), `GET /api/v1/alerts/channels`
//! (names and types) and `POST /api/v1/alerts/channels/{name}/test` (one
//! test notice, admin). Answers 404 when alerting is not running.
//!
//! Everything is the key's project's: rules, silences and alerts of other
//! projects are neither listed nor reachable (a name or id of another
//! project is a 404), a posted rule reads only its project and a silence
//! mutes only its project's alerts. Listing needs a `read` key, changing
//! an `admin` key ([`crate::auth::required_scope`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use loupe_alerts::{Engine, Error, Rule, Silence};
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/rules", get(list_rules).post(add_rule))
        .route("/api/v1/alerts/rules/{name}", delete(delete_rule))
        .route(
            "/api/v1/alerts/rules/preview",
            post(super::alert_preview::preview),
        )
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/alerts/channels", get(list_channels))
        .route("/api/v1/alerts/channels/{name}/test", post(test_channel))
        .route(
            "/api/v1/alerts/silences",
            get(list_silences).post(add_silence),
        )
        .route("/api/v1/alerts/silences/{id}", delete(delete_silence))
}

pub(crate) fn engine(state: &AppState) -> Result<&std::sync::Arc<Engine>, ApiError> {
    state
        .alerts
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "alerting is not enabled"))
}

pub(crate) fn api_error(e: Error) -> ApiError {
    let status = match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        // The service refused or could not be reached: its answer, as a
        // gateway would report it.
        Error::Delivery(_) => StatusCode::BAD_GATEWAY,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

async fn list_alerts(
    State(s): State<AppState>,
    Project(p): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "alerts": engine(&s)?.alerts_of(p.as_str()) })))
}

async fn list_rules(
    State(s): State<AppState>,
    Project(p): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "rules": engine(&s)?.rules_of(p.as_str()) })))
}

async fn add_rule(
    State(s): State<AppState>,
    Project(p): Project,
    Json(rule): Json<Rule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = rule.name.clone();
    engine(&s)?.add_rule(p.as_str(), rule).map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))))
}

async fn delete_rule(
    State(s): State<AppState>,
    Project(p): Project,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine(&s)?
        .delete_rule(p.as_str(), &name)
        .map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_silences(
    State(s): State<AppState>,
    Project(p): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "silences": engine(&s)?.silences_of(p.as_str()) }),
    ))
}

async fn add_silence(
    State(s): State<AppState>,
    Project(p): Project,
    Json(silence): Json<Silence>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = engine(&s)?
        .add_silence(p.as_str(), silence)
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn delete_silence(
    State(s): State<AppState>,
    Project(p): Project,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine(&s)?
        .delete_silence(p.as_str(), &id)
        .map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_channels(
    State(s): State<AppState>,
    Project(_): Project,
) -> Result<Json<Value>, ApiError> {
    let channels: Vec<Value> = engine(&s)?
        .channel_names()
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "type": kind}))
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

async fn test_channel(
    State(s): State<AppState>,
    Project(p): Project,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let took = engine(&s)?
        .test_channel(p.as_str(), &name)
        .await
        .map_err(api_error)?;
    Ok(Json(
        json!({ "channel": name, "sent": true, "elapsed_ms": took.as_millis() as u64 }),
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    limit: Option<usize>,
}

async fn history(
    State(s): State<AppState>,
    Project(p): Project,
    params: Result<axum::extract::Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let axum::extract::Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    Ok(Json(
        json!({ "history": engine(&s)?.history_of(p.as_str(), limit) }),
    ))
}
