//! Langfuse ingestion batches (`POST /api/public/ingestion`) → spans plus a
//! per-event result for the HTTP 207 reply.
//!
//! [`prepare`] parses `{"batch": [...], "metadata": …}`. Only the envelope
//! must be valid JSON of that shape ([`BatchError`] otherwise, a request-level
//! 400); each event is then validated on its own, so one bad event never
//! drops the good ones. Per event:
//!
//! 1. the envelope: `id` (1–800 characters, no carriage return), `type` (one
//!    Loupe accepts, see [`EventType::parse`]), `timestamp` (ISO-8601 when
//!    present) and an object `body`;
//! 2. duplicates of an event id already seen in the batch are dropped (the
//!    first one counts and answers for all);
//! 3. creates before updates, each by event timestamp (then batch order), as
//!    Langfuse does;
//! 4. the body is mapped by [`loupe_normalise::langfuse::normalise`].
//!
//! Spans of the same id within the batch are merged in that order before
//! they are returned, so the store receives one version per span. Across
//! batches the store's upsert merges them the same way (later non-null
//! wins), which makes re-sent batches and duplicate ids harmless.
//!
//! The serde-free event body types live in `loupe-normalise` (pure); this
//! module owns the envelope and the batch semantics.

use std::collections::{HashMap, HashSet};

use loupe_model::Span;
use loupe_normalise::langfuse::{Event, EventType, normalise, parse_time};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::IngestLimits;

#[cfg(test)]
mod tests;

/// Largest accepted request body (4.5 MiB, the Langfuse server's limit).
pub const MAX_BODY_BYTES: usize = 4_718_592;

/// Longest accepted event id, in characters.
pub const MAX_ID_CHARS: usize = 800;

/// Why a whole request was rejected (HTTP 400).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The body is not JSON.
    #[error("body is not valid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The JSON is not `{"batch": [...]}`.
    #[error("body must be a JSON object with a \"batch\" array of events")]
    NotABatch,
    /// More events than `ingest.max_events_per_batch` (HTTP 413).
    #[error(
        "the batch has {events} events, more than ingest.max_events_per_batch = {limit}; send smaller batches"
    )]
    TooManyEvents {
        /// Events in the batch.
        events: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why one event was not stored: the entry of `errors[]` in the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct EventError {
    /// HTTP-like status of the event (400 for invalid data).
    pub status: u16,
    /// Langfuse's short message (`Invalid request data`).
    pub message: &'static str,
    /// What exactly is wrong, naming the field.
    pub error: String,
}

impl EventError {
    fn invalid(error: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: "Invalid request data",
            error: error.into(),
        }
    }
}

/// The outcome of one distinct event id of the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct EventResult {
    /// The event id (for an event without a usable id: `batch[<index>]`).
    pub id: String,
    /// `Ok` when the event's spans are part of [`Prepared::spans`].
    pub outcome: Result<(), EventError>,
}

/// A batch ready to write.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Spans to append, one (merged) version per span id.
    pub spans: Vec<Span>,
    /// One result per distinct event id, in batch order.
    pub results: Vec<EventResult>,
}

struct Valid<'a> {
    index: usize,
    event: Event<'a>,
}

/// Parses and maps a batch body for `project` with the default
/// [`IngestLimits`] and no time window (see [`prepare_with`]).
pub fn prepare(project: &str, body: &[u8]) -> Result<Prepared, BatchError> {
    prepare_with(project, body, &IngestLimits::default(), None)
}

/// The batch as raw event texts (slices of the body: nothing is built per
/// event until the count is known to be under the cap).
#[derive(serde::Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
}

/// Parses and maps a batch body for `project`. Never panics on input.
///
/// A batch of more than `limits.max_events_per_batch` events is refused
/// whole ([`BatchError::TooManyEvents`], 413) before any event is parsed.
/// Each event is parsed on its own, so one that is not valid JSON (a lone
/// surrogate `"\ud800"`) fails only itself. Given a clock `now_ns`, an
/// event whose span times fall outside the accepted window fails too.
pub fn prepare_with(
    project: &str,
    body: &[u8],
    limits: &IngestLimits,
    now_ns: Option<i64>,
) -> Result<Prepared, BatchError> {
    let raw: RawBatch<'_> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            return BatchError::NotABatch;
        }
        BatchError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    })?;
    let batch = raw.batch.ok_or(BatchError::NotABatch)?;
    if batch.len() > limits.max_events_per_batch {
        return Err(BatchError::TooManyEvents {
            events: batch.len(),
            limit: limits.max_events_per_batch,
        });
    }
    let parsed: Vec<Result<Value, String>> = batch
        .iter()
        .map(|text| serde_json::from_str(text.get()).map_err(|e| e.to_string()))
        .collect();

    let mut results: Vec<EventResult> = Vec::with_capacity(batch.len());
    let mut seen: HashSet<&str> = HashSet::new();
    let mut valid: Vec<Valid<'_>> = Vec::with_capacity(batch.len());
    for (index, raw) in parsed.iter().enumerate() {
        let raw = match raw {
            Ok(raw) => raw,
            Err(e) => {
                results.push(EventResult {
                    id: format!("batch[{index}]"),
                    outcome: Err(EventError::invalid(format!("not valid JSON: {e}"))),
                });
                continue;
            }
        };
        let id = raw.get("id").and_then(Value::as_str);
        if let Some(id) = id
            && !seen.insert(id)
        {
            continue;
        }
        let label = id
            .map(str::to_owned)
            .unwrap_or_else(|| format!("batch[{index}]"));
        match envelope(raw) {
            Ok(event) => {
                valid.push(Valid { index, event });
                results.push(EventResult {
                    id: label,
                    outcome: Ok(()),
                });
            }
            Err(error) => results.push(EventResult {
                id: label,
                outcome: Err(error),
            }),
        }
    }

    valid.sort_by_key(|v| (v.event.event_type.is_update(), v.event.timestamp, v.index));
    let position: HashMap<&str, usize> = results
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut spans: Vec<Span> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut failed: Vec<(usize, EventError)> = Vec::new();
    for v in &valid {
        let mapped = normalise(project, &v.event)
            .map_err(|e| e.to_string())
            .and_then(
                |mapped| match now_ns.and_then(|now| out_of_window(&mapped, limits, now)) {
                    Some(problem) => Err(problem),
                    None => Ok(mapped),
                },
            );
        match mapped {
            Ok(mapped) => {
                for span in mapped {
                    match by_id.get(&span.span_id) {
                        Some(&i) => spans[i].merge_from(span),
                        None => {
                            by_id.insert(span.span_id.clone(), spans.len());
                            spans.push(span);
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(&i) = position.get(v.event.id) {
                    failed.push((i, EventError::invalid(e)));
                }
            }
        }
    }
    for (i, error) in failed {
        results[i].outcome = Err(error);
    }
    Ok(Prepared { spans, results })
}

/// The first span time of an event outside the accepted window.
fn out_of_window(spans: &[Span], limits: &IngestLimits, now_ns: i64) -> Option<String> {
    spans.iter().find_map(|span| {
        [("startTime", span.start_time), ("endTime", span.end_time)]
            .into_iter()
            .find_map(|(field, at)| {
                Some(format!(
                    "body.{field}: {}",
                    limits.time_problem(at?, now_ns)?
                ))
            })
    })
}

/// Validates the envelope of one event.
fn envelope(raw: &Value) -> Result<Event<'_>, EventError> {
    let obj = raw
        .as_object()
        .ok_or_else(|| EventError::invalid("event must be a JSON object"))?;
    let id = match obj.get("id") {
        Some(Value::String(id)) => id.as_str(),
        Some(_) => return Err(EventError::invalid("id: must be a string")),
        None => return Err(EventError::invalid("id: required")),
    };
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.contains('\r') {
        return Err(EventError::invalid(format!(
            "id: must be 1-{MAX_ID_CHARS} characters without carriage returns"
        )));
    }
    let type_text = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::invalid("type: required string"))?;
    let event_type = EventType::parse(type_text).ok_or_else(|| EventError {
        status: 400,
        message: "Event type not accepted",
        error: format!("type: {type_text:?} is not an event type Loupe accepts"),
    })?;
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(parse_time(t).ok_or_else(|| {
            EventError::invalid(format!("timestamp: {t:?} is not an ISO-8601 time"))
        })?),
        Some(_) => return Err(EventError::invalid("timestamp: must be an ISO-8601 string")),
    };
    let body = obj
        .get("body")
        .filter(|b| b.is_object())
        .ok_or_else(|| EventError::invalid("body: required object"))?;
    Ok(Event {
        id,
        event_type,
        timestamp,
        body,
    })
}
