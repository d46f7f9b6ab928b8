//! Classifier cases (message and class → kind and signature), bounds, the
//! span enrichment, and the recorded Dify errors.

use loupe_model::{ERROR_SIGNATURE, Span, Status};

use super::*;

/// One case: message and class in, kind and signature out.
fn check(message: &str, class: Option<&str>, kind: &str, sig: &str) {
    let got_kind = classify(Some(message), class);
    assert_eq!(got_kind, kind, "kind of {message:?} (class {class:?})");
    assert_eq!(
        signature(&got_kind, message),
        sig,
        "signature of {message:?}"
    );
}

#[test]
fn messages_get_a_kind_and_a_normalised_signature() {
    check(
        "Inventory API timeout after 10s for sku SKU-1234",
        None,
        "timeout",
        "timeout: Inventory API timeout after <n>s for sku <id>",
    );
    check(
        "[Errno 111] Connection refused",
        None,
        "connection",
        "connection: [Errno <n>] Connection refused",
    );
    check(
        "[openai] Rate Limit Error, Error code: 429 - Rate limit reached for requests",
        Some("InvokeRateLimitError"),
        "rate_limit",
        "rate_limit: [openai] Rate Limit Error, Error code: <n> - Rate limit reached for requests",
    );
    check(
        "Request failed with status code 503: Service Unavailable",
        None,
        "http_503",
        "http_503: Request failed with status code <n>: Service Unavailable",
    );
    check(
        "Request to vector database failed: HTTP 500 Internal Server Error from http://weaviate:8080/v1/graphql",
        Some("KnowledgeRetrievalNodeError"),
        "http_500",
        "http_500: Request to vector database failed: HTTP <n> Internal Server Error from <url>",
    );
    check(
        "payment gateway declined: HTTP 402 card_declined",
        None,
        "http_402",
        "http_402: payment gateway declined: HTTP <n> card_declined",
    );
    check(
        "Variable 'sys.query' can't be empty for user alice@example.com at 2026-01-01T10:00:00Z",
        None,
        "error",
        "error: Variable <value> can't be empty for user <email> at <time>",
    );
    check(
        "Run 3f2b8c1e-8d2a-4c55-9a7e-1b2c3d4e5f60 cancelled by user",
        None,
        "cancelled",
        "cancelled: Run <uuid> cancelled by user",
    );
    check(
        "Anthropic API overloaded (529), trace deadbeef0123456789abcdef",
        None,
        "overloaded",
        "overloaded: Anthropic API overloaded (<n>), trace <hash>",
    );
    check(
        "You exceeded your current quota, please check your plan and billing details.",
        None,
        "quota",
        "quota: You exceeded your current quota, please check your plan and billing details.",
    );
    check(
        "Traceback (most recent call last): ZeroDivisionError: division by zero",
        Some("CodeNodeError"),
        "code_error",
        "code_error: Traceback (most recent call last): ZeroDivisionError: division by zero",
    );
    check(
        "Invalid parameter \"limit\": must be at most 100",
        None,
        "validation",
        "validation: Invalid parameter <value>: must be at most <n>",
    );
    check(
        "Incorrect API key provided: sk-abc123",
        None,
        "auth",
        "auth: Incorrect API key provided: <id>",
    );
    check(
        "This model's maximum context length is 8192 tokens",
        None,
        "context_length",
        "context_length: This model's maximum context length is <n> tokens",
    );
    // Chinese text keeps its words; only the numbers go.
    check(
        "库存服务超时 5 秒",
        None,
        "error",
        "error: 库存服务超时 <n> 秒",
    );
    check(
        "库存服务请求超时5秒 timeout",
        None,
        "timeout",
        "timeout: 库存服务请求超时<n>秒 timeout",
    );
}

#[test]
fn occurrences_of_one_failure_share_a_signature_and_different_failures_do_not() {
    let sig = |m: &str| signature(&classify(Some(m), None), m);
    assert_eq!(
        sig("Inventory API timeout after 10s for sku SKU-1234"),
        sig("Inventory API timeout after 12s for sku SKU-99")
    );
    assert_eq!(
        sig("order 8812 not found (request id 0a1b2c3d4e5f)"),
        sig("order 17 not found (request id ffee00112233)")
    );
    assert_ne!(
        sig("inventory service timed out after 5s"),
        sig("payment gateway declined: HTTP 402 card_declined")
    );
    assert_ne!(
        sig("logistics API returned HTTP 502 Bad Gateway"),
        sig("logistics API returned HTTP 503 Service Unavailable")
    );
}

#[test]
fn signatures_are_bounded_whatever_the_message() {
    let long = "word ".repeat(100_000);
    let sig = signature("error", &long);
    assert!(sig.chars().count() <= MAX_SIGNATURE_CHARS + "error: …".len());
    assert!(sig.ends_with('…'));
    // Cutting inside a multi-byte character never panics.
    let wide = "超".repeat(5_000);
    assert!(signature("error", &wide).ends_with('…'));
    assert_eq!(signature("error", ""), "error: ");
}

#[test]
fn enrich_fills_the_class_only_when_the_source_gave_none() {
    let mut dify_db = Span::new("p", "a");
    dify_db.status = Some(Status::Error);
    dify_db.error_message = Some("[Errno 111] Connection refused".into());
    enrich(&mut dify_db);
    assert_eq!(dify_db.error_class.as_deref(), Some("connection"));
    assert_eq!(
        dify_db.attributes.get(ERROR_SIGNATURE).map(String::as_str),
        Some("connection: [Errno <n>] Connection refused")
    );

    let mut otlp = Span::new("p", "b");
    otlp.status = Some(Status::Error);
    otlp.error_class = Some("ToolInvokeError".into());
    otlp.error_message = Some("inventory service timed out after 5s".into());
    enrich(&mut otlp);
    assert_eq!(otlp.error_class.as_deref(), Some("ToolInvokeError"));
    assert_eq!(
        otlp.attributes.get(ERROR_SIGNATURE).map(String::as_str),
        Some("timeout: inventory service timed out after <n>s")
    );

    let mut class_only = Span::new("p", "c");
    class_only.status = Some(Status::Error);
    class_only.error_class = Some("http_500".into());
    enrich(&mut class_only);
    assert_eq!(
        class_only
            .attributes
            .get(ERROR_SIGNATURE)
            .map(String::as_str),
        Some("http_500: http_500")
    );

    let mut ok = Span::new("p", "d");
    ok.status = Some(Status::Ok);
    ok.error_message = Some("handled by a fail branch".into());
    enrich(&mut ok);
    assert!(ok.error_class.is_none() && ok.attributes.is_empty());

    let mut bare = Span::new("p", "e");
    bare.status = Some(Status::Error);
    enrich(&mut bare);
    assert!(bare.error_class.is_none() && bare.attributes.is_empty());
}

/// The errors of the recorded Dify run (Langfuse provider, failed HTTP
/// node): every occurrence gets one class and one signature.
#[test]
fn the_recorded_dify_errors_group_into_one_signature() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/dify-1.14.1/dify_langfuse_workflow_failed_http.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture (../shared/fixtures)");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut messages = Vec::new();
    for req in doc["requests"].as_array().expect("requests") {
        for event in req["body"]["batch"].as_array().into_iter().flatten() {
            if let Some(m) = event["body"]["statusMessage"].as_str() {
                messages.push(m.to_owned());
            }
        }
    }
    assert!(messages.len() >= 2, "the fixture has several failed events");
    let sigs: std::collections::BTreeSet<String> = messages
        .iter()
        .map(|m| signature(&classify(Some(m), None), m))
        .collect();
    assert_eq!(
        sigs.into_iter().collect::<Vec<_>>(),
        vec!["connection: [Errno <n>] Connection refused".to_owned()]
    );
}
