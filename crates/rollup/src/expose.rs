//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 rendering of the
//! cumulative rollups.
//!
//! The seed's metric names are kept verbatim so its dashboards work as
//! written: `workflow_execution_status_total{status}` (`success`, `failed`,
//! `unknown`), the histogram `workflow_tool_duration_seconds{tool_name, …}`,
//! `workflow_tool_success_total{tool_name}` and
//! `workflow_tool_failure_total{tool_name}`. The configured label tags are
//! added to the run-status counter and the tool histogram. Loupe's own
//! families are prefixed `loupe_`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::{BUCKET_BOUNDS_US, Measures, RollupKey, Rollups};

/// The exposition format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header: OpenMetrics when it names
    /// `application/openmetrics-text`, else the Prometheus text format.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Whether a self-metric only grows or may go down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfKind {
    /// Monotonic; the name ends in `_total`.
    Counter,
    /// A current value.
    Gauge,
}

/// A label-less metric supplied by the caller (store sizes, WAL lag).
#[derive(Debug, Clone, PartialEq)]
pub struct SelfMetric {
    /// Full sample name (counters end in `_total`).
    pub name: &'static str,
    /// `# HELP` text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: SelfKind,
    /// Current value.
    pub value: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

type Labels = Vec<(String, String)>;

#[derive(Default, Clone)]
struct Hist {
    counts: Vec<u64>,
    sum_us: u64,
}

struct Family {
    /// Sample name (counters with `_total`, histograms without suffix).
    name: &'static str,
    help: &'static str,
    kind: Kind,
    values: BTreeMap<Labels, f64>,
    hists: BTreeMap<Labels, Hist>,
}

impl Family {
    fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind,
            values: BTreeMap::new(),
            hists: BTreeMap::new(),
        }
    }

    fn add(&mut self, labels: Labels, v: f64) {
        *self.values.entry(labels).or_default() += v;
    }

    fn observe(&mut self, labels: Labels, m: &Measures) {
        let h = self.hists.entry(labels).or_default();
        let counts = m.hist.counts();
        if h.counts.len() < counts.len() {
            h.counts.resize(counts.len(), 0);
        }
        for (a, b) in h.counts.iter_mut().zip(counts) {
            *a += b;
        }
        h.sum_us += m.dur_sum_us;
    }
}

/// A Prometheus label name for a tag: invalid characters become `_`.
pub fn label_name(tag: &str) -> String {
    let mut out: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The seed's run status values: `success`, `failed`, `unknown`.
fn seed_status(status: &str) -> &'static str {
    match status {
        "ok" => "success",
        "error" => "failed",
        _ => "unknown",
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn with_tags(mut labels: Labels, names: &[String], key: &RollupKey) -> Labels {
    for (name, value) in names.iter().zip(&key.tags) {
        labels.push((name.clone(), value.clone()));
    }
    labels
}

/// Renders every metric family of the rollups (of one project when
/// `project` is set) plus `extra` self-metrics.
pub fn render(
    rollups: &Rollups,
    format: Format,
    project: Option<&str>,
    extra: &[SelfMetric],
) -> String {
    let tag_labels: Vec<String> = rollups
        .config()
        .labels
        .iter()
        .map(|t| label_name(t))
        .collect();
    let mut status = Family::new(
        "workflow_execution_status_total",
        Kind::Counter,
        "Finished workflow runs by status (success, failed, unknown).",
    );
    let mut tool_dur = Family::new(
        "workflow_tool_duration_seconds",
        Kind::Histogram,
        "Duration of finished tool calls, seconds.",
    );
    let mut tool_ok = Family::new(
        "workflow_tool_success_total",
        Kind::Counter,
        "Tool calls that succeeded.",
    );
    let mut tool_fail = Family::new(
        "workflow_tool_failure_total",
        Kind::Counter,
        "Tool calls that failed.",
    );
    let mut runs = Family::new(
        "loupe_runs_total",
        Kind::Counter,
        "Finished workflow runs per app, workflow and status.",
    );
    let mut run_dur = Family::new(
        "loupe_run_duration_seconds",
        Kind::Histogram,
        "Duration of finished workflow runs per app and workflow, seconds.",
    );
    let mut node_dur = Family::new(
        "loupe_node_duration_seconds",
        Kind::Histogram,
        "Duration of finished non-workflow spans per kind and node type, seconds.",
    );
    let mut spans = Family::new(
        "loupe_spans_total",
        Kind::Counter,
        "Finished spans per kind and status.",
    );
    let mut running = Family::new(
        "loupe_spans_running",
        Kind::Gauge,
        "Spans started and not finished yet, per kind.",
    );
    let mut tokens = Family::new(
        "loupe_llm_tokens_total",
        Kind::Counter,
        "LLM tokens per model and direction (input, output).",
    );
    let mut cost = Family::new(
        "loupe_llm_cost_total",
        Kind::Counter,
        "LLM cost per model, in the source's currency units.",
    );
    let mut errors = Family::new(
        "loupe_errors_total",
        Kind::Counter,
        "Failed spans per kind and error class.",
    );
    // (project, signature) → failed spans; rendered top-N per project below.
    let mut signatures: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let wanted = rollups
        .totals()
        .iter()
        .filter(|(k, _)| project.is_none_or(|p| k.project == p));
    for (key, m) in wanted {
        let project = key.project.as_str();
        let kind = key.span_kind.as_str();
        if m.running > 0 {
            running.add(
                l(&[("project", project), ("span_kind", kind)]),
                m.running as f64,
            );
        }
        if m.count == 0 {
            continue;
        }
        let count = m.count as f64;
        spans.add(
            l(&[
                ("project", project),
                ("span_kind", kind),
                ("status", &key.status),
            ]),
            count,
        );
        if m.errors > 0 {
            errors.add(
                l(&[
                    ("project", project),
                    ("span_kind", kind),
                    ("error_class", &key.error_class),
                ]),
                m.errors as f64,
            );
            if !key.error_signature.is_empty() {
                *signatures
                    .entry((project, key.error_signature.as_str()))
                    .or_default() += m.errors;
            }
        }
        if !key.model_name.is_empty() {
            let model = key.model_name.as_str();
            for (dir, v) in [("input", m.tokens_in), ("output", m.tokens_out)] {
                tokens.add(
                    l(&[("project", project), ("model_name", model), ("type", dir)]),
                    v as f64,
                );
            }
            cost.add(
                l(&[("project", project), ("model_name", model)]),
                m.cost_micros as f64 / 1e6,
            );
        }
        match kind {
            "workflow" => {
                let s = seed_status(&key.status);
                status.add(with_tags(l(&[("status", s)]), &tag_labels, key), count);
                let app = [
                    ("project", project),
                    ("app_id", key.app_id.as_str()),
                    ("workflow_id", key.workflow_id.as_str()),
                ];
                let mut with_status = l(&app);
                with_status.push(("status".into(), s.into()));
                runs.add(with_status, count);
                run_dur.observe(l(&app), m);
            }
            other => {
                if other == "tool" {
                    let tool = key.tool_name.as_str();
                    tool_dur.observe(with_tags(l(&[("tool_name", tool)]), &tag_labels, key), m);
                    match key.status.as_str() {
                        "ok" => tool_ok.add(l(&[("tool_name", tool)]), count),
                        "error" => tool_fail.add(l(&[("tool_name", tool)]), count),
                        _ => {}
                    }
                }
                node_dur.observe(
                    l(&[
                        ("project", project),
                        ("span_kind", other),
                        ("node_type", key.node_type.as_str()),
                    ]),
                    m,
                );
            }
        }
    }
    let by_signature = top_signatures(signatures);
    let mut out = String::new();
    for family in [
        status,
        tool_dur,
        tool_ok,
        tool_fail,
        runs,
        run_dur,
        node_dur,
        spans,
        running,
        tokens,
        cost,
        errors,
        by_signature,
    ] {
        write_family(&mut out, &family, format);
    }
    let own = [
        SelfMetric {
            name: "loupe_ingest_spans_total",
            help: "Spans received by the write path since the data directory was created.",
            kind: SelfKind::Counter,
            value: rollups.ingested_spans() as f64,
        },
        SelfMetric {
            name: "loupe_rollup_folded_series_total",
            help: "Distinct rollup series folded into __other__ by the cardinality limit.",
            kind: SelfKind::Counter,
            value: rollups.folded_series() as f64,
        },
        SelfMetric {
            name: "loupe_rollup_series",
            help: "Cumulative rollup series held in memory.",
            kind: SelfKind::Gauge,
            value: rollups.totals().len() as f64,
        },
    ];
    for m in own.iter().chain(extra) {
        let kind = match m.kind {
            SelfKind::Counter => Kind::Counter,
            SelfKind::Gauge => Kind::Gauge,
        };
        let mut f = Family::new(m.name, kind, m.help);
        f.add(Vec::new(), m.value);
        write_family(&mut out, &f, format);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Signatures labelled per project on `loupe_error_signatures_total`; the
/// rest are summed under [`crate::OTHER`], so the series count is bounded
/// whatever the messages.
pub const TOP_SIGNATURES: usize = 20;

/// Failed spans per (project, signature): the [`TOP_SIGNATURES`] most
/// frequent of each project by name, the rest as `__other__`.
fn top_signatures(counts: BTreeMap<(&str, &str), u64>) -> Family {
    let mut family = Family::new(
        "loupe_error_signatures_total",
        Kind::Counter,
        "Failed spans per error signature (the most frequent per project; the rest as __other__).",
    );
    let mut per_project: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for ((project, sig), n) in counts {
        per_project.entry(project).or_default().push((sig, n));
    }
    for (project, mut sigs) in per_project {
        // Most frequent first; ties by text so the choice is stable.
        sigs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut other = 0;
        for (i, (sig, n)) in sigs.into_iter().enumerate() {
            if i < TOP_SIGNATURES && sig != crate::OTHER {
                family.add(
                    l(&[("project", project), ("error_signature", sig)]),
                    n as f64,
                );
            } else {
                other += n;
            }
        }
        if other > 0 {
            family.add(
                l(&[("project", project), ("error_signature", crate::OTHER)]),
                other as f64,
            );
        }
    }
    family
}

fn write_family(out: &mut String, f: &Family, format: Format) {
    if f.values.is_empty() && f.hists.is_empty() {
        return;
    }
    let kind = match f.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    let family = match (format, f.kind) {
        (Format::OpenMetrics, Kind::Counter) => f.name.strip_suffix("_total").unwrap_or(f.name),
        _ => f.name,
    };
    let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {family} {help}");
    let _ = writeln!(out, "# TYPE {family} {kind}");
    for (labels, v) in &f.values {
        sample(out, f.name, labels, None, *v);
    }
    for (labels, h) in &f.hists {
        let mut cumulative = 0u64;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = BUCKET_BOUNDS_US
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| seconds(*b));
            sample(
                out,
                &format!("{}_bucket", f.name),
                labels,
                Some(&le),
                cumulative as f64,
            );
        }
        let sum = h.sum_us as f64 / 1e6;
        sample(out, &format!("{}_sum", f.name), labels, None, sum);
        sample(
            out,
            &format!("{}_count", f.name),
            labels,
            None,
            cumulative as f64,
        );
    }
}

/// A bucket bound in seconds, as a float literal (`0.0025`, `1.0`).
fn seconds(us: u64) -> String {
    format!("{:?}", us as f64 / 1e6)
}

pub(crate) fn sample(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let all = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(le.map(|le| ("le", le)));
        for (k, v) in all {
            if !first {
                out.push(',');
            }
            first = false;
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}
