//! Admission for ingest requests, taken before a body is decoded: decoding
//! and normalising cost more CPU than storing, so under overload requests
//! that will be refused must be refused before that work, or the refused
//! ones starve the admitted ones (measured: 1 % of a 2× overload accepted
//! when the store alone bounded its appends).
//!
//! Reads have their own gate ([`read_gate`], `[query] max_concurrent`):
//! every route that scans spans (queries, SQL, traces, spans, sessions,
//! users, RCA, the Langfuse read API, tag backfills) holds a slot until its
//! answer is sent, under the `[query] timeout`, so a burst of heavy reads
//! queues briefly and is then refused (503 + Retry-After) instead of
//! holding memory for all of them at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a refused client should wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// At most `slots` ingest requests decode and append at once; a request
/// waits for a slot at most `wait`, then is refused (503 + Retry-After).
#[derive(Debug, Clone)]
pub struct IngestGate {
    slots: Option<Arc<Semaphore>>,
    wait: Duration,
    what: Gate,
    /// Requests refused so far (`loupe_ingest_refused_total`).
    refused: Arc<AtomicU64>,
}

/// A request that may not run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When to retry.
    pub retry_after: Duration,
    /// Which gate refused it.
    pub what: Gate,
}

/// The kind of work a gate admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Ingest requests.
    Ingest,
    /// Reads that scan spans; `slots` at once.
    Read {
        /// `[query] max_concurrent`.
        slots: usize,
    },
}

impl IngestGate {
    /// A gate of `slots` concurrent requests (at least 1).
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Some(Arc::new(Semaphore::new(slots.max(1)))),
            wait,
            what: Gate::Ingest,
            refused: Arc::default(),
        }
    }

    /// A gate of `slots` concurrent reads (`[query] max_concurrent`).
    pub fn reads(slots: usize, wait: Duration) -> Self {
        Self {
            what: Gate::Read {
                slots: slots.max(1),
            },
            ..Self::new(slots, wait)
        }
    }

    /// No limit (tests and embedders that bound load themselves).
    pub fn unlimited() -> Self {
        Self {
            slots: None,
            wait: Duration::ZERO,
            what: Gate::Ingest,
            refused: Arc::default(),
        }
    }

    /// Waits for a slot; the permit holds it until dropped.
    pub async fn admit(&self) -> Result<Option<OwnedSemaphorePermit>, Refused> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        match tokio::time::timeout(self.wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Refused {
                    retry_after: RETRY_AFTER,
                    what: self.what,
                })
            }
        }
    }

    /// Ingest requests refused for overload since the start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Whether a request scans spans (and so takes a read slot).
pub fn is_heavy_read(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let get = method == Method::GET || method == Method::HEAD;
    match method {
        m if m == Method::POST => {
            matches!(
                path,
                "/api/v1/query"
                    | "/api/v1/sql"
                    | "/api/v1/rca"
                    | "/api/v1/traces"
                    | "/api/v1/tags/apply"
                    | "/api/v1/tags/rules/preview"
                    | "/api/v1/alerts/rules/preview"
            ) || path.starts_with("/api/v1/analytics/")
        }
        _ if get => {
            path == "/api/v1/spans"
                || path == "/api/v1/budgets"
                || path == "/api/v1/logs"
                || path == "/api/v1/sessions"
                || path == "/api/v1/users"
                || path.starts_with("/api/v1/traces/")
                || path.starts_with("/api/v1/sessions/")
                || path.starts_with("/api/v1/users/")
                || path == "/api/public/traces"
                || path.starts_with("/api/public/traces/")
                || path == "/api/public/observations"
        }
        _ => false,
    }
}

/// Middleware: a read slot and the `[query] timeout` around every heavy
/// read; the slot is held until the answer's body has been sent (exports
/// stream after the handler returns).
pub async fn read_gate(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    if !is_heavy_read(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let permit = match state.read_gate.admit().await {
        Ok(permit) => permit,
        Err(refused) => return crate::ApiError::from(refused).into_response(),
    };
    let timeout = state.config.query_timeout;
    let Ok(response) = tokio::time::timeout(timeout, next.run(request)).await else {
        return crate::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            format!(
                "the read ran longer than the {} s limit ([query] timeout); narrow it",
                timeout.as_secs_f64()
            ),
        )
        .into_response();
    };
    let Some(permit) = permit else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_refuses_after_the_wait_and_admits_once_a_slot_frees() {
        let gate = IngestGate::new(1, Duration::from_millis(50));
        let held = gate.admit().await.expect("first");
        assert!(held.is_some());
        assert_eq!(
            gate.admit().await.expect_err("full"),
            Refused {
                retry_after: RETRY_AFTER,
                what: Gate::Ingest,
            }
        );
        assert_eq!(gate.refused_total(), 1, "counted for /metrics");
        drop(held);
        assert!(gate.admit().await.expect("freed").is_some());
        assert_eq!(gate.refused_total(), 1);
        assert!(
            IngestGate::unlimited()
                .admit()
                .await
                .expect("open")
                .is_none()
        );
    }
}
