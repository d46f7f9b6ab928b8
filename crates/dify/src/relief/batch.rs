//! One cleanup batch: read a keyset page, skip open rows, verify the rest
//! against the store, then delete the verified rows in one short
//! transaction after re-checking them under lock. Lock and statement
//! timeouts retry the batch with backoff, then skip it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::delete::{self, Key};
use super::verify::{self, FeedbackRow, MessageRow, RunRow, Verdict};
use super::{Cleaner, CleanupReport, Scope};
use crate::Error;
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
pub(crate) enum Attempt {
    /// A lock or statement timeout (or deadlock): worth retrying.
    Retry(String),
    /// Anything else: the run stops with this error.
    Fatal(Error),
}

fn classify(table: &'static str) -> impl Fn(tokio_postgres::Error) -> Attempt {
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

    /// One batch of runs (scopes `nodes` and `runs`).
    pub(crate) async fn runs_batch(
        &mut self,
        b: &Bounds<'_>,
        report: &mut CleanupReport,
    ) -> Result<Outcome, Error> {
        let mut attempt = 0;
        let page = loop {
            let (lt, st) = self.timeouts();
            let read = match delete::begin(&mut self.client, lt, st, true).await {
                Ok(tx) => match verify::runs_page(&tx, b.after, b.cutoff, b.upto, b.limit).await {
                    Ok(rows) => tx.commit().await.map(|()| rows),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match read.map_err(classify("workflow_runs")) {
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
        let last = Position::new(last.created_at, last.id.clone());
        let mut candidates = Vec::new();
        for r in &page {
            if r.is_open() || self.checkpoint.open_runs.contains(&r.id) {
                report.skip(&r.id, "open", format!("run is {}", r.status));
            } else {
                candidates.push(r.clone());
            }
        }
        let mut attempt = 0;
        while !candidates.is_empty() {
            match self.runs_attempt(&candidates).await {
                Ok(done) => {
                    done.merge_into(report);
                    break;
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    attempt += 1;
                    if attempt > self.config.lock_retries {
                        tracing::warn!(%reason, runs = candidates.len(), "dify cleanup: batch skipped");
                        for c in &candidates {
                            report.skip(
                                &c.id,
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

    async fn runs_attempt(&mut self, runs: &[RunRow]) -> Result<Done, Attempt> {
        let (lt, st) = self.timeouts();
        let dry = self.config.dry_run;
        let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        let nodes_table = "workflow_node_executions";
        let tx = delete::begin(&mut self.client, lt, st, true)
            .await
            .map_err(classify(nodes_table))?;
        let nodes = verify::nodes_of(&tx, &ids)
            .await
            .map_err(classify(nodes_table))?;
        tx.commit().await.map_err(classify(nodes_table))?;
        let by_run = group(&nodes, |n| n.run_id.as_str());
        let mut done = Done::default();
        let mut held: HashMap<String, String> = HashMap::new();
        for run in runs {
            let mine = by_run.get(run.id.as_str()).cloned().unwrap_or_default();
            let verdict = verify::check_run(self.store.as_ref(), &self.project, run, &mine)
                .await
                .map_err(Attempt::Fatal)?;
            match verdict {
                Verdict::Held(d) => {
                    done.verified += 1;
                    if self.config.scope == Scope::Runs || !mine.is_empty() {
                        held.insert(run.id.clone(), d);
                    }
                }
                Verdict::Missing(n) => done
                    .unverified
                    .push((run.id.clone(), missing_detail(n, 1 + mine.len()))),
                Verdict::Altered => done.unverified.push((run.id.clone(), ALTERED.into())),
            }
        }
        if held.is_empty() {
            return Ok(done);
        }
        let held_ids: Vec<String> = runs
            .iter()
            .filter(|r| held.contains_key(&r.id))
            .map(|r| r.id.clone())
            .collect();
        let tx = delete::begin(&mut self.client, lt, st, dry)
            .await
            .map_err(classify("workflow_runs"))?;
        let now = verify::runs_by_id(&tx, &held_ids, !dry)
            .await
            .map_err(classify("workflow_runs"))?;
        let now_nodes = verify::nodes_of(&tx, &held_ids)
            .await
            .map_err(classify(nodes_table))?;
        let now_by_run = group(&now_nodes, |n| n.run_id.as_str());
        let (mut keep_runs, mut keep_nodes) = (Vec::new(), Vec::new());
        for run in &now {
            let mine = now_by_run.get(run.id.as_str()).cloned().unwrap_or_default();
            if held.get(&run.id) == Some(&verify::run_digest(run, &mine)) {
                keep_runs.push(run.id.clone());
                keep_nodes.extend(mine.iter().map(|n| n.id.clone()));
            } else {
                done.unverified.push((run.id.clone(), CHANGED.into()));
            }
        }
        let ids_of = |k: Key| match k {
            Key::Runs => keep_runs.clone(),
            Key::Nodes => keep_nodes.clone(),
            Key::Messages | Key::Feedbacks => Vec::new(),
        };
        done.deleted = delete::run_steps(&tx, &self.steps, ids_of, dry)
            .await
            .map_err(|(t, e)| classify(t)(e))?;
        finish(tx, dry).await?;
        Ok(done)
    }

    /// One batch of messages (scope `messages`).
    pub(crate) async fn messages_batch(
        &mut self,
        b: &Bounds<'_>,
        feedback_upto: Option<&(NaiveDateTime, String)>,
        report: &mut CleanupReport,
    ) -> Result<Outcome, Error> {
        let mut attempt = 0;
        let page = loop {
            let (lt, st) = self.timeouts();
            let read = match delete::begin(&mut self.client, lt, st, true).await {
                Ok(tx) => {
                    match verify::messages_page(&tx, b.after, b.cutoff, b.upto, b.limit).await {
                        Ok(rows) => tx.commit().await.map(|()| rows),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match read.map_err(classify("messages")) {
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
        let last = Position::new(last.created_at, last.id.clone());
        let mut candidates = Vec::new();
        for m in &page {
            let open_run = m
                .run_id
                .as_ref()
                .is_some_and(|r| self.checkpoint.open_runs.contains(r));
            if m.status == "paused" || open_run || self.checkpoint.open_messages.contains(&m.id) {
                report.skip(
                    &m.id,
                    "open",
                    format!("message is {} or its run is open", m.status),
                );
            } else {
                candidates.push(m.clone());
            }
        }
        let mut attempt = 0;
        while !candidates.is_empty() {
            match self.messages_attempt(&candidates, feedback_upto).await {
                Ok(done) => {
                    done.merge_into(report);
                    break;
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    attempt += 1;
                    if attempt > self.config.lock_retries {
                        for c in &candidates {
                            report.skip(
                                &c.id,
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

    async fn messages_attempt(
        &mut self,
        messages: &[MessageRow],
        feedback_upto: Option<&(NaiveDateTime, String)>,
    ) -> Result<Done, Attempt> {
        let (lt, st) = self.timeouts();
        let dry = self.config.dry_run;
        let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
        let fb_table = "message_feedbacks";
        let tx = delete::begin(&mut self.client, lt, st, true)
            .await
            .map_err(classify(fb_table))?;
        let feedbacks = verify::feedbacks_of(&tx, &ids)
            .await
            .map_err(classify(fb_table))?;
        tx.commit().await.map_err(classify(fb_table))?;
        let by_msg = group(&feedbacks, |f| f.message_id.as_str());
        let synced = |f: &FeedbackRow| {
            feedback_upto
                .is_some_and(|(at, id)| (f.updated_at, f.id.as_str()) <= (*at, id.as_str()))
        };
        let mut done = Done::default();
        let mut held: HashMap<String, String> = HashMap::new();
        for m in messages {
            let mine = by_msg.get(m.id.as_str()).cloned().unwrap_or_default();
            if !mine.iter().all(|f| synced(f)) {
                let why = "feedback changed after the last sync".to_owned();
                done.unverified.push((m.id.clone(), why));
                continue;
            }
            let verdict = verify::check_message(self.store.as_ref(), &self.project, m, &mine)
                .await
                .map_err(Attempt::Fatal)?;
            match verdict {
                Verdict::Held(d) => {
                    done.verified += 1;
                    held.insert(m.id.clone(), d);
                }
                Verdict::Missing(n) => done
                    .unverified
                    .push((m.id.clone(), missing_detail(n, 1 + mine.len()))),
                Verdict::Altered => done.unverified.push((m.id.clone(), ALTERED.into())),
            }
        }
        if held.is_empty() {
            return Ok(done);
        }
        let held_ids: Vec<String> = messages
            .iter()
            .filter(|m| held.contains_key(&m.id))
            .map(|m| m.id.clone())
            .collect();
        let tx = delete::begin(&mut self.client, lt, st, dry)
            .await
            .map_err(classify("messages"))?;
        let now = verify::messages_by_id(&tx, &held_ids, !dry)
            .await
            .map_err(classify("messages"))?;
        let now_fb = verify::feedbacks_of(&tx, &held_ids)
            .await
            .map_err(classify(fb_table))?;
        let now_by_msg = group(&now_fb, |f| f.message_id.as_str());
        let (mut keep, mut keep_fb) = (Vec::new(), Vec::new());
        for m in &now {
            let mine = now_by_msg.get(m.id.as_str()).cloned().unwrap_or_default();
            if held.get(&m.id) == Some(&verify::message_digest(m, &mine)) {
                keep.push(m.id.clone());
                keep_fb.extend(mine.iter().map(|f| f.id.clone()));
            } else {
                done.unverified.push((m.id.clone(), CHANGED.into()));
            }
        }
        let ids_of = |k: Key| match k {
            Key::Messages => keep.clone(),
            Key::Feedbacks => keep_fb.clone(),
            Key::Runs | Key::Nodes => Vec::new(),
        };
        done.deleted = delete::run_steps(&tx, &self.steps, ids_of, dry)
            .await
            .map_err(|(t, e)| classify(t)(e))?;
        finish(tx, dry).await?;
        Ok(done)
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
