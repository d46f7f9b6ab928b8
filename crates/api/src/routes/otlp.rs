//! OTLP/HTTP ingest: `POST /v1/traces` and `POST /v1/metrics` (protobuf
//! or JSON, gzip), also at `/api/public/otel/v1/traces|metrics`, where
//! Langfuse serves OTLP and Dify 1.20's Langfuse provider sends it.
//!
//! Traces are stored through the pipeline; metrics are relayed to
//! `/metrics` (`loupe_rollup::relay`). An empty request (Dify's check when a
//! tracing config is saved) is answered 200 with an empty response.
//!
//! Reply: `ExportTraceServiceResponse` in the request's encoding, with
//! `partial_success` naming how many spans were rejected and why when some
//! spans were invalid (the valid ones are stored). Errors: 415 for a content
//! type or encoding other than protobuf/JSON and identity/gzip, 400 for a
//! body that does not decode, 413 over the size limits and the `[ingest]`
//! element caps (checked before the body is decoded), 503 + Retry-After
//! when the store is over budget. An OTLP/JSON span that does not decode,
//! and a span over the per-span caps or outside the time window, is
//! rejected alone (partial success).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use loupe_ingest::metrics::decode_metrics;
use loupe_ingest::otlp::{DecodeError, Encoding, decode_request, normalise_with, now_ns};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/traces", post(export))
        .route("/api/public/otel/v1/traces", post(export))
        .route("/v1/metrics", post(export_metrics))
        .route("/api/public/otel/v1/metrics", post(export_metrics))
}

pub(crate) fn encoding(headers: &HeaderMap) -> Result<(Encoding, bool), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {other:?}: send OTLP as application/x-protobuf or application/json"
                ),
            ));
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content encoding {other:?}: send gzip or no compression"),
            ));
        }
    };
    Ok((encoding, gzip))
}

/// Maps a body-read failure (mostly: over the size limit) to a clear error.
pub(crate) fn body_error(state: &AppState, rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            format!(
                "request body exceeds the limit of {} bytes (server.max_body_bytes); send smaller batches",
                state.config.max_body_bytes
            ),
        )
    } else {
        ApiError::new(
            status,
            format!("could not read the request body: {rejection}"),
        )
    }
}

async fn export(
    State(state): State<AppState>,
    Project(project): Project,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (encoding, gzip) = encoding(&headers)?;
    let body = body.map_err(|r| body_error(&state, r))?;
    let _slot = state.ingest_gate.admit().await?;
    // Inflating, counting and decoding are CPU work: off the async workers,
    // bounded in number by the ingest slot held above.
    let config = state.config.clone();
    let ids = state.dify_ids.clone();
    let normalised = tokio::task::spawn_blocking(move || {
        let decoded = decode_request(
            &body,
            encoding,
            gzip,
            config.max_decompressed_bytes,
            &config.ingest,
        )?;
        Ok::<_, DecodeError>(normalise_with(
            project.as_str(),
            decoded,
            &config.ingest,
            Some(now_ns()),
            Some(&ids),
        ))
    })
    .await
    .map_err(task_failed)?
    .map_err(decode_failed)?;
    let stored = normalised.spans.len();
    state.pipeline.write(normalised.spans).await?;
    let response = ExportTraceServiceResponse {
        partial_success: partial_success(&normalised.rejected),
    };
    tracing::debug!(stored, rejected = normalised.rejected.len(), "otlp export");
    Ok(reply(encoding, &response))
}

/// `POST /v1/metrics`: the points are relayed to `/metrics`.
async fn export_metrics(
    State(state): State<AppState>,
    Project(project): Project,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (encoding, gzip) = encoding(&headers)?;
    let body = body.map_err(|r| body_error(&state, r))?;
    let Some(relay) = state.relay.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "OTLP metrics are not relayed by this server",
        ));
    };
    let _slot = state.ingest_gate.admit().await?;
    let config = state.config.clone();
    let (points, recorded) = tokio::task::spawn_blocking(move || {
        let request = decode_metrics(&body, encoding, gzip, &config.ingest)?;
        let mut points = loupe_ingest::metrics::points(request);
        let recorded = relay.record(project.as_str(), std::mem::take(&mut points.points));
        Ok::<_, DecodeError>((points, recorded))
    })
    .await
    .map_err(task_failed)?
    .map_err(decode_failed)?;
    tracing::debug!(
        kept = recorded.kept,
        dropped = recorded.dropped,
        rejected = points.rejected.len(),
        "otlp metrics export"
    );
    // Points dropped by the series cap are not the sender's fault and are
    // counted on /metrics; only invalid points are reported as rejected.
    let partial_success = (!points.rejected.is_empty()).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: points.rejected.len() as i64,
        error_message: summary(&points.rejected),
    });
    Ok(reply(
        encoding,
        &ExportMetricsServiceResponse { partial_success },
    ))
}

pub(crate) fn task_failed(e: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %e, "otlp decode task failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the Loupe server log",
    )
}

pub(crate) fn decode_failed(e: DecodeError) -> ApiError {
    match e {
        DecodeError::TooLarge { .. } | DecodeError::OverLimit(_) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// The reply in the request's encoding.
pub(crate) fn reply<M: Message + serde::Serialize>(encoding: Encoding, response: &M) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec()),
        )
            .into_response(),
    }
}

/// The OTLP partial-success block for rejected spans (None when all passed).
pub(crate) fn partial_success(
    rejected: &[loupe_normalise::ItemError],
) -> Option<ExportTracePartialSuccess> {
    if rejected.is_empty() {
        return None;
    }
    Some(ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: summary(rejected),
    })
}

/// The first ten item errors, and how many more.
pub(crate) fn summary(rejected: &[loupe_normalise::ItemError]) -> String {
    let mut message = rejected
        .iter()
        .take(10)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if rejected.len() > 10 {
        message.push_str(&format!("; and {} more", rejected.len() - 10));
    }
    message
}
