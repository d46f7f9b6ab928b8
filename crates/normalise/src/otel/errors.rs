//! Status and error fields.
//!
//! Status: Dify 1.19+'s `dify.span.status`, else Dify's own status text
//! (`node_status`, else `status`, in the `metadata` of Dify spans) wins
//! when Loupe knows it; otherwise the OTel
//! status code decides (`STATUS_CODE_OK` → ok, `STATUS_CODE_ERROR` → error,
//! `STATUS_CODE_UNSET` → unset, promoted to error by a Langfuse
//! `langfuse.observation.level` of `ERROR`). `raw_status` is the Dify text
//! when there is one, else the OTel code name (`STATUS_CODE_ERROR`), or
//! `ERROR` when the Langfuse level decided.
//!
//! Error fields are set only on error spans. Message: Dify's
//! `error.message`, else its `status_message`, else the OTel status message, else
//! `langfuse.observation.status_message`, else the last exception event's
//! `exception.message`. Class: that event's `exception.type` (except Dify's
//! meaningless `str`, the class of the string it records), else `error.type`,
//! else `http_<code>` from `http.response.status_code` / `http.status_code`.

use loupe_model::{Span, Status};

use super::attrs::{Bag, as_i64, find_text};
use super::dify::{Metadata, Role, map_status};
use super::dify_export::Export;
use super::{OtelEvent, OtelSpan, StatusCode, non_empty};

/// Sets status, raw status and error fields. Returns the index of the
/// exception event mapped into the error fields, if any.
pub(super) fn apply(
    span: &OtelSpan,
    role: Role,
    meta: Option<&Metadata>,
    export: &Export,
    bag: &mut Bag<'_>,
    out: &mut Span,
) -> Option<usize> {
    let meta = meta.filter(|_| role.is_dify());
    let otel = match span.status_code {
        StatusCode::Unset => Status::Unset,
        StatusCode::Ok => Status::Ok,
        StatusCode::Error => Status::Error,
    };
    if let Some(raw) = &export.status {
        out.status = Some(export.mapped_status().unwrap_or(otel));
        out.raw_status = Some(raw.clone());
    } else if let Some(raw) = meta.and_then(Metadata::raw_status) {
        out.status = Some(map_status(&raw).unwrap_or(otel));
        out.raw_status = Some(raw);
    } else if otel == Status::Unset
        && bag.peek_text("langfuse.observation.level").as_deref() == Some("ERROR")
    {
        out.status = Some(Status::Error);
        out.raw_status = Some("ERROR".to_owned());
    } else {
        out.status = Some(otel);
        out.raw_status = Some(span.status_code.as_str().to_owned());
    }
    if out.status != Some(Status::Error) {
        return None;
    }

    let event = span.events.iter().rposition(is_exception);
    let event_attr = |key: &str| event.and_then(|i| find_text(&span.events[i].attributes, key));
    out.error_message = export
        .error
        .clone()
        .or_else(|| meta.and_then(|m| m.text("status_message")))
        .or_else(|| non_empty(&span.status_message))
        .or_else(|| bag.take_text("langfuse.observation.status_message"))
        .or_else(|| event_attr("exception.message"));
    out.error_class = event_attr("exception.type")
        .filter(|class| !(role.is_dify() && class == "str"))
        .or_else(|| bag.take_text("error.type"))
        .or_else(|| http_class(bag));
    event
}

fn is_exception(event: &OtelEvent) -> bool {
    event.name == "exception"
        || event
            .attributes
            .iter()
            .any(|(k, _)| k == "exception.message" || k == "exception.type")
}

/// `http_<code>` for a 4xx/5xx HTTP status attribute.
fn http_class(bag: &Bag<'_>) -> Option<String> {
    ["http.response.status_code", "http.status_code"]
        .iter()
        .find_map(|key| bag.peek(key).and_then(as_i64))
        .filter(|code| (400..600).contains(code))
        .map(|code| format!("http_{code}"))
}
