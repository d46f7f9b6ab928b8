//! Verification of a batch against Loupe's store: the rows of a run (the
//! run and its node executions) or of a chat turn (the message and its
//! feedback) are reduced to facts — id, status, end time and a measure
//! (elapsed time, latency or rating), exactly as the mapping writes them —
//! and a SHA-256 over the facts sorted by id must equal the same digest
//! over the spans of those ids in the store. A missing span or any
//! differing fact makes the run or message unverified.
//!
//! The store may hold more spans than the database (node spans whose rows
//! an earlier `nodes` cleanup deleted, spans of other sources): what is
//! checked is that every row about to be deleted is held, field by field.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDateTime;
use loupe_backend::{SpanReader, TracesQuery};
use loupe_model::{ProjectId, Span};
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::batch::{Attempt, Bounds, classify};
use crate::Error;
use crate::map::{end_of, secs_ns};
use crate::schema::{col, utc_ns};

/// What the digest compares for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    id: String,
    status: String,
    end: Option<i64>,
    measure: String,
}

fn digest(facts: &BTreeMap<String, Fact>) -> String {
    let mut h = Sha256::new();
    for f in facts.values() {
        let end = f.end.map(|e| e.to_string()).unwrap_or_default();
        h.update(format!("{}|{}|{}|{}\n", f.id, f.status, end, f.measure).as_bytes());
    }
    hex::encode(h.finalize())
}

/// The outcome of verifying one run or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Held completely; the digest of the database rows.
    Held(String),
    /// Spans missing from the store.
    Missing(usize),
    /// Every span is there but a fact differs.
    Altered,
}

fn compare<'s>(
    db: BTreeMap<String, Fact>,
    spans: impl IntoIterator<Item = &'s Span>,
    fact: impl Fn(&Span) -> Fact,
) -> Verdict {
    let stored: BTreeMap<String, Fact> = spans
        .into_iter()
        .filter(|s| db.contains_key(&s.span_id))
        .map(|s| (s.span_id.clone(), fact(s)))
        .collect();
    if stored.len() != db.len() {
        return Verdict::Missing(db.len() - stored.len());
    }
    let want = digest(&db);
    if digest(&stored) == want {
        Verdict::Held(want)
    } else {
        Verdict::Altered
    }
}

/// The fields of a `workflow_runs` row that cleanup reads.
#[derive(Debug, Clone)]
pub(crate) struct RunRow {
    pub id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub elapsed: f64,
}

impl RunRow {
    /// `running`, `paused` or `scheduled`: may still change.
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused" | "scheduled")
    }

    fn fact(&self) -> Fact {
        let start = utc_ns(self.created_at);
        Fact {
            id: self.id.clone(),
            status: self.status.clone(),
            end: end_of(start, self.finished_at, self.elapsed, self.is_open()),
            measure: self.elapsed.to_string(),
        }
    }
}

/// The fields of a `workflow_node_executions` row that cleanup reads.
#[derive(Debug, Clone)]
pub(crate) struct NodeRow {
    pub id: String,
    pub run_id: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub elapsed: f64,
}

impl NodeRow {
    fn fact(&self) -> Fact {
        let start = utc_ns(self.created_at);
        let open = matches!(
            self.status.as_str(),
            "running" | "pending" | "paused" | "retry"
        );
        Fact {
            id: self.id.clone(),
            status: self.status.clone(),
            end: end_of(start, self.finished_at, self.elapsed, open),
            measure: self.elapsed.to_string(),
        }
    }
}

/// The fields of a `messages` row that cleanup reads.
#[derive(Debug, Clone)]
pub(crate) struct MessageRow {
    pub id: String,
    /// The app's workspace (messages have no `tenant_id` column).
    pub tenant_id: Option<String>,
    pub app_id: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub latency: f64,
    pub run_id: Option<String>,
}

impl MessageRow {
    fn fact(&self) -> Fact {
        let start = utc_ns(self.created_at);
        let end = match secs_ns(self.latency) {
            Some(l) if l > 0 => Some(start.saturating_add(l)),
            _ if self.status == "paused" => None,
            _ => Some(utc_ns(self.updated_at).max(start)),
        };
        Fact {
            id: self.id.clone(),
            status: self.status.clone(),
            end,
            measure: self.latency.to_string(),
        }
    }
}

/// The fields of a `message_feedbacks` row that cleanup reads.
#[derive(Debug, Clone)]
pub(crate) struct FeedbackRow {
    pub id: String,
    pub message_id: String,
    pub rating: String,
    pub updated_at: NaiveDateTime,
}

impl FeedbackRow {
    fn fact(&self) -> Fact {
        Fact {
            id: self.id.clone(),
            status: "feedback".into(),
            end: Some(utc_ns(self.updated_at)),
            measure: self.rating.clone(),
        }
    }
}

/// The database digest of a run and its nodes (for the re-check inside
/// the delete transaction).
pub(crate) fn run_digest(run: &RunRow, nodes: &[&NodeRow]) -> String {
    digest(&run_facts(run, nodes))
}

/// The facts of a run and its nodes as the database holds them.
pub(crate) fn run_facts(run: &RunRow, nodes: &[&NodeRow]) -> BTreeMap<String, Fact> {
    let mut facts: BTreeMap<String, Fact> =
        nodes.iter().map(|n| (n.id.clone(), n.fact())).collect();
    facts.insert(run.id.clone(), run.fact());
    facts
}

/// The database digest of a message and its feedback.
pub(crate) fn message_digest(m: &MessageRow, feedbacks: &[&FeedbackRow]) -> String {
    digest(&message_facts(m, feedbacks))
}

/// The facts of a message and its feedback as the database holds them.
pub(crate) fn message_facts(m: &MessageRow, feedbacks: &[&FeedbackRow]) -> BTreeMap<String, Fact> {
    let mut facts: BTreeMap<String, Fact> =
        feedbacks.iter().map(|f| (f.id.clone(), f.fact())).collect();
    facts.insert(m.id.clone(), m.fact());
    facts
}

/// The fact a stored span of a run gives (the mapping's inverse).
pub(crate) fn run_span_fact(s: &Span) -> Fact {
    Fact {
        id: s.span_id.clone(),
        status: s.raw_status.clone().unwrap_or_default(),
        end: s.end_time,
        measure: s
            .attributes
            .get("dify.elapsed_time")
            .cloned()
            .unwrap_or_default(),
    }
}

/// The fact a stored span of a chat turn gives: feedback spans carry the
/// rating as output and the feedback's update time as start.
pub(crate) fn message_span_fact(feedback_ids: &HashSet<String>, s: &Span) -> Fact {
    if feedback_ids.contains(s.span_id.as_str()) {
        Fact {
            id: s.span_id.clone(),
            status: "feedback".into(),
            end: s.start_time,
            measure: s.output.clone().unwrap_or_default(),
        }
    } else {
        Fact {
            id: s.span_id.clone(),
            status: s.raw_status.clone().unwrap_or_default(),
            end: s.end_time,
            measure: s
                .attributes
                .get("dify.latency")
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// Verifies one run or message by reading its trace (`SpanReader::trace`):
/// the fallback when the reader cannot answer a batch query.
pub(crate) async fn check_one(
    store: &dyn SpanReader,
    project: &ProjectId,
    id: &str,
    facts: BTreeMap<String, Fact>,
    stored: impl Fn(&Span) -> Fact,
) -> Result<Verdict, Error> {
    let spans = store.trace(project, id).await?;
    Ok(compare(facts, &spans, stored))
}

/// One row of a batch to verify: its id (the trace or run id its spans
/// carry), the database facts, and how a stored span becomes a fact.
pub(crate) struct Item<'a> {
    pub id: &'a str,
    pub facts: BTreeMap<String, Fact>,
    pub stored: Box<dyn Fn(&Span) -> Fact + Send + Sync + 'a>,
}

/// Spans one batch read returns at most; a batch whose spans may exceed it
/// is verified row by row instead.
const MAX_BATCH_SPANS: usize = 200_000;

/// Verifies every item of one project with one read of their spans
/// ([`SpanReader::traces`]: the store's id index, one pass per part):
/// the same checks as [`check_one`], the spans of an item being those
/// whose trace or run id is the item's. `columns` are the span fields the
/// items' `stored` read. `None` when the answer would exceed
/// [`MAX_BATCH_SPANS`]: the caller then verifies item by item.
pub(crate) async fn check_batch(
    store: &dyn SpanReader,
    project: &ProjectId,
    items: Vec<Item<'_>>,
    columns: &[&str],
) -> Result<Option<Vec<Verdict>>, Error> {
    if items.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let query = TracesQuery {
        ids: items.iter().map(|i| i.id.to_owned()).collect(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        max_spans: MAX_BATCH_SPANS,
    };
    let Some(spans) = store.traces(project, &query).await? else {
        return Ok(None);
    };
    // The spans of each id, as `trace` would return them.
    let mut of: HashMap<&str, Vec<&Span>> = HashMap::new();
    for s in &spans {
        let t = s.trace_id.as_deref();
        let r = s.run_id.as_deref();
        if let Some(t) = t {
            of.entry(t).or_default().push(s);
        }
        if let Some(r) = r.filter(|r| Some(*r) != t) {
            of.entry(r).or_default().push(s);
        }
    }
    let verdicts = items
        .into_iter()
        .map(|it| {
            let mine = of.get(it.id).map(Vec::as_slice).unwrap_or_default();
            compare(it.facts, mine.iter().copied(), &*it.stored)
        })
        .collect();
    Ok(Some(verdicts))
}

const RUN_SQL: &str = "SELECT id::text, tenant_id::text, app_id::text, status, created_at, \
    finished_at, elapsed_time FROM workflow_runs";

fn run_row(r: &Row) -> Result<RunRow, Error> {
    let t = "workflow_runs";
    Ok(RunRow {
        id: col(r, t, "id")?,
        tenant_id: col(r, t, "tenant_id")?,
        app_id: col(r, t, "app_id")?,
        status: col(r, t, "status")?,
        created_at: col(r, t, "created_at")?,
        finished_at: col(r, t, "finished_at")?,
        elapsed: col(r, t, "elapsed_time")?,
    })
}

/// Runs `sql` on `table` and reads its rows with `read`: a query error is
/// classified (retry or fatal), a row that does not read is fatal.
async fn select<T>(
    c: &impl GenericClient,
    table: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    read: impl Fn(&Row) -> Result<T, Error>,
) -> Result<Vec<T>, Attempt> {
    let rows = c.query(sql, params).await.map_err(classify(table))?;
    rows.iter()
        .map(|r| read(r).map_err(Attempt::Fatal))
        .collect()
}

/// The keyset condition of a page: after `after`, created before `cutoff`
/// and at or before the sync position `upto`.
const PAGE_WHERE: &str = "WHERE (created_at, id) > ($1, $2::text::uuid) AND created_at < $3 \
    AND (created_at, id) <= ($4, $5::text::uuid) ORDER BY created_at, id LIMIT $6";

/// A keyset page of runs within the bounds.
pub(crate) async fn runs_page(
    c: &impl GenericClient,
    b: &Bounds<'_>,
) -> Result<Vec<RunRow>, Attempt> {
    let sql = format!("{RUN_SQL} {PAGE_WHERE}");
    select(c, "workflow_runs", &sql, &b.params(), run_row).await
}

/// Runs by id (the re-check inside the delete transaction).
pub(crate) async fn runs_by_id(
    c: &impl GenericClient,
    ids: &[String],
    lock: bool,
) -> Result<Vec<RunRow>, Attempt> {
    let sql = format!(
        "{RUN_SQL} WHERE id = ANY($1::text[]::uuid[]){}",
        if lock { " FOR UPDATE" } else { "" }
    );
    select(c, "workflow_runs", &sql, &[&ids], run_row).await
}

/// Node executions of the runs (by the `workflow_run_id` index).
pub(crate) async fn nodes_of(
    c: &impl GenericClient,
    run_ids: &[String],
) -> Result<Vec<NodeRow>, Attempt> {
    let t = "workflow_node_executions";
    let sql = "SELECT id::text, workflow_run_id::text, status, created_at, finished_at, \
               elapsed_time FROM workflow_node_executions \
               WHERE workflow_run_id = ANY($1::text[]::uuid[])";
    select(c, t, sql, &[&run_ids], |r| {
        Ok(NodeRow {
            id: col(r, t, "id")?,
            run_id: col(r, t, "workflow_run_id")?,
            status: col(r, t, "status")?,
            created_at: col(r, t, "created_at")?,
            finished_at: col(r, t, "finished_at")?,
            elapsed: col(r, t, "elapsed_time")?,
        })
    })
    .await
}

const MESSAGE_SQL: &str = "SELECT id::text, app_id::text, \
    (SELECT a.tenant_id::text FROM apps a WHERE a.id = messages.app_id) AS tenant_id, status, \
    created_at, updated_at, provider_response_latency, workflow_run_id::text FROM messages";

fn message_row(r: &Row) -> Result<MessageRow, Error> {
    let t = "messages";
    Ok(MessageRow {
        id: col(r, t, "id")?,
        tenant_id: col(r, t, "tenant_id")?,
        app_id: col(r, t, "app_id")?,
        status: col(r, t, "status")?,
        created_at: col(r, t, "created_at")?,
        updated_at: col(r, t, "updated_at")?,
        latency: col(r, t, "provider_response_latency")?,
        run_id: col(r, t, "workflow_run_id")?,
    })
}

/// A keyset page of messages (same bounds as [`runs_page`]).
pub(crate) async fn messages_page(
    c: &impl GenericClient,
    b: &Bounds<'_>,
) -> Result<Vec<MessageRow>, Attempt> {
    let sql = format!("{MESSAGE_SQL} {PAGE_WHERE}");
    select(c, "messages", &sql, &b.params(), message_row).await
}

/// Messages by id (the re-check inside the delete transaction), locked
/// when `lock`.
pub(crate) async fn messages_by_id(
    c: &impl GenericClient,
    ids: &[String],
    lock: bool,
) -> Result<Vec<MessageRow>, Attempt> {
    let sql = format!(
        "{MESSAGE_SQL} WHERE id = ANY($1::text[]::uuid[]){}",
        if lock { " FOR UPDATE" } else { "" }
    );
    select(c, "messages", &sql, &[&ids], message_row).await
}

/// Feedback rows of the messages.
pub(crate) async fn feedbacks_of(
    c: &impl GenericClient,
    message_ids: &[String],
) -> Result<Vec<FeedbackRow>, Attempt> {
    let t = "message_feedbacks";
    let sql = "SELECT id::text, message_id::text, rating, updated_at FROM message_feedbacks \
               WHERE message_id = ANY($1::text[]::uuid[])";
    select(c, t, sql, &[&message_ids], |r| {
        Ok(FeedbackRow {
            id: col(r, t, "id")?,
            message_id: col(r, t, "message_id")?,
            rating: col(r, t, "rating")?,
            updated_at: col(r, t, "updated_at")?,
        })
    })
    .await
}
