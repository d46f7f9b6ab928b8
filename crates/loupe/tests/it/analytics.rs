//! Conversations through the real server (issue 20): runs pushed over OTLP
//! with their session ids and a business tag from the run input, feedback
//! as a Langfuse score; the API and `loupe analytics` agree on the
//! figures the sessions were built with.

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, assert_ok, encode, otel_span, request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_through_the_api_and_the_cli_recover_the_sessions_built() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("loupe.toml");
    std::fs::write(&config, "[[tags]]\nname = \"category\"\nfrom = \"input\"\n").expect("config");
    let server = Server::start_with_config(&dir.path().join("data"), &[], Some(&config)).await;
    // (trace, session, category, failed): a is left after a failure, b and
    // c are answered at the first turn.
    let turns = [
        (1u128, "a", "phone", false, "alice"),
        (2, "a", "phone", true, "alice"),
        (3, "b", "phone", false, "bob"),
        (4, "c", "laptop", false, "carol"),
    ];
    let mut spans = Vec::new();
    for (trace, session, category, failed, user) in turns {
        let input = format!(r#"{{"category": "{category}"}}"#);
        let mut root = otel_span(
            trace,
            trace as u64 * 100,
            None,
            "workflow",
            &[
                ("input.value", &input),
                ("session.id", session),
                ("user.id", user),
                ("openinference.span.kind", "CHAIN"),
            ],
        );
        if failed {
            root.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
                code: StatusCode::Error as i32,
                message: "upstream timeout".into(),
            });
        }
        spans.push(root);
    }
    assert_eq!(
        server.post_otlp(encode(&request(spans))).await.status(),
        200
    );
    let score = json!({"batch": [{"id": "ev-1", "type": "score-create",
        "timestamp": "2026-11-18T09:00:00Z",
        "body": {"id": "score-1", "name": "user_feedback", "value": 1, "sessionId": "b",
                 "traceId": "00000000000000000000000000000003", "dataType": "NUMERIC"}}]});
    let r = server
        .client
        .post(format!("{}/api/public/ingestion", server.http))
        .json(&score)
        .send()
        .await
        .expect("score");
    assert_eq!(r.status(), 207);

    let body = json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-19T00:00:00Z",
                      "by": "tags.category"});
    let r = server
        .client
        .post(format!("{}/api/v1/analytics/conversations", server.http))
        .json(&body)
        .send()
        .await
        .expect("conversations");
    assert_eq!(r.status(), 200);
    let api: Value = r.json().await.expect("json");
    let total = &api["total"];
    assert_eq!(total["sessions"], 3, "{api:#}");
    assert_eq!(total["turns"], 4);
    assert_eq!(total["ended_sessions"], 3);
    assert_eq!(total["abandoned_sessions"], 1);
    assert_eq!(total["first_turn_resolved"], 2);
    assert_eq!(total["likes"], 1);
    assert_eq!(total["satisfaction_rate"], 1.0);
    let groups = api["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["group"], "phone");
    assert_eq!(groups[0]["sessions"], 2);
    assert_eq!(groups[0]["abandoned_sessions"], 1);
    assert_eq!(groups[1]["group"], "laptop");
    assert_eq!(groups[1]["first_turn_resolved"], 1);

    let r = server
        .client
        .post(format!("{}/api/v1/analytics/conversations", server.http))
        .json(&json!({"by": "user_id"}))
        .send()
        .await
        .expect("bad");
    assert_eq!(r.status(), 422);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args([
            "analytics",
            "conversations",
            "--server",
            &server.http,
            "--from",
            "2026-11-18T00:00:00Z",
            "--to",
            "2026-11-19T00:00:00Z",
            "--by",
            "tags.category",
            "--json",
        ])
        .output()
        .expect("run loupe analytics conversations");
    assert_ok(&out);
    let cli: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        cli["total"], api["total"],
        "the CLI shows the API's figures"
    );
    assert_eq!(cli["groups"], api["groups"]);

    // Users: three new ones; alice left after her failed run; one cohort.
    let r = server
        .client
        .post(format!("{}/api/v1/analytics/users", server.http))
        .json(&json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-19T00:00:00Z"}))
        .send()
        .await
        .expect("users");
    assert_eq!(r.status(), 200);
    let users: Value = r.json().await.expect("json");
    assert_eq!(users["new"]["users"], 3, "{users:#}");
    assert_eq!(users["new"]["runs"], 4);
    assert_eq!(users["returning"]["users"], 0);
    assert_eq!(users["after_failure"]["visits"], 1);
    assert_eq!(users["after_failure"]["returned"], 0);
    assert_eq!(users["after_success"]["visits"], 2);
    assert_eq!(users["retention"][0]["users"], 3);
    assert_eq!(users["retention"][0]["active"][0], 3);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loupe"))
        .args(["analytics", "users", "--server", &server.http])
        .args([
            "--from",
            "2026-11-18T00:00:00Z",
            "--to",
            "2026-11-19T00:00:00Z",
        ])
        .output()
        .expect("run loupe analytics users");
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("after a failure"), "{text}");
    assert!(text.contains("2026-11-18"), "{text}");

    // Relations: every run here lasts 500 ns and costs nothing; bob's liked
    // run has a short answer.
    let r = server
        .client
        .post(format!("{}/api/v1/analytics/relations", server.http))
        .json(&json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-19T00:00:00Z"}))
        .send()
        .await
        .expect("relations");
    assert_eq!(r.status(), 200);
    let rel: Value = r.json().await.expect("json");
    assert_eq!(rel["latency"][0]["runs"], 4, "{rel:#}");
    assert_eq!(rel["latency"][0]["failed"], 1);
    assert_eq!(rel["answer_length"][0]["likes"], 1);
    assert_eq!(rel["cost"][0]["runs"], 4, "no run has a cost");

    // Paths: a's failure ends its path and is what came before it was left.
    let r = server
        .client
        .post(format!("{}/api/v1/analytics/paths", server.http))
        .json(&json!({"from": "2026-11-18T00:00:00Z", "to": "2026-11-19T00:00:00Z", "depth": 2}))
        .send()
        .await
        .expect("paths");
    assert_eq!(r.status(), 200);
    let paths: Value = r.json().await.expect("json");
    assert_eq!(paths["paths"][0]["path"], json!(["ok"]), "{paths:#}");
    assert_eq!(paths["paths"][0]["sessions"], 2);
    assert_eq!(paths["before_leaving"][0]["path"], json!(["ok", "failed"]));
    server.stop();
}
