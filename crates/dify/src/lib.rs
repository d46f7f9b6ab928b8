//! Dify PostgreSQL connector: read-only incremental sync of Dify's execution
//! tables through the ingest pipeline (`loupe_pipeline::Pipeline`), and the safe cleanup
//! ("relief") of those tables once Loupe holds their rows.
//!
//! - [`schema`]: typed rows and the schema check run at connect.
//! - [`map`]: rows → spans, with the same ids as the Langfuse and OTLP paths
//!   (span id = node execution id, trace id = workflow run id).
//! - [`sync`]: the `(created_at, id)` keyset sync and its checkpoint.
//! - [`projects`]: which Loupe project a row lands in (by app, workspace).
//! - [`relief`]: verified, batched, resumable deletes of old rows.
//! - [`health`]: the database's size, growth, upkeep and load from the
//!   catalogue, and the history of cleanup runs.
//! - [`rows`]: spans → rows, the inverse of [`map`] (synthetic Dify data).
//! - [`ddl`]: Dify's DDL for the tables read (tests, the benchmark).

#![warn(missing_docs)]

pub mod ddl;
pub mod health;
pub mod map;
pub mod projects;
pub mod relief;
pub mod rows;
pub mod schema;
pub mod sync;
mod tls;

use std::path::PathBuf;

use loupe_backend::StoreError;

/// The `source` of every span this crate writes: one of
/// [`loupe_model::DATABASE_SOURCES`], so a tracing provider's later copy of
/// a synced run only completes it.
pub const SOURCE: &str = "dify_db";

/// The Dify version whose schema this connector is written against.
pub const EXPECTED_DIFY_VERSION: &str = "1.14.1";

/// Errors of the connector. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The DSN does not parse.
    #[error("invalid Dify DSN: {0} (expected postgres://user:password@host:port/database)")]
    BadDsn(String),
    /// The database could not be reached or refused the login.
    #[error("cannot connect to the Dify database: {0}")]
    Connect(String),
    /// Tables the connector reads are missing.
    #[error(
        "the Dify database lacks tables {missing:?}: is this Dify's database (Dify {expected} expected)?"
    )]
    MissingTables {
        /// The tables not found.
        missing: Vec<String>,
        /// The Dify version expected.
        expected: &'static str,
    },
    /// Tables exist but columns are missing: an unsupported Dify version.
    #[error(
        "unsupported Dify schema: missing columns {missing:?} (Dify {expected} expected; upgrade Dify or Loupe)"
    )]
    MissingColumns {
        /// `table.column` names not found.
        missing: Vec<String>,
        /// The Dify version expected.
        expected: &'static str,
    },
    /// A row lacks a column or holds a type the connector does not read.
    #[error(
        "unsupported Dify schema: column {column}: {reason} (Dify {expected} expected; upgrade Dify or Loupe)"
    )]
    Column {
        /// `table.column`.
        column: String,
        /// Why it could not be read (`missing`, or the type mismatch).
        reason: String,
        /// The Dify version expected.
        expected: &'static str,
    },
    /// The login may not read (or, for cleanup, delete from) a table.
    #[error("permission denied: {0}")]
    Permission(String),
    /// A query failed.
    #[error("query on {table} failed: {message}")]
    Query {
        /// The table queried.
        table: &'static str,
        /// The database's message.
        message: String,
    },
    /// The store refused the spans.
    #[error("the store refused the synced spans: {0}")]
    Store(#[from] StoreError),
    /// The checkpoint file cannot be read or written.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Cleanup refuses to run.
    #[error("cleanup refused: {0}")]
    Refused(String),
    /// Bad arguments.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// History older than the store's retention would be written and then
    /// dropped by retention; the sync was told to stop rather than skip it.
    #[error(
        "{rows} rows of {table} were created before {floor}, outside the store's retention: \
         written, they would be deleted at the next maintenance pass. Keep them with \
         [store] retention_days = 0 (or a longer retention), or skip them with \
         older_than_retention = \"skip\" ([dify]) / --older-than-retention skip"
    )]
    OlderThanRetention {
        /// The Dify table.
        table: &'static str,
        /// Rows before the floor not yet synced.
        rows: u64,
        /// The retention floor (RFC 3339).
        floor: String,
    },
}

impl Error {
    /// A query error on `table`, classifying permission errors.
    pub(crate) fn query(table: &'static str, e: &tokio_postgres::Error) -> Self {
        let message = db_message(e);
        if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            return Error::Permission(format!("{table}: {message}"));
        }
        Error::Query { table, message }
    }
}

/// The database's own message of an error (the driver's `Display` is terse).
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            // The cause says why (e.g. the TLS certificate is not trusted).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let part = cause.to_string();
                if !text.contains(&part) {
                    text.push_str(": ");
                    text.push_str(&part);
                }
                source = cause.source();
            }
            text
        }
    }
}
