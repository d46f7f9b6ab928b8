//! Offloaded node payloads (dify-internals §1.3) against a real PostgreSQL
//! 15 (`scripts/peers/postgres.sh`): with a storage directory the full
//! values replace the truncated columns; without one they are only marked.

mod common;

use std::path::Path;

use common::*;
use loupe_dify::Error;
use loupe_dify::sync::Syncer;
use loupe_model::Span;

const RUN: &str = "7d3e0f51-2b0c-4c55-8f6e-0a4b1b2c3d4e";
/// Its inputs, process data and outputs were offloaded; the files exist.
const RESTORED: &str = "0b8f6c1e-3f1a-4d8e-9c55-1a2b3c4d5e6f";
/// Its outputs were offloaded; the file is missing from storage.
const MISSING: &str = "1c9a7d2f-4a2b-4e9f-8d66-2b3c4d5e6f70";
/// Its outputs' storage key tries to leave the storage directory.
const TRAVERSAL: &str = "2dab8e30-5b3c-4fa0-9e77-3c4d5e6f7081";

const TRUNC_INPUTS: &str = r#"{"doc": "aaaa..."}"#;
const TRUNC_PROCESS: &str = r#"{"model_name": "gpt-4o", "prompts": "[truncated]"}"#;
const TRUNC_OUTPUTS: &str = r#"{"text": "bbbb..."}"#;
const FULL_INPUTS: &str = r#"{"doc": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
const FULL_PROCESS: &str = r#"{"model_name": "gpt-4o-full", "model_provider": "openai", "prompts": [{"role": "user", "text": "aaaa"}]}"#;
const FULL_OUTPUTS: &str = r#"{"text": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}"#;
/// Outside the storage directory; the traversal key points here.
const SECRET: &str = r#"{"secret": true}"#;

/// Inserts an `upload_files` row and its offload row; returns the file id.
async fn offload(env: &Env, node: &str, kind: &str, key: &str, size: usize) -> String {
    let file = uid();
    env.db
        .batch_execute(&format!(
            "INSERT INTO upload_files (id, tenant_id, storage_type, key, name, size, extension, mime_type,
               created_by_role, created_by, used)
               VALUES ('{file}', '{TENANT}', 'opendal', '{key}', 'node_execution_{node}_{kind}.json', {size},
               'json', 'application/json', 'account', '{TENANT}', false);
             INSERT INTO workflow_node_execution_offload (node_execution_id, tenant_id, app_id, type, file_id)
               VALUES ('{node}', '{TENANT}', '{APP}', '{kind}', '{file}');"
        ))
        .await
        .expect("offload rows");
    file
}

/// Writes `text` at `<storage>/<key>`.
fn put(storage: &Path, key: &str, text: &str) {
    let path = storage.join(key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write file");
}

struct Fixture {
    storage: std::path::PathBuf,
    /// File ids by (node, kind).
    files: Vec<(&'static str, &'static str, String)>,
}

impl Fixture {
    fn file(&self, node: &str, kind: &str) -> &str {
        self.files
            .iter()
            .find(|(n, k, _)| *n == node && *k == kind)
            .map(|(_, _, f)| f.as_str())
            .expect("file id")
    }
}

/// One run, three LLM nodes, four offloads; the storage directory holds
/// the restorable files and (outside it) the file the traversal key names.
async fn seed(env: &Env) -> Fixture {
    seed_app(&env.db).await;
    insert_run(&env.db, RUN, "succeeded", "'2026-11-24 10:00:00'").await;
    for (i, id) in [RESTORED, MISSING, TRAVERSAL].iter().enumerate() {
        let at = format!("'2026-11-24 10:00:0{}'", i + 1);
        insert_node(
            &env.db,
            RUN,
            id,
            i as i32 + 1,
            "llm",
            &format!("LLM {i}"),
            "succeeded",
            &at,
            None,
        )
        .await;
    }
    env.db
        .batch_execute(&format!(
            "UPDATE workflow_node_executions SET inputs = '{TRUNC_INPUTS}', process_data = '{TRUNC_PROCESS}',
               outputs = '{TRUNC_OUTPUTS}' WHERE id = '{RESTORED}'"
        ))
        .await
        .expect("truncated columns");
    let storage = env.dir.path().join("storage");
    std::fs::create_dir_all(&storage).expect("storage dir");
    let mut files = Vec::new();
    for (kind, text) in [
        ("inputs", FULL_INPUTS),
        ("process_data", FULL_PROCESS),
        ("outputs", FULL_OUTPUTS),
    ] {
        let key = format!("upload_files/{TENANT}/{}.json", uid());
        put(&storage, &key, text);
        files.push((
            RESTORED,
            kind,
            offload(env, RESTORED, kind, &key, text.len()).await,
        ));
    }
    let key = format!("upload_files/{TENANT}/{}.json", uid());
    files.push((
        MISSING,
        "outputs",
        offload(env, MISSING, "outputs", &key, 10).await,
    ));
    // A real file, one level above the storage directory.
    put(env.dir.path(), "outside/secret.json", SECRET);
    let key = "../outside/secret.json";
    files.push((
        TRAVERSAL,
        "outputs",
        offload(env, TRAVERSAL, "outputs", key, SECRET.len()).await,
    ));
    Fixture { storage, files }
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    s.attributes.get(key).map(String::as_str)
}

/// The attributes named `dify.truncated.*` / `dify.offload.*`, sorted.
fn marks(s: &Span) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s
        .attributes
        .iter()
        .filter(|(k, _)| k.starts_with("dify.truncated.") || k.starts_with("dify.offload."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn storage_dir_restores_full_values_and_keeps_truncated_ones_on_failure() {
    let env = Env::new().await;
    let fx = seed(&env).await;
    let mut config = env.config();
    config.storage_dir = Some(fx.storage.clone());
    let mut syncer = env.syncer(config).await;
    syncer
        .sync_once()
        .await
        .expect("sync never fails for a file");

    // Restored: every payload is the full file, parsed for model and usage.
    let s = env.span(RUN, RESTORED).await;
    assert_eq!(s.input.as_deref(), Some(FULL_INPUTS));
    assert_eq!(s.output.as_deref(), Some(FULL_OUTPUTS));
    assert_eq!(attr(&s, "dify.process_data"), Some(FULL_PROCESS));
    assert_eq!(s.model_name.as_deref(), Some("gpt-4o-full"));
    assert_eq!((s.input_tokens, s.output_tokens), (Some(7), Some(3)));
    assert_eq!(
        marks(&s),
        pairs(&[
            ("dify.offload.inputs.file_id", fx.file(RESTORED, "inputs")),
            ("dify.offload.inputs.restored", "true"),
            ("dify.offload.outputs.file_id", fx.file(RESTORED, "outputs")),
            ("dify.offload.outputs.restored", "true"),
            (
                "dify.offload.process_data.file_id",
                fx.file(RESTORED, "process_data")
            ),
            ("dify.offload.process_data.restored", "true"),
            ("dify.truncated.inputs", "false"),
            ("dify.truncated.outputs", "false"),
            ("dify.truncated.process_data", "false"),
        ])
    );

    // Missing file: truncated value kept, marked, with the reason.
    let s = env.span(RUN, MISSING).await;
    assert_eq!(s.output.as_deref(), Some(r#"{"out": 2}"#));
    assert_eq!(
        marks(&s),
        pairs(&[
            ("dify.offload.outputs.error", "file not found"),
            ("dify.offload.outputs.file_id", fx.file(MISSING, "outputs")),
            ("dify.truncated.outputs", "true"),
        ])
    );

    // Traversal: the file outside the storage directory is never read.
    let s = env.span(RUN, TRAVERSAL).await;
    assert_eq!(s.output.as_deref(), Some(r#"{"out": 3}"#));
    assert_eq!(
        marks(&s),
        pairs(&[
            (
                "dify.offload.outputs.error",
                "storage key contains '..'; rejected"
            ),
            (
                "dify.offload.outputs.file_id",
                fx.file(TRAVERSAL, "outputs")
            ),
            ("dify.truncated.outputs", "true"),
        ])
    );
}

#[tokio::test]
async fn without_storage_dir_offloads_are_only_marked() {
    let env = Env::new().await;
    let fx = seed(&env).await;
    let mut syncer = env.syncer(env.config()).await;
    syncer.sync_once().await.expect("sync");

    let s = env.span(RUN, RESTORED).await;
    assert_eq!(s.input.as_deref(), Some(TRUNC_INPUTS));
    assert_eq!(s.output.as_deref(), Some(TRUNC_OUTPUTS));
    assert_eq!(attr(&s, "dify.process_data"), Some(TRUNC_PROCESS));
    assert_eq!(s.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(
        marks(&s),
        pairs(&[
            ("dify.offload.inputs.file_id", fx.file(RESTORED, "inputs")),
            ("dify.offload.outputs.file_id", fx.file(RESTORED, "outputs")),
            (
                "dify.offload.process_data.file_id",
                fx.file(RESTORED, "process_data")
            ),
            ("dify.truncated.inputs", "true"),
            ("dify.truncated.outputs", "true"),
            ("dify.truncated.process_data", "true"),
        ])
    );
    for node in [MISSING, TRAVERSAL] {
        let s = env.span(RUN, node).await;
        assert_eq!(
            marks(&s),
            pairs(&[
                ("dify.offload.outputs.file_id", fx.file(node, "outputs")),
                ("dify.truncated.outputs", "true"),
            ])
        );
    }
}

#[tokio::test]
async fn upload_files_is_required_only_with_a_storage_dir() {
    let env = Env::new().await;
    env.db
        .batch_execute("DROP TABLE upload_files")
        .await
        .expect("drop upload_files");
    let storage = env.dir.path().join("storage");
    std::fs::create_dir_all(&storage).expect("storage dir");
    let pipeline = env.pipeline();

    Syncer::connect(env.config(), pipeline.clone())
        .await
        .expect("without storage_dir upload_files is not read");

    let mut config = env.config();
    config.storage_dir = Some(storage);
    match Syncer::connect(config, pipeline.clone()).await {
        Err(Error::MissingTables { missing, .. }) => assert_eq!(missing, ["upload_files"]),
        Err(e) => panic!("expected MissingTables, got {e}"),
        Ok(_) => panic!("expected MissingTables, got a syncer"),
    }

    let mut config = env.config();
    config.storage_dir = Some(env.dir.path().join("no-such-dir"));
    match Syncer::connect(config, pipeline).await {
        Err(Error::Invalid(msg)) => assert!(msg.contains("no-such-dir"), "{msg}"),
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(_) => panic!("expected Invalid, got a syncer"),
    }
}
