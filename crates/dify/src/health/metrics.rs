//! The `dify_database_*` families on `/metrics`: the latest health sample
//! per table (`table` label), the growth computed from the history, and
//! the latest cleanup run. Gauges only (plus two counters of the
//! collector itself), rendered in the Prometheus text format or
//! OpenMetrics; `crates/loupe/tests/it/dify_health.rs` runs
//! `promtool check metrics` on them. docs/DIFY.md lists every family.

use std::fmt::Write;

use super::catalog::{EXECUTION_TABLES, Sample};
use super::cleanups::CleanupHistory;
use super::history::HealthHistory;

/// Label value escaping of the exposition formats.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One family: its samples as label pairs and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The sample name (counters end in `_total`).
    pub name: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Samples: labels and value.
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

struct Out {
    families: Vec<Family>,
}

impl Out {
    fn family(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        samples: &[(Vec<(&'static str, String)>, f64)],
    ) {
        if samples.is_empty() {
            return;
        }
        self.families.push(Family {
            name,
            kind,
            help,
            samples: samples.to_vec(),
        });
    }
}

fn write_family(text: &mut String, f: &Family, openmetrics: bool) {
    let family = if f.kind == "counter" && openmetrics {
        f.name.strip_suffix("_total").unwrap_or(f.name)
    } else {
        f.name
    };
    let _ = writeln!(text, "# HELP {family} {}", f.help);
    let _ = writeln!(text, "# TYPE {family} {}", f.kind);
    for (labels, value) in &f.samples {
        let _ = write!(text, "{}", f.name);
        if !labels.is_empty() {
            let parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(text, "{{{}}}", parts.join(","));
        }
        let _ = writeln!(text, " {}", number(*value));
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Appends the families to `text` (before a trailing `# EOF`, which it
/// keeps last, in OpenMetrics). `counts`: samples taken and failed.
pub fn render(
    text: &mut String,
    sample: Option<&Sample>,
    history: &HealthHistory,
    cleanups: &CleanupHistory,
    counts: (u64, u64),
    openmetrics: bool,
) {
    let eof = text.ends_with("# EOF\n");
    if eof {
        text.truncate(text.len() - "# EOF\n".len());
    }
    for f in families(sample, history, cleanups, counts) {
        write_family(text, &f, openmetrics);
    }
    if eof {
        text.push_str("# EOF\n");
    }
}

/// The families of the latest sample, the history and the cleanups.
pub fn families(
    sample: Option<&Sample>,
    history: &HealthHistory,
    cleanups: &CleanupHistory,
    counts: (u64, u64),
) -> Vec<Family> {
    let mut o = Out {
        families: Vec::new(),
    };
    o.family(
        "dify_database_samples_total",
        "counter",
        "Health samples of Dify's database taken by Loupe.",
        &[(vec![], counts.0 as f64)],
    );
    o.family(
        "dify_database_sample_failures_total",
        "counter",
        "Health samples of Dify's database that failed (see the server log).",
        &[(vec![], counts.1 as f64)],
    );
    if let Some(s) = sample {
        sample_families(&mut o, s);
    }
    growth_families(&mut o, history);
    cleanup_families(&mut o, cleanups);
    o.families
}

/// How a per-table family reads a table's stats.
type Stat = fn(&super::catalog::TableStats) -> Option<f64>;

type Samples = Vec<(Vec<(&'static str, String)>, f64)>;

fn per_table(s: &Sample, f: impl Fn(&super::catalog::TableStats) -> Option<f64>) -> Samples {
    s.tables
        .iter()
        .filter_map(|t| f(t).map(|v| (vec![("table", t.table.clone())], v)))
        .collect()
}

fn sample_families(o: &mut Out, s: &Sample) {
    o.family(
        "dify_database_sample_timestamp_seconds",
        "gauge",
        "When the latest health sample of Dify's database was taken (Unix seconds).",
        &[(vec![], s.at as f64)],
    );
    if let Some(ms) = s.probe_ms {
        o.family(
            "dify_database_probe_seconds",
            "gauge",
            "Latency of a cheap indexed query on Dify's database (the newest 20 runs), at the latest sample.",
            &[(vec![], ms / 1000.0)],
        );
    }
    o.family(
        "dify_database_size_bytes",
        "gauge",
        "Size of Dify's database (pg_database_size).",
        &[(vec![], s.database_bytes as f64)],
    );
    let tables: [(&str, &str, Stat); 7] = [
        (
            "dify_database_table_size_bytes",
            "Total size of a Dify table: heap, TOAST and indexes (pg_total_relation_size).",
            |t| Some(t.total_bytes as f64),
        ),
        (
            "dify_database_table_heap_bytes",
            "Heap size of a Dify table (pg_table_size without TOAST).",
            |t| Some(t.heap_bytes as f64),
        ),
        (
            "dify_database_table_toast_bytes",
            "TOAST size of a Dify table (large column values).",
            |t| Some(t.toast_bytes as f64),
        ),
        (
            "dify_database_table_index_bytes",
            "Index size of a Dify table (pg_indexes_size).",
            |t| Some(t.index_bytes as f64),
        ),
        (
            "dify_database_table_rows",
            "Live rows of a Dify table (n_live_tup).",
            |t| Some(t.live_rows as f64),
        ),
        (
            "dify_database_table_dead_rows",
            "Dead rows of a Dify table awaiting vacuum (n_dead_tup).",
            |t| Some(t.dead_rows as f64),
        ),
        (
            "dify_database_table_oldest_row_timestamp_seconds",
            "created_at of the oldest row of a Dify execution table (Unix seconds).",
            |t| t.oldest_row,
        ),
    ];
    for (name, help, f) in tables {
        o.family(name, "gauge", help, &per_table(s, f));
    }
    let mut vacuum = Samples::new();
    let mut analyze = Samples::new();
    for t in &s.tables {
        for (kind, v, a) in [
            ("manual", t.last_vacuum, t.last_analyze),
            ("auto", t.last_autovacuum, t.last_autoanalyze),
        ] {
            if let Some(v) = v {
                vacuum.push((vec![("table", t.table.clone()), ("kind", kind.into())], v));
            }
            if let Some(a) = a {
                analyze.push((vec![("table", t.table.clone()), ("kind", kind.into())], a));
            }
        }
    }
    o.family(
        "dify_database_table_last_vacuum_timestamp_seconds",
        "gauge",
        "Last VACUUM of a Dify table, kind manual or auto (Unix seconds).",
        &vacuum,
    );
    o.family(
        "dify_database_table_last_analyze_timestamp_seconds",
        "gauge",
        "Last ANALYZE of a Dify table, kind manual or auto (Unix seconds).",
        &analyze,
    );
    let connections: Samples = s
        .connections
        .iter()
        .map(|(state, n)| (vec![("state", state.clone())], *n as f64))
        .collect();
    o.family(
        "dify_database_connections",
        "gauge",
        "Sessions on Dify's database by state (pg_stat_activity).",
        &connections,
    );
    o.family(
        "dify_database_max_connections",
        "gauge",
        "The server's max_connections.",
        &[(vec![], s.max_connections as f64)],
    );
    // Every execution table present gets a series (0 when quiet), so an
    // alert compares a value rather than an absence.
    let present: Vec<&str> = EXECUTION_TABLES
        .iter()
        .copied()
        .filter(|t| s.table(t).is_some())
        .collect();
    let mut long = Samples::new();
    let mut longest = Samples::new();
    let mut waits = Samples::new();
    let mut wait_max = Samples::new();
    for t in &present {
        let qs: Vec<_> = s
            .long_queries
            .iter()
            .filter(|q| q.tables.iter().any(|x| x == t))
            .collect();
        long.push((vec![("table", (*t).to_owned())], qs.len() as f64));
        longest.push((
            vec![("table", (*t).to_owned())],
            qs.iter().map(|q| q.seconds).fold(0.0, f64::max),
        ));
        let w = s.lock_waits.iter().find(|w| w.table == *t);
        waits.push((
            vec![("table", (*t).to_owned())],
            w.map_or(0.0, |w| w.waiting as f64),
        ));
        wait_max.push((
            vec![("table", (*t).to_owned())],
            w.map_or(0.0, |w| w.max_seconds),
        ));
    }
    o.family(
        "dify_database_long_queries",
        "gauge",
        "Queries on a Dify execution table running longer than [dify] long_query.",
        &long,
    );
    o.family(
        "dify_database_longest_query_seconds",
        "gauge",
        "Age of the longest-running query on a Dify execution table (0 = none over the threshold).",
        &longest,
    );
    o.family(
        "dify_database_lock_waits",
        "gauge",
        "Sessions waiting for a lock on a Dify execution table.",
        &waits,
    );
    o.family(
        "dify_database_lock_wait_max_seconds",
        "gauge",
        "The longest current lock wait on a Dify execution table.",
        &wait_max,
    );
    if let Some(r) = &s.recommendation {
        o.family(
            "dify_database_cleanup_candidate_bytes",
            "gauge",
            "Estimated bytes a cleanup of rows older than older_than_days would free (rows x average row size, as the dry run estimates).",
            &[(
                vec![
                    ("table", r.table.clone()),
                    ("older_than_days", r.older_than_days.to_string()),
                ],
                r.bytes,
            )],
        );
        o.family(
            "dify_database_cleanup_candidate_rows",
            "gauge",
            "Rows older than older_than_days (the planner's estimate).",
            &[(
                vec![
                    ("table", r.table.clone()),
                    ("older_than_days", r.older_than_days.to_string()),
                ],
                r.rows,
            )],
        );
    }
}

fn growth_families(o: &mut Out, history: &HealthHistory) {
    let Some(last) = history.points.last() else {
        return;
    };
    let mut rate = Samples::new();
    let mut rows = Samples::new();
    let mut projected = Samples::new();
    for t in last.tables.keys() {
        if let Some(g) = history.growth(Some(t)) {
            rate.push((vec![("table", t.clone())], g.bytes_per_day));
            rows.push((vec![("table", t.clone())], g.rows_per_day));
            for (days, v) in [("30", g.projected_30d_bytes), ("90", g.projected_90d_bytes)] {
                projected.push((vec![("table", t.clone()), ("days", days.into())], v));
            }
        }
    }
    o.family(
        "dify_database_table_growth_bytes_per_day",
        "gauge",
        "Growth of a Dify table over the last 7 days of samples (least squares), bytes per day.",
        &rate,
    );
    o.family(
        "dify_database_table_growth_rows_per_day",
        "gauge",
        "Growth of a Dify table's live rows over the last 7 days of samples, rows per day.",
        &rows,
    );
    o.family(
        "dify_database_table_projected_size_bytes",
        "gauge",
        "Projected size of a Dify table in 30 or 90 days at the current growth.",
        &projected,
    );
    if let Some(g) = history.growth(None) {
        o.family(
            "dify_database_growth_bytes_per_day",
            "gauge",
            "Growth of Dify's database over the last 7 days of samples, bytes per day.",
            &[(vec![], g.bytes_per_day)],
        );
    }
}

fn cleanup_families(o: &mut Out, cleanups: &CleanupHistory) {
    // The latest run that deleted (a dry run frees nothing).
    let Some(last) = cleanups
        .runs
        .iter()
        .rev()
        .find(|r| !r.report.dry_run && r.error.is_none())
    else {
        return;
    };
    let r = &last.report;
    let at = chrono::DateTime::parse_from_rfc3339(&last.finished_at)
        .map(|t| t.timestamp() as f64)
        .unwrap_or(0.0);
    let scope = || ("scope", r.scope.clone());
    o.family(
        "dify_database_cleanup_last_timestamp_seconds",
        "gauge",
        "When the latest cleanup of Dify's tables (not a dry run) finished (Unix seconds).",
        &[(vec![scope()], at)],
    );
    let deleted: Samples = r
        .deleted
        .iter()
        .map(|(t, n)| (vec![("table", t.clone())], *n as f64))
        .collect();
    o.family(
        "dify_database_cleanup_last_deleted_rows",
        "gauge",
        "Rows the latest cleanup deleted, per table.",
        &deleted,
    );
    o.family(
        "dify_database_cleanup_last_freed_bytes",
        "gauge",
        "Bytes the latest cleanup freed (estimated: rows x average row size; reused after VACUUM).",
        &[(vec![scope()], r.estimated_bytes_freed as f64)],
    );
    o.family(
        "dify_database_cleanup_last_duration_seconds",
        "gauge",
        "Wall time of the latest cleanup.",
        &[(vec![scope()], r.elapsed_ms as f64 / 1000.0)],
    );
    o.family(
        "dify_database_cleanup_last_skipped",
        "gauge",
        "Runs or messages the latest cleanup left in place, by reason.",
        &[
            (
                vec![("reason", "unverified".into())],
                r.skipped_unverified as f64,
            ),
            (vec![("reason", "locked".into())], r.skipped_locked as f64),
            (vec![("reason", "open".into())], r.skipped_open as f64),
        ],
    );
    o.family(
        "dify_database_cleanup_last_probe_p95_seconds",
        "gauge",
        "95th percentile of the latency probe of Dify's database while the latest cleanup ran.",
        &[(vec![scope()], r.db_latency.p95_ms / 1000.0)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_keeps_eof_last_and_counters_lose_total_in_the_family_name() {
        let mut text = "x 1\n# EOF\n".to_owned();
        render(
            &mut text,
            None,
            &HealthHistory::default(),
            &CleanupHistory::default(),
            (3, 1),
            true,
        );
        assert!(
            text.ends_with("dify_database_sample_failures_total 1\n# EOF\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE dify_database_samples counter\n"),
            "{text}"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.25), "0.25");
    }
}
