//! `POST /api/v1/tags/apply`: the tag rules in effect, applied to the runs
//! already stored (a rule added today tags yesterday's runs). Body:
//! `{"from": instant, "to": instant, "max_runs": n}`, all optional (RFC 3339
//! or ns; default: every run, at most 1,000,000). Answer:
//! `{"runs_scanned", "runs_tagged", "truncated", "oldest_start"}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/tags/apply", post(apply))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ApplyBody {
    from: Option<Value>,
    to: Option<Value>,
    max_runs: Option<u64>,
}

fn instant(field: &str, v: Option<&Value>) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{field}: not a whole number of ns"))),
        Some(Value::String(s)) => loupe_model::time::parse_instant(s)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("{field}: {e}"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "{field}: give an RFC 3339 time or ns since 1970"
        ))),
    }
}

async fn apply(
    State(state): State<AppState>,
    Project(project): Project,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ApplyBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApplyBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?
    };
    let from = instant("from", body.from.as_ref())?;
    let to = instant("to", body.to.as_ref())?;
    let done = state
        .pipeline
        .retag(
            state.reader.as_ref(),
            &project,
            from,
            to,
            body.max_runs.unwrap_or(1_000_000),
        )
        .await?;
    Ok(Json(serde_json::to_value(done).unwrap_or_default()))
}
