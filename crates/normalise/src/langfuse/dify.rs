//! Dify's Langfuse provider puts its run and node facts in `metadata`
//! (see `shared/reference/dify-internals.md` §3.4):
//!
//! - trace: `workflow_run_id`, `workflow_id`, `tenant_id`, `app_id`,
//!   `app_name`, `status`, `version`, `user_id`, `conversation_id`,
//!   `total_tokens` (a sum over the nodes), …;
//! - node observation: `workflow_run_id`, `node_execution_id`, `node_type`,
//!   `node_name`, `status`, `model_provider`, `model_name`, every execution
//!   metadata key (`total_tokens`, `total_price`, `currency`, …).
//!
//! The status and node-type mappings are the ones the OTLP path uses for
//! Dify (`otel/dify.rs`), repeated here because that module is private to
//! the OTel normaliser.

use serde_json::{Map, Value};

use super::body::{amount, count, scalar_text};

/// The `metadata` object of a body, read for Dify's keys.
pub(super) struct Meta<'a>(Option<&'a Map<String, Value>>);

impl<'a> Meta<'a> {
    pub(super) fn new(map: Option<&'a Map<String, Value>>) -> Self {
        Self(map)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0?.get(key).filter(|v| !v.is_null())
    }

    /// Non-empty scalar text of `key`.
    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.get(key).and_then(scalar_text)
    }

    /// A whole non-negative number.
    pub(super) fn count(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(count)
    }

    /// A finite non-negative amount.
    pub(super) fn amount(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(amount)
    }

    /// Dify's own status for this entity (`node_status`, else `status`).
    pub(super) fn raw_status(&self) -> Option<String> {
        self.text("node_status").or_else(|| self.text("status"))
    }
}

pub(super) use crate::dify::{is_container, kind_of_node, map_status};
