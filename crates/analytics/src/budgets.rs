//! Cost budgets (issue 20, item 5): a spending limit per day, week or
//! month for a project, optionally narrowed to an app, a user or a business
//! tag, optionally per user, app or tag value, with thresholds (80 %, 100 %
//! by default) that notify once each per period and resolve when the next
//! period starts.
//!
//! [`spend`] reads what was spent so far in the current period (the sum of
//! `cost` of the spans starting in it); [`BudgetState::step`] turns spends
//! into [`Crossing`]s. Sending them is the caller's (`loupe serve` sends
//! them through the alert channels); the state is plain data the caller
//! persists, so a restart never repeats a notice.

use std::collections::BTreeMap;

use chrono::{Datelike, TimeZone, Utc};
use loupe_backend::{QueryLimits, SpanReader};
use loupe_model::ProjectId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AnalyticsError, GroupBy, ts};

/// How long a budget lasts before it starts again (calendar, UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the 1st, 00:00 UTC.
    #[default]
    Month,
}

impl Period {
    /// Start of the period holding `now_ns` (ns).
    pub fn start(self, now_ns: i64) -> i64 {
        let now = Utc.timestamp_nanos(now_ns);
        let day = now.date_naive();
        let first = match self {
            Period::Day => day,
            Period::Week => {
                day - chrono::Days::new(u64::from(now.weekday().num_days_from_monday()))
            }
            Period::Month => day.with_day(1).unwrap_or(day),
        };
        first
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_utc().timestamp_nanos_opt())
            .unwrap_or(i64::MIN)
    }
}

/// One budget, as written in `[[budgets]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Name (unique), in notices as the alert name.
    pub name: String,
    /// Project whose spans count.
    #[serde(default = "default_project")]
    pub project: String,
    /// Limit per period, in `currency`.
    pub amount: f64,
    /// The currency of `amount`; only spans costed in it count (default:
    /// `[costs] currency`, which other currencies with a rate are converted
    /// to at ingest). Spend in other currencies is listed, not added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `day`, `week` or `month` (default).
    #[serde(default)]
    pub period: Period,
    /// Only spans with these values: `app_id`, `app_name`, `user_id`,
    /// `workflow_id`, `model_name` or `tags.<key>` → value.
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
    /// One budget per value of `app`, `user` or `tags.<key>` (each user
    /// gets `amount`); none: one budget for everything the filter keeps.
    #[serde(default)]
    pub per: Option<String>,
    /// Shares of `amount` that notify (default 0.8 and 1.0).
    #[serde(default = "default_thresholds")]
    pub thresholds: Vec<f64>,
    /// Alert channels to notify (`[[alerts.channels]]` names).
    #[serde(default)]
    pub notify: Vec<String>,
}

fn default_project() -> String {
    "default".into()
}

fn default_thresholds() -> Vec<f64> {
    vec![0.8, 1.0]
}

/// Columns a filter may name.
const FILTER_COLUMNS: [&str; 5] = ["app_id", "app_name", "user_id", "workflow_id", "model_name"];

impl BudgetConfig {
    /// Checks the budget, naming what is wrong.
    ///
    /// # Errors
    /// A non-positive amount, bad thresholds, an unknown filter or `per`.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        let bad = |m: String| {
            Err(AnalyticsError::Invalid(format!(
                "budget {:?}: {m}",
                self.name
            )))
        };
        if self.name.trim().is_empty() {
            return Err(AnalyticsError::Invalid("a budget needs a name".into()));
        }
        if !(self.amount.is_finite() && self.amount > 0.0) {
            return bad("amount must be a positive number".into());
        }
        if self.thresholds.is_empty()
            || self.thresholds.len() > 10
            || self
                .thresholds
                .iter()
                .any(|t| !(t.is_finite() && *t > 0.0 && *t <= 10.0))
        {
            return bad("thresholds must be 1 to 10 shares of the amount in (0, 10]".into());
        }
        for key in self.filter.keys() {
            if !FILTER_COLUMNS.contains(&key.as_str()) && GroupBy::parse(key).is_err() {
                return bad(format!(
                    "cannot filter on {key:?}: use {} or tags.<key>",
                    FILTER_COLUMNS.join(", ")
                ));
            }
        }
        if let Some(c) = &self.currency
            && !loupe_model::currency::is_code(&loupe_model::currency::normalise(c))
        {
            return bad(format!(
                "currency {c:?}: use a three-letter ISO 4217 code such as \"USD\""
            ));
        }
        if let Some(per) = &self.per {
            per_sql(per).map_err(|_| {
                AnalyticsError::Invalid(format!(
                    "budget {:?}: per {per:?}: use user, app or tags.<key>",
                    self.name
                ))
            })?;
        }
        Ok(())
    }
}

fn per_sql(per: &str) -> Result<String, AnalyticsError> {
    match per {
        "user" => Ok("user_id".into()),
        "app" => Ok(GroupBy::App.sql()),
        other => GroupBy::parse(other).map(|g| g.sql()),
    }
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The currency a budget counts when it names none.
pub const DEFAULT_CURRENCY: &str = "USD";

/// What was spent so far in the current period, per group (`None`: the
/// budget is not per anything, or spans without the `per` value). Only
/// spans costed in the budget's currency (or in none) count.
///
/// # Errors
/// An invalid budget; the store's errors.
pub async fn spend(
    reader: &dyn SpanReader,
    budget: &BudgetConfig,
    now_ns: i64,
    limits: QueryLimits,
) -> Result<Vec<(Option<String>, f64)>, AnalyticsError> {
    let (project, filters) = period_filter(budget, now_ns)?;
    let group = match &budget.per {
        Some(per) => per_sql(per)?,
        None => "CAST(NULL AS VARCHAR)".into(),
    };
    let sql = format!(
        "SELECT {group} AS g, sum(cost) AS spent FROM spans
         WHERE {filters} AND (currency IS NULL OR currency IN ({}))
         GROUP BY 1 ORDER BY 2 DESC",
        currency_list(budget)
    );
    let answer = reader
        .sql(
            &project,
            &sql,
            QueryLimits {
                max_rows: 10_000,
                ..limits
            },
        )
        .await?;
    Ok(answer
        .rows
        .iter()
        .map(|row| {
            (
                row.first().and_then(Value::as_str).map(str::to_owned),
                row.get(1).and_then(Value::as_f64).unwrap_or(0.0),
            )
        })
        .collect())
}

/// What the budget's filter kept this period in *other* currencies (no
/// rate in `[costs]`), per currency: not added to the spend, because a sum
/// across currencies means nothing, but shown so it is never hidden.
///
/// # Errors
/// As [`spend`].
pub async fn uncounted(
    reader: &dyn SpanReader,
    budget: &BudgetConfig,
    now_ns: i64,
    limits: QueryLimits,
) -> Result<Vec<(String, f64)>, AnalyticsError> {
    let (project, filters) = period_filter(budget, now_ns)?;
    let sql = format!(
        "SELECT currency, sum(cost) FROM spans
         WHERE {filters} AND currency NOT IN ({})
         GROUP BY 1 ORDER BY 2 DESC LIMIT 50",
        currency_list(budget)
    );
    let answer = reader.sql(&project, &sql, limits).await?;
    Ok(answer
        .rows
        .iter()
        .filter_map(|row| {
            Some((
                row.first().and_then(Value::as_str)?.to_owned(),
                row.get(1).and_then(Value::as_f64).unwrap_or(0.0),
            ))
        })
        .collect())
}

/// The budget's currency as stored, in every spelling older data may have.
fn currency_list(budget: &BudgetConfig) -> String {
    let code = budget.currency.as_deref().unwrap_or(DEFAULT_CURRENCY);
    loupe_model::currency::spellings(code)
        .iter()
        .map(|c| literal(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The project and the `WHERE` terms common to [`spend`] and
/// [`uncounted`]: spans with a cost, starting in the current period, kept
/// by the budget's filter.
fn period_filter(
    budget: &BudgetConfig,
    now_ns: i64,
) -> Result<(ProjectId, String), AnalyticsError> {
    budget.validate()?;
    let project = ProjectId::new(budget.project.clone())
        .map_err(|e| AnalyticsError::Invalid(format!("budget {:?}: {e}", budget.name)))?;
    let from = ts(budget.period.start(now_ns));
    let mut filters = format!("cost IS NOT NULL AND start_time >= {from}");
    for (key, value) in &budget.filter {
        let column = if FILTER_COLUMNS.contains(&key.as_str()) {
            key.clone()
        } else {
            GroupBy::parse(key)?.sql()
        };
        filters.push_str(&format!(" AND {column} = {}", literal(value)));
    }
    Ok((project, filters))
}

/// A threshold crossed (or a period over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// The budget.
    pub budget: String,
    /// The `per` value (none: the whole budget).
    pub group: Option<String>,
    /// The share of the amount crossed.
    pub threshold: f64,
    /// Spent so far in the period.
    pub spent: f64,
    /// The amount.
    pub amount: f64,
    /// Start of the period (ns).
    pub period_start_ns: i64,
    /// `true`: the period ended, the alert resolves.
    pub resolved: bool,
}

/// What one budget already notified in its current period. Plain data:
/// the caller persists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    /// Start of the period the state is of (ns).
    pub period_start_ns: i64,
    /// Per group (`""`: the whole budget), the thresholds notified.
    pub notified: BTreeMap<String, Vec<f64>>,
}

impl BudgetState {
    /// Applies the spends seen at `now_ns`: a new period resolves what
    /// fired in the last one and starts afresh; each threshold a group has
    /// reached notifies once.
    pub fn step(
        &mut self,
        budget: &BudgetConfig,
        spends: &[(Option<String>, f64)],
        now_ns: i64,
    ) -> Vec<Crossing> {
        let mut out = Vec::new();
        let start = budget.period.start(now_ns);
        if start != self.period_start_ns {
            for (group, thresholds) in std::mem::take(&mut self.notified) {
                if let Some(top) = thresholds.iter().copied().reduce(f64::max) {
                    out.push(Crossing {
                        budget: budget.name.clone(),
                        group: (!group.is_empty()).then_some(group),
                        threshold: top,
                        spent: 0.0,
                        amount: budget.amount,
                        period_start_ns: self.period_start_ns,
                        resolved: true,
                    });
                }
            }
            self.period_start_ns = start;
        }
        let mut thresholds = budget.thresholds.clone();
        thresholds.sort_by(f64::total_cmp);
        for (group, spent) in spends {
            let key = group.clone().unwrap_or_default();
            for &t in &thresholds {
                if *spent < t * budget.amount {
                    break;
                }
                let done = self.notified.entry(key.clone()).or_default();
                if done.iter().any(|d| (d - t).abs() < 1e-12) {
                    continue;
                }
                done.push(t);
                out.push(Crossing {
                    budget: budget.name.clone(),
                    group: group.clone(),
                    threshold: t,
                    spent: *spent,
                    amount: budget.amount,
                    period_start_ns: start,
                    resolved: false,
                });
            }
        }
        out
    }
}
