//! `loupe query` and `loupe sql` end to end: the same questions asked of a
//! running server and of its data directory (read-only, while the server
//! runs, including data only in its WAL) give the same answers; `--output`
//! files parse back; query errors show the caret and exit 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use serde_json::Value;

use crate::support::Server;

const NOW: &str = "2026-01-03T00:00:00Z";

/// Questions covering listings, groups, percentiles, run filters and text.
const QUERIES: &[&str] = &[
    "last 3d | by node_type | count(), p95(duration), error_rate()",
    "last 3d status=error | by tool_name, tags.category | count() | sort count() desc",
    "last 3d tool_name=inventory | sort span_id | limit 15",
    "last 3d run has (tool_name=inventory status=error) node_type=llm | count(), sum(total_tokens)",
    "last 3d \"timed out\" | by bucket(6h) | count()",
];

fn loupe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .env_remove("LOUPE_SERVER")
        .env_remove("LOUPE_PUBLIC_KEY")
        .env_remove("LOUPE_SECRET_KEY")
        .output()
        .expect("run loupe")
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "loupe failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn generate(args: &[&str]) {
    let fault = "tool=inventory,category=phone,error_rate=1,latency=1s";
    let mut all = vec!["gen", "--fault", fault];
    all.extend_from_slice(args);
    stdout_of(&loupe(&all));
}

/// `(server flags, data-dir flags)` for the same data.
fn targets<'a>(server: &'a str, data: &'a str) -> [Vec<&'a str>; 2] {
    [vec!["--server", server], vec!["--data-dir", data]]
}

fn query(target: &[&str], q: &str, extra: &[&str]) -> Output {
    loupe(&[&["query", q, "--now", NOW][..], target, extra].concat())
}

/// Columns and rows of a `--json` answer (stats differ between runs).
fn answer(out: &Output) -> (Value, Value) {
    let v: Value = serde_json::from_str(&stdout_of(out)).expect("json answer");
    (v["columns"].clone(), v["rows"].clone())
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::metadata(&path).expect("metadata");
            out.insert(path.clone(), (meta.len(), meta.modified().expect("mtime")));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_data_dir_give_the_same_answers_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    generate(&[
        "--seed",
        "9",
        "--runs",
        "40",
        "--start",
        "2026-01-01T00:00:00Z",
        "--data-dir",
        data_arg,
    ]);
    let server = Server::start(&data, &[]).await;
    // More runs through the server: they sit in its WAL and memtable.
    generate(&[
        "--seed",
        "10",
        "--runs",
        "15",
        "--start",
        "2026-01-01T12:00:00Z",
        "--otlp",
        &server.http,
    ]);
    let total = server.all_spans().await.len();
    let http = server.http.clone();
    let [remote, local] = targets(&http, data_arg);
    for q in QUERIES {
        let a = query(&remote, q, &[]);
        let b = query(&local, q, &[]);
        assert_eq!(stdout_of(&a), stdout_of(&b), "tables differ for {q}");
        let (ja, jb) = (
            answer(&query(&remote, q, &["--json"])),
            answer(&query(&local, q, &["--json"])),
        );
        assert_eq!(ja, jb, "JSON differs for {q}");
        assert!(
            ja.1.as_array().is_some_and(|r| !r.is_empty()),
            "{q} matched nothing"
        );
    }
    let count = |target: &[&str]| {
        let (_, rows) = answer(&query(target, "last 3d | count()", &["--json"]));
        rows[0][0].as_u64().expect("count") as usize
    };
    assert_eq!(count(&remote), total, "server sees every span");
    assert_eq!(count(&local), total, "the data dir view includes the WAL");
    let sql =
        "SELECT span_kind, count(*) AS n FROM spans GROUP BY span_kind ORDER BY n DESC, span_kind";
    let a = stdout_of(&loupe(&[&["sql", sql][..], &remote].concat()));
    let b = stdout_of(&loupe(&[&["sql", sql][..], &local].concat()));
    assert_eq!(a, b, "SQL tables differ");
    assert!(a.starts_with("span_kind"), "{a}");
    server.stop();
    // With no server, a read-only query leaves every file as it was.
    let before = snapshot(&data);
    stdout_of(&query(&local, QUERIES[0], &[]));
    assert_eq!(before, snapshot(&data), "the data directory changed");
}

fn parquet_rows(path: &Path) -> usize {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).expect("open parquet");
    let reader = SerializedFileReader::new(file).expect("parquet file");
    usize::try_from(reader.metadata().file_metadata().num_rows()).expect("rows")
}

fn check_exports(target: &[&str], out_dir: &Path, q: &str, expected: usize) {
    let csv = out_dir.join("a.csv");
    let jsonl = out_dir.join("a.jsonl");
    let parquet = out_dir.join("a.parquet");
    for path in [&csv, &jsonl, &parquet] {
        let path = path.to_str().expect("utf-8 path");
        if target.first() == Some(&"sql") {
            stdout_of(&loupe(&[target, &["--output", path][..]].concat()));
        } else {
            stdout_of(&query(target, q, &["--output", path]));
        }
    }
    let text = std::fs::read_to_string(&csv).expect("csv");
    assert_eq!(text.lines().count(), expected + 1, "csv: header + rows");
    let lines = std::fs::read_to_string(&jsonl).expect("jsonl");
    for line in lines.lines() {
        let row: Value = serde_json::from_str(line).expect("a JSON object per line");
        assert!(row.is_object());
    }
    assert_eq!(lines.lines().count(), expected, "jsonl rows");
    assert_eq!(parquet_rows(&parquet), expected, "parquet rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_files_parse_back_from_both_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    generate(&[
        "--seed",
        "3",
        "--runs",
        "50",
        "--start",
        "2026-01-01T00:00:00Z",
        "--data-dir",
        data_arg,
    ]);
    let server = Server::start(&data, &[]).await;
    let http = server.http.clone();
    let [remote, local] = targets(&http, data_arg);
    // A listing without `limit`: exports take every row, not the first 100.
    let q = "last 3d node_type=llm OR node_type=tool";
    let (_, rows) = answer(&query(&local, &format!("{q} | count()"), &["--json"]));
    let expected = rows[0][0].as_u64().expect("count") as usize;
    assert!(expected > 100, "enough rows to pass the listing default");
    for target in [&remote, &local] {
        check_exports(target, dir.path(), q, expected);
    }
    let sql = "SELECT span_id, duration, start_time, tags FROM spans WHERE node_type = 'llm'";
    let (_, rows) = answer(&query(
        &local,
        "last 3d node_type=llm | count()",
        &["--json"],
    ));
    let llm = rows[0][0].as_u64().expect("count") as usize;
    for target in [&remote, &local] {
        check_exports(&[&["sql", sql][..], target].concat(), dir.path(), "", llm);
    }
    let bad = query(&local, q, &["--output", "/tmp/answer.xlsx"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains(".csv, .jsonl or .parquet"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_show_the_caret_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8 path");
    generate(&[
        "--seed",
        "4",
        "--runs",
        "3",
        "--start",
        "2026-01-01T00:00:00Z",
        "--data-dir",
        data_arg,
    ]);
    let server = Server::start(&data, &[]).await;
    let http = server.http.clone();
    let [remote, local] = targets(&http, data_arg);
    for target in [&remote, &local] {
        let out = query(target, "status=error AND (tool_name=inventory", &[]);
        assert_eq!(out.status.code(), Some(2), "{target:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected `)`"), "{err}");
        assert!(err.contains('^'), "caret drawn: {err}");
        assert!(out.stdout.is_empty());
        let out = query(target, "tool_nme=inventory", &[]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("did you mean `tool_name`?"), "{err}");
        let out = loupe(&[&["sql", "DROP TABLE spans"][..], target].concat());
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("read-only query"), "{err}");
    }
    server.stop();
    // No server: exit 1 and say what to do.
    let out = query(&["--server", &server_gone()], "count()", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir"));
    let missing = dir.path().join("missing");
    let out = query(
        &["--data-dir", missing.to_str().expect("utf-8")],
        "count()",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check --data-dir"));
    assert!(!missing.exists(), "a read-only query creates nothing");
}

/// A loopback URL nothing listens on.
fn server_gone() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
