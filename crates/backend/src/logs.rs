//! The logs half of the storage contract: [`LogWriter`] (held only by the
//! pipeline, like `SpanWriter`) and [`LogReader`] (the API's searches and a
//! run's logs). Logs are appended, never merged: a record is stored once,
//! as written.

use futures::future::BoxFuture;
use loupe_model::{LogRecord, ProjectId};
use serde::{Deserialize, Serialize};

use crate::{StoreError, WriteAck};

/// Most records one search returns.
pub const MAX_LOG_LIMIT: usize = 10_000;
/// Most full-text phrases in one search (each must occur in the body).
pub const MAX_LOG_PHRASES: usize = 16;

/// A search over one project's logs. Every field narrows; the answer is
/// newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Records at or after this time (ns since epoch).
    pub from: Option<i64>,
    /// Records before this time (ns since epoch).
    pub to: Option<i64>,
    /// Records whose severity number is at least this (17 = error).
    pub min_severity: Option<u8>,
    /// Records whose `trace_id` or `run_id` equals this (a run's logs).
    pub run: Option<String>,
    /// Records of this service.
    pub service: Option<String>,
    /// Records of this stream (Elasticsearch index, file, `otlp`).
    pub stream: Option<String>,
    /// Phrases that must each occur in the body, case-insensitively.
    pub phrases: Vec<String>,
    /// Most records returned (capped at [`MAX_LOG_LIMIT`]).
    pub limit: usize,
}

impl LogQuery {
    /// Checks the bounds a caller controls: the limit and the phrases.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] naming the bound exceeded.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.limit == 0 || self.limit > MAX_LOG_LIMIT {
            return Err(StoreError::Invalid(format!(
                "limit must be between 1 and {MAX_LOG_LIMIT}, got {}",
                self.limit
            )));
        }
        if self.phrases.len() > MAX_LOG_PHRASES {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_LOG_PHRASES} text phrases per search, got {}",
                self.phrases.len()
            )));
        }
        Ok(())
    }

    /// Whether `r` matches every filter (phrases: case-insensitive
    /// substrings of the body).
    pub fn matches(&self, r: &LogRecord) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.from.is_none_or(|f| r.time >= f)
            && self.to.is_none_or(|t| r.time < t)
            && self.min_severity.is_none_or(|s| r.severity_number >= s)
            && self
                .run
                .as_ref()
                .is_none_or(|id| r.trace_id.as_ref() == Some(id) || r.run_id.as_ref() == Some(id))
            && eq(&self.service, &r.service)
            && eq(&self.stream, &r.stream)
            && (self.phrases.is_empty() || {
                let body = r.body.to_lowercase();
                self.phrases
                    .iter()
                    .all(|p| body.contains(&p.to_lowercase()))
            })
    }
}

/// The answer to a [`LogQuery`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// Matching records, newest first.
    pub records: Vec<LogRecord>,
    /// More records matched than the limit.
    pub truncated: bool,
    /// Records read to answer (memtables and part rows), for tests and
    /// tuning: the indexes lower it, never the answer.
    pub scanned: u64,
}

/// The write half for logs. Held by the ingest pipeline only.
pub trait LogWriter: Send + Sync + 'static {
    /// Appends log records. Resolves once they are durable under the
    /// configured durability mode; `WriteAck::spans` counts records.
    fn append_logs(&self, records: Vec<LogRecord>) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
        self.append_logs_at(records, None)
    }

    /// As [`LogWriter::append_logs`], storing with the records, atomically,
    /// where a resuming source stands after them: `cursor` is (source key,
    /// opaque position), given back by [`LogWriter::cursor`].
    fn append_logs_at(
        &self,
        records: Vec<LogRecord>,
        cursor: Option<(String, String)>,
    ) -> BoxFuture<'_, Result<WriteAck, StoreError>>;

    /// The position last stored for source `key`, if any.
    fn cursor(&self, key: &str) -> Option<String>;

    /// As [`LogWriter::append_logs`], except that a record carrying an
    /// Elasticsearch `_id` (`attributes["_id"]`, [`loupe_model::ES_ID`]) is
    /// stored only when no record of its project and stream has that id
    /// yet (a shipper re-sending an acknowledged item). Answers, per record
    /// in order, whether it was such a duplicate and not stored.
    fn append_logs_unique(
        &self,
        records: Vec<LogRecord>,
    ) -> BoxFuture<'_, Result<(WriteAck, Vec<bool>), StoreError>>;
}

/// The read half for logs.
pub trait LogReader: Send + Sync + 'static {
    /// The records of `project` matching `query`, newest first.
    fn search_logs<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a LogQuery,
    ) -> BoxFuture<'a, Result<LogPage, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_matches_a_run_by_trace_or_run_id_and_phrases_case_insensitively() {
        let mut r = LogRecord::new("p", 10, "Connection RESET by peer");
        r.severity_number = 17;
        r.run_id = Some("run-1".into());
        let q = LogQuery {
            run: Some("run-1".into()),
            min_severity: Some(17),
            phrases: vec!["connection reset".into()],
            limit: 10,
            ..LogQuery::default()
        };
        assert!(q.matches(&r));
        assert!(
            !LogQuery {
                run: Some("run-2".into()),
                ..q.clone()
            }
            .matches(&r)
        );
        assert!(
            !LogQuery {
                min_severity: Some(21),
                ..q.clone()
            }
            .matches(&r)
        );
        assert!(
            !LogQuery {
                to: Some(10),
                ..q.clone()
            }
            .matches(&r)
        );
        assert!(LogQuery { limit: 0, ..q }.validate().is_err());
    }
}
