//! Product analytics over stored runs (issue 20): what a product owner of a
//! customer-service bot asks on Monday morning.
//!
//! **Budgets** ([`budgets`]): spending limits per period with thresholds
//! that notify once each.
//!
//! **Paths** ([`paths()`]): the most common sequences of turns and the last
//! steps before users left.
//!
//! **Relations** ([`relations()`]): answer length, latency and cost of runs
//! against their failures and feedback, binned.
//!
//! **Users** ([`users()`]): new against returning users, whether users come
//! back after a failed run, weekly retention (see the `users` module).
//!
//! **Conversations** ([`conversations`]): a conversation is a session
//! (`session_id`: Dify's conversation id); its turns are its runs (spans of
//! kind `workflow`, one per Dify run or chat turn), in start order. Per
//! group (an app, a business tag of the first turn, or everything):
//!
//! - sessions started in the window, turns, turns per session;
//! - failed turns (`status = error`) and stopped turns (Dify's `stopped`);
//! - **abandonment**: an *ended* session (no turn for `gap` before the
//!   analysis' `now`) whose last turn failed or was stopped: the user left
//!   after the bot let them down. Sessions still open are not judged;
//! - **first-turn resolution**: an ended session of one turn that did not
//!   fail (an OTel status left unset counts as success), was not stopped or
//!   still running, and drew no dislike;
//! - **satisfaction**: feedback (`score` spans: Dify's message feedback,
//!   Langfuse scores) as likes and dislikes; the rate is likes over both;
//! - cost and tokens of every span of the sessions (a run's usage is on its
//!   nodes), and the mean turn latency.
//!
//! Everything is computed by the store in one SQL statement (window
//! functions and grouping), so the answer's size is the number of groups,
//! whatever the number of sessions.

pub mod budgets;
mod paths;
mod relations;
mod users;

pub use paths::{Label, MAX_DEPTH, MAX_PATHS, PathStats, PathsReport, PathsRequest, paths};
pub use relations::{Bin, RelationsReport, RelationsRequest, relations};
pub use users::{Cohort, Comeback, MAX_WEEKS, UserGroup, UsersReport, UsersRequest, users};

use loupe_backend::{QueryLimits, SpanReader, StoreError};
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Default gap after a session's last turn before it counts as ended.
pub const DEFAULT_GAP_NS: i64 = 30 * 60 * 1_000_000_000;

/// Groups returned at most (largest first; the rest are summed in `other`).
pub const MAX_GROUPS: usize = 200;

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The request is wrong (the caller's fault).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to group conversations by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The app (`app_name`, else `app_id`) of the first turn.
    App,
    /// A business tag of the first turn.
    Tag(String),
}

impl GroupBy {
    /// `app`, or `tags.<key>` (key: letters, digits, `_`, `-`, `.`).
    ///
    /// # Errors
    /// Anything else, naming what is accepted.
    pub fn parse(text: &str) -> Result<Self, AnalyticsError> {
        if text == "app" {
            return Ok(Self::App);
        }
        match text.strip_prefix("tags.") {
            Some(key)
                if !key.is_empty()
                    && key.len() <= 64
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
            {
                Ok(Self::Tag(key.to_owned()))
            }
            _ => Err(AnalyticsError::Invalid(format!(
                "cannot group conversations by {text:?}: use app or tags.<key>"
            ))),
        }
    }

    /// The SQL expression of the group of a turn (quoted safely: keys are
    /// checked by [`GroupBy::parse`]).
    pub(crate) fn sql(&self) -> String {
        match self {
            Self::App => "coalesce(app_name, app_id)".into(),
            Self::Tag(key) => format!("tags['{key}']"),
        }
    }

    fn name(&self) -> String {
        match self {
            Self::App => "app".into(),
            Self::Tag(key) => format!("tags.{key}"),
        }
    }
}

/// One conversation analysis.
#[derive(Debug, Clone)]
pub struct ConversationsRequest {
    /// Sessions whose first turn starts in `[from_ns, to_ns)`.
    pub from_ns: i64,
    /// End of the window (ns).
    pub to_ns: i64,
    /// "Now": a session with no turn since `now_ns - gap_ns` has ended.
    pub now_ns: i64,
    /// Quiet time after the last turn before a session counts as ended.
    pub gap_ns: i64,
    /// Groups; `None`: one group, everything.
    pub group_by: Option<GroupBy>,
    /// Memory and row limits for the store.
    pub limits: QueryLimits,
}

/// Figures of one group of conversations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationStats {
    /// The group's value (`null`: turns without it).
    pub group: Option<String>,
    /// Sessions whose first turn is in the window.
    pub sessions: u64,
    /// Their turns (runs).
    pub turns: u64,
    /// Turns per session.
    pub turns_per_session: f64,
    /// Turns that failed.
    pub failed_turns: u64,
    /// Turns the user or the app stopped.
    pub stopped_turns: u64,
    /// Sessions with no turn for the gap before now (judged below).
    pub ended_sessions: u64,
    /// Ended sessions whose last turn failed or was stopped.
    pub abandoned_sessions: u64,
    /// `abandoned_sessions / ended_sessions` (`null` without ended ones).
    pub abandonment_rate: Option<f64>,
    /// Ended sessions of one successful turn without a dislike.
    pub first_turn_resolved: u64,
    /// `first_turn_resolved / ended_sessions`.
    pub first_turn_resolution_rate: Option<f64>,
    /// Likes given in the sessions.
    pub likes: u64,
    /// Dislikes given in the sessions.
    pub dislikes: u64,
    /// `likes / (likes + dislikes)` (`null` without feedback).
    pub satisfaction_rate: Option<f64>,
    /// Cost of every span of the sessions.
    pub cost: f64,
    /// Tokens of every span of the sessions.
    pub tokens: i64,
    /// Mean turn duration (ms).
    pub mean_turn_ms: Option<f64>,
}

/// The answer of [`conversations`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationsReport {
    /// The window analysed.
    pub from_ns: i64,
    /// End of the window.
    pub to_ns: i64,
    /// The gap that ends a session (ns).
    pub gap_ns: i64,
    /// What groups are (`app`, `tags.<key>`), when grouped.
    pub group_by: Option<String>,
    /// Every session of the window.
    pub total: ConversationStats,
    /// Per group, most sessions first (at most [`MAX_GROUPS`]).
    pub groups: Vec<ConversationStats>,
    /// Whether groups beyond [`MAX_GROUPS`] were left out of `groups`
    /// (they are in `total`).
    pub truncated: bool,
}

/// Values Dify and Langfuse clients use for a like (else a number > 0.5).
const LIKES: &str = "'like', 'Like', 'LIKE', 'good', 'thumbs_up', 'up', 'true', 'True', '1'";
/// Values for a dislike (else a number < 0.5).
const DISLIKES: &str =
    "'dislike', 'Dislike', 'DISLIKE', 'bad', 'thumbs_down', 'down', 'false', 'False', '0'";

/// The `runs` CTE every analysis starts from: one row per run (Dify run or
/// chat turn, OTel trace), whichever source sent it. A run's *head* spans
/// are its spans of kind `workflow` and its roots: a workflow app's run
/// span; a chatflow turn's message and run spans (both `workflow`); a
/// basic chat app's message (an `llm` or `agent` root); the Phoenix
/// provider's root above the run span; an OTel trace's root. Feedback
/// spans are not heads. Per run: its session, user and trace, the first
/// start and last end of its heads, whether a head failed, was stopped or
/// is still running, the group (`group`, an SQL expression over a head),
/// and the longest output.
pub(crate) fn runs_cte(group: &str) -> String {
    format!(
        "runs AS (
           SELECT coalesce(run_id, trace_id, span_id) AS run,
                  max(session_id) AS session_id, max(user_id) AS user_id, max(trace_id) AS trace_id,
                  min(start_time) AS start_time, max(coalesce(end_time, start_time)) AS end_time,
                  max(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS failed,
                  max(CASE WHEN raw_status = 'stopped' THEN 1 ELSE 0 END) AS stopped,
                  max(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running,
                  max({group}) AS grp,
                  max(character_length(coalesce(output, ''))) AS output_len
           FROM spans
           WHERE (span_kind = 'workflow' OR parent_span_id IS NULL)
             AND coalesce(node_type, '') <> 'score' AND start_time IS NOT NULL
           GROUP BY 1)"
    )
}

/// Sessions' turns in order (`n` from the first, `back` from the last),
/// from [`runs_cte`].
pub(crate) const TURNS_CTE: &str = "turns AS (
           SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY start_time, run) AS n,
                  row_number() OVER (PARTITION BY session_id ORDER BY start_time DESC, run DESC) AS back
           FROM runs WHERE session_id IS NOT NULL AND session_id <> '')";

/// The `feedback` CTE: likes and dislikes of the `score` spans per `key`
/// (`session_id`, `trace_id`), for the keys `scope` (an SQL subquery)
/// lists. A like is one of [`LIKES`] or a number above 0.5, a dislike one
/// of [`DISLIKES`] or a number below it.
pub(crate) fn feedback_cte(key: &str, scope: &str) -> String {
    format!(
        "feedback AS (
           SELECT {key},
                  sum(CASE WHEN attributes['score.value'] IN ({LIKES})
                             OR try_cast(attributes['score.value'] AS DOUBLE) > 0.5 THEN 1 ELSE 0 END) AS likes,
                  sum(CASE WHEN attributes['score.value'] IN ({DISLIKES})
                             OR try_cast(attributes['score.value'] AS DOUBLE) < 0.5 THEN 1 ELSE 0 END) AS dislikes
           FROM spans
           WHERE node_type = 'score' AND {key} IN ({scope})
           GROUP BY {key}
         )"
    )
}

pub(crate) fn ts(ns: i64) -> String {
    format!("to_timestamp_nanos({ns})")
}

/// The statement: one row per group (the group, then the figures in the
/// order `Sums::add_row` reads them).
fn statement(req: &ConversationsRequest) -> String {
    let group = req
        .group_by
        .as_ref()
        .map_or_else(|| "CAST(NULL AS VARCHAR)".to_owned(), GroupBy::sql);
    let (from, to) = (ts(req.from_ns), ts(req.to_ns));
    let ended_before = ts(req.now_ns.saturating_sub(req.gap_ns));
    let runs = runs_cte(&group);
    let feedback = feedback_cte("session_id", "SELECT session_id FROM window_sessions");
    format!(
        "WITH {runs}, {TURNS_CTE},
         sessions AS (
           SELECT session_id,
                  max(CASE WHEN n = 1 THEN grp END) AS grp,
                  min(start_time) AS first_start,
                  max(end_time) AS last_seen,
                  count(*) AS turns,
                  sum(failed) AS failed,
                  sum(stopped) AS stopped,
                  max(CASE WHEN back = 1 AND (failed = 1 OR stopped = 1) THEN 1 ELSE 0 END) AS last_bad,
                  max(CASE WHEN back = 1 AND failed = 0 AND stopped = 0 AND running = 0 THEN 1 ELSE 0 END) AS last_ok,
                  avg(CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT)) AS mean_ns
           FROM turns GROUP BY session_id
         ),
         window_sessions AS (
           SELECT * FROM sessions WHERE first_start >= {from} AND first_start < {to}
         ),
         {feedback},
         usage AS (
           SELECT session_id, sum(cost) AS cost, sum(total_tokens) AS tokens
           FROM spans
           WHERE span_kind <> 'workflow' AND session_id IN (SELECT session_id FROM window_sessions)
           GROUP BY session_id
         ),
         joined AS (
           SELECT s.*, coalesce(f.likes, 0) AS likes, coalesce(f.dislikes, 0) AS dislikes,
                  coalesce(u.cost, 0) AS cost, coalesce(u.tokens, 0) AS tokens,
                  CASE WHEN s.last_seen < {ended_before} THEN 1 ELSE 0 END AS ended
           FROM window_sessions s
           LEFT JOIN feedback f ON f.session_id = s.session_id
           LEFT JOIN usage u ON u.session_id = s.session_id
         )
         SELECT grp,
                count(*) AS sessions,
                sum(turns) AS turns,
                sum(failed) AS failed,
                sum(stopped) AS stopped,
                sum(ended) AS ended,
                sum(ended * last_bad) AS abandoned,
                sum(CASE WHEN ended = 1 AND turns = 1 AND last_ok = 1 AND dislikes = 0 THEN 1 ELSE 0 END) AS resolved,
                sum(likes) AS likes,
                sum(dislikes) AS dislikes,
                sum(cost) AS cost,
                sum(tokens) AS tokens,
                sum(mean_ns * turns) AS turn_ns
         FROM joined GROUP BY grp ORDER BY sessions DESC, grp"
    )
}

pub(crate) fn int_of(v: Option<&Value>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(0)
}

fn float(v: Option<&Value>) -> f64 {
    v.and_then(Value::as_f64).unwrap_or(0.0)
}

pub(crate) fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Raw sums of one row (or of several, added), then the rates.
#[derive(Default)]
struct Sums {
    stats: ConversationStats,
    turn_ns: f64,
}

impl Sums {
    fn add_row(&mut self, row: &[Value]) {
        let s = &mut self.stats;
        s.sessions += int_of(row.get(1));
        s.turns += int_of(row.get(2));
        s.failed_turns += int_of(row.get(3));
        s.stopped_turns += int_of(row.get(4));
        s.ended_sessions += int_of(row.get(5));
        s.abandoned_sessions += int_of(row.get(6));
        s.first_turn_resolved += int_of(row.get(7));
        s.likes += int_of(row.get(8));
        s.dislikes += int_of(row.get(9));
        s.cost += float(row.get(10));
        s.tokens += int_of(row.get(11)) as i64;
        self.turn_ns += float(row.get(12));
    }

    fn finish(mut self, group: Option<String>) -> ConversationStats {
        let s = &mut self.stats;
        s.group = group;
        s.turns_per_session = ratio(s.turns, s.sessions).unwrap_or(0.0);
        s.abandonment_rate = ratio(s.abandoned_sessions, s.ended_sessions);
        s.first_turn_resolution_rate = ratio(s.first_turn_resolved, s.ended_sessions);
        s.satisfaction_rate = ratio(s.likes, s.likes + s.dislikes);
        s.mean_turn_ms =
            (s.turns > 0 && self.turn_ns > 0.0).then(|| self.turn_ns / s.turns as f64 / 1e6);
        self.stats
    }
}

/// Analyses the conversations of `project` (see the crate docs).
///
/// # Errors
/// [`AnalyticsError::Invalid`] for a bad window; the store's errors.
#[tracing::instrument(name = "analytics.conversations", skip(reader))]
pub async fn conversations(
    reader: &dyn SpanReader,
    project: &ProjectId,
    req: &ConversationsRequest,
) -> Result<ConversationsReport, AnalyticsError> {
    if req.from_ns >= req.to_ns {
        return Err(AnalyticsError::Invalid(
            "the window is empty: from must be before to".into(),
        ));
    }
    if req.gap_ns <= 0 {
        return Err(AnalyticsError::Invalid("gap must be positive".into()));
    }
    let limits = QueryLimits {
        max_rows: MAX_GROUPS + 1,
        ..req.limits
    };
    let mut total = Sums::default();
    let mut groups = Vec::new();
    let mut truncated = false;
    if req.group_by.is_some() {
        let answer = reader.sql(project, &statement(req), limits).await?;
        for row in answer.rows.iter().take(MAX_GROUPS) {
            let mut one = Sums::default();
            one.add_row(row);
            let group = row.first().and_then(Value::as_str).map(str::to_owned);
            groups.push(one.finish(group));
        }
        truncated = answer.rows.len() > MAX_GROUPS || answer.stats.truncated;
    }
    // The whole window, one group (what the groups add up to).
    let whole = ConversationsRequest {
        group_by: None,
        ..req.clone()
    };
    let answer = reader.sql(project, &statement(&whole), limits).await?;
    for row in &answer.rows {
        total.add_row(row);
    }
    Ok(ConversationsReport {
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        gap_ns: req.gap_ns,
        group_by: req.group_by.as_ref().map(GroupBy::name),
        total: total.finish(None),
        groups,
        truncated,
    })
}
