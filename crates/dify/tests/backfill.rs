//! Backfills the way a user runs them, against a real PostgreSQL 15 with
//! Dify's schema (`scripts/peers/postgres.sh`): tag rules apply to synced
//! history (issue 13: `by tags.category` was one null group), and history
//! older than the store's retention is skipped with a count or refused,
//! never written and then silently deleted.

mod common;

use common::*;
use loupe_backend::QueryLimits;
use loupe_dify::Error;
use loupe_dify::sync::OlderThanRetention;
use loupe_model::ProjectId;
use loupe_normalise::tags::{TagRuleConfig, TagRules};

fn category_rule() -> TagRules {
    let rule: TagRuleConfig = serde_json::from_value(serde_json::json!({
        "name": "category",
        "from": "input",
    }))
    .expect("rule");
    TagRules::new(&[rule]).expect("rules")
}

/// A finished run with two nodes at `at` (SQL), whose input names `category`.
async fn run_with_category(env: &Env, at: &str, category: &str) -> String {
    let id = uid();
    insert_node(
        &env.db,
        &id,
        &uid(),
        1,
        "start",
        "Start",
        "succeeded",
        at,
        None,
    )
    .await;
    insert_node(&env.db, &id, &uid(), 2, "llm", "LLM", "succeeded", at, None).await;
    insert_run(&env.db, &id, "succeeded", at).await;
    env.db
        .execute(
            "UPDATE workflow_runs SET inputs = $1 WHERE id = $2::text::uuid",
            &[
                &format!(r#"{{"category": "{category}", "query": "where is my order"}}"#),
                &id,
            ],
        )
        .await
        .expect("set inputs");
    id
}

#[tokio::test]
async fn a_backfill_through_the_pipeline_answers_by_business_tag_for_every_span() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let mut runs = Vec::new();
    for (i, category) in ["phone", "laptop", "phone"].iter().enumerate() {
        let at = format!("'2026-11-23 10:00:0{i}'");
        runs.push((run_with_category(&env, &at, category).await, *category));
    }
    let report = env
        .syncer_with_tags(env.config(), category_rule())
        .await
        .sync_once()
        .await
        .expect("sync");
    assert_eq!(report.rows["workflow_runs"], 3);

    // Run-level tags reach every node of the run, not only the root.
    for (run, category) in &runs {
        let spans = env.trace(run).await;
        assert_eq!(spans.len(), 3, "run and two nodes");
        for s in &spans {
            assert_eq!(
                s.tags.get("category").map(String::as_str),
                Some(*category),
                "span {} of run {run}",
                s.span_id
            );
        }
    }

    // The seed's first question, over synced history.
    let query = loupe_query::Query::parse(
        "from 2026-11-23T00:00:00Z to 2026-11-24T00:00:00Z span_kind=workflow \
         | by tags.category | count()",
    )
    .expect("parse");
    let plan = loupe_query::plan(&query, loupe_query::PlanOptions::at(0)).expect("plan");
    let answer = env
        .store
        .query_plan(&ProjectId::default_project(), &plan, QueryLimits::default())
        .await
        .expect("query");
    let mut counts: Vec<(String, i64)> = answer
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("<null>").to_owned(),
                r[1].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [("laptop".to_owned(), 1), ("phone".to_owned(), 2)],
        "{answer:?}"
    );
}

#[tokio::test]
async fn history_older_than_retention_is_refused_or_skipped_and_counted_never_dropped_silently() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let old_a = run_with_category(&env, "now() - interval '60 days'", "phone").await;
    let old_b = run_with_category(&env, "now() - interval '45 days'", "phone").await;
    let recent = run_with_category(&env, "now() - interval '1 hour'", "phone").await;
    let floor = (chrono::Utc::now() - chrono::TimeDelta::days(30)).naive_utc();

    // Stop: nothing is read, the error names the rows and the settings.
    let mut config = env.config();
    config.retention_floor = Some(floor);
    config.older_than_retention = OlderThanRetention::Stop;
    let err = env
        .syncer(config.clone())
        .await
        .sync_once()
        .await
        .expect_err("refused");
    match &err {
        Error::OlderThanRetention { table, rows, .. } => {
            assert_eq!((*table, *rows), ("workflow_runs", 2), "{err}");
        }
        other => panic!("expected OlderThanRetention, got {other}"),
    }
    assert!(err.to_string().contains("retention_days"), "{err}");
    assert!(env.trace(&recent).await.is_empty(), "nothing written");

    // Skip: the old runs are counted in the report, the recent one synced.
    config.older_than_retention = OlderThanRetention::Skip;
    let report = env.syncer(config).await.sync_once().await.expect("sync");
    assert_eq!(report.skipped.get("workflow_runs"), Some(&2), "{report:?}");
    assert_eq!(report.rows.get("workflow_runs"), Some(&1), "{report:?}");
    assert_eq!(env.trace(&recent).await.len(), 3);
    assert!(env.trace(&old_a).await.is_empty());
    assert!(env.trace(&old_b).await.is_empty());
}

/// Issue 13: `loupe serve` with a `[dify]` backfill under way took over 60 s
/// to stop. A stop now ends a pass between batches, and the next pass
/// resumes from the checkpoint with no run missing.
#[tokio::test]
async fn a_stop_mid_backfill_ends_the_sync_promptly_and_the_next_pass_has_no_gap() {
    let env = Env::new().await;
    seed_app(&env.db).await;
    let mut runs = Vec::new();
    for i in 0..60 {
        let at = format!("'2026-11-23 10:00:00'::timestamp + interval '{i} seconds'");
        runs.push(run_with_category(&env, &at, "phone").await);
    }
    let mut config = env.config();
    config.batch = 5;
    // 4 rows/s: this pass alone would take 15 s.
    config.rate = Some(4.0);
    let mut syncer = env.syncer(config.clone()).await;
    let progressed = std::sync::Arc::new(tokio::sync::Notify::new());
    let p = progressed.clone();
    syncer.on_progress(std::sync::Arc::new(move |_| p.notify_one()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(syncer.run(std::time::Duration::from_secs(3600), stopped));
    progressed.notified().await;
    stop.send(true).expect("stop");
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the sync stops within 5 s of the signal")
        .expect("sync task");

    config.rate = None;
    env.syncer(config).await.sync_once().await.expect("resume");
    for run in &runs {
        assert_eq!(
            env.trace(run).await.len(),
            3,
            "run {run} synced once, whole"
        );
    }
}
