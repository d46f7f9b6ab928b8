//! Projects, API keys and their scopes: who may call Loupe, which project a
//! request acts on and what it may do there.
//!
//! # Keys
//!
//! A key is a Langfuse-style pair: a public key `pk-lf-<uuid>` and a secret
//! key `sk-lf-<uuid>`, bound to one project and one [`Scope`]. Only the
//! SHA-256 of the secret is stored (`sha256:<hex>`; the secret is 122
//! random bits, so an unsalted fast hash is safe, as for GitHub tokens).
//! Keys come from the config (`[[auth.keys]]`) and from `keys.json` in the
//! data directory, which `loupe keys create` writes (temp file + rename)
//! while the server runs or not: the server re-reads the file when its size
//! or mtime changes, checked at most once a second and on every
//! authentication miss.
//!
//! # Scopes
//!
//! - [`Scope::Ingest`]: write only: OTLP (HTTP and gRPC), the Langfuse
//!   ingestion API, and the two Langfuse endpoints Dify's provider calls to
//!   check its keys (`GET /api/public/projects`, `/api/public/health`),
//!   which answer the project's name and nothing stored. The key to paste
//!   into Dify's tracing settings: it cannot read prompts or touch alerting.
//! - [`Scope::Read`]: every read (queries, SQL, traces, timelines,
//!   `/metrics`, the Langfuse read API, listing alerts, rules, silences).
//! - [`Scope::Admin`]: everything, including alert rules and silences.
//!
//! [`required_scope`] maps each route to the scope it needs; a route not
//! listed there needs `read` for `GET` and `admin` for anything else, so a
//! new route fails closed. A key without a `scope` (made before scopes
//! existed) acts as `admin`, and loading it logs a warning suggesting
//! narrower keys. A key with too narrow a scope gets a 403 naming the scope
//! needed.
//!
//! # Credentials
//!
//! - `Authorization: Basic base64(pk:sk)`: Langfuse SDKs, Dify's Langfuse
//!   provider, any HTTP client.
//! - `Authorization: Bearer <sk>` or `Bearer <pk>:<sk>`: OTLP senders with a
//!   single API key field (Dify's Phoenix/Arize providers send
//!   `authorization: Bearer <api_key>`; give them the secret key).
//! - `Authorization: ApiKey base64(pk:sk)` (or `ApiKey <sk>`): Elasticsearch
//!   clients and shippers given an API key (`api_key=(pk, sk)`); they can
//!   also send Basic with `pk` as user and `sk` as password.
//! - `api_key: <sk>` header (Phoenix/Arize also send it) when no
//!   `Authorization` header is present.
//!
//! # Policy: failing closed
//!
//! Open mode (no key needed; the `default` project, or the one named by
//! `x-loupe-project`, with every scope) is served only while no key exists
//! and either none ever did ([`AuthMode::Auto`]) or the operator chose it
//! ([`AuthMode::Open`]). Once a key has existed in a data directory, the
//! marker [`KEYS_SEEN_FILE`] records it: a later start that finds no key
//! (a lost or emptied `keys.json`) is an error ([`KeyError::KeysLost`]), not
//! open mode, and a running server whose keys vanish refuses every request
//! instead of opening up. [`AuthMode::Required`] needs keys even before the
//! first one exists. The binary also refuses open mode on a non-loopback
//! listener. A missing or wrong key is a 401 with a JSON message.
//!
//! In open mode a request must also come from this machine's own names:
//! its `Host` must be a loopback name or one of `allowed_hosts` (a web page
//! on another name that resolves to 127.0.0.1, DNS rebinding, is refused),
//! an `Origin` must be one of those too, and a `POST` must carry a JSON or
//! protobuf content type (a cross-site form or `text/plain` post, which a
//! browser sends without asking, is refused) ([`Auth::check_open_request`]).
//!
//! # Console sessions
//!
//! The web console signs in once with a key (`POST /api/v1/session`,
//! [`Auth::login`]) and gets an opaque random token in an `HttpOnly`,
//! `SameSite=Strict` cookie ([`SESSION_COOKIE`]); the token maps to the
//! key's project and scope, in memory only (a restart signs everyone out).
//! A request with no `Authorization`/`api_key` header and that cookie acts
//! on that project while the session is younger than [`SESSION_TTL`] and
//! its key still exists (revoking the key ends its sessions). Unsafe
//! methods (`POST`, `DELETE`, …) on the cookie also need the
//! [`CONSOLE_HEADER`] header, which a cross-site form cannot send.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use loupe_model::ProjectId;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

mod manage;

pub use manage::{CreatedKey, KeyEditError, KeySource, ListedKey};

/// Name of the key file in the data directory.
pub const KEYS_FILE: &str = "keys.json";

/// Marker in the data directory: keys have existed here, so finding none
/// is an error, not open mode. Written with the first key.
pub const KEYS_SEEN_FILE: &str = "keys.seen";

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

/// What a key may do. See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Write spans only (OTLP, Langfuse ingestion) and check the key.
    Ingest,
    /// Read everything of the project; change nothing.
    Read,
    /// Everything: ingest, read, alert rules and silences.
    Admin,
}

impl Scope {
    /// Every scope, for help texts.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    /// The name as written in `keys.json` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key of this scope may do what `needed` guards.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}: use ingest, read or admin"))
    }
}

/// The scope a request needs, by method and path; `None`: any valid key
/// (the key check endpoints Dify's Langfuse provider calls). Unlisted
/// routes need `read` for `GET`/`HEAD` and `admin` otherwise.
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    let read_only = method == Method::GET || method == Method::HEAD;
    match path {
        "/api/public/projects" | "/api/public/health" if read_only => None,
        // Dify's providers: the Langfuse batch API (≤ 1.19), OTLP traces
        // and metrics (the OpenTelemetry provider, the Langfuse provider's
        // OTLP path in 1.20, Phoenix).
        "/v1/traces"
        | "/v1/metrics"
        | "/v1/logs"
        | "/api/public/otel/v1/traces"
        | "/api/public/otel/v1/metrics"
        | "/api/public/otel/v1/logs"
        | "/api/public/ingestion"
            if method == Method::POST =>
        {
            Some(Scope::Ingest)
        }
        // The Elasticsearch-compatible API only ingests: its reads are the
        // probes shippers make with the key they ship with.
        _ if path == crate::routes::es::BASE
            || path
                .strip_prefix(crate::routes::es::BASE)
                .is_some_and(|rest| rest.starts_with('/')) =>
        {
            Some(Scope::Ingest)
        }
        // Questions asked by POST: they read, they change nothing.
        "/api/v1/query"
        | "/api/v1/sql"
        | "/api/v1/rca"
        | "/api/v1/analytics/conversations"
        | "/api/v1/analytics/users"
        | "/api/v1/analytics/relations"
        | "/api/v1/analytics/paths"
        | "/api/v1/alerts/rules/preview"
        | "/api/v1/tags/rules/preview"
        | "/api/v1/settings/retention/preview"
        | "/api/v1/traces"
            if method == Method::POST =>
        {
            Some(Scope::Read)
        }
        // Keys are secrets' metadata: even listing them is an admin's.
        _ if path == "/api/v1/keys" || path.starts_with("/api/v1/keys/") => Some(Scope::Admin),
        _ if read_only => Some(Scope::Read),
        _ => Some(Scope::Admin),
    }
}

/// Who a request is: the project it acts on and its key's scope (open
/// mode: the project asked for, [`Scope::Admin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The project.
    pub project: ProjectId,
    /// The scope.
    pub scope: Scope,
}

impl Principal {
    /// `Ok` when the scope allows `needed`, else the 403 naming it.
    pub fn require(&self, needed: Option<Scope>, what: &str) -> Result<(), AuthError> {
        match needed {
            Some(needed) if !self.scope.allows(needed) => Err(AuthError::Forbidden(format!(
                "this key's scope is `{}`; {what} needs a key with scope `{needed}`{} \
                 (create one with `loupe keys create --project {} --scope {needed}`)",
                self.scope,
                if needed == Scope::Admin {
                    ""
                } else {
                    " or `admin`"
                },
                self.project,
            ))),
            _ => Ok(()),
        }
    }
}

/// A console session: the project, scope and key it was opened with.
struct Session {
    project: ProjectId,
    scope: Scope,
    key_hash: [u8; 32],
    expires: Instant,
}

/// When keys are required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Open (default project) while no key exists and none ever did in this
    /// data directory; keys required once one does, for good.
    #[default]
    Auto,
    /// Keys always required.
    Required,
    /// Open while no key exists, even if keys existed before (the operator
    /// chose it after losing `keys.json`). Loopback listeners only.
    Open,
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
    /// What the key may do; absent (keys made before scopes): `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
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

/// Errors of key storage and the startup policy.
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
    /// Keys existed in this data directory but none is left: refusing to
    /// fall back to open mode.
    #[error(
        "no API key found, but keys existed in this data directory ({marker} exists): \
         {keys} is missing or lists no key. Loupe will not fall back to open access. \
         Restore {keys} from a backup, or create a key with `loupe keys create --project P --scope admin`, \
         or, to run without keys on loopback only, set `[auth] mode = \"open\"` (LOUPE_AUTH_MODE=open)"
    )]
    KeysLost {
        /// The key file.
        keys: PathBuf,
        /// The marker.
        marker: PathBuf,
    },
}

/// `sha256:<hex>` of a secret key.
pub fn hash_secret(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// A new key for `project` with `scope`: the record to store and the
/// secret key (shown once, never stored).
pub fn generate_key(project: &ProjectId, scope: Scope) -> (KeyRecord, String) {
    let secret = format!("sk-lf-{}", uuid::Uuid::new_v4());
    let record = KeyRecord {
        project: project.to_string(),
        public_key: format!("pk-lf-{}", uuid::Uuid::new_v4()),
        secret_key_hash: hash_secret(&secret),
        scope: Some(scope),
        created_at: Some(chrono::Utc::now().to_rfc3339()),
    };
    (record, secret)
}

/// The [`KEYS_SEEN_FILE`] beside a key file.
pub fn seen_marker(keys_file: &Path) -> PathBuf {
    keys_file.with_file_name(KEYS_SEEN_FILE)
}

/// Writes the [`KEYS_SEEN_FILE`] marker beside `keys_file` if missing.
fn mark_seen(keys_file: &Path) -> Result<(), KeyError> {
    let marker = seen_marker(keys_file);
    if marker.exists() {
        return Ok(());
    }
    let text = format!(
        "API keys have existed in this data directory since {}.\n\
         While this file exists, Loupe refuses to start without keys instead of serving openly.\n",
        chrono::Utc::now().to_rfc3339()
    );
    loupe_fsutil::write_atomic(&marker, text.as_bytes()).map_err(|source| KeyError::Io {
        path: marker,
        source,
    })
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

    /// Writes the file durably ([`loupe_fsutil::write_atomic`]); with keys
    /// in it, also the [`KEYS_SEEN_FILE`] marker (first).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        if !self.keys.is_empty() {
            mark_seen(path)?;
        }
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
    /// Open mode: host names (besides `localhost`, `127.0.0.1`, `::1`)
    /// accepted in `Host` and `Origin`.
    pub allowed_hosts: Vec<String>,
}

#[derive(Default)]
struct Loaded {
    by_public: HashMap<String, (ProjectId, [u8; 32], Scope)>,
    by_secret: HashMap<[u8; 32], (ProjectId, Scope)>,
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
    /// The key's scope does not allow the request, a session-cookie
    /// request that may change state came without the console header, or
    /// an open-mode request came from another site (403).
    #[error("{0}")]
    Forbidden(String),
    /// An open-mode `POST` without a JSON or protobuf content type (415).
    #[error("{0}")]
    UnsafeContentType(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            AuthError::BadProject(m) => ApiError::bad_request(m),
            AuthError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            AuthError::UnsafeContentType(m) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
        }
    }
}

/// The key registry and the policy.
pub struct Auth {
    config: AuthConfig,
    loaded: RwLock<Loaded>,
    /// Keys have existed (now, earlier in this process, or per the
    /// marker): no key means refuse, never open.
    sticky: AtomicBool,
    /// Console sessions by the SHA-256 of their token.
    sessions: parking_lot::Mutex<HashMap<[u8; 32], Session>>,
    /// Serialises this process's edits of the key file (create, revoke).
    edits: parking_lot::Mutex<()>,
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

/// The host name of a `Host` value or an origin's authority (no port, no
/// brackets), lower case.
fn host_name(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Auth {
    /// Loads the configured keys and the key file. Invalid keys are errors;
    /// so is finding no key where keys existed ([`KeyError::KeysLost`]),
    /// unless the mode is [`AuthMode::Open`].
    pub fn new(config: AuthConfig) -> Result<Self, KeyError> {
        let marker = config.keys_file.as_deref().map(seen_marker);
        let seen = config.mode != AuthMode::Open && marker.as_ref().is_some_and(|m| m.exists());
        let auth = Self {
            config,
            loaded: RwLock::new(Loaded::default()),
            sticky: AtomicBool::new(seen),
            sessions: parking_lot::Mutex::default(),
            edits: parking_lot::Mutex::default(),
        };
        auth.reload()?;
        if seen
            && auth.loaded.read().by_public.is_empty()
            && let (Some(keys), Some(marker)) = (auth.config.keys_file.clone(), marker)
        {
            return Err(KeyError::KeysLost { keys, marker });
        }
        Ok(auth)
    }

    /// Open access on the default project, no keys (tests, embedding).
    pub fn open() -> Self {
        Self {
            config: AuthConfig::default(),
            loaded: RwLock::new(Loaded::default()),
            sticky: AtomicBool::new(false),
            sessions: parking_lot::Mutex::default(),
            edits: parking_lot::Mutex::default(),
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
        let mut unscoped = Vec::new();
        for record in &records {
            let (project, hash) = parse_hash(record)?;
            let scope = record.scope.unwrap_or_else(|| {
                unscoped.push(record.public_key.as_str());
                Scope::Admin
            });
            next.by_secret.insert(hash, (project.clone(), scope));
            next.by_public
                .insert(record.public_key.clone(), (project, hash, scope));
        }
        if !unscoped.is_empty() {
            tracing::warn!(
                keys = ?unscoped,
                "API keys without a scope act as admin keys; create narrower ones \
                 (`loupe keys create --scope ingest` for Dify and OTLP senders, `--scope read` for dashboards) \
                 and delete these"
            );
        }
        let had = self.sticky.load(Ordering::Acquire);
        if !next.by_public.is_empty() {
            self.sticky.store(true, Ordering::Release);
            if let Some(path) = &self.config.keys_file
                && let Err(e) = mark_seen(path)
            {
                tracing::warn!(error = %e, "cannot record that keys exist in this data directory");
            }
        } else if had {
            tracing::error!(
                "no API key is left (keys.json missing or empty): every request is refused \
                 until keys are restored or created"
            );
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

    /// Whether keys are required right now (false: open mode).
    pub fn enforced(&self) -> bool {
        self.refresh(false);
        self.config.mode == AuthMode::Required
            || self.sticky.load(Ordering::Acquire)
            || !self.loaded.read().by_public.is_empty()
    }

    /// The project, scope and stored secret hash of valid credentials.
    fn lookup_key(&self, creds: &Credentials) -> Option<(Principal, [u8; 32])> {
        let loaded = self.loaded.read();
        match creds {
            Credentials::Pair { public, secret } => {
                let (project, hash, scope) = loaded.by_public.get(public)?;
                let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                // Compare every byte: no early exit on the first mismatch.
                let diff = given
                    .iter()
                    .zip(hash)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                (diff == 0).then(|| {
                    (
                        Principal {
                            project: project.clone(),
                            scope: *scope,
                        },
                        *hash,
                    )
                })
            }
            Credentials::Secret(secret) => {
                let given: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
                loaded.by_secret.get(&given).map(|(project, scope)| {
                    (
                        Principal {
                            project: project.clone(),
                            scope: *scope,
                        },
                        given,
                    )
                })
            }
            Credentials::None | Credentials::Malformed(_) => None,
        }
    }

    /// Opens a console session with a key: `public_key` and `secret_key`,
    /// or the secret key alone. Returns the token to set as the
    /// [`SESSION_COOKIE`] and who it is, or `None` in open mode (no key
    /// exists: there is nothing to sign in to).
    pub fn login(
        &self,
        public_key: Option<&str>,
        secret_key: &str,
    ) -> Result<Option<(String, Principal)>, AuthError> {
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
    ) -> Result<(String, Principal), AuthError> {
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
        let Some((principal, key_hash)) = found else {
            return Err(AuthError::Unauthorized(
                "invalid API key: unknown public key or wrong secret key".into(),
            ));
        };
        if principal.scope == Scope::Ingest {
            return Err(AuthError::Forbidden(
                "an ingest key cannot sign in to the console (it may only send data); \
                 use a key with scope `read` or `admin`"
                    .into(),
            ));
        }
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
                project: principal.project.clone(),
                scope: principal.scope,
                key_hash,
                expires: now + ttl,
            },
        );
        Ok((token, principal))
    }

    /// Ends a console session (unknown tokens are ignored).
    pub fn logout(&self, token: &str) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.sessions.lock().remove(&digest);
    }

    /// Who a live session is, while its key still exists.
    fn session(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut sessions = self.sessions.lock();
        let session = sessions.get(&digest)?;
        if session.expires <= Instant::now() {
            sessions.remove(&digest);
            return None;
        }
        let loaded = self.loaded.read();
        (loaded.by_secret.get(&session.key_hash) == Some(&(session.project.clone(), session.scope)))
            .then(|| Principal {
                project: session.project.clone(),
                scope: session.scope,
            })
    }

    /// Who an HTTP request is: its key headers, else (keys enforced) its
    /// console session cookie, else open mode's project.
    pub fn resolve_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let authorization = header("authorization");
        let api_key = header("api_key").or_else(|| header("api-key"));
        if authorization.is_none()
            && api_key.is_none()
            && let Some(token) = session_cookie(headers)
            && self.enforced()
        {
            let principal = self.session(token).ok_or_else(|| {
                AuthError::Unauthorized(
                    "the console session has expired or was ended: sign in again".into(),
                )
            })?;
            if !method.is_safe() && header(CONSOLE_HEADER).is_none() {
                return Err(AuthError::Forbidden(format!(
                    "a request authenticated by the session cookie that may change state needs the {CONSOLE_HEADER} header"
                )));
            }
            return Ok(principal);
        }
        self.resolve(authorization, api_key, header("x-loupe-project"))
    }

    /// Who a request is, from its `Authorization` and `api_key` header
    /// values and (open mode only) its `x-loupe-project` value.
    pub fn resolve(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        project_header: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let creds = Credentials::parse(authorization, api_key);
        let mut enforced = self.enforced();
        if !enforced && creds != Credentials::None {
            // Credentials in open mode: a key may have just been created.
            self.refresh(true);
            enforced = self.enforced();
        }
        if !enforced {
            let project = match project_header {
                None => ProjectId::default_project(),
                Some(name) => {
                    ProjectId::new(name).map_err(|e| AuthError::BadProject(e.to_string()))?
                }
            };
            return Ok(Principal {
                project,
                scope: Scope::Admin,
            });
        }
        if let Credentials::Malformed(why) = &creds {
            return Err(AuthError::Unauthorized(why.clone()));
        }
        if matches!(creds, Credentials::None) {
            return Err(AuthError::Unauthorized(
                "authentication required: send Authorization: Basic base64(public_key:secret_key) or Bearer <secret_key> (create keys with `loupe keys create --project P --scope ingest|read|admin`)".into(),
            ));
        }
        if let Some((principal, _)) = self.lookup_key(&creds) {
            return Ok(principal);
        }
        // A key created a moment ago: re-read the file before refusing.
        self.refresh(true);
        self.lookup_key(&creds)
            .map(|(principal, _)| principal)
            .ok_or_else(|| {
                AuthError::Unauthorized(
                    "invalid API key: unknown public key or wrong secret key".into(),
                )
            })
    }

    /// Whether `host` (a `Host` value or origin authority) names this
    /// machine: a loopback name or one of `allowed_hosts`.
    fn host_allowed(&self, authority: &str) -> bool {
        let name = host_name(authority);
        matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
            || name.ends_with(".localhost")
            || self
                .config
                .allowed_hosts
                .iter()
                .any(|h| host_name(h) == name)
    }

    /// Open mode's defences against other web sites reaching the API
    /// through the user's browser: `Host` and `Origin` must name this
    /// machine, and a `POST` must be JSON or protobuf (a cross-site
    /// form or `text/plain` post needs no preflight, these types do).
    pub fn check_open_request(
        &self,
        method: &Method,
        host: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        if let Some(host) = host
            && !self.host_allowed(host)
        {
            return Err(AuthError::Forbidden(format!(
                "Host {host:?} is not this machine: without API keys Loupe answers only requests \
                 addressed to localhost/127.0.0.1/[::1] or an [auth] allowed_hosts name \
                 (create a key with `loupe keys create` to serve other names)"
            )));
        }
        if let Some(origin) = headers.get("origin") {
            let text = origin.to_str().unwrap_or("null");
            let authority = text
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(""));
            if !authority.is_some_and(|a| self.host_allowed(a)) {
                return Err(AuthError::Forbidden(format!(
                    "cross-origin request from {text:?} refused: without API keys Loupe accepts \
                     browser requests only from its own pages"
                )));
            }
        }
        if method == Method::POST {
            let mime = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| v.trim().to_ascii_lowercase())
                .unwrap_or_default();
            // NDJSON too (Elasticsearch bulk bodies): like JSON, a browser
            // sends it across sites only after a preflight.
            let ok = mime == "application/json"
                || mime == "application/x-protobuf"
                || mime == "application/protobuf"
                || mime == "application/x-ndjson"
                || (mime.starts_with("application/")
                    && (mime.ends_with("+json") || mime.ends_with("+x-ndjson")));
            if !ok {
                return Err(AuthError::UnsafeContentType(format!(
                    "content type {mime:?} refused: without API keys Loupe accepts POST bodies only as \
                     application/json or application/x-protobuf (a web page can send other types \
                     across sites)"
                )));
            }
        }
        Ok(())
    }
}

/// The value of the [`SESSION_COOKIE`] among a request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
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
            } else if scheme.eq_ignore_ascii_case("apikey") && !rest.is_empty() {
                // Elasticsearch clients: `ApiKey base64(id:api_key)`, or the
                // encoded key as given (then it is Loupe's secret itself).
                match STANDARD
                    .decode(rest)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|t| t.contains(':'))
                {
                    Some(text) => pair(&text),
                    None => Self::Secret(rest.to_owned()),
                }
            } else {
                Self::Malformed(
                    "unsupported Authorization scheme: use Basic, Bearer or ApiKey".into(),
                )
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

/// Middleware: authenticates every request except the public paths,
/// checks the key's scope against the route ([`required_scope`]), applies
/// open mode's browser checks, and records the request's [`Project`].
pub(crate) async fn require(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.uri().path(), &state.auth) {
        return next.run(req).await;
    }
    let checked = state
        .auth
        .resolve_request(req.method(), req.headers())
        .and_then(|principal| {
            if !state.auth.enforced() {
                let host = req
                    .headers()
                    .get(axum::http::header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .or_else(|| req.uri().authority().map(|a| a.as_str()));
                state
                    .auth
                    .check_open_request(req.method(), host, req.headers())?;
            }
            let what = format!("{} {}", req.method(), req.uri().path());
            principal.require(required_scope(req.method(), req.uri().path()), &what)?;
            Ok(principal)
        });
    match checked {
        Ok(principal) => {
            req.extensions_mut()
                .insert(Project(principal.project.clone()));
            req.extensions_mut().insert(principal);
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
                .project
                .as_str(),
            "shop"
        );

        let project = ProjectId::new("alpha").expect("name");
        let (record, secret) = generate_key(&project, Scope::Admin);
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
        assert_eq!(got.project, project);
        assert!(matches!(
            auth.resolve(None, None, Some("shop")),
            Err(AuthError::Unauthorized(_))
        ));
        assert_eq!(
            auth.resolve(Some(&format!("Bearer {secret}")), None, None)
                .expect("bearer")
                .project,
            project
        );
        // Elasticsearch clients: `ApiKey base64(id:key)`, or the key as is.
        let es_pair = format!("ApiKey {}", STANDARD.encode(format!("{pk}:{secret}")));
        for header in [es_pair, format!("ApiKey {secret}")] {
            assert_eq!(
                auth.resolve(Some(&header), None, None)
                    .expect("api key")
                    .project,
                project
            );
        }
        assert_eq!(
            auth.resolve(Some(&format!("bearer {pk}:{secret}")), None, None)
                .expect("pair")
                .project,
            project
        );
        assert_eq!(
            auth.resolve(None, Some(&secret), None)
                .expect("api_key")
                .project,
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
        let (alpha, alpha_secret) =
            generate_key(&ProjectId::new("alpha").expect("name"), Scope::Read);
        let (beta, beta_secret) =
            generate_key(&ProjectId::new("beta").expect("name"), Scope::Admin);
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
        assert_eq!(project.project.as_str(), "alpha");
        let (beta_token, project) = auth
            .login(None, &beta_secret)
            .expect("secret alone")
            .expect("keys enforced");
        assert_eq!(project.project.as_str(), "beta");
        assert_eq!(
            auth.resolve_request(&Method::GET, &cookie(&token))
                .expect("session")
                .project
                .as_str(),
            "alpha"
        );
        assert_eq!(
            auth.resolve_request(&Method::GET, &cookie(&beta_token))
                .expect("session")
                .project
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
                .project
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
                .project
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
                scope: None,
                created_at: None,
            }],
            ..AuthConfig::default()
        })
        .err()
        .expect("bad hash");
        assert!(err.to_string().contains("pk-lf-x"), "{err}");
    }

    #[test]
    fn each_route_needs_its_scope() {
        use Scope::*;
        let cases: &[(Method, &str, Option<Scope>)] = &[
            (Method::POST, "/v1/traces", Some(Ingest)),
            (Method::POST, "/api/public/ingestion", Some(Ingest)),
            (Method::POST, "/v1/metrics", Some(Ingest)),
            (Method::POST, "/api/public/otel/v1/traces", Some(Ingest)),
            (Method::POST, "/api/public/otel/v1/metrics", Some(Ingest)),
            (Method::POST, "/api/v1/rca", Some(Read)),
            (Method::POST, "/api/v1/analytics/conversations", Some(Read)),
            (Method::POST, "/api/v1/analytics/users", Some(Read)),
            (Method::POST, "/api/v1/analytics/relations", Some(Read)),
            (Method::POST, "/api/v1/analytics/paths", Some(Read)),
            (Method::POST, "/api/v1/tags/apply", Some(Admin)),
            (Method::POST, "/api/v1/tags/rules/preview", Some(Read)),
            (Method::PUT, "/api/v1/tags/rules/tier", Some(Admin)),
            (Method::DELETE, "/api/v1/tags/rules/tier", Some(Admin)),
            (Method::GET, "/api/v1/tags/rules", Some(Read)),
            // Retention deletes data: changing it is an admin's.
            (Method::PUT, "/api/v1/settings/retention", Some(Admin)),
            (
                Method::POST,
                "/api/v1/settings/retention/preview",
                Some(Read),
            ),
            // A cleanup deletes from Dify's database: an admin's; watching it is a read.
            (Method::POST, "/api/v1/dify/cleanups/job", Some(Admin)),
            (Method::DELETE, "/api/v1/dify/cleanups/job", Some(Admin)),
            (Method::GET, "/api/v1/dify/cleanups/job", Some(Read)),
            // Dify's Langfuse provider checks its key with these two.
            (Method::GET, "/api/public/projects", None),
            (Method::GET, "/api/public/health", None),
            (Method::GET, "/api/public/traces", Some(Read)),
            (Method::GET, "/api/public/traces/t1", Some(Read)),
            (Method::GET, "/api/public/observations", Some(Read)),
            (Method::POST, "/api/v1/query", Some(Read)),
            (Method::POST, "/api/v1/sql", Some(Read)),
            (Method::GET, "/api/v1/traces/t1", Some(Read)),
            (Method::POST, "/api/v1/traces", Some(Read)),
            (Method::GET, "/api/v1/users/u1", Some(Read)),
            (Method::GET, "/metrics", Some(Read)),
            (Method::GET, "/api/v1/alerts/rules", Some(Read)),
            (Method::POST, "/api/v1/alerts/rules", Some(Admin)),
            (Method::DELETE, "/api/v1/alerts/rules/r", Some(Admin)),
            (Method::POST, "/api/v1/alerts/silences", Some(Admin)),
            (Method::DELETE, "/api/v1/alerts/silences/s", Some(Admin)),
            // Unknown writes fail closed.
            (Method::POST, "/api/v1/something-new", Some(Admin)),
            (Method::GET, "/v1/traces", Some(Read)),
        ];
        for (method, path, want) in cases {
            assert_eq!(required_scope(method, path), *want, "{method} {path}");
        }
        assert!(Admin.allows(Ingest) && Admin.allows(Read) && Admin.allows(Admin));
        assert!(Ingest.allows(Ingest) && !Ingest.allows(Read) && !Ingest.allows(Admin));
        assert!(Read.allows(Read) && !Read.allows(Ingest) && !Read.allows(Admin));
        let p = Principal {
            project: ProjectId::new("shop").expect("name"),
            scope: Ingest,
        };
        let err = p
            .require(Some(Read), "POST /api/v1/query")
            .expect_err("ingest cannot read");
        assert!(
            err.to_string().contains("scope is `ingest`")
                && err.to_string().contains("`read` or `admin`"),
            "{err}"
        );
        assert!(p.require(None, "GET /api/public/projects").is_ok());
    }

    #[test]
    fn scopes_come_from_the_key_and_unscoped_keys_act_as_admin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEYS_FILE);
        let shop = ProjectId::new("shop").expect("name");
        let (ingest, ingest_secret) = generate_key(&shop, Scope::Ingest);
        let (mut legacy, legacy_secret) = generate_key(&shop, Scope::Read);
        legacy.scope = None;
        KeysFile {
            version: 1,
            keys: vec![ingest.clone(), legacy],
        }
        .save(&path)
        .expect("save");
        // The scope is written as a field; an old file without it still loads.
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"scope\": \"ingest\""), "{text}");
        let auth = Auth::new(AuthConfig {
            keys_file: Some(path),
            ..AuthConfig::default()
        })
        .expect("auth");
        let who = auth
            .resolve(Some(&basic(&ingest.public_key, &ingest_secret)), None, None)
            .expect("ingest key");
        assert_eq!(who.scope, Scope::Ingest);
        let who = auth
            .resolve(Some(&format!("Bearer {legacy_secret}")), None, None)
            .expect("legacy key");
        assert_eq!(who.scope, Scope::Admin);
        // An ingest key cannot open a console session.
        assert!(matches!(
            auth.login(None, &ingest_secret),
            Err(AuthError::Forbidden(_))
        ));
    }

    #[test]
    fn a_lost_key_file_fails_closed_at_start_and_while_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(KEYS_FILE);
        let config = AuthConfig {
            keys_file: Some(path.clone()),
            ..AuthConfig::default()
        };
        // Never had keys: open.
        assert!(!Auth::new(config.clone()).expect("auth").enforced());
        let (record, secret) = generate_key(&ProjectId::new("p").expect("name"), Scope::Admin);
        KeysFile {
            version: 1,
            keys: vec![record],
        }
        .save(&path)
        .expect("save");
        assert!(dir.path().join(KEYS_SEEN_FILE).exists());
        let auth = Auth::new(config.clone()).expect("auth");
        assert!(auth.resolve(None, Some(&secret), None).is_ok());

        // Deleted while running: every request refused, never open.
        std::fs::remove_file(&path).expect("rm");
        auth.refresh(true);
        assert!(auth.enforced());
        assert!(matches!(
            auth.resolve(None, None, Some("p")),
            Err(AuthError::Unauthorized(_))
        ));
        assert!(auth.resolve(None, Some(&secret), None).is_err());

        // At start: an error naming what to do, for a missing and an empty file.
        let err = Auth::new(config.clone()).err().expect("keys lost");
        assert!(matches!(err, KeyError::KeysLost { .. }), "{err}");
        assert!(err.to_string().contains("mode = \"open\""), "{err}");
        KeysFile::default().save(&path).expect("save empty");
        assert!(matches!(
            Auth::new(config.clone()),
            Err(KeyError::KeysLost { .. })
        ));
        // Unless the operator chose open mode.
        let open = Auth::new(AuthConfig {
            mode: AuthMode::Open,
            ..config
        })
        .expect("explicit open");
        assert!(!open.enforced());
    }

    #[test]
    fn open_mode_refuses_other_hosts_origins_and_form_posts() {
        use axum::http::HeaderValue;
        let auth = Auth::new(AuthConfig {
            allowed_hosts: vec!["loupe.internal".into()],
            ..AuthConfig::default()
        })
        .expect("auth");
        let json = |origin: Option<&str>, ct: &str| {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_str(ct).expect("ct"));
            if let Some(o) = origin {
                h.insert("origin", HeaderValue::from_str(o).expect("origin"));
            }
            h
        };
        let post = Method::POST;
        let ok = json(None, "application/json");
        for host in [
            "localhost:4318",
            "127.0.0.1:4318",
            "[::1]:4318",
            "LOUPE.internal",
            "app.localhost",
        ] {
            assert!(
                auth.check_open_request(&post, Some(host), &ok).is_ok(),
                "{host}"
            );
        }
        assert!(auth.check_open_request(&post, None, &ok).is_ok());
        for host in ["evil.example:4318", "127.0.0.1.evil.example", "10.0.0.5"] {
            assert!(
                matches!(
                    auth.check_open_request(&post, Some(host), &ok),
                    Err(AuthError::Forbidden(_))
                ),
                "{host}"
            );
        }
        let local = Some("127.0.0.1:4318");
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1.evil.example",
        ] {
            assert!(
                matches!(
                    auth.check_open_request(&post, local, &json(Some(origin), "application/json")),
                    Err(AuthError::Forbidden(_))
                ),
                "{origin}"
            );
        }
        assert!(
            auth.check_open_request(
                &post,
                local,
                &json(Some("http://localhost:4318"), "application/json")
            )
            .is_ok()
        );
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            assert!(
                matches!(
                    auth.check_open_request(&post, local, &json(None, ct)),
                    Err(AuthError::UnsafeContentType(_))
                ),
                "{ct}"
            );
        }
        assert!(
            auth.check_open_request(&post, local, &json(None, "application/x-protobuf"))
                .is_ok()
        );
        assert!(
            auth.check_open_request(&Method::GET, local, &HeaderMap::new())
                .is_ok()
        );
    }
}
