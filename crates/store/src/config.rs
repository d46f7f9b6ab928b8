//! Configuration of the embedded store (`[store]` in `loupe.toml`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When an append is acknowledged relative to `fsync` of the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `fdatasync` before the ingest reply (group commit shares one sync
    /// between concurrent requests). Survives process kill and power loss.
    Strict,
    /// The WAL is written before the reply and synced every
    /// `fsync_interval`. Survives process kill; power loss or an OS crash may
    /// lose up to one interval of acknowledged writes.
    #[default]
    Interval,
    /// The WAL is written before the reply and never synced explicitly (the
    /// OS writes it back). Survives process kill; power loss may lose
    /// whatever the OS had not written back.
    None,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "interval" => Ok(Self::Interval),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown durability {other:?}: use strict, interval or none"
            )),
        }
    }
}

/// The `[store]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Data directory (WAL, Parquet parts, manifest). Default `./loupe-data`.
    pub data_dir: PathBuf,
    /// WAL sync policy. Default `interval`.
    pub durability: Durability,
    /// Sync period for `durability = "interval"`. Default 100ms.
    #[serde(with = "loupe_model::duration_text")]
    pub fsync_interval: Duration,
    /// Flush the memtable to Parquet when it holds this many bytes. Default 64 MiB.
    pub memtable_bytes: usize,
    /// Flush the memtable when its oldest write is this old. Default 60s.
    #[serde(with = "loupe_model::duration_text")]
    pub flush_age: Duration,
    /// Reject writes (HTTP 503 + Retry-After) while unflushed data exceeds
    /// this many bytes. Default 512 MiB.
    pub max_unflushed_bytes: usize,
    /// Compact a (project, day) partition once it has this many parts of a
    /// size (a day before the project's newest: half as many, at least
    /// two). Default 4.
    pub compaction_min_parts: usize,
    /// Days of data kept per project (whole days are dropped). 0 = forever. Default 30.
    pub retention_days: u32,
    /// Per-project overrides of `retention_days`.
    pub retention_days_by_project: BTreeMap<String, u32>,
    /// Period of the compaction and retention sweep. Default 60s.
    #[serde(with = "loupe_model::duration_text")]
    pub maintenance_interval: Duration,
    /// Appends applied at once; later ones wait for a slot. Default 8.
    pub max_concurrent_appends: usize,
    /// How long an append may wait for a slot before it is refused as
    /// overloaded (HTTP 503 + Retry-After), so a backlog never grows without
    /// bound. Default 2s.
    #[serde(with = "loupe_model::duration_text")]
    pub append_queue_timeout: Duration,
    /// Answer aggregate queries the hour rollups can answer exactly (whole
    /// hours; count, rates, sum and avg over rollup dimensions) from them
    /// instead of scanning spans. Default true.
    pub answer_from_rollups: bool,
    /// Memory for the hourly partial tables the product analytics keep
    /// (one row per run and hour: conversations, paths, relations, users
    /// read whole past hours from them instead of the spans). 0 turns the
    /// cache off. Default 512 MiB.
    pub analytics_cache_bytes: usize,
    /// `[store.cold]`: the cold tier in object storage (docs/STORAGE.md).
    /// Default: none.
    pub cold: crate::cold::ColdConfig,
    /// Where `loupe serve` keeps spans: `embedded` (this store, default) or
    /// `clickhouse` (`[store.clickhouse]`; docs/CLICKHOUSE.md). The data
    /// directory is used either way (keys, rules, alert state, logs).
    pub backend: loupe_backend::SpanBackend,
    /// `[store.clickhouse]`: the ClickHouse server, read when `backend =
    /// "clickhouse"`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<loupe_backend::ClickHouseConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./loupe-data"),
            durability: Durability::Interval,
            fsync_interval: Duration::from_millis(100),
            memtable_bytes: 64 << 20,
            flush_age: Duration::from_secs(60),
            max_unflushed_bytes: 512 << 20,
            compaction_min_parts: 4,
            retention_days: 30,
            retention_days_by_project: BTreeMap::new(),
            maintenance_interval: Duration::from_secs(60),
            max_concurrent_appends: 8,
            append_queue_timeout: Duration::from_secs(2),
            answer_from_rollups: true,
            analytics_cache_bytes: 512 << 20,
            cold: crate::cold::ColdConfig::default(),
            backend: loupe_backend::SpanBackend::Embedded,
            clickhouse: None,
        }
    }
}

impl StoreConfig {
    /// Retention for a project in days (0 = keep forever).
    pub fn retention_for(&self, project: &str) -> u32 {
        crate::retention::days_for(
            &self.retention_days_by_project,
            self.retention_days,
            project,
        )
    }

    /// Start (ns) of the UTC day that holds `now_ns` minus the project's
    /// retention: whole days before it are dropped (parts, hour rollups).
    /// `None` when the project keeps everything: retention 0, or one so
    /// long that the cutoff falls before the earliest representable instant
    /// (`retention_days = 999999`, a natural "forever"; unchecked, that
    /// product overflowed into a cutoff in the future and the first
    /// maintenance pass dropped every part).
    pub fn retention_cutoff_day_ns(&self, project: &str, now_ns: i64) -> Option<i64> {
        crate::retention::cutoff_day_ns(self.retention_for(project), now_ns)
    }

    /// Checks values no deployment means: a retention longer than
    /// [`MAX_RETENTION_DAYS`] (0 is the way to say "forever").
    pub fn validate(&self) -> Result<(), String> {
        let too_long = |days: u32| days > MAX_RETENTION_DAYS;
        if too_long(self.retention_days) {
            return Err(format!(
                "store.retention_days = {} is more than {MAX_RETENTION_DAYS} days (100 years); use 0 to keep data forever",
                self.retention_days
            ));
        }
        for (project, days) in &self.retention_days_by_project {
            if too_long(*days) {
                return Err(format!(
                    "store.retention_days_by_project.{project} = {days} is more than {MAX_RETENTION_DAYS} days (100 years); use 0 to keep data forever"
                ));
            }
        }
        self.cold.validate(self.retention_days)?;
        if self.backend == loupe_backend::SpanBackend::Clickhouse {
            self.validate_clickhouse()?;
        }
        Ok(())
    }

    /// `backend = "clickhouse"`: a server is named, and nothing asks for
    /// what the embedded store alone does. Spans are kept for
    /// `retention_days` there too (one setting; a table TTL, so not per
    /// project), and the cold tier is ClickHouse's own storage policies.
    fn validate_clickhouse(&self) -> Result<(), String> {
        let Some(ch) = &self.clickhouse else {
            return Err(
                "store.backend = \"clickhouse\" needs a [store.clickhouse] section with url = \"http://host:8123\""
                    .into(),
            );
        };
        if ch.url.is_empty() {
            return Err(
                "store.clickhouse.url is required with store.backend = \"clickhouse\" (e.g. \"http://127.0.0.1:8123\")"
                    .into(),
            );
        }
        if ch.retention_days.is_some() {
            return Err(
                "store.clickhouse.retention_days: set [store] retention_days instead (it becomes the ClickHouse table's TTL)"
                    .into(),
            );
        }
        if !self.retention_days_by_project.is_empty() {
            return Err(
                "store.retention_days_by_project is not applied on ClickHouse (one table TTL for every project): remove it, or keep store.backend = \"embedded\""
                    .into(),
            );
        }
        if !self.cold.url.is_empty() {
            return Err(
                "store.cold is the embedded store's cold tier; with store.backend = \"clickhouse\" use ClickHouse's storage policies instead"
                    .into(),
            );
        }
        Ok(())
    }

    /// The ClickHouse settings `loupe serve` connects with: `[store.clickhouse]`
    /// with `retention_days` from `[store]`. `None` for the embedded backend.
    pub fn clickhouse_for_serve(&self) -> Option<loupe_backend::ClickHouseConfig> {
        if self.backend != loupe_backend::SpanBackend::Clickhouse {
            return None;
        }
        let mut ch = self.clickhouse.clone()?;
        ch.retention_days = Some(self.retention_days);
        Some(ch)
    }
}

/// Longest retention [`StoreConfig::validate`] accepts, in days (100
/// years); 0 keeps data forever.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_NS: i64 = 86_400 * 1_000_000_000;
    /// 2026-12-04T14:00:00Z.
    const NOW: i64 = 1_796_392_800 * 1_000_000_000;

    fn with_days(days: u32) -> StoreConfig {
        StoreConfig {
            retention_days: days,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn a_huge_retention_keeps_today_instead_of_overflowing() {
        // Regression (issue 14): 999999 days overflowed `days * DAY_NS`
        // and the cutoff landed after today, so everything was dropped.
        for days in [999_999, u32::MAX] {
            assert_eq!(
                with_days(days).retention_cutoff_day_ns("p", NOW),
                None,
                "{days}"
            );
        }
        // Long but representable: a cutoff far in the past, never after now.
        let cutoff = with_days(100_000).retention_cutoff_day_ns("p", NOW);
        assert!(
            cutoff.is_some_and(|c| c <= NOW - 100_000 * DAY_NS),
            "{cutoff:?}"
        );
    }

    #[test]
    fn cutoff_is_the_start_of_the_day_retention_days_ago() {
        let today = NOW - NOW.rem_euclid(DAY_NS);
        assert_eq!(
            with_days(1).retention_cutoff_day_ns("p", NOW),
            Some(today - DAY_NS)
        );
        assert_eq!(
            with_days(30).retention_cutoff_day_ns("p", NOW),
            Some(today - 30 * DAY_NS)
        );
        assert_eq!(with_days(0).retention_cutoff_day_ns("p", NOW), None);
        // Before 1970 the day start still rounds down.
        assert_eq!(
            with_days(1).retention_cutoff_day_ns("p", -1),
            Some(-2 * DAY_NS)
        );
    }

    #[test]
    fn validate_names_an_absurd_retention() {
        assert!(with_days(36_500).validate().is_ok());
        let err = with_days(999_999).validate().expect_err("refused");
        assert!(
            err.contains("store.retention_days") && err.contains("use 0"),
            "{err}"
        );
        let mut cfg = with_days(30);
        cfg.retention_days_by_project
            .insert("shop".into(), 1_000_000);
        let err = cfg.validate().expect_err("refused");
        assert!(err.contains("retention_days_by_project.shop"), "{err}");
    }
}
