//! Log record counts for `/metrics`: `log_records_total{project, service,
//! severity}`, a counter per (project, service, severity level) of the
//! records acknowledged since the process started (a restart resets it,
//! which Prometheus' `rate()` and `increase()` handle as any counter reset).
//!
//! Bounded: at most [`MAX_SERVICES_PER_PROJECT`] services per project are
//! counted by name, later ones fold into `__other__`; records without a
//! service count as `""`, without a severity as `unspecified`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;

use loupe_model::{LogRecord, Severity};

use crate::expose::{Format, sample};

/// Services counted by name per project; the rest are `__other__`.
pub const MAX_SERVICES_PER_PROJECT: usize = 100;

const FAMILY: &str = "log_records_total";
const OTHER: &str = "__other__";

#[derive(Default)]
struct State {
    counts: BTreeMap<(String, String, &'static str), u64>,
    services: BTreeMap<String, BTreeSet<String>>,
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
    /// Counts acknowledged records.
    pub fn record(&self, records: &[LogRecord]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for r in records {
            let service = r.service.clone().unwrap_or_default();
            let known = st.services.entry(r.project.clone()).or_default();
            let service = if known.contains(&service) {
                service
            } else if known.len() < MAX_SERVICES_PER_PROJECT {
                known.insert(service.clone());
                service
            } else {
                OTHER.to_owned()
            };
            *st.counts
                .entry((r.project.clone(), service, level(r.severity_number)))
                .or_default() += 1;
        }
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
}
