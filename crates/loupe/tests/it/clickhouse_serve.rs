//! `loupe serve` with `[store] backend = "clickhouse"`: the same traffic
//! sent to a server on the embedded store and to one on each ClickHouse the
//! test peers provide (Debian's 18.16, legacy profile; chDB 26.x, modern),
//! then the same questions asked over HTTP; the answers, the `/metrics`
//! series, the alert windows' source, `POST /api/v1/sql` and the product
//! analytics must be equal, the spans must be in ClickHouse only, and they
//! must still be there after a restart.
//!
//! The traffic: Dify 1.14.1's recorded Phoenix bodies (OTLP/HTTP protobuf)
//! and generated Dify-shaped runs over OTLP and over the Langfuse
//! ingestion API (`loupe gen`), some of them failing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Server, fixtures};

/// The metric families the rollups write (not the stores' own health).
const ROLLUP_FAMILIES: &[&str] = &[
    "loupe_runs_total",
    "loupe_run_duration_seconds",
    "loupe_node_duration_seconds",
    "loupe_spans_total",
    "loupe_spans_running",
    "loupe_llm_tokens_total",
    "loupe_llm_cost_total",
    "loupe_errors_total",
    "loupe_error_signatures_total",
    "loupe_ingest_spans_total",
];

fn write_config(dir: &Path, clickhouse: Option<(&str, &str)>) -> std::path::PathBuf {
    let mut text = String::from(
        "[store]\nretention_days = 0\n\n[metrics]\nlabels = [\"category\"]\n\n\
         [[tags]]\nname = \"category\"\nfrom = \"input\"\npath = \"category\"\n\n\
         [[budgets]]\nname = \"llm-month\"\nproject = \"default\"\namount = 1000.0\n\
         period = \"month\"\nthresholds = [1.0]\nper = \"tags.category\"\n\n\
         [alerts]\ninterval = \"1s\"\n\n\
         [[alerts.rules]]\nname = \"inventory-failures\"\nmetric = \"failure_rate\"\n\
         op = \">\"\nthreshold = \"10%\"\nwindow = \"3h\"\n\
         group_by = [\"project\"]\n\
         filters = { span_kind = \"tool\", tool_name = \"inventory\" }\n\n",
    );
    if let Some((url, database)) = clickhouse {
        // `[store]` again would be a TOML error: the backend goes in its table.
        text = text.replacen("[store]\n", "[store]\nbackend = \"clickhouse\"\n", 1);
        text.push_str(&format!(
            "[store.clickhouse]\nurl = \"{url}\"\ndatabase = \"{database}\"\n"
        ));
    }
    let path = dir.join("loupe.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// `loupe gen` of `runs` runs from `seed` starting at `start`, sent to
/// `server` over OTLP or Langfuse.
fn generate(server: &Server, seed: u64, runs: usize, start: &str, langfuse: bool) {
    let (runs, seed) = (runs.to_string(), seed.to_string());
    let via = if langfuse { "--langfuse" } else { "--otlp" };
    crate::support::run_gen(&[
        "--runs",
        &runs,
        "--seed",
        &seed,
        "--start",
        start,
        "--days",
        "0.05",
        "--fault",
        "tool=inventory,error_rate=0.5",
        via,
        &server.http,
    ]);
}

async fn send_all(server: &Server, start: &str) {
    for i in 1..=13 {
        let body =
            std::fs::read(fixtures().join(format!("dify-1.14.1/dify_otlp_phoenix_{i:02}.bin")))
                .expect("phoenix fixture");
        let r = server.post_otlp(body).await;
        assert!(r.status().is_success(), "phoenix body {i}: {}", r.status());
    }
    generate(server, 7, 120, start, false);
    generate(server, 8, 60, start, true);
}

/// Every span as the API lists it, by id, without what differs by design
/// between stores (nothing does today: the whole row is compared).
async fn spans(server: &Server) -> BTreeMap<String, Value> {
    server
        .all_spans()
        .await
        .into_iter()
        .map(|s| (s["span_id"].as_str().expect("span_id").to_owned(), s))
        .collect()
}

/// Query answers, and whether the hour rollups gave them (the embedded
/// store's tier, or ClickHouse's `span_hours`: both answer the same plans
/// from rollups, whole hours from the tier and the partial hours at the
/// ends from the spans).
async fn answers(server: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for q in [
        "last 3650d | by span_kind, status | count()",
        "last 3650d span_kind=llm | by model_name | sum(total_tokens), count()",
        "last 3650d | by tags.category | error_rate()",
        "last 3650d status=error | by node_type, name | count()",
        "last 1d | by bucket(1h) | count(), sum(cost), success_rate()",
        "last 1d span_kind=llm | by model_name, tags.category | avg(duration), sum(input_tokens)",
        "last 1d exists parent_span_id | by name | count(), avg(duration)",
        "last 1d status=error | by error_class, tool_name | count()",
        "last 1d span_kind in (tool, llm) and not tags.category=electronics | by app_id | error_rate()",
        "last 1d span_kind=workflow | by tags.category | p95(duration), count()",
    ] {
        // Percentiles from the tier's histograms, where it answers.
        let approx = q.contains("p95(");
        let (status, body) = server
            .post_json_as(
                "/api/v1/query",
                "default",
                &json!({ "q": q, "approx_percentiles": approx }),
            )
            .await;
        assert_eq!(status, 200, "{q}: {body}");
        let mut rows = body["rows"].as_array().cloned().unwrap_or_default();
        rows.sort_by_key(|r| r.to_string());
        out.push(json!({ "q": q, "rows": rows, "from_rollups": body["stats"]["from_rollups"] }));
    }
    out
}

/// Statements of `POST /api/v1/sql` (the data directory's SQL engine over
/// ClickHouse's rows on a ClickHouse server): projections, maps, JSON
/// payloads, time bounds, equalities the scan narrows by, and a subquery.
const STATEMENTS: &[&str] = &[
    "SELECT span_kind, status, count(*) AS n FROM spans GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT model_name, sum(total_tokens) AS tokens, count(*) AS n FROM spans \
     WHERE span_kind = 'llm' GROUP BY 1 ORDER BY 1",
    "SELECT tags['category'] AS category, count(*) AS n, \
     sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS failed \
     FROM spans WHERE start_time >= now() - INTERVAL '1 day' GROUP BY 1 ORDER BY 1",
    "SELECT json_get_str(input, 'category') AS c, count(*) AS n FROM spans \
     WHERE span_kind IN ('workflow', 'chatflow') GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS n, count(DISTINCT trace_id) AS traces, min(start_time) AS first, \
     max(_version) > 0 AS versioned FROM spans",
    "SELECT name, count(*) AS n FROM spans WHERE trace_id IN \
     (SELECT trace_id FROM spans WHERE status = 'error') GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
    "SELECT attributes['dify.workflow_run_id'] IS NOT NULL AS from_dify, count(*) AS n \
     FROM spans GROUP BY 1 ORDER BY 1",
];

/// The four product analyses over the window `[from, to)` (`now` = `to`)
/// and the SQL statements' answers (their rows and columns; the statistics
/// differ by design).
async fn sql_and_analytics(server: &Server, from: i64, to: i64) -> Vec<Value> {
    let mut out = Vec::new();
    for sql in STATEMENTS {
        let (status, body) = server
            .post_json_as("/api/v1/sql", "default", &json!({ "sql": sql }))
            .await;
        assert_eq!(status, 200, "{sql}: {body}");
        out.push(json!({ "sql": sql, "columns": body["columns"], "rows": body["rows"] }));
    }
    // A cost budget's spend is a SQL statement too.
    let (status, budgets) = server.get_json("/api/v1/budgets").await;
    assert_eq!(status, 200, "{budgets}");
    out.push(json!({ "budget spend": budgets["budgets"][0]["spent"] }));
    for (path, body) in [
        ("conversations", json!({ "by": "tags.category" })),
        ("conversations", json!({})),
        ("users", json!({})),
        ("relations", json!({})),
        ("paths", json!({ "depth": 3 })),
    ] {
        let url = format!("/api/v1/analytics/{path}");
        let mut body = body;
        body["from"] = json!(from);
        body["to"] = json!(to);
        body["now"] = json!(to);
        let (status, answer) = server.post_json_as(&url, "default", &body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        out.push(json!({ "analysis": path, "body": body, "answer": answer }));
    }
    out
}

/// The phase of the alert of the rule on inventory failures, once the
/// engine has evaluated (`None`: no alert).
async fn inventory_alert(server: &Server) -> Option<String> {
    let (status, alerts) = server.get_json("/api/v1/alerts").await;
    assert_eq!(status, 200, "{alerts}");
    alerts["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["rule"] == "inventory-failures")
        .map(|a| a["phase"].as_str().unwrap_or_default().to_owned())
}

/// Waits (up to 20 s) for the inventory alert to fire.
async fn wait_firing(server: &Server, name: &str) {
    for _ in 0..80 {
        if inventory_alert(server).await.as_deref() == Some("firing") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let (_, alerts) = server.get_json("/api/v1/alerts").await;
    let (_, rules) = server.get_json("/api/v1/alerts/rules").await;
    panic!("{name}: the inventory alert never fired: {alerts} {rules}");
}

/// Whether two answers are equal, floats to 1e-9 relative (sums of costs
/// are added in another order on each backend).
fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
        }
        _ => a == b,
    }
}

/// The rollup series of `/metrics` and their values (`# TYPE` lines as 0).
async fn rollup_series(server: &Server) -> BTreeMap<String, f64> {
    let text = server.metrics_text().await;
    text.lines()
        .filter(|l| {
            ROLLUP_FAMILIES
                .iter()
                .any(|f| l.starts_with(f) || l.starts_with(&format!("# TYPE {f}")))
        })
        .map(|l| match l.rsplit_once(' ') {
            Some((series, value)) if !l.starts_with('#') => (
                series.to_owned(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("sample value: {l}")),
            ),
            _ => (l.to_owned(), 0.0),
        })
        .collect()
}

/// Series of `want` that `got` lacks or holds another value of (sums of
/// costs may differ in the last bits: they are added in another order).
fn metric_differences(want: &BTreeMap<String, f64>, got: &BTreeMap<String, f64>) -> Vec<String> {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    want.iter()
        .filter(|(k, v)| !got.get(*k).is_some_and(|g| close(**v, *g)))
        .map(|(k, v)| format!("{k} = {v}, got {:?}", got.get(k)))
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{k}: not in the embedded store's")),
        )
        .collect()
}

/// Parquet files under `dir` (the embedded store's span parts).
fn parquet_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                parquet_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_clickhouse_answers_as_serve_on_the_embedded_store() {
    let peers = crate::clickhouse::peer_urls();
    if peers.is_empty() {
        return;
    }
    // Recent enough for every query window, the same for every server.
    let hour = 3_600 * 1_000_000_000i64;
    let start_ns = loupe_model::time::now_ns() - 3 * hour;
    let start = start_ns.to_string();
    let window = (start_ns - hour, start_ns + 5 * hour);

    let embedded_dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(embedded_dir.path(), None);
    let embedded = Server::start_with_config(embedded_dir.path(), &[], Some(&config)).await;
    send_all(&embedded, &start).await;
    let want_spans = spans(&embedded).await;
    let want_answers = answers(&embedded).await;
    let from_rollups = want_answers
        .iter()
        .filter(|a| a["from_rollups"] == true)
        .count();
    assert!(from_rollups >= 6, "{want_answers:#?}");
    let want_metrics = rollup_series(&embedded).await;
    let want_sql = sql_and_analytics(&embedded, window.0, window.1).await;
    assert!(want_spans.len() > 1_000, "{} spans", want_spans.len());
    // The answers are not empty: the statements and analyses see the
    // traffic (sessions, users, failures, categories).
    let sizes: Vec<usize> = want_sql[..STATEMENTS.len()]
        .iter()
        .map(|a| a["rows"].as_array().map_or(0, Vec::len))
        .collect();
    assert!(sizes.iter().all(|n| *n > 0), "{sizes:?}: {want_sql:#?}");
    let spent = &want_sql[STATEMENTS.len()]["budget spend"];
    assert!(
        spent.as_array().is_some_and(|g| g.len() > 1)
            && spent[0]["spent"].as_f64().is_some_and(|c| c > 0.0),
        "the budget counts the traffic's cost by category: {spent}"
    );
    let conversations = &want_sql[STATEMENTS.len() + 1]["answer"];
    assert!(
        conversations["total"]["sessions"].as_u64() > Some(10),
        "{conversations:#}"
    );
    assert!(
        want_metrics
            .keys()
            .any(|l| l.starts_with("loupe_errors_total{")),
        "the traffic has failures: {want_metrics:#?}"
    );

    for (name, url) in peers {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = format!("loupe_it_{}_serve_{name}", std::process::id());
        let config = write_config(dir.path(), Some((&url, &database)));
        let server = Server::start_with_config(dir.path(), &[], Some(&config)).await;
        let (status, settings) = server.get_json("/api/v1/settings").await;
        assert_eq!(status, 200, "{settings}");
        assert_eq!(settings["backend"], "clickhouse", "{name}: {settings}");
        assert_eq!(
            settings["retention"]["editable"], false,
            "{name}: {settings}"
        );
        send_all(&server, &start).await;

        let got = spans(&server).await;
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want_spans.keys().collect::<Vec<_>>(),
            "{name}: span ids"
        );
        for (id, want) in &want_spans {
            assert_eq!(&got[id], want, "{name}: span {id}");
        }
        assert_eq!(
            answers(&server).await,
            want_answers,
            "{name}: query answers"
        );
        let got_sql = sql_and_analytics(&server, window.0, window.1).await;
        for (want, got) in want_sql.iter().zip(&got_sql) {
            assert!(close(want, got), "{name}: {want:#}\n  answered as\n{got:#}");
        }
        let differences = metric_differences(&want_metrics, &rollup_series(&server).await);
        assert!(differences.is_empty(), "{name}: /metrics: {differences:#?}");
        // The spans are in ClickHouse, not in the data directory.
        assert_eq!(
            parquet_files(dir.path()),
            0,
            "{name}: span parts written locally"
        );
        let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        assert!(
            wal_bytes < 4_096,
            "{name}: {wal_bytes} WAL bytes written locally"
        );

        // Another retention cannot be set from the console: it is the
        // table's TTL, set in loupe.toml.
        let (status, body) = server
            .send_as(
                reqwest::Method::PUT,
                "/api/v1/settings/retention",
                "default",
                Some(r#"{"days": 3}"#),
            )
            .await;
        assert_eq!(status, 409, "{name}: {body}");

        wait_firing(&server, name).await;
        // A restart reads the same spans back from the server.
        server.stop();
        let server = Server::start_with_config(dir.path(), &[], Some(&config)).await;
        let again = spans(&server).await;
        assert_eq!(again, got, "{name}: spans after a restart");
        assert_eq!(
            answers(&server).await,
            want_answers,
            "{name}: answers after a restart"
        );
        // The counters restart with the process (as Prometheus counters
        // do): at zero, not counting the stored spans again.
        let restarted = rollup_series(&server).await;
        let spans_total: Vec<(&String, &f64)> = restarted
            .iter()
            .filter(|(l, _)| l.starts_with("loupe_spans_total{"))
            .collect();
        assert!(
            spans_total.iter().all(|(_, v)| **v == 0.0),
            "{name}: counters after a restart: {spans_total:?}"
        );
        // The alert windows were warmed from ClickHouse: the firing alert
        // stays firing through evaluations after the restart instead of
        // resolving on empty windows.
        wait_firing(&server, name).await;
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        assert_eq!(
            inventory_alert(&server).await.as_deref(),
            Some("firing"),
            "{name}: the alert after a restart"
        );
        let (_, history) = server.get_json("/api/v1/alerts/history").await;
        assert!(
            !history["history"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["state"] == "resolved"),
            "{name}: resolved by the restart: {history}"
        );

        // A CLI that would read the data directory's own store says where
        // the spans are instead of answering from an empty store.
        let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
            .arg("query")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("last 1d | count()")
            .output()
            .expect("run loupe query");
        assert!(!out.status.success(), "{name}: query --data-dir answered");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ClickHouse"), "{name}: {err}");

        // The analytics' past hours are cached over ClickHouse too, and
        // follow later writes: read them (the restarted server caches its
        // hours), add runs into those hours on both servers (the embedded
        // one takes them once: the same runs again change nothing), read
        // again.
        let after_restart = sql_and_analytics(&server, window.0, window.1).await;
        for (want, got) in want_sql.iter().zip(&after_restart) {
            assert!(close(want, got), "{name} after a restart: {got:#}");
        }
        generate(&embedded, 9, 40, &start, false);
        generate(&server, 9, 40, &start, false);
        let want_more = sql_and_analytics(&embedded, window.0, window.1).await;
        let got_more = sql_and_analytics(&server, window.0, window.1).await;
        assert!(
            !close(
                &Value::from(want_more.clone()),
                &Value::from(want_sql.clone())
            ),
            "the runs added change the answers"
        );
        for (want, got) in want_more.iter().zip(&got_more) {
            assert!(
                close(want, got),
                "{name}: after more runs: {want:#}\n  answered as\n{got:#}"
            );
        }
        // The runs landed in hours the tiers counted already: the answers
        // follow on both, and from the rollups still.
        let want_counts = answers(&embedded).await;
        assert_ne!(
            want_counts, want_answers,
            "the runs added change the counts"
        );
        assert_eq!(
            answers(&server).await,
            want_counts,
            "{name}: query answers after more runs"
        );
        let metrics = server.metrics_text().await;
        let hits: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("loupe_analytics_cache_hits_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(hits > 0.0, "{name}: the analytics read no cached hour");
    }
}

/// The Dify path on ClickHouse: `[dify]` in `loupe serve` syncs a run from
/// a real PostgreSQL with Dify's schema into ClickHouse (tags from the
/// run's inputs on every span), and `loupe dify cleanup` with the same
/// config verifies the run in ClickHouse itself, then deletes it from Dify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dify_sync_and_cleanup_on_clickhouse() {
    let peers = crate::clickhouse::peer_urls();
    for (name, url) in peers {
        let (dsn, db, run) = crate::dify_serve::dify_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let config = dir.path().join("loupe.toml");
        let database = format!("loupe_it_{}_dify_{name}", std::process::id());
        std::fs::write(
            &config,
            format!(
                "[store]\nbackend = \"clickhouse\"\nretention_days = 0\n\n\
                 [store.clickhouse]\nurl = \"{url}\"\ndatabase = \"{database}\"\n\n\
                 [dify]\ndsn = \"{dsn}\"\nproject = \"shop\"\ninterval = \"1s\"\n\n\
                 [[tags]]\nname = \"category\"\nfrom = \"input\"\n"
            ),
        )
        .expect("config");
        let server = Server::start_with_config(&data, &[], Some(&config)).await;
        let spans = server.wait_for_trace(&run, "shop").await;
        assert_eq!(spans.len(), 3, "{name}: the run and its two nodes");
        for s in &spans {
            assert_eq!(s["tags"]["category"], "phone", "{name}: {s}");
            assert_eq!(s["source"], "dify_db", "{name}: {s}");
        }
        crate::dify_serve::finished_pass(&server, "shop").await;
        assert_eq!(
            parquet_files(&data),
            0,
            "{name}: span parts written locally"
        );
        server.stop();

        let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
            .args([
                "dify",
                "cleanup",
                "--dsn",
                &dsn,
                "--older-than",
                "1d",
                "--json",
            ])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("loupe dify cleanup");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("verifying against ClickHouse"),
            "{name}: {stderr}"
        );
        for table in ["workflow_runs", "workflow_node_executions"] {
            let left: i64 = db
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count")
                .get(0);
            assert_eq!(
                left,
                0,
                "{name}: {table}: the verified run was deleted: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
