//! Request body → [`ExportTraceServiceRequest`]: gzip with a size bound,
//! then protobuf or OTLP/JSON.

use std::io::Read as _;

use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::{DecodeError, Encoding};

/// Decodes an `ExportTraceServiceRequest` body.
///
/// `gzip` says the body is gzip-compressed (`Content-Encoding: gzip`).
/// `max_decompressed` bounds the bytes handed to the decoder: the gzip output
/// (a zip-bomb guard: inflation stops one byte past the limit), or the body
/// itself when it is not compressed. Errors name the problem; invalid UTF-8
/// in protobuf strings is a [`DecodeError::Protobuf`]. Never panics.
pub fn decode_request(
    body: &[u8],
    encoding: Encoding,
    gzip: bool,
    max_decompressed: usize,
) -> Result<ExportTraceServiceRequest, DecodeError> {
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
    match encoding {
        Encoding::Protobuf => Ok(ExportTraceServiceRequest::decode(bytes)?),
        Encoding::Json => serde_json::from_slice(bytes).map_err(json_error),
    }
}

fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    MultiGzDecoder::new(body)
        .take(bound)
        .read_to_end(&mut out)
        .map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(out)
}

fn json_error(err: serde_json::Error) -> DecodeError {
    let (line, column) = (err.line(), err.column());
    let full = err.to_string();
    let position = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&position).unwrap_or(&full).to_owned();
    DecodeError::Json {
        line,
        column,
        message,
    }
}
