//! The web console (`loupe-console`) on the API's HTTP port, and its
//! sign-in: `GET /`, `/runs`, `/runs/{id}`, … answer the console's page
//! (the browser routes from there, so deep links work);
//! `/assets/{version}/{path}` its files; `/api/v1/session` signs the
//! console in with an API key (`POST`, sets the session cookie), says who
//! is signed in (`GET`) and signs out (`DELETE`).
//!
//! These routes sit outside the auth middleware: the page and its files
//! are the same for everyone and hold no data, and the session endpoints
//! authenticate for themselves (see [`crate::auth`]'s console sessions).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{AuthError, SESSION_COOKIE, SESSION_TTL, session_cookie};
use crate::{ApiError, AppState};

/// Page paths the browser-side router handles.
const PAGES: &[&str] = &[
    "/",
    "/overview",
    "/runs",
    "/runs/{id}",
    "/sessions",
    "/sessions/{id}",
    "/users",
    "/users/{id}",
    "/alerts",
    "/dify",
    "/settings",
    "/rca",
    "/analytics",
    "/logs",
    "/login",
];

pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for path in PAGES {
        router = router.route(path, get(page));
    }
    router
        .route("/assets/{version}/{*path}", get(asset))
        .route("/api/v1/session", get(whoami).post(login).delete(logout))
}

/// Content-Security-Policy of the page: everything from this origin, no
/// inline script, nothing from anywhere else.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
}

async fn page() -> Response {
    let mut resp = loupe_console::index_html().into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page names the current build's assets: always revalidate it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    secure_headers(headers);
    resp
}

async fn asset(Path((version, path)): Path<(String, String)>, req: HeaderMap) -> Response {
    let Some(asset) = loupe_console::asset(&path) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no console asset {path:?}"))
            .into_response();
    };
    let current = version == loupe_console::version();
    let etag = format!("\"{}-{}\"", loupe_console::version(), asset.path.len());
    if req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return resp;
    }
    let mut resp = Body::from(asset.bytes).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // A versioned URL never changes content; an old version's URL gets the
    // current file, which must not be cached under it.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if current {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    secure_headers(headers);
    resp
}

/// `GET /api/v1/session`: whether keys are enforced and, if so, whether
/// this request is signed in and to which project. Always 200, so the
/// console can ask before it has a session.
async fn whoami(State(state): State<AppState>, method: Method, headers: HeaderMap) -> Response {
    let enforced = state.auth.enforced();
    let body = match state.auth.resolve_request(&method, &headers) {
        Ok(who) => json!({
            "enforced": enforced,
            "authenticated": true,
            "project": who.project.as_str(),
            "scope": who.scope,
            "via": if !enforced { "open" } else if session_cookie(&headers).is_some()
                && !headers.contains_key(header::AUTHORIZATION) { "session" } else { "key" },
        }),
        Err(AuthError::BadProject(m)) => return ApiError::bad_request(m).into_response(),
        Err(_) => json!({"enforced": enforced, "authenticated": false, "project": null}),
    };
    no_store(Json(body).into_response())
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// `pk-lf-…`; optional: the secret key alone is enough.
    public_key: Option<String>,
    /// `sk-lf-…`.
    secret_key: String,
}

fn cookie(value: &str, max_age: u64, headers: &HeaderMap, tls: bool) -> Option<HeaderValue> {
    // Over TLS (Loupe's own, or a terminating proxy's) the cookie must not
    // travel in clear.
    let secure = tls
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    ))
    .ok()
}

/// `POST /api/v1/session` with `{"public_key"?, "secret_key"}`: a valid key
/// opens a console session (cookie) on its project; a wrong one is a 401.
/// In open mode (no keys) there is nothing to sign in to.
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some((token, who)) = state
        .auth
        .login(body.public_key.as_deref(), &body.secret_key)?
    else {
        return Ok(no_store(
            Json(json!({"enforced": false, "authenticated": true, "project": "default", "scope": "admin"}))
                .into_response(),
        ));
    };
    let mut resp = Json(json!({
        "enforced": true,
        "authenticated": true,
        "project": who.project.as_str(),
        "scope": who.scope,
    }))
    .into_response();
    if let Some(c) = cookie(&token, SESSION_TTL.as_secs(), &headers, state.config.tls) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(no_store(resp))
}

/// `DELETE /api/v1/session`: ends the session and clears the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_cookie(&headers) {
        state.auth.logout(token);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = cookie("", 0, &headers, state.config.tls) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_behind_tls() {
        let plain = cookie("tok", 60, &HeaderMap::new(), false).expect("cookie");
        assert_eq!(
            plain.to_str().expect("ascii"),
            "loupe_session=tok; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = cookie("tok", 0, &proxied, false).expect("cookie");
        assert!(secure.to_str().expect("ascii").ends_with("; Secure"));
    }
}
