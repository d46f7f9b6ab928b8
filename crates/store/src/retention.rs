//! Retention changed at run time (the console's Settings page), and what a
//! retention would drop.
//!
//! `loupe.toml` sets `[store] retention_days` and per-project overrides;
//! a project `loupe.toml` does not name may get its own retention over the
//! API, kept in `retention.json` in the data directory and in force at
//! once: the maintenance pass, the hour tier and the rollup router read
//! [`Store::retention_cutoff_day_ns`]. `settings.json` records the
//! effective values, so a CLI opening the directory adopts them too.
//!
//! `loupe.toml` wins: an entry in `retention.json` for a project the config
//! now names is not used (logged at open), and the API refuses to set one.
//!
//! Format: JSON, `format_version` 1, `projects` → days (0 = forever),
//! replaced atomically.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::parts::day_of;
use crate::settings::DirSettings;
use crate::{Error, MAX_RETENTION_DAYS, Store, StoreConfig};

/// File name inside the data directory.
pub const FILE: &str = "retention.json";
const FORMAT_VERSION: u32 = 1;
/// Most projects the file may name (bounds a hostile or damaged file).
const MAX_PROJECTS: usize = 10_000;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    format_version: u32,
    projects: BTreeMap<String, u32>,
}

/// The per-project retention set at run time in `data_dir` (empty when
/// none was set).
///
/// # Errors
/// [`Error::Corrupt`] naming the file when it does not parse, has another
/// format or an impossible value; [`Error::Io`] when it cannot be read.
pub fn load(data_dir: &Path) -> Result<BTreeMap<String, u32>, Error> {
    let path = data_dir.join(FILE);
    let body = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let corrupt = |reason: String| Error::Corrupt {
        path: path.clone(),
        offset: 0,
        reason,
    };
    let file: RetentionFile = serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
    if file.format_version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format {} is not supported by this build (expects {FORMAT_VERSION})",
            file.format_version
        )));
    }
    if file.projects.len() > MAX_PROJECTS {
        return Err(corrupt(format!("more than {MAX_PROJECTS} projects")));
    }
    if let Some((p, d)) = file.projects.iter().find(|(_, d)| **d > MAX_RETENTION_DAYS) {
        return Err(corrupt(format!(
            "project {p:?}: {d} days is more than {MAX_RETENTION_DAYS}"
        )));
    }
    Ok(file.projects)
}

/// The entries of `set` for projects `config` does not name, logging those
/// it names with another value.
pub(crate) fn usable(config: &StoreConfig, set: BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    set.into_iter()
        .filter(|(project, days)| {
            let named = config.retention_days_by_project.get(project);
            // A CLI adopted the server's recorded values: equal, no conflict.
            if let Some(configured) = named.filter(|c| *c != days) {
                tracing::warn!(
                    project = %project,
                    set_in_console = days,
                    configured = configured,
                    "loupe.toml now sets this project's retention; the value set over the API ({FILE}) is not used"
                );
            }
            named.is_none()
        })
        .collect()
}

/// A project's retention (days, 0 = forever) under a default and per-project
/// overrides: what `loupe.toml` says ([`StoreConfig::retention_for`]) and
/// what a data directory recorded (`settings.json`).
pub(crate) fn days_for(by_project: &BTreeMap<String, u32>, default: u32, project: &str) -> u32 {
    by_project.get(project).copied().unwrap_or(default)
}

/// Start (ns) of the first UTC day a retention of `days` keeps at `now_ns`
/// (`None`: everything is kept).
pub(crate) fn cutoff_day_ns(days: u32, now_ns: i64) -> Option<i64> {
    const DAY_NS: i64 = 86_400 * 1_000_000_000;
    let days = i64::from(days);
    if days == 0 {
        return None;
    }
    let cutoff = now_ns.checked_sub(days.checked_mul(DAY_NS)?)?;
    // The start of the cutoff's UTC day, which is never after it.
    cutoff.checked_sub(cutoff.rem_euclid(DAY_NS))
}

/// Whether a part of `day` whose newest span starts at `max_time` is
/// dropped under `cutoff`: whole days before the cutoff's day only.
pub(crate) fn expired(cutoff: Option<i64>, day: &str, max_time: i64) -> bool {
    cutoff.is_some_and(|c| max_time < c && day < day_of(c).as_str())
}

/// What the maintenance pass would drop for a project under a retention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionPreview {
    /// The retention (days, 0 = forever).
    pub days: u32,
    /// First day kept (ns, UTC midnight); `None`: everything is kept.
    pub cutoff_ns: Option<i64>,
    /// Span parts dropped (both tiers).
    pub parts: usize,
    /// Span rows in them.
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Log parts dropped.
    pub log_parts: usize,
    /// Log records in them.
    pub log_records: u64,
    /// Oldest span start stored for the project (ns), if any.
    pub oldest_ns: Option<i64>,
}

impl Store {
    /// Days `project` keeps (0 = forever): as set at run time, else as
    /// configured.
    pub fn retention_for(&self, project: &str) -> u32 {
        self.inner
            .retention
            .read()
            .get(project)
            .copied()
            .unwrap_or_else(|| self.inner.config.retention_for(project))
    }

    /// Start (ns) of the first UTC day `project` keeps at `now_ns`: whole
    /// days before it are dropped (parts, hour rollups). `None`: the
    /// project keeps everything.
    pub fn retention_cutoff_day_ns(&self, project: &str, now_ns: i64) -> Option<i64> {
        cutoff_day_ns(self.retention_for(project), now_ns)
    }

    /// The per-project retention set at run time (`retention.json`).
    pub fn retention_set(&self) -> BTreeMap<String, u32> {
        self.inner.retention.read().clone()
    }

    /// The per-project retention in force: the config's overrides, and
    /// those set at run time for the projects it does not name.
    pub fn retention_by_project(&self) -> BTreeMap<String, u32> {
        effective(&self.inner.config, &self.inner.retention.read())
    }

    /// What a retention of `days` for `project` would drop at `now_ns`,
    /// from the parts as they are now.
    pub fn retention_preview(&self, project: &str, days: u32, now_ns: i64) -> RetentionPreview {
        let cutoff = cutoff_day_ns(days, now_ns);
        let mut out = RetentionPreview {
            days,
            cutoff_ns: cutoff,
            ..RetentionPreview::default()
        };
        {
            let st = self.inner.state.lock();
            for p in st.parts.iter().filter(|p| p.meta.project == project) {
                out.oldest_ns = Some(
                    out.oldest_ns
                        .map_or(p.meta.min_time, |o| o.min(p.meta.min_time)),
                );
                if expired(cutoff, &p.meta.day, p.meta.max_time) {
                    out.parts += 1;
                    out.rows += p.meta.rows;
                    out.bytes += p.meta.bytes;
                }
            }
        }
        let (log_parts, log_records) = self.inner.logs.expired_by(project, cutoff);
        out.log_parts = log_parts;
        out.log_records = log_records;
        out
    }

    /// Sets (`Some`) or removes (`None`: back to the configured default)
    /// `project`'s retention, durably and at once: the next maintenance
    /// pass drops what it no longer keeps. `settings.json` is re-recorded
    /// with the effective values.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a read-only store, a project `loupe.toml`
    /// names, or more than [`MAX_RETENTION_DAYS`]; [`Error::Io`] when a
    /// file cannot be written (nothing changed then).
    pub fn set_retention(&self, project: &str, days: Option<u32>) -> Result<(), Error> {
        if self.inner.read_only {
            return Err(Error::Invalid(
                "this store is read-only; change retention on the server".into(),
            ));
        }
        if let Some(configured) = self.inner.config.retention_days_by_project.get(project) {
            return Err(Error::Invalid(format!(
                "loupe.toml sets this project's retention ([store.retention_days_by_project] {project} = {configured}); change it there"
            )));
        }
        if let Some(d) = days
            && d > MAX_RETENTION_DAYS
        {
            return Err(Error::Invalid(format!(
                "{d} days is more than {MAX_RETENTION_DAYS} (100 years); use 0 to keep data forever"
            )));
        }
        let dir = &self.inner.config.data_dir;
        // One writer at a time, and the files before the map: a failed
        // write changes nothing.
        let mut live = self.inner.retention.write();
        let mut next = live.clone();
        match days {
            Some(d) => next.insert(project.to_owned(), d),
            None => next.remove(project),
        };
        if next.len() > MAX_PROJECTS {
            return Err(Error::Invalid(format!(
                "retention is set for {MAX_PROJECTS} projects already"
            )));
        }
        let body = serde_json::to_vec_pretty(&RetentionFile {
            format_version: FORMAT_VERSION,
            projects: next.clone(),
        })
        .map_err(|e| Error::Internal(format!("cannot encode {FILE}: {e}")))?;
        let path = dir.join(FILE);
        loupe_fsutil::write_atomic(&path, &body).map_err(|e| Error::io(&path, e))?;
        if let Some(mut recorded) = DirSettings::load(dir)? {
            recorded.retention_days_by_project = effective(&self.inner.config, &next);
            recorded.store(dir)?;
        }
        *live = next;
        tracing::info!(project = %project, days = ?days, "retention changed over the API");
        Ok(())
    }
}

/// The per-project retention in force: the config's, and the run-time set
/// for the projects it does not name.
pub(crate) fn effective(
    config: &StoreConfig,
    set: &BTreeMap<String, u32>,
) -> BTreeMap<String, u32> {
    let mut out = config.retention_days_by_project.clone();
    for (p, d) in set {
        out.entry(p.clone()).or_insert(*d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_hostile_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("absent").is_empty());
        std::fs::write(dir.path().join(FILE), b"{not json").expect("write");
        let err = load(dir.path()).expect_err("corrupt").to_string();
        assert!(err.contains(FILE), "{err}");
        std::fs::write(
            dir.path().join(FILE),
            br#"{"format_version":1,"projects":{"a":99999999}}"#,
        )
        .expect("write");
        let err = load(dir.path()).expect_err("too long").to_string();
        assert!(err.contains("\"a\""), "{err}");
    }

    #[test]
    fn whole_days_before_the_cutoff_day_expire() {
        const DAY: i64 = 86_400 * 1_000_000_000;
        let now = 20_000 * DAY + DAY / 2;
        let cutoff = cutoff_day_ns(10, now);
        assert_eq!(cutoff, Some(19_990 * DAY));
        let day = |d: i64| day_of(d * DAY);
        assert!(expired(cutoff, &day(19_989), 19_989 * DAY + 5));
        assert!(!expired(cutoff, &day(19_990), 19_990 * DAY + 5));
        assert!(!expired(None, &day(1), DAY));
        assert_eq!(cutoff_day_ns(u32::MAX, now), None, "forever, not overflow");
    }
}
