//! The state every in-process API test builds: a real store in a temp
//! dir, one key of project `p`, and the ingest gate given.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use loupe_api::auth::{Auth, AuthConfig, AuthMode, KeyRecord, Scope, hash_secret};
use loupe_api::{ApiConfig, AppState, admission::IngestGate};
use loupe_backend::SpanReader;
use loupe_normalise::tags::TagRules;
use loupe_pipeline::Pipeline;
use loupe_store::{Store, StoreConfig};

/// The secret key of project `p` (public key `pk-lf-test`, no scope: admin).
pub const SECRET: &str = "sk-lf-test";
/// A key of project `p` of scope `read`: it may not send spans.
pub const READ_SECRET: &str = "sk-lf-read";

/// A store in `dir` and the state of a server over it.
pub fn state(dir: &std::path::Path, ingest_gate: IngestGate) -> (AppState, Store) {
    let store = Store::open(
        StoreConfig {
            data_dir: dir.to_owned(),
            ..StoreConfig::default()
        },
        loupe_rollup::RollupConfig::default(),
    )
    .expect("open store");
    let reader: Arc<dyn SpanReader> = Arc::new(store.clone());
    let auth = Auth::new(AuthConfig {
        mode: AuthMode::Required,
        keys: vec![
            KeyRecord {
                project: "p".into(),
                public_key: "pk-lf-test".into(),
                secret_key_hash: hash_secret(SECRET),
                scope: None,
                created_at: None,
            },
            KeyRecord {
                project: "p".into(),
                public_key: "pk-lf-read".into(),
                secret_key_hash: hash_secret(READ_SECRET),
                scope: Some(Scope::Read),
                created_at: None,
            },
        ],
        keys_file: None,
        metrics_public: false,
        allowed_hosts: Vec::new(),
    })
    .expect("auth");
    let state = AppState {
        pipeline: Pipeline::new(Arc::new(store.clone()), TagRules::default())
            .with_logs(Arc::new(store.clone())),
        reader,
        logs: Some(Arc::new(store.clone())),
        config: Arc::new(ApiConfig::default()),
        ready: Arc::new(AtomicBool::new(true)),
        auth: Arc::new(auth),
        metrics: None,
        alerts: None,
        ingest_gate,
        read_gate: IngestGate::unlimited(),
        dify_ids: Arc::default(),
        relay: None,
        info: None,
        cleanup: None,
    };
    (state, store)
}
