//! The Arrow schema of the `spans` table (version [`SCHEMA_VERSION`]).
//!
//! Column order and names are a persisted format: Parquet parts carry the
//! schema version in their footer metadata. Change it only by adding a new
//! version and a test that reads parts of the old one.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Version of the spans schema written into every Parquet part.
pub const SCHEMA_VERSION: u32 = 1;

/// Column names, so no other crate spells them by hand.
pub mod column {
    #![allow(missing_docs)]
    pub const PROJECT: &str = "project";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const RUN_ID: &str = "run_id";
    pub const SESSION_ID: &str = "session_id";
    pub const USER_ID: &str = "user_id";
    pub const APP_ID: &str = "app_id";
    pub const APP_NAME: &str = "app_name";
    pub const WORKFLOW_ID: &str = "workflow_id";
    pub const WORKFLOW_VERSION: &str = "workflow_version";
    pub const SPAN_KIND: &str = "span_kind";
    pub const NODE_TYPE: &str = "node_type";
    pub const NAME: &str = "name";
    pub const STATUS: &str = "status";
    pub const RAW_STATUS: &str = "raw_status";
    pub const ERROR_MESSAGE: &str = "error_message";
    pub const ERROR_CLASS: &str = "error_class";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION: &str = "duration";
    pub const MODEL_NAME: &str = "model_name";
    pub const MODEL_PROVIDER: &str = "model_provider";
    pub const INPUT_TOKENS: &str = "input_tokens";
    pub const OUTPUT_TOKENS: &str = "output_tokens";
    pub const TOTAL_TOKENS: &str = "total_tokens";
    pub const COST: &str = "cost";
    pub const CURRENCY: &str = "currency";
    pub const TOOL_NAME: &str = "tool_name";
    pub const INPUT: &str = "input";
    pub const OUTPUT: &str = "output";
    pub const ATTRIBUTES: &str = "attributes";
    pub const TAGS: &str = "tags";
    pub const SOURCE: &str = "source";
    pub const INGEST_VERSION: &str = "ingest_version";
    /// Store-assigned version of the row (unique, increasing); hidden rows are
    /// filtered by it. Not part of [`crate::Span`].
    pub const VERSION: &str = "_version";
}

/// The `Map<Utf8, Utf8>` type used for `attributes` and `tags`.
pub fn string_map_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The schema of the `spans` table, shared (built once).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA.get_or_init(build).clone()
}

fn build() -> SchemaRef {
    use column::*;
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let s = |name: &str| Field::new(name, DataType::Utf8, true);
    let i = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new(PROJECT, DataType::Utf8, false),
        s(TRACE_ID),
        Field::new(SPAN_ID, DataType::Utf8, false),
        s(PARENT_SPAN_ID),
        s(RUN_ID),
        s(SESSION_ID),
        s(USER_ID),
        s(APP_ID),
        s(APP_NAME),
        s(WORKFLOW_ID),
        s(WORKFLOW_VERSION),
        s(SPAN_KIND),
        s(NODE_TYPE),
        s(NAME),
        s(STATUS),
        s(RAW_STATUS),
        s(ERROR_MESSAGE),
        s(ERROR_CLASS),
        Field::new(START_TIME, ts.clone(), true),
        Field::new(END_TIME, ts, true),
        i(DURATION),
        s(MODEL_NAME),
        s(MODEL_PROVIDER),
        i(INPUT_TOKENS),
        i(OUTPUT_TOKENS),
        i(TOTAL_TOKENS),
        Field::new(COST, DataType::Float64, true),
        s(CURRENCY),
        s(TOOL_NAME),
        s(INPUT),
        s(OUTPUT),
        Field::new(ATTRIBUTES, string_map_type(), true),
        Field::new(TAGS, string_map_type(), true),
        s(SOURCE),
        Field::new(INGEST_VERSION, DataType::UInt32, true),
        Field::new(VERSION, DataType::UInt64, false),
    ]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_has_unique_column_names() {
        let schema = super::schema();
        let mut names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
