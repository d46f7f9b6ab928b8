//! Minimal read API: `GET /api/v1/traces/{id}` (a run in tree order;
//! `?payload_limit=N` cuts longer inputs and outputs, which
//! `GET /api/v1/traces/{id}/spans/{span_id}` then serves whole),
//! `POST /api/v1/traces` (the spans of many runs at once, a few columns of
//! them: what `loupe dify cleanup --server` verifies a batch against) and
//! `GET /api/v1/spans` (filters + keyset pagination, newest first).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use loupe_backend::{Cursor, SpanFilter, SpanQuery, TracesQuery};
use loupe_model::{ProjectId, Span, SpanKind, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Project;
use crate::{ApiError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/traces", post(traces))
        .route("/api/v1/traces/{id}", get(trace))
        .route("/api/v1/traces/{id}/spans/{span_id}", get(trace_span))
        .route("/api/v1/spans", get(list))
}

/// A span as the API shows it: the model's fields plus `duration` (ns).
fn view(span: &Span) -> Value {
    let mut v = serde_json::to_value(span).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("duration".into(), json!(span.duration_ns()));
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceParams {
    /// Inputs and outputs longer than this many bytes are cut to it (at a
    /// character boundary) and `payload_cut` gives their full sizes.
    payload_limit: Option<usize>,
}

/// Cuts `text` to at most `limit` bytes at a character boundary; returns
/// the full length when it cut.
fn cut(text: &mut String, limit: usize) -> Option<usize> {
    if text.len() <= limit {
        return None;
    }
    let full = text.len();
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    Some(full)
}

/// A span with its payloads cut to `limit` bytes (see [`TraceParams`]).
fn view_cut(span: &Span, limit: usize) -> Value {
    let mut v = view(span);
    let Some(obj) = v.as_object_mut() else {
        return v;
    };
    let mut sizes = serde_json::Map::new();
    for field in ["input", "output"] {
        if let Some(Value::String(text)) = obj.get_mut(field)
            && let Some(full) = cut(text, limit)
        {
            sizes.insert(field.into(), json!(full));
        }
    }
    if !sizes.is_empty() {
        obj.insert("payload_cut".into(), Value::Object(sizes));
    }
    v
}

async fn read_trace(
    state: &AppState,
    project: &ProjectId,
    id: &str,
) -> Result<Vec<Span>, ApiError> {
    let spans = state.reader.trace(project, id).await?;
    if spans.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no spans with trace id or run id {id:?} in project {project}"),
        ));
    }
    Ok(spans)
}

async fn trace(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
    params: Result<Query<TraceParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let spans = read_trace(&state, &project, &id).await?;
    let views: Vec<Value> = match params.payload_limit {
        Some(limit) => spans.iter().map(|s| view_cut(s, limit)).collect(),
        None => spans.iter().map(view).collect(),
    };
    Ok(Json(json!({
        "trace_id": id,
        "spans": views,
    })))
}

/// Body of `POST /api/v1/traces`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TracesBody {
    /// Trace or run ids (at most `loupe_store::MAX_TRACE_IDS`, checked by
    /// the store).
    ids: Vec<String>,
    /// Columns to fill; empty or absent: all.
    #[serde(default)]
    columns: Vec<String>,
    /// At most this many spans (default and ceiling [`MAX_BATCH_SPANS`]);
    /// more set `truncated` and return none.
    max_spans: Option<usize>,
}

/// Spans one `POST /api/v1/traces` answers at most.
const MAX_BATCH_SPANS: usize = 200_000;

/// Longest id accepted (Dify's are 36-character UUIDs).
const MAX_ID_BYTES: usize = 256;

/// `POST /api/v1/traces`: every span whose trace or run id is one of
/// `ids`, unordered, each once; `truncated` (and no spans) when more than
/// `max_spans` may match.
async fn traces(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<TracesBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(id) = body.ids.iter().find(|i| i.len() > MAX_ID_BYTES) {
        return Err(ApiError::bad_request(format!(
            "id {:?}… is longer than {MAX_ID_BYTES} bytes",
            id.chars().take(40).collect::<String>()
        )));
    }
    let max_spans = body.max_spans.unwrap_or(MAX_BATCH_SPANS);
    if max_spans > MAX_BATCH_SPANS {
        return Err(ApiError::bad_request(format!(
            "max_spans must be at most {MAX_BATCH_SPANS}"
        )));
    }
    let query = TracesQuery {
        ids: body.ids,
        columns: body.columns,
        max_spans,
    };
    let answer = state.reader.traces(&project, &query).await?;
    let truncated = answer.is_none();
    let spans = answer.unwrap_or_default();
    Ok(Json(json!({
        "spans": spans,
        "truncated": truncated,
    })))
}

/// `GET /api/v1/traces/{id}/spans/{span_id}`: one span of a run, whole.
async fn trace_span(
    State(state): State<AppState>,
    Project(project): Project,
    Path((id, span_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let spans = read_trace(&state, &project, &id).await?;
    let span = spans.iter().find(|s| s.span_id == span_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("run {id:?} has no span {span_id:?}"),
        )
    })?;
    Ok(Json(json!({ "span": view(span) })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    from: Option<String>,
    to: Option<String>,
    app_id: Option<String>,
    status: Option<String>,
    span_kind: Option<String>,
    node_type: Option<String>,
    tool_name: Option<String>,
    run_id: Option<String>,
    trace_id: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A time as RFC 3339 or integer ns since the epoch.
fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    loupe_model::time::parse_instant(text)
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

fn allowed<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> String {
    all.iter()
        .map(|v| as_str(*v))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            Status::from_stored(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status={s:?} is unknown: use one of {}",
                    allowed(Status::ALL, Status::as_str)
                ))
            })
        })
        .transpose()?;
    let span_kind = p
        .span_kind
        .as_deref()
        .map(|s| {
            SpanKind::from_stored(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "span_kind={s:?} is unknown: use one of {}",
                    allowed(SpanKind::ALL, SpanKind::as_str)
                ))
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let cursor = p
        .cursor
        .as_deref()
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let filter = SpanFilter {
        from: p
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: p.to.as_deref().map(|t| parse_time("to", t)).transpose()?,
        app_id: p.app_id,
        status,
        span_kind,
        node_type: p.node_type,
        tool_name: p.tool_name,
        run_id: p.run_id,
        trace_id: p.trace_id,
        session_id: p.session_id,
        user_id: p.user_id,
    };
    let page = state
        .reader
        .list(SpanQuery {
            project,
            filter,
            limit,
            cursor,
        })
        .await?;
    Ok(Json(json!({
        "spans": page.spans.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    })))
}
