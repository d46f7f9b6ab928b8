//! Dify's schema drifting under the connector: a row missing a column or
//! holding a type the connector does not read is an error naming the
//! column ([`loupe_dify::Error::Column`]), never a panic.

mod common;

use loupe_dify::Error;
use loupe_dify::schema::{Message, WorkflowRun};

#[tokio::test]
async fn a_missing_column_is_an_error_naming_it() {
    let db = common::client(&common::pg_url()).await;
    // Every column of a run but `tenant_id`, in the selected order.
    let row = db
        .query_one(
            "SELECT gen_random_uuid()::text AS id, gen_random_uuid()::text AS app_id",
            &[],
        )
        .await
        .expect("query");
    match WorkflowRun::from_row(&row) {
        Err(Error::Column { column, reason, .. }) => {
            assert_eq!(column, "workflow_runs.tenant_id");
            assert_eq!(reason, "missing");
        }
        other => panic!("expected a column error, got {other:?}"),
    }
    let text = WorkflowRun::from_row(&row)
        .expect_err("missing")
        .to_string();
    assert!(text.contains("workflow_runs.tenant_id"), "{text}");
}

#[tokio::test]
async fn a_column_of_another_type_is_an_error_naming_it() {
    let db = common::client(&common::pg_url()).await;
    // `message_tokens` became a bigint: Loupe reads an int4.
    let row = db
        .query_one(
            "SELECT gen_random_uuid()::text AS id, gen_random_uuid()::text AS app_id, \
             NULL::text AS model_provider, NULL::text AS model_id, \
             gen_random_uuid()::text AS conversation_id, '{}'::text AS inputs, \
             'q'::text AS query, 7::int8 AS message_tokens",
            &[],
        )
        .await
        .expect("query");
    match Message::from_row(&row) {
        Err(Error::Column { column, reason, .. }) => {
            assert_eq!(column, "messages.message_tokens");
            assert!(reason.contains("int8"), "{reason}");
        }
        other => panic!("expected a column error, got {other:?}"),
    }
}
