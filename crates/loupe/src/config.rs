//! `loupe.toml`: one file with a section per component, layered
//! defaults → file → `LOUPE_*` environment → command-line flags.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, bail};
use loupe_api::auth::{AuthMode, KeyRecord};
use loupe_normalise::tags::TagRuleConfig;
use loupe_store::StoreConfig;
use serde::{Deserialize, Serialize};

/// Labels `/metrics` sets itself; a tag label may not reuse them.
const RESERVED_LABELS: &[&str] = &[
    "le",
    "status",
    "tool_name",
    "project",
    "app_id",
    "workflow_id",
    "span_kind",
    "node_type",
    "model_name",
    "type",
    "error_class",
];

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Network listeners and request limits.
    pub server: ServerConfig,
    /// The embedded store.
    pub store: StoreConfig,
    /// `[ingest]`: caps on one request and the accepted span times.
    pub ingest: loupe_ingest::IngestLimits,
    /// Business-tag extraction rules (`[[tags]]`), applied to every span.
    pub tags: Vec<TagRuleConfig>,
    /// API keys and the auth policy.
    pub auth: AuthSection,
    /// `[dify]`: continuous sync of a Dify database.
    pub dify: crate::cli_dify::DifySection,
    /// `[metrics]`: rollups and `/metrics` (which tags become labels, the
    /// cardinality limit).
    pub metrics: loupe_rollup::RollupConfig,
    /// `[alerts]`: rules, channels, actions (see docs/ALERTS.md).
    pub alerts: loupe_alerts::AlertsConfig,
    /// `[redaction]`: PII rules applied to every span before it is stored
    /// (see docs/SECURITY.md).
    pub redaction: loupe_pipeline::redact::RedactionConfig,
    /// `[[budgets]]`: cost limits per day, week or month that notify the
    /// alert channels at thresholds (see docs/ANALYTICS.md).
    pub budgets: Vec<loupe_analytics::budgets::BudgetConfig>,
}

/// `[auth]`: when API keys are required and keys defined in the config
/// (besides `keys.json` in the data directory, which `loupe keys create`
/// writes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `auto` (default): open on loopback while no key exists and none
    /// ever did; keys required once one does, for good (a lost keys.json
    /// is an error at start). `required`: keys always required. `open`:
    /// open on loopback while no key exists, even after keys were lost.
    pub mode: AuthMode,
    /// Open mode: host names besides localhost/127.0.0.1/::1 accepted in
    /// the `Host` and `Origin` headers. Default none.
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` without a key. Default false.
    pub metrics_public: bool,
    /// `[[auth.keys]]`: `project`, `public_key`, `secret_key_hash`
    /// (`sha256:<hex>`, as `loupe keys create` prints), `scope` (`ingest`,
    /// `read` or `admin`; absent: admin).
    pub keys: Vec<KeyRecord>,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP listener: OTLP/HTTP, Loupe API, health. Default 127.0.0.1:4318.
    pub http_addr: SocketAddr,
    /// OTLP/gRPC listener. Default 127.0.0.1:4317.
    pub grpc_addr: SocketAddr,
    /// Largest request body as sent, bytes. Default 16 MiB.
    pub max_body_bytes: usize,
    /// Largest body after decompression, bytes. Default 64 MiB.
    pub max_decompressed_bytes: usize,
    /// Time limit of one query or SQL request (default 30 s).
    #[serde(with = "loupe_model::duration_text")]
    pub query_timeout: std::time::Duration,
    /// Memory pool of one query, bytes (default 512 MiB).
    pub query_memory_bytes: usize,
    /// `[server.tls]`: serve HTTP and gRPC over TLS. Default none (plain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
}

/// `[server.tls]`: PEM files of the certificate chain and its private key,
/// used by both listeners and reloaded when they change or on SIGHUP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Certificate chain (leaf first), PEM.
    pub cert_file: std::path::PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_file: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let api = loupe_api::ApiConfig::default();
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            max_body_bytes: api.max_body_bytes,
            max_decompressed_bytes: api.max_decompressed_bytes,
            query_timeout: api.query_timeout,
            query_memory_bytes: api.query_memory_bytes,
            tls: None,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors that name the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Checks cross-field rules after all layers are applied.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.server.max_body_bytes == 0 {
            bail!("server.max_body_bytes must be greater than 0");
        }
        if self.store.memtable_bytes == 0 {
            bail!("store.memtable_bytes must be greater than 0");
        }
        if self.store.max_unflushed_bytes < self.store.memtable_bytes {
            bail!("store.max_unflushed_bytes must be at least store.memtable_bytes");
        }
        self.store.validate().map_err(anyhow::Error::msg)?;
        self.ingest.validate().map_err(anyhow::Error::msg)?;
        loupe_normalise::tags::TagRules::new(&self.tags)?;
        loupe_pipeline::redact::Redactor::new(&self.redaction)?;
        if self.metrics.max_series_per_app == 0 {
            bail!("metrics.max_series_per_app must be greater than 0");
        }
        for label in &self.metrics.labels {
            let name = loupe_rollup::expose::label_name(label);
            if RESERVED_LABELS.contains(&name.as_str()) {
                bail!("metrics.labels: tag {label:?} would clash with the built-in label {name:?}");
            }
        }
        self.alerts_config().validate(&self.metrics.labels)?;
        crate::budgets::validate(self)?;
        if let Some(url) = &self.dify.web_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("dify.web_url {url:?} must start with http:// or https://");
        }
        Ok(())
    }

    /// `[alerts]` with what it needs from `[metrics]`: threshold windows
    /// may not exceed the per-minute rollups kept.
    pub fn alerts_config(&self) -> loupe_alerts::AlertsConfig {
        let mut alerts = self.alerts.clone();
        alerts.max_window = Some(std::time::Duration::from_secs(
            60 * self.metrics.minutes_kept as u64,
        ));
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serialize_and_parse_back_and_unknown_keys_are_named() {
        let text = toml::to_string(&Config::default()).expect("serialize");
        let back: Config = toml::from_str(&text).expect("parse");
        assert_eq!(back.server.http_addr, Config::default().server.http_addr);
        let err = toml::from_str::<Config>("[server]\nhttp_adr = \"1.2.3.4:5\"\n")
            .expect_err("unknown key rejected");
        assert!(err.to_string().contains("http_adr"), "{err}");
    }

    #[test]
    fn an_absurd_retention_is_refused_with_the_fix() {
        let config: Config = toml::from_str("[store]\nretention_days = 999999\n").expect("parse");
        let err = config.validate().expect_err("refused").to_string();
        assert!(
            err.contains("retention_days") && err.contains("use 0"),
            "{err}"
        );
    }

    #[test]
    fn shipped_example_config_parses_and_validates() {
        let path = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../loupe.example.toml");
        let config = Config::load(&path).expect("example parses");
        config.validate().expect("example validates");
        assert!(!config.tags.is_empty(), "the example shows tag rules");
    }
}
