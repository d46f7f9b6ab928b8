//! Loupe's HTTP and gRPC surface. The only crate that serves network traffic.
//!
//! [`router`] builds the axum router (one HTTP port for OTLP/HTTP, the Loupe
//! API and health), so tests can drive it without a socket;
//! [`grpc::trace_service`] is the OTLP/gRPC `TraceService`. Handlers are
//! thin: decode at the edge with `loupe-ingest`, write through the
//! [`Pipeline`], read through the [`SpanReader`] contract (the API holds no
//! handle that can append around the pipeline), and turn every
//! domain error into a status and a JSON body in one place ([`error`]).
//! [`auth`] authenticates every request (API keys, or open access while no
//! key exists) and decides its project; `routes::langfuse` is the
//! Langfuse-compatible public API (`/api/public/*`); `routes::es` the
//! Elasticsearch-compatible ingest API (`/es/*`, docs/LOGS.md) and
//! `routes::logs` OTLP logs and log search.

#![warn(missing_docs)]

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use loupe_backend::SpanReader;
use loupe_pipeline::Pipeline;

pub mod admission;
pub mod auth;
pub mod conn;
pub mod error;
pub mod grpc;
mod routes;
pub mod tls;

pub use error::ApiError;
pub use routes::cleanup::{CleanupControl, CleanupRefusal, CleanupRequest};

/// Settings of the HTTP/gRPC surface (`[server]` in `loupe.toml`).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted request body (compressed, as sent), in bytes.
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression, in bytes.
    pub max_decompressed_bytes: usize,
    /// Time limit of every read that scans spans (`[query] timeout`,
    /// default 30 s; for exports, until the first bytes).
    pub query_timeout: std::time::Duration,
    /// Memory pool of one query's operators, bytes (`[query]
    /// memory_bytes`, default 512 MiB).
    pub query_memory_bytes: usize,
    /// Rows in one JSON answer at most (`[query] max_rows`, default
    /// 100,000; exports are not capped).
    pub query_max_rows: usize,
    /// Bytes of values in one JSON answer at most (`[query]
    /// max_answer_bytes`, default 64 MiB; more is truncated).
    pub query_max_answer_bytes: usize,
    /// Bytes one call of a size-building SQL function may build for one
    /// batch (`[query] max_function_bytes`, default 64 MiB).
    pub query_max_function_bytes: u64,
    /// `[ingest]`: element caps, per-span caps and the span time window.
    pub ingest: loupe_ingest::IngestLimits,
    /// The HTTP listener speaks TLS itself (the session cookie is then
    /// `Secure`).
    pub tls: bool,
}

impl ApiConfig {
    /// The `[query]` limits every read passes to the store.
    pub fn query_limits(&self) -> loupe_backend::QueryLimits {
        loupe_backend::QueryLimits {
            memory_bytes: self.query_memory_bytes,
            max_rows: self.query_max_rows,
            max_function_bytes: self.query_max_function_bytes,
            max_answer_bytes: self.query_max_answer_bytes,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            query_timeout: std::time::Duration::from_secs(30),
            query_memory_bytes: 512 << 20,
            query_max_rows: 100_000,
            query_max_answer_bytes: 64 << 20,
            query_max_function_bytes: 64 << 20,
            ingest: loupe_ingest::IngestLimits::default(),
            tls: false,
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Ingest path: the only way a handler writes.
    pub pipeline: Pipeline,
    /// Read path.
    pub reader: Arc<dyn SpanReader>,
    /// Log search (`None`: the log routes answer 404).
    pub logs: Option<Arc<dyn loupe_backend::LogReader>>,
    /// Limits.
    pub config: Arc<ApiConfig>,
    /// Readiness: false until the store has opened and replayed.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// API keys and the auth policy; decides each request's project.
    pub auth: Arc<auth::Auth>,
    /// Renders `/metrics` from the rollups (`None`: the route answers 404).
    pub metrics: Option<MetricsRender>,
    /// The alerting engine (`None`: the alerting API answers 404).
    pub alerts: Option<Arc<loupe_alerts::Engine>>,
    /// Bounds the ingest requests decoding and appending at once.
    pub ingest_gate: admission::IngestGate,
    /// Bounds the reads scanning spans at once (`[query] max_concurrent`).
    pub read_gate: admission::IngestGate,
    /// Recent spans of Dify's trace export by their OTLP ids, so parents
    /// sent in an earlier request resolve to Dify's ids.
    pub dify_ids: Arc<loupe_ingest::otlp::IdCache>,
    /// OTLP metrics relayed to `/metrics` (`None`: `/v1/metrics` answers 404).
    pub relay: Option<Arc<loupe_rollup::relay::Relay>>,
    /// Settings and the Dify sync, as the console shows them (`None`: those
    /// routes answer 404).
    pub info: Option<Arc<dyn ServerInfo>>,
    /// Dify cleanups started from the console (`None`: those routes
    /// answer 404).
    pub cleanup: Option<Arc<dyn CleanupControl>>,
}

/// What `loupe serve` tells its clients about itself (read-only JSON):
/// the settings in effect and the Dify sync. Every answer is for one
/// project: another project's settings or sync are never shown.
pub trait ServerInfo: Send + Sync {
    /// Retention, tag rules, metrics labels, Dify link base, … for `project`.
    fn settings(&self, project: &loupe_model::ProjectId) -> serde_json::Value;
    /// The Dify sync writing into `project` (`{"configured": false}` when none).
    fn dify_status(&self, project: &loupe_model::ProjectId) -> serde_json::Value;
    /// The health of the Dify database synced into `project`: sizes,
    /// growth, upkeep, load, recent cleanups (`{"configured": false}`
    /// when none).
    fn dify_health(&self, project: &loupe_model::ProjectId) -> serde_json::Value {
        let _ = project;
        serde_json::json!({"configured": false})
    }
    /// The recorded cleanup runs of that database, newest first, at most
    /// `limit`.
    fn dify_cleanups(&self, project: &loupe_model::ProjectId, limit: usize) -> serde_json::Value {
        let _ = (project, limit);
        serde_json::json!({"configured": false})
    }
    /// What a retention of `days` (0 = forever) for `project` would drop
    /// now, and where its retention is set.
    ///
    /// # Errors
    /// 404 when this server does not manage retention.
    fn retention_preview(
        &self,
        project: &loupe_model::ProjectId,
        days: u32,
    ) -> Result<serde_json::Value, ApiError> {
        let _ = (project, days);
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "this server does not manage retention",
        ))
    }
    /// Sets (`Some`) or removes (`None`: back to `loupe.toml`'s default)
    /// `project`'s retention. A change that drops stored data needs
    /// `confirm` (else 409 with the preview).
    ///
    /// # Errors
    /// 404 as above; 409 for a project `loupe.toml` names or an
    /// unconfirmed drop; 422 for a value out of range; 500 when the
    /// change cannot be written (nothing changed then).
    fn set_retention(
        &self,
        project: &loupe_model::ProjectId,
        days: Option<u32>,
        confirm: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let _ = (project, days, confirm);
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "this server does not manage retention",
        ))
    }
    /// `project`'s budgets (`loupe.toml`'s, then those added over the
    /// API), each with what it notified.
    fn budgets(&self, project: &loupe_model::ProjectId) -> Vec<BudgetEntry> {
        let _ = project;
        Vec::new()
    }
    /// The alert channels a budget may notify.
    fn budget_channels(&self) -> Vec<String> {
        Vec::new()
    }
    /// Adds or replaces a budget of its project: the budget as kept (its
    /// currency named), and `true` when it was added.
    ///
    /// # Errors
    /// 404 when this server does not keep budgets; 409 for a name
    /// `loupe.toml` sets; 422 for an invalid budget; 500 when it cannot be
    /// written (nothing changed then).
    fn put_budget(
        &self,
        budget: loupe_analytics::budgets::BudgetConfig,
    ) -> Result<(loupe_analytics::budgets::BudgetConfig, bool), ApiError> {
        let _ = budget;
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "this server does not keep budgets",
        ))
    }
    /// Removes `project`'s budget `name`.
    ///
    /// # Errors
    /// As [`ServerInfo::put_budget`]; 404 for no such budget.
    fn delete_budget(&self, project: &loupe_model::ProjectId, name: &str) -> Result<(), ApiError> {
        let _ = (project, name);
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "this server does not keep budgets",
        ))
    }
}

/// One budget as `GET /api/v1/budgets` lists it.
#[derive(Debug, Clone)]
pub struct BudgetEntry {
    /// The budget.
    pub budget: loupe_analytics::budgets::BudgetConfig,
    /// What it notified (`None` before the first notice).
    pub notified: Option<loupe_analytics::budgets::BudgetState>,
    /// Where it is set: `loupe.toml` (read-only here) or `console`.
    pub source: &'static str,
}

/// Renders the `/metrics` body in a format, for one project or (`None`)
/// all of them. Called on a blocking thread.
pub type MetricsRender =
    Arc<dyn Fn(loupe_rollup::expose::Format, Option<&str>) -> String + Send + Sync>;

/// The HTTP router with every route.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .merge(routes::otlp::routes())
        .merge(routes::logs::routes())
        .merge(routes::es::routes())
        .merge(routes::spans::routes())
        .merge(routes::timelines::routes())
        .merge(routes::query::routes())
        .merge(routes::rca::routes())
        .merge(routes::analytics::routes())
        .merge(routes::health::routes())
        .merge(routes::langfuse::routes())
        .merge(routes::metrics::routes())
        .merge(routes::alerts::routes())
        .merge(routes::tags::routes())
        .merge(routes::server::routes())
        .merge(routes::cleanup::routes())
        .merge(routes::keys::routes())
        // Inside auth: an unauthenticated request never takes a read slot.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admission::read_gate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ))
        // After the auth layer: the console's page and files hold no data,
        // and its session endpoints authenticate for themselves.
        .merge(routes::console::routes())
        .layer(DefaultBodyLimit::max(limit))
        // A `request` span (method, path) around every request, so ingest,
        // query and store spans nest under the request that caused them.
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
