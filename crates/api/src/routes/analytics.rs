//! `POST /api/v1/analytics/conversations`: sessions with their turns,
//! outcomes, abandonment, satisfaction, first-turn resolution and cost, by
//! app or business tag; `POST /api/v1/analytics/users`: new and returning
//! users, coming back after a failure, weekly retention; `POST
//! /api/v1/analytics/relations`: answer length, latency and cost against
//! failures and feedback, binned; `POST /api/v1/analytics/paths`: common
//! turn sequences and the last steps before users left (`loupe-analytics`;
//! docs/ANALYTICS.md).
//!
//! Body (all optional): `last` ("7d") or `from`/`to` (RFC 3339 or ns),
//! `now`, `gap` (quiet time that ends a session, default "30m"), `by`
//! (`app` or `tags.<key>`). A body that is not that shape is 400; values
//! that cannot be used are 422 naming them; over the query time limit 408.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use loupe_analytics::{
    AnalyticsError, ConversationsReport, ConversationsRequest, DEFAULT_GAP_NS, GroupBy, Label,
    PathsReport, PathsRequest, RelationsReport, RelationsRequest, UsersReport, UsersRequest,
};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/analytics/conversations", post(conversations))
        .route("/api/v1/analytics/users", post(users))
        .route("/api/v1/analytics/relations", post(relations))
        .route("/api/v1/analytics/paths", post(paths))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConversationsBody {
    last: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
    now: Option<Value>,
    gap: Option<String>,
    by: Option<String>,
}

const WEEK_NS: i64 = 7 * 86_400 * 1_000_000_000;

fn unprocessable(m: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
}

/// A positive duration field (`"30m"`), or `default`.
fn duration(name: &str, text: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let d = humantime::parse_duration(text)
        .map_err(|e| unprocessable(format!("`{name}` {text:?}: {e}")))?;
    i64::try_from(d.as_nanos())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| unprocessable(format!("`{name}` {text:?} must be positive and finite")))
}

fn request(body: ConversationsBody) -> Result<ConversationsRequest, ApiError> {
    let (from_ns, to_ns, now_ns) = super::rca::window(
        body.last.as_deref(),
        body.from.as_ref(),
        body.to.as_ref(),
        body.now.as_ref(),
        WEEK_NS,
    )?;
    let gap_ns = duration("gap", body.gap.as_deref(), DEFAULT_GAP_NS)?;
    let group_by = body
        .by
        .as_deref()
        .map(GroupBy::parse)
        .transpose()
        .map_err(|e| unprocessable(e.to_string()))?;
    Ok(ConversationsRequest {
        from_ns,
        to_ns,
        now_ns,
        gap_ns,
        group_by,
        limits: Default::default(),
    })
}

fn limits(state: &AppState) -> loupe_backend::QueryLimits {
    state.config.query_limits()
}

/// Runs an analysis under the query time limit, with its errors mapped.
async fn timed<T>(
    state: &AppState,
    analysis: impl std::future::Future<Output = Result<T, AnalyticsError>>,
) -> Result<T, ApiError> {
    let timeout = state.config.query_timeout;
    tokio::time::timeout(timeout, analysis)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the analysis ran longer than the {} s query limit; narrow the window",
                    timeout.as_secs_f64()
                ),
            )
        })?
        .map_err(|e| match e {
            AnalyticsError::Invalid(m) => unprocessable(m),
            AnalyticsError::Store(e) => ApiError::from(e),
        })
}

/// Body of `POST /api/v1/analytics/users` (all optional): the window as
/// for conversations (default the last 12 weeks), `gap` (ends a visit,
/// default 30m), `within` (comes back within, default 7d), `weeks` of
/// retention (default 8, at most 26).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UsersBody {
    last: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
    now: Option<Value>,
    gap: Option<String>,
    within: Option<String>,
    weeks: Option<usize>,
}

fn users_request(body: UsersBody) -> Result<UsersRequest, ApiError> {
    let (from_ns, to_ns, now_ns) = super::rca::window(
        body.last.as_deref(),
        body.from.as_ref(),
        body.to.as_ref(),
        body.now.as_ref(),
        12 * WEEK_NS,
    )?;
    Ok(UsersRequest {
        from_ns,
        to_ns,
        now_ns,
        gap_ns: duration("gap", body.gap.as_deref(), DEFAULT_GAP_NS)?,
        within_ns: duration("within", body.within.as_deref(), WEEK_NS)?,
        weeks: body.weeks.unwrap_or(8),
        limits: Default::default(),
    })
}

async fn users(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<UsersBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<UsersReport>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut req = users_request(body)?;
    req.limits = limits(&state);
    let report = timed(
        &state,
        loupe_analytics::users(state.reader.as_ref(), &project, &req),
    )
    .await?;
    Ok(Json(report))
}

/// Body of `POST /api/v1/analytics/paths`: the window as for
/// conversations, `gap`, `label` (`outcome`, the default, `app` or
/// `tags.<key>`) and `depth` (turns, default 3).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PathsBody {
    last: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
    now: Option<Value>,
    gap: Option<String>,
    label: Option<String>,
    depth: Option<usize>,
}

async fn paths(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<PathsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PathsReport>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (from_ns, to_ns, now_ns) = super::rca::window(
        body.last.as_deref(),
        body.from.as_ref(),
        body.to.as_ref(),
        body.now.as_ref(),
        WEEK_NS,
    )?;
    let label = Label::parse(body.label.as_deref().unwrap_or("outcome"))
        .map_err(|e| unprocessable(e.to_string()))?;
    let req = PathsRequest {
        from_ns,
        to_ns,
        now_ns,
        gap_ns: duration("gap", body.gap.as_deref(), DEFAULT_GAP_NS)?,
        label,
        depth: body.depth.unwrap_or(3),
        limits: limits(&state),
    };
    let report = timed(
        &state,
        loupe_analytics::paths(state.reader.as_ref(), &project, &req),
    )
    .await?;
    Ok(Json(report))
}

/// Body of `POST /api/v1/analytics/relations`: the window (`last` or
/// `from`/`to`, default the last 7 days) and `now`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RelationsBody {
    last: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
    now: Option<Value>,
}

async fn relations(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<RelationsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RelationsReport>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (from_ns, to_ns, _) = super::rca::window(
        body.last.as_deref(),
        body.from.as_ref(),
        body.to.as_ref(),
        body.now.as_ref(),
        WEEK_NS,
    )?;
    let req = RelationsRequest {
        from_ns,
        to_ns,
        limits: limits(&state),
    };
    let report = timed(
        &state,
        loupe_analytics::relations(state.reader.as_ref(), &project, &req),
    )
    .await?;
    Ok(Json(report))
}

async fn conversations(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<ConversationsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ConversationsReport>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut req = request(body)?;
    req.limits = limits(&state);
    let report = timed(
        &state,
        loupe_analytics::conversations(state.reader.as_ref(), &project, &req),
    )
    .await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> ConversationsBody {
        serde_json::from_value(json).expect("body")
    }

    #[test]
    fn the_window_gap_and_grouping_come_from_the_body_and_bad_ones_are_named() {
        let req = request(body(
            serde_json::json!({"last": "1d", "now": 100_000_000_000_000i64, "gap": "10m", "by": "tags.tier"}),
        ))
        .expect("request");
        assert_eq!(req.to_ns - req.from_ns, 86_400_000_000_000);
        assert_eq!(req.gap_ns, 600_000_000_000);
        assert_eq!(req.group_by, Some(GroupBy::Tag("tier".into())));
        let req = request(ConversationsBody::default()).expect("defaults");
        assert_eq!(req.to_ns - req.from_ns, WEEK_NS);
        assert_eq!(req.gap_ns, DEFAULT_GAP_NS);
        for (bad, names) in [
            (serde_json::json!({"by": "user_id"}), "user_id"),
            (serde_json::json!({"gap": "soon"}), "gap"),
            (serde_json::json!({"last": "1d", "from": 1}), "not both"),
        ] {
            let Err(err) = request(body(bad)) else {
                panic!("accepted");
            };
            assert!(err.message.contains(names), "{}", err.message);
        }
    }
}
