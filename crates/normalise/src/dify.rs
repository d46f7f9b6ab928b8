//! Dify's vocabularies, shared by every source that carries Dify data
//! (the Phoenix/Arize OTLP provider, the Langfuse provider, the database).

use loupe_model::{SpanKind, Status};

/// Dify's node or run status → [`Status`]; `None` for values Loupe does not
/// know (future values), which then fall back to the source's own signal
/// (the OTel status code, the Langfuse level).
pub fn map_status(raw: &str) -> Option<Status> {
    Some(match raw {
        "succeeded" | "partial-succeeded" | "normal" => Status::Ok,
        "failed" | "exception" | "stopped" | "error" => Status::Error,
        "running" | "paused" | "pending" | "retry" | "scheduled" => Status::Running,
        _ => return None,
    })
}

/// Dify node type → [`SpanKind`]. Unknown types are `other` (the raw type is
/// kept in `node_type`).
pub fn kind_of_node(node_type: &str) -> SpanKind {
    match node_type {
        "llm" | "parameter-extractor" => SpanKind::Llm,
        "tool" => SpanKind::Tool,
        "knowledge-retrieval" => SpanKind::Retrieval,
        "agent" => SpanKind::Agent,
        "http-request" => SpanKind::Http,
        "code" => SpanKind::Code,
        "if-else"
        | "question-classifier"
        | "iteration"
        | "loop"
        | "iteration-start"
        | "loop-start"
        | "loop-end" => SpanKind::Branch,
        "start"
        | "end"
        | "answer"
        | "template-transform"
        | "variable-aggregator"
        | "variable-assigner"
        | "list-operator"
        | "document-extractor"
        | "assigner" => SpanKind::Chain,
        _ => SpanKind::Other,
    }
}

/// Container nodes (iteration, loop) whose tokens and price are the sum of
/// their children's: mapping them too would count the same usage twice.
pub fn is_container(node_type: &str) -> bool {
    matches!(node_type, "iteration" | "loop")
}
