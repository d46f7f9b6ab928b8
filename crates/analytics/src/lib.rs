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
//! - cost and tokens of the sessions' runs (every span of a run but its
//!   `workflow` ones: a Dify run's usage is on its nodes, a chat app's on
//!   its message), and the mean turn latency.
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

use loupe_backend::{HOUR_NS, Partials, QueryLimits, QueryResult, SpanReader, StoreError};
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
/// its session, user and trace, the first start and last end of its heads,
/// whether a head failed, was stopped or is still running, its longest
/// head output (characters), and the cost and tokens of its spans other
/// than `workflow` ones (a Dify run's usage is on its nodes, a chat app's
/// on its message), read in the same pass as the heads; `grp` when asked.
///
/// Only rows starting at or after `from_ns` are read: what happened
/// before the window is asked separately and narrowly ([`seen_before`]),
/// so an analysis of the last day reads the last day, not all history.
/// Every analysis asks for the same columns, so they share the store's
/// cached hours (see [`Runs::sql`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Runs<'a> {
    /// Rows starting at or after this (ns).
    pub from_ns: i64,
    /// Heads before this, when set (ns); usage is read to the end.
    pub to_ns: Option<i64>,
    /// `grp`: an SQL expression over a head (a group or a label).
    pub group: Option<&'a str>,
    /// The columns the analysis reads besides the run, session, times and
    /// flags: `user_id`, `trace_id`, `output_len`, `cost` and `tokens`
    /// (the cached hours hold them all; re-aggregating only those needed
    /// saves the memory of the others' string maxima).
    pub user: bool,
    /// `trace_id`.
    pub trace: bool,
    /// `output_len`.
    pub output_len: bool,
    /// `cost` and `tokens`.
    pub usage: bool,
}

impl<'a> Runs<'a> {
    /// Runs with a head starting at or after `from_ns`, ungrouped.
    pub(crate) fn since(from_ns: i64) -> Self {
        Self {
            from_ns,
            to_ns: None,
            group: None,
            user: false,
            trace: false,
            output_len: false,
            usage: false,
        }
    }

    /// A key of what [`Self::partial_sql`] reads, but its range (and `to`,
    /// which only bounds hours it does not cover whole).
    fn key(&self) -> String {
        format!("runs v2 group={:?}", self.group)
    }

    /// One row per (hour, run) of the heads and the priced nodes starting
    /// in `[lo, hi)`: the hour `h`, the run, then the figures of the `runs`
    /// CTE over those rows alone. Each figure is a `min`, `max` or `sum`,
    /// so [`Self::merge_cte`] over the rows of several ranges gives the
    /// figures over their union exactly.
    fn partial_sql(&self, lo: i64, hi: Option<i64>) -> String {
        let range = match hi {
            Some(hi) => format!("start_time >= {} AND start_time < {}", ts(lo), ts(hi)),
            None => format!("start_time >= {}", ts(lo)),
        };
        let to = self
            .to_ns
            .map(|to| format!(" AND start_time < {}", ts(to)))
            .unwrap_or_default();
        let head = format!("{HEADS}{to}");
        // The scan also reads the nodes, so every head figure is taken
        // over the heads only.
        let of_heads = |expr: &str| format!("CASE WHEN {head} THEN {expr} END");
        let flag = |test: &str| format!("max(CASE WHEN {head} AND {test} THEN 1 ELSE 0 END)");
        let node = |expr: &str| format!("sum(CASE WHEN span_kind <> 'workflow' THEN {expr} END)");
        let mut columns = vec![
            // The hour (floor: the store caches only hours after 1970).
            format!("CAST(start_time AS BIGINT) / {HOUR_NS} AS h"),
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
            format!("max({}) AS user_id", of_heads("user_id")),
            format!("max({}) AS trace_id", of_heads("trace_id")),
            format!(
                "max({}) AS output_len",
                of_heads("character_length(coalesce(output, ''))")
            ),
            format!("{} AS cost", node("cost")),
            format!("{} AS tokens", node("total_tokens")),
            format!("{} AS has_head", flag("true")),
        ];
        if let Some(group) = self.group {
            columns.push(format!("max({}) AS grp", of_heads(group)));
        }
        format!(
            "SELECT {columns}
           FROM spans
           WHERE {range} AND (({head})
             OR (span_kind <> 'workflow' AND (cost IS NOT NULL OR total_tokens IS NOT NULL)))
           GROUP BY 1, 2",
            columns = columns.join(",\n                  "),
        )
    }

    /// The `runs` CTE over `run_parts` (rows of [`Self::partial_sql`]):
    /// one row per run (Dify run or chat turn, OTel trace) with a head in
    /// the window.
    fn merge_cte(&self) -> String {
        // Ungrouped, `grp` is NULL (and the hours are those of every
        // ungrouped analysis: the same key).
        let mut columns = vec![
            "run",
            "max(session_id) AS session_id",
            "min(start_time) AS start_time",
            "max(end_time) AS end_time",
            "max(failed) AS failed",
            "max(stopped) AS stopped",
            "max(running) AS running",
            if self.group.is_some() {
                "max(grp) AS grp"
            } else {
                "CAST(NULL AS VARCHAR) AS grp"
            },
        ];
        if self.user {
            columns.push("max(user_id) AS user_id");
        }
        if self.trace {
            columns.push("max(trace_id) AS trace_id");
        }
        if self.output_len {
            columns.push("max(output_len) AS output_len");
        }
        if self.usage {
            columns.extend(["sum(cost) AS cost", "sum(tokens) AS tokens"]);
        }
        format!(
            "runs AS (
           SELECT {columns}
           FROM run_parts
           GROUP BY run
           HAVING max(has_head) = 1)",
            columns = columns.join(", ")
        )
    }

    /// Runs `statement`, given the `runs` CTE (and what it reads, to put
    /// after `WITH`), through [`SpanReader::sql_with_partials`]: a store
    /// that caches whole hours of `run_parts` reads only the rest.
    pub(crate) async fn sql(
        &self,
        reader: &dyn SpanReader,
        project: &ProjectId,
        statement: &(dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> Result<QueryResult, StoreError> {
        let part = |lo: i64, hi: Option<i64>| self.partial_sql(lo, hi);
        let partials = Partials {
            name: "run_parts",
            key: self.key(),
            from_ns: self.from_ns,
            stable_to: self.to_ns,
            sql: &part,
        };
        let merge = self.merge_cte();
        let whole = |parts: &str| statement(&format!("{parts}{merge}"));
        reader
            .sql_with_partials(project, &partials, &whole, limits)
            .await
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
/// its scan and grouping again). A session's turns are sorted as (start,
/// run, …) structs, its first turn's group and last turn's outcome read off
/// the ends (as paths do; ordered `first_value`/`last_value` aggregates
/// took longer). Sessions begun before the window are
/// dropped by [`seen_before`]; everything else reads from the window's
/// start on, since a session's turns, usage and feedback all follow its
/// first turn. A session's cost and tokens are its runs' (`runs`).
fn statement(req: &ConversationsRequest, runs: &str) -> String {
    let to = ts(req.to_ns);
    let ended_before = ts(req.now_ns.saturating_sub(req.gap_ns));
    let seen = seen_before("seen", "session_id", req.from_ns);
    let feedback = feedback_cte("session_id", req.from_ns);
    format!(
        "WITH {runs},
         sessions AS (
           SELECT session_id, last_seen, turns, failed, stopped, turn_ns, cost, tokens,
                  in_order[1]['g'] AS grp,
                  in_order[turns]['b'] AS last_bad,
                  in_order[turns]['o'] AS last_ok
           FROM (
             SELECT session_id,
                    array_sort(array_agg(named_struct('t', start_time, 'r', run, 'g', grp,
                      'b', CASE WHEN failed = 1 OR stopped = 1 THEN 1 ELSE 0 END,
                      'o', CASE WHEN failed = 0 AND stopped = 0 AND running = 0 THEN 1 ELSE 0 END)))
                      AS in_order,
                    max(end_time) AS last_seen,
                    count(*) AS turns,
                    sum(failed) AS failed,
                    sum(stopped) AS stopped,
                    sum(CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT)) AS turn_ns,
                    coalesce(sum(cost), 0) AS cost,
                    coalesce(sum(tokens), 0) AS tokens
             FROM runs
             WHERE session_id IS NOT NULL AND session_id <> ''
             GROUP BY session_id
             HAVING min(start_time) < {to})
         ),
         {seen},
         {feedback},
         joined AS (
           SELECT s.*, coalesce(f.likes, 0) AS likes, coalesce(f.dislikes, 0) AS dislikes,
                  CASE WHEN s.last_seen < {ended_before} THEN 1 ELSE 0 END AS ended
           FROM sessions s
           LEFT JOIN feedback f ON f.session_id = s.session_id
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
    let group = req.group_by.as_ref().map(GroupBy::sql);
    let runs = Runs {
        group: group.as_deref(),
        usage: true,
        ..Runs::since(req.from_ns)
    };
    let answer = runs
        .sql(reader, project, &|runs| statement(req, runs), limits)
        .await?;
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
