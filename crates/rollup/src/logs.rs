//! Log record counts for `/metrics`: `log_records_total{project, service,
//! severity}`, a counter per (project, service, severity level) of the
//! records acknowledged. At start the store seeds it with the records it
//! holds ([`LogCounts::seed`]), so a restart does not begin at zero (the
//! count may drop after retention deleted old records, which Prometheus'
//! `rate()` and `increase()` handle as any counter reset).
//!
//! Bounded: at most [`MAX_SERVICES_PER_PROJECT`] services per project are
//! counted by name, later ones fold into `__other__`; records without a
//! service count as `""`, without a severity as `unspecified`.
//!
//! The same series are also counted per minute of arrival for the last
//! [`RECENT_MINUTES`] minutes ([`LogCounts::recent`]): the gauges alert
//! rules read ("more than 10 ERROR lines from the plugin daemon in 5
//! min"). Arrival time, not the lines' own: a line dated in the future or
//! the past still counts when it comes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use loupe_model::{LogRecord, Severity};

use crate::expose::{Format, sample};

/// Services counted by name per project; the rest are `__other__`.
pub const MAX_SERVICES_PER_PROJECT: usize = 100;

const FAMILY: &str = "log_records_total";

/// Minutes of per-minute counts kept.
pub const RECENT_MINUTES: i64 = 60;

/// A series: project, service, severity level.
pub type SeriesKey = (String, String, &'static str);
const OTHER: &str = "__other__";

#[derive(Default)]
struct State {
    counts: BTreeMap<SeriesKey, u64>,
    /// Per minute of arrival (minutes since the epoch), the last
    /// [`RECENT_MINUTES`].
    minutes: BTreeMap<i64, BTreeMap<SeriesKey, u64>>,
    services: BTreeMap<String, BTreeSet<String>>,
}

impl State {
    /// Counts one record in its series, and in `minute`'s when given.
    fn add(&mut self, project: &str, service: Option<&str>, severity: u8, minute: Option<i64>) {
        let service = service.unwrap_or_default().to_owned();
        let known = self.services.entry(project.to_owned()).or_default();
        let service = if known.contains(&service) {
            service
        } else if known.len() < MAX_SERVICES_PER_PROJECT {
            known.insert(service.clone());
            service
        } else {
            OTHER.to_owned()
        };
        let key = (project.to_owned(), service, level(severity));
        if let Some(minute) = minute {
            *self
                .minutes
                .entry(minute)
                .or_default()
                .entry(key.clone())
                .or_default() += 1;
        }
        *self.counts.entry(key).or_default() += 1;
    }
}

/// What [`LogCounts::seed`] counts of a stored record.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// Its project.
    pub project: &'a str,
    /// Its service, if any.
    pub service: Option<&'a str>,
    /// Its severity number.
    pub severity_number: u8,
    /// When it arrived (ns since the epoch).
    pub observed_ns: i64,
}

/// The counters (cheap to update: one lock per batch).
#[derive(Default)]
pub struct LogCounts {
    state: Mutex<State>,
}

fn level(n: u8) -> &'static str {
    Severity::of_number(n).map_or("unspecified", Severity::as_str)
}

impl LogCounts {
    /// Counts acknowledged records, arrived now.
    pub fn record(&self, records: &[LogRecord]) {
        self.record_at(records, loupe_model::time::now_ns());
    }

    /// Counts acknowledged records arrived at `now_ns`.
    pub fn record_at(&self, records: &[LogRecord], now_ns: i64) {
        let minute = now_ns.div_euclid(60_000_000_000);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Older minutes are of no use to any window.
        st.minutes = st.minutes.split_off(&(minute - RECENT_MINUTES + 1));
        for r in records {
            st.add(
                &r.project,
                r.service.as_deref(),
                r.severity_number,
                Some(minute),
            );
        }
    }

    /// Counts the records a data directory already holds when the process
    /// starts, so a restart does not begin at zero: each at its own arrival
    /// time, so those of the last [`RECENT_MINUTES`] minutes before `now_ns`
    /// feed the gauges too.
    pub fn seed<'a>(&self, stored: impl IntoIterator<Item = Stored<'a>>, now_ns: i64) {
        let now = now_ns.div_euclid(60_000_000_000);
        let recent = now - RECENT_MINUTES + 1..=now;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for r in stored {
            let minute = r.observed_ns.div_euclid(60_000_000_000);
            st.add(
                r.project,
                r.service,
                r.severity_number,
                recent.contains(&minute).then_some(minute),
            );
        }
    }

    /// Records per series that arrived in the last `minutes` minutes
    /// (the current one included) before `now_ns`, of `project` or all.
    pub fn recent(
        &self,
        project: Option<&str>,
        minutes: i64,
        now_ns: i64,
    ) -> Vec<(SeriesKey, u64)> {
        let now = now_ns.div_euclid(60_000_000_000);
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<SeriesKey, u64> = BTreeMap::new();
        for (_, series) in st
            .minutes
            .range(now - minutes.clamp(1, RECENT_MINUTES) + 1..=now)
        {
            for (key, n) in series {
                if project.is_none_or(|p| p == key.0) {
                    *out.entry(key.clone()).or_default() += n;
                }
            }
        }
        out.into_iter().collect()
    }

    /// The count of one series (0 when absent).
    pub fn get(&self, project: &str, service: &str, severity: &str) -> u64 {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.counts
            .iter()
            .find(|((p, s, l), _)| p == project && s == service && *l == severity)
            .map_or(0, |(_, n)| *n)
    }

    /// Appends the family (of `project`, or every project) to an
    /// exposition, before OpenMetrics' `# EOF`.
    pub fn render_into(&self, text: &mut String, format: Format, project: Option<&str>) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let series: Vec<_> = st
            .counts
            .iter()
            .filter(|((p, _, _), _)| project.is_none_or(|want| want == p))
            .collect();
        if series.is_empty() {
            return;
        }
        let eof = text.ends_with("# EOF\n");
        if eof {
            text.truncate(text.len() - "# EOF\n".len());
        }
        let family = match format {
            Format::OpenMetrics => FAMILY.trim_end_matches("_total"),
            Format::Prometheus => FAMILY,
        };
        let _ = writeln!(
            text,
            "# HELP {family} Log records received since the server started, by project, service and severity level."
        );
        let _ = writeln!(text, "# TYPE {family} counter");
        for ((p, service, severity), n) in series {
            let labels = [
                ("project".to_owned(), p.clone()),
                ("service".to_owned(), service.clone()),
                ("severity".to_owned(), (*severity).to_owned()),
            ];
            sample(text, FAMILY, &labels, None, *n as f64);
        }
        if eof {
            text.push_str("# EOF\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(project: &str, service: &str, severity: u8) -> LogRecord {
        let mut r = LogRecord::new(project, 0, "m");
        r.service = Some(service.into());
        r.severity_number = severity;
        r
    }

    #[test]
    fn seeded_records_count_in_totals_and_in_the_minutes_they_arrived() {
        const MIN: i64 = 60_000_000_000;
        let now = 1_000 * MIN + 5;
        let c = LogCounts::default();
        let stored = |observed_ns| Stored {
            project: "a",
            service: Some("plugin"),
            severity_number: 17,
            observed_ns,
        };
        c.seed(
            [stored(now - 2 * MIN), stored(now - 90 * MIN), stored(now)],
            now,
        );
        assert_eq!(c.get("a", "plugin", "error"), 3);
        let recent = c.recent(Some("a"), 5, now);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].1, 2, "the record of 90 minutes ago is not recent");
        c.record_at(&[rec("a", "plugin", 17)], now);
        assert_eq!(c.get("a", "plugin", "error"), 4);
        assert_eq!(c.recent(Some("a"), 60, now)[0].1, 3);
    }

    #[test]
    fn counts_by_service_and_level_fold_new_services_past_the_cap_and_render_per_project() {
        let c = LogCounts::default();
        c.record(&[
            rec("a", "plugin", 17),
            rec("a", "plugin", 18),
            rec("a", "api", 9),
        ]);
        c.record(&[rec("b", "api", 0)]);
        assert_eq!(c.get("a", "plugin", "error"), 2);
        assert_eq!(c.get("b", "api", "unspecified"), 1);
        let many: Vec<_> = (0..MAX_SERVICES_PER_PROJECT + 5)
            .map(|i| rec("c", &format!("s{i}"), 13))
            .collect();
        c.record(&many);
        assert_eq!(c.get("c", OTHER, "warn"), 5);
        let mut text = "# EOF\n".to_owned();
        c.render_into(&mut text, Format::OpenMetrics, Some("a"));
        assert!(text.starts_with("# HELP log_records "), "{text}");
        assert!(
            text.contains(
                "log_records_total{project=\"a\",service=\"plugin\",severity=\"error\"} 2"
            ),
            "{text}"
        );
        assert!(!text.contains("project=\"b\""), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn recent_counts_cover_only_the_window_and_forget_old_minutes() {
        const MIN: i64 = 60_000_000_000;
        let c = LogCounts::default();
        let t0 = 1_795_514_400_000_000_000;
        c.record_at(&[rec("a", "plugin", 17)], t0);
        c.record_at(&[rec("a", "plugin", 17), rec("b", "api", 17)], t0 + 3 * MIN);
        let key = ("a".to_owned(), "plugin".to_owned(), "error");
        assert_eq!(c.recent(Some("a"), 5, t0 + 4 * MIN), vec![(key.clone(), 2)]);
        assert_eq!(c.recent(Some("a"), 1, t0 + 4 * MIN), vec![]);
        assert_eq!(c.recent(None, 5, t0 + 3 * MIN).len(), 2);
        c.record_at(&[rec("a", "api", 9)], t0 + 2 * RECENT_MINUTES * MIN);
        assert_eq!(c.recent(Some("a"), RECENT_MINUTES, t0 + 4 * MIN), vec![]);
        assert_eq!(c.get("a", "plugin", "error"), 2, "the total keeps counting");
    }
}
