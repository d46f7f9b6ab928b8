//! `POST /api/v1/query` (the query language, text or JSON form; JSON answer
//! or a streamed CSV / JSON lines / Parquet export) and `POST /api/v1/sql`
//! (read-only SQL over the project's `spans`).
//!
//! Errors: a query that does not parse is 400 with the byte span, the
//! suggestion and the caret rendering; a query that parses but does not
//! type-check or plan is 422; a time-out is 408; a query over its memory
//! limit is 413.

use axum::body::Body;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use loupe_backend::{QueryLimits, QueryResult};
use loupe_query::export::{Encoder, Format};
use loupe_query::{ErrorKind, ParseError, PlanOptions, Query};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/query", post(query))
        .route("/api/v1/sql", post(sql))
}

/// Body of `POST /api/v1/query`: `q` (text) or `query` (the JSON form).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    q: Option<String>,
    query: Option<Value>,
    /// "Now" for `last D` and the default window: RFC 3339 or ns.
    now: Option<Value>,
    /// Percentiles of `duration` may come from the rollups' histograms
    /// (estimated; the answer's `stats.approximate` says so).
    #[serde(default)]
    approx_percentiles: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    sql: String,
}

fn parse_error(e: &ParseError, source: &str) -> ApiError {
    let status = match e.kind {
        ErrorKind::Syntax => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut details = serde_json::Map::new();
    details.insert("span".into(), json!([e.span.start, e.span.end]));
    details.insert("suggestion".into(), json!(e.suggestion));
    details.insert("kind".into(), json!(format!("{:?}", e.kind)));
    details.insert("rendered".into(), json!(e.render(source)));
    ApiError::new(status, e.message.clone()).with_details(details)
}

fn now_ns(v: Option<&Value>) -> Result<i64, ApiError> {
    let bad = || ApiError::bad_request("`now` must be RFC 3339 (2026-11-24T10:00:00Z) or ns");
    match v {
        None => Ok(loupe_model::time::now_ns()),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad),
        Some(Value::String(s)) => loupe_model::time::parse_instant(s)
            .map_err(|e| ApiError::bad_request(format!("now: {e}"))),
        Some(_) => Err(bad()),
    }
}

fn limits(state: &AppState) -> QueryLimits {
    state.config.query_limits()
}

fn timed_out(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the query ran longer than the {} s limit; narrow the time range or filter more",
            state.config.query_timeout.as_secs_f64()
        ),
    )
}

async fn query(
    State(state): State<AppState>,
    Project(project): Project,
    params: Result<UrlQuery<ExportParams>, axum::extract::rejection::QueryRejection>,
    body: Result<Json<QueryBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let UrlQuery(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let format = params
        .format
        .as_deref()
        .filter(|f| !f.eq_ignore_ascii_case("json"))
        .map(|f| {
            Format::from_name(f).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "format={f:?} is unknown: use csv, jsonl or parquet"
                ))
            })
        })
        .transpose()?;
    let (parsed, source) = match (&body.q, &body.query) {
        (Some(q), None) => (Query::parse(q), q.clone()),
        (None, Some(json)) => {
            let text = json.to_string();
            (Query::from_json(&text), text)
        }
        _ => {
            return Err(ApiError::bad_request(
                "send either {\"q\": \"<query text>\"} or {\"query\": {…JSON form…}}",
            ));
        }
    };
    let parsed = parsed.map_err(|e| parse_error(&e, &source))?;
    let mut opts = PlanOptions::at(now_ns(body.now.as_ref())?);
    if format.is_some() {
        opts.default_row_limit = None;
    }
    let mut plan = loupe_query::plan(&parsed, opts)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.message))?;
    plan.approx_percentiles = body.approx_percentiles;
    let limits = limits(&state);
    let timeout = state.config.query_timeout;
    let Some(format) = format else {
        let result: QueryResult =
            tokio::time::timeout(timeout, state.reader.query(&project, &plan, limits))
                .await
                .map_err(|_| timed_out(&state))??;
        return Ok(Json(result).into_response());
    };
    let batches = tokio::time::timeout(timeout, state.reader.query_stream(&project, &plan, limits))
        .await
        .map_err(|_| timed_out(&state))??;
    let mut encoder = Some(Encoder::new(format));
    let chunks = batches
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .map(move |item| -> Result<Vec<u8>, std::io::Error> {
            let io = |e: String| std::io::Error::other(e);
            match item {
                Some(batch) => {
                    let batch = batch.map_err(|e| io(e.to_string()))?;
                    match encoder.as_mut() {
                        Some(enc) => enc.push(&batch).map_err(|e| io(e.to_string())),
                        None => Ok(Vec::new()),
                    }
                }
                None => match encoder.take() {
                    Some(enc) => enc.finish().map_err(|e| io(e.to_string())),
                    None => Ok(Vec::new()),
                },
            }
        });
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        Body::from_stream(chunks),
    )
        .into_response())
}

async fn sql(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<SqlBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<QueryResult>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let result = tokio::time::timeout(
        state.config.query_timeout,
        state.reader.sql(&project, &body.sql, limits(&state)),
    )
    .await
    .map_err(|_| timed_out(&state))??;
    Ok(Json(result))
}
