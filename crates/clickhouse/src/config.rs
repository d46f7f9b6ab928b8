//! Checks the `[store.clickhouse]` section (`loupe_backend::ClickHouseConfig`:
//! where the server is, which database and cluster, which schema profile,
//! the bounds of every exchange) into the [`Resolved`] form the store uses.

use std::fmt;
use std::time::Duration;

pub use loupe_backend::{ClickHouseConfig, ProfileChoice};

use crate::Error;

/// A checked [`ClickHouseConfig`].
#[derive(Clone)]
pub struct Resolved {
    pub(crate) url: reqwest::Url,
    pub(crate) database: String,
    pub(crate) cluster: Option<String>,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) profile: ProfileChoice,
    pub(crate) replicated: bool,
    pub(crate) insert_quorum: u32,
    pub(crate) retention_days: u32,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) insert_batch_rows: usize,
    pub(crate) stream_batch_rows: usize,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("url", &self.url.as_str())
            .field("database", &self.database)
            .field("cluster", &self.cluster)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Whether a name is a plain ClickHouse identifier (it is spliced into DDL).
fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

impl Resolved {
    /// Checks the settings; the error names the key.
    pub fn new(config: ClickHouseConfig) -> Result<Self, Error> {
        let bad = |key: &str, why: String| Error::Config(format!("store.clickhouse.{key}: {why}"));
        let url = reqwest::Url::parse(&config.url).map_err(|e| bad("url", format!("{e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("url", "use an http:// or https:// URL".into()));
        }
        if !plain_identifier(&config.database) {
            return Err(bad(
                "database",
                "use letters, digits and '_' (at most 64)".into(),
            ));
        }
        if let Some(c) = &config.cluster
            && !plain_identifier(c)
        {
            return Err(bad(
                "cluster",
                "use letters, digits and '_' (at most 64)".into(),
            ));
        }
        if config.insert_quorum > 1 && !config.replicated {
            return Err(bad(
                "insert_quorum",
                "needs replicated = true (a quorum of replicas)".into(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(bad("timeout", "must be positive".into()));
        }
        if config.max_response_bytes < 1 << 16 {
            return Err(bad("max_response_bytes", "at least 65536".into()));
        }
        if config.insert_batch_rows == 0 {
            return Err(bad("insert_batch_rows", "at least 1".into()));
        }
        if config.stream_batch_rows == 0 {
            return Err(bad("stream_batch_rows", "at least 1".into()));
        }
        Ok(Resolved {
            url,
            database: config.database,
            cluster: config.cluster,
            user: config.user,
            password: config.password,
            profile: config.profile,
            replicated: config.replicated,
            insert_quorum: config.insert_quorum,
            retention_days: config.retention_days.unwrap_or(0),
            timeout: config.timeout,
            max_response_bytes: config.max_response_bytes,
            insert_batch_rows: config.insert_batch_rows,
            stream_batch_rows: config.stream_batch_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_key_and_never_prints_the_password() {
        let mut c = ClickHouseConfig::new("http://127.0.0.1:8123");
        c.password = "hunter2".into();
        assert!(!format!("{c:?}").contains("hunter2"));
        let ok = Resolved::new(c.clone()).expect("valid");
        assert!(!format!("{ok:?}").contains("hunter2"));
        c.database = "x; DROP".into();
        let e = Resolved::new(c.clone()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("store.clickhouse.database")));
        c.database = "loupe".into();
        c.url = "ftp://x".into();
        let e = Resolved::new(c).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("store.clickhouse.url")));
    }
}
