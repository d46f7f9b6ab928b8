//! What differs between cleaning runs and cleaning messages, as one trait:
//! a *family* is a keyset row (a run, a message) with its child rows (node
//! executions, feedback). [`super::batch`] runs the one flow — page, skip
//! open rows, verify against the store, re-check under lock, delete — for
//! either family through this trait.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDateTime;
use loupe_model::{Span, column};
use tokio_postgres::GenericClient;

use super::Scope;
use super::batch::{Attempt, Bounds};
use super::delete::Key;
use super::verify::{self, Fact, FeedbackRow, MessageRow, NodeRow, RunRow};

/// How a stored span becomes a verification fact.
pub(crate) type StoredFact = Box<dyn Fn(&Span) -> Fact + Send + Sync>;

/// What a family's hooks may consult besides its rows.
pub(crate) struct Ctx<'a> {
    /// Runs and messages the sync saw open.
    pub open_runs: &'a BTreeSet<String>,
    /// See `open_runs`.
    pub open_messages: &'a BTreeSet<String>,
    /// The scope being cleaned.
    pub scope: Scope,
    /// The sync's position in `message_feedbacks`.
    pub feedback_upto: Option<&'a (NaiveDateTime, String)>,
}

/// A keyset row with child rows, cleaned together.
pub(crate) trait Family: Clone + Sized {
    /// Its child rows.
    type Child;
    /// The keyset table (names query errors on it).
    const TABLE: &'static str;
    /// The children's table.
    const CHILD_TABLE: &'static str;
    /// Which delete steps take this family's ids, and its children's.
    const KEYS: (Key, Key);

    /// Row id.
    fn id(&self) -> &str;
    /// The row's workspace (when known) and app: which project holds it.
    fn owner(&self) -> (Option<&str>, &str);
    /// Keyset time.
    fn created_at(&self) -> NaiveDateTime;
    /// Why the row must not be cleaned now (it may still change), if so.
    fn open(&self, ctx: &Ctx<'_>) -> Option<String>;
    /// A keyset page within the bounds.
    async fn page(c: &impl GenericClient, b: &Bounds<'_>) -> Result<Vec<Self>, Attempt>;
    /// Rows by id, locked for the delete when `lock`.
    async fn by_id(
        c: &impl GenericClient,
        ids: &[String],
        lock: bool,
    ) -> Result<Vec<Self>, Attempt>;
    /// The children of the rows.
    async fn children(c: &impl GenericClient, ids: &[String]) -> Result<Vec<Self::Child>, Attempt>;
    /// The id of a child's parent row.
    fn parent_of(child: &Self::Child) -> &str;
    /// A child's own id.
    fn child_id(child: &Self::Child) -> &str;
    /// Why the row cannot be verified before looking at the store, if so.
    fn precheck(&self, children: &[&Self::Child], ctx: &Ctx<'_>) -> Option<String>;
    /// The facts of the row and its children, as verification compares them.
    fn facts(&self, children: &[&Self::Child]) -> BTreeMap<String, Fact>;
    /// How a stored span of this row becomes a fact.
    fn stored(&self, children: &[&Self::Child]) -> StoredFact;
    /// The span columns [`Self::stored`] reads (`loupe_model::column`).
    const STORED_COLUMNS: &'static [&'static str];
    /// Whether a verified row is deleted in this scope.
    fn deletable(&self, children: &[&Self::Child], ctx: &Ctx<'_>) -> bool;
    /// The database digest of the row and its children.
    fn digest(&self, children: &[&Self::Child]) -> String;
}

impl Family for RunRow {
    type Child = NodeRow;
    const TABLE: &'static str = "workflow_runs";
    const CHILD_TABLE: &'static str = "workflow_node_executions";
    const KEYS: (Key, Key) = (Key::Runs, Key::Nodes);
    // What `verify::run_span_fact` reads.
    const STORED_COLUMNS: &'static [&'static str] =
        &[column::RAW_STATUS, column::END_TIME, column::ATTRIBUTES];

    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> (Option<&str>, &str) {
        (Some(&self.tenant_id), &self.app_id)
    }
    fn created_at(&self) -> NaiveDateTime {
        self.created_at
    }
    fn open(&self, ctx: &Ctx<'_>) -> Option<String> {
        (self.is_open() || ctx.open_runs.contains(self.id.as_str()))
            .then(|| format!("run is {}", self.status))
    }
    async fn page(c: &impl GenericClient, b: &Bounds<'_>) -> Result<Vec<Self>, Attempt> {
        verify::runs_page(c, b).await
    }
    async fn by_id(
        c: &impl GenericClient,
        ids: &[String],
        lock: bool,
    ) -> Result<Vec<Self>, Attempt> {
        verify::runs_by_id(c, ids, lock).await
    }
    async fn children(c: &impl GenericClient, ids: &[String]) -> Result<Vec<NodeRow>, Attempt> {
        verify::nodes_of(c, ids).await
    }
    fn parent_of(child: &NodeRow) -> &str {
        &child.run_id
    }
    fn child_id(child: &NodeRow) -> &str {
        &child.id
    }
    fn precheck(&self, _: &[&NodeRow], _: &Ctx<'_>) -> Option<String> {
        None
    }
    fn facts(&self, children: &[&NodeRow]) -> BTreeMap<String, Fact> {
        verify::run_facts(self, children)
    }
    fn stored(&self, _: &[&NodeRow]) -> StoredFact {
        Box::new(verify::run_span_fact)
    }
    fn deletable(&self, children: &[&NodeRow], ctx: &Ctx<'_>) -> bool {
        // Scope `nodes` keeps the run rows: a run without node rows left
        // has nothing to delete there.
        ctx.scope == Scope::Runs || !children.is_empty()
    }
    fn digest(&self, children: &[&NodeRow]) -> String {
        verify::run_digest(self, children)
    }
}

impl Family for MessageRow {
    type Child = FeedbackRow;
    const TABLE: &'static str = "messages";
    const CHILD_TABLE: &'static str = "message_feedbacks";
    const KEYS: (Key, Key) = (Key::Messages, Key::Feedbacks);
    // What `verify::message_span_fact` reads.
    const STORED_COLUMNS: &'static [&'static str] = &[
        column::RAW_STATUS,
        column::START_TIME,
        column::END_TIME,
        column::OUTPUT,
        column::ATTRIBUTES,
    ];

    fn id(&self) -> &str {
        &self.id
    }
    fn owner(&self) -> (Option<&str>, &str) {
        (self.tenant_id.as_deref(), &self.app_id)
    }
    fn created_at(&self) -> NaiveDateTime {
        self.created_at
    }
    fn open(&self, ctx: &Ctx<'_>) -> Option<String> {
        let open_run = self
            .run_id
            .as_deref()
            .is_some_and(|r| ctx.open_runs.contains(r));
        (self.status == "paused" || open_run || ctx.open_messages.contains(self.id.as_str()))
            .then(|| format!("message is {} or its run is open", self.status))
    }
    async fn page(c: &impl GenericClient, b: &Bounds<'_>) -> Result<Vec<Self>, Attempt> {
        verify::messages_page(c, b).await
    }
    async fn by_id(
        c: &impl GenericClient,
        ids: &[String],
        lock: bool,
    ) -> Result<Vec<Self>, Attempt> {
        verify::messages_by_id(c, ids, lock).await
    }
    async fn children(c: &impl GenericClient, ids: &[String]) -> Result<Vec<FeedbackRow>, Attempt> {
        verify::feedbacks_of(c, ids).await
    }
    fn parent_of(child: &FeedbackRow) -> &str {
        &child.message_id
    }
    fn child_id(child: &FeedbackRow) -> &str {
        &child.id
    }
    fn precheck(&self, children: &[&FeedbackRow], ctx: &Ctx<'_>) -> Option<String> {
        // Feedback changes in place: a row newer than the sync's position
        // is not in the store yet.
        let synced = |f: &FeedbackRow| {
            ctx.feedback_upto
                .is_some_and(|(at, id)| (f.updated_at, f.id.as_str()) <= (*at, id.as_str()))
        };
        (!children.iter().all(|f| synced(f)))
            .then(|| "feedback changed after the last sync".to_owned())
    }
    fn facts(&self, children: &[&FeedbackRow]) -> BTreeMap<String, Fact> {
        verify::message_facts(self, children)
    }
    fn stored(&self, children: &[&FeedbackRow]) -> StoredFact {
        let ids: HashSet<String> = children.iter().map(|f| f.id.clone()).collect();
        Box::new(move |s| verify::message_span_fact(&ids, s))
    }
    fn deletable(&self, _: &[&FeedbackRow], _: &Ctx<'_>) -> bool {
        true
    }
    fn digest(&self, children: &[&FeedbackRow]) -> String {
        verify::message_digest(self, children)
    }
}
