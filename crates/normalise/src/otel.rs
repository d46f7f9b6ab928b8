//! OpenTelemetry spans → [`Span`], through a priority-ordered set of
//! attribute conventions.
//!
//! [`OtelSpan`] is a source-neutral OpenTelemetry span: hex ids, the OTel
//! span kind and status, attributes as an ordered `(key, value)` list of
//! [`AttrValue`], events, links, resource attributes and the instrumentation
//! scope. `loupe-ingest` builds it from OTLP protobuf/JSON; nothing here knows
//! protobuf types. [`normalise`] maps one span.
//!
//! # Mapping order
//!
//! Each first-class field takes the first value found, in this order:
//!
//! 1. Dify's own markers: the Phoenix/Arize provider's root span
//!    (`dify_trace_id`), workflow span and node spans (the `metadata` JSON
//!    string), `ENABLE_OTEL` node spans (`node.type`), and Dify 1.19+'s
//!    export (`dify.*`, also under `langfuse.observation.metadata.`), whose
//!    spans are stored under Dify's own ids (`dify_export`; parents are
//!    resolved per request by [`link()`]). Dify's node type and status win
//!    over every convention.
//! 2. Langfuse OTel (`langfuse.observation.*`, `langfuse.trace.*`).
//! 3. OpenInference (`openinference.span.kind`, `input.value`, `llm.*`, …).
//! 4. OTel GenAI (`gen_ai.*`, including the Aliyun/Tencent/Dify
//!    `gen_ai.span.kind`).
//! 5. OpenLLMetry/Traceloop (`traceloop.*`, `llm.usage.*`).
//! 6. Dify `metadata` fallbacks (model, tokens, price on node spans).
//! 7. Plain OTel: root spans become `workflow`, `http.*` spans `http`,
//!    everything else `other`; errors from the status, `error.type` and
//!    exception events.
//!
//! An attribute is *consumed* only when its value lands in a first-class
//! field; a lower-priority attribute shadowed by a higher one stays in
//! [`Span::attributes`], so nothing is lost. See [`normalise`] for the
//! attribute layout.

mod attrs;
mod dify;
mod dify_export;
mod errors;
mod genai;
mod langfuse;
mod link;
mod openinference;
#[cfg(test)]
mod tests;
mod traceloop;

use loupe_model::{INGEST_VERSION, Span, SpanKind};

use crate::ItemError;
use attrs::Bag;
pub use link::{IdCache, link};

/// The `source` written on every span mapped here.
pub const SOURCE: &str = "otlp";

/// An attribute value, as OpenTelemetry's `AnyValue`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AttrValue {
    /// No value set.
    #[default]
    Empty,
    /// A UTF-8 string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Raw bytes (rendered as base64 text).
    Bytes(Vec<u8>),
    /// A homogeneous or mixed array (rendered as JSON text).
    Array(Vec<AttrValue>),
    /// A key/value list (rendered as a JSON object).
    Map(Attributes),
}

impl AttrValue {
    /// The value as stored text: strings verbatim, numbers and booleans in
    /// their usual spelling, bytes as base64, arrays and maps as JSON.
    pub fn to_text(&self) -> String {
        attrs::text(self)
    }
}

/// Attributes in source order. Keys should be unique; on duplicates the
/// first occurrence is read by the conventions.
pub type Attributes = Vec<(String, AttrValue)>;

/// The OpenTelemetry span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtelKind {
    /// Not specified by the sender.
    #[default]
    Unspecified,
    /// An internal operation.
    Internal,
    /// Server side of a synchronous request.
    Server,
    /// Client side of a synchronous request.
    Client,
    /// Sender of an asynchronous message.
    Producer,
    /// Receiver of an asynchronous message.
    Consumer,
}

impl OtelKind {
    /// Lowercase name, as stored in the `otel.span_kind` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

/// The OpenTelemetry span status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    /// The sender said nothing about the outcome.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

impl StatusCode {
    /// The protobuf enum name (`STATUS_CODE_OK`, …), stored as
    /// [`Span::raw_status`] when no source-specific status exists.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "STATUS_CODE_UNSET",
            Self::Ok => "STATUS_CODE_OK",
            Self::Error => "STATUS_CODE_ERROR",
        }
    }
}

/// A timestamped span event (exceptions, logs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OtelEvent {
    /// Event name (`exception` for recorded exceptions).
    pub name: String,
    /// Time in ns since the Unix epoch; 0 when unknown.
    pub time_unix_nano: u64,
    /// Event attributes.
    pub attributes: Attributes,
}

/// A link to another span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OtelLink {
    /// Linked trace id, lowercase hex.
    pub trace_id: String,
    /// Linked span id, lowercase hex.
    pub span_id: String,
    /// W3C trace state of the link, often empty.
    pub trace_state: String,
    /// Link attributes.
    pub attributes: Attributes,
}

/// A source-neutral OpenTelemetry span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OtelSpan {
    /// Trace id, 32 lowercase hex digits (16 bytes).
    pub trace_id: String,
    /// Span id, 16 lowercase hex digits (8 bytes).
    pub span_id: String,
    /// Parent span id (16 hex digits); `None` (or all zeroes) for a root.
    pub parent_span_id: Option<String>,
    /// W3C trace state, often empty.
    pub trace_state: String,
    /// Span name.
    pub name: String,
    /// OTel span kind.
    pub kind: OtelKind,
    /// Start, ns since the Unix epoch; 0 when unknown.
    pub start_time_unix_nano: u64,
    /// End, ns since the Unix epoch; 0 when unknown.
    pub end_time_unix_nano: u64,
    /// Status code.
    pub status_code: StatusCode,
    /// Status message (meaningful with [`StatusCode::Error`]).
    pub status_message: String,
    /// Span attributes, in source order.
    pub attributes: Attributes,
    /// Span events, in source order.
    pub events: Vec<OtelEvent>,
    /// Links to other spans.
    pub links: Vec<OtelLink>,
    /// Attributes of the resource that produced the span.
    pub resource_attributes: Attributes,
    /// Instrumentation scope name.
    pub scope_name: String,
    /// Instrumentation scope version.
    pub scope_version: String,
}

/// Whether `span` is a tracing provider's connectivity check rather than
/// work: Dify's Phoenix and Arize providers send a root span named
/// `api_check` with the attribute `test = "true"` when a tracing config is
/// saved. It is answered with success but never stored (it would count as
/// a run).
pub fn is_connectivity_check(span: &OtelSpan) -> bool {
    span.name == "api_check"
        && span
            .parent_span_id
            .as_deref()
            .is_none_or(|p| p.bytes().all(|b| b == b'0'))
        && span.attributes.iter().any(|(k, v)| {
            k == "test"
                && (matches!(v, AttrValue::Str(t) if t == "true")
                    || matches!(v, AttrValue::Bool(true)))
        })
}

/// Maps one OpenTelemetry span to a [`Span`] of `project`.
///
/// Ids are validated (trace id 16 bytes, span and parent ids 8 bytes, as
/// lowercase hex, not all zeroes; an all-zero parent means "root") and times
/// must fit an `i64` of nanoseconds; a violation is an [`ItemError`] whose
/// `field` is the OTLP/JSON field name (`traceId`, `spanId`, `parentSpanId`,
/// `startTimeUnixNano`, `endTimeUnixNano`), for the caller to prefix with the
/// span's path. An end before the start is kept as sent.
///
/// Attribute layout of the result: every span attribute not consumed into a
/// first-class field, verbatim (arrays and maps as JSON text, bytes as
/// base64); the `metadata` JSON object flattened into `metadata.<key>`
/// (strings verbatim, other values as JSON text); every resource attribute as
/// `resource.<key>`; `otel.span_kind`, `otel.scope.name`,
/// `otel.scope.version`, `otel.trace_state` and `otel.span_name` (when the
/// display name differs) when set; `events` and `links` as JSON arrays;
/// attributes of the exception event used for the error (stack trace, …)
/// under their own `exception.*` keys.
///
/// Never panics.
pub fn normalise(project: &str, span: &OtelSpan) -> Result<Span, ItemError> {
    let ids = Ids::validate(span)?;
    let mut out = Span::new(project, span.span_id.clone());
    out.trace_id = Some(span.trace_id.clone());
    out.parent_span_id = ids.parent;
    out.start_time = time("startTimeUnixNano", span.start_time_unix_nano)?;
    out.end_time = time("endTimeUnixNano", span.end_time_unix_nano)?;
    out.name = non_empty(&span.name);
    out.source = Some(SOURCE.to_owned());
    out.ingest_version = Some(INGEST_VERSION);
    let is_root = out.parent_span_id.is_none();

    let renamed = dify_export::renamed(&span.attributes);
    let mut bag = Bag::new(renamed.as_deref().unwrap_or(&span.attributes));
    let meta = dify::Metadata::take(&mut bag);
    let role = dify::Role::detect(&bag, meta.as_ref(), span);
    dify::apply_primary(role, meta.as_ref(), &mut bag, &mut out);
    // Every Dify provider span is stored under Dify's ids (see
    // `dify_export`): the 1.19+ export's markers, and the Phoenix/Arize
    // provider's run, node and task spans with their `metadata`.
    let dify_ids = match role {
        dify::Role::Root => {
            dify_export::place_root(&mut out);
            false
        }
        dify::Role::Workflow | dify::Role::Node | dify::Role::Task | dify::Role::Export => true,
        dify::Role::Generic | dify::Role::SelfInstrumented => {
            let export = dify_export::is_export(&bag)
                || meta.as_ref().is_some_and(|m| m.has("node_execution_id"));
            if !export && role == dify::Role::SelfInstrumented {
                dify_export::rekey_self_instrumented(&bag, &mut out);
            }
            export
        }
    };
    let export = if dify_ids {
        dify_export::apply(role, meta.as_ref(), &mut bag, &span.name, &mut out)
    } else {
        dify_export::Export::default()
    };
    langfuse::apply(&mut bag, is_root, &mut out);
    openinference::apply(&mut bag, &mut out);
    genai::apply(&mut bag, &mut out);
    traceloop::apply(&mut bag, &mut out);
    dify::apply_fallback(role, meta.as_ref(), &mut out);
    finish_kind(&bag, is_root, role, &mut out);
    let used_event = errors::apply(span, role, meta.as_ref(), &export, &mut bag, &mut out);

    if role.is_run_scoped_by_trace() {
        // Each OTel trace is one run for generic traffic.
        out.run_id = Some(span.trace_id.clone());
    }
    if !role.is_dify()
        && let Some(service) = attrs::find_text(&span.resource_attributes, "service.name")
    {
        out.app_id.get_or_insert_with(|| service.clone());
        out.app_name.get_or_insert(service);
    }
    if out.total_tokens.is_none()
        && let (Some(i), Some(o)) = (out.input_tokens, out.output_tokens)
    {
        out.total_tokens = i.checked_add(o);
    }
    dify_export::finish(&export, &mut out);

    attrs::write_leftovers(&bag, &mut out.attributes);
    if let Some(meta) = &meta {
        meta.flatten_into(&mut out.attributes);
    }
    attrs::write_span_extras(span, used_event, &mut out);
    Ok(out)
}

/// Picks the kind when no convention named one: a root span is the run
/// (`workflow`), an HTTP span is `http`, anything else `other`.
fn finish_kind(bag: &Bag<'_>, is_root: bool, role: dify::Role, out: &mut Span) {
    let generic = matches!(out.span_kind, None | Some(SpanKind::Chain));
    if is_root && generic && role != dify::Role::Root {
        out.span_kind = Some(SpanKind::Workflow);
    }
    if out.span_kind.is_none() {
        let http = bag.contains("http.method") || bag.contains("http.request.method");
        out.span_kind = Some(if http {
            SpanKind::Http
        } else {
            SpanKind::Other
        });
    }
}

struct Ids {
    parent: Option<String>,
}

impl Ids {
    fn validate(span: &OtelSpan) -> Result<Self, ItemError> {
        check_id("traceId", &span.trace_id, 16)?;
        check_id("spanId", &span.span_id, 8)?;
        let parent = match span.parent_span_id.as_deref() {
            None | Some("") => None,
            Some(p) if p.bytes().all(|b| b == b'0') && p.len() == 16 => None,
            Some(p) => {
                check_id("parentSpanId", p, 8)?;
                Some(p.to_owned())
            }
        };
        Ok(Self { parent })
    }
}

fn check_id(field: &str, hex: &str, bytes: usize) -> Result<(), ItemError> {
    let lower_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lower_hex || !hex.len().is_multiple_of(2) {
        return Err(ItemError::new(field, "must be lowercase hex"));
    }
    if hex.len() != bytes * 2 {
        return Err(ItemError::new(
            field,
            format!("must be {bytes} bytes, got {}", hex.len() / 2),
        ));
    }
    if hex.bytes().all(|b| b == b'0') {
        return Err(ItemError::new(field, "must not be all zeroes"));
    }
    Ok(())
}

fn time(field: &str, nanos: u64) -> Result<Option<i64>, ItemError> {
    if nanos == 0 {
        return Ok(None);
    }
    i64::try_from(nanos)
        .map(Some)
        .map_err(|_| ItemError::new(field, format!("{nanos} ns is past year 2262")))
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Fills `slot` from `value` unless it is already set (priority order: the
/// first convention to fill a field wins).
fn fill<T>(slot: &mut Option<T>, value: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = value();
    }
}
