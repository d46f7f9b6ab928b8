//! Which backend holds the spans (`[store] backend`) and the settings of
//! the ClickHouse one (`[store.clickhouse]`).
//!
//! They live with the contract, not in `loupe-clickhouse`, because the
//! `[store]` section (`loupe_store::StoreConfig`) parses them: the embedded
//! store must not depend on the ClickHouse backend to read its own config.
//! `loupe_clickhouse::Resolved::new` checks them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where `loupe serve` keeps spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanBackend {
    /// The embedded store in the data directory (default).
    #[default]
    Embedded,
    /// A ClickHouse server or cluster (`[store.clickhouse]`); the data
    /// directory keeps keys, rules, alert state, sync checkpoints and logs.
    Clickhouse,
}

impl SpanBackend {
    /// The config value (`embedded`, `clickhouse`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Clickhouse => "clickhouse",
        }
    }
}

impl std::str::FromStr for SpanBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "embedded" => Ok(Self::Embedded),
            "clickhouse" => Ok(Self::Clickhouse),
            other => Err(format!(
                "unknown backend {other:?}: use \"embedded\" or \"clickhouse\""
            )),
        }
    }
}

/// Which schema the tables use (docs/CLICKHOUSE.md "Profiles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP endpoint, e.g. `http://127.0.0.1:8123`. Required.
    pub url: String,
    /// Database holding Loupe's tables (created when missing). Default `loupe`.
    pub database: String,
    /// Cluster name from the servers' `remote_servers`: when set, each
    /// server holds `spans_local` and writes and reads go through a
    /// `Distributed` table `spans` sharded by span id. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// User name. Default `default`.
    pub user: String,
    /// Password. Default empty. Never logged or written out.
    #[serde(skip_serializing)]
    pub password: String,
    /// Schema profile. Default `auto` (probe the server's version).
    pub profile: ProfileChoice,
    /// Replicate the table (`ReplicatedReplacingMergeTree` under
    /// `/clickhouse/tables/{shard}/<database>/<table>` and replica
    /// `{replica}`: every server needs ZooKeeper and those two `<macros>`).
    /// Default false.
    pub replicated: bool,
    /// With `replicated`: an insert is acknowledged only once this many
    /// replicas hold it (ClickHouse's `insert_quorum`), so a write Loupe
    /// acknowledged survives the loss of a server. 0 or 1: one replica.
    /// Default 0.
    pub insert_quorum: u32,
    /// Days a span is kept (modern profile: table TTL on its filing day);
    /// 0 keeps everything. Unset: 0 for `loupe migrate` and tests; `loupe
    /// serve` takes `[store] retention_days` and refuses this key, so one
    /// setting says how long spans are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Timeout of one HTTP request (`30s`); a streamed answer (a scan, the
    /// hour tier's rebuild) waits this long for each piece. Default 30 s.
    #[serde(with = "loupe_model::duration_text")]
    pub timeout: Duration,
    /// Largest response body read, bytes; larger answers fail instead of
    /// growing memory. Default 256 MiB.
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
            replicated: false,
            insert_quorum: 0,
            retention_days: None,
            timeout: Duration::from_secs(30),
            max_response_bytes: 256 << 20,
            insert_batch_rows: 10_000,
            stream_batch_rows: 10_000,
        }
    }
}

impl ClickHouseConfig {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
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
            .field("replicated", &self.replicated)
            .field("insert_quorum", &self.insert_quorum)
            .field("retention_days", &self.retention_days)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("insert_batch_rows", &self.insert_batch_rows)
            .field("stream_batch_rows", &self.stream_batch_rows)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_and_the_password_is_never_written_out() {
        let parsed: Result<ClickHouseConfig, _> =
            serde_json::from_str(r#"{"url":"http://x","bogus":1}"#);
        assert!(parsed.is_err());
        let parsed: ClickHouseConfig = serde_json::from_str(
            r#"{"url":"http://x","timeout":"5s","profile":"legacy","password":"hunter2"}"#,
        )
        .expect("parses");
        assert_eq!(parsed.timeout, Duration::from_secs(5));
        assert_eq!(parsed.profile, ProfileChoice::Legacy);
        assert_eq!(parsed.retention_days, None);
        assert!(!format!("{parsed:?}").contains("hunter2"));
        let written = serde_json::to_string(&parsed).expect("serializes");
        assert!(!written.contains("hunter2"), "{written}");
        assert_eq!("clickhouse".parse(), Ok(SpanBackend::Clickhouse));
        assert!("mysql".parse::<SpanBackend>().is_err());
    }
}
