//! The [`Span`] record, its open enums and the field-by-field merge rule.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Business tags and free-form attributes: string keys to string values.
///
/// Non-string source values (numbers, booleans, arrays) are kept as their JSON
/// text, so nothing is lost and every value stays comparable as text.
pub type Tags = BTreeMap<String, String>;

/// Sources that read a system of record directly (`dify_db`: Dify's
/// PostgreSQL), whose versions of a span outrank a tracing provider's
/// copies in [`Span::merge_from`].
pub const DATABASE_SOURCES: &[&str] = &["dify_db"];

/// A project: the unit of isolation. Every stored row and every read names one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(String);

impl ProjectId {
    /// The project used when a source names none and auth is open.
    pub const DEFAULT: &'static str = "default";

    /// Builds a project id, rejecting names that cannot be used as a path
    /// segment (empty, too long, or containing anything but `[A-Za-z0-9._-]`).
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidProjectId> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(name))
        } else {
            Err(InvalidProjectId(name))
        }
    }

    /// The default project.
    pub fn default_project() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// The project name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A project name that is not usable; see [`ProjectId::new`].
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "invalid project name {0:?}: use 1-128 characters from A-Z a-z 0-9 . _ - (not starting with '.')"
)]
pub struct InvalidProjectId(pub String);

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored text of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored text; `None` for anything else.
            pub fn from_stored(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// What a span does, normalised across sources. The source's own value is
    /// kept verbatim in [`Span::node_type`]; anything unrecognised is `Other`.
    SpanKind {
        /// A whole run: a Dify workflow/chatflow run, a chat turn, a trace root.
        Workflow => "workflow",
        /// A model call that generates text.
        Llm => "llm",
        /// A tool or plugin call.
        Tool => "tool",
        /// Knowledge retrieval (RAG).
        Retrieval => "retrieval",
        /// An agent step or agent node.
        Agent => "agent",
        /// A generic step that chains others (start/end nodes, templates).
        Chain => "chain",
        /// An embedding call.
        Embedding => "embedding",
        /// A rerank call.
        Rerank => "rerank",
        /// An outbound HTTP request node.
        Http => "http",
        /// A code-execution node.
        Code => "code",
        /// Control flow: if/else, question classifier, iteration, loop.
        Branch => "branch",
        /// Anything else; the raw value is in `node_type`.
        Other => "other",
    }
}

open_enum! {
    /// Outcome of a span, normalised. The source's own value is kept in
    /// [`Span::raw_status`] (Dify has `succeeded`, `failed`, `stopped`,
    /// `partial-succeeded`, `exception`, `paused`, …).
    Status {
        /// Finished successfully.
        Ok => "ok",
        /// Finished with an error.
        Error => "error",
        /// Started and not finished yet (or paused).
        Running => "running",
        /// The source said nothing about the outcome.
        Unset => "unset",
    }
}

/// One unit of work inside a run, or a partial update to one.
///
/// Times are nanoseconds since the Unix epoch (UTC). Token counts are whole
/// tokens; `cost` is in `currency` (USD when the source does not say).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Span {
    /// Owning project (isolation unit).
    pub project: String,
    /// Trace id as the source spells it (hex for OTLP, UUID for Dify/Langfuse).
    pub trace_id: Option<String>,
    /// Span id, unique within the project. The upsert key with `project`.
    pub span_id: String,
    /// Parent span id; `None` for a root.
    pub parent_span_id: Option<String>,
    /// The run this span belongs to (Dify `workflow_run_id` or message id;
    /// the trace id for generic OpenTelemetry traffic).
    pub run_id: Option<String>,
    /// Conversation / session id.
    pub session_id: Option<String>,
    /// End user id.
    pub user_id: Option<String>,
    /// Dify app id (or the service name for generic sources).
    pub app_id: Option<String>,
    /// Human-readable app name.
    pub app_name: Option<String>,
    /// Dify workflow id.
    pub workflow_id: Option<String>,
    /// Workflow version (Dify `draft` or a publish timestamp).
    pub workflow_version: Option<String>,
    /// Normalised kind.
    pub span_kind: Option<SpanKind>,
    /// Raw node type as the source gave it (`llm`, `tool`, `http-request`, …).
    pub node_type: Option<String>,
    /// Display name (node title, span name).
    pub name: Option<String>,
    /// Normalised status.
    pub status: Option<Status>,
    /// Raw status text from the source.
    pub raw_status: Option<String>,
    /// Error message, full text.
    pub error_message: Option<String>,
    /// Short error class (exception type, `http_500`, `timeout`, …).
    pub error_class: Option<String>,
    /// Start, ns since epoch.
    pub start_time: Option<i64>,
    /// End, ns since epoch.
    pub end_time: Option<i64>,
    /// Model name for LLM/embedding/rerank spans.
    pub model_name: Option<String>,
    /// Model provider.
    pub model_provider: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Completion tokens.
    pub output_tokens: Option<i64>,
    /// Total tokens.
    pub total_tokens: Option<i64>,
    /// Cost in `currency`.
    pub cost: Option<f64>,
    /// ISO currency code of `cost`.
    pub currency: Option<String>,
    /// Tool name for tool spans.
    pub tool_name: Option<String>,
    /// Full input text (JSON text for structured inputs), never truncated.
    pub input: Option<String>,
    /// Full output text, never truncated.
    pub output: Option<String>,
    /// Every other source attribute, verbatim key, value as text.
    pub attributes: Tags,
    /// Business tags (see the `[[tags]]` rules in the config).
    pub tags: Tags,
    /// Which source produced the latest version (`otlp`, `langfuse`, `dify_db`, …).
    pub source: Option<String>,
    /// Normaliser version that produced the latest version.
    pub ingest_version: Option<u32>,
}

impl Span {
    /// A span with only its identity set.
    pub fn new(project: impl Into<String>, span_id: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            span_id: span_id.into(),
            ..Self::default()
        }
    }

    /// Duration in ns when both ends are known (never negative).
    pub fn duration_ns(&self) -> Option<i64> {
        match (self.start_time, self.end_time) {
            (Some(s), Some(e)) => Some(e.saturating_sub(s).max(0)),
            _ => None,
        }
    }

    /// The time the span is filed under: start, else end.
    pub fn event_time(&self) -> Option<i64> {
        self.start_time.or(self.end_time)
    }

    /// Merges a later version of the same span into `self`: each field of
    /// `later` that is set overrides the one here; unset fields keep the
    /// earlier value. Attribute and tag maps merge key by key.
    ///
    /// Except when `later` comes from a source of lower fidelity than the
    /// version here ([`Span::fidelity`]) and this version is final: then
    /// `later` only fills what is unset. Dify's database holds full
    /// payloads and exact times, its tracing providers send copies (Dify
    /// 1.20 truncates every field at 64 KiB), so a provider's late copy of
    /// a synced run must not overwrite it; a run synced while still running
    /// is still completed by the provider's finished copy.
    pub fn merge_from(&mut self, later: Span) {
        let weaker = later.fidelity() < self.fidelity()
            && !matches!(self.status, None | Some(Status::Running));
        macro_rules! take {
            ($($field:ident),+ $(,)?) => { $(
                if later.$field.is_some() && (!weaker || self.$field.is_none()) {
                    self.$field = later.$field;
                }
            )+ };
        }
        take!(
            trace_id,
            parent_span_id,
            run_id,
            session_id,
            user_id,
            app_id,
            app_name,
            workflow_id,
            workflow_version,
            span_kind,
            node_type,
            name,
            status,
            raw_status,
            error_message,
            error_class,
            start_time,
            end_time,
            model_name,
            model_provider,
            input_tokens,
            output_tokens,
            total_tokens,
            cost,
            currency,
            tool_name,
            input,
            output,
            source,
            ingest_version,
        );
        if weaker {
            for (k, v) in later.attributes {
                self.attributes.entry(k).or_insert(v);
            }
            for (k, v) in later.tags {
                self.tags.entry(k).or_insert(v);
            }
        } else {
            self.attributes.extend(later.attributes);
            self.tags.extend(later.tags);
        }
    }

    /// How faithful this version's source is: 2 for a database Loupe reads
    /// directly ([`DATABASE_SOURCES`]), 1 for everything sent to Loupe
    /// (OTLP, Langfuse), which carries copies of the same facts.
    pub fn fidelity(&self) -> u8 {
        match self.source.as_deref() {
            Some(source) if DATABASE_SOURCES.contains(&source) => 2,
            _ => 1,
        }
    }

    /// Approximate heap size in bytes, for memtable accounting.
    pub fn approx_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let map = |m: &Tags| m.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>();
        256 + self.project.len()
            + self.span_id.len()
            + [
                &self.trace_id,
                &self.parent_span_id,
                &self.run_id,
                &self.session_id,
                &self.user_id,
                &self.app_id,
                &self.app_name,
                &self.workflow_id,
                &self.workflow_version,
                &self.node_type,
                &self.name,
                &self.raw_status,
                &self.error_message,
                &self.error_class,
                &self.model_name,
                &self.model_provider,
                &self.currency,
                &self.tool_name,
                &self.input,
                &self.output,
                &self.source,
            ]
            .iter()
            .map(|s| opt(s))
            .sum::<usize>()
            + map(&self.attributes)
            + map(&self.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_earlier_values_where_later_is_unset() {
        let mut first = Span::new("p", "s1");
        first.name = Some("tool".into());
        first.status = Some(Status::Running);
        first.start_time = Some(10);
        first.attributes.insert("a".into(), "1".into());
        let mut later = Span::new("p", "s1");
        later.status = Some(Status::Ok);
        later.end_time = Some(25);
        later.attributes.insert("b".into(), "2".into());
        first.merge_from(later);
        assert_eq!(first.name.as_deref(), Some("tool"));
        assert_eq!(first.status, Some(Status::Ok));
        assert_eq!(first.duration_ns(), Some(15));
        assert_eq!(first.attributes.len(), 2);
    }

    fn synced(status: Status) -> Span {
        let mut s = Span::new("p", "node-1");
        s.source = Some("dify_db".into());
        s.status = Some(status);
        s.input = Some("full input".into());
        s.start_time = Some(1_000_000_000);
        s.attributes.insert("dify.node_id".into(), "n1".into());
        s
    }

    fn provider_copy() -> Span {
        let mut s = Span::new("p", "node-1");
        s.source = Some("otlp".into());
        s.status = Some(Status::Ok);
        s.input = Some("full in[truncated]".into());
        s.start_time = Some(1_000_000_123);
        s.model_name = Some("gpt-4o".into());
        s.attributes.insert("dify.node_id".into(), "other".into());
        s.attributes.insert("otel.span_id".into(), "aa".into());
        s
    }

    #[test]
    fn a_providers_copy_only_completes_a_final_database_version() {
        let mut row = synced(Status::Error);
        row.merge_from(provider_copy());
        assert_eq!(row.input.as_deref(), Some("full input"));
        assert_eq!(row.start_time, Some(1_000_000_000));
        assert_eq!(row.status, Some(Status::Error));
        assert_eq!(row.source.as_deref(), Some("dify_db"));
        // What the database lacks is filled in.
        assert_eq!(row.model_name.as_deref(), Some("gpt-4o"));
        assert_eq!(row.attributes["dify.node_id"], "n1");
        assert_eq!(row.attributes["otel.span_id"], "aa");
    }

    #[test]
    fn a_running_database_version_is_completed_and_the_database_wins_later() {
        let mut row = synced(Status::Running);
        row.merge_from(provider_copy());
        assert_eq!(row.status, Some(Status::Ok));
        assert_eq!(row.input.as_deref(), Some("full in[truncated]"));
        // The provider's copy came first: the database's version wins.
        let mut row = provider_copy();
        row.merge_from(synced(Status::Ok));
        assert_eq!(row.input.as_deref(), Some("full input"));
        assert_eq!(row.source.as_deref(), Some("dify_db"));
        assert_eq!(row.model_name.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn open_enums_round_trip_their_stored_text() {
        for kind in SpanKind::ALL {
            assert_eq!(SpanKind::from_stored(kind.as_str()), Some(*kind));
        }
        for status in Status::ALL {
            assert_eq!(Status::from_stored(status.as_str()), Some(*status));
        }
        assert_eq!(SpanKind::from_stored("mystery"), None);
    }

    #[test]
    fn project_ids_must_be_path_safe() {
        assert!(ProjectId::new("shop-prod_1.eu").is_ok());
        for bad in ["", "a/b", "..", ".hidden", "a b"] {
            assert!(ProjectId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
