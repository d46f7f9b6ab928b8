//! The relations the seed asks about (issue 20, item 4): answer length,
//! latency and cost of a run against its outcome and the feedback it drew,
//! as binned tables with their counts (a small bin shows as small).
//!
//! A run (a Dify run or chat turn, an OTel trace: see `runs_cte`) starts in
//! the window. Its answer length is its longest head span's output in
//! characters, its latency from its first start to its last end, its cost
//! the sum over its spans other than `workflow` ones (a Dify run's usage is
//! on its nodes, a chat app's on its message). Feedback is every `score` span in the run's trace (Dify
//! message feedback, Langfuse scores), read as likes and dislikes the way
//! conversations read them.

use loupe_backend::{QueryLimits, SpanReader};
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};

use crate::{AnalyticsError, int_of as int, ratio, ts};

/// One relations analysis.
#[derive(Debug, Clone)]
pub struct RelationsRequest {
    /// Runs starting in `[from_ns, to_ns)`.
    pub from_ns: i64,
    /// Window end (ns).
    pub to_ns: i64,
    /// Memory and row limits for the store.
    pub limits: QueryLimits,
}

/// One bin of a relation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Human label (`"300–1000 chars"`).
    pub label: String,
    /// Lower bound (inclusive), in the relation's unit.
    pub from: f64,
    /// Upper bound (exclusive); `null`: no bound.
    pub to: Option<f64>,
    /// Runs in the bin.
    pub runs: u64,
    /// Of them, failed.
    pub failed: u64,
    /// `failed / runs`.
    pub failure_rate: Option<f64>,
    /// Likes on the bin's runs.
    pub likes: u64,
    /// Dislikes on the bin's runs.
    pub dislikes: u64,
    /// `likes / (likes + dislikes)`.
    pub satisfaction_rate: Option<f64>,
}

/// The answer of [`relations`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelationsReport {
    /// Window start.
    pub from_ns: i64,
    /// Window end.
    pub to_ns: i64,
    /// By answer length (characters of the run's output).
    pub answer_length: Vec<Bin>,
    /// By latency (seconds).
    pub latency: Vec<Bin>,
    /// By cost (the currency the sources report).
    pub cost: Vec<Bin>,
}

/// Bin edges per relation: (name, unit, SQL of the value, edges).
const RELATIONS: [(&str, &str, &str, &[f64]); 3] = [
    (
        "answer_length",
        "chars",
        "CAST(r.output_len AS DOUBLE)",
        &[100.0, 300.0, 1_000.0, 3_000.0],
    ),
    (
        "latency",
        "s",
        "(CAST(r.end_time AS BIGINT) - CAST(r.start_time AS BIGINT)) / 1e9",
        &[1.0, 3.0, 10.0, 30.0],
    ),
    ("cost", "", "coalesce(u.cost, 0)", &[1e-9, 0.001, 0.01, 0.1]),
];

fn statement(req: &RelationsRequest, value: &str, edges: &[f64]) -> String {
    let (from, to) = (ts(req.from_ns), ts(req.to_ns));
    let runs = crate::runs_cte("CAST(NULL AS VARCHAR)");
    let feedback = crate::feedback_cte("trace_id", "SELECT trace_id FROM window_runs");
    let bin = edges
        .iter()
        .enumerate()
        .map(|(i, e)| format!("WHEN v < {e:e} THEN {i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let last = edges.len();
    format!(
        "WITH {runs},
         window_runs AS (SELECT * FROM runs WHERE start_time >= {from} AND start_time < {to}),
         usage AS (
           SELECT coalesce(run_id, trace_id, span_id) AS run, sum(cost) AS cost FROM spans
           WHERE span_kind <> 'workflow' AND cost IS NOT NULL
             AND coalesce(run_id, trace_id, span_id) IN (SELECT run FROM window_runs)
           GROUP BY 1),
         {feedback},
         valued AS (
           SELECT r.failed, coalesce(f.likes, 0) AS likes, coalesce(f.dislikes, 0) AS dislikes,
                  {value} AS v
           FROM window_runs r
           LEFT JOIN usage u ON u.run = r.run
           LEFT JOIN feedback f ON f.trace_id = r.trace_id)
         SELECT CASE {bin} ELSE {last} END AS b,
                count(*) AS runs,
                sum(failed) AS failed,
                sum(likes) AS likes, sum(dislikes) AS dislikes
         FROM valued WHERE v IS NOT NULL
         GROUP BY 1 ORDER BY 1"
    )
}

fn label(unit: &str, from: f64, to: Option<f64>) -> String {
    let n = |v: f64| {
        if v != 0.0 && v.abs() < 1e-6 {
            "0".to_owned()
        } else {
            format!("{v}")
        }
    };
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    match to {
        // The first cost bin: runs that cost nothing.
        Some(to) if from == 0.0 && to < 1e-6 => format!("0{unit}"),
        Some(to) if from == 0.0 => format!("< {}{unit}", n(to)),
        Some(to) => format!("{}–{}{unit}", n(from), n(to)),
        None => format!("≥ {}{unit}", n(from)),
    }
}

/// Analyses how runs' length, latency and cost relate to their outcome
/// and feedback (see the module docs). Every bin is listed, empty or not.
///
/// # Errors
/// [`AnalyticsError::Invalid`] for an empty window; the store's.
#[tracing::instrument(name = "analytics.relations", skip(reader))]
pub async fn relations(
    reader: &dyn SpanReader,
    project: &ProjectId,
    req: &RelationsRequest,
) -> Result<RelationsReport, AnalyticsError> {
    if req.from_ns >= req.to_ns {
        return Err(AnalyticsError::Invalid(
            "the window is empty: from must be before to".into(),
        ));
    }
    let limits = QueryLimits {
        max_rows: 64,
        ..req.limits
    };
    let mut report = RelationsReport {
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        ..RelationsReport::default()
    };
    for (name, unit, value, edges) in RELATIONS {
        let mut bins: Vec<Bin> = (0..=edges.len())
            .map(|i| {
                let from = if i == 0 { 0.0 } else { edges[i - 1] };
                let to = edges.get(i).copied();
                Bin {
                    label: label(unit, from, to),
                    from,
                    to,
                    ..Bin::default()
                }
            })
            .collect();
        let answer = reader
            .sql(project, &statement(req, value, edges), limits)
            .await?;
        for row in answer.rows {
            let Some(bin) = usize::try_from(int(row.first()))
                .ok()
                .and_then(|i| bins.get_mut(i))
            else {
                continue;
            };
            bin.runs = int(row.get(1));
            bin.failed = int(row.get(2));
            bin.likes = int(row.get(3));
            bin.dislikes = int(row.get(4));
            bin.failure_rate = ratio(bin.failed, bin.runs);
            bin.satisfaction_rate = ratio(bin.likes, bin.likes + bin.dislikes);
        }
        match name {
            "answer_length" => report.answer_length = bins,
            "latency" => report.latency = bins,
            _ => report.cost = bins,
        }
    }
    Ok(report)
}
