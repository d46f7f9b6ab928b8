//! Loupe's own operational metrics beyond the store's: what the API refused
//! and how the Dify sync is doing, added to `/metrics` beside the store's
//! (`loupe_wal_*`, `loupe_store_*`), so the operator of Loupe can watch it
//! with the Prometheus it feeds.

use std::sync::Arc;

use axum::http::StatusCode;
use loupe_api::ApiError;
use loupe_api::admission::IngestGate;
use loupe_dify::health::{CleanupHistory, HealthState};
use loupe_dify::sync::status::SyncStatus;
use loupe_model::ProjectId;
use loupe_rollup::expose::{SelfKind, SelfMetric};
use serde_json::{Value, json};

use crate::config::Config;

/// The settings and the Dify sync as `GET /api/v1/settings` and
/// `GET /api/v1/dify/status` show them (read-only, per project).
pub struct ServerView {
    /// The config in effect (the store's part updated from `settings.json`).
    config: Config,
    /// The store: retention in force, and its changes over the API.
    store: loupe_store::Store,
    /// The running Dify sync, if any.
    sync: Option<Arc<SyncStatus>>,
    /// The running health collector of the Dify database, if any.
    health: Option<Arc<HealthState>>,
    /// The budgets of `loupe.toml` and of the console.
    budgets: Arc<crate::budgets::BudgetBook>,
}

impl ServerView {
    /// A view of `config` (as the store opened with it) and the sync.
    pub fn new(
        config: &Config,
        store: loupe_store::Store,
        sync: Option<Arc<SyncStatus>>,
        health: Option<Arc<HealthState>>,
        budgets: Arc<crate::budgets::BudgetBook>,
    ) -> Self {
        Self {
            config: config.clone(),
            store,
            sync,
            health,
            budgets,
        }
    }

    /// Why `project` is not shown the database's health (it belongs to the
    /// whole database, so only the sync's own project sees it), if so.
    fn health_refused(&self, project: &ProjectId) -> Option<Value> {
        if !self.dify_here(project) {
            return Some(json!({"configured": false}));
        }
        if !self.dify_owner(project) {
            return Some(json!({
                "configured": true,
                "available": false,
                "reason": "the Dify database's health and cleanups are shown to the project of [dify] project",
            }));
        }
        None
    }

    /// Whether Dify's runs land in `project` (`[dify] project` or one of
    /// `[[dify.projects]]`), pushed or synced.
    fn dify_project(&self, project: &ProjectId) -> bool {
        self.config
            .dify
            .projects()
            .is_ok_and(|p| p.all().contains(project.as_str()))
    }

    /// `project`'s retention: in force, where it is set, whether the API
    /// may change it.
    fn retention(&self, p: &str) -> Value {
        // The store's config is `loupe.toml`'s; what the console set is
        // kept apart (`retention.json`).
        let configured = self.store.config().retention_days_by_project.get(p);
        let set = self.store.retention_set().get(p).copied();
        json!({
            "days": self.store.retention_for(p),
            "global_days": self.store.config().retention_days,
            "project_override": configured,
            "set_in_console": set,
            "source": match (configured, set) {
                (Some(_), _) => "loupe.toml",
                (None, Some(_)) => "console",
                (None, None) => "default",
            },
            "editable": configured.is_none() && !self.store.is_read_only() && !self.on_clickhouse(),
        })
    }

    /// Spans live in ClickHouse, where retention is the table's TTL from
    /// `[store] retention_days` (one for every project).
    fn on_clickhouse(&self) -> bool {
        self.config.store.backend == loupe_backend::SpanBackend::Clickhouse
    }

    /// The refusal of a retention change or preview on ClickHouse.
    fn clickhouse_retention(&self) -> ApiError {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "spans are kept in ClickHouse, whose table TTL is [store] retention_days = {} for every project: change it in loupe.toml",
                self.config.store.retention_days
            ),
        )
    }

    fn preview_json(
        &self,
        project: &ProjectId,
        p: &loupe_store::retention::RetentionPreview,
    ) -> Value {
        let days = p.days;
        let fmt = |ns: Option<i64>| ns.map(loupe_model::time::format_instant);
        json!({
            "days": days,
            "current_days": self.store.retention_for(project.as_str()),
            "first_day_kept": fmt(p.cutoff_ns),
            "oldest_stored": fmt(p.oldest_ns),
            "drops": {
                "parts": p.parts,
                "spans": p.rows,
                "bytes": p.bytes,
                "log_parts": p.log_parts,
                "log_records": p.log_records,
            },
            // Runs a Dify cleanup removed from Dify's database exist only
            // here: the console says so before a shorter retention.
            "dify_project": self.dify_here(project),
        })
    }

    /// Whether the Dify sync writes into `project`.
    fn dify_here(&self, project: &ProjectId) -> bool {
        self.config.dify.dsn.is_some() && self.dify_project(project)
    }

    /// The sync's own project: the only one shown its totals, which count
    /// the rows of every project it writes to.
    fn dify_owner(&self, project: &ProjectId) -> bool {
        self.config.dify.dsn.is_some() && self.config.dify.project == project.as_str()
    }
}

impl loupe_api::ServerInfo for ServerView {
    fn settings(&self, project: &ProjectId) -> Value {
        let store = &self.config.store;
        let p = project.as_str();
        // Rules for every project or for this one only.
        let tags: Vec<_> = self
            .config
            .tags
            .iter()
            .filter(|r| r.project.as_deref().is_none_or(|x| x == p))
            .collect();
        // Public keys only (never a hash): the config's, then keys.json's.
        let file = self.config.store.data_dir.join(loupe_api::auth::KEYS_FILE);
        let stored = match loupe_api::auth::KeysFile::load(&file) {
            Ok(f) => f.keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read keys.json for the settings view");
                Vec::new()
            }
        };
        let keys: Vec<Value> = self
            .config
            .auth
            .keys
            .iter()
            .map(|k| (k, "config"))
            .chain(stored.iter().map(|k| (k, "keys.json")))
            .filter(|(k, _)| k.project == p)
            .map(|(k, source)| {
                json!({"public_key": k.public_key, "created_at": k.created_at, "source": source})
            })
            .collect();
        json!({
            "project": p,
            "keys": keys,
            "retention": self.retention(p),
            "tag_rules": tags,
            "metrics": {
                "labels": self.config.metrics.labels,
                "hour_tags": self.store.hour_tags(),
                "max_series_per_app": self.config.metrics.max_series_per_app,
                "minutes_kept": self.config.metrics.minutes_kept,
            },
            "answer_from_rollups": store.answer_from_rollups,
            "backend": store.backend.as_str(),
            "alerts_enabled": self.config.alerts.enabled,
            "dify": {
                "sync": self.dify_here(project),
                // Links from runs to Dify's console are for the project
                // Dify's runs go to (pushed or synced).
                "web_url": self.config.dify.web_url.as_deref()
                    .filter(|_| self.dify_project(project)),
            },
        })
    }

    fn retention_preview(&self, project: &ProjectId, days: u32) -> Result<Value, ApiError> {
        if days > loupe_store::MAX_RETENTION_DAYS {
            return Err(too_long(days));
        }
        if self.on_clickhouse() {
            return Err(self.clickhouse_retention());
        }
        let p = self
            .store
            .retention_preview(project.as_str(), days, loupe_model::time::now_ns());
        Ok(self.preview_json(project, &p))
    }

    fn set_retention(
        &self,
        project: &ProjectId,
        days: Option<u32>,
        confirm: bool,
    ) -> Result<Value, ApiError> {
        let p = project.as_str();
        if self.on_clickhouse() {
            return Err(self.clickhouse_retention());
        }
        if let Some(d) = self.store.config().retention_days_by_project.get(p) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "loupe.toml sets this project's retention ([store.retention_days_by_project] {p} = {d}); change it there"
                ),
            ));
        }
        if let Some(d) = days
            && d > loupe_store::MAX_RETENTION_DAYS
        {
            return Err(too_long(d));
        }
        let next = days.unwrap_or(self.store.config().retention_days);
        let drops = self
            .store
            .retention_preview(p, next, loupe_model::time::now_ns());
        let preview = self.preview_json(project, &drops);
        if drops.parts + drops.log_parts > 0 && !confirm {
            let message = format!(
                "a retention of {next} days deletes stored data at the next maintenance pass \
                 ({} spans, {} log records); send \"confirm\": true to proceed",
                drops.rows, drops.log_records
            );
            let mut details = serde_json::Map::new();
            details.insert("preview".into(), preview);
            return Err(ApiError::new(StatusCode::CONFLICT, message).with_details(details));
        }
        self.store.set_retention(p, days).map_err(|e| match e {
            loupe_store::Error::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
        Ok(json!({"retention": self.retention(p), "preview": preview}))
    }

    fn dify_status(&self, project: &ProjectId) -> Value {
        if !self.dify_here(project) {
            return json!({"configured": false});
        }
        let d = &self.config.dify;
        let mut out = json!({
            "configured": true,
            "project": project.as_str(),
            "interval": d.interval,
            "batch": d.batch,
            "older_than_retention": d.older_than_retention,
            "storage_dir": d.storage_dir.is_some(),
            "web_url": d.web_url,
            "running": self.sync.is_some(),
            // The console starts cleanups for the database's own project.
            "cleanups": self.dify_owner(project),
        });
        if let Some(sync) = self.sync.as_ref().filter(|_| self.dify_owner(project)) {
            let s = sync.snapshot();
            let now = chrono::Utc::now().timestamp();
            out["totals"] = json!({
                "passes": s.passes,
                "failures": s.failures,
                "rows": s.rows,
                "spans": s.spans,
                "skipped_older_than_retention": s.skipped,
            });
            out["open_runs"] = json!(s.open_runs);
            out["last_success_unix"] = json!(s.last_success_unix);
            out["lag_seconds"] = if s.last_success_unix > 0 {
                json!((now - s.last_success_unix).max(0))
            } else {
                Value::Null
            };
            out["last_pass"] = json!(sync.last_pass());
        }
        out
    }

    fn dify_health(&self, project: &ProjectId) -> Value {
        if let Some(refused) = self.health_refused(project) {
            return refused;
        }
        let d = &self.config.dify;
        let Some(health) = &self.health else {
            return json!({
                "configured": true,
                "available": true,
                "running": false,
                "reason": "dify.health_interval is 0: no samples are taken",
            });
        };
        let (samples, failures) = health.counts();
        let mut out = serde_json::to_value(health.report()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot serialise the dify health report");
            json!({})
        });
        out["configured"] = json!(true);
        out["available"] = json!(true);
        out["running"] = json!(true);
        out["interval"] = json!(d.health_interval);
        out["samples"] = json!(samples);
        out["failures"] = json!(failures);
        out
    }

    fn budgets(&self, project: &ProjectId) -> Vec<loupe_api::BudgetEntry> {
        self.budgets.list(project.as_str())
    }

    fn budget_channels(&self) -> Vec<String> {
        self.budgets.channels()
    }

    fn put_budget(
        &self,
        budget: loupe_analytics::budgets::BudgetConfig,
    ) -> Result<(loupe_analytics::budgets::BudgetConfig, bool), ApiError> {
        self.budgets.put(budget)
    }

    fn delete_budget(&self, project: &ProjectId, name: &str) -> Result<(), ApiError> {
        self.budgets.delete(project.as_str(), name)
    }

    fn dify_cleanups(&self, project: &ProjectId, limit: usize) -> Value {
        if let Some(refused) = self.health_refused(project) {
            return refused;
        }
        let path = CleanupHistory::path(&self.config.store.data_dir);
        match CleanupHistory::load(&path) {
            Ok(h) => {
                let (rows, bytes) = h.totals();
                let runs: Vec<_> = h.runs.iter().rev().take(limit).collect();
                json!({
                    "configured": true,
                    "available": true,
                    "total": h.runs.len(),
                    "rows_deleted": rows,
                    "bytes_freed": bytes,
                    "runs": runs,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cleanup history");
                json!({"configured": true, "available": false, "reason": e.to_string()})
            }
        }
    }
}

fn too_long(days: u32) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "days: {days} is more than {} (100 years); use 0 to keep data forever",
            loupe_store::MAX_RETENTION_DAYS
        ),
    )
}

/// The API's and the sync's metrics, as label-less samples.
pub fn own_metrics(gate: &IngestGate, sync: Option<&SyncStatus>) -> Vec<SelfMetric> {
    let mut out = vec![SelfMetric {
        name: "loupe_ingest_refused_total",
        help: "Ingest requests refused with 503 + Retry-After because every ingest slot was busy.",
        kind: SelfKind::Counter,
        value: gate.refused_total() as f64,
    }];
    if let Some(sync) = sync {
        let s = sync.snapshot();
        out.extend([
            SelfMetric {
                name: "loupe_dify_sync_passes_total",
                help: "Dify sync passes finished, successful or not.",
                kind: SelfKind::Counter,
                value: s.passes as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_failures_total",
                help: "Dify sync passes that failed (see the server log; retried next interval).",
                kind: SelfKind::Counter,
                value: s.failures as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_rows_total",
                help: "Rows read from Dify's database.",
                kind: SelfKind::Counter,
                value: s.rows as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_spans_total",
                help: "Spans the Dify sync wrote through the ingest pipeline.",
                kind: SelfKind::Counter,
                value: s.spans as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_open_runs",
                help: "Dify runs still re-polled (running, or finished within the settle time).",
                kind: SelfKind::Gauge,
                value: s.open_runs as f64,
            },
            SelfMetric {
                name: "loupe_dify_sync_last_success_timestamp_seconds",
                help: "When the last Dify sync pass succeeded (Unix seconds; 0 = never). time() minus this is the sync lag.",
                kind: SelfKind::Gauge,
                value: s.last_success_unix as f64,
            },
        ]);
    }
    out
}

/// The Dify database's gauges for `type = "gauge"` alert rules: a rule of
/// the sync's own project (or over every project) sees them, others none.
/// The gauges log alert rules read: `log_records_last_5m` and
/// `log_records_last_1h` (records by arrival, labels `project`, `service`,
/// `severity`), for one project or all.
pub fn log_gauges(store: loupe_store::Store) -> loupe_alerts::GaugeSource {
    Arc::new(move |project: Option<&str>| {
        [("log_records_last_5m", 5), ("log_records_last_1h", 60)]
            .into_iter()
            .flat_map(|(name, minutes)| {
                store.recent_log_counts(project, minutes).into_iter().map(
                    move |((p, service, severity), n)| loupe_alerts::eval::gauge::Gauge {
                        name: name.to_owned(),
                        labels: [
                            ("project".to_owned(), p),
                            ("service".to_owned(), service),
                            ("severity".to_owned(), severity.to_owned()),
                        ]
                        .into_iter()
                        .collect(),
                        value: n as f64,
                    },
                )
            })
            .collect()
    })
}

/// Every gauge source in one: the logs' and, with a Dify database, its
/// health.
pub fn all_gauges(sources: Vec<loupe_alerts::GaugeSource>) -> loupe_alerts::GaugeSource {
    Arc::new(move |project: Option<&str>| sources.iter().flat_map(|s| s(project)).collect())
}

pub fn health_gauges(health: Arc<HealthState>, dify_project: String) -> loupe_alerts::GaugeSource {
    Arc::new(move |project: Option<&str>| {
        if project.is_some_and(|p| p != dify_project) {
            return Vec::new();
        }
        health
            .families()
            .into_iter()
            .filter(|f| f.kind == "gauge")
            .flat_map(|f| {
                f.samples
                    .into_iter()
                    .map(move |(labels, value)| loupe_alerts::eval::gauge::Gauge {
                        name: f.name.to_owned(),
                        labels: labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                        value,
                    })
            })
            .collect()
    })
}
