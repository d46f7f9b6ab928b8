//! `settings.json`: the settings every process opening one data directory
//! must agree on, recorded with the data.
//!
//! Retention decides what the maintenance pass deletes, and the rollup
//! labels decide what the hour tier can answer. Before this file existed, a
//! CLI opened a server's directory with its own (often default) values: a
//! `loupe dify sync` applied 30-day retention to a directory the server
//! keeps forever and deleted the backfill it had just written. Now every
//! writable open records the values it runs with, and the binary's opener
//! makes other commands adopt the recorded ones (`crates/loupe/src/open.rs`).
//!
//! The cold tier (`[store.cold]`: url, hot days, S3 endpoint, region and
//! path style, never the keys) is recorded too, so `loupe query
//! --data-dir` reads a directory whose parts are partly cold without the
//! server's config file (keys then come from the `AWS_*` environment).
//!
//! Format: JSON, `format_version` 1, replaced atomically (temp file, fsync,
//! rename, directory fsync) like the manifest. `cold` is written only when a
//! cold tier is configured, so other directories stay readable by builds
//! before it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, StoreConfig};

/// File name inside the data directory.
pub const FILE: &str = "settings.json";
const FORMAT_VERSION: u32 = 1;

/// The recorded settings of a data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSettings {
    /// Format of this file.
    pub format_version: u32,
    /// `[store] retention_days`.
    pub retention_days: u32,
    /// `[store] retention_days_by_project`.
    pub retention_days_by_project: BTreeMap<String, u32>,
    /// `[metrics] labels`.
    pub metrics_labels: Vec<String>,
    /// `[store.cold]` without its keys; absent without a cold tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold: Option<RecordedCold>,
}

/// The recorded part of `[store.cold]`: where the tier is, not how to sign
/// in to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedCold {
    /// `url`.
    pub url: String,
    /// `hot_days`.
    pub hot_days: u32,
    /// `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `path_style`.
    #[serde(default)]
    pub path_style: bool,
}

/// One setting whose recorded value differs from a command's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The setting as written in `loupe.toml`.
    pub setting: &'static str,
    /// The value recorded with the data directory.
    pub recorded: String,
    /// The value the command was configured with.
    pub configured: String,
}

impl DirSettings {
    /// The settings a store opened with `config` and `rollup` runs with.
    pub fn of(config: &StoreConfig, rollup: &loupe_rollup::RollupConfig) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            retention_days: config.retention_days,
            retention_days_by_project: config.retention_days_by_project.clone(),
            metrics_labels: rollup.labels.clone(),
            cold: config.cold.enabled().then(|| RecordedCold {
                url: config.cold.url.clone(),
                hot_days: config.cold.hot_days,
                endpoint: config.cold.endpoint.clone(),
                region: config.cold.region.clone(),
                path_style: config.cold.path_style,
            }),
        }
    }

    /// The recorded settings of `data_dir`; `None` when nothing was recorded
    /// (a new directory, or one written before this file existed).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the file exists but does not parse or has a
    /// format this build does not read; [`Error::Io`] when it cannot be read.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, Error> {
        let path = data_dir.join(FILE);
        let body = match fs::read(&path) {
            Ok(body) => body,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let settings: Self = serde_json::from_slice(&body).map_err(|e| Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason: e.to_string(),
        })?;
        if settings.format_version != FORMAT_VERSION {
            return Err(Error::Corrupt {
                path,
                offset: 0,
                reason: format!(
                    "settings format {} is not supported by this build (expects {FORMAT_VERSION})",
                    settings.format_version
                ),
            });
        }
        Ok(Some(settings))
    }

    /// Records the settings in `data_dir`, atomically.
    pub(crate) fn store(&self, data_dir: &Path) -> Result<(), Error> {
        let path = data_dir.join(FILE);
        let body = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("cannot encode {FILE}: {e}")))?;
        loupe_fsutil::write_atomic(&path, &body).map_err(|e| Error::io(&path, e))
    }

    /// Replaces the values of `config` and `rollup` with the recorded ones
    /// and returns those that differed.
    pub fn adopt(
        &self,
        config: &mut StoreConfig,
        rollup: &mut loupe_rollup::RollupConfig,
    ) -> Vec<Difference> {
        let mut out = Vec::new();
        let mut note = |setting, recorded: String, configured: String| {
            if recorded != configured {
                out.push(Difference {
                    setting,
                    recorded,
                    configured,
                });
            }
        };
        note(
            "store.retention_days",
            days(self.retention_days),
            days(config.retention_days),
        );
        note(
            "store.retention_days_by_project",
            format!("{:?}", self.retention_days_by_project),
            format!("{:?}", config.retention_days_by_project),
        );
        note(
            "metrics.labels",
            format!("{:?}", self.metrics_labels),
            format!("{:?}", rollup.labels),
        );
        let where_ = |c: &crate::ColdConfig| {
            format!(
                "{:?} (endpoint {:?}, region {:?}, path_style {})",
                c.url, c.endpoint, c.region, c.path_style
            )
        };
        if let Some(cold) = &self.cold {
            let recorded = crate::ColdConfig {
                url: cold.url.clone(),
                hot_days: cold.hot_days,
                endpoint: cold.endpoint.clone(),
                region: cold.region.clone(),
                path_style: cold.path_style,
                ..config.cold.clone()
            };
            note("store.cold", where_(&recorded), where_(&config.cold));
            // The keys and the cache stay the command's own.
            config.cold = recorded;
        }
        config.retention_days = self.retention_days;
        config
            .retention_days_by_project
            .clone_from(&self.retention_days_by_project);
        rollup.labels.clone_from(&self.metrics_labels);
        out
    }

    /// Projects (or the default, as `"*"`) whose retention `new` shortens
    /// compared with `self`: data older than the new window will be
    /// dropped by the next maintenance pass.
    pub fn shortened_by(&self, new: &Self) -> Vec<(String, u32, u32)> {
        let shorter = |old: u32, new: u32| new != 0 && (old == 0 || new < old);
        let mut out = Vec::new();
        if shorter(self.retention_days, new.retention_days) {
            out.push(("*".to_owned(), self.retention_days, new.retention_days));
        }
        let projects: std::collections::BTreeSet<&String> = self
            .retention_days_by_project
            .keys()
            .chain(new.retention_days_by_project.keys())
            .collect();
        for p in projects {
            let old = self.retention_for(p);
            let now = new.retention_for(p);
            if shorter(old, now) && !(old == self.retention_days && now == new.retention_days) {
                out.push((p.clone(), old, now));
            }
        }
        out
    }

    fn retention_for(&self, project: &str) -> u32 {
        crate::retention::days_for(
            &self.retention_days_by_project,
            self.retention_days,
            project,
        )
    }
}

fn days(d: u32) -> String {
    if d == 0 {
        "0 (forever)".to_owned()
    } else {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(days: u32) -> StoreConfig {
        StoreConfig {
            retention_days: days,
            ..StoreConfig::default()
        }
    }

    #[test]
    fn recorded_settings_round_trip_and_are_adopted_with_the_differences_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(DirSettings::load(dir.path()).expect("load"), None);
        let rollup = loupe_rollup::RollupConfig {
            labels: vec!["category".into(), "user_tier".into()],
            ..Default::default()
        };
        let recorded = DirSettings::of(&config(0), &rollup);
        recorded.store(dir.path()).expect("store");
        let back = DirSettings::load(dir.path()).expect("load").expect("some");
        assert_eq!(back, recorded);

        let mut mine = config(30);
        let mut my_rollup = loupe_rollup::RollupConfig::default();
        let diffs = back.adopt(&mut mine, &mut my_rollup);
        assert_eq!(mine.retention_days, 0);
        assert_eq!(my_rollup.labels, ["category", "user_tier"]);
        let names: Vec<_> = diffs.iter().map(|d| d.setting).collect();
        assert_eq!(names, ["store.retention_days", "metrics.labels"]);
        assert_eq!(diffs[0].recorded, "0 (forever)");
        assert_eq!(diffs[0].configured, "30");
        // Without a cold tier nothing is written about one (older builds
        // read the file).
        let text = fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(!text.contains("cold"), "{text}");
    }

    #[test]
    fn the_cold_tier_is_recorded_without_its_keys_and_adopted_by_commands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = config(30);
        server.cold = crate::ColdConfig {
            url: "s3://archive/loupe".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: Some("id".into()),
            secret_access_key: Some("hunter2".into()),
            path_style: true,
            ..crate::ColdConfig::default()
        };
        let rollup = loupe_rollup::RollupConfig::default();
        DirSettings::of(&server, &rollup)
            .store(dir.path())
            .expect("store");
        let text = fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(
            text.contains("s3://archive/loupe")
                && !text.contains("hunter2")
                && !text.contains("\"id\""),
            "{text}"
        );
        let back = DirSettings::load(dir.path()).expect("load").expect("some");
        let mut cli = config(30);
        cli.cold.cache_bytes = 5 << 20;
        let diffs = back.adopt(&mut cli, &mut loupe_rollup::RollupConfig::default());
        assert_eq!(cli.cold.url, "s3://archive/loupe");
        assert!(cli.cold.path_style);
        assert_eq!(cli.cold.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(cli.cold.secret_access_key, None, "keys are not recorded");
        assert_eq!(
            cli.cold.cache_bytes,
            5 << 20,
            "the cache stays the command's"
        );
        assert_eq!(
            diffs.iter().map(|d| d.setting).collect::<Vec<_>>(),
            ["store.cold"]
        );
    }

    #[test]
    fn a_damaged_settings_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(FILE), b"{half").expect("write");
        let err = DirSettings::load(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains(FILE), "{err}");
    }

    #[test]
    fn shortening_retention_is_reported_per_project_and_lengthening_is_not() {
        let rollup = loupe_rollup::RollupConfig::default();
        let forever = DirSettings::of(&config(0), &rollup);
        let thirty = DirSettings::of(&config(30), &rollup);
        assert_eq!(forever.shortened_by(&thirty), [("*".to_owned(), 0, 30)]);
        assert!(thirty.shortened_by(&forever).is_empty());
        let mut shop = config(30);
        shop.retention_days_by_project.insert("shop".into(), 7);
        let shop = DirSettings::of(&shop, &rollup);
        assert_eq!(thirty.shortened_by(&shop), [("shop".to_owned(), 30, 7)]);
    }
}
