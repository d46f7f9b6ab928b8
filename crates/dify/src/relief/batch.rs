//! One cleanup batch, the same flow for runs and messages (their
//! differences are [`Family`]): read a keyset page, skip open rows, verify
//! the rest against the store, then delete the verified rows in one short
//! transaction after re-checking them under lock. Lock and statement
//! timeouts retry the batch with backoff, then skip it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::delete::{self, Key};
use super::family::{Ctx, Family};
use super::verify::{self, Item, Verdict};
use super::{Cleaner, CleanupReport, Scope};
use crate::Error;
use crate::sync::Checkpoint;
use crate::sync::Position;

/// The keyset window of one page.
pub(crate) struct Bounds<'a> {
    /// Exclusive start.
    pub after: (NaiveDateTime, &'a str),
    /// Only rows created before this.
    pub cutoff: NaiveDateTime,
    /// Inclusive end: the sync checkpoint's position.
    pub upto: (NaiveDateTime, &'a str),
    /// Page size.
    pub limit: i64,
}

impl Bounds<'_> {
    /// `$1`–`$6` of a page query: after, cutoff, up to, limit.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.after.0,
            &self.after.1,
            &self.cutoff,
            &self.upto.0,
            &self.upto.1,
            &self.limit,
        ]
    }
}

/// What a batch did.
pub(crate) enum Outcome {
    /// `read` rows handled; the cursor moves to `last`.
    Done { read: usize, last: Position },
    /// No candidates are left.
    Empty,
    /// The page itself could not be read (the keyset table stays locked).
    Stuck(String),
}

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// A lock or statement timeout (or deadlock): worth retrying.
    Retry(String),
    /// Anything else: the run stops with this error.
    Fatal(Error),
}

/// Classifies a database error on `table`: retry or fatal.
pub(crate) fn classify(table: &'static str) -> impl Fn(tokio_postgres::Error) -> Attempt {
    move |e| {
        let retry = [
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ];
        match e.code() {
            Some(c) if retry.contains(c) => {
                Attempt::Retry(format!("{table}: {}", crate::db_message(&e)))
            }
            _ => Attempt::Fatal(Error::query(table, &e)),
        }
    }
}

/// Result of one successful attempt.
#[derive(Default)]
struct Done {
    deleted: BTreeMap<&'static str, u64>,
    verified: u64,
    unverified: Vec<(String, String)>,
}

impl Done {
    fn merge_into(self, report: &mut CleanupReport) {
        for (t, n) in self.deleted {
            *report.deleted.entry(t.to_owned()).or_default() += n;
        }
        report.verified += self.verified;
        for (id, why) in self.unverified {
            report.skip(&id, "unverified", why);
        }
    }
}

/// Candidate rows of the keyset table between the cursor and the bounds.
pub(crate) async fn estimate(
    client: &Client,
    table: &'static str,
    after: &(NaiveDateTime, String),
    cutoff: NaiveDateTime,
    upto: &(NaiveDateTime, String),
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "SELECT count(*) FROM {table} WHERE (created_at, id) > ($1, $2::text::uuid) \
         AND created_at < $3 AND (created_at, id) <= ($4, $5::text::uuid)"
    );
    let row = client
        .query_one(&sql, &[&after.0, &after.1, &cutoff, &upto.0, &upto.1])
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

fn missing_detail(n: usize, of: usize) -> String {
    format!("{n} of {of} rows are not in Loupe's store")
}

const ALTERED: &str = "the store's spans differ from the rows (status, end time or elapsed)";
const CHANGED: &str = "the rows changed after verification";

impl Cleaner {
    fn timeouts(&self) -> (Duration, Duration) {
        (self.config.lock_timeout, self.config.statement_timeout)
    }

    async fn backoff(&self, attempt: u32) {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        tokio::time::sleep(self.config.retry_backoff.saturating_mul(factor)).await;
    }

    /// One batch of family `F`: runs (scopes `nodes` and `runs`) or
    /// messages (scope `messages`). `feedback_upto`: the sync's position
    /// in `message_feedbacks`.
    pub(crate) async fn batch<F: Family>(
        &mut self,
        b: &Bounds<'_>,
        feedback_upto: Option<&(NaiveDateTime, String)>,
        report: &mut CleanupReport,
    ) -> Result<Outcome, Error> {
        let mut attempt = 0;
        let page = loop {
            let (lt, st) = self.timeouts();
            let t_db = Instant::now();
            let read = async {
                let tx = delete::begin(&mut self.client, lt, st, true)
                    .await
                    .map_err(classify(F::TABLE))?;
                let rows = F::page(&tx, b).await?;
                tx.commit().await.map_err(classify(F::TABLE))?;
                Ok(rows)
            };
            let read = read.await;
            self.timing.db += t_db.elapsed();
            match read {
                Ok(rows) => break rows,
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    attempt += 1;
                    if attempt > self.config.lock_retries {
                        return Ok(Outcome::Stuck(format!(
                            "cannot read the next batch: {reason}"
                        )));
                    }
                    self.backoff(attempt).await;
                }
            }
        };
        let Some(last) = page.last() else {
            return Ok(Outcome::Empty);
        };
        let last = Position::new(last.created_at(), last.id().to_owned());
        let mut candidates = Vec::new();
        let ctx = ctx(&self.checkpoint, self.config.scope, feedback_upto);
        for r in &page {
            match r.open(&ctx) {
                Some(why) => report.skip(r.id(), "open", why),
                None => candidates.push(r.clone()),
            }
        }
        let mut attempt = 0;
        while !candidates.is_empty() {
            match self.attempt(&candidates, feedback_upto).await {
                Ok(done) => {
                    done.merge_into(report);
                    break;
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    attempt += 1;
                    if attempt > self.config.lock_retries {
                        tracing::warn!(%reason, table = F::TABLE, rows = candidates.len(), "dify cleanup: batch skipped");
                        for c in &candidates {
                            report.skip(
                                c.id(),
                                "locked",
                                format!("after {attempt} attempts: {reason}"),
                            );
                        }
                        break;
                    }
                    self.backoff(attempt).await;
                }
            }
        }
        Ok(Outcome::Done {
            read: page.len(),
            last,
        })
    }

    /// Verifies `rows` against the store, then deletes those still equal
    /// to what was verified, in one transaction (rolled back in a dry run).
    async fn attempt<F: Family>(
        &mut self,
        rows: &[F],
        feedback_upto: Option<&(NaiveDateTime, String)>,
    ) -> Result<Done, Attempt> {
        let (lt, st) = self.timeouts();
        let dry = self.config.dry_run;
        let ids: Vec<String> = rows.iter().map(|r| r.id().to_owned()).collect();
        let t_db = Instant::now();
        let tx = delete::begin(&mut self.client, lt, st, true)
            .await
            .map_err(classify(F::CHILD_TABLE))?;
        let children = F::children(&tx, &ids).await?;
        tx.commit().await.map_err(classify(F::CHILD_TABLE))?;
        self.timing.db += t_db.elapsed();
        let by_parent = group(&children, F::parent_of);
        let ctx = ctx(&self.checkpoint, self.config.scope, feedback_upto);
        let mut done = Done::default();
        // Rows to verify, grouped by the project the sync wrote them to.
        let mut by_project: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let none = Vec::new();
        let mine_of = |row: &F| by_parent.get(row.id()).unwrap_or(&none);
        for (i, row) in rows.iter().enumerate() {
            if let Some(why) = row.precheck(mine_of(row), &ctx) {
                done.unverified.push((row.id().to_owned(), why));
                continue;
            }
            let (tenant, app) = row.owner();
            by_project
                .entry(self.projects.of(tenant, app).to_owned())
                .or_default()
                .push(i);
        }
        let t_store = Instant::now();
        let mut verdicts: Vec<Option<Verdict>> = vec![None; rows.len()];
        for (project, idxs) in &by_project {
            let project = loupe_model::ProjectId::new(project.clone())
                .map_err(|e| Attempt::Fatal(Error::Invalid(format!("project: {e}"))))?;
            let items = idxs
                .iter()
                .map(|&i| {
                    let (row, mine) = (&rows[i], mine_of(&rows[i]));
                    Item {
                        id: row.id(),
                        facts: row.facts(mine),
                        stored: row.stored(mine),
                    }
                })
                .collect();
            // One store read per batch and project; row by row only when
            // the batch's spans would be too many for one answer.
            let batch = if self.config.batch_verify {
                verify::check_batch(self.store.as_ref(), &project, items, F::STORED_COLUMNS)
                    .await
                    .map_err(Attempt::Fatal)?
            } else {
                None
            };
            match batch {
                Some(vs) => {
                    for (&i, v) in idxs.iter().zip(vs) {
                        verdicts[i] = Some(v);
                    }
                }
                None => {
                    for &i in idxs {
                        let (row, mine) = (&rows[i], mine_of(&rows[i]));
                        let v = verify::check_one(
                            self.store.as_ref(),
                            &project,
                            row.id(),
                            row.facts(mine),
                            row.stored(mine),
                        )
                        .await
                        .map_err(Attempt::Fatal)?;
                        verdicts[i] = Some(v);
                    }
                }
            }
        }
        self.timing.store += t_store.elapsed();
        let mut held: HashMap<String, String> = HashMap::new();
        for (row, verdict) in rows.iter().zip(verdicts) {
            let Some(verdict) = verdict else { continue };
            let mine = mine_of(row);
            match verdict {
                Verdict::Held(d) => {
                    done.verified += 1;
                    if row.deletable(mine, &ctx) {
                        held.insert(row.id().to_owned(), d);
                    }
                }
                Verdict::Missing(n) => done
                    .unverified
                    .push((row.id().to_owned(), missing_detail(n, 1 + mine.len()))),
                Verdict::Altered => done.unverified.push((row.id().to_owned(), ALTERED.into())),
            }
        }
        if held.is_empty() {
            return Ok(done);
        }
        let held_ids: Vec<String> = rows
            .iter()
            .filter(|r| held.contains_key(r.id()))
            .map(|r| r.id().to_owned())
            .collect();
        let t_db = Instant::now();
        let tx = delete::begin(&mut self.client, lt, st, dry)
            .await
            .map_err(classify(F::TABLE))?;
        let now = F::by_id(&tx, &held_ids, !dry).await?;
        let now_children = F::children(&tx, &held_ids).await?;
        let now_by_parent = group(&now_children, F::parent_of);
        let (mut keep, mut keep_children) = (Vec::new(), Vec::new());
        for row in &now {
            let mine = now_by_parent.get(row.id()).cloned().unwrap_or_default();
            if held.get(row.id()) == Some(&row.digest(&mine)) {
                keep.push(row.id().to_owned());
                keep_children.extend(mine.iter().map(|c| F::child_id(c).to_owned()));
            } else {
                done.unverified.push((row.id().to_owned(), CHANGED.into()));
            }
        }
        let (parent_key, child_key) = F::KEYS;
        let ids_of = |k: Key| {
            if k == parent_key {
                keep.clone()
            } else if k == child_key {
                keep_children.clone()
            } else {
                Vec::new()
            }
        };
        done.deleted = delete::run_steps(&tx, &self.steps, ids_of, dry)
            .await
            .map_err(|(t, e)| classify(t)(e))?;
        finish(tx, dry).await?;
        self.timing.db += t_db.elapsed();
        Ok(done)
    }
}

/// The hooks' view of the checkpoint and the run's settings.
fn ctx<'a>(
    checkpoint: &'a Checkpoint,
    scope: Scope,
    feedback_upto: Option<&'a (NaiveDateTime, String)>,
) -> Ctx<'a> {
    Ctx {
        open_runs: &checkpoint.open_runs,
        open_messages: &checkpoint.open_messages,
        scope,
        feedback_upto,
    }
}

/// Commits, or rolls back a dry run.
async fn finish(tx: tokio_postgres::Transaction<'_>, dry: bool) -> Result<(), Attempt> {
    let r = if dry {
        tx.rollback().await
    } else {
        tx.commit().await
    };
    r.map_err(classify("commit"))
}

fn group<'a, T>(rows: &'a [T], key: impl Fn(&'a T) -> &'a str) -> HashMap<&'a str, Vec<&'a T>> {
    let mut out: HashMap<&str, Vec<&T>> = HashMap::new();
    for r in rows {
        out.entry(key(r)).or_default().push(r);
    }
    out
}
