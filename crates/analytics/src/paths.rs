//! Paths (issue 20, item 2): the most common sequences of turns inside
//! conversations, and which of them end with the user leaving.
//!
//! A turn is labelled by a business tag (an intent or category), the app,
//! or its outcome (`ok`, `failed`, `stopped`). A conversation's **path** is
//! the labels of its first `depth` turns (`…` marks more); its **last
//! steps** are the labels of its last `depth` turns, which is "what
//! happened before users left" when read over abandoned conversations.
//! Conversations, ended and abandoned, are as in [`crate::conversations`].

use loupe_backend::{QueryLimits, SpanReader};
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AnalyticsError, GroupBy, Runs, feedback_cte, int_of as int, ratio, seen_before, ts};

/// Longest path shown (turns).
pub const MAX_DEPTH: usize = 10;

/// Paths listed at most (most conversations first).
pub const MAX_PATHS: usize = 50;

/// What labels a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// `ok`, `failed` or `stopped`.
    Outcome,
    /// The app or a business tag ([`GroupBy`]).
    Field(GroupBy),
}

impl Label {
    /// `outcome`, `app` or `tags.<key>`.
    ///
    /// # Errors
    /// Anything else, naming what is accepted.
    pub fn parse(text: &str) -> Result<Self, AnalyticsError> {
        if text == "outcome" {
            return Ok(Self::Outcome);
        }
        GroupBy::parse(text).map(Self::Field).map_err(|_| {
            AnalyticsError::Invalid(format!(
                "cannot label turns by {text:?}: use outcome, app or tags.<key>"
            ))
        })
    }

    /// The group expression over a run's head spans (`Runs::group`), none
    /// for outcomes.
    fn group(&self) -> Option<String> {
        match self {
            Self::Outcome => None,
            Self::Field(g) => Some(g.sql()),
        }
    }

    /// The label of a turn (a row of `runs`).
    fn sql(&self) -> &'static str {
        match self {
            Self::Outcome => {
                "CASE WHEN stopped = 1 THEN 'stopped' WHEN failed = 1 THEN 'failed' ELSE 'ok' END"
            }
            Self::Field(_) => "coalesce(grp, '(none)')",
        }
    }
}

/// One paths analysis.
#[derive(Debug, Clone)]
pub struct PathsRequest {
    /// Conversations whose first turn starts in `[from_ns, to_ns)`.
    pub from_ns: i64,
    /// Window end (ns).
    pub to_ns: i64,
    /// "Now" (ended conversations: no turn for `gap_ns` before it).
    pub now_ns: i64,
    /// Quiet time that ends a conversation.
    pub gap_ns: i64,
    /// Turn labels.
    pub label: Label,
    /// Turns in a path (1 to [`MAX_DEPTH`]).
    pub depth: usize,
    /// Memory and row limits for the store.
    pub limits: QueryLimits,
}

/// Conversations sharing one path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathStats {
    /// The labels, in order (`…` last when the conversations went on).
    pub path: Vec<String>,
    /// Conversations.
    pub sessions: u64,
    /// Of them, ended.
    pub ended: u64,
    /// Ended ones whose last turn failed or was stopped.
    pub abandoned: u64,
    /// `abandoned / ended`.
    pub abandonment_rate: Option<f64>,
    /// Likes in the conversations.
    pub likes: u64,
    /// Dislikes in the conversations.
    pub dislikes: u64,
    /// `likes / (likes + dislikes)`.
    pub satisfaction_rate: Option<f64>,
}

/// The answer of [`paths`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathsReport {
    /// Window start.
    pub from_ns: i64,
    /// Window end.
    pub to_ns: i64,
    /// The most common paths from the first turn (at most [`MAX_PATHS`]).
    pub paths: Vec<PathStats>,
    /// Abandoned conversations by their last turns: what happened before
    /// users left (each entry's `abandoned` = `sessions`).
    pub before_leaving: Vec<PathStats>,
}

const SEPARATOR: &str = " \u{2192} ";

fn statement(req: &PathsRequest, runs: &str) -> String {
    let to = ts(req.to_ns);
    let ended_before = ts(req.now_ns.saturating_sub(req.gap_ns));
    let label = req.label.sql();
    let depth = req.depth;
    let seen = seen_before("seen", "session_id", req.from_ns);
    let feedback = feedback_cte("session_id", req.from_ns);
    // A session's turns are collected unordered and sorted as (start, run,
    // label, bad) structs afterwards: an ordered `array_agg` would sort
    // every run of the window first (over the memory limit at 10M spans).
    // The path is read off the sorted array: the first `depth` labels
    // (`fwd`), and the last `depth` of the abandoned sessions (`back`,
    // else NULL); `concat_ws` skips the positions past the ends. Whether
    // the last turn went wrong is the last element's `b` (an ordered
    // `last_value` beside the array cost a second sort per session).
    let nth = |index: String| format!("turns_in_order[{index}]['l']");
    let fwd = (1..=depth)
        .map(|i| nth(i.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let back = (1..=depth)
        .map(|i| {
            let at = format!("turns - {depth} + {i}");
            let label = nth(at.clone());
            format!("CASE WHEN {at} >= 1 THEN {label} END")
        })
        .collect::<Vec<_>>()
        .join(", ");
    // Both tables in one pass, grouped as two grouping sets; then the
    // largest MAX_PATHS of each.
    format!(
        "WITH {runs},
         sessions AS (
           SELECT session_id,
                  array_sort(array_agg(named_struct('t', start_time, 'r', run, 'l', {label},
                    'b', CASE WHEN failed = 1 OR stopped = 1 THEN 1 ELSE 0 END)))
                    AS turns_in_order,
                  count(*) AS turns,
                  max(end_time) AS last_seen
           FROM runs
           WHERE session_id IS NOT NULL AND session_id <> ''
           GROUP BY session_id
           HAVING min(start_time) < {to}
         ),
         {seen},
         ended AS (
           SELECT session_id, turns_in_order, turns, turns_in_order[turns]['b'] AS last_bad,
                  CASE WHEN last_seen < {ended_before} THEN 1 ELSE 0 END AS ended
           FROM sessions s
           WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.k = s.session_id)
         ),
         {feedback},
         judged AS (
           SELECT e.turns > {depth} AS longer, e.ended, e.ended * e.last_bad AS abandoned,
                  coalesce(f.likes, 0) AS likes, coalesce(f.dislikes, 0) AS dislikes,
                  concat_ws('{SEPARATOR}', {fwd}) AS fwd,
                  CASE WHEN e.ended = 1 AND e.last_bad = 1 THEN concat_ws('{SEPARATOR}', {back}) END AS back
           FROM ended e LEFT JOIN feedback f ON f.session_id = e.session_id
         ),
         grouped AS (
           SELECT grouping(fwd) AS from_end, coalesce(fwd, back) AS path,
                  max(CASE WHEN longer THEN 1 ELSE 0 END) AS longer,
                  count(*) AS sessions, sum(ended) AS ended, sum(abandoned) AS abandoned,
                  sum(likes) AS likes, sum(dislikes) AS dislikes
           FROM judged
           GROUP BY GROUPING SETS ((fwd, longer), (back, longer))
           HAVING grouping(fwd) = 0 OR back IS NOT NULL
         ),
         ranked AS (
           SELECT *, row_number() OVER (PARTITION BY from_end ORDER BY sessions DESC, path, longer) AS r
           FROM grouped
         )
         SELECT path, longer, sessions, ended, abandoned, likes, dislikes, from_end
         FROM ranked WHERE r <= {MAX_PATHS}
         ORDER BY from_end, sessions DESC, path, longer"
    )
}

fn read(answer: &[Vec<Value>], from_end: bool) -> Vec<PathStats> {
    answer
        .iter()
        .take(MAX_PATHS)
        .map(|row| {
            let mut path: Vec<String> = row
                .first()
                .and_then(Value::as_str)
                .map(|p| p.split(SEPARATOR).map(str::to_owned).collect())
                .unwrap_or_default();
            if int(row.get(1)) == 1 {
                if from_end {
                    path.insert(0, "\u{2026}".into());
                } else {
                    path.push("\u{2026}".into());
                }
            }
            let (ended, abandoned) = (int(row.get(3)), int(row.get(4)));
            let (likes, dislikes) = (int(row.get(5)), int(row.get(6)));
            PathStats {
                path,
                sessions: int(row.get(2)),
                ended,
                abandoned,
                abandonment_rate: ratio(abandoned, ended),
                likes,
                dislikes,
                satisfaction_rate: ratio(likes, likes + dislikes),
            }
        })
        .collect()
}

/// The most common paths of the window's conversations, and the last
/// steps of the abandoned ones (see the module docs).
///
/// # Errors
/// [`AnalyticsError::Invalid`] for a bad window or depth; the store's.
#[tracing::instrument(name = "analytics.paths", skip(reader))]
pub async fn paths(
    reader: &dyn SpanReader,
    project: &ProjectId,
    req: &PathsRequest,
) -> Result<PathsReport, AnalyticsError> {
    if req.from_ns >= req.to_ns {
        return Err(AnalyticsError::Invalid(
            "the window is empty: from must be before to".into(),
        ));
    }
    if !(1..=MAX_DEPTH).contains(&req.depth) || req.gap_ns <= 0 {
        return Err(AnalyticsError::Invalid(format!(
            "depth must be 1 to {MAX_DEPTH} turns and gap positive"
        )));
    }
    let limits = QueryLimits {
        max_rows: 2 * MAX_PATHS,
        ..req.limits
    };
    let group = req.label.group();
    let runs = Runs {
        group: group.as_deref(),
        ..Runs::since(req.from_ns)
    };
    let answer = runs
        .sql(reader, project, &|runs| statement(req, runs), limits)
        .await?;
    let (backward, forward): (Vec<_>, Vec<_>) = answer
        .rows
        .into_iter()
        .partition(|row| int(row.get(7)) == 1);
    Ok(PathsReport {
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        paths: read(&forward, false),
        before_leaving: read(&backward, true),
    })
}
