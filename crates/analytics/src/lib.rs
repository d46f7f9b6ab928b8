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
//! Everything is computed by the store in one SQL statement (grouping by
//! run, then by session, ordered aggregates instead of window functions),
//! so the answer's size is the number of groups, whatever the number of
//! sessions. Every analysis reads from its window's start on; what came
//! before (a session begun, a user seen earlier) is one narrow question
//! about the older runs' heads.

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

/// A run's *head* spans: its spans of kind `workflow` and its roots: a
/// workflow app's run span; a chatflow turn's message and run spans (both
/// `workflow`); a basic chat app's message (an `llm` or `agent` root); the
/// Phoenix provider's root above the run span; an OTel trace's root.
/// Feedback spans are not heads.
pub(crate) const HEADS: &str = "(span_kind = 'workflow' OR parent_span_id IS NULL) \
     AND (node_type IS NULL OR node_type <> 'score') AND start_time IS NOT NULL";

/// The `runs` CTE every analysis starts from: one row per run (Dify run or
/// chat turn, OTel trace), whichever source sent it, from its [`HEADS`]:
/// its session, the first start and last end of its heads, whether a head
/// failed, was stopped or is still running, and what [`Runs`] asks for.
///
/// Only heads starting at or after `from_ns` are read: what happened
/// before the window is asked separately and narrowly ([`seen_before`]),
/// so an analysis of the last day reads the last day, not all history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runs<'a> {
    /// Heads starting at or after this (ns).
    pub from_ns: i64,
    /// And before this, when set (ns).
    pub to_ns: Option<i64>,
    /// `grp`: an SQL expression over a head (a group or a label).
    pub group: Option<&'a str>,
    /// `user_id`.
    pub user: bool,
    /// `trace_id`.
    pub trace: bool,
    /// `output_len`: the longest head output, in characters.
    pub output_len: bool,
    /// `cost`: the sum over the run's spans other than `workflow` ones (a
    /// Dify run's usage is on its nodes, a chat app's on its message),
    /// read in the same pass as the heads.
    pub cost: bool,
}

impl<'a> Runs<'a> {
    /// Heads starting at or after `from_ns`, with only the common columns.
    pub(crate) fn since(from_ns: i64) -> Self {
        Self {
            from_ns,
            to_ns: None,
            group: None,
            user: false,
            trace: false,
            output_len: false,
            cost: false,
        }
    }

    pub(crate) fn cte(&self) -> String {
        let from = ts(self.from_ns);
        let to = self
            .to_ns
            .map(|to| format!(" AND start_time < {}", ts(to)))
            .unwrap_or_default();
        let head = format!("{HEADS}{to}");
        // With costs, the scan also reads the nodes, so every head figure
        // is taken over the heads only.
        let of_heads = |expr: &str| {
            if self.cost {
                format!("CASE WHEN {head} THEN {expr} END")
            } else {
                expr.to_owned()
            }
        };
        let flag = |test: &str| {
            if self.cost {
                format!("max(CASE WHEN {head} AND {test} THEN 1 ELSE 0 END)")
            } else {
                format!("max(CASE WHEN {test} THEN 1 ELSE 0 END)")
            }
        };
        let mut columns = vec![
            "coalesce(run_id, trace_id, span_id) AS run".to_owned(),
            format!("max({}) AS session_id", of_heads("session_id")),
            format!("min({}) AS start_time", of_heads("start_time")),
            format!(
                "max({}) AS end_time",
                of_heads("coalesce(end_time, start_time)")
            ),
            format!("{} AS failed", flag("status = 'error'")),
            format!("{} AS stopped", flag("raw_status = 'stopped'")),
            format!("{} AS running", flag("status = 'running'")),
        ];
        if let Some(group) = self.group {
            columns.push(format!("max({}) AS grp", of_heads(group)));
        }
        if self.user {
            columns.push(format!("max({}) AS user_id", of_heads("user_id")));
        }
        if self.trace {
            columns.push(format!("max({}) AS trace_id", of_heads("trace_id")));
        }
        if self.output_len {
            columns.push(format!(
                "max({}) AS output_len",
                of_heads("character_length(coalesce(output, ''))")
            ));
        }
        let (filter, having) = if self.cost {
            columns.push("sum(CASE WHEN span_kind <> 'workflow' THEN cost END) AS cost".into());
            (
                format!(
                    "start_time >= {from} AND (({head}) OR (span_kind <> 'workflow' AND cost IS NOT NULL))"
                ),
                format!(" HAVING {} = 1", flag("true")),
            )
        } else {
            (format!("{head} AND start_time >= {from}"), String::new())
        };
        format!(
            "runs AS (
           SELECT {columns}
           FROM spans
           WHERE {filter}
           GROUP BY 1{having})",
            columns = columns.join(",\n                  "),
        )
    }
}

/// A CTE `name` of the values of `key` (`session_id`, `user_id`) that head
/// a run starting before `from_ns`: sessions begun, users seen before the
/// window. One column of the older heads is read.
pub(crate) fn seen_before(name: &str, key: &str, from_ns: i64) -> String {
    format!(
        "{name} AS (
           SELECT DISTINCT {key} AS k FROM spans
           WHERE {HEADS} AND start_time < {from} AND {key} IS NOT NULL AND {key} <> '')",
        from = ts(from_ns)
    )
}

/// The `feedback` CTE: likes and dislikes of the `score` spans per `key`
/// (`session_id`, `trace_id`) starting at or after `from_ns` (feedback
/// follows the answer it judges). A like is one of [`LIKES`] or a number
/// above 0.5, a dislike one of [`DISLIKES`] or a number below it. The
/// filter on `node_type` is pushed into the scan, so only feedback rows'
/// attributes are decoded.
pub(crate) fn feedback_cte(key: &str, from_ns: i64) -> String {
    format!(
        "feedback AS (
           SELECT {key},
                  sum(CASE WHEN attributes['score.value'] IN ({LIKES})
                             OR try_cast(attributes['score.value'] AS DOUBLE) > 0.5 THEN 1 ELSE 0 END) AS likes,
                  sum(CASE WHEN attributes['score.value'] IN ({DISLIKES})
                             OR try_cast(attributes['score.value'] AS DOUBLE) < 0.5 THEN 1 ELSE 0 END) AS dislikes
           FROM spans
           WHERE node_type = 'score' AND start_time >= {from} AND {key} IS NOT NULL
           GROUP BY {key}
         )",
        from = ts(from_ns)
    )
}

pub(crate) fn ts(ns: i64) -> String {
    format!("to_timestamp_nanos({ns})")
}

/// The statement: one row for the whole window (`whole` = 1), then one
/// per group (the group, then the figures in the order `Sums::add_row`
/// reads them), in one pass (`GROUPING SETS`).
///
/// Each CTE is used once (DataFusion inlines CTEs: a second use would run
/// its scan and grouping again). Sessions begun before the window are
/// dropped by [`seen_before`]; everything else reads from the window's
/// start on, since a session's turns, usage and feedback all follow its
/// first turn.
fn statement(req: &ConversationsRequest) -> String {
    let group = req
        .group_by
        .as_ref()
        .map_or_else(|| "CAST(NULL AS VARCHAR)".to_owned(), GroupBy::sql);
    let (from, to) = (ts(req.from_ns), ts(req.to_ns));
    let ended_before = ts(req.now_ns.saturating_sub(req.gap_ns));
    let runs = Runs {
        group: Some(&group),
        ..Runs::since(req.from_ns)
    }
    .cte();
    let seen = seen_before("seen", "session_id", req.from_ns);
    let feedback = feedback_cte("session_id", req.from_ns);
    format!(
        "WITH {runs},
         sessions AS (
           SELECT session_id,
                  first_value(grp ORDER BY start_time, run) AS grp,
                  max(end_time) AS last_seen,
                  count(*) AS turns,
                  sum(failed) AS failed,
                  sum(stopped) AS stopped,
                  last_value(CASE WHEN failed = 1 OR stopped = 1 THEN 1 ELSE 0 END
                             ORDER BY start_time, run) AS last_bad,
                  last_value(CASE WHEN failed = 0 AND stopped = 0 AND running = 0 THEN 1 ELSE 0 END
                             ORDER BY start_time, run) AS last_ok,
                  sum(CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT)) AS turn_ns
           FROM runs
           WHERE session_id IS NOT NULL AND session_id <> ''
           GROUP BY session_id
           HAVING min(start_time) < {to}
         ),
         {seen},
         {feedback},
         usage AS (
           SELECT session_id, sum(cost) AS cost, sum(total_tokens) AS tokens
           FROM spans
           WHERE span_kind <> 'workflow' AND start_time >= {from}
             AND (cost IS NOT NULL OR total_tokens IS NOT NULL)
             AND session_id IS NOT NULL AND session_id <> ''
           GROUP BY session_id
         ),
         joined AS (
           SELECT s.*, coalesce(f.likes, 0) AS likes, coalesce(f.dislikes, 0) AS dislikes,
                  coalesce(u.cost, 0) AS cost, coalesce(u.tokens, 0) AS tokens,
                  CASE WHEN s.last_seen < {ended_before} THEN 1 ELSE 0 END AS ended
           FROM sessions s
           LEFT JOIN feedback f ON f.session_id = s.session_id
           LEFT JOIN usage u ON u.session_id = s.session_id
           WHERE NOT EXISTS (SELECT 1 FROM seen WHERE seen.k = s.session_id)
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
                sum(turn_ns) AS turn_ns,
                grouping(grp) AS whole
         FROM joined GROUP BY GROUPING SETS ((grp), ())
         ORDER BY whole DESC, sessions DESC, grp"
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
    // The whole window's row, then at most MAX_GROUPS groups and one more
    // to tell that some were left out.
    let limits = QueryLimits {
        max_rows: MAX_GROUPS + 2,
        ..req.limits
    };
    let answer = reader.sql(project, &statement(req), limits).await?;
    let mut total = Sums::default();
    let mut groups = Vec::new();
    let mut more = answer.stats.truncated;
    for row in &answer.rows {
        if int_of(row.get(13)) == 1 {
            total.add_row(row);
        } else if req.group_by.is_none() {
            // Ungrouped, the one group is the whole window again.
        } else if groups.len() == MAX_GROUPS {
            more = true;
        } else {
            let mut one = Sums::default();
            one.add_row(row);
            let group = row.first().and_then(Value::as_str).map(str::to_owned);
            groups.push(one.finish(group));
        }
    }
    let truncated = req.group_by.is_some() && more;
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
