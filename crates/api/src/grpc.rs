//! OTLP/gRPC `TraceService` (default port 4317): the same decode → pipeline
//! path as OTLP/HTTP, with gzip accepted and the message size bounded.
//!
//! The service is written out here rather than generated, for two things
//! the generated server cannot do (issue 14):
//!
//! - **Authenticate before decoding.** The key (`authorization` /
//!   `api_key` metadata, as HTTP: [`crate::auth`]) is checked and an ingest
//!   slot taken from the request headers, before the message body is read;
//!   an unauthenticated 16 MB message used to be decoded (and could OOM the
//!   process) before it was refused. A bad key is `UNAUTHENTICATED`.
//! - **Count before materialising.** The codec checks the message against
//!   the `[ingest]` caps with `loupe_ingest::otlp::decode_protobuf` before
//!   prost builds it, and a message that does not decode or is over a cap
//!   is `INVALID_ARGUMENT` naming the problem (prost's codec said
//!   `INTERNAL`).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use loupe_ingest::otlp::{ExportTraceServiceRequest, decode_protobuf, normalise_with, now_ns};
use loupe_model::ProjectId;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::body::Body;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::routes::otlp::partial_success;
use crate::{ApiError, AppState};

/// The one method served.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The OTLP trace service over the shared state (add it to a tonic
/// `Server` with `add_service`).
#[derive(Clone)]
pub struct TraceService {
    state: AppState,
}

/// Builds the gRPC trace service; a message is bounded by `max_body_bytes`
/// (as sent and after gzip: tonic stops inflating at it) and by the
/// `[ingest]` caps.
pub fn trace_service(state: AppState) -> TraceService {
    TraceService { state }
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tower::Service<http::Request<B>> for TraceService
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            if req.uri().path() != EXPORT_PATH {
                return Ok(
                    Status::unimplemented(format!("unknown method {}", req.uri().path()))
                        .into_http(),
                );
            }
            // Headers only: the body has not been read.
            let project = match authenticate(&state, req.headers()) {
                Ok(project) => project,
                Err(status) => return Ok(status.into_http()),
            };
            let slot = match state.ingest_gate.admit().await {
                Ok(slot) => slot,
                Err(r) => return Ok(Status::from(ApiError::from(r)).into_http()),
            };
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let codec = OtlpCodec {
                limits: Arc::new(state.config.ingest.clone()),
            };
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(state.config.max_body_bytes), None);
            let response = grpc.unary(Export { state, project }, req).await;
            drop(slot);
            Ok(response)
        })
    }
}

/// The request's project from its metadata, or the status refusing it.
fn authenticate(state: &AppState, headers: &http::HeaderMap) -> Result<ProjectId, Status> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let principal = state
        .auth
        .resolve(
            text("authorization"),
            text("api_key").or_else(|| text("api-key")),
            text("x-loupe-project"),
        )
        .map_err(|e| Status::from(ApiError::from(e)))?;
    principal
        .require(Some(crate::auth::Scope::Ingest), "OTLP/gRPC export")
        .map_err(|e| Status::from(ApiError::from(e)))?;
    Ok(principal.project)
}

/// One authenticated export.
struct Export {
    state: AppState,
    project: ProjectId,
}

impl UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<ExportTraceServiceRequest>) -> Self::Future {
        let state = self.state.clone();
        let project = self.project.clone();
        Box::pin(async move {
            let limits = state.config.ingest.clone();
            let request = request.into_inner();
            let normalised = tokio::task::spawn_blocking(move || {
                normalise_with(project.as_str(), request.into(), &limits, Some(now_ns()))
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "grpc normalise task failed");
                Status::internal("internal error; see the Loupe server log")
            })?;
            state
                .pipeline
                .write(normalised.spans)
                .await
                .map_err(|e| Status::from(ApiError::from(e)))?;
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success: partial_success(&normalised.rejected),
            }))
        })
    }
}

/// Protobuf in and out; the decoder counts before it builds.
struct OtlpCodec {
    limits: Arc<loupe_ingest::IngestLimits>,
}

impl Codec for OtlpCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = ExportTraceServiceRequest;
    type Encoder = ResponseEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RequestDecoder {
        RequestDecoder {
            limits: self.limits.clone(),
        }
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the reply: {e}")))
    }
}

struct RequestDecoder {
    limits: Arc<loupe_ingest::IngestLimits>,
}

impl Decoder for RequestDecoder {
    type Item = ExportTraceServiceRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        use bytes::Buf as _;
        let bytes = src.copy_to_bytes(src.remaining());
        decode_protobuf(&bytes, &self.limits)
            .map(Some)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}
