//! Sync against a real PostgreSQL 15 (`scripts/peers/postgres.sh`).

mod common;

use std::sync::Arc;

use common::*;
use loupe_dify::sync::Checkpoint;
use loupe_dify::{Error, SOURCE};
use loupe_model::{ProjectId, SpanKind, Status};

const RUN: &str = "6e20a743-6342-4853-9ecb-33cdb571e9cc";
const NODES: [(&str, &str, &str); 4] = [
    ("3411fff4-6978-4411-b0d2-2db12eb9762d", "start", "Start"),
    ("960942f8-17ed-4d42-9b1e-9c0ebadb7b25", "if-else", "IF/ELSE"),
    (
        "a0e59aa4-2d60-47ad-93a6-4b52831349ca",
        "http-request",
        "HTTP Request",
    ),
    ("5b16e2fc-ff71-46ae-be37-f3dbd9bfe8ed", "end", "End (hello)"),
];

async fn seed_fixture_run(db: &tokio_postgres::Client) {
    insert_run(db, RUN, "succeeded", "'2026-11-24 18:55:43.150000'").await;
    for (i, (id, ty, title)) in NODES.iter().enumerate() {
        let at = format!("'2026-11-24 18:55:43.1{}0000'", 5 + i);
        insert_node(db, RUN, id, i as i32 + 1, ty, title, "succeeded", &at, None).await;
    }
}

#[tokio::test]
async fn every_table_maps_field_by_field() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    seed_fixture_run(&env.db).await;
    env.db
        .batch_execute(&format!(
            "INSERT INTO workflow_app_logs (id, tenant_id, app_id, workflow_id, workflow_run_id, created_from, created_by_role, created_by, created_at)
               VALUES ('11111111-1111-4111-8111-111111111111', '{TENANT}', '{APP}', '{WORKFLOW}', '{RUN}', 'service-api', 'end_user', '{END_USER}', '2026-11-24 18:55:43');
             INSERT INTO workflow_node_execution_offload (node_execution_id, tenant_id, app_id, type, file_id)
               VALUES ('a0e59aa4-2d60-47ad-93a6-4b52831349ca', '{TENANT}', '{APP}', 'outputs', '22222222-2222-4222-8222-222222222222');"
        ))
        .await
        .expect("seed logs");
    // An iteration run: container with the children's sum, children with usage.
    let it_run = uid();
    let container = uid();
    let (c1, c2) = (uid(), uid());
    insert_run(&env.db, &it_run, "succeeded", "'2026-11-20 10:00:00'").await;
    let sum = r#"{"total_tokens": 30, "total_price": 0.003, "currency": "USD"}"#;
    insert_node(
        &env.db,
        &it_run,
        &container,
        1,
        "iteration",
        "Loop over",
        "succeeded",
        "'2026-11-20 10:00:01'",
        Some(sum),
    )
    .await;
    let child = r#"{"total_tokens": 15, "total_price": 0.0015, "currency": "USD", "iteration_id": "node-Loop over", "iteration_index": 0}"#;
    insert_node(
        &env.db,
        &it_run,
        &c1,
        2,
        "llm",
        "Ask",
        "succeeded",
        "'2026-11-20 10:00:02'",
        Some(child),
    )
    .await;
    insert_node(
        &env.db,
        &it_run,
        &c2,
        3,
        "llm",
        "Ask",
        "failed",
        "'2026-11-20 10:00:03'",
        Some(child),
    )
    .await;
    env.db
        .batch_execute(&format!(
            "UPDATE workflow_node_executions SET outputs = '{{\"text\": \"hi\", \"usage\": {{\"prompt_tokens\": 10, \"completion_tokens\": 5}}}}',
               process_data = '{{\"model_name\": \"gpt-4o\", \"model_provider\": \"openai\"}}' WHERE id = '{c1}';
             UPDATE workflow_node_executions SET error = 'boom' WHERE id = '{c2}';"
        ))
        .await
        .expect("usage");
    // A basic chat message with feedback, and a chatflow turn.
    let (conv, msg, fb) = (uid(), uid(), uid());
    let (flow_run, flow_msg, flow_node) = (uid(), uid(), uid());
    env.db
        .batch_execute(&format!(
            "INSERT INTO conversations (id, app_id, mode, name, inputs, from_source, from_end_user_id, created_at, updated_at)
               VALUES ('{conv}', '{APP}', 'chat', 'Greeting', '{{}}', 'api', '{END_USER}', '2026-11-21 09:00:00', '2026-11-21 09:00:00');
             INSERT INTO messages (id, app_id, model_provider, model_id, conversation_id, inputs, query, message, message_tokens,
               message_unit_price, answer, answer_tokens, answer_unit_price, provider_response_latency, total_price, currency,
               status, message_metadata, invoke_from, from_source, from_end_user_id, created_at, updated_at)
               VALUES ('{msg}', '{APP}', 'openai', 'gpt-4o', '{conv}', '{{\"k\": 1}}', 'hello?', '[]', 12, 0.001, 'hi there', 8, 0.002,
               1.5, 0.0004, 'USD', 'normal', '{{\"usage\": {{\"time_to_first_token\": 0.3}}}}', 'service-api', 'api', '{END_USER}',
               '2026-11-21 09:00:01', '2026-11-21 09:00:03');
             INSERT INTO message_feedbacks (id, app_id, conversation_id, message_id, rating, content, from_source, from_end_user_id, created_at, updated_at)
               VALUES ('{fb}', '{APP}', '{conv}', '{msg}', 'dislike', 'wrong', 'user', '{END_USER}', '2026-11-21 09:01:00', '2026-11-21 09:02:00');
             INSERT INTO messages (id, app_id, conversation_id, inputs, query, message, message_tokens, message_unit_price, answer,
               answer_tokens, answer_unit_price, provider_response_latency, total_price, currency, from_source, created_at, updated_at,
               workflow_run_id, from_account_id)
               VALUES ('{flow_msg}', '{APP}', '{conv}', '{{}}', 'flow?', '[]', 40, 0, 'flow answer', 20, 0, 2.0, 0.01, 'USD', 'console',
               '2026-11-21 09:05:00', '2026-11-21 09:05:02', '{flow_run}', '{TENANT}');"
        ))
        .await
        .expect("messages");
    insert_run(&env.db, &flow_run, "succeeded", "'2026-11-21 09:05:00'").await;
    env.db
        .batch_execute(&format!(
            "UPDATE workflow_runs SET type = 'chat' WHERE id = '{flow_run}'"
        ))
        .await
        .expect("chat");
    insert_node(
        &env.db,
        &flow_run,
        &flow_node,
        1,
        "llm",
        "Answer",
        "succeeded",
        "'2026-11-21 09:05:01'",
        Some(r#"{"total_tokens": 60}"#),
    )
    .await;

    let mut syncer = env.syncer(env.config()).await;
    let report = syncer.sync_once().await.expect("sync");
    assert_eq!(report.rows.get("workflow_runs"), Some(&3));
    assert_eq!(report.rows.get("messages"), Some(&2));
    assert_eq!(report.rows.get("message_feedbacks"), Some(&1));
    assert_eq!(report.open_runs, 0);

    // Run root.
    let root = env.span(RUN, RUN).await;
    assert_eq!(root.trace_id.as_deref(), Some(RUN));
    assert_eq!(root.run_id.as_deref(), Some(RUN));
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.span_kind, Some(SpanKind::Workflow));
    assert_eq!(root.name.as_deref(), Some("workflow"));
    assert_eq!(root.status, Some(Status::Ok));
    assert_eq!(root.raw_status.as_deref(), Some("succeeded"));
    assert_eq!(root.app_id.as_deref(), Some(APP));
    assert_eq!(root.app_name.as_deref(), Some("Probe app"));
    assert_eq!(root.workflow_id.as_deref(), Some(WORKFLOW));
    assert_eq!(
        root.workflow_version.as_deref(),
        Some("2026-11-24 18:54:52.149589")
    );
    assert_eq!(
        root.user_id.as_deref(),
        Some("probe-user-1"),
        "end user's session_id"
    );
    assert_eq!(
        root.input.as_deref(),
        Some(r#"{"query": "hello langfuse"}"#)
    );
    assert_eq!(root.output.as_deref(), Some(r#"{"status_code": 200}"#));
    assert_eq!(
        root.total_tokens, None,
        "the run's node sum is not counted again"
    );
    assert_eq!(root.duration_ns(), Some(87_000_000));
    assert_eq!(root.source.as_deref(), Some(SOURCE));
    assert_eq!(
        root.attributes["dify.app_log_id"],
        "11111111-1111-4111-8111-111111111111"
    );
    assert_eq!(root.attributes["dify.created_from"], "service-api");
    assert_eq!(root.attributes["dify.total_steps"], "4");
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
        .and_then(|d| d.and_hms_micro_opt(18, 55, 43, 150_000))
        .expect("date")
        .and_utc()
        .timestamp_nanos_opt();
    assert_eq!(root.start_time, start, "naive timestamps are UTC");
    // Nodes.
    let spans = env.trace(RUN).await;
    assert_eq!(spans.len(), 5);
    for (i, (id, ty, title)) in NODES.iter().enumerate() {
        let n = spans.iter().find(|s| s.span_id == *id).expect("node span");
        assert_eq!(n.parent_span_id.as_deref(), Some(RUN));
        assert_eq!(n.trace_id.as_deref(), Some(RUN));
        assert_eq!(n.node_type.as_deref(), Some(*ty));
        assert_eq!(n.name.as_deref(), Some(*title));
        assert_eq!(n.status, Some(Status::Ok));
        assert_eq!(
            n.input.as_deref(),
            Some(format!(r#"{{"in": {}}}"#, i + 1).as_str())
        );
        assert_eq!(n.attributes["dify.index"], (i + 1).to_string());
        assert_eq!(n.duration_ns(), Some(1_000_000));
    }
    let http = spans
        .iter()
        .find(|s| s.span_id == NODES[2].0)
        .expect("http");
    assert_eq!(http.span_kind, Some(SpanKind::Http));
    assert_eq!(http.attributes["dify.truncated.outputs"], "true");
    // Iteration: children under the container; tokens only on children.
    let spans = env.trace(&it_run).await;
    let get = |id: &str| {
        spans
            .iter()
            .find(|s| s.span_id == id)
            .expect("span")
            .clone()
    };
    assert_eq!(
        get(&container).parent_span_id.as_deref(),
        Some(it_run.as_str())
    );
    assert_eq!(get(&container).total_tokens, None);
    assert_eq!(get(&container).cost, None);
    let first = get(&c1);
    assert_eq!(first.parent_span_id.as_deref(), Some(container.as_str()));
    assert_eq!(
        (first.total_tokens, first.input_tokens, first.output_tokens),
        (Some(15), Some(10), Some(5))
    );
    assert_eq!(
        (first.cost, first.currency.as_deref()),
        (Some(0.0015), Some("USD"))
    );
    assert_eq!(
        (first.model_name.as_deref(), first.model_provider.as_deref()),
        (Some("gpt-4o"), Some("openai"))
    );
    let failed = get(&c2);
    assert_eq!(failed.status, Some(Status::Error));
    assert_eq!(failed.error_message.as_deref(), Some("boom"));
    let total: i64 = spans.iter().filter_map(|s| s.total_tokens).sum();
    assert_eq!(total, 30, "no double counting of the container");
    // Basic chat turn and its feedback.
    let turn = env.span(&msg, &msg).await;
    assert_eq!(turn.span_kind, Some(SpanKind::Llm));
    assert_eq!(turn.session_id.as_deref(), Some(conv.as_str()));
    assert_eq!(turn.user_id.as_deref(), Some("probe-user-1"));
    assert_eq!(
        (turn.input_tokens, turn.output_tokens, turn.total_tokens),
        (Some(12), Some(8), Some(20))
    );
    assert_eq!(
        (turn.cost, turn.currency.as_deref()),
        (Some(0.0004), Some("USD"))
    );
    assert_eq!(turn.duration_ns(), Some(1_500_000_000));
    assert_eq!(
        (turn.input.as_deref(), turn.output.as_deref()),
        (Some("hello?"), Some("hi there"))
    );
    assert_eq!(turn.model_name.as_deref(), Some("gpt-4o"));
    assert_eq!(turn.attributes["dify.conversation_name"], "Greeting");
    assert_eq!(turn.attributes["dify.time_to_first_token"], "0.3");
    let score = env.span(&msg, &fb).await;
    assert_eq!(score.node_type.as_deref(), Some("score"));
    assert_eq!(score.parent_span_id.as_deref(), Some(msg.as_str()));
    assert_eq!(score.attributes["score.value"], "dislike");
    assert_eq!(score.attributes["score.comment"], "wrong");
    // Chatflow: the run and its nodes hang under the message.
    let flow = env.trace(&flow_msg).await;
    let ids: Vec<&str> = flow.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(
        ids,
        [flow_msg.as_str(), flow_run.as_str(), flow_node.as_str()],
        "tree order"
    );
    assert_eq!(flow[0].span_kind, Some(SpanKind::Workflow));
    assert_eq!(
        flow[0].total_tokens, None,
        "chatflow aggregate stays an attribute"
    );
    assert_eq!(flow[0].run_id.as_deref(), Some(flow_run.as_str()));
    assert_eq!(flow[1].parent_span_id.as_deref(), Some(flow_msg.as_str()));
    assert_eq!(flow[1].session_id.as_deref(), Some(conv.as_str()));
    assert_eq!(flow[2].total_tokens, Some(60));

    // The conversation as product analytics sees it (issue 20): two turns,
    // a basic chat message (an `llm` root) and a chatflow turn (a message
    // and a run span, one turn), the dislike, the message's cost.
    let project = ProjectId::new("default").expect("project");
    let day = |s: &str| loupe_model::time::parse_instant(s).expect("instant");
    let report = loupe_analytics::conversations(
        &env.store,
        &project,
        &loupe_analytics::ConversationsRequest {
            from_ns: day("2026-11-21T00:00:00Z"),
            to_ns: day("2026-11-22T00:00:00Z"),
            now_ns: day("2026-11-23T00:00:00Z"),
            gap_ns: loupe_analytics::DEFAULT_GAP_NS,
            group_by: None,
            limits: Default::default(),
        },
    )
    .await
    .expect("conversations");
    let t = &report.total;
    assert_eq!((t.sessions, t.turns, t.ended_sessions), (1, 2, 1), "{t:#?}");
    assert_eq!((t.likes, t.dislikes, t.abandoned_sessions), (0, 1, 0));
    assert!(
        (t.cost - 0.0004).abs() < 1e-12,
        "the basic chat message's price: {}",
        t.cost
    );

    // A second pass reads nothing new.
    let again = syncer.sync_once().await.expect("sync again");
    assert_eq!(again.spans, 0);
}

#[tokio::test]
async fn a_running_run_is_repolled_until_final() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let run = uid();
    let (n1, n2) = (uid(), uid());
    insert_run(&env.db, &run, "running", "'2026-11-24 10:00:00'").await;
    insert_node(
        &env.db,
        &run,
        &n1,
        1,
        "start",
        "Start",
        "succeeded",
        "'2026-11-24 10:00:00.1'",
        None,
    )
    .await;
    insert_node(
        &env.db,
        &run,
        &n2,
        2,
        "llm",
        "Think",
        "running",
        "'2026-11-24 10:00:00.2'",
        None,
    )
    .await;
    let mut syncer = env.syncer(env.config()).await;
    syncer.sync_once().await.expect("first pass");
    assert!(syncer.checkpoint().open_runs.contains(&run));
    let root = env.span(&run, &run).await;
    assert_eq!((root.status, root.end_time), (Some(Status::Running), None));
    assert_eq!(env.span(&run, &n2).await.status, Some(Status::Running));

    let n3 = uid();
    insert_node(
        &env.db,
        &run,
        &n3,
        3,
        "end",
        "End",
        "succeeded",
        "'2026-11-24 10:00:02'",
        None,
    )
    .await;
    env.db
        .batch_execute(&format!(
            "UPDATE workflow_node_executions SET status = 'succeeded', finished_at = '2026-11-24 10:00:01.9', outputs = '{{\"text\": \"done\"}}' WHERE id = '{n2}';
             UPDATE workflow_runs SET status = 'failed', error = 'late failure', finished_at = '2026-11-24 10:00:03', elapsed_time = 3 WHERE id = '{run}';"
        ))
        .await
        .expect("finish");
    syncer.sync_once().await.expect("second pass");
    assert!(syncer.checkpoint().open_runs.is_empty());
    let on_disk = Checkpoint::load(&Checkpoint::path(&env.data_dir())).expect("checkpoint");
    assert!(on_disk.open_runs.is_empty(), "persisted");
    let root = env.span(&run, &run).await;
    assert_eq!(root.status, Some(Status::Error));
    assert_eq!(root.error_message.as_deref(), Some("late failure"));
    assert_eq!(root.duration_ns(), Some(3_000_000_000));
    let think = env.span(&run, &n2).await;
    assert_eq!(think.status, Some(Status::Ok));
    assert_eq!(think.output.as_deref(), Some(r#"{"text": "done"}"#));
    assert_eq!(env.trace(&run).await.len(), 4);
}

#[tokio::test]
async fn nodes_committed_after_the_run_finished_are_read_within_settle() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let run = uid();
    let (n1, n2) = (uid(), uid());
    let recent = "(now() at time zone 'utc')::timestamp - interval '2 seconds'";
    insert_run(&env.db, &run, "succeeded", recent).await;
    insert_node(
        &env.db,
        &run,
        &n1,
        1,
        "start",
        "Start",
        "succeeded",
        recent,
        None,
    )
    .await;
    let mut config = env.config();
    config.settle = std::time::Duration::from_secs(600);
    let mut syncer = env.syncer(config.clone()).await;
    syncer.sync_once().await.expect("first pass");
    assert!(
        syncer.checkpoint().open_runs.contains(&run),
        "a run finished 2 s ago is still settling"
    );
    assert_eq!(env.trace(&run).await.len(), 2, "root + start");

    // Dify's Celery repository commits a node row after the run row.
    insert_node(
        &env.db,
        &run,
        &n2,
        2,
        "end",
        "End",
        "succeeded",
        recent,
        None,
    )
    .await;
    syncer.sync_once().await.expect("second pass");
    assert_eq!(env.span(&run, &n2).await.node_type.as_deref(), Some("end"));
    assert_eq!(env.trace(&run).await.len(), 3);
    drop(syncer);

    // Past `settle` the run leaves the re-poll set (and stays synced).
    config.settle = std::time::Duration::from_secs(1);
    let mut syncer = env.syncer(config).await;
    syncer.sync_once().await.expect("third pass");
    assert!(syncer.checkpoint().open_runs.is_empty());
    assert_eq!(env.trace(&run).await.len(), 3);
}

async fn insert_runs(db: &tokio_postgres::Client, n: usize, base_minute: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = uid();
        let at = format!(
            "'2026-11-23 00:00:00'::timestamp + interval '{} seconds'",
            base_minute * 60 + i
        );
        // As in Dify, a run's nodes are committed before the run is final
        // (a final run is never re-read, so its nodes must already be there).
        insert_node(db, &id, &uid(), 1, "start", "Start", "succeeded", &at, None).await;
        insert_run(db, &id, "succeeded", &at).await;
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn a_restart_mid_backfill_resumes_with_no_gap() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let ids = insert_runs(&env.db, 25, 0).await;
    let mut config = env.config();
    config.batch = 10;
    config.rate = Some(5.0);
    // Kill the pass (drop its future) right after its first batch is acknowledged.
    let killed = Arc::new(tokio::sync::Notify::new());
    let mut crashed = env.syncer(config.clone()).await;
    let k = killed.clone();
    crashed.on_progress(Arc::new(move |_| k.notify_one()));
    tokio::select! {
        r = crashed.sync_once() => panic!("the pass should have been killed: {r:?}"),
        () = killed.notified() => {}
    }
    drop(crashed);
    let cp = Checkpoint::load(&Checkpoint::path(&env.data_dir())).expect("checkpoint");
    let pos = &cp.tables["workflow_runs"];
    assert_eq!(
        pos.id, ids[9],
        "checkpoint stops at the last acknowledged batch"
    );

    config.rate = None;
    let mut resumed = env.syncer(config).await;
    let report = resumed.sync_once().await.expect("resume");
    assert_eq!(
        report.rows.get("workflow_runs"),
        Some(&15),
        "only the rest is read"
    );
    for id in &ids {
        assert_eq!(env.trace(id).await.len(), 2, "run {id} and its node");
    }
}

#[tokio::test]
async fn rows_inserted_while_syncing_are_all_picked_up() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let mut ids = insert_runs(&env.db, 30, 0).await;
    let mut config = env.config();
    config.batch = 7;
    config.rate = Some(2000.0);
    let mut syncer = env.syncer(config).await;
    let writer_dsn = env.dsn.clone();
    let writer = tokio::spawn(async move {
        let db = client(&writer_dsn).await;
        let mut out = Vec::new();
        for round in 1..=5 {
            out.extend(insert_runs(&db, 4, round).await);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        out
    });
    let mut passes = 0;
    while !writer.is_finished() {
        syncer.sync_once().await.expect("pass");
        passes += 1;
    }
    ids.extend(writer.await.expect("writer"));
    syncer.sync_once().await.expect("final pass");
    assert!(passes >= 1);
    for id in &ids {
        assert_eq!(env.trace(id).await.len(), 2, "run {id}");
    }
}

#[tokio::test]
async fn the_same_run_from_langfuse_and_the_database_merges_into_one() {
    let env = Env::new().await;
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../../shared/fixtures/dify-1.14.1/dify_langfuse_workflow_success_http_branch.json");
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("json");
    for request in fixture["requests"].as_array().expect("requests") {
        let body = serde_json::to_vec(&request["body"]).expect("body");
        let prepared = loupe_ingest::langfuse::prepare(ProjectId::DEFAULT, &body).expect("prepare");
        env.store.append(prepared.spans).await.expect("append");
    }
    assert_eq!(env.trace(RUN).await.len(), 5, "langfuse alone");
    seed_app(&env.db).await;
    seed_fixture_run(&env.db).await;
    env.syncer(env.config())
        .await
        .sync_once()
        .await
        .expect("sync");
    let spans = env.trace(RUN).await;
    assert_eq!(
        spans.len(),
        5,
        "one run: {:?}",
        spans.iter().map(|s| &s.span_id).collect::<Vec<_>>()
    );
    assert_eq!(spans[0].span_id, RUN);
    assert_eq!(spans[0].user_id.as_deref(), Some("probe-user-1"));
    assert_eq!(spans[0].app_name.as_deref(), Some("Probe app"));
    for (id, ty, _) in NODES {
        let n = spans.iter().find(|s| s.span_id == id).expect("node");
        assert_eq!(n.node_type.as_deref(), Some(ty));
        assert_eq!(n.parent_span_id.as_deref(), Some(RUN));
        assert_eq!(n.source.as_deref(), Some(SOURCE));
        assert!(
            n.attributes.contains_key("metadata.node_execution_id"),
            "langfuse fields kept"
        );
        assert!(
            n.attributes.contains_key("dify.index"),
            "database fields added"
        );
    }
}

#[tokio::test]
async fn errors_name_the_problem() {
    let url = pg_url();
    let err = loupe_dify::schema::connect("postgres://")
        .await
        .expect_err("no host");
    assert!(matches!(err, Error::BadDsn(_)), "{err}");
    let err = loupe_dify::schema::connect("not a dsn at all")
        .await
        .expect_err("bad dsn");
    assert!(matches!(err, Error::BadDsn(_)), "{err}");
    let (base, _) = url.rsplit_once('/').expect("db");
    let err = loupe_dify::schema::connect(&format!("{base}/no_such_database_here"))
        .await
        .expect_err("no db");
    assert!(
        matches!(err, Error::Connect(_)) && err.to_string().contains("no_such_database_here"),
        "{err}"
    );
    let err = loupe_dify::schema::connect("postgres://x:y@127.0.0.1:1/db")
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Connect(_)), "{err}");

    let env = Env::new().await;
    env.db
        .batch_execute(
            "DROP TABLE message_feedbacks; ALTER TABLE workflow_runs DROP COLUMN total_tokens",
        )
        .await
        .expect("drop");
    let pipeline = env.pipeline();
    let err = loupe_dify::sync::Syncer::connect(env.config(), pipeline.clone())
        .await
        .err()
        .expect("missing table");
    assert!(
        matches!(&err, Error::MissingTables { missing, .. } if missing == &["message_feedbacks"]),
        "{err}"
    );
    assert!(err.to_string().contains("1.14.1"), "{err}");
    env.db
        .batch_execute(
            &DDL[DDL.find("CREATE TABLE message_feedbacks").expect("ddl")
                ..DDL.find("CREATE TABLE end_users").expect("ddl")],
        )
        .await
        .expect("recreate");
    let err = loupe_dify::sync::Syncer::connect(env.config(), pipeline.clone())
        .await
        .err()
        .expect("missing column");
    assert!(
        err.to_string().contains("workflow_runs.total_tokens"),
        "{err}"
    );
    env.db
        .batch_execute(
            "ALTER TABLE workflow_runs ADD COLUMN total_tokens bigint NOT NULL DEFAULT 0",
        )
        .await
        .expect("fix");
    // A login without SELECT.
    env.db
        .batch_execute(
            "DROP ROLE IF EXISTS loupe_noread; CREATE ROLE loupe_noread LOGIN PASSWORD 'x'",
        )
        .await
        .ok();
    let (_, rest) = env.dsn.split_once('@').expect("dsn");
    let err = loupe_dify::sync::Syncer::connect(
        loupe_dify::sync::SyncConfig::new(
            format!("postgres://loupe_noread:x@{rest}"),
            env.data_dir(),
        ),
        pipeline,
    )
    .await
    .err()
    .expect("no privilege");
    assert!(matches!(err, Error::Permission(_)), "{err}");
}
