//! HTTP routes, one file per surface.

pub(crate) mod alert_preview;
pub(crate) mod alerts;
pub(crate) mod analytics;
pub(crate) mod cleanup;
pub(crate) mod console;
pub(crate) mod es;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod langfuse;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod otlp;
pub(crate) mod query;
pub(crate) mod rca;
pub(crate) mod server;
pub(crate) mod spans;
pub(crate) mod tags;
pub(crate) mod timelines;
