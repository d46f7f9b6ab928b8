//! The relations the seed asks about (issue 20, item 4): answer length,
//! latency and cost of a run against its outcome and the feedback it drew,
//! as binned tables with their counts (a small bin shows as small).
//!
//! A run (a Dify run or chat turn, an OTel trace: see `Runs`) is in the
//! window when its head spans start in it (a run's heads start together:
//! a chat turn's message and run spans within milliseconds). Its answer
//! length is its longest head span's output in characters, its latency
//! from its first start to its last end, its cost the sum over its spans
//! other than `workflow` ones (a Dify run's usage is on its nodes, a chat
//! app's on its message). Feedback is every `score` span in the run's
//! trace (Dify message feedback, Langfuse scores), read as likes and
//! dislikes the way conversations read them. The three relations come
//! from one statement: one pass over the window's runs.

use loupe_backend::{QueryLimits, SpanReader};
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};

use crate::{AnalyticsError, Runs, feedback_cte, int_of as int, ratio};

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
        "CAST(output_len AS DOUBLE)",
        &[100.0, 300.0, 1_000.0, 3_000.0],
    ),
    (
        "latency",
        "s",
        "(CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT)) / 1e9",
        &[1.0, 3.0, 10.0, 30.0],
    ),
    ("cost", "", "coalesce(cost, 0)", &[1e-9, 0.001, 0.01, 0.1]),
];

fn statement(req: &RelationsRequest, runs: &str) -> String {
    let feedback = feedback_cte("trace_id", req.from_ns);
    // The bin of each relation (-1: no value), grouped together: at most
    // 6 × 6 × 6 rows, added up per relation by the caller.
    let bins = RELATIONS
        .iter()
        .enumerate()
        .map(|(r, (_, _, value, edges))| {
            let whens = edges
                .iter()
                .enumerate()
                .map(|(i, e)| format!("WHEN {value} < {e:e} THEN {i}"))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "CASE WHEN {value} IS NULL THEN -1 {whens} ELSE {} END AS b{r}",
                edges.len()
            )
        })
        .collect::<Vec<_>>()
        .join(",\n                ");
    format!(
        "WITH {runs},
         {feedback},
         valued AS (
           SELECT r.*, coalesce(f.likes, 0) AS likes, coalesce(f.dislikes, 0) AS dislikes
           FROM runs r LEFT JOIN feedback f ON f.trace_id = r.trace_id)
         SELECT {bins},
                count(*) AS runs, sum(failed) AS failed,
                sum(likes) AS likes, sum(dislikes) AS dislikes
         FROM valued
         GROUP BY 1, 2, 3"
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
        max_rows: 512,
        ..req.limits
    };
    let mut report = RelationsReport {
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        ..RelationsReport::default()
    };
    let runs = Runs {
        to_ns: Some(req.to_ns),
        trace: true,
        output_len: true,
        usage: true,
        ..Runs::since(req.from_ns)
    };
    let answer = runs
        .sql(reader, project, &|runs| statement(req, runs), limits)
        .await?;
    for (r, (name, unit, _, edges)) in RELATIONS.iter().enumerate() {
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
        for row in &answer.rows {
            let Some(bin) = row
                .get(r)
                .and_then(serde_json::Value::as_i64)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| bins.get_mut(i))
            else {
                continue;
            };
            bin.runs += int(row.get(3));
            bin.failed += int(row.get(4));
            bin.likes += int(row.get(5));
            bin.dislikes += int(row.get(6));
        }
        for bin in &mut bins {
            bin.failure_rate = ratio(bin.failed, bin.runs);
            bin.satisfaction_rate = ratio(bin.likes, bin.likes + bin.dislikes);
        }
        match *name {
            "answer_length" => report.answer_length = bins,
            "latency" => report.latency = bins,
            _ => report.cost = bins,
        }
    }
    Ok(report)
}
