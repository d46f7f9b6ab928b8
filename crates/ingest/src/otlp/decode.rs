//! Request body → [`Decoded`]: gzip with a size bound, the element caps
//! counted on the bytes ([`super::scan`]), then protobuf or OTLP/JSON.

use std::io::Read as _;

use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::{DecodeError, Decoded, Encoding, scan};
use crate::IngestLimits;

/// Decodes an `ExportTraceServiceRequest` body.
///
/// `gzip` says the body is gzip-compressed (`Content-Encoding: gzip`).
/// `max_decompressed` bounds the bytes handed to the decoder: the gzip output
/// (a zip-bomb guard: inflation stops one byte past the limit), or the body
/// itself when it is not compressed. `limits` bounds the elements before
/// any is built ([`DecodeError::OverLimit`]). Errors name the problem;
/// invalid UTF-8 in protobuf strings is a [`DecodeError::Protobuf`]. An
/// OTLP/JSON span that does not decode is rejected alone (in
/// [`Decoded::rejected`]); a protobuf body decodes whole or not at all.
/// Never panics.
pub fn decode_request(
    body: &[u8],
    encoding: Encoding,
    gzip: bool,
    max_decompressed: usize,
    limits: &IngestLimits,
) -> Result<Decoded, DecodeError> {
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
        Encoding::Protobuf => decode_protobuf(bytes, limits).map(Decoded::from),
        Encoding::Json => {
            scan::json(bytes, limits)?;
            super::json::decode(bytes, limits)
        }
    }
}

/// Decodes one protobuf message after checking it against `limits` (the
/// gRPC codec's path too).
pub fn decode_protobuf(
    bytes: &[u8],
    limits: &IngestLimits,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    scan::protobuf(bytes, limits)?;
    Ok(ExportTraceServiceRequest::decode(bytes)?)
}

pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
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

pub(crate) fn json_error(err: serde_json::Error) -> DecodeError {
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
