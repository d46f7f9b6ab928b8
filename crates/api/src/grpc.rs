//! OTLP/gRPC `TraceService` (default port 4317): the same decode → pipeline
//! path as OTLP/HTTP, with gzip accepted and the message size bounded.
//! Authenticated like HTTP ([`crate::auth`]) from the `authorization` /
//! `api_key` metadata; a bad key is `UNAUTHENTICATED`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::routes::otlp::partial_success;
use crate::{ApiError, AppState};

/// The gRPC trace service over the shared state.
pub struct Traces(AppState);

/// Builds the tonic service, bounded by `max_body_bytes`.
pub fn trace_service(state: AppState) -> TraceServiceServer<Traces> {
    let limit = state.config.max_body_bytes;
    TraceServiceServer::new(Traces(state))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let meta = request.metadata();
        let text = |name: &str| meta.get(name).and_then(|v| v.to_str().ok());
        let project = self
            .0
            .auth
            .resolve(
                text("authorization"),
                text("api_key").or_else(|| text("api-key")),
                text("x-loupe-project"),
            )
            .map_err(|e| Status::from(ApiError::from(e)))?;
        // tonic has decoded the body by now; normalising and appending are
        // still worth gating.
        let _slot = self
            .0
            .ingest_gate
            .admit()
            .await
            .map_err(|r| Status::from(ApiError::from(r)))?;
        let normalised =
            loupe_ingest::otlp::normalise_request(project.as_str(), request.into_inner());
        self.0
            .pipeline
            .write(normalised.spans)
            .await
            .map_err(|e| Status::from(ApiError::from(e)))?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: partial_success(&normalised.rejected),
        }))
    }
}
