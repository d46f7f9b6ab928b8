//! Langfuse read endpoints over the span store.
//!
//! - `GET /api/public/traces`: trace roots (spans without a parent) of the
//!   key's project, newest first (`orderBy=timestamp.asc` for oldest
//!   first), filtered by `userId`, `sessionId`, `name`, `tags` (repeatable;
//!   all must be present), `fromTimestamp`, `toTimestamp`; paged by `page`
//!   (from 1) and `limit` (1–100, default 50). Reply `{"data": [trace],
//!   "meta": {"page", "limit", "totalItems", "totalPages"}}`. `fields`
//!   (`core,io,scores,observations,metrics`) skips the observation roll-up
//!   when none of `observations`, `scores`, `metrics` is asked for.
//! - `GET /api/public/traces/{id}`: the trace with full `observations` and
//!   `scores`; 404 when no span of the trace exists.
//! - `GET /api/public/observations`: non-root, non-score spans, filtered by
//!   `name`, `userId`, `type`, `traceId`, `parentObservationId`,
//!   `fromStartTime`, `toStartTime`; same paging, newest first.
//!
//! Other Langfuse parameters (`environment`, `version`, `release`,
//! `filter`, `level`) are accepted and ignored.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use loupe_backend::{Cond, PageQuery, SpanFilter};
use loupe_model::Span;
use loupe_normalise::langfuse::{OBSERVATION_TYPE_ATTR, SCORE_NODE_TYPE, TAGS_ATTR, parse_time};
use serde_json::{Value, json};

use super::view::{self, TraceStats};
use crate::auth::Project;
use crate::{ApiError, AppState};

/// Query parameters, repeated keys kept (Langfuse sends `tags=a&tags=b`).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str(&raw)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|t| {
                parse_time(&t).ok_or_else(|| {
                    ApiError::bad_request(format!("{key}={t:?} is not an ISO-8601 time"))
                })
            })
            .transpose()
    }

    /// `(page, limit)`: page from 1, limit 1..=100 (default 50).
    fn paging(&self) -> Result<(usize, usize), ApiError> {
        let number = |key: &str, default: usize| match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("{key}={v:?} is not a whole number"))),
        };
        let page = number("page", 1)?;
        let limit = number("limit", 50)?;
        if page == 0 {
            return Err(ApiError::bad_request("page starts at 1"));
        }
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request("limit must be between 1 and 100"));
        }
        Ok((page, limit))
    }
}

fn meta(page: usize, limit: usize, total: u64) -> Value {
    json!({
        "page": page,
        "limit": limit,
        "totalItems": total,
        "totalPages": total.div_ceil(limit as u64),
    })
}

pub(super) async fn traces(
    State(state): State<AppState>,
    Project(project): Project,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(raw)?;
    let (page, limit) = params.paging()?;
    let oldest_first = match params.get("orderBy").as_deref() {
        None | Some("timestamp.desc") => false,
        Some("timestamp.asc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "orderBy={other:?} is not supported: use timestamp.desc or timestamp.asc"
            )));
        }
    };
    let mut conds = vec![Cond::Root];
    if let Some(name) = params.get("name") {
        conds.push(Cond::Name(name));
    }
    for tag in params.all("tags") {
        conds.push(Cond::AttrContains(
            TAGS_ATTR.into(),
            Value::from(tag).to_string(),
        ));
    }
    let filter = SpanFilter {
        from: params.time("fromTimestamp")?,
        to: params.time("toTimestamp")?,
        user_id: params.get("userId"),
        session_id: params.get("sessionId"),
        ..SpanFilter::default()
    };
    let roots = state
        .reader
        .page(PageQuery {
            project: project.clone(),
            filter,
            conds,
            offset: (page - 1).saturating_mul(limit),
            limit,
            oldest_first,
            count: true,
        })
        .await?;
    let wants_rollup = params.get("fields").is_none_or(|f| {
        f.split(',')
            .any(|g| matches!(g.trim(), "observations" | "scores" | "metrics"))
    });
    let ids: Vec<String> = roots
        .spans
        .iter()
        .map(|r| view::trace_id_of(r).to_owned())
        .collect();
    let mut stats: HashMap<String, TraceStats> = HashMap::new();
    if wants_rollup && !ids.is_empty() {
        let children = state
            .reader
            .page(PageQuery {
                project: project.clone(),
                filter: SpanFilter::default(),
                conds: vec![Cond::TraceIn(ids), Cond::NotRoot],
                offset: 0,
                limit: 10_000,
                oldest_first: true,
                count: false,
            })
            .await?;
        for span in &children.spans {
            stats
                .entry(view::trace_id_of(span).to_owned())
                .or_default()
                .add(span);
        }
    }
    let empty = TraceStats::default();
    let data: Vec<Value> = roots
        .spans
        .iter()
        .map(|r| {
            view::trace(
                r,
                stats.get(view::trace_id_of(r)).unwrap_or(&empty),
                project.as_str(),
            )
        })
        .collect();
    Ok(Json(json!({
        "data": data,
        "meta": meta(page, limit, roots.total.unwrap_or(0)),
    })))
}

pub(super) async fn trace(
    State(state): State<AppState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = state.reader.trace(&project, &id).await?;
    // The trace whose id this is; else the run whose Dify run id it is
    // (runs that arrived over OTLP keep the exporter's random trace id and
    // carry Dify's run id as `run_id`).
    let is_trace = |s: &Span| s.trace_id.as_deref() == Some(id.as_str());
    let spans: Vec<Span> = if all.iter().any(is_trace) {
        all.into_iter().filter(is_trace).collect()
    } else {
        all.into_iter()
            .filter(|s| s.run_id.as_deref() == Some(id.as_str()))
            .collect()
    };
    if spans.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("trace {id:?} not found in project {project}"),
        ));
    }
    let root_index = spans
        .iter()
        .position(|s| s.span_id == id)
        .or_else(|| spans.iter().position(|s| s.parent_span_id.is_none()));
    let mut stats = TraceStats::default();
    let mut observations = Vec::new();
    let mut scores = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        if Some(i) == root_index {
            continue;
        }
        stats.add(span);
        if view::is_score(span) {
            scores.push(view::score(span, project.as_str()));
        } else {
            observations.push(view::observation(span, project.as_str()));
        }
    }
    let mut synthetic = Span::new(project.as_str(), id.clone());
    synthetic.trace_id = Some(id.clone());
    let root = root_index.map_or(&synthetic, |i| &spans[i]);
    let mut out = view::trace(root, &stats, project.as_str());
    if let Some(obj) = out.as_object_mut() {
        obj.insert("observations".into(), Value::Array(observations));
        obj.insert("scores".into(), Value::Array(scores));
    }
    Ok(Json(out))
}

pub(super) async fn observations(
    State(state): State<AppState>,
    Project(project): Project,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(raw)?;
    let (page, limit) = params.paging()?;
    let mut conds = vec![Cond::NotRoot, Cond::NodeTypeNot(SCORE_NODE_TYPE.into())];
    if let Some(name) = params.get("name") {
        conds.push(Cond::Name(name));
    }
    if let Some(parent) = params.get("parentObservationId") {
        conds.push(Cond::Parent(parent));
    }
    if let Some(t) = params.get("type") {
        let t = t.to_ascii_uppercase();
        let mut any = vec![Cond::AttrEq(OBSERVATION_TYPE_ATTR.into(), t.clone())];
        if let Some(kind) = view::kind_of_type(&t) {
            any.push(Cond::Kind(kind));
        }
        conds.push(Cond::Any(any));
    }
    let filter = SpanFilter {
        from: params.time("fromStartTime")?,
        to: params.time("toStartTime")?,
        user_id: params.get("userId"),
        trace_id: params.get("traceId"),
        ..SpanFilter::default()
    };
    let found = state
        .reader
        .page(PageQuery {
            project: project.clone(),
            filter,
            conds,
            offset: (page - 1).saturating_mul(limit),
            limit,
            oldest_first: false,
            count: true,
        })
        .await?;
    let data: Vec<Value> = found
        .spans
        .iter()
        .map(|s| view::observation(s, project.as_str()))
        .collect();
    Ok(Json(json!({
        "data": data,
        "meta": meta(page, limit, found.total.unwrap_or(0)),
    })))
}
