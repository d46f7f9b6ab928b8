//! Cleanup against a real PostgreSQL 15 (`scripts/peers/postgres.sh`): one
//! database per test, synced into a store, then cleaned.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use loupe_backend::SpanReader;
use loupe_dify::Error;
use loupe_dify::relief::{Cleaner, CleanupConfig, CleanupProgress, CleanupReport, Scope};
use loupe_model::{ProjectId, Span};

/// A SQL timestamp `days` days and `minutes` minutes ago (naive UTC).
fn ago(days: u32, minutes: u32) -> String {
    format!("((now() AT TIME ZONE 'UTC') - interval '{days} days' - interval '{minutes} minutes')")
}

/// A finished run with `nodes` node executions, `days` old.
async fn run_with_nodes(env: &Env, days: u32, minute: u32, nodes: usize) -> (String, Vec<String>) {
    let run = uid();
    insert_run(&env.db, &run, "succeeded", &ago(days, minute)).await;
    let mut ids = Vec::new();
    for i in 0..nodes {
        let id = uid();
        let at = format!("({} + interval '{i} milliseconds')", ago(days, minute));
        insert_node(
            &env.db,
            &run,
            &id,
            i as i32 + 1,
            "code",
            &format!("n{i}"),
            "succeeded",
            &at,
            None,
        )
        .await;
        ids.push(id);
    }
    (run, ids)
}

async fn app_log(env: &Env, run: &str) {
    env.db
        .batch_execute(&format!(
            "INSERT INTO workflow_app_logs (tenant_id, app_id, workflow_id, workflow_run_id, created_from, created_by_role, created_by)
               VALUES ('{TENANT}', '{APP}', '{WORKFLOW}', '{run}', 'service-api', 'end_user', '{END_USER}')"
        ))
        .await
        .expect("app log");
}

async fn offload(env: &Env, node: &str) {
    env.db
        .batch_execute(&format!(
            "INSERT INTO workflow_node_execution_offload (node_execution_id, tenant_id, app_id, type, file_id)
               VALUES ('{node}', '{TENANT}', '{APP}', 'outputs', gen_random_uuid())"
        ))
        .await
        .expect("offload");
}

async fn sync(env: &Env) {
    env.syncer(env.config())
        .await
        .sync_once()
        .await
        .expect("sync");
}

fn config(env: &Env, scope: Scope) -> CleanupConfig {
    let mut c = CleanupConfig::new(
        env.dsn.clone(),
        env.data_dir(),
        Duration::from_secs(30 * 86_400),
    );
    c.scope = scope;
    c.batch = 100;
    c.lock_timeout = Duration::from_millis(200);
    c.lock_retries = 2;
    c.retry_backoff = Duration::from_millis(10);
    c.max_batch_latency = Duration::from_secs(10);
    c
}

async fn cleaner(env: &Env, c: CleanupConfig) -> Result<Cleaner, Error> {
    let store: Arc<dyn SpanReader> = Arc::new(env.store.clone());
    Cleaner::connect(c, store).await
}

async fn clean(env: &Env, c: CleanupConfig) -> CleanupReport {
    cleaner(env, c)
        .await
        .expect("cleaner connects")
        .run()
        .await
        .expect("cleanup runs")
}

async fn exists(env: &Env, table: &str, col: &str, id: &str) -> bool {
    let sql = format!("SELECT count(*) FROM {table} WHERE {col} = '{id}'::uuid");
    env.db
        .query_one(&sql, &[])
        .await
        .expect("count")
        .get::<_, i64>(0)
        > 0
}

fn deleted(r: &CleanupReport, table: &str) -> u64 {
    r.deleted.get(table).copied().unwrap_or(0)
}

#[tokio::test]
async fn runs_scope_deletes_exactly_the_verified_old_rows_in_every_table() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let mut old = Vec::new();
    for i in 0..3 {
        let (run, nodes) = run_with_nodes(&env, 40, i, 2).await;
        app_log(&env, &run).await;
        offload(&env, &nodes[0]).await;
        old.push((run, nodes));
    }
    let (young, young_nodes) = run_with_nodes(&env, 1, 0, 2).await;
    app_log(&env, &young).await;
    offload(&env, &young_nodes[0]).await;
    sync(&env).await;

    let r = clean(&env, config(&env, Scope::Runs)).await;
    assert_eq!(deleted(&r, "workflow_runs"), 3);
    assert_eq!(deleted(&r, "workflow_node_executions"), 6);
    assert_eq!(deleted(&r, "workflow_node_execution_offload"), 3);
    assert_eq!(deleted(&r, "workflow_app_logs"), 3);
    assert_eq!(
        (r.verified, r.skipped_unverified, r.skipped_locked),
        (3, 0, 0)
    );
    assert!(r.complete && r.estimated_bytes_freed > 0, "{r:?}");
    for (run, nodes) in &old {
        assert!(!exists(&env, "workflow_runs", "id", run).await);
        assert!(!exists(&env, "workflow_app_logs", "workflow_run_id", run).await);
        assert!(!exists(&env, "workflow_node_executions", "workflow_run_id", run).await);
        assert!(
            !exists(
                &env,
                "workflow_node_execution_offload",
                "node_execution_id",
                &nodes[0]
            )
            .await
        );
        assert_eq!(env.trace(run).await.len(), 3, "Loupe keeps the spans");
    }
    assert_eq!(env.count("workflow_runs").await, 1);
    assert_eq!(env.count("workflow_node_executions").await, 2);
    assert_eq!(env.count("workflow_node_execution_offload").await, 1);
    assert_eq!(env.count("workflow_app_logs").await, 1);
    assert!(exists(&env, "workflow_runs", "id", &young).await);
    let progress =
        CleanupProgress::load(&CleanupProgress::path(&env.data_dir())).expect("progress");
    assert!(
        progress.scopes.is_empty(),
        "a finished run clears its position"
    );
}

#[tokio::test]
async fn nodes_scope_keeps_runs_and_a_later_runs_scope_still_verifies() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let (run, nodes) = run_with_nodes(&env, 40, 0, 3).await;
    app_log(&env, &run).await;
    offload(&env, &nodes[1]).await;
    sync(&env).await;
    let r = clean(&env, config(&env, Scope::Nodes)).await;
    assert_eq!(deleted(&r, "workflow_node_executions"), 3);
    assert_eq!(deleted(&r, "workflow_node_execution_offload"), 1);
    assert_eq!(deleted(&r, "workflow_runs"), 0);
    assert!(exists(&env, "workflow_runs", "id", &run).await);
    assert!(exists(&env, "workflow_app_logs", "workflow_run_id", &run).await);
    // Nothing left to do for nodes; the run itself is still verifiable.
    let again = clean(&env, config(&env, Scope::Nodes)).await;
    assert_eq!((again.total_deleted(), again.skipped_unverified), (0, 0));
    let r = clean(&env, config(&env, Scope::Runs)).await;
    assert_eq!(deleted(&r, "workflow_runs"), 1);
    assert_eq!(deleted(&r, "workflow_app_logs"), 1);
    assert_eq!(env.count("workflow_runs").await, 0);
}

#[tokio::test]
async fn messages_scope_deletes_feedback_then_messages_and_keeps_conversations() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let conv = uid();
    let (m_old, m_old2, m_young, fb) = (uid(), uid(), uid(), uid());
    let msg = |id: &str, at: &str| {
        format!(
            "INSERT INTO messages (id, app_id, conversation_id, inputs, query, message, message_tokens, message_unit_price,
               answer, answer_tokens, answer_unit_price, provider_response_latency, total_price, currency, from_source,
               from_end_user_id, created_at, updated_at)
             VALUES ('{id}', '{APP}', '{conv}', '{{}}', 'q', '[]', 3, 0, 'a', 4, 0, 1.25, 0.001, 'USD', 'api', '{END_USER}', {at}, {at});"
        )
    };
    env.db
        .batch_execute(&format!(
            "INSERT INTO conversations (id, app_id, mode, name, inputs, from_source, from_end_user_id, created_at, updated_at)
               VALUES ('{conv}', '{APP}', 'chat', 'c', '{{}}', 'api', '{END_USER}', {a}, {a});
             {m1} {m2} {m3}
             INSERT INTO message_feedbacks (id, app_id, conversation_id, message_id, rating, from_source, from_end_user_id, created_at, updated_at)
               VALUES ('{fb}', '{APP}', '{conv}', '{m_old}', 'like', 'user', '{END_USER}', {a}, {a});",
            a = ago(41, 0),
            m1 = msg(&m_old, &ago(40, 2)),
            m2 = msg(&m_old2, &ago(40, 1)),
            m3 = msg(&m_young, &ago(2, 0)),
        ))
        .await
        .expect("seed messages");
    sync(&env).await;
    let r = clean(&env, config(&env, Scope::Messages)).await;
    assert_eq!(deleted(&r, "messages"), 2, "{r:?}");
    assert_eq!(deleted(&r, "message_feedbacks"), 1);
    assert_eq!(env.count("messages").await, 1);
    assert!(exists(&env, "messages", "id", &m_young).await);
    assert_eq!(env.count("message_feedbacks").await, 0);
    assert_eq!(env.count("conversations").await, 1);
    assert_eq!(env.count("workflow_runs").await, 0);
}

#[tokio::test]
async fn never_deletes_rows_the_sync_has_not_verified() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let (synced, _) = run_with_nodes(&env, 50, 0, 1).await;
    let (grown, _) = run_with_nodes(&env, 50, 1, 1).await;
    sync(&env).await;
    // After the sync: a run past the checkpoint, a run behind it that the
    // sync never read, and a node added to a synced run.
    let (after, _) = run_with_nodes(&env, 45, 0, 1).await;
    let (behind, _) = run_with_nodes(&env, 60, 0, 1).await;
    insert_node(
        &env.db,
        &grown,
        &uid(),
        9,
        "code",
        "late",
        "succeeded",
        &ago(50, 1),
        None,
    )
    .await;

    let r = clean(&env, config(&env, Scope::Runs)).await;
    assert!(!exists(&env, "workflow_runs", "id", &synced).await);
    for run in [&after, &behind, &grown] {
        assert!(
            exists(&env, "workflow_runs", "id", run).await,
            "{run} must stay"
        );
    }
    assert_eq!(env.count("workflow_node_executions").await, 4);
    assert_eq!(r.skipped_unverified, 2, "{r:?}");
    let reasons: Vec<_> = r
        .skipped
        .iter()
        .map(|s| (s.id.clone(), s.reason.as_str()))
        .collect();
    assert!(reasons.contains(&(behind.clone(), "unverified")));
    assert!(reasons.contains(&(grown.clone(), "unverified")));
}

#[tokio::test]
async fn a_run_whose_spans_are_altered_or_missing_is_skipped() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let (altered, _) = run_with_nodes(&env, 40, 0, 2).await;
    let (missing, _) = run_with_nodes(&env, 40, 1, 2).await;
    let (fine, _) = run_with_nodes(&env, 40, 2, 2).await;
    sync(&env).await;
    // The store's copy of one run disagrees (a later version of the span,
    // from the database: a provider's copy could not overwrite it).
    let mut span = Span::new(ProjectId::DEFAULT, &altered);
    span.raw_status = Some("failed".into());
    span.source = Some(loupe_dify::SOURCE.into());
    env.store.append(vec![span]).await.expect("append");
    // A node of another run that the store never received.
    insert_node(
        &env.db,
        &missing,
        &uid(),
        7,
        "code",
        "ghost",
        "succeeded",
        &ago(40, 1),
        None,
    )
    .await;

    let r = clean(&env, config(&env, Scope::Runs)).await;
    assert!(!exists(&env, "workflow_runs", "id", &fine).await);
    assert!(exists(&env, "workflow_runs", "id", &altered).await);
    assert!(exists(&env, "workflow_runs", "id", &missing).await);
    assert_eq!(env.count("workflow_node_executions").await, 5);
    assert_eq!((r.verified, r.skipped_unverified), (1, 2), "{r:?}");
    let detail = |id: &str| {
        r.skipped
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.detail.clone())
    };
    assert!(detail(&altered).is_some_and(|d| d.contains("differ")));
    assert!(detail(&missing).is_some_and(|d| d.contains("1 of 4 rows")));
}

#[tokio::test]
async fn running_and_paused_runs_are_untouched() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let (running, paused, later) = (uid(), uid(), uid());
    insert_run(&env.db, &running, "running", &ago(40, 0)).await;
    insert_run(&env.db, &paused, "paused", &ago(40, 1)).await;
    insert_run(&env.db, &later, "running", &ago(40, 2)).await;
    let (done, _) = run_with_nodes(&env, 40, 3, 1).await;
    sync(&env).await;
    // Finished in Dify after the last sync: still open for Loupe.
    env.db
        .execute(
            "UPDATE workflow_runs SET status = 'succeeded', finished_at = created_at WHERE id = $1::text::uuid",
            &[&later],
        )
        .await
        .expect("finish");
    let r = clean(&env, config(&env, Scope::Runs)).await;
    assert_eq!(r.skipped_open, 3, "{r:?}");
    for run in [&running, &paused, &later] {
        assert!(exists(&env, "workflow_runs", "id", run).await);
    }
    assert!(!exists(&env, "workflow_runs", "id", &done).await);
}

#[tokio::test]
async fn concurrent_inserts_during_cleanup_stay_intact() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    for i in 0..40 {
        run_with_nodes(&env, 40, i, 2).await;
    }
    sync(&env).await;
    let writer = client(&env.dsn).await;
    let inserter = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..30u32 {
            let run = uid();
            let at = if i % 2 == 0 {
                ago(40, 100 + i)
            } else {
                ago(0, i)
            };
            insert_run(&writer, &run, "succeeded", &at).await;
            insert_node(
                &writer,
                &run,
                &uid(),
                1,
                "code",
                "c",
                "succeeded",
                &at,
                None,
            )
            .await;
            ids.push(run);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        ids
    });
    let mut c = config(&env, Scope::Runs);
    c.batch = 4;
    let r = clean(&env, c).await;
    let inserted = inserter.await.expect("inserter");
    for run in &inserted {
        assert!(
            exists(&env, "workflow_runs", "id", run).await,
            "{run} was inserted concurrently"
        );
        assert!(exists(&env, "workflow_node_executions", "workflow_run_id", run).await);
    }
    assert_eq!(deleted(&r, "workflow_runs"), 40, "{r:?}");
    assert_eq!(env.count("workflow_runs").await, 30);
}

#[tokio::test]
async fn a_held_lock_times_out_retries_and_skips_without_failing_the_run() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let mut runs = Vec::new();
    for i in 0..6 {
        runs.push(run_with_nodes(&env, 40, i, 1).await.0);
    }
    sync(&env).await;
    // Another session holds the first batch's runs.
    let mut other = client(&env.dsn).await;
    let tx = other.transaction().await.expect("begin");
    tx.execute(
        "SELECT id FROM workflow_runs WHERE id = ANY($1::text[]::uuid[]) FOR UPDATE",
        &[&runs[..3].to_vec()],
    )
    .await
    .expect("lock rows");
    let mut c = config(&env, Scope::Runs);
    c.batch = 3;
    let r = clean(&env, c.clone()).await;
    assert!(r.complete, "{r:?}");
    assert_eq!(
        (r.skipped_locked, deleted(&r, "workflow_runs")),
        (3, 3),
        "{r:?}"
    );
    let skip = r
        .skipped
        .iter()
        .find(|s| s.reason == "locked")
        .expect("a lock line");
    assert!(skip.detail.contains("after 3 attempts"), "{}", skip.detail);
    tx.rollback().await.expect("release");
    // The next run retries what was skipped.
    let r = clean(&env, c.clone()).await;
    assert_eq!((deleted(&r, "workflow_runs"), r.skipped_locked), (3, 0));

    // A whole child table locked: every batch is skipped, the run ends.
    for i in 0..2 {
        run_with_nodes(&env, 39, i, 1).await;
    }
    sync(&env).await;
    let tx = other.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE workflow_node_executions IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock table");
    let r = clean(&env, c.clone()).await;
    assert_eq!((r.skipped_locked, r.total_deleted()), (2, 0), "{r:?}");
    tx.rollback().await.expect("release");
    // The keyset table itself locked: the run stops early and can resume.
    let tx = other.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE workflow_runs IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock table");
    let r = clean(&env, c.clone()).await;
    assert!(!r.complete && r.stopped.is_some(), "{r:?}");
    tx.rollback().await.expect("release");
    let r = clean(&env, c).await;
    assert_eq!(deleted(&r, "workflow_runs"), 2);
}

#[tokio::test]
async fn an_interrupted_cleanup_resumes_where_it_stopped() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    for i in 0..10 {
        run_with_nodes(&env, 40, i, 1).await;
    }
    sync(&env).await;
    let mut c = config(&env, Scope::Runs);
    c.batch = 3;
    c.max_batches = Some(2);
    let r = clean(&env, c.clone()).await;
    assert!(!r.complete && r.stopped.is_some());
    assert_eq!(deleted(&r, "workflow_runs"), 6);
    let progress =
        CleanupProgress::load(&CleanupProgress::path(&env.data_dir())).expect("progress");
    assert_eq!(progress.scopes["runs"].batches, 2);
    c.max_batches = None;
    let r = clean(&env, c).await;
    assert!(r.resumed && r.complete, "{r:?}");
    assert_eq!(deleted(&r, "workflow_runs"), 4);
    assert_eq!(env.count("workflow_runs").await, 0);
}

#[tokio::test]
async fn dry_run_counts_and_deletes_nothing() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    for i in 0..4 {
        let (run, nodes) = run_with_nodes(&env, 40, i, 2).await;
        app_log(&env, &run).await;
        offload(&env, &nodes[0]).await;
    }
    sync(&env).await;
    let mut c = config(&env, Scope::Runs);
    c.dry_run = true;
    let dry = clean(&env, c.clone()).await;
    assert!(dry.dry_run);
    assert_eq!(env.count("workflow_runs").await, 4);
    assert_eq!(env.count("workflow_node_executions").await, 8);
    assert!(!CleanupProgress::path(&env.data_dir()).exists());
    c.dry_run = false;
    let real = clean(&env, c).await;
    assert_eq!(dry.deleted, real.deleted);
    assert_eq!(real.total_deleted(), 4 + 8 + 4 + 4);
}

#[tokio::test]
async fn refuses_a_database_it_has_not_synced() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    run_with_nodes(&env, 40, 0, 1).await;
    let err = cleaner(&env, config(&env, Scope::Runs))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Refused(_)), "{err}");
    // Synced, but into a data dir that belongs to another database.
    let other = Env::new().await;
    sync(&other).await;
    let mut c = config(&env, Scope::Runs);
    c.data_dir = other.data_dir();
    let err = cleaner(&env, c).await.err().expect("refused");
    assert!(
        matches!(err, Error::Refused(ref m) if m.contains("belongs to")),
        "{err}"
    );
    assert_eq!(env.count("workflow_runs").await, 1);
}
