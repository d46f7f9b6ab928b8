//! Logs over Loupe's own API: OTLP log exports (`POST /v1/logs`, also at
//! `/api/public/otel/v1/logs`; protobuf or JSON, gzip; gRPC: `grpc.rs`)
//! and log search
//! (`GET /api/v1/logs`, and `GET /api/v1/traces/{id}/logs`: the logs of one
//! run, by trace id or run id, for the console's run view).
//!
//! OTLP replies as `/v1/traces` does: `ExportLogsServiceResponse` in the
//! request's encoding, `partial_success` counting and naming rejected
//! records (the others are stored); 400/413/415 for a body that does not
//! decode, is too large or is of another type; 503 + Retry-After when the
//! store is over budget.
//!
//! Search parameters: `q` (text that must occur in the body; `"quoted
//! phrases"` and words, each required), `severity` (minimum: a level name
//! such as `error`, or a number 0–24), `service`, `stream`, `run` (trace or
//! run id), `from`/`to` (RFC 3339 or ns), `limit` (default 100, at most
//! 10,000). Answer: `{"records": [...], "truncated": bool, "scanned": n}`,
//! newest first.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loupe_backend::{LogPage, LogQuery};
use loupe_model::{LogRecord, Severity};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::otlp::{body_error, decode_failed, encoding, reply, task_failed};
use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/logs", post(export))
        .route("/api/public/otel/v1/logs", post(export))
        .route("/api/v1/logs", get(search))
        .route("/api/v1/traces/{id}/logs", get(run_logs))
}

#[tracing::instrument(name = "otlp.logs", skip_all, fields(project = %project))]
async fn export(
    State(state): State<AppState>,
    Project(project): Project,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (encoding, gzip) = encoding(&headers)?;
    let body = body.map_err(|r| body_error(&state, r))?;
    let _slot = state.ingest_gate.admit().await?;
    let config = state.config.clone();
    let name = project.as_str().to_owned();
    let decoded = tokio::task::spawn_blocking(move || {
        loupe_ingest::logs::otlp::decode(
            &body,
            encoding,
            gzip,
            config.max_decompressed_bytes,
            &config.ingest,
            &name,
            loupe_model::time::now_ns(),
        )
    })
    .await
    .map_err(task_failed)?
    .map_err(decode_failed)?;
    let rejected = decoded.rejected;
    state.pipeline.write_logs(decoded.records).await?;
    let partial_success = (!rejected.is_empty()).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected.len() as i64,
        error_message: summary(&rejected),
    });
    Ok(reply(
        encoding,
        &ExportLogsServiceResponse { partial_success },
    ))
}

pub(crate) fn summary(rejected: &[String]) -> String {
    let mut text = rejected
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if rejected.len() > 10 {
        text.push_str(&format!("; and {} more", rejected.len() - 10));
    }
    text
}

/// `GET /api/v1/logs` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: Option<String>,
    severity: Option<String>,
    service: Option<String>,
    stream: Option<String>,
    run: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

/// The phrases of a `q`: `"quoted phrases"` whole, other words alone.
fn phrases(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in q.split('"').enumerate() {
        if i % 2 == 1 {
            let p = part.trim();
            if !p.is_empty() {
                out.push(p.to_owned());
            }
        } else {
            out.extend(part.split_whitespace().map(str::to_owned));
        }
    }
    out
}

fn severity(text: &str) -> Result<u8, ApiError> {
    if let Ok(n) = text.parse::<u8>()
        && n <= 24
    {
        return Ok(n);
    }
    Severity::from_text(text).map(Severity::number).ok_or_else(|| {
        ApiError::bad_request(format!(
            "severity {text:?} is neither a level (trace, debug, info, warn, error, fatal) nor a number 0-24"
        ))
    })
}

fn instant(name: &str, text: &str) -> Result<i64, ApiError> {
    loupe_model::time::parse_instant(text)
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

impl SearchParams {
    fn query(self, run: Option<String>) -> Result<LogQuery, ApiError> {
        Ok(LogQuery {
            from: self
                .from
                .as_deref()
                .map(|t| instant("from", t))
                .transpose()?,
            to: self.to.as_deref().map(|t| instant("to", t)).transpose()?,
            min_severity: self.severity.as_deref().map(severity).transpose()?,
            run: run.or(self.run),
            service: self.service,
            stream: self.stream,
            phrases: self.q.as_deref().map(phrases).unwrap_or_default(),
            limit: self.limit.unwrap_or(100),
        })
    }
}

fn record_json(r: &LogRecord) -> Value {
    json!({
        "time": loupe_model::time::format_instant(r.time),
        "observed_time": loupe_model::time::format_instant(r.observed_time),
        "severity_number": r.severity_number,
        "severity": Severity::of_number(r.severity_number).map(Severity::as_str),
        "severity_text": r.severity_text,
        "body": r.body,
        "service": r.service,
        "stream": r.stream,
        "trace_id": r.trace_id,
        "span_id": r.span_id,
        "run_id": r.run_id,
        "attributes": r.attributes,
        "resource": r.resource,
    })
}

fn page_json(page: &LogPage) -> Json<Value> {
    Json(json!({
        "records": page.records.iter().map(record_json).collect::<Vec<_>>(),
        "truncated": page.truncated,
        "scanned": page.scanned,
    }))
}

async fn run_search(
    state: &AppState,
    project: &loupe_model::ProjectId,
    q: LogQuery,
) -> Result<Response, ApiError> {
    q.validate()?;
    let Some(logs) = state.logs.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server stores no logs",
        ));
    };
    let page = logs.search_logs(project, &q).await?;
    Ok(page_json(&page).into_response())
}

async fn search(
    State(state): State<AppState>,
    Project(project): Project,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    run_search(&state, &project, params.query(None)?).await
}

async fn run_logs(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    run_search(&state, &project, params.query(Some(id))?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_keeps_quoted_phrases_whole_and_splits_the_rest() {
        assert_eq!(
            phrases(r#"plugin "connection reset" timeout"#),
            vec!["plugin", "connection reset", "timeout"]
        );
        assert!(phrases("  ").is_empty());
        assert_eq!(severity("ERROR").expect("level"), 17);
        assert_eq!(severity("13").expect("number"), 13);
        assert!(severity("loud").is_err());
    }
}
