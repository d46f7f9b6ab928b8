//! The storage contract: what ingest writes to and what the API reads from.
//!
//! A backend implements two traits, split on purpose:
//!
//! - [`SpanWriter`]: `append` returns once the spans are durable under the
//!   configured durability mode (an acknowledged write is in the WAL). Only
//!   the ingest pipeline (`loupe-pipeline`) holds one: sources get the
//!   pipeline, so no source can skip tag rules or redaction by writing to
//!   the store directly.
//! - [`SpanReader`]: every read. Reads always see the merged row of every
//!   span (later versions of the same `(project, span_id)` merged field by
//!   field).
//!
//! Both are implemented by the embedded store (`loupe-store`) and, later, by
//! the ClickHouse backend. They speak only `loupe-model` types: no protocol
//! type (OTLP, Langfuse, HTTP) ever crosses them.

#![warn(missing_docs)]

use std::time::Duration;

use futures::future::BoxFuture;
use loupe_model::{ProjectId, Span, SpanKind, Status};
use serde::{Deserialize, Serialize};

pub mod clickhouse;
pub mod copy;
mod cursor;
pub mod logs;
pub mod plan;
pub mod run_context;
pub mod timelines;

pub use clickhouse::{ClickHouseConfig, ProfileChoice, SpanBackend};
pub use cursor::{Cursor, InvalidCursor};
pub use logs::{LogPage, LogQuery, LogReader, LogWriter};
pub use plan::{BatchStream, Plan, QueryLimits, QueryResult, QueryStats};
pub use run_context::RunContext;
pub use timelines::{RunSummary, ScoreSummary, UserSummary};

/// What a successful append promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteAck {
    /// WAL sequence number of the record holding the spans.
    pub seq: u64,
    /// Number of spans written.
    pub spans: usize,
}

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is over its memory or queue budget; retry after the delay.
    #[error("store is overloaded; retry in {retry_after:?}")]
    Overloaded {
        /// Suggested delay before retrying.
        retry_after: Duration,
    },
    /// The disk holding the data is full (ENOSPC, or the user's quota):
    /// nothing of the request was kept, what was acknowledged before is
    /// intact, and the same request succeeds once space is freed.
    #[error("the data directory's disk is full: {0}")]
    StorageFull(String),
    /// The store is shutting down and takes no more writes.
    #[error("store is shutting down")]
    Closed,
    /// The request is invalid (bad cursor, bad filter value, SQL that is
    /// not a single read-only query).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The queries running now hold all the memory reads may use
    /// (`[query] total_memory_bytes`): retry shortly.
    #[error("queries are using all the memory reads may use: {0}")]
    Busy(String),
    /// The query needed more memory than its limit allows.
    #[error("query needs more memory than allowed: {0}")]
    ResourcesExhausted(String),
    /// The backend cannot run this kind of request.
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
    /// An I/O or engine failure. The message is for the operator's log.
    #[error("storage failure: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Overloaded { .. } | StoreError::StorageFull(_) | StoreError::Busy(_)
        )
    }
}

/// Filters of the span list. Every field narrows; `None` means any.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SpanFilter {
    /// Spans starting at or after this time (ns since epoch).
    pub from: Option<i64>,
    /// Spans starting before this time (ns since epoch).
    pub to: Option<i64>,
    /// Dify app id.
    pub app_id: Option<String>,
    /// Normalised status.
    pub status: Option<Status>,
    /// Normalised kind.
    pub span_kind: Option<SpanKind>,
    /// Raw node type.
    pub node_type: Option<String>,
    /// Tool name.
    pub tool_name: Option<String>,
    /// Run id.
    pub run_id: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// End user id.
    pub user_id: Option<String>,
}

/// A page request over spans, newest first.
#[derive(Debug, Clone)]
pub struct SpanQuery {
    /// The project read.
    pub project: ProjectId,
    /// Filters.
    pub filter: SpanFilter,
    /// Page size (1..=1000).
    pub limit: usize,
    /// Continue after this position (from a previous page).
    pub cursor: Option<Cursor>,
}

/// One page of spans and the cursor of the next one.
#[derive(Debug, Clone, Default)]
pub struct SpanPage {
    /// Spans, newest start time first (ties by span id, descending).
    pub spans: Vec<Span>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl SpanPage {
    /// The page of `spans` read with one more than `limit` (newest first):
    /// the extra one says another page exists, which starts after the last
    /// span kept.
    pub fn from_overfetched(mut spans: Vec<Span>, limit: usize) -> Self {
        let next_cursor = if spans.len() > limit {
            spans.truncate(limit);
            spans.last().map(|s| Cursor {
                start_time: s.start_time.unwrap_or(i64::MIN),
                span_id: s.span_id.clone(),
            })
        } else {
            None
        };
        Self { spans, next_cursor }
    }
}

/// One extra condition of a [`PageQuery`], beyond [`SpanFilter`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Cond {
    /// The span has no parent (a trace root).
    Root,
    /// The span has a parent.
    NotRoot,
    /// The display name equals the value.
    Name(String),
    /// The parent span id equals the value.
    Parent(String),
    /// The normalised kind equals the value.
    Kind(SpanKind),
    /// The node type is unset or differs from the value.
    NodeTypeNot(String),
    /// Attribute `.0` equals `.1`.
    AttrEq(String, String),
    /// Attribute `.0` contains the text `.1`.
    AttrContains(String, String),
    /// The trace id is one of the values.
    TraceIn(Vec<String>),
    /// At least one of the conditions holds.
    Any(Vec<Cond>),
}

/// An offset page request with a total count (for APIs paged by number,
/// such as Langfuse's `page`/`limit`), ordered by start time.
#[derive(Debug, Clone)]
pub struct PageQuery {
    /// The project read.
    pub project: ProjectId,
    /// Filters.
    pub filter: SpanFilter,
    /// Extra conditions, all of which must hold.
    pub conds: Vec<Cond>,
    /// Rows to skip.
    pub offset: usize,
    /// Page size (1..=10000).
    pub limit: usize,
    /// Oldest first instead of newest first (ties by span id).
    pub oldest_first: bool,
    /// Whether to count every matching row (an extra scan).
    pub count: bool,
}

/// One page of a [`PageQuery`].
#[derive(Debug, Clone, Default)]
pub struct OffsetPage {
    /// Spans in the requested order.
    pub spans: Vec<Span>,
    /// Number of matching spans in all pages, when counted.
    pub total: Option<u64>,
}

/// A request for the spans of many runs at once ([`SpanReader::traces`]):
/// what the Dify cleanup verifies a batch against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracesQuery {
    /// Trace or run ids: a span is in the answer when its `trace_id` or
    /// `run_id` is one of them (as [`SpanReader::trace`] reads one).
    pub ids: Vec<String>,
    /// The columns to fill (`loupe_model::column` names); `span_id`,
    /// `trace_id` and `run_id` are always filled, other fields may be left
    /// unset. Empty: every column.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The answer's bound: when more spans may match, the answer is `None`
    /// (the caller asks for fewer ids at a time).
    pub max_spans: usize,
}

impl TracesQuery {
    /// Whether the answer fills `column`.
    pub fn wants(&self, column: &str) -> bool {
        self.columns.is_empty()
            || self.columns.iter().any(|c| c == column)
            || [
                loupe_model::column::SPAN_ID,
                loupe_model::column::TRACE_ID,
                loupe_model::column::RUN_ID,
            ]
            .contains(&column)
    }
}

/// What [`SpanReader::scan`] reads: a project's spans as rows of
/// `loupe_model::schema()`, for a SQL engine that runs above the backend
/// (the backends' shared `spans` table for `POST /api/v1/sql` and the
/// analytics).
///
/// Every condition only narrows what the backend *may* return: the caller
/// applies its whole filter again, so a backend may ignore any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRequest {
    /// The columns of the answer, as indices into `loupe_model::schema()`,
    /// in that order (the batches' schema is that schema projected so).
    pub columns: Vec<usize>,
    /// Spans starting at or after this (ns); spans without a start are
    /// then left out.
    pub min_start_ns: Option<i64>,
    /// Spans starting at or before this (ns).
    pub max_start_ns: Option<i64>,
    /// Each entry: the span's text column (a `loupe_model::column` name)
    /// equals one of these values, `(column, value)` pairs or'ed.
    pub any_of: Vec<Vec<(String, String)>>,
    /// Rows per batch at most (0: the backend's choice).
    pub batch_rows: usize,
}

/// [`SpanReader::traces`] through [`SpanReader::trace`], one id at a time:
/// the answer of a reader without a batch path (and the reference the
/// batch paths are tested against).
pub async fn traces_one_by_one(
    reader: &(impl SpanReader + ?Sized),
    project: &ProjectId,
    query: &TracesQuery,
) -> Result<Option<Vec<Span>>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut spans = Vec::new();
    for id in &query.ids {
        for s in reader.trace(project, id).await? {
            if seen.insert(s.span_id.clone()) {
                spans.push(s);
            }
        }
        if spans.len() > query.max_spans {
            return Ok(None);
        }
    }
    Ok(Some(spans))
}

/// The write half of a storage backend. Held by the ingest pipeline only.
pub trait SpanWriter: Send + Sync + 'static {
    /// Appends spans (complete or partial updates). Resolves once they are
    /// durable under the configured durability mode.
    fn append(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, StoreError>>;

    /// Appends whole spans copied out of another backend (`loupe migrate`):
    /// each already merged there, with its run context filled, and at most
    /// once per call. A backend may store them without reading what it
    /// holds (a bulk load), as long as the result is what [`Self::append`]
    /// would give for spans it does not hold yet, copying them again
    /// changes nothing, and a span written by `append` before or after
    /// wins over its copy. The default is `append`.
    fn append_copied(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, StoreError>> {
        self.append(spans)
    }

    /// [`Self::append`] for a caller that retries while the backend is
    /// overloaded: a write refused with [`StoreError::Overloaded`] gives
    /// its spans back, so a batch source (the Dify sync, `loupe gen`) keeps
    /// no copy of what it writes. The default keeps one, for writers that
    /// cannot give theirs back; the embedded store returns the spans it
    /// refused before touching them.
    fn append_or_return(&self, spans: Vec<Span>) -> BoxFuture<'_, Result<WriteAck, Refused>> {
        Box::pin(async move {
            let copy = spans.clone();
            self.append(spans)
                .await
                .map_err(|error| Refused::new(error, Some(copy)))
        })
    }
}

/// A write [`SpanWriter::append_or_return`] did not take.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub error: StoreError,
    /// The spans, untouched, when `error` is [`StoreError::Overloaded`]
    /// (`None` for every other error: retrying those is not the caller's
    /// business).
    pub spans: Option<Vec<Span>>,
}

impl Refused {
    /// Keeps `spans` only when `error` says to retry.
    pub fn new(error: StoreError, spans: Option<Vec<Span>>) -> Self {
        let spans = spans.filter(|_| matches!(error, StoreError::Overloaded { .. }));
        Self { error, spans }
    }
}

/// One hour, in nanoseconds: the unit of [`Partials`].
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// An hourly partial table for [`SpanReader::sql_with_partials`].
///
/// `sql(lo, hi)` is a statement over `spans` restricted to rows starting
/// in `[lo, hi)` (`hi` `None`: no upper bound), whose first column `h` is
/// the hour of each row's start (`start_ns.div_euclid(HOUR_NS)`), grouped
/// by `h` and the table's key, so that its rows for disjoint ranges,
/// unioned, are its rows for the union of the ranges. Everything else it
/// depends on must be in `key`, except a bound at or after `stable_to`.
pub struct Partials<'a> {
    /// The table's name in the statement.
    pub name: &'a str,
    /// What identifies `sql`'s shape: equal keys, equal rows for an hour.
    pub key: String,
    /// The table holds rows starting at or after this.
    pub from_ns: i64,
    /// Hours ending at or before this do not depend on anything outside
    /// `key` (`None`: no such bound); later ones are always computed.
    pub stable_to: Option<i64>,
    /// The partial statement for `[lo, hi)`.
    pub sql: &'a (dyn Fn(i64, Option<i64>) -> String + Send + Sync),
}

impl Partials<'_> {
    /// The table over everything from `from_ns` on, as a CTE followed by
    /// a comma.
    pub fn inline(&self) -> String {
        format!("{} AS ({}), ", self.name, (self.sql)(self.from_ns, None))
    }
}

/// The read half of a storage backend: what the API, the console and the
/// Dify cleanup's verification read through.
pub trait SpanReader: Send + Sync + 'static {
    /// Every span whose `trace_id` or `run_id` equals `id`, parents before
    /// children (tree order, siblings by start time).
    fn trace<'a>(
        &'a self,
        project: &'a ProjectId,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Span>, StoreError>>;

    /// Every span whose `trace_id` or `run_id` is one of `query.ids`, each
    /// once, in no particular order, with at least `query.columns` filled;
    /// `None` when more than `query.max_spans` spans may match. The same
    /// spans as [`Self::trace`] of each id; backends answer it in one pass
    /// (the default asks `trace` id by id).
    fn traces<'a>(
        &'a self,
        project: &'a ProjectId,
        query: &'a TracesQuery,
    ) -> BoxFuture<'a, Result<Option<Vec<Span>>, StoreError>> {
        Box::pin(traces_one_by_one(self, project, query))
    }

    /// A page of spans matching the query.
    fn list(&self, query: SpanQuery) -> BoxFuture<'_, Result<SpanPage, StoreError>>;

    /// An offset page of spans matching the query, with the total count
    /// when asked for.
    fn page(&self, query: PageQuery) -> BoxFuture<'_, Result<OffsetPage, StoreError>>;

    /// Runs a [`Plan`] over the project's spans and collects the answer
    /// (at most `limits.max_rows` rows; more set `stats.truncated`).
    fn query<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>>;

    /// Runs a [`Plan`] and streams its answer as Arrow batches (exports).
    /// The stream owns everything it needs.
    fn query_stream<'a>(
        &'a self,
        project: &'a ProjectId,
        plan: &'a Plan,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>>;

    /// Runs one read-only SQL query (`SELECT` or `WITH`) over the project's
    /// `spans` table. Anything else is [`StoreError::Invalid`]; backends
    /// without SQL answer [`StoreError::Unsupported`].
    fn sql<'a>(
        &'a self,
        project: &'a ProjectId,
        sql: &'a str,
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        let _ = (project, sql, limits);
        Box::pin(async { Err(StoreError::Unsupported("SQL".into())) })
    }

    /// Runs `statement` over the project's spans and an *hourly partial*
    /// table (`partials.name`): the rows of `partials.sql` over the spans
    /// starting at or after `partials.from_ns`. `statement` receives the
    /// text that defines that table as a CTE (`name AS (…), `, to follow
    /// its `WITH`) and returns the whole statement.
    ///
    /// A backend may answer whole hours of the partial table from a cache
    /// kept exact by its write path, and compute only the rest; this
    /// default computes it all, inline.
    fn sql_with_partials<'a>(
        &'a self,
        project: &'a ProjectId,
        partials: &'a Partials<'a>,
        statement: &'a (dyn Fn(&str) -> String + Send + Sync),
        limits: QueryLimits,
    ) -> BoxFuture<'a, Result<QueryResult, StoreError>> {
        Box::pin(async move {
            let sql = statement(&partials.inline());
            self.sql(project, &sql, limits).await
        })
    }

    /// The project's spans `request` selects, newest version of each, as
    /// a stream of batches: what a SQL engine above the backend reads its
    /// `spans` table from. Backends that run SQL themselves need not
    /// answer it ([`StoreError::Unsupported`], the default).
    fn scan<'a>(
        &'a self,
        project: &'a ProjectId,
        request: ScanRequest,
    ) -> BoxFuture<'a, Result<BatchStream, StoreError>> {
        let _ = (project, request);
        Box::pin(async { Err(StoreError::Unsupported("scans".into())) })
    }

    /// The runs of session `session_id`, oldest first (empty when unknown).
    fn session_runs<'a>(
        &'a self,
        project: &'a ProjectId,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RunSummary>, StoreError>> {
        let _ = (project, session_id);
        Box::pin(async { Err(StoreError::Unsupported("sessions".into())) })
    }

    /// The activity of user `user_id`; `None` when the user has no runs.
    fn user_summary<'a>(
        &'a self,
        project: &'a ProjectId,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserSummary>, StoreError>> {
        let _ = (project, user_id);
        Box::pin(async { Err(StoreError::Unsupported("users".into())) })
    }
}

/// Orders spans as a tree: each parent before its children, roots and
/// siblings by start time. Spans whose parent is absent count as roots.
///
/// A parent named by the id it was *sent* under (`otel.span_id`: a span
/// stored under Dify's id, whose child arrived before it and so kept the
/// OTLP id) is that span.
pub fn tree_order(mut spans: Vec<Span>) -> Vec<Span> {
    use std::collections::{HashMap, HashSet};
    let sent: HashMap<String, String> = spans
        .iter()
        .filter_map(|s| {
            let sent = s.attributes.get("otel.span_id")?;
            (sent != &s.span_id).then(|| (sent.clone(), s.span_id.clone()))
        })
        .collect();
    if !sent.is_empty() {
        let ids: HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
        for span in &mut spans {
            if let Some(p) = &span.parent_span_id
                && !ids.contains(p)
                && let Some(stored) = sent.get(p)
            {
                span.parent_span_id = Some(stored.clone());
            }
        }
    }
    nest_in_containers(&mut spans);
    spans.sort_by(|a, b| (a.start_time, &a.span_id).cmp(&(b.start_time, &b.span_id)));
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent_span_id.as_deref() {
            Some(p) if ids.contains(p) && p != span.span_id => {
                children.entry(p).or_default().push(i)
            }
            _ => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push(i);
        if let Some(kids) = children.get(spans[i].span_id.as_str()) {
            stack.extend(kids.iter().rev());
        }
    }
    // A parent cycle leaves spans unreached: append them rather than lose them.
    order.extend((0..spans.len()).filter(|i| !seen[*i]));
    let mut slots: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Dify's Langfuse provider hangs every node under the run: a node inside
/// an iteration or loop names only its container's *graph* id
/// (`metadata.iteration_id` / `metadata.loop_id`), and the container's
/// observation carries no graph id. A node whose parent is not a container
/// gets the innermost container of that kind whose time range holds its
/// start, leaving out containers that are themselves children of the same
/// graph id (siblings in an outer iteration, not parents). With the
/// database sync the database's parent is already the container: nothing
/// changes.
fn nest_in_containers(spans: &mut [Span]) {
    const KINDS: [(&str, &str); 2] = [
        ("metadata.iteration_id", "iteration"),
        ("metadata.loop_id", "loop"),
    ];
    let is_container = |s: &Span| {
        s.node_type
            .as_deref()
            .is_some_and(|t| t == "iteration" || t == "loop")
    };
    if !spans.iter().any(is_container) {
        return;
    }
    let containers: Vec<&Span> = spans.iter().filter(|s| is_container(s)).collect();
    // Each node is compared with each container: bounded, so a hostile
    // trace of many containers and nodes costs at most this many checks.
    const MAX_CHECKS: usize = 4_000_000;
    if containers.len().saturating_mul(spans.len()) > MAX_CHECKS {
        return;
    }
    let container_ids: std::collections::HashSet<&str> =
        containers.iter().map(|s| s.span_id.as_str()).collect();
    let mut moves: Vec<(usize, String)> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        if span
            .parent_span_id
            .as_ref()
            .is_some_and(|p| container_ids.contains(p.as_str()))
        {
            continue;
        }
        let Some(start) = span.start_time else {
            continue;
        };
        for (attr, kind) in KINDS {
            let Some(graph_id) = span.attributes.get(attr) else {
                continue;
            };
            let parent = containers
                .iter()
                .filter(|c| c.node_type.as_deref() == Some(kind) && c.span_id != span.span_id)
                .filter(|c| c.attributes.get(attr) != Some(graph_id))
                .filter(|c| {
                    c.start_time.is_some_and(|s| s <= start)
                        && c.end_time.is_none_or(|e| start <= e)
                })
                .max_by_key(|c| c.start_time);
            if let Some(c) = parent {
                moves.push((i, c.span_id.clone()));
                break;
            }
        }
    }
    for (i, parent) in moves {
        spans[i].parent_span_id = Some(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn langfuse_nodes_of_an_iteration_hang_off_the_innermost_container() {
        let node = |id: &str, node_type: &str, start: i64, end: i64, iteration: Option<&str>| {
            let mut s = span(id, Some("run"), start);
            s.end_time = Some(end);
            s.node_type = Some(node_type.to_owned());
            if let Some(g) = iteration {
                s.attributes
                    .insert("metadata.iteration_id".into(), g.to_owned());
            }
            s
        };
        let spans = vec![
            span("run", None, 0),
            node("outer", "iteration", 10, 100, None),
            node("inner", "iteration", 20, 50, Some("G-outer")),
            node("a", "llm", 25, 30, Some("G-inner")),
            node("b", "code", 30, 40, Some("G-outer")),
            node("c", "tool", 60, 70, Some("G-outer")),
            node("after", "end", 110, 120, None),
        ];
        let ordered = tree_order(spans);
        let parent = |id: &str| {
            ordered
                .iter()
                .find(|s| s.span_id == id)
                .and_then(|s| s.parent_span_id.clone())
        };
        assert_eq!(parent("inner").as_deref(), Some("outer"));
        assert_eq!(parent("a").as_deref(), Some("inner"));
        assert_eq!(
            parent("b").as_deref(),
            Some("outer"),
            "a sibling of the inner container inside its time range"
        );
        assert_eq!(parent("c").as_deref(), Some("outer"));
        assert_eq!(parent("after").as_deref(), Some("run"));
        assert_eq!(parent("outer").as_deref(), Some("run"));
    }

    fn span(id: &str, parent: Option<&str>, start: i64) -> Span {
        let mut s = Span::new("p", id);
        s.parent_span_id = parent.map(str::to_owned);
        s.start_time = Some(start);
        s
    }

    #[test]
    fn a_parent_named_by_its_sent_id_is_the_span_stored_under_difys_id() {
        let mut node = span("exec-1", Some("run"), 2);
        node.attributes
            .insert("otel.span_id".into(), "aaaaaaaaaaaaaaaa".into());
        let spans = vec![
            span("child", Some("aaaaaaaaaaaaaaaa"), 3),
            node,
            span("run", None, 1),
            span("stray", Some("bbbbbbbbbbbbbbbb"), 4),
        ];
        let ordered = tree_order(spans);
        let ids: Vec<_> = ordered.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, ["run", "exec-1", "child", "stray"]);
        assert_eq!(ordered[2].parent_span_id.as_deref(), Some("exec-1"));
        assert_eq!(
            ordered[3].parent_span_id.as_deref(),
            Some("bbbbbbbbbbbbbbbb"),
            "an unknown parent stays as sent"
        );
    }

    #[test]
    fn tree_order_puts_parents_before_children_and_keeps_cycles() {
        let spans = vec![
            span("c2", Some("root"), 5),
            span("g1", Some("c1"), 3),
            span("c1", Some("root"), 2),
            span("root", None, 1),
            span("x", Some("y"), 9),
            span("y", Some("x"), 8),
        ];
        let ids: Vec<_> = tree_order(spans).into_iter().map(|s| s.span_id).collect();
        assert_eq!(ids[..4], ["root", "c1", "g1", "c2"]);
        assert_eq!(ids.len(), 6);
    }
}
