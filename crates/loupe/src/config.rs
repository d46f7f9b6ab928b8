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
    /// `[query]`: limits of every read that scans spans.
    pub query: QueryConfig,
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
    /// `[costs]`: the currency costs are stored in and the rates that
    /// convert the others at ingest (see docs/ANALYTICS.md).
    pub costs: loupe_pipeline::costs::CostConfig,
    pub logs: crate::tail::LogsSection,
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
    /// Connections open at once on each listener (HTTP, gRPC); at the
    /// limit new connections wait until one closes. Default 1024.
    pub max_connections: usize,
    /// gRPC: concurrent streams (requests) on one connection, advertised
    /// to clients in HTTP/2 SETTINGS and enforced. Default 32.
    pub grpc_max_concurrent_streams: u32,
    /// gRPC: ping an idle connection this often. Default 30 s.
    #[serde(with = "loupe_model::duration_text")]
    pub grpc_keepalive_interval: std::time::Duration,
    /// gRPC: close a connection whose ping is not answered within this.
    /// Default 20 s.
    #[serde(with = "loupe_model::duration_text")]
    pub grpc_keepalive_timeout: std::time::Duration,
    /// gRPC: time limit of one export call (`DEADLINE_EXCEEDED` past it).
    /// Default 60 s.
    #[serde(with = "loupe_model::duration_text")]
    pub grpc_request_timeout: std::time::Duration,
    /// `[server.tls]`: serve HTTP and gRPC over TLS. Default none (plain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
}

/// `[query]`: limits of every read that scans spans (the query language,
/// SQL, traces, spans, sessions, users, RCA, the Langfuse read API). See
/// docs/SECURITY.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Time limit of one read (default 30 s; 408 past it).
    #[serde(with = "loupe_model::duration_text")]
    pub timeout: std::time::Duration,
    /// Memory one query's operators (sorts, groups, joins) may reserve,
    /// bytes (default 512 MiB; 413 past it).
    pub memory_bytes: usize,
    /// Memory all queries together may reserve, bytes (default 1 GiB; a
    /// query that finds it spent is refused with 503 + Retry-After).
    pub total_memory_bytes: usize,
    /// Reads scanning spans at once (default 4).
    pub max_concurrent: usize,
    /// How long a read waits for a slot before 503 + Retry-After
    /// (default 5 s).
    #[serde(with = "loupe_model::duration_text")]
    pub queue_timeout: std::time::Duration,
    /// Rows in one JSON answer (default 100,000; more is truncated).
    pub max_rows: usize,
    /// Bytes of values in one JSON answer (default 64 MiB; more is
    /// truncated).
    pub max_answer_bytes: usize,
    /// Bytes one call of a size-building SQL function (`repeat`, `lpad`,
    /// `concat`, `||`, …) may build for one batch (default 64 MiB; 400
    /// past it).
    pub max_function_bytes: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let api = loupe_api::ApiConfig::default();
        Self {
            timeout: api.query_timeout,
            memory_bytes: api.query_memory_bytes,
            total_memory_bytes: 1 << 30,
            max_concurrent: 4,
            queue_timeout: std::time::Duration::from_secs(5),
            max_rows: api.query_max_rows,
            max_answer_bytes: api.query_max_answer_bytes,
            max_function_bytes: api.query_max_function_bytes,
        }
    }
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
    /// Mutual TLS: PEM bundle of the CAs a client certificate must chain
    /// to. Default none (no client certificates asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<std::path::PathBuf>,
    /// With `client_ca_file`: `required` (default; a client without a
    /// certificate is refused in the handshake) or `optional` (a client may
    /// present none, but one it presents must verify).
    #[serde(default)]
    pub client_auth: ClientAuthMode,
}

/// `[server.tls] client_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// Every client must present a certificate the CA signed.
    #[default]
    Required,
    /// Clients may present none.
    Optional,
}

impl TlsSection {
    /// The client certificates asked for, if any.
    pub fn client_auth(&self) -> Option<loupe_api::tls::ClientAuth> {
        self.client_ca_file
            .as_ref()
            .map(|ca_file| loupe_api::tls::ClientAuth {
                ca_file: ca_file.clone(),
                required: self.client_auth == ClientAuthMode::Required,
            })
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        let api = loupe_api::ApiConfig::default();
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            max_body_bytes: api.max_body_bytes,
            max_decompressed_bytes: api.max_decompressed_bytes,
            max_connections: 1024,
            grpc_max_concurrent_streams: 32,
            grpc_keepalive_interval: std::time::Duration::from_secs(30),
            grpc_keepalive_timeout: std::time::Duration::from_secs(20),
            grpc_request_timeout: std::time::Duration::from_secs(60),
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
        if self.server.max_connections == 0 || self.server.grpc_max_concurrent_streams == 0 {
            bail!(
                "server.max_connections and server.grpc_max_concurrent_streams must be greater than 0"
            );
        }
        let q = &self.query;
        if q.max_concurrent == 0 || q.max_rows == 0 || q.max_answer_bytes == 0 {
            bail!(
                "query.max_concurrent, query.max_rows and query.max_answer_bytes must be greater than 0"
            );
        }
        if q.memory_bytes < (1 << 20) || q.total_memory_bytes < q.memory_bytes {
            bail!(
                "query.memory_bytes must be at least 1 MiB and query.total_memory_bytes at least \
                 query.memory_bytes (one query must fit in the pool all queries share)"
            );
        }
        if q.timeout.is_zero() {
            bail!("query.timeout must be greater than 0");
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
        loupe_normalise::tags::TagRules::new(&self.dify.workspace_rules())
            .map_err(|e| anyhow::anyhow!("dify.workspace_tag: {e}"))?;
        loupe_pipeline::redact::Redactor::new(&self.redaction)?;
        loupe_pipeline::costs::Converter::new(&self.costs).map_err(anyhow::Error::msg)?;
        if self.metrics.max_series_per_app == 0 {
            bail!("metrics.max_series_per_app must be greater than 0");
        }
        for label in &self.metrics.labels {
            let name = loupe_rollup::expose::label_name(label);
            if RESERVED_LABELS.contains(&name.as_str()) {
                bail!("metrics.labels: tag {label:?} would clash with the built-in label {name:?}");
            }
        }
        if self.metrics.hour_tags.len() > loupe_rollup::hours::MAX_HOUR_TAGS {
            bail!(
                "metrics.hour_tags: at most {} tags, {} given",
                loupe_rollup::hours::MAX_HOUR_TAGS,
                self.metrics.hour_tags.len()
            );
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

    /// The tags the hour rollups keep besides the labels: `[metrics]
    /// hour_tags`, then the names of the `[[tags]]` rules, of the rules
    /// managed over the API (`managed`) and of the built-in workspace tag
    /// (`[dify] workspace_tag`), each once, none a label, at most
    /// [`loupe_rollup::hours::MAX_HOUR_TAGS`] (the first ones); and those
    /// left out by that bound.
    pub fn hour_tags(&self, managed: &[String]) -> (Vec<String>, Vec<String>) {
        let mut out: Vec<String> = Vec::new();
        let names = self
            .metrics
            .hour_tags
            .iter()
            .chain(self.tags.iter().map(|r| &r.name))
            .chain(managed)
            .chain(std::iter::once(&self.dify.workspace_tag).filter(|t| !t.is_empty()));
        for name in names {
            if !self.metrics.labels.contains(name) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        let dropped = out.split_off(out.len().min(loupe_rollup::hours::MAX_HOUR_TAGS));
        (out, dropped)
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
    fn a_workspace_tag_that_is_no_tag_name_is_refused_naming_the_key() {
        let config: Config =
            toml::from_str("[dify]\nworkspace_tag = \"work space\"\n").expect("parse");
        let err = config.validate().expect_err("refused").to_string();
        assert!(err.contains("dify.workspace_tag"), "{err}");
    }

    #[test]
    fn hour_tags_are_the_extra_tags_then_the_rules_each_once_and_never_a_label() {
        let config: Config = toml::from_str(
            "[metrics]\nlabels = [\"category\"]\nhour_tags = [\"region\"]\n\
             [[tags]]\nname = \"category\"\nfrom = \"input\"\n\
             [[tags]]\nname = \"tier\"\nfrom = \"input\"\n\
             [[tags]]\nname = \"region\"\nfrom = \"input\"\n",
        )
        .expect("parse");
        config.validate().expect("valid");
        assert_eq!(
            config.hour_tags(&["channel".into(), "tier".into()]),
            (
                vec![
                    "region".to_owned(),
                    "tier".into(),
                    "channel".into(),
                    "workspace".into()
                ],
                vec![]
            )
        );
        // The built-in workspace tag comes last, and goes with `""`.
        let mut no_workspace = config.clone();
        no_workspace.dify.workspace_tag.clear();
        no_workspace.validate().expect("valid");
        assert_eq!(no_workspace.hour_tags(&[]).0, vec!["region", "tier"]);
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let (kept, dropped) = config.hour_tags(&many);
        assert_eq!(kept.len(), loupe_rollup::hours::MAX_HOUR_TAGS);
        assert_eq!(
            dropped.len(),
            2 + 40 + 1 - loupe_rollup::hours::MAX_HOUR_TAGS
        );
        assert_eq!(dropped.last().map(String::as_str), Some("workspace"));
        let mut too_many = config.clone();
        too_many.metrics.hour_tags = many;
        let err = too_many.validate().expect_err("refused").to_string();
        assert!(err.contains("metrics.hour_tags"), "{err}");
    }

    #[test]
    fn a_clickhouse_backend_needs_its_server_and_one_retention_setting() {
        let parse = |text: &str| -> anyhow::Result<Config> {
            let config: Config = toml::from_str(text)?;
            config.validate()?;
            Ok(config)
        };
        let err = |text: &str| parse(text).expect_err("refused").to_string();
        assert!(err("[store]\nbackend = \"clickhouse\"\n").contains("[store.clickhouse]"));
        assert!(err("[store]\nbackend = \"mysql\"\n").contains("backend"));
        let e = err(
            "[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\nurl = \"http://h:8123\"\nretention_days = 9\n",
        );
        assert!(e.contains("store.clickhouse.retention_days"), "{e}");
        let e = err(
            "[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\nurl = \"http://h:8123\"\n[store.retention_days_by_project]\nx = 3\n",
        );
        assert!(e.contains("retention_days_by_project"), "{e}");
        let e = err("[store]\nbackend = \"clickhouse\"\n[store.clickhouse]\nurlx = \"http://h\"\n");
        assert!(e.contains("urlx"), "{e}");
        let ok = parse(
            "[store]\nbackend = \"clickhouse\"\nretention_days = 45\n[store.clickhouse]\nurl = \"http://h:8123\"\ndatabase = \"obs\"\n",
        )
        .expect("valid");
        let ch = ok.store.clickhouse_for_serve().expect("clickhouse");
        assert_eq!((ch.database.as_str(), ch.retention_days), ("obs", Some(45)));
        // The embedded backend ignores a section it does not use.
        let embedded = parse("[store.clickhouse]\nurl = \"http://h:8123\"\n").expect("valid");
        assert!(embedded.store.clickhouse_for_serve().is_none());
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
