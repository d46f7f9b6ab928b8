//! `loupe`: production observability for Dify and other agentic LLM apps.
//!
//! The binary parses the command line, layers the configuration and wires
//! the components together ([`serve`]). It is the only crate that knows the
//! CLI, exit codes and which storage backend runs.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod budgets;
mod cli_alerts;
mod cli_analytics;
mod cli_backup;
mod cli_dify;
mod cli_export;
mod cli_gen;
mod cli_logs;
mod cli_migrate;
mod cli_query;
mod cli_rca;
mod cli_tags;
mod config;
mod keys;
mod open;
mod ops;
mod serve;
mod spans;
mod tail;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use loupe_store::Durability;

/// Loupe: capture every Dify run, query it in milliseconds.
#[derive(Debug, Parser)]
#[command(name = "loupe", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: OTLP/HTTP + API on --http-addr, OTLP/gRPC on --grpc-addr.
    Serve(ServeArgs),
    /// Print the default configuration as TOML (a starting loupe.toml).
    DefaultConfig,
    /// Manage API keys (keys.json in the data directory).
    Keys(keys::KeysArgs),
    /// Generate a deterministic synthetic Dify workload (OTLP, Langfuse or a data dir).
    Gen(cli_gen::GenArgs),
    /// Dify database connector: sync runs and messages from PostgreSQL.
    Dify(cli_dify::DifyArgs),
    /// Run a query ('status=error | by tool_name | count()') on a server or a data dir.
    Query(cli_query::QueryArgs),
    /// Logs: `loupe logs send FILE…` imports files of log lines into a server.
    Logs(cli_logs::LogsArgs),
    /// Run one read-only SQL query over `spans` on a server or a data dir.
    Sql(cli_query::SqlArgs),
    /// Root-cause analysis: which values explain a rise ('status=error' --last 6h).
    Rca(cli_rca::RcaArgs),
    /// Product analytics: conversations (abandonment, satisfaction, cost) and users (retention).
    Analytics(cli_analytics::AnalyticsArgs),
    /// Business tags: apply the configured rules to runs already stored.
    Tags(cli_tags::TagsArgs),
    /// Alert rules: `loupe alerts test RULE --at TIME` on past data.
    Alerts(cli_alerts::AlertsArgs),
    /// Export a query's answer or a time range of raw spans as Parquet to a directory or S3.
    Export(cli_export::ExportArgs),
    /// Copy a consistent snapshot of a data directory (while `serve` runs).
    Backup(cli_backup::BackupArgs),
    /// Restore a backup into a new data directory (checked file by file).
    Restore(cli_backup::RestoreArgs),
    /// Copy every span of a data directory into another backend (ClickHouse).
    Migrate(cli_migrate::MigrateArgs),
}

/// Flags of `loupe serve`; each overrides the config file and has a `LOUPE_*` variable.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (see loupe.example.toml). Default: none, built-in defaults.
    #[arg(long, env = "LOUPE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (WAL, parts, manifest). Default ./loupe-data.
    #[arg(long, env = "LOUPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP listen address. Default 127.0.0.1:4318.
    #[arg(long, env = "LOUPE_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// OTLP/gRPC listen address. Default 127.0.0.1:4317.
    #[arg(long, env = "LOUPE_GRPC_ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// WAL durability: strict (fsync before reply), interval (fsync every
    /// store.fsync_interval), none. Default interval.
    #[arg(long, env = "LOUPE_DURABILITY")]
    durability: Option<Durability>,
    /// When API keys are required: auto (open on loopback until the first
    /// key exists), required, or open (loopback only, even after keys were
    /// lost). Default auto.
    #[arg(long, env = "LOUPE_AUTH_MODE", value_parser = parse_auth_mode)]
    auth_mode: Option<loupe_api::auth::AuthMode>,
    /// Cold tier for parts older than store.cold.hot_days: s3://bucket/prefix
    /// or an absolute directory (store.cold.url). Default: none.
    #[arg(long, env = "LOUPE_COLD_URL")]
    cold_url: Option<String>,
    /// Days a part stays on local disk before it moves to the cold tier
    /// (store.cold.hot_days). Default 7.
    #[arg(long, env = "LOUPE_HOT_DAYS")]
    hot_days: Option<u32>,
    /// Where spans are kept: embedded (the data directory, default) or
    /// clickhouse (store.backend; needs --clickhouse-url or
    /// `[store.clickhouse] url`).
    #[arg(long, env = "LOUPE_STORE_BACKEND")]
    backend: Option<loupe_backend::SpanBackend>,
    /// ClickHouse HTTP endpoint, e.g. http://127.0.0.1:8123
    /// (store.clickhouse.url).
    #[arg(long, env = "LOUPE_CLICKHOUSE_URL")]
    clickhouse_url: Option<String>,
    /// ClickHouse password (store.clickhouse.password); prefer the
    /// variable to the file or the flag, which shows in `ps`.
    #[arg(long, env = "LOUPE_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    clickhouse_password: Option<String>,
    /// TLS certificate chain (PEM) for both listeners; needs --tls-key.
    #[arg(long, env = "LOUPE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, env = "LOUPE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// JSON-lines files to tail into the logs table (globs; repeat the
    /// flag, or comma-separate in the variable). Replaces `[logs] files`.
    #[arg(long = "tail", env = "LOUPE_LOG_FILES", value_delimiter = ',')]
    tail: Vec<String>,
}

fn parse_auth_mode(text: &str) -> Result<loupe_api::auth::AuthMode, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("unknown auth mode {text:?}: use auto, required or open"))
}

/// Logs go to stderr: `serve` at info; every other command at warn, so
/// its output stays its report while the store's and the sync's warnings
/// still show (a long `loupe dify sync` said nothing of what held it up).
/// `RUST_LOG` overrides either (`RUST_LOG=info loupe dify sync …`).
fn init_logs(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Only fails when a subscriber is already set, which main never does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logs(matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Gen(args) => cli_gen::run(args),
        Command::Dify(args) => cli_dify::run(args),
        Command::Logs(args) => cli_logs::run(args),
        Command::Alerts(args) => cli_alerts::run(args),
        Command::Tags(args) => cli_tags::run(args),
        Command::Backup(args) => cli_backup::backup(args),
        Command::Restore(args) => cli_backup::restore(args),
        Command::Migrate(args) => cli_migrate::run(args),
        Command::Query(args) => return cli_query::query(args),
        Command::Export(args) => return cli_export::run(args),
        Command::Sql(args) => return cli_query::sql(args),
        Command::Rca(args) => return cli_rca::run(args),
        Command::Analytics(args) => return cli_analytics::run(args),
        Command::DefaultConfig => toml::to_string(&config::Config::default())
            .map(|text| print!("{text}"))
            .map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
