//! `POST /api/v1/rca`: root-cause analysis of a target over a window
//! against a baseline (`loupe-rca`). JSON in, JSON out; docs/RCA.md has the
//! fields.
//!
//! Errors: a body that is not the JSON shape is 400; a valid shape whose
//! filter, window or settings cannot be used is 422 naming the problem; a
//! run over the query time limit is 408.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use loupe_rca::{RcaError, RcaReport, RcaRequest};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/rca", post(rca))
}

/// A time range given as instants (RFC 3339 or ns).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeBody {
    from: Value,
    to: Value,
}

/// Body of `POST /api/v1/rca`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RcaBody {
    /// Target filter (default `status=error`).
    target: Option<String>,
    /// Scope filter (default: nodes).
    scope: Option<String>,
    /// Window length back from `now` (`6h`); or `from`/`to`.
    last: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
    /// "Now" for `last`: RFC 3339 or ns; default the wall clock.
    now: Option<Value>,
    /// Baseline range; default the window's length before it.
    baseline: Option<RangeBody>,
    dimensions: Option<Vec<String>>,
    tags: Vec<String>,
    max_findings: Option<usize>,
    min_support: Option<u64>,
    alpha: Option<f64>,
}

fn instant(name: &str, v: &Value) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` must be RFC 3339 (2026-11-24T10:00:00Z) or integer ns"),
        )
    };
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => loupe_model::time::parse_instant(s).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// The analysis request a body asks for (`tags` adds the tag rules'
/// names, so every business tag is analysed even before it is seen).
/// `(from, to, now)` of a window given as `last` back from `now` (default
/// the wall clock) or as `from` (and `to`, default now); neither: the last
/// `default_ns`. Shared by the analyses that take a window.
pub(crate) fn window(
    last: Option<&str>,
    from: Option<&Value>,
    to: Option<&Value>,
    now: Option<&Value>,
    default_ns: i64,
) -> Result<(i64, i64, i64), ApiError> {
    let unprocessable = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let now = match now {
        Some(v) => instant("now", v)?,
        None => loupe_model::time::now_ns(),
    };
    let (from_ns, to_ns) = match (last, from, to) {
        (Some(last), None, None) => {
            let d = humantime::parse_duration(last)
                .map_err(|e| unprocessable(format!("`last` {last:?}: {e}")))?;
            let d = i64::try_from(d.as_nanos())
                .map_err(|_| unprocessable(format!("`last` {last:?} is too long")))?;
            (now.saturating_sub(d), now)
        }
        (None, Some(from), to) => (
            instant("from", from)?,
            to.map_or(Ok(now), |t| instant("to", t))?,
        ),
        (None, None, None) => (now.saturating_sub(default_ns), now),
        _ => {
            return Err(unprocessable(
                "give the window as `last` (\"6h\") or as `from` (and `to`), not both".into(),
            ));
        }
    };
    Ok((from_ns, to_ns, now))
}

fn request(body: RcaBody, rule_tags: Vec<String>) -> Result<RcaRequest, ApiError> {
    let (from_ns, to_ns, _) = window(
        body.last.as_deref(),
        body.from.as_ref(),
        body.to.as_ref(),
        body.now.as_ref(),
        3_600_000_000_000,
    )?;
    let (baseline_from_ns, baseline_to_ns) = match &body.baseline {
        Some(b) => (
            Some(instant("baseline.from", &b.from)?),
            Some(instant("baseline.to", &b.to)?),
        ),
        None => (None, None),
    };
    let defaults = RcaRequest::default();
    let mut tags = body.tags;
    for t in rule_tags {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    Ok(RcaRequest {
        target: body.target.unwrap_or(defaults.target),
        scope: body.scope,
        from_ns,
        to_ns,
        baseline_from_ns,
        baseline_to_ns,
        dimensions: body.dimensions,
        tags,
        max_findings: body.max_findings.unwrap_or(defaults.max_findings),
        min_support: body.min_support.unwrap_or(defaults.min_support),
        alpha: body.alpha.unwrap_or(defaults.alpha),
    })
}

async fn rca(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<RcaBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RcaReport>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let req = request(body, state.pipeline.tags().names())?;
    let timeout = state.config.query_timeout;
    let report = tokio::time::timeout(
        timeout,
        loupe_rca::analyse(state.reader.as_ref(), &project, &req),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the analysis ran longer than the {} s query limit; narrow the window or the scope",
                timeout.as_secs_f64()
            ),
        )
    })?
    .map_err(|e| match e {
        RcaError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        RcaError::Store(e) => ApiError::from(e),
        other => ApiError::from(loupe_backend::StoreError::Internal(other.to_string())),
    })?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> RcaBody {
        serde_json::from_value(json).expect("body")
    }

    #[test]
    fn the_window_comes_from_last_or_from_and_to_and_rule_tags_are_added() {
        let req = request(
            body(
                serde_json::json!({"last": "6h", "now": 100_000_000_000_000i64, "tags": ["tier"]}),
            ),
            vec!["category".into(), "tier".into()],
        )
        .expect("request");
        assert_eq!(req.to_ns - req.from_ns, 6 * 3_600_000_000_000);
        assert_eq!(req.tags, vec!["tier".to_owned(), "category".to_owned()]);
        assert_eq!(req.target, "status=error");
        let req = request(
            body(serde_json::json!({
                "from": "2026-01-01T02:00:00Z", "to": "2026-01-01T03:00:00Z",
                "baseline": {"from": "2026-01-01T00:00:00Z", "to": 1_767_229_200_000_000_000i64},
                "target": "duration>2s"
            })),
            Vec::new(),
        )
        .expect("request");
        assert_eq!(req.to_ns - req.from_ns, 3_600_000_000_000);
        assert_eq!(req.baseline_to_ns, Some(1_767_229_200_000_000_000));
        let err = request(
            body(serde_json::json!({"last": "6h", "from": 1})),
            Vec::new(),
        )
        .expect_err("both refused");
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(request(body(serde_json::json!({"last": "six"})), Vec::new()).is_err());
    }
}
