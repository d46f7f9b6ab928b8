//! `POST /api/v1/alerts/rules/preview` (read scope): what a rule would have
//! done over the last `hours` (1–168, default 24) of stored data.
//!
//! Body: `{"rule": {…as posted to /api/v1/alerts/rules…}, "hours": 24,
//! "now": "…"}` (`now` optional, RFC 3339 or ns). The rule is checked as
//! a `POST` of it would be (400 naming the problem), then the spans it may
//! read are streamed from the store in start-time order (the rule's
//! positive filters narrow the scan; the rule's own selector decides each
//! span) into [`loupe_alerts::preview::Previewer`], which replays them
//! through the real evaluator. Nothing is stored or sent. More than
//! [`MAX_SPANS`] spans is a 422 asking for a narrower rule or range.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures::StreamExt;
use loupe_alerts::Rule;
use loupe_alerts::preview::{Previewer, lookback, step_for};
use loupe_backend::Plan;
use loupe_backend::plan::{Cmp, FieldRef, Filter, Literal, Output, SortColumn, SortKey, ValueType};
use loupe_model::{Span, SpanKind, Status, column};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Project;
use crate::routes::alerts::{api_error, engine};
use crate::{ApiError, AppState};

/// Spans one preview reads at most.
pub(crate) const MAX_SPANS: u64 = 5_000_000;
/// Hours a preview covers at most (a week).
const MAX_HOURS: u32 = 168;
/// Spans that started this long before the first window are read too, so
/// a span running across the range's start counts where it ends.
const MARGIN_NS: i64 = 3_600_000_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewBody {
    rule: Value,
    #[serde(default)]
    hours: Option<u32>,
    #[serde(default)]
    now: Option<Value>,
}

/// The columns read, in this order.
fn fields(labels: &[String]) -> Vec<FieldRef> {
    let col = |name: &str, ty| FieldRef::Column {
        name: name.to_owned(),
        ty,
    };
    let mut f = vec![
        col(column::START_TIME, ValueType::Timestamp),
        col(column::END_TIME, ValueType::Timestamp),
        col(column::STATUS, ValueType::Text),
        col(column::SPAN_KIND, ValueType::Text),
        col(column::NODE_TYPE, ValueType::Text),
        col(column::TOOL_NAME, ValueType::Text),
        col(column::MODEL_NAME, ValueType::Text),
        col(column::APP_ID, ValueType::Text),
        col(column::WORKFLOW_ID, ValueType::Text),
        col(column::ERROR_CLASS, ValueType::Text),
        col(column::INPUT_TOKENS, ValueType::Int),
        col(column::OUTPUT_TOKENS, ValueType::Int),
        col(column::TOTAL_TOKENS, ValueType::Int),
        col(column::COST, ValueType::Float),
        FieldRef::Attribute(loupe_model::ERROR_SIGNATURE.to_owned()),
    ];
    f.extend(labels.iter().map(|l| FieldRef::Tag(l.clone())));
    f
}

/// A filter that keeps every span the rule can select (a superset): its
/// exact positive filters on stored columns.
fn prefilter(rule: &Rule, labels: &[String]) -> Option<Filter> {
    let mut all = Vec::new();
    for (k, v) in &rule.filters {
        if v.is_empty() || v.starts_with('!') {
            continue;
        }
        let field = match k.as_str() {
            column::SPAN_KIND
            | column::NODE_TYPE
            | column::TOOL_NAME
            | column::MODEL_NAME
            | column::APP_ID
            | column::WORKFLOW_ID
            | column::ERROR_CLASS => FieldRef::Column {
                name: k.clone(),
                ty: ValueType::Text,
            },
            // `unset` and `running` are derived from the end time too.
            column::STATUS if v == "ok" || v == "error" => FieldRef::Column {
                name: k.clone(),
                ty: ValueType::Text,
            },
            _ => {
                let tag = k.strip_prefix("tags.").unwrap_or(k);
                if !labels.iter().any(|l| l == tag) {
                    continue;
                }
                FieldRef::Tag(tag.to_owned())
            }
        };
        all.push(Filter::Compare {
            field,
            op: Cmp::Eq,
            value: Literal::Text(v.clone()),
        });
    }
    (!all.is_empty()).then_some(Filter::And(all))
}

/// A span of `project` from one row of [`fields`].
fn span_of(project: &str, row: &[Value], labels: &[String]) -> Span {
    let text = |i: usize| row.get(i).and_then(Value::as_str).map(str::to_owned);
    let int = |i: usize| row.get(i).and_then(Value::as_i64);
    let mut s = Span::new(project, String::new());
    s.start_time = int(0);
    s.end_time = int(1);
    s.status = text(2).as_deref().and_then(Status::from_stored);
    s.span_kind = text(3).as_deref().and_then(SpanKind::from_stored);
    s.node_type = text(4);
    s.tool_name = text(5);
    s.model_name = text(6);
    s.app_id = text(7);
    s.workflow_id = text(8);
    s.error_class = text(9);
    s.input_tokens = int(10);
    s.output_tokens = int(11);
    s.total_tokens = int(12);
    s.cost = row.get(13).and_then(Value::as_f64);
    if let Some(sig) = text(14) {
        s.attributes
            .insert(loupe_model::ERROR_SIGNATURE.to_owned(), sig);
    }
    for (i, l) in labels.iter().enumerate() {
        if let Some(v) = text(15 + i) {
            s.tags.insert(l.clone(), v);
        }
    }
    s
}

fn now_ns(v: Option<&Value>) -> Result<i64, ApiError> {
    match v {
        None => Ok(loupe_model::time::now_ns()),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("`now` must be RFC 3339 or ns")),
        Some(Value::String(s)) => loupe_model::time::parse_instant(s)
            .map_err(|e| ApiError::bad_request(format!("now: {e}"))),
        Some(_) => Err(ApiError::bad_request("`now` must be RFC 3339 or ns")),
    }
}

pub(crate) async fn preview(
    State(state): State<AppState>,
    Project(project): Project,
    body: Result<Json<PreviewBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let engine = engine(&state)?;
    let rule: Rule = serde_json::from_value(body.rule)
        .map_err(|e| ApiError::bad_request(format!("rule: {e}")))?;
    let hours = body.hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ApiError::bad_request(format!(
            "hours must be 1 to {MAX_HOURS}, not {hours}"
        )));
    }
    let rule = engine
        .scoped_rule(project.as_str(), rule)
        .map_err(api_error)?;
    if rule.kind == loupe_alerts::rules::RuleType::Gauge {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "a gauge rule reads the current value of a gauge (the Dify database's \
             dify_database_* families), which stored spans do not hold: there is nothing to preview",
        ));
    }
    let labels = engine.labels();
    let now = now_ns(body.now.as_ref())?;
    let range = std::time::Duration::from_secs(u64::from(hours) * 3600);
    let step = step_for(range);
    let to_ms = now.div_euclid(1_000_000);
    let from_ms = to_ms - range.as_millis() as i64;
    let read_from = from_ms * 1_000_000 - lookback(&rule).as_nanos() as i64 - MARGIN_NS;
    let plan = Plan {
        source: loupe_backend::plan::Source::Spans,
        from_ns: read_from,
        to_ns: now.saturating_add(1),
        filter: prefilter(&rule, &labels),
        group_by: Vec::new(),
        aggregates: Vec::new(),
        sort: vec![SortKey {
            column: SortColumn::Field(FieldRef::Column {
                name: column::START_TIME.to_owned(),
                ty: ValueType::Timestamp,
            }),
            descending: false,
        }],
        limit: Some(MAX_SPANS + 1),
        output: Output::Rows(fields(&labels)),
        approx_percentiles: false,
    };
    let limits = state.config.query_limits();
    let name = rule.name.clone();
    let mut previewer = Previewer::new(rule, labels.clone(), from_ms, to_ms, step);
    let started = std::time::Instant::now();
    let read = async {
        let mut batches = state.reader.query_stream(&project, &plan, limits).await?;
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let columns = batch.columns();
            for r in 0..batch.num_rows() {
                rows += 1;
                if rows > MAX_SPANS {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "the rule reads more than {MAX_SPANS} spans in {hours} h: \
                             add a filter (span_kind, tool_name, app_id, …) or preview fewer hours"
                        ),
                    ));
                }
                let row: Vec<Value> = columns
                    .iter()
                    .map(|c| loupe_backend::plan::cell(c.as_ref(), r))
                    .collect();
                previewer.push(span_of(project.as_str(), &row, &labels));
            }
        }
        Ok::<_, ApiError>(())
    };
    tokio::time::timeout(state.config.query_timeout, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the preview ran longer than the {} s query limit; add a filter or preview fewer hours",
                    state.config.query_timeout.as_secs_f64()
                ),
            )
        })??;
    let preview = previewer.finish();
    tracing::debug!(rule = %name, spans = preview.spans, ms = started.elapsed().as_millis() as u64, "alert rule preview");
    Ok(Json(json!({
        "rule": name,
        "hours": hours,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "preview": preview,
    })))
}
