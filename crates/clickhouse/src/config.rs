//! The `[store.clickhouse]` section: where the server is, which database
//! and cluster, which schema profile, and the bounds of every exchange.
//!
//! Parsed with defaults and unknown keys refused, then [`ClickHouseConfig::validate`]d
//! into the [`Resolved`] form the store uses.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// Which schema the tables use (docs/CLICKHOUSE.md "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileChoice {
    /// Probe `SELECT version()`: modern from 20.1 on, legacy before.
    #[default]
    Auto,
    /// Current ClickHouse: `Map`, `LowCardinality`, codecs, skip indexes, TTL.
    Modern,
    /// ClickHouse 18.16 (Debian 12's package): plain types, key and value
    /// arrays for maps, no codecs, skip indexes or TTL.
    Legacy,
}

/// The ClickHouse backend's settings.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`. Required.
    pub url: String,
    /// Database holding Loupe's tables (created when missing). Default `loupe`.
    pub database: String,
    /// Cluster name from the servers' `remote_servers`: when set, each
    /// server holds `spans_local` and writes and reads go through a
    /// `Distributed` table `spans` sharded by span id. Default: none.
    pub cluster: Option<String>,
    /// User name. Default `default`.
    pub user: String,
    /// Password. Default empty. Never logged.
    pub password: String,
    /// Schema profile. Default `auto` (probe the server's version).
    pub profile: ProfileChoice,
    /// Days a span is kept (modern profile: table TTL on its filing day);
    /// 0 keeps everything. Default 0.
    pub retention_days: u32,
    /// Timeout of one HTTP request, humantime (`30s`). Default 30 s.
    #[serde(with = "humantime_secs")]
    pub timeout: Duration,
    /// Largest response body read, bytes; larger answers fail with
    /// [`Error::TooLarge`] instead of growing memory. Default 256 MiB.
    pub max_response_bytes: usize,
    /// Rows per INSERT statement. Default 10,000.
    pub insert_batch_rows: usize,
    /// Rows per SELECT (and per Arrow batch) of a streamed answer
    /// (exports). Default 10,000.
    pub stream_batch_rows: usize,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            database: "loupe".into(),
            cluster: None,
            user: "default".into(),
            password: String::new(),
            profile: ProfileChoice::Auto,
            retention_days: 0,
            timeout: Duration::from_secs(30),
            max_response_bytes: 256 << 20,
            insert_batch_rows: 10_000,
            stream_batch_rows: 10_000,
        }
    }
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("cluster", &self.cluster)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("profile", &self.profile)
            .field("retention_days", &self.retention_days)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("insert_batch_rows", &self.insert_batch_rows)
            .field("stream_batch_rows", &self.stream_batch_rows)
            .finish()
    }
}

/// A checked [`ClickHouseConfig`].
#[derive(Clone)]
pub struct Resolved {
    pub(crate) url: reqwest::Url,
    pub(crate) database: String,
    pub(crate) cluster: Option<String>,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) profile: ProfileChoice,
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

impl ClickHouseConfig {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks the settings; the error names the key.
    pub fn validate(self) -> Result<Resolved, Error> {
        let bad = |key: &str, why: String| Error::Config(format!("store.clickhouse.{key}: {why}"));
        let url = reqwest::Url::parse(&self.url).map_err(|e| bad("url", format!("{e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("url", "use an http:// or https:// URL".into()));
        }
        if !plain_identifier(&self.database) {
            return Err(bad(
                "database",
                "use letters, digits and '_' (at most 64)".into(),
            ));
        }
        if let Some(c) = &self.cluster
            && !plain_identifier(c)
        {
            return Err(bad(
                "cluster",
                "use letters, digits and '_' (at most 64)".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be positive".into()));
        }
        if self.max_response_bytes < 1 << 16 {
            return Err(bad("max_response_bytes", "at least 65536".into()));
        }
        if self.insert_batch_rows == 0 {
            return Err(bad("insert_batch_rows", "at least 1".into()));
        }
        if self.stream_batch_rows == 0 {
            return Err(bad("stream_batch_rows", "at least 1".into()));
        }
        Ok(Resolved {
            url,
            database: self.database,
            cluster: self.cluster,
            user: self.user,
            password: self.password,
            profile: self.profile,
            retention_days: self.retention_days,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
            insert_batch_rows: self.insert_batch_rows,
            stream_batch_rows: self.stream_batch_rows,
        })
    }
}

/// Durations as humantime text (`30s`, `2m`).
mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (write `30s`)")))
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
        let ok = c.clone().validate().expect("valid");
        assert!(!format!("{ok:?}").contains("hunter2"));
        c.database = "x; DROP".into();
        let e = c.clone().validate().err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("store.clickhouse.database")));
        c.database = "loupe".into();
        c.url = "ftp://x".into();
        let e = c.validate().err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("store.clickhouse.url")));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<ClickHouseConfig, _> =
            serde_json::from_str(r#"{"url":"http://x","bogus":1}"#);
        assert!(parsed.is_err());
        let parsed: Result<ClickHouseConfig, _> =
            serde_json::from_str(r#"{"url":"http://x","timeout":"5s","profile":"legacy"}"#);
        let parsed = parsed.expect("parses");
        assert_eq!(parsed.timeout, Duration::from_secs(5));
        assert_eq!(parsed.profile, ProfileChoice::Legacy);
    }
}
