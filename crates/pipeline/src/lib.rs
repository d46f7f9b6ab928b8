//! The one ingest pipeline: every source writes through it.
//!
//! OTLP (HTTP and gRPC), the Langfuse API, the Dify database sync and
//! `loupe gen` all hand normalised spans to [`Pipeline::write`]. The pipeline
//! applies the business-tag rules, classifies errors (class and signature,
//! `loupe_normalise::errors`), converts costs to one currency ([`costs`]),
//! then the PII redaction rules ([`redact`]),
//! and appends to the backend's [`SpanWriter`]; the returned ack means the
//! spans are in the WAL (redacted values never reach it).
//!
//! This is a seam held by the type system, not by convention: the
//! [`SpanWriter`] a pipeline is built from is consumed by [`Pipeline::new`]
//! and never handed out again, and sources receive a `Pipeline`, so a new
//! source cannot append around the tag rules. The binary (`crates/loupe`)
//! is the only place that builds one from a store.

#![warn(missing_docs)]

mod retag;

use std::sync::Arc;

use loupe_backend::{LogWriter, SpanWriter, StoreError, WriteAck};
use loupe_model::{LogRecord, Span};
use loupe_normalise::tags::TagRules;
pub use retag::{Preview, Retagged, preview};

pub mod costs;
pub mod redact;
pub mod tagset;

/// Normalised spans → tags → durable append. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    writer: Arc<dyn SpanWriter>,
    /// Where log records go (`None`: logs are refused as unsupported).
    logs: Option<Arc<dyn LogWriter>>,
    tags: Arc<tagset::TagSet>,
    redactor: Arc<redact::Redactor>,
    costs: Arc<costs::Converter>,
}

impl Pipeline {
    /// A pipeline writing to `writer` with the given, fixed tag rules.
    pub fn new(writer: Arc<dyn SpanWriter>, tags: TagRules) -> Self {
        Self::with_tag_set(writer, Arc::new(tagset::TagSet::fixed(tags)))
    }

    /// A pipeline writing to `writer` with rules that may be edited while
    /// it runs (`loupe serve`: the config's and `tag-rules.json`'s).
    pub fn with_tag_set(writer: Arc<dyn SpanWriter>, tags: Arc<tagset::TagSet>) -> Self {
        Self {
            writer,
            logs: None,
            tags,
            redactor: Arc::default(),
            costs: Arc::default(),
        }
    }

    /// The same pipeline, converting costs with `costs` (`[costs]`).
    pub fn with_costs(mut self, costs: costs::Converter) -> Self {
        self.costs = Arc::new(costs);
        self
    }

    /// The same pipeline, redacting with `redactor` (`[redaction]`).
    pub fn with_redaction(mut self, redactor: redact::Redactor) -> Self {
        self.redactor = Arc::new(redactor);
        self
    }

    /// The same pipeline, writing log records to `logs`.
    pub fn with_logs(mut self, logs: Arc<dyn LogWriter>) -> Self {
        self.logs = Some(logs);
        self
    }

    /// Redacts log records and appends them; the ack means they are in the
    /// WAL. Empty input is acknowledged at once.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] when the backend stores no logs, else
    /// the backend's, as for [`Pipeline::write`].
    #[tracing::instrument(name = "pipeline.write_logs", skip_all, fields(records = records.len()))]
    pub async fn write_logs(&self, records: Vec<LogRecord>) -> Result<WriteAck, StoreError> {
        if records.is_empty() {
            return Ok(WriteAck { seq: 0, spans: 0 });
        }
        self.write_logs_at(records, None).await
    }

    /// As [`Pipeline::write_logs`], storing a resuming source's position
    /// with the records (see `LogWriter::append_logs_at`).
    ///
    /// # Errors
    /// As [`Pipeline::write_logs`].
    pub async fn write_logs_at(
        &self,
        mut records: Vec<LogRecord>,
        cursor: Option<(String, String)>,
    ) -> Result<WriteAck, StoreError> {
        let Some(logs) = &self.logs else {
            return Err(StoreError::Unsupported(
                "this backend stores no logs".into(),
            ));
        };
        self.redact_logs(&mut records);
        logs.append_logs_at(records, cursor).await
    }

    /// As [`Pipeline::write_logs`], storing a record with an Elasticsearch
    /// `_id` only once per project and stream (`LogWriter::append_logs_unique`):
    /// answers which records were duplicates, not stored.
    ///
    /// # Errors
    /// As [`Pipeline::write_logs`].
    pub async fn write_logs_unique(
        &self,
        mut records: Vec<LogRecord>,
    ) -> Result<(WriteAck, Vec<bool>), StoreError> {
        let Some(logs) = &self.logs else {
            return Err(StoreError::Unsupported(
                "this backend stores no logs".into(),
            ));
        };
        if records.is_empty() {
            return Ok((WriteAck { seq: 0, spans: 0 }, Vec::new()));
        }
        self.redact_logs(&mut records);
        logs.append_logs_unique(records).await
    }

    /// Applies the redaction rules to log bodies and attributes.
    fn redact_logs(&self, records: &mut [LogRecord]) {
        if !self.redactor.is_empty() {
            for r in records {
                self.redactor.apply_log(r);
            }
        }
    }

    /// Where resuming source `key` last stood (`None`: unknown, or no log
    /// backend).
    pub fn log_cursor(&self, key: &str) -> Option<String> {
        self.logs.as_ref().and_then(|l| l.cursor(key))
    }

    /// Applies tag rules and appends. Empty input is acknowledged at once.
    ///
    /// # Errors
    /// The backend's: [`StoreError::Overloaded`] (retry later),
    /// [`StoreError::Closed`], or an internal failure.
    #[tracing::instrument(name = "pipeline.write", skip_all, fields(spans = spans.len()))]
    pub async fn write(&self, mut spans: Vec<Span>) -> Result<WriteAck, StoreError> {
        if spans.is_empty() {
            return Ok(WriteAck { seq: 0, spans: 0 });
        }
        self.prepare(&mut spans);
        self.writer.append(spans).await
    }

    /// [`Self::write`] for a batch source that waits while the backend is
    /// overloaded (the Dify sync, `loupe gen`): the rules run once, and a
    /// refused batch is written again after the delay the backend asks for
    /// (at least `min_wait`). The backend gives a refused batch back, so
    /// the caller keeps no copy of it.
    ///
    /// # Errors
    /// The backend's, except [`StoreError::Overloaded`].
    #[tracing::instrument(name = "pipeline.write_waiting", skip_all, fields(spans = spans.len()))]
    pub async fn write_waiting(
        &self,
        mut spans: Vec<Span>,
        min_wait: std::time::Duration,
    ) -> Result<WriteAck, StoreError> {
        if spans.is_empty() {
            return Ok(WriteAck { seq: 0, spans: 0 });
        }
        self.prepare(&mut spans);
        loop {
            match self.writer.append_or_return(spans).await {
                Ok(ack) => return Ok(ack),
                Err(loupe_backend::Refused {
                    error: StoreError::Overloaded { retry_after },
                    spans: Some(back),
                }) => {
                    tokio::time::sleep(retry_after.max(min_wait)).await;
                    spans = back;
                }
                Err(refused) => return Err(refused.error),
            }
        }
    }

    /// The rules every span goes through before the backend sees it.
    fn prepare(&self, spans: &mut [Span]) {
        let tags = self.tags.current();
        for span in spans.iter_mut() {
            tags.apply(span);
            // Error class and signature for every source (Dify's database
            // gives a message and no class).
            loupe_normalise::errors::enrich(span);
            // One currency for every sum downstream.
            self.costs.apply(span);
        }
        if !self.redactor.is_empty() {
            let _redact = tracing::debug_span!("pipeline.redact").entered();
            for span in spans.iter_mut() {
                self.redactor.apply(span);
            }
        }
    }

    /// The tag rules every written span goes through now.
    pub fn tags(&self) -> Arc<TagRules> {
        self.tags.current()
    }

    /// The rules and their editing (`/api/v1/tags/rules`).
    pub fn tag_set(&self) -> &tagset::TagSet {
        &self.tags
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::FutureExt;
    use futures::future::BoxFuture;
    use loupe_normalise::tags::TagRuleConfig;

    use super::*;

    /// Records what reaches the backend (a stand-in for the store: this test
    /// is about what the pipeline does before the write, not about storage).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Span>>);

    impl SpanWriter for Recorder {
        fn append(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
            let n = spans.len();
            self.0.lock().expect("recorder lock").extend(spans);
            async move { Ok(WriteAck { seq: 1, spans: n }) }.boxed()
        }
    }

    fn category_rule() -> TagRules {
        let rule: TagRuleConfig = serde_json::from_value(serde_json::json!({
            "name": "category",
            "from": "input",
        }))
        .expect("rule");
        TagRules::new(&[rule]).expect("rules")
    }

    #[tokio::test]
    async fn every_written_span_gets_the_tag_rules_before_the_backend_sees_it() {
        let recorder = Arc::new(Recorder::default());
        let pipeline = Pipeline::new(recorder.clone(), category_rule());
        let mut span = Span::new("p", "s1");
        span.input = Some(r#"{"category":"phone"}"#.into());
        let ack = pipeline.write(vec![span]).await.expect("write");
        assert_eq!(ack.spans, 1);
        let seen = recorder.0.lock().expect("lock");
        assert_eq!(
            seen[0].tags.get("category").map(String::as_str),
            Some("phone")
        );
    }

    #[tokio::test]
    async fn a_failed_span_without_a_class_gets_one_and_a_signature() {
        let recorder = Arc::new(Recorder::default());
        let pipeline = Pipeline::new(recorder.clone(), TagRules::default());
        let mut span = Span::new("p", "s1");
        span.status = Some(loupe_model::Status::Error);
        span.error_message = Some("inventory timeout after 10s for sku SKU-1234".into());
        pipeline.write(vec![span]).await.expect("write");
        let seen = recorder.0.lock().expect("lock");
        assert_eq!(seen[0].error_class.as_deref(), Some("timeout"));
        assert_eq!(
            seen[0]
                .attributes
                .get(loupe_model::ERROR_SIGNATURE)
                .map(String::as_str),
            Some("timeout: inventory timeout after <n>s for sku <id>")
        );
    }

    #[tokio::test]
    async fn an_empty_write_is_acknowledged_without_touching_the_backend() {
        let recorder = Arc::new(Recorder::default());
        let pipeline = Pipeline::new(recorder.clone(), TagRules::default());
        let ack = pipeline.write(Vec::new()).await.expect("write");
        assert_eq!(ack.spans, 0);
        assert!(recorder.0.lock().expect("lock").is_empty());
    }

    #[derive(Default)]
    struct LogRecorder(Mutex<Vec<LogRecord>>);

    impl LogWriter for LogRecorder {
        fn append_logs_at(
            &self,
            records: Vec<LogRecord>,
            _cursor: Option<(String, String)>,
        ) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
            let n = records.len();
            self.0.lock().expect("recorder lock").extend(records);
            async move { Ok(WriteAck { seq: 1, spans: n }) }.boxed()
        }

        fn cursor(&self, _key: &str) -> Option<String> {
            None
        }

        fn append_logs_unique(
            &self,
            records: Vec<LogRecord>,
        ) -> BoxFuture<'_, Result<(WriteAck, Vec<bool>), StoreError>> {
            let dups = vec![false; records.len()];
            let stored = self.append_logs_at(records, None);
            async move { Ok((stored.await?, dups)) }.boxed()
        }
    }

    #[tokio::test]
    async fn log_records_are_redacted_before_the_backend_sees_them() {
        let config: redact::RedactionConfig = serde_json::from_value(serde_json::json!({
            "rules": [{ "name": "email", "builtin": "email" }]
        }))
        .expect("config");
        let logs = Arc::new(LogRecorder::default());
        let pipeline = Pipeline::new(Arc::new(Recorder::default()), TagRules::default())
            .with_redaction(redact::Redactor::new(&config).expect("rules"))
            .with_logs(logs.clone());
        let mut r = LogRecord::new("p", 1, "login failed for ada@example.com");
        r.attributes.insert("user".into(), "ada@example.com".into());
        pipeline.write_logs(vec![r]).await.expect("write");
        let seen = logs.0.lock().expect("lock").clone();
        assert!(
            !seen[0].body.contains("ada@example.com"),
            "{}",
            seen[0].body
        );
        assert!(!seen[0].attributes["user"].contains("ada@"));
        let bare = Pipeline::new(Arc::new(Recorder::default()), TagRules::default());
        let refused = bare.write_logs(vec![LogRecord::new("p", 1, "x")]).await;
        assert!(matches!(refused, Err(StoreError::Unsupported(_))));
    }
}
