//! The sample history Loupe keeps of Dify's table sizes
//! (`dify-health.json` in the data directory), and the growth rates and
//! projections computed from it.
//!
//! Bounded: each point keeps the database size and, per table, total bytes
//! and live rows of the execution tables and the [`TRACKED`] largest others;
//! at most [`MAX_POINTS`] points, thinned from the old end (every other
//! point of the older half goes), so recent history stays dense and a year
//! still fits in a few hundred kilobytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::catalog::{EXECUTION_TABLES, Sample};
use crate::Error;

/// Points kept at most.
pub const MAX_POINTS: usize = 2000;

/// Largest tables tracked per point besides the execution tables.
pub const TRACKED: usize = 20;

/// The window of the growth rate: the samples of the last 7 days.
pub const GROWTH_WINDOW_SECS: i64 = 7 * 86_400;

/// A table at one point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TablePoint {
    /// Total bytes (heap + TOAST + indexes).
    pub bytes: i64,
    /// Live rows.
    pub rows: i64,
}

/// One point of the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Unix seconds.
    pub at: i64,
    /// Database size.
    pub database_bytes: i64,
    /// Tracked tables.
    pub tables: BTreeMap<String, TablePoint>,
    /// The latency probe, ms (see [`Sample::probe_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_ms: Option<f64>,
    /// Sessions running a query.
    #[serde(default)]
    pub active: i64,
    /// Sessions waiting for a lock on an execution table.
    #[serde(default)]
    pub lock_waits: i64,
}

impl Point {
    /// The point a sample gives.
    pub fn of(sample: &Sample) -> Self {
        let mut tables = BTreeMap::new();
        // `sample.tables` is largest first.
        let mut others = 0;
        for t in &sample.tables {
            let execution = EXECUTION_TABLES.contains(&t.table.as_str());
            if !execution {
                if others >= TRACKED {
                    continue;
                }
                others += 1;
            }
            tables.insert(
                t.table.clone(),
                TablePoint {
                    bytes: t.total_bytes,
                    rows: t.live_rows,
                },
            );
        }
        Self {
            at: sample.at,
            database_bytes: sample.database_bytes,
            tables,
            probe_ms: sample.probe_ms,
            active: sample.active(),
            lock_waits: sample.waiting(),
        }
    }
}

/// The persisted history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthHistory {
    /// File format version (1).
    pub version: u32,
    /// The database these points are of (`name/oid`).
    pub database: Option<String>,
    /// Points, oldest first.
    pub points: Vec<Point>,
}

/// Growth of one table (or the database) over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Bytes now.
    pub bytes: i64,
    /// Live rows now.
    pub rows: i64,
    /// Least-squares slope of the size over the window, bytes per day
    /// (negative when it shrank, e.g. after `VACUUM FULL`).
    pub bytes_per_day: f64,
    /// Rows per day, the same way.
    pub rows_per_day: f64,
    /// Projected size in 30 days at that rate (never below 0).
    pub projected_30d_bytes: f64,
    /// Projected size in 90 days.
    pub projected_90d_bytes: f64,
    /// Hours of samples the rate is computed over (short windows are noisy).
    pub window_hours: f64,
    /// Samples in the window.
    pub samples: usize,
}

impl HealthHistory {
    /// `dify-health.json` in the data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("dify-health.json")
    }

    /// Loads the history; a missing file is an empty history.
    pub fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
                path: path.to_owned(),
                reason: format!("not a health history: {e}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                version: 1,
                ..Self::default()
            }),
            Err(e) => Err(Error::Checkpoint {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes the history atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Checkpoint {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        loupe_fsutil::write_atomic(path, &bytes).map_err(|e| Error::Checkpoint {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Adds a sample's point for `database`. Points of another database
    /// are dropped (they say nothing about this one); a point older than
    /// the last is ignored; past [`MAX_POINTS`] the older half is thinned.
    pub fn push(&mut self, database: &str, point: Point) {
        self.version = 1;
        if self.database.as_deref() != Some(database) {
            self.points.clear();
            self.database = Some(database.to_owned());
        }
        if self.points.last().is_some_and(|p| p.at >= point.at) {
            return;
        }
        self.points.push(point);
        if self.points.len() > MAX_POINTS {
            let half = self.points.len() / 2;
            let mut i = 0;
            self.points.retain(|_| {
                let keep = i >= half || i % 2 == 0;
                i += 1;
                keep
            });
        }
    }

    /// Points of the last `secs` seconds before the newest point.
    pub fn recent(&self, secs: i64) -> &[Point] {
        let Some(last) = self.points.last() else {
            return &[];
        };
        let from = last.at - secs;
        let start = self.points.partition_point(|p| p.at < from);
        &self.points[start..]
    }

    /// Growth of `table` (`None`: the whole database) over
    /// [`GROWTH_WINDOW_SECS`]; `None` without any point of it.
    pub fn growth(&self, table: Option<&str>) -> Option<Growth> {
        let series: Vec<(i64, i64, i64)> = self
            .recent(GROWTH_WINDOW_SECS)
            .iter()
            .filter_map(|p| match table {
                None => Some((p.at, p.database_bytes, 0)),
                Some(t) => p.tables.get(t).map(|x| (p.at, x.bytes, x.rows)),
            })
            .collect();
        let &(last_at, bytes, rows) = series.last()?;
        let first_at = series.first().map_or(last_at, |s| s.0);
        let per_day = |f: fn(&(i64, i64, i64)) -> i64| slope(&series, f) * 86_400.0;
        let bytes_per_day = per_day(|s| s.1);
        let rows_per_day = per_day(|s| s.2);
        let project = |days: f64| (bytes as f64 + bytes_per_day * days).max(0.0);
        Some(Growth {
            bytes,
            rows,
            bytes_per_day,
            rows_per_day,
            projected_30d_bytes: project(30.0),
            projected_90d_bytes: project(90.0),
            window_hours: (last_at - first_at) as f64 / 3600.0,
            samples: series.len(),
        })
    }
}

/// Least-squares slope of `y(s)` over `s.0` (per second); 0 with fewer
/// than two distinct times.
fn slope(series: &[(i64, i64, i64)], y: fn(&(i64, i64, i64)) -> i64) -> f64 {
    if series.len() < 2 {
        return 0.0;
    }
    let n = series.len() as f64;
    // Relative to the first point, so the squares stay small.
    let t0 = series[0].0;
    let xs: Vec<f64> = series.iter().map(|s| (s.0 - t0) as f64).collect();
    let ys: Vec<f64> = series.iter().map(|s| y(s) as f64).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if sxx == 0.0 {
        return 0.0;
    }
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    sxy / sxx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, bytes: i64) -> Point {
        let mut tables = BTreeMap::new();
        tables.insert(
            "workflow_node_executions".to_owned(),
            TablePoint {
                bytes,
                rows: bytes / 100,
            },
        );
        Point {
            at,
            database_bytes: bytes * 2,
            tables,
            ..Point::default()
        }
    }

    #[test]
    fn growth_is_the_least_squares_slope_and_projects_linearly() {
        let mut h = HealthHistory::default();
        // 1 GB per day, sampled every hour for two days.
        for i in 0..=48 {
            h.push(
                "dify/1",
                point(i * 3600, 10_000_000_000 + i * 1_000_000_000 / 24),
            );
        }
        let g = h.growth(Some("workflow_node_executions")).expect("growth");
        assert!((g.bytes_per_day - 1e9).abs() < 1.0, "{g:?}");
        assert!((g.rows_per_day - 1e7).abs() < 1.0, "{g:?}");
        assert_eq!(g.bytes, 12_000_000_000);
        assert!((g.projected_30d_bytes - 42e9).abs() < 10.0);
        assert!((g.projected_90d_bytes - 102e9).abs() < 10.0);
        assert_eq!(g.window_hours, 48.0);
        let db = h.growth(None).expect("database");
        assert!((db.bytes_per_day - 2e9).abs() < 2.0);
        assert!(h.growth(Some("absent")).is_none());
    }

    #[test]
    fn the_history_is_bounded_keeps_recent_points_and_restarts_for_another_database() {
        let mut h = HealthHistory::default();
        for i in 0..(MAX_POINTS as i64 * 3) {
            h.push("dify/1", point(i * 60, i));
        }
        assert!(h.points.len() <= MAX_POINTS);
        assert_eq!(
            h.points.last().map(|p| p.at),
            Some((MAX_POINTS as i64 * 3 - 1) * 60)
        );
        assert_eq!(
            h.points.first().map(|p| p.at),
            Some(0),
            "the oldest point stays"
        );
        assert!(h.points.windows(2).all(|w| w[0].at < w[1].at));
        h.push("dify/1", point(0, 1));
        assert_eq!(
            h.points.last().map(|p| p.at),
            Some((MAX_POINTS as i64 * 3 - 1) * 60),
            "older ignored"
        );
        h.push("other/2", point(5, 1));
        assert_eq!(h.points.len(), 1);
    }

    #[test]
    fn a_single_point_has_no_rate_and_projects_its_size() {
        let mut h = HealthHistory::default();
        h.push("dify/1", point(100, 500));
        let g = h.growth(Some("workflow_node_executions")).expect("growth");
        assert_eq!(g.bytes_per_day, 0.0);
        assert_eq!(g.projected_90d_bytes, 500.0);
    }
}
