//! Root-cause analysis: "what changed", in one call, without an LLM.
//!
//! Given a **target** (a query-language filter: `status=error`,
//! `duration>2s`, …) inside a **scope** (the population the target is a
//! share of; by default every span but whole runs), a **window** and a
//! **baseline** (by default the window of the same length just before),
//! [`analyse`] answers:
//!
//! - **attribution** ([`Finding`]): the dimension values and combinations
//!   (app, workflow version, node, node type, tool, model, provider, error
//!   class and signature, every business tag) whose target rate rose, ranked
//!   by the extra target spans they explain, with support, the rate in both
//!   periods, the lift over the baseline rate and a one-sided binomial test
//!   (Bonferroni-corrected over every candidate, with a minimum support), so
//!   noise on small counts is not reported. Findings are chosen greedily:
//!   each next one explains what the earlier ones do not;
//! - **when** it started and ended: the segment of the finding's rate series
//!   that differs most from the rest;
//! - **exemplars**: runs in the window that show the finding, with the path
//!   of nodes that led to the failure;
//! - **co-occurrence**: failures that happen together in one run, and which
//!   comes first.
//!
//! Everything is read through [`loupe_backend::SpanReader::query`] with a few group-by
//! plans per period ([`table`]); plans over rollup dimensions with
//! `status=error` are answered by the store's hour rollups without reading
//! spans. The rest is counting in memory.

#![warn(missing_docs)]

use loupe_backend::StoreError;
use serde::{Deserialize, Serialize};

mod engine;
pub mod stats;
pub mod table;
mod text;

pub use engine::analyse;
pub use text::render_text;

/// What to analyse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RcaRequest {
    /// Query-language filter of the spans whose rise is explained
    /// (default `status=error`). A filter only: no `|` stages.
    pub target: String,
    /// Query-language filter of the population the target is a share of
    /// (default [`DEFAULT_SCOPE`]: nodes, where causes live, not the run
    /// and root spans that fail with them).
    pub scope: Option<String>,
    /// Window start, ns since the epoch.
    pub from_ns: i64,
    /// Window end (exclusive), ns since the epoch.
    pub to_ns: i64,
    /// Baseline start; default: the window's length before `from_ns`.
    pub baseline_from_ns: Option<i64>,
    /// Baseline end; default `from_ns`.
    pub baseline_to_ns: Option<i64>,
    /// Dimensions (query-language fields) to attribute to; default
    /// [`DEFAULT_DIMENSIONS`] plus every tag found in the window.
    pub dimensions: Option<Vec<String>>,
    /// Tag keys analysed besides those found in the window.
    pub tags: Vec<String>,
    /// Findings reported at most (1–20, default 5).
    pub max_findings: usize,
    /// Target spans a finding needs in the window (default 5).
    pub min_support: u64,
    /// Family-wise false-positive rate (default 0.01).
    pub alpha: f64,
}

impl Default for RcaRequest {
    fn default() -> Self {
        Self {
            target: "status=error".into(),
            scope: None,
            from_ns: 0,
            to_ns: 0,
            baseline_from_ns: None,
            baseline_to_ns: None,
            dimensions: None,
            tags: Vec::new(),
            max_findings: 5,
            min_support: 5,
            alpha: 0.01,
        }
    }
}

/// Default scope: nodes (spans with a parent), not runs or trace roots,
/// which fail whenever a node does and would count each failure twice.
pub const DEFAULT_SCOPE: &str = "exists parent_span_id span_kind!=workflow";

/// Dimensions analysed by default (besides tags). When two describe the
/// same spans (`tool_name=payment` and the node `name=Charge card`), the
/// one listed first is reported.
pub const DEFAULT_DIMENSIONS: &[&str] = &[
    "tool_name",
    "model_name",
    "model_provider",
    "node_type",
    "name",
    "app_name",
    "workflow_version",
    "span_kind",
];

/// The error dimensions, counted among failed target spans.
pub const ERROR_DIMENSIONS: &[&str] = &["error_class", "error_signature"];

/// Why an analysis could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RcaError {
    /// The request is wrong (bad filter, empty window); the caller's fault.
    #[error("{0}")]
    Invalid(String),
    /// Reading failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A time range `[from_ns, to_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Start, ns since the epoch.
    pub from_ns: i64,
    /// End (exclusive).
    pub to_ns: i64,
}

/// Population and target counts of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// Spans in scope (matching the finding's conditions).
    pub spans: u64,
    /// Of those, spans matching the target.
    pub target: u64,
    /// `target / spans` (0 when empty).
    pub rate: f64,
}

impl Period {
    fn new(spans: u64, target: u64) -> Self {
        let rate = if spans == 0 {
            0.0
        } else {
            target as f64 / spans as f64
        };
        Self {
            spans,
            target,
            rate,
        }
    }
}

/// One condition of a finding: a field and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Query-language field (`tool_name`, `tags.category`,
    /// `error_signature`).
    pub field: String,
    /// Its value.
    pub value: String,
}

/// A run showing a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemplar {
    /// Run id (or trace id when the run has none).
    pub run_id: String,
    /// Trace id.
    pub trace_id: Option<String>,
    /// The target span of this run that matches the finding.
    pub span_id: String,
    /// Its start, ns since the epoch.
    pub start_ns: Option<i64>,
    /// Its name.
    pub name: Option<String>,
    /// Its error message.
    pub error_message: Option<String>,
    /// Nodes of the run in start order up to and including that span.
    pub path: Vec<String>,
}

/// A set of conditions whose target rate rose, and by how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The conditions, all of which hold.
    pub conditions: Vec<Condition>,
    /// A query-language filter selecting exactly these spans.
    pub filter: String,
    /// Counts in the window (not explained by earlier findings).
    pub window: Period,
    /// Counts in the baseline.
    pub baseline: Period,
    /// Target spans expected in the window at the baseline rate.
    pub expected: f64,
    /// Target spans above that expectation.
    pub excess: f64,
    /// `excess` over the scope's excess, when the scope's target rose.
    pub share_of_change: Option<f64>,
    /// Window target spans of this finding over all window target spans.
    pub share_of_target: f64,
    /// Window rate over the (smoothed) baseline rate.
    pub lift: f64,
    /// One-sided binomial p-value, Bonferroni-corrected (capped at 1).
    pub p_value: f64,
    /// When the rate left its baseline (start of the changed segment).
    pub started_ns: Option<i64>,
    /// When it came back (end of the changed segment), if inside the range.
    pub ended_ns: Option<i64>,
    /// Runs in the window that show it.
    pub exemplars: Vec<Exemplar>,
    /// The finding in one sentence.
    pub sentence: String,
}

/// Two failures that happen in the same runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoOccurrence {
    /// The first failure (`<node>: <error class>`).
    pub first: String,
    /// The other failure.
    pub then: String,
    /// Runs in which both failed.
    pub runs: u64,
    /// Of the runs where `first` failed, the share where `then` failed too.
    pub given_first: f64,
    /// Of the runs with both, the share where `first` started earlier.
    pub first_precedes: f64,
    /// The pair in one sentence.
    pub sentence: String,
}

/// Cost and provenance of an analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RcaStats {
    /// Backend queries run.
    pub queries: u64,
    /// Of those, answered from rollups without reading spans.
    pub from_rollups: u64,
    /// Candidates (values and pairs) tested.
    pub candidates: u64,
    /// Distinct value tuples read.
    pub tuples: u64,
    /// Whether a group-by hit the row cap (counts may be incomplete).
    pub truncated: bool,
    /// Of the wall time: reading the joint counts, ms.
    pub read_ms: u64,
    /// Of the wall time: choosing the findings, ms.
    pub attribution_ms: u64,
    /// Of the wall time: start/end, exemplars and co-occurrence, ms.
    pub details_ms: u64,
    /// Of the details, the longest change-point search of a finding, ms
    /// (details run at once, so these overlap).
    #[serde(default)]
    pub when_ms: u64,
    /// Of the details, the longest exemplar read of a finding, ms.
    #[serde(default)]
    pub exemplars_ms: u64,
    /// Of the details, the co-occurrence listing, ms.
    #[serde(default)]
    pub co_occurrence_ms: u64,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RcaReport {
    /// The target filter.
    pub target: String,
    /// The scope filter.
    pub scope: String,
    /// The window.
    pub window: Range,
    /// The baseline.
    pub baseline: Range,
    /// Scope counts in the window.
    pub window_totals: Period,
    /// Scope counts in the baseline.
    pub baseline_totals: Period,
    /// Target spans above what the baseline rate predicts for the window.
    pub excess: f64,
    /// One-sided p-value of the scope's rise (uncorrected).
    pub p_value: f64,
    /// Dimensions analysed (query-language fields).
    pub dimensions: Vec<String>,
    /// Findings, most explaining first; empty when nothing significant
    /// changed.
    pub findings: Vec<Finding>,
    /// Failures that co-occur in runs of the window.
    pub co_occurrence: Vec<CoOccurrence>,
    /// The whole answer in one or two sentences.
    pub headline: String,
    /// Cost.
    pub stats: RcaStats,
}
