//! The health collector and the cleanup history against a real PostgreSQL
//! 15 (`scripts/peers/postgres.sh`) with Dify's schema and generated rows:
//! what Loupe reports must equal what PostgreSQL's own functions say.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use loupe_dify::health::catalog::{CollectConfig, collect};
use loupe_dify::health::{CleanupHistory, HealthConfig, HealthHistory, Monitor};
use loupe_dify::relief::{Cleaner, CleanupConfig, Scope};

/// `runs` finished runs `days` old with `nodes` node executions each,
/// every node carrying a ~4 KiB output (so TOAST has something).
async fn generate(env: &Env, runs: usize, nodes: usize, days: u32) {
    env.db
        .batch_execute(&format!(
            "WITH r AS (
               INSERT INTO workflow_runs (id, tenant_id, app_id, workflow_id, type, triggered_from, version,
                 graph, inputs, status, outputs, elapsed_time, total_tokens, total_steps,
                 created_by_role, created_by, created_at, finished_at, exceptions_count)
               SELECT gen_random_uuid(), '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow', 'app-run', 'v1',
                 '{{}}', '{{}}', 'succeeded', '{{}}', 0.5, 10, {nodes}, 'end_user', '{END_USER}',
                 (now() AT TIME ZONE 'UTC') - interval '{days} days' - g * interval '1 second',
                 (now() AT TIME ZONE 'UTC') - interval '{days} days' - g * interval '1 second' + interval '500 milliseconds', 0
               FROM generate_series(1, {runs}) g
               RETURNING id, created_at)
             INSERT INTO workflow_node_executions (id, tenant_id, app_id, workflow_id, triggered_from,
               workflow_run_id, index, node_execution_id, node_id, node_type, title, inputs, outputs,
               status, elapsed_time, created_at, created_by_role, created_by, finished_at)
             SELECT gen_random_uuid(), '{TENANT}', '{APP}', '{WORKFLOW}', 'workflow-run', r.id, n, NULL,
               'node-' || n, 'code', 'n' || n, '{{}}',
               (SELECT json_build_object('text', string_agg(md5(r.id::text || n || k), ''))::text
                  FROM generate_series(1, 128) k),
               'succeeded', 0.01, r.created_at + n * interval '1 millisecond', 'end_user', '{END_USER}',
               r.created_at + n * interval '1 millisecond' + interval '10 milliseconds'
             FROM r, generate_series(1, {nodes}) n;
             ANALYZE workflow_runs; ANALYZE workflow_node_executions;"
        ))
        .await
        .expect("generate rows");
}

async fn one_i64(env: &Env, sql: &str) -> i64 {
    env.db.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_rows_and_oldest_rows_equal_what_postgresql_reports() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    generate(&env, 300, 6, 40).await;
    // The statistics collector publishes counts asynchronously.
    let live =
        "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'workflow_node_executions'";
    for _ in 0..100 {
        if one_i64(&env, live).await == 1800 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = loupe_dify::schema::connect(&env.dsn)
        .await
        .expect("connect");
    let s = collect(&client, &CollectConfig::default())
        .await
        .expect("sample");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    for table in [
        "workflow_node_executions",
        "workflow_runs",
        "messages",
        "apps",
    ] {
        let t = s.table(table).unwrap_or_else(|| panic!("{table} reported"));
        let rel = format!("'{table}'::regclass");
        assert_eq!(
            t.total_bytes,
            one_i64(&env, &format!("SELECT pg_total_relation_size({rel})")).await,
            "{table} total"
        );
        assert_eq!(
            t.index_bytes,
            one_i64(&env, &format!("SELECT pg_indexes_size({rel})")).await,
            "{table} indexes"
        );
        assert_eq!(
            t.toast_bytes,
            one_i64(
                &env,
                &format!(
                    "SELECT coalesce(pg_total_relation_size(NULLIF(reltoastrelid, 0)), 0) \
                     FROM pg_class WHERE oid = {rel}"
                )
            )
            .await,
            "{table} toast"
        );
        assert_eq!(
            t.heap_bytes + t.toast_bytes,
            one_i64(&env, &format!("SELECT pg_table_size({rel})")).await,
            "{table} heap + toast = pg_table_size"
        );
        assert_eq!(t.heap_bytes + t.toast_bytes + t.index_bytes, t.total_bytes);
    }
    let nodes = s.table("workflow_node_executions").expect("nodes");
    assert!(
        nodes.toast_bytes > 0,
        "4 KiB outputs are toasted: {nodes:?}"
    );
    assert_eq!(nodes.live_rows, one_i64(&env, live).await);
    assert_eq!(nodes.live_rows, 1800);
    assert_eq!(nodes.rows_estimate, 1800.0, "ANALYZE counted every row");
    assert!(nodes.last_analyze.is_some());
    // Oldest rows: the same instant as min(created_at).
    for table in ["workflow_runs", "workflow_node_executions"] {
        let want: f64 = env
            .db
            .query_one(
                &format!("SELECT extract(epoch FROM min(created_at))::float8 FROM {table}"),
                &[],
            )
            .await
            .expect("min")
            .get(0);
        let got = s.table(table).and_then(|t| t.oldest_row).expect("oldest");
        assert!((got - want).abs() < 1e-3, "{table}: {got} vs {want}");
    }
    assert_eq!(
        s.table("messages").and_then(|t| t.oldest_row),
        None,
        "empty"
    );
    // The database's size moves on its own (autovacuum writes visibility
    // maps, the catalogue grows): equal within 2 %.
    let db = one_i64(&env, "SELECT pg_database_size(current_database())").await;
    assert!(
        (s.database_bytes - db).abs() * 50 < db,
        "{} vs {db}",
        s.database_bytes
    );
    assert!(
        s.connections.values().sum::<i64>() >= 2,
        "{:?}",
        s.connections
    );
    assert!(s.max_connections > 0);
    // Every node is 40 days old: the recommendation is about all of them,
    // at the dry run's average row size.
    let r = s.recommendation.as_ref().expect("recommendation");
    assert_eq!(r.older_than_days, 30);
    assert!((r.rows - 1800.0).abs() <= 90.0, "planner estimate {r:?}");
    let avg = nodes.total_bytes as f64 / nodes.rows_estimate;
    assert!((r.avg_row_bytes - avg).abs() < 1e-6, "{r:?} vs {avg}");
    assert!((r.bytes - r.rows * avg).abs() < 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_comes_from_the_kept_samples_and_the_history_survives_a_restart() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    std::fs::create_dir_all(env.data_dir()).expect("data dir");
    let config = HealthConfig {
        dsn: env.dsn.clone(),
        data_dir: env.data_dir(),
        interval: Duration::from_secs(60),
        collect: CollectConfig::default(),
    };
    let size = "SELECT pg_total_relation_size('workflow_node_executions'::regclass)";
    let mut monitor = Monitor::connect(config.clone()).await.expect("monitor");
    let first = monitor.sample_once().await.expect("first sample");
    let b1 = one_i64(&env, size).await;
    generate(&env, 200, 5, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = monitor.sample_once().await.expect("second sample");
    let b2 = one_i64(&env, size).await;
    assert!(b2 > b1);
    let report = monitor.state().report();
    let g = &report.growth["workflow_node_executions"];
    assert_eq!(g.bytes, b2);
    assert_eq!(g.samples, 2);
    let want = (b2 - b1) as f64 / (second.at - first.at) as f64 * 86_400.0;
    assert!((g.bytes_per_day - want).abs() < 1e-3, "{g:?} vs {want}");
    assert!((g.projected_30d_bytes - (b2 as f64 + 30.0 * want)).abs() < 1.0);
    assert_eq!(report.chart.len(), 2);
    assert_eq!(report.chart[1].tables["workflow_node_executions"], b2);

    // A new collector (a restarted server) continues the same history.
    drop(monitor);
    let history = HealthHistory::load(&HealthHistory::path(&env.data_dir())).expect("load");
    assert_eq!(history.points.len(), 2);
    let mut again = Monitor::connect(config).await.expect("monitor");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    again.sample_once().await.expect("third sample");
    assert_eq!(
        again.state().report().growth["workflow_node_executions"].samples,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_waits_and_long_running_queries_on_execution_tables_are_reported() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let mut holder = client(&env.dsn).await;
    let tx = holder.transaction().await.expect("tx");
    tx.batch_execute("LOCK TABLE workflow_runs IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let waiter = client(&env.dsn).await;
    let waiting = tokio::spawn(async move {
        waiter
            .query_one("SELECT count(*) FROM workflow_runs", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = loupe_dify::schema::connect(&env.dsn)
        .await
        .expect("connect");
    let config = CollectConfig {
        long_query: Duration::from_secs(1),
        ..CollectConfig::default()
    };
    let s = collect(&client, &config).await.expect("sample");
    let w = s
        .lock_waits
        .iter()
        .find(|w| w.table == "workflow_runs")
        .unwrap_or_else(|| panic!("lock wait reported: {:?}", s.lock_waits));
    assert_eq!(w.waiting, 1);
    assert!(w.max_seconds >= 1.0, "{w:?}");
    let q = s
        .long_queries
        .iter()
        .find(|q| q.query.contains("count(*) FROM workflow_runs"))
        .unwrap_or_else(|| panic!("long query reported: {:?}", s.long_queries));
    assert_eq!(q.wait, "Lock");
    assert_eq!(q.tables, vec!["workflow_runs"]);
    // The exclusive lock keeps workflow_runs from being sized; the other
    // tables still are, and the sample says which one was not.
    assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
    assert!(
        s.errors[0].starts_with("size of workflow_runs:"),
        "{:?}",
        s.errors
    );
    assert!(s.table("workflow_node_executions").is_some());
    assert!(s.table("workflow_runs").is_none());
    tx.rollback().await.expect("release");
    assert_eq!(waiting.await.expect("join").expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cleanup_run_is_recorded_with_its_figures() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    generate(&env, 120, 4, 40).await;
    env.syncer(env.config())
        .await
        .sync_once()
        .await
        .expect("sync");
    let store: Arc<dyn loupe_backend::SpanReader> = Arc::new(env.store.clone());
    let mut config = CleanupConfig::new(
        env.dsn.clone(),
        env.data_dir(),
        Duration::from_secs(30 * 86_400),
    );
    config.scope = Scope::Nodes;
    config.batch = 50;
    config.dry_run = true;
    let dry = Cleaner::connect(config.clone(), store.clone())
        .await
        .expect("connect")
        .run()
        .await
        .expect("dry run");
    config.dry_run = false;
    config.source = "serve".into();
    let real = Cleaner::connect(config, store)
        .await
        .expect("connect")
        .run()
        .await
        .expect("cleanup");
    assert_eq!(real.deleted["workflow_node_executions"], 480);
    assert_eq!(real.verified, 120);
    assert_eq!(env.count("workflow_node_executions").await, 0);

    let history = CleanupHistory::load(&CleanupHistory::path(&env.data_dir())).expect("history");
    assert_eq!(history.runs.len(), 2);
    let (d, r) = (&history.runs[0], &history.runs[1]);
    assert!(d.report.dry_run && !r.report.dry_run);
    // The record is the report (floats aside: JSON keeps them to ~1e-15).
    for (rec, rep) in [(&d.report, &dry), (&r.report, &real)] {
        assert_eq!(rec.deleted, rep.deleted);
        assert_eq!(
            (rec.verified, rec.batches, rec.elapsed_ms),
            (rep.verified, rep.batches, rep.elapsed_ms)
        );
        assert_eq!(rec.estimated_bytes_freed, rep.estimated_bytes_freed);
        assert_eq!(rec.db_latency.samples, rep.db_latency.samples);
    }
    assert_eq!(r.source, "serve");
    assert_eq!(r.older_than, "30days");
    assert!(r.error.is_none());
    assert_eq!(r.report.batches, 3, "120 runs in batches of 50");
    assert!(r.report.estimated_bytes_freed > 0);
    assert_eq!(
        r.report.estimated_bytes_freed,
        (r.report.avg_row_bytes["workflow_node_executions"] * 480.0).round() as u64
    );
    assert_eq!(r.report.db_latency.samples, 3, "one probe per batch");
    assert!(r.report.db_latency.baseline_ms > 0.0 && r.report.db_latency.max_ms > 0.0);
    assert!(r.report.db_ms > 0 && r.report.db_ms <= r.report.elapsed_ms);
    assert_eq!(history.totals(), (480, r.report.estimated_bytes_freed));
    chrono::DateTime::parse_from_rfc3339(&r.started_at).expect("rfc 3339");
}
