//! Users: new against returning, whether users come back after a failed
//! run, and weekly retention by first-seen cohort (issue 20, item 3).
//!
//! A user is the `user_id` of runs (Dify runs and chat turns, OTel traces:
//! see `Runs`). **New** in the
//! window: first seen (over everything stored) inside it; **returning**:
//! first seen before it. A **visit** ends with a run followed by no run of
//! the same user within `gap`; the user **came back** when another run
//! follows within `within`. The return rate after visits that ended in a
//! failure, against those that ended well, is "how a failed run changes
//! the chance that the user comes back". Visits ending later than
//! `now - within` are not judged yet. **Retention**: users first seen in
//! week `c` of the window (weeks counted from `from`) and active in week
//! `c + k`.

use loupe_backend::{QueryLimits, SpanReader};
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AnalyticsError, Runs, int_of as int, ratio, seen_before, ts};

const WEEK_NS: i64 = 7 * 86_400 * 1_000_000_000;

/// Most weeks of retention shown.
pub const MAX_WEEKS: usize = 26;

/// One users analysis.
#[derive(Debug, Clone)]
pub struct UsersRequest {
    /// Window start (ns).
    pub from_ns: i64,
    /// Window end (ns).
    pub to_ns: i64,
    /// "Now": visits ending after `now - within` are not judged.
    pub now_ns: i64,
    /// Quiet time that ends a visit.
    pub gap_ns: i64,
    /// How soon a user must return to count as come back.
    pub within_ns: i64,
    /// Retention weeks after the cohort week (at most [`MAX_WEEKS`]).
    pub weeks: usize,
    /// Memory and row limits for the store.
    pub limits: QueryLimits,
}

/// New or returning users of the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserGroup {
    /// Users.
    pub users: u64,
    /// Their runs in the window.
    pub runs: u64,
    /// Their failed runs.
    pub failed_runs: u64,
    /// `failed_runs / runs`.
    pub failure_rate: Option<f64>,
}

/// Visits ending one way, and how many users came back after them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Comeback {
    /// Visits judged.
    pub visits: u64,
    /// Followed by a run within `within`.
    pub returned: u64,
    /// `returned / visits`.
    pub return_rate: Option<f64>,
}

/// One first-seen cohort.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// Start of the cohort's week (ns).
    pub week_start_ns: i64,
    /// Users first seen that week.
    pub users: u64,
    /// `active[k]`: of them, users with a run in week `k` after (0 = the
    /// cohort week itself), up to the week of `now`.
    pub active: Vec<u64>,
}

/// The answer of [`users`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsersReport {
    /// Window start.
    pub from_ns: i64,
    /// Window end.
    pub to_ns: i64,
    /// Users first seen in the window.
    pub new: UserGroup,
    /// Users first seen before it.
    pub returning: UserGroup,
    /// Visits that ended with a failed run.
    pub after_failure: Comeback,
    /// Visits that ended with a run that did not fail.
    pub after_success: Comeback,
    /// Weekly cohorts of the window, oldest first.
    pub retention: Vec<Cohort>,
}

/// Runs with a user from the window's start on: [`Runs`]; `user_runs` (in
/// [`USER_RUNS`]) keeps those naming one.
fn user_runs(from_ns: i64) -> Runs<'static> {
    Runs {
        user: true,
        ..Runs::since(from_ns)
    }
}

/// The CTE of the runs naming a user, after `runs`.
const USER_RUNS: &str = "user_runs AS (SELECT user_id, start_time, failed FROM runs WHERE user_id IS NOT NULL AND user_id <> '')";

/// Runs from the window's start on: the run after a run of the window is
/// later still.
fn comeback_sql(req: &UsersRequest, runs: &str) -> String {
    let (from, to) = (ts(req.from_ns), ts(req.to_ns));
    let judged_before = ts(req.now_ns.saturating_sub(req.within_ns));
    let (gap, within) = (req.gap_ns, req.within_ns);
    format!(
        "WITH {runs}, {USER_RUNS},
         seq AS (
           SELECT start_time, failed,
                  CAST(lead(start_time) OVER (PARTITION BY user_id ORDER BY start_time) AS BIGINT)
                    - CAST(start_time AS BIGINT) AS next_in
           FROM user_runs)
         SELECT CASE WHEN failed = 1 THEN 'failed' ELSE 'ok' END AS outcome,
                count(*) AS visits,
                sum(CASE WHEN next_in IS NOT NULL AND next_in <= {within} THEN 1 ELSE 0 END) AS returned
         FROM seq
         WHERE start_time >= {from} AND start_time < {to} AND start_time < {judged_before}
           AND (next_in IS NULL OR next_in > {gap})
         GROUP BY 1"
    )
}

/// New and returning users, and the weekly retention of the new ones, in
/// one pass: runs from the window's start on grouped by user and week
/// (counting the window's runs), each user's first week and first run over
/// those rows, then two grouping sets: by new/returning (a user is counted
/// once, at their first week's row) and by cohort week and week after it
/// (each row is one active week of a user first seen in the window; users
/// seen before it are by [`seen_before`]).
fn users_sql(req: &UsersRequest, runs: &str) -> String {
    let to = ts(req.to_ns);
    let seen = seen_before("seen", "user_id", req.from_ns);
    let anchor = req.from_ns;
    format!(
        "WITH {runs}, {USER_RUNS}, {seen},
         weeks AS (
           SELECT user_id, (CAST(start_time AS BIGINT) - {anchor}) / {WEEK_NS} AS w,
                  min(start_time) AS first,
                  sum(CASE WHEN start_time < {to} THEN 1 ELSE 0 END) AS n,
                  sum(CASE WHEN start_time < {to} THEN failed ELSE 0 END) AS failed
           FROM user_runs GROUP BY 1, 2),
         per AS (
           SELECT w.w, w.n, w.failed,
                  min(w.w) OVER (PARTITION BY w.user_id) AS c,
                  w.w - min(w.w) OVER (PARTITION BY w.user_id) AS k,
                  min(w.first) OVER (PARTITION BY w.user_id) AS first_seen,
                  sum(w.n) OVER (PARTITION BY w.user_id) AS user_n,
                  CASE WHEN s.k IS NULL THEN 'new' ELSE 'returning' END AS kind
           FROM weeks w LEFT JOIN seen s ON s.k = w.user_id)
         SELECT grouping(kind) AS retention, kind, c AS cohort, k,
                sum(CASE WHEN k = 0 AND user_n > 0 THEN 1 ELSE 0 END) AS users,
                sum(n) AS runs, sum(failed) AS failed,
                sum(CASE WHEN kind = 'new' AND first_seen < {to} THEN 1 ELSE 0 END) AS cohort_users
         FROM per
         GROUP BY GROUPING SETS ((kind), (c, k))
         ORDER BY 1, 3, 4"
    )
}

/// Analyses the users of `project` (see the module docs).
///
/// # Errors
/// [`AnalyticsError::Invalid`] for a bad window or settings; the store's.
#[tracing::instrument(name = "analytics.users", skip(reader))]
pub async fn users(
    reader: &dyn SpanReader,
    project: &ProjectId,
    req: &UsersRequest,
) -> Result<UsersReport, AnalyticsError> {
    if req.from_ns >= req.to_ns {
        return Err(AnalyticsError::Invalid(
            "the window is empty: from must be before to".into(),
        ));
    }
    if req.gap_ns <= 0 || req.within_ns <= 0 {
        return Err(AnalyticsError::Invalid(
            "gap and within must be positive".into(),
        ));
    }
    if req.weeks > MAX_WEEKS {
        return Err(AnalyticsError::Invalid(format!(
            "at most {MAX_WEEKS} weeks of retention, {} asked",
            req.weeks
        )));
    }
    let limits = QueryLimits {
        max_rows: 10_000,
        ..req.limits
    };
    let mut report = UsersReport {
        from_ns: req.from_ns,
        to_ns: req.to_ns,
        ..UsersReport::default()
    };
    let runs = user_runs(req.from_ns);
    let both = runs
        .sql(reader, project, &|runs| users_sql(req, runs), limits)
        .await?
        .rows;
    let (cohorts, groups): (Vec<_>, Vec<_>) =
        both.into_iter().partition(|row| int(row.first()) == 1);
    for row in groups {
        let group = UserGroup {
            users: int(row.get(4)),
            runs: int(row.get(5)),
            failed_runs: int(row.get(6)),
            failure_rate: ratio(int(row.get(6)), int(row.get(5))),
        };
        match row.get(1).and_then(Value::as_str) {
            Some("new") => report.new = group,
            _ => report.returning = group,
        }
    }
    let comebacks = runs
        .sql(reader, project, &|runs| comeback_sql(req, runs), limits)
        .await?
        .rows;
    for row in comebacks {
        let visits = int(row.get(1));
        let returned = int(row.get(2));
        let c = Comeback {
            visits,
            returned,
            return_rate: ratio(returned, visits),
        };
        match row.first().and_then(Value::as_str) {
            Some("failed") => report.after_failure = c,
            _ => report.after_success = c,
        }
    }
    let now_week = (req.now_ns.saturating_sub(req.from_ns)) / WEEK_NS;
    // Cohort rows, by cohort then week; rows of returning users only
    // count nothing.
    for row in cohorts.iter().filter(|row| int(row.get(7)) > 0) {
        let cohort = row.get(2).and_then(Value::as_i64).unwrap_or(0);
        let k = int(row.get(3)) as usize;
        let n = int(row.get(7));
        let at = match report.retention.last() {
            Some(last) if last.week_start_ns == req.from_ns + cohort * WEEK_NS => {
                report.retention.len() - 1
            }
            _ => {
                let shown = usize::try_from((now_week - cohort).max(0))
                    .unwrap_or(0)
                    .min(req.weeks);
                report.retention.push(Cohort {
                    week_start_ns: req.from_ns + cohort * WEEK_NS,
                    users: 0,
                    active: vec![0; shown + 1],
                });
                report.retention.len() - 1
            }
        };
        let c = &mut report.retention[at];
        if k == 0 {
            c.users = n;
        }
        if let Some(slot) = c.active.get_mut(k) {
            *slot = n;
        }
    }
    Ok(report)
}
