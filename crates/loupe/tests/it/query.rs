//! `POST /api/v1/query` and `/api/v1/sql` against the real binary: answers,
//! the JSON form, errors with positions and suggestions, read-only SQL with
//! its time limit, and exports that parse back.

use serde_json::{Value, json};

use crate::support::{Server, encode, otel_span, request};

/// After every test span (they start at 1_795_000_000 s).
const NOW: i64 = 1_795_000_100_000_000_000;

async fn seeded(config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("loupe.toml");
    std::fs::write(&path, config).expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&path)).await;
    let tools = ["inventory", "payment", "coupon"];
    let spans = (0..30u64)
        .map(|i| {
            otel_span(
                7,
                100 + i,
                None,
                tools[(i % 3) as usize],
                &[
                    ("openinference.span.kind", "TOOL"),
                    ("tool.name", tools[(i % 3) as usize]),
                ],
            )
        })
        .collect();
    let r = server.post_otlp(encode(&request(spans))).await;
    assert!(r.status().is_success());
    (dir, server)
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, reqwest::Response) {
    let r = server
        .client
        .post(format!("{}{path}", server.http))
        .json(&body)
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r)
}

async fn post_json(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let (status, r) = post(server, path, body).await;
    (status, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_in_text_and_json_form_and_errors_point_at_the_text() {
    let (_dir, server) = seeded("").await;
    let (status, body) = post_json(
        &server,
        "/api/v1/query",
        json!({"q": "span_kind=tool | by tool_name | count() as n | sort tool_name", "now": NOW}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["columns"][0]["name"], "tool_name");
    assert_eq!(
        body["rows"],
        json!([["coupon", 10], ["inventory", 10], ["payment", 10]])
    );
    assert!(body["stats"]["elapsed_ms"].is_u64(), "{body}");

    let (status, body) = post_json(
        &server,
        "/api/v1/query",
        json!({"query": {"filter": {"op": "=", "field": "tool_name", "value": "payment"},
                         "aggregates": [{"fn": "count"}]}, "now": NOW}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[10]]));

    let (status, body) = post_json(&server, "/api/v1/query", json!({"q": "(status=error"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["span"], json!([13, 13]));
    assert!(body["rendered"].as_str().is_some_and(|r| r.contains('^')));

    let (status, body) = post_json(
        &server,
        "/api/v1/query",
        json!({"q": "status=error tool_nme=x"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["span"], json!([13, 21]));
    assert_eq!(body["suggestion"], "did you mean `tool_name`?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_read_only_and_time_limited() {
    let (_dir, server) = seeded("[query]\ntimeout = \"300ms\"\n").await;
    let (status, body) = post_json(
        &server,
        "/api/v1/sql",
        json!({"sql": "SELECT tool_name, count(*) AS n FROM spans GROUP BY tool_name ORDER BY tool_name"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0], json!(["coupon", 10]));
    for bad in [
        "DROP TABLE spans",
        "INSERT INTO spans SELECT * FROM spans",
        "SELECT 1; SELECT 2",
    ] {
        let (status, body) = post_json(&server, "/api/v1/sql", json!({"sql": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = post_json(
        &server,
        "/api/v1/sql",
        json!({"sql": "SELECT count(*) FROM generate_series(1, 20000000000) a WHERE a.value % 7 = 3"}),
    )
    .await;
    assert_eq!(status, 408, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_csv_json_lines_and_parquet_that_parse_back() {
    let (_dir, server) = seeded("").await;
    let q = json!({"q": "tool_name=inventory | sort span_id", "now": NOW});
    let (status, r) = post(&server, "/api/v1/query?format=csv", q.clone()).await;
    assert_eq!(status, 200);
    let text = r.text().await.expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert!(header.contains(&"span_id") && header.contains(&"tool_name"));
    assert_eq!(lines.count(), 10);

    let (status, r) = post(&server, "/api/v1/query?format=jsonl", q.clone()).await;
    assert_eq!(status, 200);
    let text = r.text().await.expect("jsonl");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r["tool_name"] == "inventory"));

    let (status, r) = post(&server, "/api/v1/query?format=parquet", q).await;
    assert_eq!(status, 200);
    let bytes = r.bytes().await.expect("parquet");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet file")
        .build()
        .expect("reader");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 10);
}
