//! Key management over the API (`/api/v1/keys`, issue 16's settings page)
//! against the real binary: admin scope only, one project's keys only, the
//! secret returned once and usable at once, revocation effective at once,
//! and the refusals that keep a project from locking itself out.

use serde_json::{Value, json};

use crate::security::create_key;
use crate::support::Server;

/// Sends a request with a Basic key pair (or none); (status, JSON body).
async fn call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: Option<&(String, String)>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .client
        .request(method, format!("{}{path}", server.http));
    if let Some(k) = key {
        req = req.basic_auth(&k.0, Some(&k.1));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn public_keys(list: &Value) -> Vec<String> {
    list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["public_key"].as_str().expect("public key").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_key_lists_creates_and_revokes_its_projects_keys_only() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let admin = create_key(data, "shop", "admin");
    let read = create_key(data, "shop", "read");
    let other = create_key(data, "bank", "admin");
    let server = Server::start(data, &[]).await;

    // Listing is an admin's: a read key is refused, naming the scope.
    let (status, body) = call(&server, Method::GET, "/api/v1/keys", Some(&read), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("admin"));
    let (status, list) = call(&server, Method::GET, "/api/v1/keys", Some(&admin), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(public_keys(&list), [admin.0.clone(), read.0.clone()]);
    let text = list.to_string();
    assert!(
        !text.contains("sha256") && !text.contains(&admin.1),
        "{text}"
    );
    assert_eq!(list["keys"][1]["scope"], "read");
    assert_eq!(list["keys"][1]["source"], "keys_json");

    // Create: the secret comes back once and works at once.
    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/keys",
        Some(&admin),
        Some(json!({"scope": "ingest"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["project"], "shop");
    let new_key = (
        created["public_key"].as_str().expect("pk").to_owned(),
        created["secret_key"].as_str().expect("sk").to_owned(),
    );
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/public/projects",
        Some(&new_key),
        None,
    )
    .await;
    assert_eq!(status, 200, "the new key is accepted without waiting");
    let stored = std::fs::read_to_string(data.join("keys.json")).expect("keys.json");
    assert!(!stored.contains(&new_key.1), "only the hash is stored");
    let (_, list) = call(&server, Method::GET, "/api/v1/keys", Some(&admin), None).await;
    assert!(
        !list.to_string().contains(&new_key.1),
        "listing never shows it again"
    );

    // Bad bodies are 400s naming the problem.
    for (body, needle) in [
        (json!({"scope": "root"}), "unknown scope"),
        (json!({"scope": "read", "project": "bank"}), "unknown field"),
        (json!({}), "scope"),
    ] {
        let (status, answer) = call(
            &server,
            Method::POST,
            "/api/v1/keys",
            Some(&admin),
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.to_string().contains(needle),
            "{answer} should name {needle}"
        );
    }

    // Another project's key is not this project's to see or revoke.
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/keys/{}", other.0),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, Method::GET, "/api/v1/keys", Some(&other), None).await;
    assert_eq!(status, 200);

    // Revoking takes effect at once.
    let (status, body) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/keys/{}", new_key.0),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/public/projects",
        Some(&new_key),
        None,
    )
    .await;
    assert_eq!(status, 401, "the revoked key is refused without waiting");

    // The last admin key of a project cannot be revoked from the API.
    let (status, body) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/keys/{}", admin.0),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("last admin key")
    );
    // With a second admin key, it can.
    let (_, second) = call(
        &server,
        Method::POST,
        "/api/v1/keys",
        Some(&admin),
        Some(json!({"scope": "admin"})),
    )
    .await;
    let second = (
        second["public_key"].as_str().expect("pk").to_owned(),
        second["secret_key"].as_str().expect("sk").to_owned(),
    );
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/keys/{}", admin.0),
        Some(&second),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = call(&server, Method::GET, "/api/v1/keys", Some(&second), None).await;
    assert_eq!(public_keys(&list), [read.0.clone(), second.0.clone()]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn in_open_mode_the_first_key_created_must_be_an_admin_key_and_closes_the_server() {
    use reqwest::Method;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let (status, list) = call(&server, Method::GET, "/api/v1/keys", None, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["enforced"], false);
    assert_eq!(list["keys"], json!([]));
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/keys",
        None,
        Some(json!({"scope": "read"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("admin"));
    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/keys",
        None,
        Some(json!({"scope": "admin"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["project"], "default");
    // Keys are required from now on.
    let (status, _) = call(&server, Method::GET, "/api/v1/keys", None, None).await;
    assert_eq!(status, 401);
    let key = (
        created["public_key"].as_str().expect("pk").to_owned(),
        created["secret_key"].as_str().expect("sk").to_owned(),
    );
    let (status, list) = call(&server, Method::GET, "/api/v1/keys", Some(&key), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["enforced"], true);
    assert_eq!(public_keys(&list), [key.0]);
    server.stop();
}
