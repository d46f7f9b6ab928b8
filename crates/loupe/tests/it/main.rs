//! End-to-end tests of the `loupe` binary: each test starts real servers as
//! child processes on free loopback ports with their own temp data dirs.

mod alerts;
mod alerts_serve;
mod analytics;
mod backup;
mod bad_input;
mod budgets;
mod cli_query;
mod clickhouse;
mod clickhouse_serve;
mod cold;
mod console;
mod crash;
mod dify_1_20;
mod dify_health;
mod dify_merge;
mod dify_serve;
mod r#gen;
mod hardening;
mod keys_api;
mod langfuse;
mod logs;
mod logs_query;
mod logs_rsyslog;
mod logs_tail;
mod metrics;
mod otlp_replay;
mod query;
mod rca;
mod redaction;
mod retention;
mod security;
mod support;
mod tags;
mod tidy;
mod tls;
