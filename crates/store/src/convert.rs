//! Spans ↔ Arrow record batches in the store's schema
//! (`mirrors::storage_schema()`: the model's columns, then the mirrors).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Builder, MapArray, MapBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use loupe_model::{Span, SpanKind, Status, Tags, column};

use crate::Error;
use crate::mirrors::{self, MIRRORS, storage_schema};

/// A stored row: the span and its store-assigned version.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The merged span.
    pub span: Span,
    /// Unique, increasing version of this row.
    pub version: u64,
}

/// Builds a batch in the store's schema (mirrors included).
pub fn rows_to_batch<'a>(
    rows: impl ExactSizeIterator<Item = &'a Row>,
) -> Result<RecordBatch, Error> {
    batch_of(rows, true)
}

/// [`rows_to_batch`] with `input` and `output` null: for a part that keeps
/// the texts in run order (`payloads.rs`), so the largest strings are not
/// copied twice.
pub(crate) fn rows_to_batch_without_texts<'a>(
    rows: impl ExactSizeIterator<Item = &'a Row>,
) -> Result<RecordBatch, Error> {
    batch_of(rows, false)
}

fn batch_of<'a>(
    rows: impl ExactSizeIterator<Item = &'a Row>,
    texts: bool,
) -> Result<RecordBatch, Error> {
    let mut b = Builders::new(rows.len());
    b.texts = texts;
    for row in rows {
        b.push(row);
    }
    b.finish()
}

struct Builders {
    strings: Vec<StringBuilder>,
    start: TimestampNanosecondBuilder,
    end: TimestampNanosecondBuilder,
    ints: [Int64Builder; 4],
    cost: Float64Builder,
    attributes: MapBuilder<StringBuilder, StringBuilder>,
    tags: MapBuilder<StringBuilder, StringBuilder>,
    ingest_version: UInt32Builder,
    version: UInt64Builder,
    mirrors: [StringBuilder; MIRRORS.len()],
    /// Whether `input` and `output` are copied (else null).
    texts: bool,
}

/// Where `input` and `output` are in [`string_values`].
const TEXTS: [usize; 2] = [STRINGS_A + STRINGS_B + 2, STRINGS_A + STRINGS_B + 3];

/// String columns in schema order, split around the non-string ones.
const STRINGS_A: usize = 18; // project .. error_class
const STRINGS_B: usize = 2; // model_name, model_provider
const STRINGS_C: usize = 4; // currency, tool_name, input, output
const STRINGS_D: usize = 1; // source

fn string_values(s: &Span) -> [Option<&str>; STRINGS_A + STRINGS_B + STRINGS_C + STRINGS_D] {
    fn o(v: &Option<String>) -> Option<&str> {
        v.as_deref()
    }
    [
        Some(s.project.as_str()),
        o(&s.trace_id),
        Some(s.span_id.as_str()),
        o(&s.parent_span_id),
        o(&s.run_id),
        o(&s.session_id),
        o(&s.user_id),
        o(&s.app_id),
        o(&s.app_name),
        o(&s.workflow_id),
        o(&s.workflow_version),
        s.span_kind.map(SpanKind::as_str),
        o(&s.node_type),
        o(&s.name),
        s.status.map(Status::as_str),
        o(&s.raw_status),
        o(&s.error_message),
        o(&s.error_class),
        o(&s.model_name),
        o(&s.model_provider),
        o(&s.currency),
        o(&s.tool_name),
        o(&s.input),
        o(&s.output),
        o(&s.source),
    ]
}

fn new_map() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

fn push_map(b: &mut MapBuilder<StringBuilder, StringBuilder>, map: &Tags) {
    for (k, v) in map {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    // Appending an entry only fails on mismatched key/value counts, which the
    // loop above rules out.
    let _ = b.append(true);
}

impl Builders {
    fn new(n: usize) -> Self {
        Self {
            strings: (0..STRINGS_A + STRINGS_B + STRINGS_C + STRINGS_D)
                .map(|_| StringBuilder::with_capacity(n, n * 8))
                .collect(),
            start: TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"),
            end: TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"),
            ints: std::array::from_fn(|_| Int64Builder::with_capacity(n)),
            cost: Float64Builder::with_capacity(n),
            attributes: new_map(),
            tags: new_map(),
            ingest_version: UInt32Builder::with_capacity(n),
            version: UInt64Builder::with_capacity(n),
            mirrors: std::array::from_fn(|_| StringBuilder::with_capacity(n, n * 8)),
            texts: true,
        }
    }

    fn push(&mut self, row: &Row) {
        let s = &row.span;
        let mut values = string_values(s);
        if !self.texts {
            for i in TEXTS {
                values[i] = None;
            }
        }
        for (b, v) in self.strings.iter_mut().zip(values) {
            b.append_option(v);
        }
        self.start.append_option(s.start_time);
        self.end.append_option(s.end_time);
        self.ints[0].append_option(s.duration_ns());
        self.ints[1].append_option(s.input_tokens);
        self.ints[2].append_option(s.output_tokens);
        self.ints[3].append_option(s.total_tokens);
        self.cost.append_option(s.cost);
        push_map(&mut self.attributes, &s.attributes);
        push_map(&mut self.tags, &s.tags);
        self.ingest_version.append_option(s.ingest_version);
        self.version.append_value(row.version);
        for (b, v) in self.mirrors.iter_mut().zip(mirrors::values(s)) {
            b.append_option(v);
        }
    }

    fn finish(mut self) -> Result<RecordBatch, Error> {
        let mut strings = self
            .strings
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut take = |k: usize| strings.by_ref().take(k).collect::<Vec<_>>();
        let a = take(STRINGS_A);
        let b = take(STRINGS_B);
        let c = take(STRINGS_C);
        let d = take(STRINGS_D);
        let mut cols: Vec<ArrayRef> = a;
        cols.push(Arc::new(self.start.finish()));
        cols.push(Arc::new(self.end.finish()));
        cols.push(Arc::new(self.ints[0].finish()));
        cols.extend(b);
        for i in &mut self.ints[1..] {
            cols.push(Arc::new(i.finish()));
        }
        cols.push(Arc::new(self.cost.finish()));
        cols.extend(c);
        cols.push(Arc::new(self.attributes.finish()));
        cols.push(Arc::new(self.tags.finish()));
        cols.extend(d);
        cols.push(Arc::new(self.ingest_version.finish()));
        cols.push(Arc::new(self.version.finish()));
        for b in &mut self.mirrors {
            cols.push(Arc::new(b.finish()));
        }
        let schema = storage_schema();
        // MapBuilder names its fields itself; cast to the declared schema so
        // batches from every path are identical.
        let cols = cols
            .into_iter()
            .zip(schema.fields())
            .map(|(col, field)| {
                if col.data_type() == field.data_type() {
                    Ok(col)
                } else {
                    arrow::compute::cast(&col, field.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}

/// Reads rows back from a batch in the store's schema (or any batch that
/// has the columns by name; missing columns read as unset). The mirror
/// columns are not read: the maps hold their values too.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<Row>, Error> {
    let str_col = |name: &str| -> Option<&StringArray> {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let get = |col: Option<&StringArray>, i: usize| -> Option<String> {
        col.filter(|c| c.is_valid(i)).map(|c| c.value(i).to_owned())
    };
    let i64_col = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
    };
    let ts_col = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    };
    let map_col = |name: &str| batch.column_by_name(name).and_then(|c| c.as_map_opt());
    let project = str_col(column::PROJECT);
    let span_id = str_col(column::SPAN_ID)
        .ok_or_else(|| Error::Internal("batch without span_id column".into()))?;
    let version = batch
        .column_by_name(column::VERSION)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>());
    let cols_s: Vec<Option<&StringArray>> = [
        column::TRACE_ID,
        column::PARENT_SPAN_ID,
        column::RUN_ID,
        column::SESSION_ID,
        column::USER_ID,
        column::APP_ID,
        column::APP_NAME,
        column::WORKFLOW_ID,
        column::WORKFLOW_VERSION,
        column::SPAN_KIND,
        column::NODE_TYPE,
        column::NAME,
        column::STATUS,
        column::RAW_STATUS,
        column::ERROR_MESSAGE,
        column::ERROR_CLASS,
        column::MODEL_NAME,
        column::MODEL_PROVIDER,
        column::CURRENCY,
        column::TOOL_NAME,
        column::INPUT,
        column::OUTPUT,
        column::SOURCE,
    ]
    .iter()
    .map(|n| str_col(n))
    .collect();
    let (start, end) = (ts_col(column::START_TIME), ts_col(column::END_TIME));
    let ints: Vec<_> = [
        column::INPUT_TOKENS,
        column::OUTPUT_TOKENS,
        column::TOTAL_TOKENS,
    ]
    .iter()
    .map(|n| i64_col(n))
    .collect();
    let cost = batch
        .column_by_name(column::COST)
        .and_then(|c| c.as_primitive_opt::<Float64Type>());
    let ingest_version = batch
        .column_by_name(column::INGEST_VERSION)
        .and_then(|c| c.as_primitive_opt::<UInt32Type>());
    let (attrs, tags) = (map_col(column::ATTRIBUTES), map_col(column::TAGS));

    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let s = |k: usize| get(cols_s[k], i);
        let prim_i64 = |c: Option<&arrow::array::PrimitiveArray<Int64Type>>| {
            c.filter(|c| c.is_valid(i)).map(|c| c.value(i))
        };
        let span = Span {
            project: get(project, i).unwrap_or_default(),
            span_id: span_id.value(i).to_owned(),
            trace_id: s(0),
            parent_span_id: s(1),
            run_id: s(2),
            session_id: s(3),
            user_id: s(4),
            app_id: s(5),
            app_name: s(6),
            workflow_id: s(7),
            workflow_version: s(8),
            span_kind: s(9).map(|k| SpanKind::from_stored(&k).unwrap_or(SpanKind::Other)),
            node_type: s(10),
            name: s(11),
            status: s(12).map(|k| Status::from_stored(&k).unwrap_or(Status::Unset)),
            raw_status: s(13),
            error_message: s(14),
            error_class: s(15),
            model_name: s(16),
            model_provider: s(17),
            currency: s(18),
            tool_name: s(19),
            input: s(20),
            output: s(21),
            source: s(22),
            start_time: start.filter(|c| c.is_valid(i)).map(|c| c.value(i)),
            end_time: end.filter(|c| c.is_valid(i)).map(|c| c.value(i)),
            input_tokens: prim_i64(ints[0]),
            output_tokens: prim_i64(ints[1]),
            total_tokens: prim_i64(ints[2]),
            cost: cost.filter(|c| c.is_valid(i)).map(|c| c.value(i)),
            attributes: read_map(attrs, i),
            tags: read_map(tags, i),
            ingest_version: ingest_version.filter(|c| c.is_valid(i)).map(|c| c.value(i)),
        };
        rows.push(Row {
            span,
            version: version.map_or(0, |v| v.value(i)),
        });
    }
    Ok(rows)
}

fn read_map(col: Option<&MapArray>, i: usize) -> Tags {
    let mut out = Tags::new();
    let Some(col) = col.filter(|c| c.is_valid(i)) else {
        return out;
    };
    let entries = col.value(i);
    let (Some(keys), Some(values)) = (
        entries.column(0).as_string_opt::<i32>(),
        entries.column(1).as_string_opt::<i32>(),
    ) else {
        return out;
    };
    for j in 0..entries.len() {
        if values.is_valid(j) {
            out.insert(keys.value(j).to_owned(), values.value(j).to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_arrow() {
        let mut full = Span::new("p", "s1");
        full.trace_id = Some("t".into());
        full.span_kind = Some(SpanKind::Tool);
        full.status = Some(Status::Error);
        full.start_time = Some(1_000);
        full.end_time = Some(3_500);
        full.input_tokens = Some(7);
        full.cost = Some(0.25);
        full.input = Some("x".repeat(100_000));
        full.attributes
            .insert("http.status_code".into(), "500".into());
        full.tags.insert("category".into(), "phone".into());
        full.attributes.insert("dify.tenant_id".into(), "t1".into());
        full.ingest_version = Some(1);
        let sparse = Span::new("p", "s2");
        let rows = vec![
            Row {
                span: full,
                version: 9,
            },
            Row {
                span: sparse,
                version: 10,
            },
        ];
        let batch = rows_to_batch(rows.iter()).expect("batch");
        assert_eq!(batch.schema(), storage_schema());
        let dur = batch.column_by_name("duration").expect("duration");
        assert_eq!(dur.as_primitive::<Int64Type>().value(0), 2_500);
        // The mirror columns hold the maps' values, null where absent.
        let tenant = batch.column_by_name("_tenant_id").expect("mirror");
        let tenant = tenant.as_string::<i32>();
        assert_eq!((tenant.value(0), tenant.is_null(1)), ("t1", true));
        let workspace = batch.column_by_name("_workspace_tag").expect("mirror");
        assert_eq!(workspace.null_count(), 2);
        assert_eq!(batch_to_rows(&batch).expect("rows"), rows);
    }
}
