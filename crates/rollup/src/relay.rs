//! OTLP metrics relayed to `/metrics`: the points senders push to Loupe
//! (Dify's GenAI histograms and counters), kept as current series and
//! rendered beside the rollups' families.
//!
//! Deltas add to their series, cumulative points replace it (a histogram
//! whose bounds changed starts over). Each series is labelled with its
//! project and the point's attributes (names made Prometheus-safe). The
//! series count is capped; points of new series beyond the cap are dropped
//! and counted. Memory only: after a restart the series start again, which
//! Prometheus reads as a counter reset.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use loupe_model::{MetricKind, MetricPoint, MetricValue};

use crate::expose::{Format, label_name, sample};

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

struct Family {
    kind: MetricKind,
    help: String,
    series: BTreeMap<Labels, Value>,
}

#[derive(Default)]
struct State {
    /// Prometheus family name → family.
    families: BTreeMap<String, Family>,
    series: usize,
    dropped: u64,
    points: u64,
}

/// The relayed series. Shared by the ingest route and the `/metrics` render.
pub struct Relay {
    max_series: usize,
    state: Mutex<State>,
}

/// What one [`Relay::record`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Points added to a series.
    pub kept: usize,
    /// Points of new series over the cap, dropped.
    pub dropped: usize,
}

impl Relay {
    /// A relay of at most `max_series` series.
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `points` of `project`.
    pub fn record(&self, project: &str, points: Vec<MetricPoint>) -> Recorded {
        let mut st = self.lock();
        let mut done = Recorded::default();
        for point in points {
            let name = family_name(&point);
            let family_help = help(&point);
            let mut labels: Labels = vec![("project".into(), project.to_owned())];
            for (key, value) in point.labels {
                let key = label_name(&key);
                if key != "project" && key != "le" && !labels.iter().any(|(k, _)| *k == key) {
                    labels.push((key, value));
                }
            }
            labels.sort();
            let value = match point.value {
                MetricValue::Number(n) => Value::Number(n),
                MetricValue::Histogram {
                    bounds,
                    counts,
                    sum,
                    count,
                } => Value::Histogram {
                    bounds,
                    counts,
                    sum,
                    count,
                },
            };
            let at_cap = st.series >= self.max_series;
            let family = st.families.entry(name).or_insert_with(|| Family {
                kind: point.kind,
                help: family_help,
                series: BTreeMap::new(),
            });
            if family.kind != point.kind {
                // One name, another kind: a different metric by the same
                // name; the first kind seen keeps it.
                st.dropped += 1;
                done.dropped += 1;
                continue;
            }
            let new = !family.series.contains_key(&labels);
            if new && at_cap {
                st.dropped += 1;
                done.dropped += 1;
                continue;
            }
            match family.series.get_mut(&labels) {
                Some(old) if !point.cumulative => add(old, value),
                Some(old) => *old = value,
                None => {
                    family.series.insert(labels, value);
                }
            }
            if new {
                st.series += 1;
            }
            st.points += 1;
            done.kept += 1;
        }
        done
    }

    /// Series held now.
    pub fn series(&self) -> usize {
        self.lock().series
    }

    /// Appends the relayed families (of one project when `project` is set)
    /// to an exposition, before OpenMetrics' closing `# EOF`.
    pub fn render_into(&self, text: &mut String, format: Format, project: Option<&str>) {
        let eof = text.ends_with("# EOF\n");
        if eof {
            text.truncate(text.len() - "# EOF\n".len());
        }
        let st = self.lock();
        for (name, family) in &st.families {
            let series: Vec<_> = family
                .series
                .iter()
                .filter(|(labels, _)| {
                    project.is_none_or(|p| labels.iter().any(|(k, v)| k == "project" && v == p))
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let (kind, family_name) = match family.kind {
                MetricKind::Counter => (
                    "counter",
                    match format {
                        Format::OpenMetrics => name.strip_suffix("_total").unwrap_or(name),
                        Format::Prometheus => name.as_str(),
                    },
                ),
                MetricKind::Gauge => ("gauge", name.as_str()),
                MetricKind::Histogram => ("histogram", name.as_str()),
            };
            let _ = writeln!(text, "# HELP {family_name} {}", family.help);
            let _ = writeln!(text, "# TYPE {family_name} {kind}");
            for (labels, value) in series {
                match value {
                    Value::Number(n) => sample(text, name, labels, None, *n),
                    Value::Histogram {
                        bounds,
                        counts,
                        sum,
                        count,
                    } => {
                        let mut cumulative = 0u64;
                        for (i, c) in counts.iter().enumerate() {
                            cumulative = cumulative.saturating_add(*c);
                            let le = bounds
                                .get(i)
                                .map_or_else(|| "+Inf".to_owned(), |b| format!("{b:?}"));
                            sample(
                                text,
                                &format!("{name}_bucket"),
                                labels,
                                Some(&le),
                                cumulative as f64,
                            );
                        }
                        sample(text, &format!("{name}_sum"), labels, None, *sum);
                        sample(text, &format!("{name}_count"), labels, None, *count as f64);
                    }
                }
            }
        }
        if project.is_none() {
            let counter = match format {
                Format::OpenMetrics => "loupe_otlp_metric_series_dropped",
                Format::Prometheus => "loupe_otlp_metric_series_dropped_total",
            };
            let _ = writeln!(
                text,
                "# HELP {counter} OTLP metric points dropped: new series over ingest.max_metric_series, or a name reused with another kind."
            );
            let _ = writeln!(text, "# TYPE {counter} counter");
            sample(
                text,
                "loupe_otlp_metric_series_dropped_total",
                &[],
                None,
                st.dropped as f64,
            );
            let _ = writeln!(
                text,
                "# HELP loupe_otlp_metric_series OTLP metric series relayed to /metrics."
            );
            let _ = writeln!(text, "# TYPE loupe_otlp_metric_series gauge");
            sample(
                text,
                "loupe_otlp_metric_series",
                &[],
                None,
                st.series as f64,
            );
        }
        if eof {
            text.push_str("# EOF\n");
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Relay")
            .field("series", &st.series)
            .field("points", &st.points)
            .finish()
    }
}

fn add(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::Number(a), Value::Number(b)) => *a += b,
        (
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            },
            Value::Histogram {
                bounds: b2,
                counts: c2,
                sum: s2,
                count: n2,
            },
        ) if *bounds == b2 => {
            for (a, b) in counts.iter_mut().zip(c2) {
                *a = a.saturating_add(b);
            }
            *sum += s2;
            *count = count.saturating_add(n2);
        }
        (old, new) => *old = new,
    }
}

/// The Prometheus family name: the metric name made safe, counters ending
/// in `_total`; names that would shadow Loupe's own families get `otlp_`.
fn family_name(point: &MetricPoint) -> String {
    let mut name = label_name(&point.name);
    if name.starts_with("loupe_") || name.starts_with("workflow_") {
        name.insert_str(0, "otlp_");
    }
    if point.kind == MetricKind::Counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

fn help(point: &MetricPoint) -> String {
    let mut help = if point.description.is_empty() {
        format!("{} (relayed from OTLP)", point.name)
    } else {
        format!("{} (relayed from OTLP: {})", point.description, point.name)
    };
    if !point.unit.is_empty() {
        let _ = write!(help, ", unit {}", point.unit);
    }
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(cumulative: bool, counts: Vec<u64>, sum: f64) -> MetricPoint {
        MetricPoint {
            name: "gen_ai.client.operation.duration".into(),
            description: "GenAI operation duration".into(),
            unit: "s".into(),
            kind: MetricKind::Histogram,
            cumulative,
            labels: vec![("dify.app_id".into(), "app-1".into())],
            value: MetricValue::Histogram {
                bounds: vec![0.5, 1.0],
                count: counts.iter().sum(),
                counts,
                sum,
            },
        }
    }

    fn counter(cumulative: bool, n: f64, app: &str) -> MetricPoint {
        MetricPoint {
            name: "gen_ai.client.token.usage".into(),
            description: String::new(),
            unit: "{token}".into(),
            kind: MetricKind::Counter,
            cumulative,
            labels: vec![("dify.app_id".into(), app.into())],
            value: MetricValue::Number(n),
        }
    }

    #[test]
    fn deltas_add_cumulative_points_replace_and_the_render_is_prometheus_text() {
        let relay = Relay::new(100);
        relay.record(
            "p",
            vec![
                hist(false, vec![1, 0, 0], 0.2),
                hist(false, vec![0, 1, 1], 3.0),
            ],
        );
        relay.record(
            "p",
            vec![counter(true, 10.0, "a"), counter(true, 25.0, "a")],
        );
        let mut text = String::new();
        relay.render_into(&mut text, Format::Prometheus, None);
        assert!(
            text.contains("# TYPE gen_ai_client_operation_duration histogram"),
            "{text}"
        );
        assert!(text.contains(r#"gen_ai_client_operation_duration_bucket{dify_app_id="app-1",project="p",le="0.5"} 1"#), "{text}");
        assert!(text.contains(r#"gen_ai_client_operation_duration_bucket{dify_app_id="app-1",project="p",le="+Inf"} 3"#), "{text}");
        assert!(
            text.contains(
                r#"gen_ai_client_operation_duration_sum{dify_app_id="app-1",project="p"} 3.2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"gen_ai_client_token_usage_total{dify_app_id="a",project="p"} 25"#),
            "{text}"
        );
    }

    #[test]
    fn the_series_cap_drops_new_series_and_counts_them() {
        let relay = Relay::new(2);
        let done = relay.record(
            "p",
            vec![
                counter(false, 1.0, "a"),
                counter(false, 1.0, "b"),
                counter(false, 1.0, "c"),
                counter(false, 1.0, "a"),
            ],
        );
        assert_eq!(
            done,
            Recorded {
                kept: 3,
                dropped: 1
            }
        );
        assert_eq!(relay.series(), 2);
        let mut text = String::new();
        relay.render_into(&mut text, Format::Prometheus, None);
        assert!(
            text.contains("loupe_otlp_metric_series_dropped_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"gen_ai_client_token_usage_total{dify_app_id="a",project="p"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn one_project_sees_only_its_series_and_openmetrics_ends_once() {
        let relay = Relay::new(10);
        relay.record("a", vec![counter(false, 1.0, "x")]);
        relay.record("b", vec![counter(false, 2.0, "x")]);
        let mut text = "# EOF\n".to_owned();
        relay.render_into(&mut text, Format::OpenMetrics, Some("a"));
        assert!(text.contains(r#"project="a""#));
        assert!(!text.contains(r#"project="b""#));
        assert!(
            text.contains("# TYPE gen_ai_client_token_usage counter"),
            "{text}"
        );
        assert!(
            text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1,
            "{text}"
        );
    }

    #[test]
    fn names_that_would_shadow_loupes_own_families_are_prefixed() {
        let mut p = counter(false, 1.0, "a");
        p.name = "loupe_runs".into();
        assert_eq!(family_name(&p), "otlp_loupe_runs_total");
    }
}
