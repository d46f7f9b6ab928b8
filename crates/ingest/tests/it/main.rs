//! Integration tests of `loupe-ingest`: recorded OTLP traffic replayed
//! through decoding and normalisation, its OTLP/JSON and gzip variants, and
//! malformed bodies.

mod bad_input;
mod client_sdk;
mod dify_1_20;
mod dify_arize;
mod dify_phoenix;
mod encodings;
mod limits;
mod support;
