//! `[[dify.projects]]` against a real PostgreSQL 15: a Dify with two
//! workspaces lands in two Loupe projects, and the cleanup verifies each
//! run in the project the sync wrote it to.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use loupe_backend::SpanReader;
use loupe_dify::projects::ProjectRule;
use loupe_dify::relief::{Cleaner, CleanupConfig};
use loupe_model::ProjectId;

const TENANT_B: &str = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";
const APP_B: &str = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
const OLD: &str = "((now() AT TIME ZONE 'UTC') - interval '40 days')";

/// A run (and one node) of app B in workspace B, 40 days old.
async fn run_of_workspace_b(env: &Env) -> String {
    let run = uid();
    env.db
        .batch_execute(&format!(
            "INSERT INTO apps (id, tenant_id, name, mode) VALUES ('{APP_B}', '{TENANT_B}', 'Team B app', 'workflow')
               ON CONFLICT DO NOTHING;
             INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
               graph, inputs, status, outputs, error, elapsed_time, total_tokens, total_steps,
               created_by_role, created_by, created_at, finished_at, exceptions_count)
             VALUES ('{run}', '{TENANT_B}', '{APP_B}', '{WORKFLOW}', 'workflow', 'app-run', 'v1',
               '{{}}', '{{}}', 'succeeded', '{{}}', NULL, 0.1, 0, 1,
               'account', '{END_USER}', {OLD}, {OLD} + interval '100 milliseconds', 0);
             INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
               workflow_run_id, index, predecessor_node_id, node_execution_id, node_id, node_type, title,
               inputs, process_data, outputs, status, error, elapsed_time, execution_metadata,
               created_at, created_by_role, created_by, finished_at)
             VALUES (gen_random_uuid(), '{TENANT_B}', '{APP_B}', '{WORKFLOW}', 'workflow-run', '{run}', 1,
               NULL, NULL, 'start', 'start', 'Start', '{{}}', NULL, '{{}}', 'succeeded', NULL, 0.001,
               NULL, {OLD}, 'account', '{END_USER}', {OLD} + interval '1 millisecond')"
        ))
        .await
        .expect("workspace b run");
    run
}

fn rules() -> Vec<ProjectRule> {
    vec![ProjectRule {
        tenant: Some(TENANT_B.into()),
        app: None,
        project: "team-b".into(),
    }]
}

async fn spans_in(env: &Env, project: &str, run: &str) -> usize {
    env.store
        .trace(&ProjectId::new(project).expect("project"), run)
        .await
        .expect("read")
        .len()
}

fn cleanup_config(env: &Env, projects: Vec<ProjectRule>) -> CleanupConfig {
    let mut c = CleanupConfig::new(
        env.dsn.clone(),
        env.data_dir(),
        Duration::from_secs(30 * 86_400),
    );
    c.projects = projects;
    c.lock_timeout = Duration::from_millis(500);
    c
}

#[tokio::test]
async fn two_workspaces_land_in_two_projects_and_cleanup_verifies_each_in_its_own() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let run_a = uid();
    insert_run(&env.db, &run_a, "succeeded", OLD).await;
    let run_b = run_of_workspace_b(&env).await;

    let mut config = env.config();
    config.projects = rules();
    env.syncer(config).await.sync_once().await.expect("sync");

    assert_eq!(spans_in(&env, "default", &run_a).await, 1);
    assert_eq!(spans_in(&env, "team-b", &run_a).await, 0);
    assert_eq!(
        spans_in(&env, "team-b", &run_b).await,
        2,
        "the run and its node"
    );
    assert_eq!(
        spans_in(&env, "default", &run_b).await,
        0,
        "never in the default project"
    );
    let b = env
        .store
        .trace(&ProjectId::new("team-b").expect("project"), &run_b)
        .await
        .expect("read");
    assert!(
        b.iter()
            .all(|s| s.attributes.get("dify.tenant_id").map(String::as_str) == Some(TENANT_B))
    );

    // A cleanup that ignores the mapping looks for run B in `default`,
    // does not find it, and keeps it in Dify.
    let store: Arc<dyn SpanReader> = Arc::new(env.store.clone());
    let report = Cleaner::connect(cleanup_config(&env, Vec::new()), store.clone())
        .await
        .expect("cleaner")
        .run()
        .await
        .expect("cleanup");
    assert_eq!(report.verified, 1, "{report:?}");
    assert_eq!(report.skipped_unverified, 1, "{report:?}");
    assert_eq!(env.count("workflow_runs").await, 1);

    // With the mapping the sync used, run B is verified in `team-b`.
    let report = Cleaner::connect(cleanup_config(&env, rules()), store)
        .await
        .expect("cleaner")
        .run()
        .await
        .expect("cleanup");
    assert_eq!(report.verified, 1, "{report:?}");
    assert_eq!(report.skipped_unverified, 0, "{report:?}");
    assert_eq!(env.count("workflow_runs").await, 0);
}

#[tokio::test]
async fn a_bad_rule_stops_the_sync_before_it_reads() {
    let env = Env::new().await;
    let mut config = env.config();
    config.projects = vec![ProjectRule {
        tenant: Some(TENANT_B.into()),
        app: Some(APP_B.into()),
        project: "x".into(),
    }];
    let pipeline = env.pipeline();
    let err = loupe_dify::sync::Syncer::connect(config, pipeline)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("exactly one of `tenant` or `app`"), "{err}");
}
