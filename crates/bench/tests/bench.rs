//! `loupe-bench` end to end at a tiny scale against the test PostgreSQL:
//! every question's answers must match on both sides (the command fails
//! otherwise) and the report must be written.

use std::process::Command;

fn pg_url() -> String {
    match std::env::var("LOUPE_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "LOUPE_TEST_PG_URL is not set: run `eval \"$(bash scripts/peers/postgres.sh)\"` first \
             (it starts a private PostgreSQL and prints the URL)"
        ),
    }
}

#[test]
fn bench_answers_match_on_both_sides_at_a_tiny_scale() {
    let url = pg_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let report = dir.path().join("BENCHMARKS.md");
    let schema = format!("loupe_bench_it_{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_loupe-bench"))
        .args(["--runs", "200", "--reps", "1", "--pg-dsn", &url])
        .args(["--pg-schema", &schema])
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&report)
        .output()
        .expect("run loupe-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "loupe-bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("MISMATCH"), "{stderr}");
    let text = std::fs::read_to_string(&report).expect("report written");
    for question in [
        "success rate by category",
        "avg and p95 per tool per hour",
        "errors by node type",
        "retrieval failed",
        "inventory took > 1 s",
        "inventory and payment both failed",
        "by user tier",
        "refund",
        "tokens and cost per model per day",
        "one run with all its nodes",
        "Dify logs page",
    ] {
        let row = text
            .lines()
            .find(|l| l.starts_with("| ") && l.contains(question))
            .unwrap_or_else(|| panic!("no row for {question:?} in\n{text}"));
        assert!(row.ends_with("| yes |"), "answers differ: {row}");
    }
    assert!(text.contains("storage: PostgreSQL"), "{text}");
}
