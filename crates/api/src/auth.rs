//! Projects and API keys: who may call Loupe, and which project a request
//! acts on.
//!
//! # Keys
//!
//! A key is a Langfuse-style pair: a public key `pk-lf-<uuid>` and a secret
//! key `sk-lf-<uuid>`, bound to one project. Only the SHA-256 of the secret
//! is stored (`sha256:<hex>`; the secret is 122 random bits, so an unsalted
//! fast hash is safe, as for GitHub tokens). Keys come from the config
//! (`[[auth.keys]]`) and from `keys.json` in the data directory, which
//! `loupe keys create` writes (temp file + rename) while the server runs or
//! not: the server re-reads the file when its size or mtime changes,
//! checked at most once a second and on every authentication miss.
//!
//! # Credentials
//!
//! - `Authorization: Basic base64(pk:sk)`: Langfuse SDKs, Dify's Langfuse
//!   provider, any HTTP client.
//! - `Authorization: Bearer <sk>` or `Bearer <pk>:<sk>`: OTLP senders with a
//!   single API key field (Dify's Phoenix/Arize providers send
//!   `authorization: Bearer <api_key>`; give them the secret key).
//! - `api_key: <sk>` header (Phoenix/Arize also send it) when no
//!   `Authorization` header is present.
//!
//! # Policy
//!
//! [`AuthMode::Auto`] (default): while no key exists, every request is served
//! openly on the `default` project, or the project named by the
//! `x-loupe-project` header; as soon as one key exists every endpoint except
//! `/healthz`, `/readyz` (and `/metrics` when `metrics_public`) needs a valid
//! key, and the key decides the project (`x-loupe-project` is ignored).
//! [`AuthMode::Required`] needs keys even before the first one exists.
//! A missing or wrong key is a 401 with a JSON message.
//!
//! # Console sessions
//!
//! The web console signs in once with a key (`POST /api/v1/session`,
//! [`Auth::login`]) and gets an opaque random token in an `HttpOnly`,
//! `SameSite=Strict` cookie ([`SESSION_COOKIE`]); the token maps to the
//! key's project, in memory only (a restart signs everyone out). A request
//! with no `Authorization`/`api_key` header and that cookie acts on that
//! project while the session is younger than [`SESSION_TTL`] and its key
//! still exists (revoking the key ends its sessions). Unsafe methods
//! (`POST`, `DELETE`, …) on the cookie also need the [`CONSOLE_HEADER`]
//! header, which a cross-site form cannot send.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use loupe_model::ProjectId;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// Name of the key file in the data directory.
pub const KEYS_FILE: &str = "keys.json";

/// How often the key file is checked for changes at most.
const RECHECK: Duration = Duration::from_secs(1);

/// Name of the console's session cookie.
pub const SESSION_COOKIE: &str = "loupe_session";

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Header the console sends with every request; required for unsafe
/// methods authenticated by the session cookie (cross-site request
/// forgery defence beside `SameSite=Strict`).
pub const CONSOLE_HEADER: &str = "x-loupe-console";

/// Live console sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// A console session: the project and the key it was opened with.
struct Session {
    project: ProjectId,
    key_hash: [u8; 32],
    expires: Instant,
}

/// When keys are required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Open (default project) while no key exists; keys required once one does.
    #[default]
    Auto,
    /// Keys always required.
    Required,
}

/// One API key as stored (config or `keys.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The project the key acts on.
    pub project: String,
    /// Public key (`pk-lf-…`), sent as the Basic user name.
    pub public_key: String,
    /// `sha256:<hex>` of the secret key.
    pub secret_key_hash: String,
    /// When the key was created (RFC 3339), informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The `keys.json` document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeysFile {
    /// Format version (1).
    pub version: u32,
    /// The keys.
    pub keys: Vec<KeyRecord>,
}

/// Errors of key storage.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file is not valid.
    #[error("{path} is not a valid key file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key names an unusable project or has a malformed hash.
    #[error("key {public_key}: {reason}")]
    BadKey {
        /// The key's public part.
        public_key: String,
        /// What is wrong.
        reason: String,
    },
}

/// `sha256:<hex>` of a secret key.
pub fn hash_secret(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// A new key for `project`: the record to store and the secret key (shown
/// once, never stored).
pub fn generate_key(project: &ProjectId) -> (KeyRecord, String) {
    let secret = format!("sk-lf-{}", uuid::Uuid::new_v4());
    let record = KeyRecord {
        project: project.to_string(),
        public_key: format!("pk-lf-{}", uuid::Uuid::new_v4()),
        secret_key_hash: hash_secret(&secret),
        created_at: Some(chrono::Utc::now().to_rfc3339()),
    };
    (record, secret)
}

impl KeysFile {
    /// Reads a key file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(KeyError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| KeyError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Writes the file durably ([`loupe_fsutil::write_atomic`]).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| KeyError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        loupe_fsutil::write_atomic(path, &text).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Settings of authentication (`[auth]` in `loupe.toml`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// When keys are required.
    pub mode: AuthMode,
    /// Keys from the config file.
    pub keys: Vec<KeyRecord>,
    /// The `keys.json` to read (and re-read); `None` for config keys only.
    pub keys_file: Option<PathBuf>,
    /// Whether `/metrics` is served without a key.
    pub metrics_public: bool,
}

#[derive(Default)]
struct Loaded {
    by_public: HashMap<String, (ProjectId, [u8; 32])>,
    by_secret: HashMap<[u8; 32], ProjectId>,
    stamp: Option<(SystemTime, u64)>,
    checked: Option<Instant>,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Missing or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// In open mode, `x-loupe-project` names no valid project (400).
    #[error("{0}")]
    BadProject(String),
    /// A session-cookie request that may change state came without the
    /// console header (403).
    #[error("{0}")]
    Forbidden(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            AuthError::BadProject(m) => ApiError::bad_request(m),
            AuthError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        }
    }
}

/// The key registry and the policy.
pub struct Auth {
    config: AuthConfig,
    loaded: RwLock<Loaded>,
    /// Console sessions by the SHA-256 of their token.
    sessions: parking_lot::Mutex<HashMap<[u8; 32], Session>>,
}

fn parse_hash(record: &KeyRecord) -> Result<(ProjectId, [u8; 32]), KeyError> {
    let bad = |reason: String| KeyError::BadKey {
        public_key: record.public_key.clone(),
        reason,
    };
    let project = ProjectId::new(record.project.clone()).map_err(|e| bad(e.to_string()))?;
    let hash = record
        .secret_key_hash
        .strip_prefix("sha256:")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| bad("secret_key_hash must be \"sha256:<64 hex digits>\"".into()))?;
    Ok((project, hash))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Auth {
    /// Loads the configured keys and the key file. Invalid keys are errors.
    pub fn new(config: AuthConfig) -> Result<Self, KeyError> {
        let auth = Self {
            config,
            loaded: RwLock::new(Loaded::default()),
            sessions: parking_lot::Mutex::default(),
        };
        auth.reload()?;
        Ok(auth)
    }

    /// Open access on the default project, no keys (tests, embedding).
    pub fn open() -> Self {
        Self {
            config: AuthConfig::default(),
            loaded: RwLock::new(Loaded::default()),
            sessions: parking_lot::Mutex::default(),
        }
    }

    /// Whether `/metrics` needs no key.
    pub fn metrics_public(&self) -> bool {
        self.config.metrics_public
    }

    fn reload(&self) -> Result<(), KeyError> {
        let file_stamp = self.config.keys_file.as_deref().and_then(stamp);
        let mut records = self.config.keys.clone();
        if let Some(path) = &self.config.keys_file {
            records.extend(KeysFile::load(path)?.keys);
        }
        let mut next = Loaded {
            stamp: file_stamp,
            checked: Some(Instant::now()),
            ..Loaded::default()
        };
        for record in &records {
            let (project, hash) = parse_hash(record)?;
            next.by_secret.insert(hash, project.clone());
            next.by_public
                .insert(record.public_key.clone(), (project, hash));
        }
        *self.loaded.write() = next;
        Ok(())
    }

    /// Re-reads the key file if it changed (at most once per [`RECHECK`]
    /// unless `force`). A damaged file keeps the previous keys.
    fn refresh(&self, force: bool) {
        let Some(path) = &self.config.keys_file else {
            return;
        };
        {
            let loaded = self.loaded.read();
            if !force && loaded.checked.is_some_and(|t| t.elapsed() < RECHECK) {
                return;
            }
            if stamp(path) == loaded.stamp {
                drop(loaded);
                self.loaded.write().checked = Some(Instant::now());
                return;
            }
        }
        if let Err(e) = self.reload() {
            tracing::warn!(error = %e, "key file not reloaded; keeping the previous keys");
            self.loaded.write().checked = Some(Instant::now());
        }
    }

    /// Whether keys are required right now.
    pub fn enforced(&self) -> bool {
        self.refresh(false);
        self.config.mode == AuthMode::Required || !self.loaded.read().by_public.is_empty()
    }

    fn lookup(&self, creds: &Credentials) -> Option<ProjectId> {
        self.lookup_key(creds).map(|(project, _)| project)
    }

    /// The project and stored secret hash of valid credentials.
    fn lookup_key(&self, creds: &Credentials) -> Option<(ProjectId, [u8; 32])> {
        let loaded = self.loaded.read();
        match creds {
            Credentials::Pair { public, secret } => {
                let (project, hash) = loaded.by_public.get(public)?;
                let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                // Compare every byte: no early exit on the first mismatch.
                let diff = given
                    .iter()
                    .zip(hash)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                (diff == 0).then(|| (project.clone(), *hash))
            }
            Credentials::Secret(secret) => {
                let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                loaded.by_secret.get(&given).map(|p| (p.clone(), given))
            }
            Credentials::None | Credentials::Malformed(_) => None,
        }
    }

    /// Opens a console session with a key: `public_key` and `secret_key`,
    /// or the secret key alone. Returns the token to set as the
    /// [`SESSION_COOKIE`] and the key's project, or `None` in open mode
    /// (no key exists: there is nothing to sign in to).
    pub fn login(
        &self,
        public_key: Option<&str>,
        secret_key: &str,
    ) -> Result<Option<(String, ProjectId)>, AuthError> {
        if !self.enforced() {
            // A key may have been created a moment ago.
            self.refresh(true);
            if !self.enforced() {
                return Ok(None);
            }
        }
        self.login_for(public_key, secret_key, SESSION_TTL)
            .map(Some)
    }

    fn login_for(
        &self,
        public_key: Option<&str>,
        secret_key: &str,
        ttl: Duration,
    ) -> Result<(String, ProjectId), AuthError> {
        let creds = match public_key.map(str::trim).filter(|p| !p.is_empty()) {
            Some(public) => Credentials::Pair {
                public: public.to_owned(),
                secret: secret_key.trim().to_owned(),
            },
            None => Credentials::Secret(secret_key.trim().to_owned()),
        };
        let found = self.lookup_key(&creds).or_else(|| {
            self.refresh(true);
            self.lookup_key(&creds)
        });
        let Some((project, key_hash)) = found else {
            return Err(AuthError::Unauthorized(
                "invalid API key: unknown public key or wrong secret key".into(),
            ));
        };
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            Sha256::digest(token.as_bytes()).into(),
            Session {
                project: project.clone(),
                key_hash,
                expires: now + ttl,
            },
        );
        Ok((token, project))
    }

    /// Ends a console session (unknown tokens are ignored).
    pub fn logout(&self, token: &str) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.sessions.lock().remove(&digest);
    }

    /// The project of a live session whose key still exists.
    fn session(&self, token: &str) -> Option<ProjectId> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut sessions = self.sessions.lock();
        let session = sessions.get(&digest)?;
        if session.expires <= Instant::now() {
            sessions.remove(&digest);
            return None;
        }
        let loaded = self.loaded.read();
        (loaded.by_secret.get(&session.key_hash) == Some(&session.project))
            .then(|| session.project.clone())
    }

    /// The project of an HTTP request: its key headers, else (keys
    /// enforced) its console session cookie, else open mode's project.
    pub fn resolve_request(
        &self,
        method: &axum::http::Method,
        headers: &axum::http::HeaderMap,
    ) -> Result<ProjectId, AuthError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let authorization = header("authorization");
        let api_key = header("api_key").or_else(|| header("api-key"));
        if authorization.is_none()
            && api_key.is_none()
            && let Some(token) = session_cookie(headers)
            && self.enforced()
        {
            let project = self.session(token).ok_or_else(|| {
                AuthError::Unauthorized(
                    "the console session has expired or was ended: sign in again".into(),
                )
            })?;
            if !method.is_safe() && header(CONSOLE_HEADER).is_none() {
                return Err(AuthError::Forbidden(format!(
                    "a request authenticated by the session cookie that may change state needs the {CONSOLE_HEADER} header"
                )));
            }
            return Ok(project);
        }
        self.resolve(authorization, api_key, header("x-loupe-project"))
    }

    /// The project of a request, from its `Authorization` and `api_key`
    /// header values and (open mode only) its `x-loupe-project` value.
    pub fn resolve(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        project_header: Option<&str>,
    ) -> Result<ProjectId, AuthError> {
        let creds = Credentials::parse(authorization, api_key);
        let mut enforced = self.enforced();
        if !enforced && creds != Credentials::None {
            // Credentials in open mode: a key may have just been created.
            self.refresh(true);
            enforced = self.enforced();
        }
        if !enforced {
            return match project_header {
                None => Ok(ProjectId::default_project()),
                Some(name) => {
                    ProjectId::new(name).map_err(|e| AuthError::BadProject(e.to_string()))
                }
            };
        }
        if let Credentials::Malformed(why) = &creds {
            return Err(AuthError::Unauthorized(why.clone()));
        }
        if matches!(creds, Credentials::None) {
            return Err(AuthError::Unauthorized(
                "authentication required: send Authorization: Basic base64(public_key:secret_key) or Bearer <secret_key> (create keys with `loupe keys create --project P`)".into(),
            ));
        }
        if let Some(project) = self.lookup(&creds) {
            return Ok(project);
        }
        // A key created a moment ago: re-read the file before refusing.
        self.refresh(true);
        self.lookup(&creds).ok_or_else(|| {
            AuthError::Unauthorized(
                "invalid API key: unknown public key or wrong secret key".into(),
            )
        })
    }
}

/// The value of the [`SESSION_COOKIE`] among a request's cookies.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Credentials found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credentials {
    None,
    Pair { public: String, secret: String },
    Secret(String),
    Malformed(String),
}

impl Credentials {
    fn parse(authorization: Option<&str>, api_key: Option<&str>) -> Self {
        let pair = |text: &str| match text.split_once(':') {
            Some((p, s)) => Self::Pair {
                public: p.to_owned(),
                secret: s.to_owned(),
            },
            None => Self::Secret(text.to_owned()),
        };
        if let Some(value) = authorization {
            let value = value.trim();
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            let rest = rest.trim();
            return if scheme.eq_ignore_ascii_case("basic") {
                match STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    Some(text) if text.contains(':') => pair(&text),
                    _ => Self::Malformed(
                        "Authorization: Basic must carry base64(public_key:secret_key)".into(),
                    ),
                }
            } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
                pair(rest)
            } else {
                Self::Malformed("unsupported Authorization scheme: use Basic or Bearer".into())
            };
        }
        match api_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => pair(key),
            None => Self::None,
        }
    }
}

/// The project the authenticated request acts on (set by the auth middleware).
#[derive(Debug, Clone)]
pub struct Project(pub ProjectId);

impl<S: Send + Sync> FromRequestParts<S> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Project>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "authentication required"))
    }
}

/// Paths served without a key.
fn is_public(path: &str, auth: &Auth) -> bool {
    matches!(path, "/healthz" | "/readyz") || (path == "/metrics" && auth.metrics_public())
}

/// Middleware: authenticates every request except the public paths and
/// records its [`Project`].
pub(crate) async fn require(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.uri().path(), &state.auth) {
        return next.run(req).await;
    }
    let resolved = state.auth.resolve_request(req.method(), req.headers());
    match resolved {
        Ok(project) => {
            req.extensions_mut().insert(Project(project));
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(p: &str, s: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{p}:{s}")))
    }

    #[test]
    fn open_until_a_key_exists_then_keys_decide_the_project() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEYS_FILE);
        let auth = Auth::new(AuthConfig {
            keys_file: Some(path.clone()),
            ..AuthConfig::default()
        })
        .expect("auth");
        assert_eq!(
            auth.resolve(None, None, Some("shop"))
                .expect("open")
                .as_str(),
            "shop"
        );

        let project = ProjectId::new("alpha").expect("name");
        let (record, secret) = generate_key(&project);
        KeysFile {
            version: 1,
            keys: vec![record.clone()],
        }
        .save(&path)
        .expect("save");
        // Creation is noticed on the first miss, without waiting for RECHECK.
        let pk = record.public_key.as_str();
        let got = auth
            .resolve(Some(&basic(pk, &secret)), None, None)
            .expect("basic");
        assert_eq!(got, project);
        assert!(matches!(
            auth.resolve(None, None, Some("shop")),
            Err(AuthError::Unauthorized(_))
        ));
        assert_eq!(
            auth.resolve(Some(&format!("Bearer {secret}")), None, None)
                .expect("bearer"),
            project
        );
        assert_eq!(
            auth.resolve(Some(&format!("bearer {pk}:{secret}")), None, None)
                .expect("pair"),
            project
        );
        assert_eq!(
            auth.resolve(None, Some(&secret), None).expect("api_key"),
            project
        );
        for bad in [
            basic(pk, "sk-lf-wrong"),
            basic("pk-lf-nope", &secret),
            "Basic !!!".into(),
            "Token x".into(),
        ] {
            assert!(
                matches!(
                    auth.resolve(Some(&bad), None, None),
                    Err(AuthError::Unauthorized(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_console_session_acts_on_its_keys_project_until_it_ends() {
        use axum::http::{HeaderMap, HeaderValue, Method};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEYS_FILE);
        let (alpha, alpha_secret) = generate_key(&ProjectId::new("alpha").expect("name"));
        let (beta, beta_secret) = generate_key(&ProjectId::new("beta").expect("name"));
        KeysFile {
            version: 1,
            keys: vec![alpha.clone(), beta.clone()],
        }
        .save(&path)
        .expect("save");
        let auth = Auth::new(AuthConfig {
            keys_file: Some(path.clone()),
            ..AuthConfig::default()
        })
        .expect("auth");
        let cookie = |token: &str| {
            let mut h = HeaderMap::new();
            let value = format!("theme=dark; {SESSION_COOKIE}={token}; x=1");
            h.insert("cookie", HeaderValue::from_str(&value).expect("header"));
            h
        };

        assert!(matches!(
            auth.login(Some(&alpha.public_key), &beta_secret),
            Err(AuthError::Unauthorized(_))
        ));
        let (token, project) = auth
            .login(Some(&alpha.public_key), &alpha_secret)
            .expect("pair")
            .expect("keys enforced");
        assert_eq!(project.as_str(), "alpha");
        let (beta_token, project) = auth
            .login(None, &beta_secret)
            .expect("secret alone")
            .expect("keys enforced");
        assert_eq!(project.as_str(), "beta");
        assert_eq!(
            auth.resolve_request(&Method::GET, &cookie(&token))
                .expect("session")
                .as_str(),
            "alpha"
        );
        assert_eq!(
            auth.resolve_request(&Method::GET, &cookie(&beta_token))
                .expect("session")
                .as_str(),
            "beta"
        );
        // Unsafe methods need the console header too.
        assert!(matches!(
            auth.resolve_request(&Method::POST, &cookie(&token)),
            Err(AuthError::Forbidden(_))
        ));
        let mut with_header = cookie(&token);
        with_header.insert(CONSOLE_HEADER, HeaderValue::from_static("1"));
        assert!(auth.resolve_request(&Method::POST, &with_header).is_ok());
        // A key header wins over the cookie.
        let mut both = cookie(&token);
        let bearer = format!("Bearer {beta_secret}");
        both.insert("authorization", HeaderValue::from_str(&bearer).expect("h"));
        assert_eq!(
            auth.resolve_request(&Method::GET, &both)
                .expect("key")
                .as_str(),
            "beta"
        );
        for bad in ["", "nope", &token[1..]] {
            assert!(
                auth.resolve_request(&Method::GET, &cookie(bad)).is_err(),
                "{bad:?}"
            );
        }

        // Logout ends the session; an expired session is refused.
        auth.logout(&beta_token);
        assert!(
            auth.resolve_request(&Method::GET, &cookie(&beta_token))
                .is_err()
        );
        let (short, _) = auth
            .login_for(None, &alpha_secret, Duration::ZERO)
            .expect("login");
        assert!(auth.resolve_request(&Method::GET, &cookie(&short)).is_err());

        // Revoking the key ends its sessions.
        KeysFile {
            version: 1,
            keys: vec![beta],
        }
        .save(&path)
        .expect("save");
        auth.refresh(true);
        assert!(auth.resolve_request(&Method::GET, &cookie(&token)).is_err());
    }

    #[test]
    fn in_open_mode_the_cookie_is_ignored() {
        use axum::http::{HeaderMap, HeaderValue, Method};
        let auth = Auth::open();
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("loupe_session=abc"));
        assert_eq!(
            auth.resolve_request(&Method::POST, &h)
                .expect("open")
                .as_str(),
            "default"
        );
    }

    #[test]
    fn required_mode_refuses_requests_before_any_key_exists() {
        let auth = Auth::new(AuthConfig {
            mode: AuthMode::Required,
            ..AuthConfig::default()
        })
        .expect("auth");
        assert!(auth.resolve(None, None, None).is_err());
    }

    #[test]
    fn config_keys_with_a_bad_hash_are_rejected_by_name() {
        let err = Auth::new(AuthConfig {
            keys: vec![KeyRecord {
                project: "p".into(),
                public_key: "pk-lf-x".into(),
                secret_key_hash: "md5:abc".into(),
                created_at: None,
            }],
            ..AuthConfig::default()
        })
        .err()
        .expect("bad hash");
        assert!(err.to_string().contains("pk-lf-x"), "{err}");
    }
}
