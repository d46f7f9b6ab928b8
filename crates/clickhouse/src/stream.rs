//! Streamed answers (`SpanReader::query_stream`: exports, the alert rule
//! preview): the plan's answer read in windows of `stream_batch_rows` rows
//! (default 10,000), each window one SELECT turned into one Arrow batch.
//!
//! The answer's order is total (explicit keys, then group keys or
//! `span_id`), so consecutive windows neither overlap nor skip rows of a
//! table nobody writes to meanwhile; spans written during a long export may
//! shift a window by the rows they add. Each window is bounded by
//! `max_response_bytes` like every answer.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, MapBuilder, MapFieldNames, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow::datatypes::{Field, Schema};
use futures::StreamExt;
use loupe_backend::plan::{Column, ValueType};
use loupe_backend::{BatchStream, Plan, StoreError};
use loupe_model::ProjectId;
use serde_json::Value;

use crate::read::typed_row;
use crate::sql::Window;
use crate::{Error, Inner};

impl Inner {
    /// The plan's answer as a stream of batches (the plan's own limit, no
    /// row cap).
    pub(crate) fn stream(self: Arc<Self>, project: ProjectId, plan: Plan) -> BatchStream {
        let total = plan.limit.unwrap_or(u64::MAX);
        let page = self.stream_batch_rows.max(1);
        let state = (self, project, plan, 0u64, false);
        futures::stream::try_unfold(
            state,
            move |(inner, project, plan, offset, done)| async move {
                if done {
                    return Ok(None);
                }
                let count = page.min(total - offset);
                let compiled = inner
                    .compiler()
                    .plan(&project, &plan, Window { offset, count })?;
                let rows = inner.client.select(&compiled.sql).await?.rows;
                let got = rows.len() as u64;
                let batch = to_batch(&compiled.columns, rows)?;
                let next = offset + got;
                // The last window: fewer rows than asked, or the plan's limit.
                let done = got < count || next >= total;
                Ok(Some((batch, (inner, project, plan, next, done))))
            },
        )
        .map(|r: Result<RecordBatch, Error>| r.map_err(StoreError::from))
        .boxed()
    }
}

/// The answer's rows as one batch, typed by column.
pub(crate) fn to_batch(columns: &[Column], rows: Vec<Vec<Value>>) -> Result<RecordBatch, Error> {
    let rows = rows
        .into_iter()
        .map(|cells| typed_row(columns, cells))
        .collect::<Result<Vec<_>, _>>()?;
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let cells = rows.iter().map(|r| &r[i]);
        let array: ArrayRef = match c.ty {
            ValueType::Int | ValueType::Duration => {
                let mut b = Int64Builder::with_capacity(rows.len());
                cells.for_each(|v| b.append_option(v.as_i64()));
                Arc::new(b.finish())
            }
            ValueType::Timestamp => {
                let mut b = TimestampNanosecondBuilder::with_capacity(rows.len());
                cells.for_each(|v| b.append_option(v.as_i64()));
                Arc::new(b.finish().with_timezone("UTC"))
            }
            ValueType::Float => {
                let mut b = Float64Builder::with_capacity(rows.len());
                cells.for_each(|v| b.append_option(v.as_f64()));
                Arc::new(b.finish())
            }
            ValueType::Map => {
                let names = MapFieldNames {
                    entry: "entries".into(),
                    key: "keys".into(),
                    value: "values".into(),
                };
                let mut b =
                    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
                for v in cells {
                    match v {
                        Value::Object(m) => {
                            for (k, v) in m {
                                b.keys().append_value(k);
                                b.values().append_option(v.as_str());
                            }
                            b.append(true)
                        }
                        _ => b.append(false),
                    }
                    .map_err(|e| Error::Decode(format!("map column: {e}")))?;
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::new();
                for v in cells {
                    match v {
                        Value::Null => b.append_null(),
                        Value::String(s) => b.append_value(s),
                        other => b.append_value(other.to_string()),
                    }
                }
                Arc::new(b.finish())
            }
        };
        fields.push(Field::new(&c.name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    RecordBatch::try_new(schema, arrays).map_err(|e| Error::Decode(format!("batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_a_batch_of_the_columns_types() {
        let columns = vec![
            Column {
                name: "tool_name".into(),
                ty: ValueType::Text,
            },
            Column {
                name: "bucket".into(),
                ty: ValueType::Timestamp,
            },
            Column {
                name: "p95".into(),
                ty: ValueType::Float,
            },
            Column {
                name: "tags".into(),
                ty: ValueType::Map,
            },
        ];
        let rows = vec![
            vec![
                Value::from("inventory"),
                Value::from("1700000000000000000"),
                Value::from(1),
                serde_json::json!([["category"], ["phone"]]),
            ],
            vec![
                Value::Null,
                Value::Null,
                Value::Null,
                serde_json::json!([[], []]),
            ],
        ];
        let batch = to_batch(&columns, rows).expect("batch");
        assert_eq!(batch.num_rows(), 2);
        let back = loupe_backend::plan::batch_rows(&batch);
        assert_eq!(back[0][0], Value::from("inventory"));
        assert_eq!(back[0][1], Value::from(1_700_000_000_000_000_000i64));
        assert_eq!(back[0][2], Value::from(1.0));
        assert_eq!(back[0][3], serde_json::json!({"category": "phone"}));
        assert_eq!(back[1][0], Value::Null);
        assert!(to_batch(&columns, vec![vec![Value::Null]]).is_err());
    }
}
