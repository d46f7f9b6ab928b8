//! Business-tag rules over the API:
//! - `GET /api/v1/tags/rules` (read): the rules that apply to the caller's
//!   project, in the order they run, each with `source` (`config`: set in
//!   `loupe.toml`; `console`: added here), and whether rules are editable;
//! - `PUT /api/v1/tags/rules/{name}` (admin): adds or replaces this
//!   project's rule (`{"from": "input"|"attribute", "path", "regex",
//!   "app_id"}`); 422 names what is invalid, 409 a name `loupe.toml` sets;
//! - `DELETE /api/v1/tags/rules/{name}` (admin);
//! - `POST /api/v1/tags/rules/preview` (read): `{"rule": {…}, "from", "to",
//!   "max_runs"}` → what the rule would tag on the newest stored runs
//!   (default: the last 24 hours, at most 1,000 runs; 10,000 at most);
//! - `POST /api/v1/tags/apply` (admin): the rules in effect, applied to
//!   the runs already stored (a rule added today tags yesterday's runs).
//!   Body: `{"from": instant, "to": instant, "max_runs": n}`, all optional
//!   (RFC 3339 or ns; default: every run, at most 1,000,000). Answer:
//!   `{"runs_scanned", "runs_tagged", "truncated", "oldest_start"}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use loupe_normalise::tags::{TagRuleConfig, TagRules, TagSource};
use loupe_pipeline::tagset::TagEditError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tags/apply", post(apply))
        .route("/api/v1/tags/rules", get(list))
        .route("/api/v1/tags/rules/preview", post(preview))
        .route("/api/v1/tags/rules/{name}", put(save).delete(remove))
}

impl From<TagEditError> for ApiError {
    fn from(e: TagEditError) -> Self {
        let status = match &e {
            TagEditError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            TagEditError::InConfig(_) => StatusCode::CONFLICT,
            TagEditError::NotFound(_) | TagEditError::NotManaged => StatusCode::NOT_FOUND,
            TagEditError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// A rule's body: its name is the path's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    from: TagSource,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    project: Option<String>,
}

impl RuleBody {
    fn named(self, name: String) -> TagRuleConfig {
        let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        TagRuleConfig {
            name,
            from: self.from,
            path: blank(self.path),
            regex: blank(self.regex),
            project: blank(self.project),
            app_id: blank(self.app_id),
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    let set = state.pipeline.tag_set();
    Ok(Json(json!({
        "rules": set.rules(project.as_str()),
        "editable": set.editable(),
    })))
}

async fn save(
    State(state): State<AppState>,
    Project(project): Project,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let rule = parse::<RuleBody>(&body)?.named(name);
    state.pipeline.tag_set().put(project.as_str(), rule)?;
    list(State(state), Project(project)).await
}

async fn remove(
    State(state): State<AppState>,
    Project(project): Project,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.pipeline.tag_set().remove(project.as_str(), &name)?;
    list(State(state), Project(project)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    name: String,
    rule: RuleBody,
    #[serde(default)]
    from: Option<Value>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(default)]
    max_runs: Option<u64>,
}

/// Runs a preview reads at most.
const MAX_PREVIEW_RUNS: u64 = 10_000;

async fn preview(
    State(state): State<AppState>,
    Project(project): Project,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PreviewBody = parse(&body)?;
    let max_runs = body.max_runs.unwrap_or(1000);
    if !(1..=MAX_PREVIEW_RUNS).contains(&max_runs) {
        return Err(ApiError::bad_request(format!(
            "max_runs {max_runs}: expected 1 to {MAX_PREVIEW_RUNS}"
        )));
    }
    let to = instant("to", body.to.as_ref())?;
    let from = match instant("from", body.from.as_ref())? {
        Some(from) => Some(from),
        None => Some(
            to.unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX))
                .saturating_sub(24 * 3_600_000_000_000),
        ),
    };
    let mut rule = body.rule.named(body.name.clone());
    // Previewed where it would run: this project.
    rule.project = Some(project.as_str().to_owned());
    loupe_pipeline::tagset::check_sizes(&rule)?;
    let rules = TagRules::new(std::slice::from_ref(&rule))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let out = loupe_pipeline::preview(
        state.reader.as_ref(),
        &project,
        &rules,
        &body.name,
        from,
        to,
        max_runs,
    )
    .await?;
    Ok(Json(serde_json::to_value(out).unwrap_or_default()))
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
