//! Sessions and users: the runs of a conversation in order, and a per-user
//! summary (runs, failure rate, latency percentiles, tokens, cost, feedback
//! scores). Backends fetch the spans of a session or user; the summaries
//! are computed here so every backend answers the same way.

use std::collections::BTreeMap;

use loupe_model::{Span, SpanKind, Status};
use serde::Serialize;

/// Runs one session or user summary may fold, in every backend; more is
/// refused (413) rather than held in memory.
pub const MAX_TIMELINE_RUNS: usize = 200_000;

/// The node type of feedback-score spans (Langfuse `score-create`).
pub const SCORE_NODE_TYPE: &str = "score";

/// One run, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Trace id of the run's spans.
    pub trace_id: Option<String>,
    /// Run name (the workflow span's name, else the root's).
    pub name: Option<String>,
    /// App id.
    pub app_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Status of the run's workflow span (else its root).
    pub status: Option<Status>,
    /// The source's status text.
    pub raw_status: Option<String>,
    /// Error of the run, or of its first failed span.
    pub error_message: Option<String>,
    /// Earliest start, ns since the epoch.
    pub start_time: Option<i64>,
    /// Latest end, ns since the epoch.
    pub end_time: Option<i64>,
    /// `end_time - start_time`, ns.
    pub latency_ns: Option<i64>,
    /// Tokens of the run's non-run spans (no double counting).
    pub total_tokens: i64,
    /// Cost of the run's non-run spans.
    pub cost: f64,
}

/// Aggregate of one feedback score name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScoreSummary {
    /// Score name.
    pub name: String,
    /// Number of scores.
    pub count: u64,
    /// Mean of the numeric values (`None` when none is numeric).
    pub avg: Option<f64>,
}

/// A user's activity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserSummary {
    /// User id.
    pub user_id: String,
    /// Number of runs.
    pub runs: u64,
    /// Runs whose status is error.
    pub failed: u64,
    /// `failed / runs` (0 without runs).
    pub failure_rate: f64,
    /// Distinct sessions.
    pub sessions: u64,
    /// Median run latency, ns (exact, nearest rank).
    pub p50_latency_ns: Option<i64>,
    /// 95th percentile run latency, ns (exact, nearest rank).
    pub p95_latency_ns: Option<i64>,
    /// Tokens over all runs.
    pub total_tokens: i64,
    /// Cost over all runs.
    pub cost: f64,
    /// First run start, ns.
    pub first_seen: Option<i64>,
    /// Last run start, ns.
    pub last_seen: Option<i64>,
    /// Feedback scores by name.
    pub feedback: Vec<ScoreSummary>,
    /// The most recent runs (newest first, at most 50).
    pub recent_runs: Vec<RunSummary>,
}

/// Groups spans by run and summarises each run, oldest first. Score spans
/// are left out.
pub fn summarise_runs(spans: &[Span]) -> Vec<RunSummary> {
    let mut fold = RunsFold::default();
    for s in spans {
        fold.push(s);
    }
    fold.runs()
}

fn is_score(s: &Span) -> bool {
    s.node_type.as_deref() == Some(SCORE_NODE_TYPE)
}

/// The fields a run takes from its head span.
#[derive(Debug, Clone, Default)]
struct Head {
    name: Option<String>,
    status: Option<Status>,
    raw_status: Option<String>,
    error_message: Option<String>,
    trace_id: Option<String>,
    app_id: Option<String>,
    session_id: Option<String>,
    user_id: Option<String>,
}

impl Head {
    fn of(s: &Span) -> Self {
        Self {
            name: s.name.clone(),
            status: s.status,
            raw_status: s.raw_status.clone(),
            error_message: s.error_message.clone(),
            trace_id: s.trace_id.clone(),
            app_id: s.app_id.clone(),
            session_id: s.session_id.clone(),
            user_id: s.user_id.clone(),
        }
    }
}

/// One run while its spans stream by: what [`RunSummary`] needs, not the
/// spans (a user's summary over 200k spans used to hold them all, payloads
/// included: 2 GiB, issue 14).
#[derive(Debug, Default)]
struct RunAcc {
    /// The first workflow span, else the first root, else the first span.
    workflow: Option<Head>,
    root: Option<Head>,
    first: Option<Head>,
    /// The first value any span of the run has, in the order seen.
    any: Head,
    start: Option<i64>,
    end: Option<i64>,
    tokens: i64,
    cost: f64,
}

fn first_of(slot: &mut Option<String>, v: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(v);
    }
}

impl RunAcc {
    fn push(&mut self, s: &Span) {
        if self.workflow.is_none() && s.span_kind == Some(SpanKind::Workflow) {
            self.workflow = Some(Head::of(s));
        }
        if self.root.is_none() && s.parent_span_id.is_none() {
            self.root = Some(Head::of(s));
        }
        if self.first.is_none() {
            self.first = Some(Head::of(s));
        }
        first_of(&mut self.any.trace_id, &s.trace_id);
        first_of(&mut self.any.app_id, &s.app_id);
        first_of(&mut self.any.session_id, &s.session_id);
        first_of(&mut self.any.user_id, &s.user_id);
        first_of(&mut self.any.error_message, &s.error_message);
        if let Some(t) = s.start_time {
            self.start = Some(self.start.map_or(t, |m| m.min(t)));
        }
        if let Some(t) = s.end_time {
            self.end = Some(self.end.map_or(t, |m| m.max(t)));
        }
        // Tokens of the run's non-run spans (no double counting).
        if s.span_kind != Some(SpanKind::Workflow) && s.parent_span_id.is_some() {
            self.tokens += s.total_tokens.unwrap_or(0);
            self.cost += s.cost.unwrap_or(0.0);
        }
    }

    fn finish(self, run_id: String) -> RunSummary {
        let head = self
            .workflow
            .or(self.root)
            .or(self.first)
            .unwrap_or_default();
        let any = self.any;
        let (start, end) = (self.start, self.end);
        RunSummary {
            run_id,
            trace_id: head.trace_id.or(any.trace_id),
            name: head.name,
            app_id: head.app_id.or(any.app_id),
            session_id: head.session_id.or(any.session_id),
            user_id: head.user_id.or(any.user_id),
            status: head.status,
            raw_status: head.raw_status,
            error_message: head.error_message.or(any.error_message),
            start_time: start,
            end_time: end,
            latency_ns: start.zip(end).map(|(s, e)| (e - s).max(0)),
            total_tokens: self.tokens,
            cost: self.cost,
        }
    }
}

/// Runs and feedback scores folded from spans as they stream by; memory
/// grows with the runs, not with the spans or their payloads.
#[derive(Debug, Default)]
pub struct RunsFold {
    runs: BTreeMap<String, RunAcc>,
    /// Score name → (count, sum of numeric values, numeric count).
    scores: BTreeMap<String, (u64, f64, u64)>,
}

impl RunsFold {
    /// Adds one span (a score span counts as feedback, not as a run).
    pub fn push(&mut self, s: &Span) {
        if is_score(s) {
            let entry = self
                .scores
                .entry(s.name.clone().unwrap_or_default())
                .or_default();
            entry.0 += 1;
            let value = s.attributes.get("score.value").or(s.output.as_ref());
            if let Some(v) = value.and_then(|v| v.trim().parse::<f64>().ok()) {
                entry.1 += v;
                entry.2 += 1;
            }
            return;
        }
        let key = s.run_id.as_ref().or(s.trace_id.as_ref());
        match key.and_then(|k| self.runs.get_mut(k)) {
            Some(run) => run.push(s),
            None => {
                let mut run = RunAcc::default();
                run.push(s);
                self.runs.insert(key.cloned().unwrap_or_default(), run);
            }
        }
    }

    /// Runs seen so far.
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// What to tell the caller once more than [`MAX_TIMELINE_RUNS`] runs
    /// have `column = value` (`None` while within the bound): every backend
    /// checks as it folds and refuses with this text.
    pub fn over_bound(&self, column: &str, value: &str) -> Option<String> {
        (self.run_count() > MAX_TIMELINE_RUNS).then(|| {
            format!(
                "more than {MAX_TIMELINE_RUNS} runs have {column} = {value:?}; \
                 query them with a time range instead"
            )
        })
    }

    /// The runs, oldest first.
    pub fn runs(self) -> Vec<RunSummary> {
        runs_of(self.runs)
    }

    /// The user's summary; `None` without runs.
    pub fn user(self, user_id: &str) -> Option<UserSummary> {
        user_of(user_id, runs_of(self.runs), self.scores)
    }
}

fn runs_of(runs: BTreeMap<String, RunAcc>) -> Vec<RunSummary> {
    let mut out: Vec<RunSummary> = runs.into_iter().map(|(id, r)| r.finish(id)).collect();
    out.sort_by(|a, b| (a.start_time, &a.run_id).cmp(&(b.start_time, &b.run_id)));
    out
}

/// Summarises a user's spans (runs and score spans); `None` without runs.
pub fn summarise_user(user_id: &str, spans: &[Span]) -> Option<UserSummary> {
    let mut fold = RunsFold::default();
    for s in spans {
        fold.push(s);
    }
    fold.user(user_id)
}

fn user_of(
    user_id: &str,
    runs: Vec<RunSummary>,
    scores: BTreeMap<String, (u64, f64, u64)>,
) -> Option<UserSummary> {
    if runs.is_empty() {
        return None;
    }
    let failed = runs
        .iter()
        .filter(|r| r.status == Some(Status::Error))
        .count() as u64;
    let mut latencies: Vec<i64> = runs.iter().filter_map(|r| r.latency_ns).collect();
    latencies.sort_unstable();
    let rank = |q: f64| {
        let n = latencies.len();
        (n > 0).then(|| latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    let sessions: std::collections::BTreeSet<_> =
        runs.iter().filter_map(|r| r.session_id.as_ref()).collect();
    Some(UserSummary {
        user_id: user_id.to_owned(),
        runs: runs.len() as u64,
        failed,
        failure_rate: failed as f64 / runs.len() as f64,
        sessions: sessions.len() as u64,
        p50_latency_ns: rank(0.5),
        p95_latency_ns: rank(0.95),
        total_tokens: runs.iter().map(|r| r.total_tokens).sum(),
        cost: runs.iter().map(|r| r.cost).sum(),
        first_seen: runs.iter().filter_map(|r| r.start_time).min(),
        last_seen: runs.iter().filter_map(|r| r.start_time).max(),
        feedback: scores
            .into_iter()
            .map(|(name, (count, sum, numeric))| ScoreSummary {
                name,
                count,
                avg: (numeric > 0).then(|| sum / numeric as f64),
            })
            .collect(),
        recent_runs: runs.iter().rev().take(50).cloned().collect(),
    })
}
