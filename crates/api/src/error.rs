//! The one place where a domain error becomes a status: an HTTP status and
//! JSON body ([`IntoResponse`]), or a gRPC status (`From<ApiError> for
//! tonic::Status`, derived from the HTTP one so both surfaces agree).
//! Client mistakes are 4xx with a message naming the problem; Loupe's own
//! failures are 5xx, logged once here with their context and hidden from
//! the client.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_backend::StoreError;
use serde_json::json;

/// How long a client should wait after a full disk.
const STORAGE_FULL_RETRY: Duration = Duration::from_secs(10);

/// An error answered to an API client: `{"error": "<message>"}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the client; names the problem and what to do.
    pub message: String,
    /// For 429/503: when to retry.
    pub retry_after: Option<Duration>,
    /// Extra fields of the JSON body (a query error's span, suggestion and
    /// rendered caret text).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    /// A 400 with the message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Any status with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// Adds fields to the JSON body beside `error`.
    pub fn with_details(mut self, details: serde_json::Map<String, serde_json::Value>) -> Self {
        self.details = Some(details);
        self
    }
}

impl From<crate::admission::Refused> for ApiError {
    fn from(r: crate::admission::Refused) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: match r.what {
                crate::admission::Gate::Ingest => {
                    "Loupe is ingesting as much as it can; retry later".into()
                }
                crate::admission::Gate::Read { slots } => format!(
                    "Loupe is answering as many reads as it may at once ([query] \
                     max_concurrent = {slots}); retry shortly"
                ),
            },
            retry_after: Some(r.retry_after),
            details: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded { retry_after } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Loupe is over its ingest budget; retry later".into(),
                retry_after: Some(retry_after),
                details: None,
            },
            StoreError::Closed => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "Loupe is shutting down; retry against the restarted server".into(),
                retry_after: Some(Duration::from_secs(5)),
                details: None,
            },
            StoreError::StorageFull(m) => {
                // The operator must act; the client only retries.
                tracing::error!(error = %m, "the data directory's disk is full; refusing writes until space is freed");
                Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "Loupe's disk is full: nothing of this request was stored and what \
                              was acknowledged before is intact; retry after the operator frees \
                              space"
                        .into(),
                    retry_after: Some(STORAGE_FULL_RETRY),
                    details: None,
                }
            }
            StoreError::Busy(m) => {
                tracing::warn!(error = %m, "a read was refused: the query memory pool is spent");
                Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "the queries running now use all the memory reads may use \
                              ([query] total_memory_bytes); retry shortly"
                        .into(),
                    retry_after: Some(Duration::from_secs(2)),
                    details: None,
                }
            }
            StoreError::Invalid(m) => Self::bad_request(m),
            StoreError::ResourcesExhausted(m) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the query needs more memory than the limit allows; narrow the time range or \
                     the groups ({m})"
                ),
            ),
            StoreError::Unsupported(m) => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("this storage backend does not support {m}"),
            ),
            other => {
                // Logged once here; the client gets no internals.
                tracing::error!(error = %other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the Loupe server log",
                )
            }
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let message = match e.retry_after {
            Some(after) => format!("{}; retry in {} s", e.message, after.as_secs().max(1)),
            None => e.message,
        };
        let code = match e.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                tonic::Code::InvalidArgument
            }
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                tonic::Code::Unavailable
            }
            StatusCode::REQUEST_TIMEOUT => tonic::Code::DeadlineExceeded,
            StatusCode::NOT_IMPLEMENTED => tonic::Code::Unimplemented,
            s if s.is_client_error() => tonic::Code::InvalidArgument,
            _ => tonic::Code::Internal,
        };
        tonic::Status::new(code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), json!(self.message));
        if let Some(details) = self.details {
            body.extend(details);
        }
        let mut resp = (self.status, Json(serde_json::Value::Object(body))).into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_mistakes_are_4xx_and_loupes_failures_are_5xx_over_http_and_grpc() {
        let cases: Vec<(StoreError, StatusCode, tonic::Code)> = vec![
            (
                StoreError::Invalid("bad cursor".into()),
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
            ),
            (
                StoreError::Internal("flush task failed: panic".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
            ),
            (
                StoreError::Overloaded {
                    retry_after: Duration::from_secs(2),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
            ),
            (
                StoreError::Closed,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
            ),
            (
                StoreError::Busy("[query] total_memory_bytes".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
            ),
            (
                StoreError::StorageFull("wal/1.wal: No space left on device".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
            ),
            (
                StoreError::ResourcesExhausted("sort".into()),
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::ResourceExhausted,
            ),
            (
                StoreError::Unsupported("SQL".into()),
                StatusCode::NOT_IMPLEMENTED,
                tonic::Code::Unimplemented,
            ),
        ];
        for (error, http, grpc) in cases {
            let text = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.status, http, "{text}");
            if http == StatusCode::INTERNAL_SERVER_ERROR {
                assert!(
                    !api.message.contains("panic"),
                    "internals stay in the log: {}",
                    api.message
                );
            }
            assert_eq!(tonic::Status::from(api).code(), grpc, "{text}");
        }
    }

    #[test]
    fn a_retry_delay_reaches_grpc_clients_in_the_message() {
        let status = tonic::Status::from(ApiError::from(StoreError::Overloaded {
            retry_after: Duration::from_secs(3),
        }));
        assert!(status.message().contains("retry in 3 s"), "{status:?}");
    }
}
