//! Langfuse ingestion events → [`Span`]s. Pure functions, no I/O.
//!
//! `loupe-ingest` parses the batch envelope (`{"batch": [...]}`), validates
//! each event's `id`, `type` and `timestamp`, orders and de-duplicates the
//! events, and hands each one here as an [`Event`]: the parsed
//! [`EventType`], the event time and the raw `body` JSON. The body types are
//! read field by field from the JSON (not through serde structs) so that an
//! error names the field (`body.startTime`) and unknown fields are ignored.
//!
//! # Mapping
//!
//! - `trace-create` → the run's root span: `span_id` = `trace_id` = body id,
//!   no parent, kind `workflow`, `run_id` = Dify `metadata.workflow_run_id`
//!   else the trace id. Langfuse `tags` go to the attribute `langfuse.tags`
//!   (a JSON array); Loupe's business tags stay for the `[[tags]]` rules.
//! - Observations (`span`, `generation`, `event`, the typed `agent`, `tool`,
//!   `chain`, `retriever`, `evaluator`, `embedding`, `guardrail` creates, the
//!   updates and the legacy `observation-*`) → child spans, `span_id` = body
//!   id, parent = `parentObservationId` else the trace id (creates only: an
//!   update never moves a span). The Langfuse type is kept in the attribute
//!   `langfuse.observation_type`.
//! - `score-create` → a span of kind `other`, `node_type` `score`, named
//!   after the score, child of `observationId` else `traceId`, with
//!   attributes `score.value`, `score.data_type`, `score.comment`,
//!   `score.source`; so scores (user feedback) are queryable like any span.
//! - `sdk-log` → nothing stored.
//!
//! `metadata` is flattened into `metadata.<key>` attributes. Dify's metadata
//! keys also fill first-class fields (see `langfuse/dify.rs`). Every span produced here
//! carries `source` = [`SOURCE`] and the current [`INGEST_VERSION`].
//!
//! A partial body maps to a partial span: only fields the body sets are set,
//! so creates and updates merge in any order (`Span::merge_from`).

mod body;
mod dify;
mod observation;
mod score;
#[cfg(test)]
mod tests;
mod trace;
mod usage;

use loupe_model::{INGEST_VERSION, Span, SpanKind};
use serde_json::Value;

use crate::ItemError;

pub use body::parse_time;

/// The `source` written on every span mapped here.
pub const SOURCE: &str = "langfuse";

/// The `node_type` of spans that hold a Langfuse score.
pub const SCORE_NODE_TYPE: &str = "score";

/// Attribute holding the Langfuse observation type (`GENERATION`, `SPAN`, …).
pub const OBSERVATION_TYPE_ATTR: &str = "langfuse.observation_type";

/// Attribute holding a trace's Langfuse tags as a JSON array of strings.
pub const TAGS_ATTR: &str = "langfuse.tags";

/// A Langfuse observation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservationType {
    /// A generic span.
    Span,
    /// A model call.
    Generation,
    /// A point-in-time event.
    Event,
    /// An agent step.
    Agent,
    /// A tool call.
    Tool,
    /// A chain of steps.
    Chain,
    /// A retrieval.
    Retriever,
    /// An evaluator run.
    Evaluator,
    /// An embedding call.
    Embedding,
    /// A guardrail check.
    Guardrail,
}

impl ObservationType {
    /// The Langfuse spelling (`GENERATION`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Span => "SPAN",
            Self::Generation => "GENERATION",
            Self::Event => "EVENT",
            Self::Agent => "AGENT",
            Self::Tool => "TOOL",
            Self::Chain => "CHAIN",
            Self::Retriever => "RETRIEVER",
            Self::Evaluator => "EVALUATOR",
            Self::Embedding => "EMBEDDING",
            Self::Guardrail => "GUARDRAIL",
        }
    }

    /// Parses a type name in any case (`generation`, `GENERATION`).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "span" => Self::Span,
            "generation" => Self::Generation,
            "event" => Self::Event,
            "agent" => Self::Agent,
            "tool" => Self::Tool,
            "chain" => Self::Chain,
            "retriever" => Self::Retriever,
            "evaluator" => Self::Evaluator,
            "embedding" => Self::Embedding,
            "guardrail" => Self::Guardrail,
            _ => return None,
        })
    }

    /// The span kind this type implies; `None` for generic spans.
    pub fn span_kind(self) -> Option<SpanKind> {
        Some(match self {
            Self::Generation => SpanKind::Llm,
            Self::Agent => SpanKind::Agent,
            Self::Tool => SpanKind::Tool,
            Self::Chain => SpanKind::Chain,
            Self::Retriever => SpanKind::Retrieval,
            Self::Embedding => SpanKind::Embedding,
            Self::Event | Self::Evaluator | Self::Guardrail => SpanKind::Other,
            Self::Span => return None,
        })
    }
}

/// The `type` of an ingestion event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `trace-create` (also an upsert of an existing trace).
    TraceCreate,
    /// `span-create`, `generation-create`, `event-create`, `agent-create`, …
    ObservationCreate(ObservationType),
    /// `span-update`, `generation-update`.
    ObservationUpdate(ObservationType),
    /// Legacy `observation-create` (the body names its `type`).
    LegacyObservationCreate,
    /// Legacy `observation-update` (the body names its `type`).
    LegacyObservationUpdate,
    /// `score-create`.
    ScoreCreate,
    /// `sdk-log`: accepted, not stored.
    SdkLog,
}

impl EventType {
    /// Parses an event `type`; `None` for types Loupe does not accept
    /// (unknown ones and `dataset-run-item-create`).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "trace-create" => Self::TraceCreate,
            "score-create" => Self::ScoreCreate,
            "sdk-log" => Self::SdkLog,
            "observation-create" => Self::LegacyObservationCreate,
            "observation-update" => Self::LegacyObservationUpdate,
            "span-update" => Self::ObservationUpdate(ObservationType::Span),
            "generation-update" => Self::ObservationUpdate(ObservationType::Generation),
            other => {
                let kind = other.strip_suffix("-create")?;
                Self::ObservationCreate(ObservationType::parse(kind)?)
            }
        })
    }

    /// Whether the event updates an entity (processed after creates).
    pub fn is_update(self) -> bool {
        matches!(
            self,
            Self::ObservationUpdate(_) | Self::LegacyObservationUpdate
        )
    }
}

/// One validated ingestion event, ready to map.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Event id (from the envelope).
    pub id: &'a str,
    /// Event type.
    pub event_type: EventType,
    /// Event time, ns since the epoch, when the envelope had a valid one.
    pub timestamp: Option<i64>,
    /// The `body` JSON.
    pub body: &'a Value,
}

/// Maps one event to the spans it writes (none for `sdk-log`; a Dify node
/// that carries the run's error also writes a partial update of its run
/// span). Errors name the body field at fault (`body.startTime`).
pub fn normalise(project: &str, event: &Event<'_>) -> Result<Vec<Span>, ItemError> {
    let body = body::Body::new(event.body)?;
    match event.event_type {
        EventType::SdkLog => Ok(Vec::new()),
        EventType::TraceCreate => Ok(vec![trace::map(project, &body, event.timestamp)?]),
        EventType::ScoreCreate => Ok(vec![score::map(project, event, &body)?]),
        EventType::ObservationCreate(kind) => {
            observation::map(project, kind, false, &body, event.timestamp)
        }
        EventType::ObservationUpdate(kind) => {
            observation::map(project, kind, true, &body, event.timestamp)
        }
        EventType::LegacyObservationCreate | EventType::LegacyObservationUpdate => {
            let text = body
                .text("type")?
                .ok_or_else(|| ItemError::new("body.type", "required for observation events"))?;
            let kind = ObservationType::parse(&text).ok_or_else(|| {
                ItemError::new(
                    "body.type",
                    format!("unknown observation type {text:?}: use GENERATION, SPAN or EVENT"),
                )
            })?;
            let update = event.event_type == EventType::LegacyObservationUpdate;
            observation::map(project, kind, update, &body, event.timestamp)
        }
    }
}

/// A new span with the identity and provenance every mapped span shares.
fn new_span(project: &str, id: String) -> Span {
    let mut span = Span::new(project, id);
    span.source = Some(SOURCE.to_owned());
    span.ingest_version = Some(INGEST_VERSION);
    span
}

fn fill<T>(slot: &mut Option<T>, value: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = value();
    }
}
