//! Regression tests for issue 14: one query with ~1,000 `or` terms
//! overflowed a tokio worker's stack and aborted the process. Each query
//! here runs on a thread with a worker's 2 MiB stack, so a recursion as
//! deep as the chain aborts this test binary (the old failure) instead of
//! passing; the answer must be a clear error or the right result.

use std::future::Future;

use loupe_backend::plan::QueryLimits;
use serde_json::Value;

use super::{assert_brute_force, config, data::generate, plan_of, project};
use crate::{Error, MAX_SQL_BYTES, Store};

/// The stack of a tokio worker thread (tokio's default).
const WORKER_STACK: usize = 2 << 20;

/// Runs `make()` to completion on a fresh thread with [`WORKER_STACK`].
fn on_worker_stack<F>(make: impl FnOnce() -> F + Send + 'static) -> F::Output
where
    F: Future,
    F::Output: Send + 'static,
{
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(make())
        })
        .expect("spawn")
        .join()
        .expect("the query thread panicked")
}

fn or_chain(terms: usize, term: impl Fn(usize) -> String) -> String {
    (0..terms).map(term).collect::<Vec<_>>().join(" or ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_term_or_query_answers_on_a_worker_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    let spans = generate();
    store.append(spans.clone()).await.expect("append");
    store.flush_all().await.expect("flush");
    // 1,000 terms, the last two of which match: the answer is checkable.
    let filter = or_chain(998, |i| format!("tool_name=t{i}"));
    let text = format!("{filter} or tool_name=inventory or tool_name=payment | count()");
    let plan = plan_of(&text);
    let (s, p) = (store.clone(), plan.clone());
    let got = on_worker_stack(move || async move {
        s.query_plan(&project(), &p, QueryLimits::default()).await
    })
    .expect("query");
    let want = assert_brute_force(&plan, &got, &spans, "1,000 or terms");
    assert!(
        want.rows[0][0].as_i64().is_some_and(|n| n > 0),
        "{:?}",
        want.rows
    );
}

/// SQL with long chains: each answer is a refusal naming a limit or the
/// right count, never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_sql_chains_answer_or_are_refused_on_a_worker_stack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    let spans = generate();
    store.append(spans.clone()).await.expect("append");
    let inventory = spans
        .iter()
        .filter(|s| s.tool_name.as_deref() == Some("inventory"))
        .count();
    for terms in [1_000, 10_000] {
        let chain = or_chain(terms - 1, |i| format!("tool_name = 't{i}'"));
        let statements = [
            (
                format!("SELECT count(*) AS n FROM spans WHERE {chain} OR tool_name = 'inventory'"),
                Some(inventory),
            ),
            (
                format!(
                    "SELECT {} AS n",
                    (0..terms).map(|_| "1").collect::<Vec<_>>().join(" + ")
                ),
                Some(terms),
            ),
            (
                format!(
                    "SELECT count(*) AS n FROM spans WHERE {}",
                    (0..terms).map(|_| "NOT").collect::<Vec<_>>().join(" ") + " true"
                ),
                None,
            ),
        ];
        for (sql, want) in statements {
            let s = store.clone();
            let query = sql.clone();
            let got = on_worker_stack(move || async move {
                s.read_only_sql(&project(), &query, QueryLimits::default())
                    .await
            });
            let what = format!("{terms} terms: {}…", &sql[..60.min(sql.len())]);
            match (got, want) {
                (Ok(result), Some(n)) => {
                    assert_eq!(result.rows, vec![vec![Value::from(n)]], "{what}");
                }
                (Err(Error::Invalid(message)), _) => {
                    assert!(!message.is_empty(), "{what}");
                }
                (other, _) => panic!("{what}: {other:?}"),
            }
        }
    }
    // Just under the depth limit still answers on a worker stack.
    let sum = format!(
        "SELECT {} AS n",
        vec!["1"; crate::MAX_SQL_EXPR_DEPTH - 1].join(" + ")
    );
    let s = store.clone();
    let got = on_worker_stack(move || async move {
        s.read_only_sql(&project(), &sum, QueryLimits::default())
            .await
    })
    .expect("a chain under the limit answers");
    assert_eq!(
        got.rows,
        vec![vec![Value::from(crate::MAX_SQL_EXPR_DEPTH - 1)]]
    );
    let huge = format!("SELECT 1 -- {}", "x".repeat(MAX_SQL_BYTES));
    let err = store
        .read_only_sql(&project(), &huge, QueryLimits::default())
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains(&MAX_SQL_BYTES.to_string()),
        "{err}"
    );
}
