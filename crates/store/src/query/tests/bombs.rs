//! SQL that builds huge values is refused before it allocates (issue 14:
//! `SELECT length(repeat('x', 2000000000))` was OOM-killed), naming the
//! limit, while the same functions at ordinary sizes keep their answers.

use loupe_backend::plan::QueryLimits;
use serde_json::Value;

use super::{config, generate, project};
use crate::{Error, Store};

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(config(dir.path()), loupe_rollup::RollupConfig::default()).expect("open");
    store.append(generate()).await.expect("append");
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_building_functions_are_refused_naming_the_limit_before_they_allocate() {
    let (_dir, store) = store().await;
    let limits = QueryLimits::default();
    let bombs = [
        "SELECT length(repeat('x', 2000000000))",
        "SELECT length(repeat(span_id, 2000000000)) FROM spans",
        "SELECT length(lpad('x', 2000000000))",
        "SELECT length(rpad(span_id, 2000000000, 'ab')) FROM spans",
        "SELECT cardinality(array_repeat(1, 2000000000))",
        "SELECT cardinality(array_resize([1], 2000000000))",
        "SELECT cardinality(range(2000000000))",
        "SELECT cardinality(generate_series(1, 2000000000))",
        "SELECT length(replace(repeat('x', 4000), 'x', repeat('y', 4000)))",
        "SELECT length(regexp_replace(repeat('x', 4000), '', repeat('y', 4000), 'g'))",
        // A constant fine on its own, copied into every row of a batch.
        "SELECT length(concat(repeat('x', 8000), span_id)) FROM spans",
        "SELECT length(repeat('x', 8000) || span_id) FROM spans",
        "SELECT length(span_id || repeat('x', 8000)) FROM spans",
        "SELECT cardinality(array_append([span_id], repeat('x', 8000))) FROM spans",
        // Doubling through a recursive CTE.
        "WITH RECURSIVE t(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM t) SELECT length(s) FROM t",
    ];
    for sql in bombs {
        let err = store
            .read_only_sql(&project(), sql, limits)
            .await
            .expect_err(sql);
        let Error::Invalid(message) = &err else {
            panic!("{sql}: not the caller's error: {err}");
        };
        if !sql.starts_with("WITH RECURSIVE") {
            assert!(
                message.contains("max_function_bytes"),
                "{sql}: the error names the limit: {message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_functions_at_ordinary_sizes_keep_their_answers() {
    let (_dir, store) = store().await;
    let limits = QueryLimits::default();
    let one = async |sql: &str| -> Value {
        let got = store
            .read_only_sql(&project(), sql, limits)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        got.rows[0][0].clone()
    };
    assert_eq!(one("SELECT repeat('ab', 3)").await, Value::from("ababab"));
    assert_eq!(one("SELECT lpad('7', 3, '0')").await, Value::from("007"));
    assert_eq!(one("SELECT 'a' || 'b' || 1").await, Value::from("ab1"));
    assert_eq!(one("SELECT 'a' || NULL IS NULL").await, Value::from(true));
    assert_eq!(
        one("SELECT count(*) FROM spans WHERE span_id || '!' = concat(span_id, '!')").await,
        one("SELECT count(*) FROM spans").await
    );
    assert_eq!(
        one("SELECT max(length(repeat(span_id, 100))) FROM spans").await,
        one("SELECT max(length(span_id)) * 100 FROM spans").await
    );
    assert_eq!(
        one("SELECT cardinality(range(1000))").await,
        Value::from(1000)
    );
    assert_eq!(
        one("SELECT replace('a-b-c', '-', '+')").await,
        Value::from("a+b+c")
    );
    assert_eq!(
        one("SELECT regexp_replace('a1b22', '[0-9]+', 'N', 'g')").await,
        Value::from("aNbN")
    );
    // The column keeps its `||` name.
    let named = store
        .read_only_sql(
            &project(),
            "SELECT span_id || 'x' FROM spans LIMIT 1",
            limits,
        )
        .await
        .expect("select");
    assert!(named.columns[0].name.contains("||"), "{:?}", named.columns);
    // A lower limit refuses what the default allows.
    let tight = QueryLimits {
        max_function_bytes: 1 << 10,
        ..limits
    };
    let err = store
        .read_only_sql(
            &project(),
            "SELECT length(repeat(span_id, 100)) FROM spans",
            tight,
        )
        .await
        .expect_err("over a 1 KiB limit");
    assert!(err.to_string().contains("max_function_bytes"), "{err}");
}
