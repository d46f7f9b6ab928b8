//! Sessions and users: the runs of a conversation in order, and a per-user
//! summary (runs, failure rate, latency percentiles, tokens, cost, feedback
//! scores). Backends fetch the spans of a session or user; the summaries
//! are computed here so every backend answers the same way.

use std::collections::BTreeMap;

use loupe_model::{Span, SpanKind, Status};
use serde::Serialize;

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
    let mut by_run: BTreeMap<String, Vec<&Span>> = BTreeMap::new();
    for s in spans.iter().filter(|s| !is_score(s)) {
        let key = s
            .run_id
            .clone()
            .or_else(|| s.trace_id.clone())
            .unwrap_or_default();
        by_run.entry(key).or_default().push(s);
    }
    let mut out: Vec<RunSummary> = by_run.into_iter().map(|(id, s)| run(id, &s)).collect();
    out.sort_by(|a, b| (a.start_time, &a.run_id).cmp(&(b.start_time, &b.run_id)));
    out
}

fn is_score(s: &Span) -> bool {
    s.node_type.as_deref() == Some(SCORE_NODE_TYPE)
}

fn run(run_id: String, spans: &[&Span]) -> RunSummary {
    let head = spans
        .iter()
        .find(|s| s.span_kind == Some(SpanKind::Workflow))
        .or_else(|| spans.iter().find(|s| s.parent_span_id.is_none()))
        .or(spans.first())
        .copied();
    let first = |f: fn(&Span) -> Option<String>| {
        head.and_then(f).or_else(|| spans.iter().find_map(|s| f(s)))
    };
    let start = spans.iter().filter_map(|s| s.start_time).min();
    let end = spans.iter().filter_map(|s| s.end_time).max();
    let parts = spans
        .iter()
        .filter(|s| s.span_kind != Some(SpanKind::Workflow) && s.parent_span_id.is_some());
    let (mut tokens, mut cost) = (0i64, 0f64);
    for s in parts {
        tokens += s.total_tokens.unwrap_or(0);
        cost += s.cost.unwrap_or(0.0);
    }
    let status = head.and_then(|h| h.status);
    RunSummary {
        run_id,
        trace_id: first(|s| s.trace_id.clone()),
        name: head.and_then(|h| h.name.clone()),
        app_id: first(|s| s.app_id.clone()),
        session_id: first(|s| s.session_id.clone()),
        user_id: first(|s| s.user_id.clone()),
        status,
        raw_status: head.and_then(|h| h.raw_status.clone()),
        error_message: head
            .and_then(|h| h.error_message.clone())
            .or_else(|| spans.iter().find_map(|s| s.error_message.clone())),
        start_time: start,
        end_time: end,
        latency_ns: start.zip(end).map(|(s, e)| (e - s).max(0)),
        total_tokens: tokens,
        cost,
    }
}

/// Summarises a user's spans (runs and score spans); `None` without runs.
pub fn summarise_user(user_id: &str, spans: &[Span]) -> Option<UserSummary> {
    let runs = summarise_runs(spans);
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
    let mut scores: BTreeMap<String, (u64, f64, u64)> = BTreeMap::new();
    for s in spans.iter().filter(|s| is_score(s)) {
        let entry = scores
            .entry(s.name.clone().unwrap_or_default())
            .or_default();
        entry.0 += 1;
        let value = s.attributes.get("score.value").or(s.output.as_ref());
        if let Some(v) = value.and_then(|v| v.trim().parse::<f64>().ok()) {
            entry.1 += v;
            entry.2 += 1;
        }
    }
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
