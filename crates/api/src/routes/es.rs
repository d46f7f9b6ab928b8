//! The Elasticsearch-compatible ingest API under [`BASE`] (`/es`), so an
//! unmodified Elasticsearch client or shipper (Filebeat, Fluentd's and
//! rsyslog's Elasticsearch outputs, the official clients) pointed at
//! `http://loupe:4318/es` stores its documents as log records.
//!
//! Served: `GET /` (the product info clients check, with the
//! `X-Elastic-Product: Elasticsearch` header on every reply), `POST|PUT
//! /_bulk` and `/{index}/_bulk` (NDJSON, gzip; per-item results with
//! `errors` and Elasticsearch's statuses and error types: one bad item
//! never costs the others), `POST /{index}/_doc`, `PUT|POST
//! /{index}/_doc/{id}` and `/{index}/_create/{id}`, and the calls shippers
//! make at start, answered so they proceed: `_license`, `_xpack`,
//! `_cluster/health`, `_cat/health` (rsyslog), templates, ILM policies, ingest pipelines and data
//! streams (a `GET` finds none, a `PUT` is acknowledged and ignored:
//! Loupe's log table has one fixed schema), index existence and creation,
//! `_refresh`. Searching is Loupe's own API (`/api/v1/logs`, the query
//! language), not this one.
//!
//! The index names the record's stream. Credentials are those of every
//! other route, in the forms Elasticsearch clients send them (`auth.rs`:
//! Basic `pk:sk`, `ApiKey base64(pk:sk)`, Bearer); the whole surface needs
//! the `ingest` scope.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loupe_ingest::logs::es_bulk::{self, BulkError, ItemFailure};
use loupe_model::LogRecord;
use serde_json::{Value, json};

use super::otlp::body_error;
use crate::auth::Project;
use crate::{ApiError, AppState};

/// Where the Elasticsearch-compatible API is served.
pub const BASE: &str = "/es";

/// The Elasticsearch version reported: recent enough for the 8.x clients
/// and Beats' version checks, and 7.x clients accept it.
const VERSION: &str = "8.17.0";

pub(crate) fn routes() -> Router<AppState> {
    let probe = || {
        get(not_found)
            .head(not_found)
            .put(acknowledged)
            .post(acknowledged)
    };
    Router::new()
        .route("/es", get(info).head(ok))
        .route("/es/", get(info).head(ok))
        .route("/es/_bulk", post(bulk_root).put(bulk_root))
        .route("/es/{index}/_bulk", post(bulk_index).put(bulk_index))
        .route("/es/{index}/_doc", post(doc))
        .route("/es/{index}/_doc/{id}", post(doc_with_id).put(doc_with_id))
        .route(
            "/es/{index}/_create/{id}",
            post(create_with_id).put(create_with_id),
        )
        .route("/es/_license", get(license))
        .route("/es/_xpack", get(xpack))
        .route("/es/_cluster/health", get(cluster_health))
        .route("/es/_cat/health", get(cat_health))
        .route("/es/_template/{name}", probe())
        .route("/es/_index_template/{name}", probe())
        .route("/es/_component_template/{name}", probe())
        .route("/es/_ilm/policy/{name}", probe())
        .route("/es/_ingest/pipeline/{name}", probe())
        .route("/es/_data_stream/{name}", probe())
        .route("/es/_refresh", get(refresh).post(refresh))
        .route("/es/{index}/_refresh", get(refresh).post(refresh))
        .route("/es/{index}", get(index_info).head(ok).put(create_index))
        .layer(axum::middleware::map_response(product_header))
}

/// Every reply says it is Elasticsearch: the 8.x clients refuse a 2xx
/// without it, and 7.14+ checks it on `GET /`.
async fn product_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

fn es_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()),
    )
        .into_response()
}

/// An error in Elasticsearch's shape.
fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    es_json(
        status,
        &json!({
            "error": {
                "root_cause": [{"type": kind, "reason": reason}],
                "type": kind,
                "reason": reason,
            },
            "status": status.as_u16(),
        }),
    )
}

async fn info() -> Response {
    es_json(
        StatusCode::OK,
        &json!({
            "name": "loupe",
            "cluster_name": "loupe",
            "cluster_uuid": "loupe-logs",
            "version": {
                "number": VERSION,
                "build_flavor": "default",
                "build_type": "loupe",
                "build_hash": "loupe",
                "build_date": "2026-01-01T00:00:00.000Z",
                "build_snapshot": false,
                "lucene_version": "9.12.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }),
    )
}

async fn ok() -> StatusCode {
    StatusCode::OK
}

async fn not_found() -> Response {
    es_error(
        StatusCode::NOT_FOUND,
        "resource_not_found_exception",
        "Loupe keeps no templates, policies, pipelines or data streams; a PUT is acknowledged",
    )
}

async fn acknowledged() -> Response {
    es_json(StatusCode::OK, &json!({"acknowledged": true}))
}

async fn license() -> Response {
    es_json(
        StatusCode::OK,
        &json!({"license": {
            "status": "active", "uid": "loupe", "type": "basic", "issue_date": "2026-01-01T00:00:00.000Z",
            "issue_date_in_millis": 1_767_225_600_000u64, "max_nodes": 1000, "issued_to": "loupe",
            "issuer": "loupe", "start_date_in_millis": -1,
        }}),
    )
}

async fn xpack() -> Response {
    es_json(
        StatusCode::OK,
        &json!({
            "build": {"hash": "loupe", "date": "2026-01-01T00:00:00.000Z"},
            "license": {"uid": "loupe", "type": "basic", "mode": "basic", "status": "active"},
            "features": {},
        }),
    )
}

async fn cluster_health() -> Response {
    es_json(
        StatusCode::OK,
        &json!({
            "cluster_name": "loupe", "status": "green", "timed_out": false,
            "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": 1,
            "active_shards": 1, "relocating_shards": 0, "initializing_shards": 0,
            "unassigned_shards": 0, "active_shards_percent_as_number": 100.0,
        }),
    )
}

/// rsyslog's `omelasticsearch` checks the server with this before sending.
async fn cat_health() -> Response {
    let now = loupe_model::time::now_ns() / 1_000_000_000;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        format!("{now} 00:00:00 loupe green 1 1 1 1 0 0 0 0 - 100.0%\n"),
    )
        .into_response()
}

async fn refresh() -> Response {
    // Acknowledged log records are searchable at once: nothing to refresh.
    es_json(
        StatusCode::OK,
        &json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}),
    )
}

async fn index_info(Path(index): Path<String>) -> Response {
    es_json(
        StatusCode::OK,
        &json!({ index: {"aliases": {}, "mappings": {}, "settings": {}} }),
    )
}

async fn create_index(Path(index): Path<String>) -> Response {
    match es_bulk::index_problem(&index) {
        Some(why) => es_error(
            StatusCode::BAD_REQUEST,
            "invalid_index_name_exception",
            &format!("invalid index name [{index}]: {why}"),
        ),
        None => es_json(
            StatusCode::OK,
            &json!({"acknowledged": true, "shards_acknowledged": true, "index": index}),
        ),
    }
}

/// `Content-Encoding: gzip`, identity, or a 415.
fn gzip_of(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => Ok(false),
        Some("gzip") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content encoding {other:?}: send gzip or no compression"),
        )),
    }
}

fn decode_failed(e: loupe_ingest::otlp::DecodeError) -> ApiError {
    use loupe_ingest::otlp::DecodeError as D;
    match e {
        D::TooLarge { .. } | D::OverLimit(_) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

fn task_failed(e: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %e, "log decode task failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the Loupe server log",
    )
}

async fn bulk_root(
    state: State<AppState>,
    project: Project,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    bulk(state, project, None, headers, body).await
}

async fn bulk_index(
    state: State<AppState>,
    project: Project,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    bulk(state, project, Some(index), headers, body).await
}

/// One item's place in the reply.
struct Slot {
    action: String,
    index: String,
    id: Option<String>,
    failure: Option<ItemFailure>,
}

#[tracing::instrument(name = "es.bulk", skip_all, fields(project = %project, items))]
async fn bulk(
    State(state): State<AppState>,
    Project(project): Project,
    default_index: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let gzip = gzip_of(&headers)?;
    let body = body.map_err(|r| body_error(&state, r))?;
    let _slot = state.ingest_gate.admit().await?;
    let config = state.config.clone();
    let name = project.as_str().to_owned();
    let parsed = tokio::task::spawn_blocking(move || {
        let bytes = loupe_ingest::logs::inflate(&body, gzip, config.max_decompressed_bytes)
            .map_err(decode_failed)?;
        let now = loupe_model::time::now_ns();
        es_bulk::parse(&bytes, default_index.as_deref(), &name, now, &config.ingest).map_err(|e| {
            match e {
                BulkError::TooManyItems { .. } => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
                }
                other => ApiError::bad_request(other.to_string()),
            }
        })
    })
    .await
    .map_err(task_failed)??;
    tracing::Span::current().record("items", parsed.len());
    let mut records: Vec<LogRecord> = Vec::with_capacity(parsed.len());
    let slots: Vec<Slot> = parsed
        .into_iter()
        .map(|item| {
            let failure = match item.outcome {
                Ok(mut record) => {
                    keep_id(&mut record, item.id.as_deref());
                    records.push(record);
                    None
                }
                Err(f) => Some(f),
            };
            Slot {
                action: item.action,
                index: item.index,
                id: item.id,
                failure,
            }
        })
        .collect();
    let (ack, duplicates) = state.pipeline.write_logs_unique(records).await?;
    let stored = ack.spans;
    let mut duplicates = duplicates.into_iter();
    let mut errors = false;
    let items: Vec<Value> = slots
        .into_iter()
        .enumerate()
        .map(|(n, slot)| {
            let id = slot.id.unwrap_or_else(|| generated_id(ack.seq, n));
            let duplicate = slot.failure.is_none() && duplicates.next().unwrap_or(false);
            let entry = match slot.failure {
                None if duplicate && slot.action == "create" => {
                    errors = true;
                    let (kind, reason) = conflict(&id);
                    json!({
                        "_index": slot.index, "_id": id, "status": 409,
                        "error": {"type": kind, "reason": reason},
                    })
                }
                None if duplicate => stored_again(&slot.index, &id, ack.seq),
                None => created(&slot.index, &id, ack.seq),
                Some(f) => {
                    errors = true;
                    json!({
                        "_index": slot.index, "_id": id, "status": f.status,
                        "error": {"type": f.kind, "reason": f.reason},
                    })
                }
            };
            json!({ slot.action: entry })
        })
        .collect();
    tracing::debug!(stored, rejected = items.len() - stored, "es bulk");
    let took = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(es_json(
        StatusCode::OK,
        &json!({"took": took, "errors": errors, "items": items}),
    ))
}

/// Keeps a document's `_id` with its record, so a re-sent item is stored
/// once (`Pipeline::write_logs_unique`).
fn keep_id(record: &mut LogRecord, id: Option<&str>) {
    if let Some(id) = id {
        record
            .attributes
            .insert(loupe_model::ES_ID.to_owned(), id.to_owned());
    }
}

/// `create` of an `_id` already stored: Elasticsearch's conflict.
fn conflict(id: &str) -> (&'static str, String) {
    (
        "version_conflict_engine_exception",
        format!("[{id}]: version conflict, document already exists"),
    )
}

/// `index` of an `_id` already stored: Elasticsearch answers `updated`
/// (200); the record first stored is kept (log records are immutable).
fn stored_again(index: &str, id: &str, seq: u64) -> Value {
    let mut reply = created(index, id, seq);
    if let Some(map) = reply.as_object_mut() {
        map.insert("_version".into(), json!(2));
        map.insert("result".into(), json!("updated"));
        map.insert("status".into(), json!(200));
    }
    reply
}

/// An `_id` for a document sent without one: unique, since WAL seqs are.
fn generated_id(seq: u64, n: usize) -> String {
    format!("{seq:x}-{n:x}")
}

fn created(index: &str, id: &str, seq: u64) -> Value {
    json!({
        "_index": index, "_id": id, "_version": 1, "result": "created",
        "_shards": {"total": 1, "successful": 1, "failed": 0},
        "_seq_no": seq, "_primary_term": 1, "status": 201,
    })
}

async fn doc(
    state: State<AppState>,
    project: Project,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    one_document(state, project, index, None, headers, body).await
}

async fn doc_with_id(
    state: State<AppState>,
    project: Project,
    Path((index, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    one_document(state, project, index, Some(id), headers, body).await
}

/// `_create/{id}`: as `_doc/{id}`, but an `_id` already stored is a 409.
async fn create_with_id(
    state: State<AppState>,
    project: Project,
    Path((index, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let create = Create(true);
    one_document_as(state, project, index, Some(id), headers, body, create).await
}

/// Whether a single document is a `create` (an existing `_id` conflicts).
struct Create(bool);

async fn one_document(
    state: State<AppState>,
    project: Project,
    index: String,
    id: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    one_document_as(state, project, index, id, headers, body, Create(false)).await
}

#[tracing::instrument(name = "es.doc", skip_all, fields(project = %project))]
async fn one_document_as(
    State(state): State<AppState>,
    Project(project): Project,
    index: String,
    id: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    Create(create): Create,
) -> Result<Response, ApiError> {
    let gzip = gzip_of(&headers)?;
    let body = body.map_err(|r| body_error(&state, r))?;
    let _slot = state.ingest_gate.admit().await?;
    // Inflating and parsing are CPU work: off the async workers.
    let config = state.config.clone();
    let (name, target) = (project.as_str().to_owned(), index.clone());
    let parsed = tokio::task::spawn_blocking(move || {
        let bytes = loupe_ingest::logs::inflate(&body, gzip, config.max_decompressed_bytes)
            .map_err(decode_failed)?;
        let now = loupe_model::time::now_ns();
        Ok::<_, ApiError>(es_bulk::parse_doc(
            &bytes,
            &target,
            &name,
            now,
            &config.ingest,
        ))
    })
    .await
    .map_err(task_failed)??;
    let mut record = match parsed {
        Ok(r) => r,
        Err(f) => {
            let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST);
            return Ok(es_error(status, f.kind, &f.reason));
        }
    };
    keep_id(&mut record, id.as_deref());
    let (ack, duplicates) = state.pipeline.write_logs_unique(vec![record]).await?;
    let id = id.unwrap_or_else(|| generated_id(ack.seq, 0));
    let (status, mut reply) = match duplicates.first() {
        Some(true) if create => {
            let (kind, reason) = conflict(&id);
            return Ok(es_error(StatusCode::CONFLICT, kind, &reason));
        }
        Some(true) => (StatusCode::OK, stored_again(&index, &id, ack.seq)),
        _ => (StatusCode::CREATED, created(&index, &id, ack.seq)),
    };
    if let Some(map) = reply.as_object_mut() {
        map.remove("status");
    }
    Ok(es_json(status, &reply))
}
