//! Root-cause analysis end to end: a generated day with an injected cause
//! (inventory calls of phone runs time out from 12:00 to 18:00) written
//! with `loupe gen`, then the same analysis through `POST /api/v1/rca`,
//! `loupe rca` against the server and `loupe rca --data-dir` beside it:
//! the cause is the top finding everywhere, and bad requests are 4xx
//! naming the problem.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::Server;

const FROM: &str = "2026-01-01T12:00:00Z";
const TO: &str = "2026-01-01T18:00:00Z";

fn loupe(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(args)
        .output()
        .expect("run loupe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn top_conditions(report: &Value) -> Vec<(String, String)> {
    report["findings"][0]["conditions"]
        .as_array()
        .unwrap_or_else(|| panic!("no finding: {report:#}"))
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or_default().to_owned(),
                c["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_analysis_through_the_api_and_the_cli_finds_the_injected_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let (ok, _, err) = loupe(&[
        "gen",
        "--seed",
        "5",
        "--runs",
        "3000",
        "--start",
        "2026-01-01T00:00:00Z",
        "--data-dir",
        data,
        "--fault",
        &format!("tool=inventory,category=phone,from={FROM},to={TO},error_rate=0.9"),
    ]);
    assert!(ok, "loupe gen: {err}");
    // The data is from January: kept forever, so that the hour rollups
    // (which answer inside the retention window only) answer.
    let config = dir.path().join("loupe.toml");
    std::fs::write(&config, "[store]\nretention_days = 0\n").expect("config");
    let server = Server::start_with_config(dir.path(), &[], Some(&config)).await;

    let resp = server
        .client
        .post(format!("{}/api/v1/rca", server.http))
        .json(&json!({"from": FROM, "to": TO}))
        .send()
        .await
        .expect("rca");
    assert_eq!(resp.status().as_u16(), 200);
    let api: Value = resp.json().await.expect("json");
    let conds = top_conditions(&api);
    assert!(
        conds.contains(&("tool_name".into(), "inventory".into()))
            && conds.contains(&("tags.category".into(), "phone".into())),
        "{api:#}"
    );
    // The joint tables come from the hour rollups: `category` is a label,
    // `tier` a tag the rules of `loupe gen` made, kept by the hour tier
    // though this server has no rules of its own.
    assert_eq!(api["stats"]["from_rollups"], 4, "{:#}", api["stats"]);
    assert!(
        api["dimensions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d == "tags.tier")),
        "{api:#}"
    );
    let (status, settings) = server.get_json("/api/v1/settings").await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        settings["metrics"]["hour_tags"],
        json!(["workspace", "tier"]),
        "{settings:#}"
    );
    let sentence = api["findings"][0]["sentence"].as_str().expect("sentence");
    assert!(
        api["headline"]
            .as_str()
            .expect("headline")
            .contains(sentence)
    );

    // The CLI against the server prints the same finding.
    let (ok, out, err) = loupe(&["rca", "--server", &server.http, "--from", FROM, "--to", TO]);
    assert!(ok, "loupe rca: {err}");
    assert!(out.contains(sentence), "{out}");
    assert!(out.contains("path: "), "exemplar paths are shown: {out}");

    // And straight from the data directory, read-only beside the server.
    let (ok, out, err) = loupe(&[
        "rca",
        "--data-dir",
        data,
        "--from",
        FROM,
        "--to",
        TO,
        "--json",
    ]);
    assert!(ok, "loupe rca --data-dir: {err}");
    let local: Value = serde_json::from_str(&out).expect("--json");
    assert_eq!(top_conditions(&local), conds);

    // Bad requests say what is wrong.
    let bad = |body: Value| {
        let client = server.client.clone();
        let url = format!("{}/api/v1/rca", server.http);
        async move {
            let resp = client.post(url).json(&body).send().await.expect("rca");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = bad(json!({"target": "statu=error", "last": "1h"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field `statu`"),
        "{body}"
    );
    let (status, body) = bad(json!({"last": "1h", "from": FROM})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = bad(json!({"window": "1h"})).await;
    assert_eq!(status, 400, "unknown fields are refused");
    let (ok, _, err) = loupe(&[
        "rca",
        "status=error | by tool_name",
        "--server",
        &server.http,
    ]);
    assert!(!ok && err.contains("filter only"), "{err}");
    server.stop();
}
