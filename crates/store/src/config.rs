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
    /// Compact a (project, day) partition once it has this many parts. Default 4.
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
        }
    }
}

impl StoreConfig {
    /// Retention for a project in days (0 = keep forever).
    pub fn retention_for(&self, project: &str) -> u32 {
        self.retention_days_by_project
            .get(project)
            .copied()
            .unwrap_or(self.retention_days)
    }

    /// Start (ns) of the UTC day that holds `now_ns` minus the project's
    /// retention: whole days before it are dropped (parts, hour rollups).
    /// `None` when the project keeps everything.
    pub fn retention_cutoff_day_ns(&self, project: &str, now_ns: i64) -> Option<i64> {
        const DAY_NS: i64 = 86_400 * 1_000_000_000;
        let days = i64::from(self.retention_for(project));
        (days > 0).then(|| (now_ns - days * DAY_NS).div_euclid(DAY_NS) * DAY_NS)
    }
}
