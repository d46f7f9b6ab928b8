//! Reads: one run, many runs, keyset and offset pages, and `Plan` queries,
//! each one SELECT over `spans FINAL` scoped to the project.

use std::time::Instant;

use loupe_backend::plan::{Column, QueryResult, QueryStats, ValueType, value_bytes};
use loupe_backend::{
    Cond, Cursor, OffsetPage, PageQuery, Plan, QueryLimits, SpanFilter, SpanPage, SpanQuery,
    TracesQuery, tree_order,
};
use loupe_model::{ProjectId, Span};
use serde_json::Value;

use crate::row::{self, zip_map};
use crate::sql::{Window, in_lists, quote};
use crate::{Error, Inner};

/// The start time a span without one sorts under (the oldest).
const NO_START: &str = "ifNull(start_time, -9223372036854775808)";

impl Inner {
    /// Every span whose trace id or run id is `id`, in tree order.
    #[tracing::instrument(name = "clickhouse.trace", skip_all, fields(project = %project))]
    pub(crate) async fn trace(&self, project: &ProjectId, id: &str) -> Result<Vec<Span>, Error> {
        let cond = format!("(trace_id = {id} OR run_id = {id})", id = quote(id));
        let rows = self.latest_where(project, &cond, None).await?;
        Ok(tree_order(rows.into_iter().map(|r| r.span).collect()))
    }

    /// The spans of many runs in one pass per chunk of ids.
    #[tracing::instrument(name = "clickhouse.traces", skip_all, fields(project = %project, ids = query.ids.len()))]
    pub(crate) async fn traces(
        &self,
        project: &ProjectId,
        query: &TracesQuery,
    ) -> Result<Option<Vec<Span>>, Error> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for list in in_lists(&query.ids) {
            let room = query.max_spans.saturating_sub(out.len()).saturating_add(1);
            let cond = format!("(trace_id IN ({list}) OR run_id IN ({list}))");
            for r in self.latest_where(project, &cond, Some(room)).await? {
                if seen.insert(r.span.span_id.clone()) {
                    out.push(r.span);
                }
            }
            if out.len() > query.max_spans {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// Every span, of every project, that ended at or after
    /// `since_ns` (or, without an end, started then), without payloads,
    /// handed to `each` one at a time: what rollups kept in memory are
    /// warmed from after a restart. One project at a time, each read
    /// scoped to it; partitions filed more than a day before `since_ns`
    /// are not read (a span running longer than a day is left out).
    #[tracing::instrument(name = "clickhouse.recent", skip_all)]
    pub(crate) async fn recent(
        &self,
        since_ns: i64,
        each: &mut (dyn FnMut(&Span) + Send),
    ) -> Result<u64, Error> {
        let since_s = since_ns.div_euclid(1_000_000_000);
        let filed = format!("filed_at >= toDateTime({})", (since_s - 86_400).max(0));
        let projects = self
            .client
            .select(&format!(
                "SELECT DISTINCT project FROM {} WHERE {filed} ORDER BY project",
                self.layout.table()
            ))
            .await?
            .rows;
        let items = row::named_items_without_payloads(&self.layout).join(", ");
        let mut count = 0u64;
        for cells in projects {
            let Some(project) = cells.first().and_then(Value::as_str) else {
                continue;
            };
            let Ok(project) = ProjectId::new(project) else {
                continue;
            };
            let sql = format!(
                "SELECT {items} {} AND {filed} \
                 AND (end_time >= {since_ns} OR (end_time IS NULL AND start_time >= {since_ns}))",
                self.compiler().scoped_from(&project)
            );
            count += self.each_span(&sql, each).await?;
        }
        Ok(count)
    }

    /// Every span a SELECT of `row::named_items…` answers, handed to
    /// `each` as its row arrives; how many.
    pub(crate) async fn each_span(
        &self,
        sql: &str,
        each: &mut (dyn FnMut(&Span) + Send),
    ) -> Result<u64, Error> {
        let mut rows = self.client.select_rows(sql).await?;
        let mut count = 0;
        while let Some(mut named) = rows.next().await? {
            let cells: Vec<Value> = (0..named.len())
                .map(|i| named.remove(&format!("c{i}")).unwrap_or_default())
                .collect();
            each(&row::decode(&cells)?.span);
            count += 1;
        }
        Ok(count)
    }

    async fn spans_of(&self, sql: &str) -> Result<Vec<Span>, Error> {
        self.client
            .select(sql)
            .await?
            .rows
            .iter()
            .map(|cells| row::decode(cells).map(|r| r.span))
            .collect()
    }

    /// A keyset page, newest first.
    #[tracing::instrument(name = "clickhouse.list", skip_all, fields(project = %query.project))]
    pub(crate) async fn list(&self, query: SpanQuery) -> Result<SpanPage, Error> {
        let mut conds = filter_conds(&query.filter);
        if let Some(Cursor {
            start_time,
            span_id,
        }) = &query.cursor
        {
            conds.push(format!(
                "({NO_START} < {start_time} OR ({NO_START} = {start_time} AND span_id < {}))",
                quote(span_id)
            ));
        }
        let limit = query.limit.clamp(1, 1000);
        let sql = format!(
            "SELECT {} {}{} ORDER BY {NO_START} DESC, span_id DESC LIMIT {}",
            row::select_list(&self.layout),
            self.compiler().scoped_from(&query.project),
            and_all(&conds),
            limit + 1
        );
        let spans = self.spans_of(&sql).await?;
        Ok(SpanPage::from_overfetched(spans, limit))
    }

    /// An offset page by start time, with the total when asked.
    #[tracing::instrument(name = "clickhouse.page", skip_all, fields(project = %query.project))]
    pub(crate) async fn page(&self, query: PageQuery) -> Result<OffsetPage, Error> {
        let mut conds = filter_conds(&query.filter);
        for c in &query.conds {
            conds.push(self.cond(c, 0)?);
        }
        let from = self.compiler().scoped_from(&query.project);
        let total = if query.count {
            let sql = format!("SELECT count() {from}{}", and_all(&conds));
            let rows = self.client.select(&sql).await?.rows;
            let n = rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .ok_or_else(|| Error::Decode("count() gave no number".into()))?;
            Some(n)
        } else {
            None
        };
        let dir = if query.oldest_first { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT {} {from}{} ORDER BY {NO_START} {dir}, span_id {dir} LIMIT {}, {}",
            row::select_list(&self.layout),
            and_all(&conds),
            query.offset,
            query.limit.clamp(1, 10_000)
        );
        let spans = self.spans_of(&sql).await?;
        Ok(OffsetPage { spans, total })
    }

    fn cond(&self, c: &Cond, depth: usize) -> Result<String, Error> {
        if depth > 16 {
            return Err(Error::Invalid("conditions nest too deeply".into()));
        }
        let attr = |k: &str| self.layout.map_get("attributes", &quote(k));
        Ok(match c {
            Cond::Root => "isNull(parent_span_id)".into(),
            Cond::NotRoot => "isNotNull(parent_span_id)".into(),
            Cond::Name(v) => format!("ifNull(name = {}, 0)", quote(v)),
            Cond::Parent(v) => format!("ifNull(parent_span_id = {}, 0)", quote(v)),
            Cond::Kind(k) => format!("ifNull(span_kind = {}, 0)", quote(k.as_str())),
            Cond::NodeTypeNot(v) => format!("ifNull(node_type != {}, 1)", quote(v)),
            Cond::AttrEq(k, v) => format!("ifNull({} = {}, 0)", attr(k), quote(v)),
            Cond::AttrContains(k, v) => {
                format!("ifNull(position({}, {}) > 0, 0)", attr(k), quote(v))
            }
            Cond::TraceIn(ids) if ids.is_empty() => "0".into(),
            Cond::TraceIn(ids) => {
                let list: Vec<String> = ids.iter().map(|v| quote(v)).collect();
                format!("ifNull(trace_id IN ({}), 0)", list.join(", "))
            }
            Cond::Any(conds) if conds.is_empty() => "0".into(),
            Cond::Any(conds) => {
                let parts = conds
                    .iter()
                    .map(|c| self.cond(c, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(" OR "))
            }
            other => {
                return Err(Error::Unsupported(format!("page condition {other:?}")));
            }
        })
    }

    /// Runs a plan; at most `limits.max_rows` rows, about
    /// `limits.max_answer_bytes` of values.
    #[tracing::instrument(name = "clickhouse.query", skip_all, fields(project = %project))]
    pub(crate) async fn query(
        &self,
        project: &ProjectId,
        plan: &Plan,
        limits: QueryLimits,
    ) -> Result<QueryResult, Error> {
        let started = Instant::now();
        let compiled = self
            .compiler()
            .plan(project, plan, Window::first(plan, limits.max_rows))?;
        let rows = self.client.select(&compiled.sql).await?.rows;
        let mut truncated = false;
        let mut out = Vec::with_capacity(rows.len().min(limits.max_rows));
        let mut bytes = 0usize;
        for cells in rows {
            if out.len() == limits.max_rows {
                truncated = true;
                break;
            }
            let row = typed_row(&compiled.columns, cells)?;
            bytes = bytes.saturating_add(row.iter().map(value_bytes).sum::<usize>());
            if bytes > limits.max_answer_bytes {
                truncated = true;
                break;
            }
            out.push(row);
        }
        Ok(QueryResult {
            columns: compiled.columns,
            rows: out,
            stats: QueryStats {
                rows_scanned: None,
                parts_scanned: 0,
                elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                truncated,
                from_rollups: false,
                approximate: false,
            },
        })
    }
}

/// ` AND a AND b` (empty for no conditions).
fn and_all(conds: &[String]) -> String {
    conds.iter().map(|c| format!(" AND {c}")).collect()
}

/// The [`SpanFilter`] as SQL conditions.
fn filter_conds(f: &SpanFilter) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = f.from {
        out.push(format!("ifNull(start_time >= {t}, 0)"));
    }
    if let Some(t) = f.to {
        out.push(format!("ifNull(start_time < {t}, 0)"));
    }
    let eq = [
        ("app_id", &f.app_id),
        ("node_type", &f.node_type),
        ("tool_name", &f.tool_name),
        ("run_id", &f.run_id),
        ("trace_id", &f.trace_id),
        ("session_id", &f.session_id),
        ("user_id", &f.user_id),
    ];
    for (name, value) in eq {
        if let Some(v) = value {
            out.push(format!("ifNull({name} = {}, 0)", quote(v)));
        }
    }
    if let Some(s) = f.status {
        out.push(format!("ifNull(status = {}, 0)", quote(s.as_str())));
    }
    if let Some(k) = f.span_kind {
        out.push(format!("ifNull(span_kind = {}, 0)", quote(k.as_str())));
    }
    out
}

/// One answer row with each cell in its column's JSON shape: numbers of
/// integer columns as integers, of float columns as floats, maps (sent as
/// a keys/values tuple) as objects.
pub(crate) fn typed_row(columns: &[Column], cells: Vec<Value>) -> Result<Vec<Value>, Error> {
    if cells.len() != columns.len() {
        return Err(Error::Decode(format!(
            "a row has {} cells for {} columns",
            cells.len(),
            columns.len()
        )));
    }
    columns
        .iter()
        .zip(cells)
        .map(|(c, v)| typed(c.ty, v))
        .collect()
}

fn typed(ty: ValueType, v: Value) -> Result<Value, Error> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    Ok(match ty {
        ValueType::Int | ValueType::Duration | ValueType::Timestamp => {
            let n = match &v {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            n.map(Value::from)
                .ok_or_else(|| Error::Decode(format!("{v} is not an integer")))?
        }
        ValueType::Float => {
            let x = match &v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            };
            x.and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number)
        }
        ValueType::Map => match v {
            Value::Array(kv) if kv.len() == 2 => {
                let map = zip_map(&kv[0], &kv[1])?;
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                )
            }
            other => return Err(Error::Decode(format!("{other} is not a map"))),
        },
        ValueType::Text => match v {
            Value::String(_) => v,
            other => Value::String(other.to_string()),
        },
        _ => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_their_columns_json_shape() {
        assert_eq!(
            typed(ValueType::Float, Value::from(1)).ok(),
            Some(Value::from(1.0))
        );
        assert_eq!(
            typed(ValueType::Int, Value::from("42")).ok(),
            Some(Value::from(42))
        );
        let map = serde_json::json!([["a", "b"], ["1", "2"]]);
        assert_eq!(
            typed(ValueType::Map, map).ok(),
            Some(serde_json::json!({"a": "1", "b": "2"}))
        );
        assert!(typed(ValueType::Int, Value::from("x")).is_err());
    }
}
