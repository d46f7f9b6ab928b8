//! Elasticsearch's `_bulk` body (NDJSON) → per-item results, as
//! Elasticsearch reports them.
//!
//! A body is pairs of lines: an action (`{"index": {"_index": "logs"}}`,
//! `create` the same) and the document. Blank lines are skipped (shippers
//! end bodies with one). Each item ends as a [`LogRecord`] or an
//! [`ItemFailure`] carrying the status and error type Elasticsearch would
//! give (`mapper_parsing_exception` for a document that is not a JSON
//! object, `illegal_argument_exception` for an action Loupe does not take:
//! logs are immutable, so `update` and `delete` are refused per item).
//! A malformed action line is refused alone too, and the line after it is
//! taken as its document, so one bad pair costs only itself. Only a body
//! with more items than `ingest.max_log_records_per_request` is refused
//! whole.

use loupe_model::LogRecord;
use serde_json::{Map, Value};

use super::{LogLimits, from_document};
use crate::IngestLimits;

/// Why one item was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFailure {
    /// HTTP status of the item (400, 413).
    pub status: u16,
    /// Elasticsearch's error type (`mapper_parsing_exception`).
    pub kind: &'static str,
    /// What is wrong, naming the line and field.
    pub reason: String,
}

/// One item of a bulk request, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkItem {
    /// The action as written (`index`, `create`, …; `index` when the line
    /// could not be read), the key of its entry in the reply.
    pub action: String,
    /// The target index (the stream), or `""` when none was given.
    pub index: String,
    /// The `_id` the action gave, if any.
    pub id: Option<String>,
    /// The record to store, or why not.
    pub outcome: Result<LogRecord, ItemFailure>,
}

/// A body refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    /// More items than the request limit (HTTP 413).
    #[error(
        "the bulk request holds more than {limit} items (ingest.max_log_records_per_request); send smaller batches"
    )]
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// No item at all (Elasticsearch: 400 `action_request_validation_exception`).
    #[error("the bulk request holds no action; send NDJSON action and document lines")]
    Empty,
}

fn failure(status: u16, kind: &'static str, reason: String) -> ItemFailure {
    ItemFailure {
        status,
        kind,
        reason,
    }
}

/// Parses a bulk body. `default_index` is the `{index}` of
/// `/{index}/_bulk`; `now` (ns) stamps records without a time. A record
/// whose time is outside `[ingest]`'s window around `now` is refused alone
/// (a timezone bug should be seen, not stored in a far-off day).
///
/// # Errors
/// [`BulkError`] only for the body as a whole; every item's own problem is
/// in its [`BulkItem::outcome`].
pub fn parse(
    body: &[u8],
    default_index: Option<&str>,
    project: &str,
    now: i64,
    ingest: &IngestLimits,
) -> Result<Vec<BulkItem>, BulkError> {
    let limits = &ingest.logs();
    let mut lines = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    let mut items = Vec::new();
    while let Some((line_no, line)) = lines.next() {
        if items.len() >= limits.max_records {
            return Err(BulkError::TooManyItems {
                limit: limits.max_records,
            });
        }
        let action = match read_action(line, line_no, default_index) {
            Ok(a) => a,
            Err(f) => {
                // Its document (if any) goes with it.
                lines.next();
                items.push(BulkItem {
                    action: "index".into(),
                    index: default_index.unwrap_or_default().to_owned(),
                    id: None,
                    outcome: Err(f),
                });
                continue;
            }
        };
        let source = match action.kind.as_str() {
            "delete" => None,
            _ => lines.next(),
        };
        let outcome = match (action.kind.as_str(), source) {
            ("index" | "create", Some((doc_line, doc))) => action.problem.clone().map_or_else(
                || document(doc, doc_line, &action.index, project, now, ingest),
                Err,
            ),
            ("index" | "create", None) => Err(failure(
                400,
                "action_request_validation_exception",
                format!("line {line_no}: the action has no document line after it"),
            )),
            (other, _) => Err(failure(
                400,
                "illegal_argument_exception",
                format!(
                    "line {line_no}: `{other}` is not supported: log records are immutable; use `index` or `create`"
                ),
            )),
        };
        items.push(BulkItem {
            action: action.kind,
            index: action.index,
            id: action.id,
            outcome,
        });
    }
    if items.is_empty() {
        return Err(BulkError::Empty);
    }
    Ok(items)
}

struct Action {
    kind: String,
    index: String,
    id: Option<String>,
    /// A problem of the action's metadata, reported on its item.
    problem: Option<ItemFailure>,
}

fn read_action(
    line: &[u8],
    line_no: usize,
    default_index: Option<&str>,
) -> Result<Action, ItemFailure> {
    let malformed = |why: String| {
        failure(
            400,
            "illegal_argument_exception",
            format!("line {line_no}: malformed action/metadata line: {why}"),
        )
    };
    let map: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| malformed(e.to_string()))?;
    let mut entries = map.into_iter();
    let (Some((kind, meta)), None) = (entries.next(), entries.next()) else {
        return Err(malformed(
            "expected one action: index, create, update or delete".into(),
        ));
    };
    if !matches!(kind.as_str(), "index" | "create" | "update" | "delete") {
        return Err(malformed(format!(
            "unknown action `{kind}`: expected index, create, update or delete"
        )));
    }
    let Value::Object(meta) = meta else {
        return Err(malformed(format!(
            "the `{kind}` action's metadata is not an object"
        )));
    };
    let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
    let index = text("_index").or_else(|| default_index.map(str::to_owned));
    let id = text("_id");
    let (index, problem) = match index {
        None => (
            String::new(),
            Some(failure(
                400,
                "action_request_validation_exception",
                format!("line {line_no}: index is missing: name it in the action or the URL"),
            )),
        ),
        Some(i) => {
            let problem = index_problem(&i).map(|why| {
                failure(
                    400,
                    "invalid_index_name_exception",
                    format!("line {line_no}: invalid index name [{i}]: {why}"),
                )
            });
            (i, problem)
        }
    };
    Ok(Action {
        kind,
        index,
        id,
        problem,
    })
}

fn document(
    doc: &[u8],
    line_no: usize,
    index: &str,
    project: &str,
    now: i64,
    ingest: &IngestLimits,
) -> Result<LogRecord, ItemFailure> {
    let limits: &LogLimits = &ingest.logs();
    if doc.len() > limits.max_record_bytes {
        return Err(failure(
            413,
            "illegal_argument_exception",
            format!(
                "line {line_no}: the document is {} bytes, over ingest.max_log_record_bytes = {}",
                doc.len(),
                limits.max_record_bytes
            ),
        ));
    }
    let parse_error = |why: String| {
        failure(
            400,
            "mapper_parsing_exception",
            format!("line {line_no}: failed to parse the document: {why}"),
        )
    };
    let value: Value = serde_json::from_slice(doc).map_err(|e| parse_error(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(parse_error("it is not a JSON object".into()));
    };
    let record = from_document(project, map, Some(index), now, limits)
        .map_err(|e| parse_error(format!("field [{}]: {}", e.field, e.reason)))?;
    if let Some(why) = ingest.time_problem(record.time, now) {
        return Err(parse_error(format!("the record's time {why}")));
    }
    Ok(record)
}

/// Parses the body of `POST /{index}/_doc` (one JSON object).
///
/// # Errors
/// The item's failure, as in a bulk reply.
pub fn parse_doc(
    body: &[u8],
    index: &str,
    project: &str,
    now: i64,
    ingest: &IngestLimits,
) -> Result<LogRecord, ItemFailure> {
    if let Some(why) = index_problem(index) {
        return Err(failure(
            400,
            "invalid_index_name_exception",
            format!("invalid index name [{index}]: {why}"),
        ));
    }
    document(body, 1, index, project, now, ingest)
}

/// Why `name` is not an index name Elasticsearch accepts, if it is not.
pub fn index_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 255 {
        Some("longer than 255 bytes")
    } else if name.starts_with(['-', '_', '+']) {
        Some("must not start with '_', '-' or '+'")
    } else if name == "." || name == ".." {
        Some("must not be '.' or '..'")
    } else if name.chars().any(|c| c.is_uppercase()) {
        Some("must be lowercase")
    } else if name.chars().any(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
        ) || c.is_control()
    }) {
        Some(
            "must not contain \\, /, *, ?, \", <, >, |, space, ',', '#', ':' or control characters",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Action, index, and the stored body or the failure's status and type.
    type Summary<'a> = (&'a str, &'a str, Result<&'a str, (u16, &'a str)>);

    fn run(body: &str, default: Option<&str>) -> Vec<BulkItem> {
        let now = 1_795_514_400_000_000_000;
        parse(body.as_bytes(), default, "p", now, &IngestLimits::default()).expect("parses")
    }

    #[test]
    fn good_items_are_kept_beside_bad_ones_each_with_its_reason() {
        let body = concat!(
            "{\"index\":{\"_index\":\"dify-api\"}}\n",
            "{\"message\":\"one\",\"level\":\"info\"}\n",
            "\n",
            "{\"create\":{\"_index\":\"dify-api\",\"_id\":\"x1\"}}\r\n",
            "{\"message\": \"two\"\n",
            "{\"index\":{}}\n",
            "[1,2]\n",
            "{\"delete\":{\"_index\":\"dify-api\",\"_id\":\"x1\"}}\n",
            "not json at all\n",
            "{\"message\":\"skipped with its bad action\"}\n",
            "{\"index\":{\"_index\":\"Bad Index\"}}\n",
            "{\"message\":\"three\"}\n",
            "{\"index\":{\"_index\":\"worker\"}}\n",
            "{\"message\":\"four\",\"@timestamp\":\"2026-11-24T10:00:00Z\"}\n",
            "{\"index\":{\"_index\":\"worker\"}}\n",
            "{\"message\":\"from the future\",\"@timestamp\":\"2036-11-24T10:00:00Z\"}\n",
        );
        let items = run(body, Some("default-stream"));
        let summary: Vec<Summary<'_>> = items
            .iter()
            .map(|i| {
                (
                    i.action.as_str(),
                    i.index.as_str(),
                    i.outcome
                        .as_ref()
                        .map(|r| r.body.as_str())
                        .map_err(|f| (f.status, f.kind)),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("index", "dify-api", Ok("one")),
                ("create", "dify-api", Err((400, "mapper_parsing_exception"))),
                (
                    "index",
                    "default-stream",
                    Err((400, "mapper_parsing_exception"))
                ),
                (
                    "delete",
                    "dify-api",
                    Err((400, "illegal_argument_exception"))
                ),
                (
                    "index",
                    "default-stream",
                    Err((400, "illegal_argument_exception"))
                ),
                (
                    "index",
                    "Bad Index",
                    Err((400, "invalid_index_name_exception"))
                ),
                ("index", "worker", Ok("four")),
                ("index", "worker", Err((400, "mapper_parsing_exception"))),
            ]
        );
        assert_eq!(items[1].id.as_deref(), Some("x1"));
        let four = items[6].outcome.as_ref().expect("stored");
        assert_eq!(four.stream.as_deref(), Some("worker"));
        assert_eq!(four.time, 1_795_514_400_000_000_000);
        let reason = &items[1].outcome.as_ref().expect_err("bad").reason;
        assert!(reason.starts_with("line 5:"), "{reason}");
    }

    #[test]
    fn an_item_without_an_index_anywhere_is_refused_alone() {
        let items = run("{\"index\":{}}\n{\"message\":\"m\"}\n", None);
        let f = items[0].outcome.as_ref().expect_err("no index");
        assert_eq!(f.kind, "action_request_validation_exception");
    }

    #[test]
    fn oversized_requests_and_documents_are_bounded() {
        let limits = IngestLimits {
            max_log_records_per_request: 2,
            max_log_record_bytes: 20,
            ..IngestLimits::default()
        };
        let pair = "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"m\"}\n";
        let err = parse(pair.repeat(3).as_bytes(), None, "p", 0, &limits).expect_err("too many");
        assert_eq!(err, BulkError::TooManyItems { limit: 2 });
        let big = "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"a long message here\"}\n";
        let items = parse(big.as_bytes(), None, "p", 0, &limits).expect("parses");
        assert_eq!(items[0].outcome.as_ref().expect_err("big").status, 413);
        assert_eq!(parse(b"\n\n", None, "p", 0, &limits), Err(BulkError::Empty));
    }
}
