//! OTLP log exports (`ExportLogsServiceRequest`, protobuf or OTLP/JSON,
//! gzip) → [`LogRecord`]s: the HTTP `/v1/logs` body and the gRPC
//! `LogsService` message.
//!
//! The body is counted against the `[ingest]` caps on the wire before any
//! record is built (the traces' counting walk, `otlp/scan.rs`, with the log
//! record's fields), so a small body cannot demand gigabytes. Each record
//! maps alone: time (else observed time, else now), severity number (0–24)
//! and text, body (a string as is, other values as JSON text), attributes
//! and the resource's (flattened to text), `service.name` from the
//! resource, trace and span ids as lowercase hex; run links also from the
//! attributes (`trace_id`, `workflow_run_id`, … as in [`super::fields`]).
//! A record over the per-record caps is rejected alone.

use loupe_model::LogRecord;
use loupe_normalise::otel::AttrValue;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord as OtlpRecord;
use prost::Message as _;

use crate::IngestLimits;
use crate::otlp::scan::{Signal, json_of, protobuf_of};
use crate::otlp::{DecodeError, Encoding, gunzip, json_error};

/// The records of one export, and why the others were rejected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedLogs {
    /// Records that mapped, in request order.
    pub records: Vec<LogRecord>,
    /// One message per rejected record, naming it.
    pub rejected: Vec<String>,
}

/// Decodes and maps an export body (see the module doc).
///
/// # Errors
/// [`DecodeError`] for a body that is not gzip / protobuf / OTLP JSON, is
/// over `max_decompressed` bytes, or over an `[ingest]` cap.
pub fn decode(
    body: &[u8],
    encoding: Encoding,
    gzip: bool,
    max_decompressed: usize,
    limits: &IngestLimits,
    project: &str,
    now: i64,
) -> Result<DecodedLogs, DecodeError> {
    let inflated;
    let bytes = if gzip {
        inflated = gunzip(body, max_decompressed)?;
        inflated.as_slice()
    } else if body.len() > max_decompressed {
        return Err(DecodeError::TooLarge {
            limit: max_decompressed,
        });
    } else {
        body
    };
    let request = match encoding {
        Encoding::Protobuf => decode_protobuf(bytes, limits)?,
        Encoding::Json => {
            json_of(bytes, limits, Signal::Logs)?;
            serde_json::from_slice(bytes).map_err(json_error)?
        }
    };
    Ok(map(request, limits, project, now))
}

/// Decodes one protobuf message after counting it (the gRPC codec's path).
///
/// # Errors
/// As [`decode`].
pub fn decode_protobuf(
    bytes: &[u8],
    limits: &IngestLimits,
) -> Result<ExportLogsServiceRequest, DecodeError> {
    protobuf_of(bytes, limits, Signal::Logs)?;
    Ok(ExportLogsServiceRequest::decode(bytes)?)
}

/// Maps a decoded export into records.
pub fn map(
    request: ExportLogsServiceRequest,
    limits: &IngestLimits,
    project: &str,
    now: i64,
) -> DecodedLogs {
    let mut out = DecodedLogs::default();
    let log_limits = limits.logs();
    for (ri, rl) in request.resource_logs.into_iter().enumerate() {
        let resource = rl
            .resource
            .map(|r| crate::otlp::convert::attributes(r.attributes))
            .unwrap_or_default();
        let resource = texts(resource);
        let service = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone());
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            let scope = sl.scope.map(|s| s.name).filter(|n| !n.is_empty());
            for (li, lr) in sl.log_records.into_iter().enumerate() {
                let at = format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]");
                match record(lr, project, now, &log_limits).and_then(|r| {
                    match limits.time_problem(r.time, now) {
                        Some(why) => Err(format!("timeUnixNano {why}")),
                        None => Ok(r),
                    }
                }) {
                    Ok(mut r) => {
                        r.service = r.service.or_else(|| service.clone());
                        r.resource = resource.iter().cloned().collect();
                        if let Some(scope) = &scope {
                            r.attributes.insert("otel.scope.name".into(), scope.clone());
                        }
                        out.records.push(r);
                    }
                    Err(why) => out.rejected.push(format!("{at}: {why}")),
                }
            }
        }
    }
    out
}

fn texts(attrs: Vec<(String, AttrValue)>) -> Vec<(String, String)> {
    attrs
        .into_iter()
        .filter(|(_, v)| *v != AttrValue::Empty)
        .map(|(k, v)| (k, v.to_text()))
        .collect()
}

fn hex_id(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| {
        bytes
            .iter()
            .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
                s.push_str(&format!("{b:02x}"));
                s
            })
    })
}

fn record(
    lr: OtlpRecord,
    project: &str,
    now: i64,
    limits: &super::LogLimits,
) -> Result<LogRecord, String> {
    if lr.attributes.len() > limits.max_fields {
        return Err(format!(
            "{} attributes, over ingest.max_log_fields = {}",
            lr.attributes.len(),
            limits.max_fields
        ));
    }
    let stamp = |ns: u64| i64::try_from(ns).ok().filter(|t| *t > 0);
    let time = stamp(lr.time_unix_nano)
        .or_else(|| stamp(lr.observed_time_unix_nano))
        .unwrap_or(now);
    let severity = u8::try_from(lr.severity_number)
        .ok()
        .filter(|n| *n <= 24)
        .ok_or_else(|| format!("severityNumber {} is not 0..24", lr.severity_number))?;
    let body = match lr.body.map(crate::otlp::convert::value) {
        None | Some(AttrValue::Empty) => String::new(),
        Some(v) => v.to_text(),
    };
    if body.len() > limits.max_record_bytes {
        return Err(format!(
            "a body of {} bytes, over ingest.max_log_record_bytes = {}",
            body.len(),
            limits.max_record_bytes
        ));
    }
    let mut r = LogRecord::new(project, time, body);
    r.observed_time = now;
    r.severity_number = severity;
    r.severity_text = Some(lr.severity_text).filter(|t| !t.is_empty());
    if r.severity_number == 0
        && let Some(level) = r
            .severity_text
            .as_deref()
            .and_then(loupe_model::Severity::from_text)
    {
        r.severity_number = level.number();
    }
    r.trace_id = hex_id(&lr.trace_id);
    r.span_id = hex_id(&lr.span_id);
    r.stream = Some("otlp".into());
    r.attributes = texts(crate::otlp::convert::attributes(lr.attributes))
        .into_iter()
        .collect();
    let from_attrs = |keys: &[&str]| keys.iter().find_map(|k| r.attributes.get(*k).cloned());
    r.trace_id = r
        .trace_id
        .clone()
        .or_else(|| from_attrs(&["trace_id", "TRACE_ID"]));
    r.run_id = from_attrs(&["workflow_run_id", "dify.workflow_run_id", "run_id"]);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_514_400_000_000_000;

    #[test]
    fn otlp_json_records_map_with_ids_severity_and_resource() {
        let body = serde_json::json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "dify-api"}}]},
            "scopeLogs": [{"scope": {"name": "app.workflow"}, "logRecords": [
                {"timeUnixNano": "1795514400000000000", "severityNumber": 17, "severityText": "ERROR",
                 "body": {"stringValue": "tool failed"},
                 "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                 "attributes": [{"key": "workflow_run_id", "value": {"stringValue": "run-1"}}]},
                {"severityNumber": 99, "body": {"stringValue": "bad"}}
            ]}]
        }]});
        let bytes = serde_json::to_vec(&body).expect("json");
        let d = decode(
            &bytes,
            Encoding::Json,
            false,
            1 << 20,
            &IngestLimits::default(),
            "p",
            NOW,
        )
        .expect("decodes");
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.rejected.len(), 1);
        assert!(d.rejected[0].contains("logRecords[1]"), "{:?}", d.rejected);
        let r = &d.records[0];
        assert_eq!(r.time, 1_795_514_400_000_000_000);
        assert_eq!(r.severity_number, 17);
        assert_eq!(r.body, "tool failed");
        assert_eq!(r.service.as_deref(), Some("dify-api"));
        assert_eq!(
            r.trace_id.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(r.span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(r.run_id.as_deref(), Some("run-1"));
        assert_eq!(r.attributes["otel.scope.name"], "app.workflow");
    }

    #[test]
    fn a_protobuf_export_over_the_record_cap_is_refused_before_decoding() {
        use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![OtlpRecord::default(); 11],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let limits = IngestLimits {
            max_log_records_per_request: 10,
            ..IngestLimits::default()
        };
        let bytes = request.encode_to_vec();
        let err = decode(
            &bytes,
            Encoding::Protobuf,
            false,
            1 << 20,
            &limits,
            "p",
            NOW,
        )
        .expect_err("over the cap");
        assert!(
            err.to_string().contains("max_log_records_per_request"),
            "{err}"
        );
        let ok = decode(
            &bytes,
            Encoding::Protobuf,
            false,
            1 << 20,
            &IngestLimits::default(),
            "p",
            NOW,
        )
        .expect("under the default cap");
        assert_eq!(ok.records.len(), 11);
        assert_eq!(ok.records[0].time, NOW, "no time: the receive time");
    }
}
