//! Key management over the API (`/api/v1/keys`, admin scope): list a
//! project's keys, create one with a scope (the secret is returned once and
//! only its SHA-256 is stored), revoke one. Edits go to `keys.json` exactly
//! as `loupe keys` makes them (load, change, atomic replace), serialised
//! within the process, and take effect at once (the registry is re-read).
//! Keys from the config file are listed but changed only there.

use serde::Serialize;

use super::{Auth, KeyError, KeyRecord, KeysFile, Scope, generate_key};
use loupe_model::ProjectId;

/// Where a key is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// `[[auth.keys]]` of the config file: changed there only.
    Config,
    /// `keys.json` in the data directory (`loupe keys`, the API).
    KeysJson,
}

/// A key as the API lists it: never its secret or the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedKey {
    /// Public key (`pk-lf-…`).
    pub public_key: String,
    /// What the key may do (keys made before scopes: `admin`).
    pub scope: Scope,
    /// Whether the stored record names no scope (made before scopes).
    pub scope_unset: bool,
    /// Creation time (RFC 3339), when recorded.
    pub created_at: Option<String>,
    /// Where it is defined.
    pub source: KeySource,
}

/// A created key: the secret is in this answer only.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedKey {
    /// The project.
    pub project: String,
    /// Public key.
    pub public_key: String,
    /// Secret key, shown once: only its SHA-256 is stored.
    pub secret_key: String,
    /// Scope.
    pub scope: Scope,
    /// Creation time (RFC 3339).
    pub created_at: Option<String>,
}

/// Why a key edit was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyEditError {
    /// The server has no `keys.json` to write (config keys only): 409.
    #[error(
        "this server reads keys from its config file only; change [[auth.keys]] there and restart"
    )]
    NotManaged,
    /// No such key in this project: 404.
    #[error("no key {0:?} in this project")]
    NotFound(String),
    /// The key is defined in the config file: 409.
    #[error("key {0:?} is defined in the config file ([[auth.keys]]); remove it there")]
    InConfig(String),
    /// Revoking would leave the project without an admin key: 409.
    #[error(
        "key {0:?} is this project's last admin key: create another admin key first, \
         or revoke it with `loupe keys revoke` on the server"
    )]
    LastAdmin(String),
    /// While no key exists, the first one must be an admin key (anything
    /// else would lock the console out of key management): 400.
    #[error(
        "no key exists yet: the first key must have scope `admin` (creating it makes keys required)"
    )]
    FirstNotAdmin,
    /// `keys.json` could not be read or written: 500.
    #[error(transparent)]
    Store(#[from] KeyError),
}

fn listed(record: &KeyRecord, source: KeySource) -> ListedKey {
    ListedKey {
        public_key: record.public_key.clone(),
        scope: record.scope.unwrap_or(Scope::Admin),
        scope_unset: record.scope.is_none(),
        created_at: record.created_at.clone(),
        source,
    }
}

impl Auth {
    /// The keys of `project`: the config's, then `keys.json`'s.
    pub fn list_keys(&self, project: &ProjectId) -> Result<Vec<ListedKey>, KeyEditError> {
        let stored = match &self.config.keys_file {
            Some(path) => KeysFile::load(path)?.keys,
            None => Vec::new(),
        };
        let config = self.config.keys.iter().map(|k| (k, KeySource::Config));
        Ok(config
            .chain(stored.iter().map(|k| (k, KeySource::KeysJson)))
            .filter(|(k, _)| k.project == project.as_str())
            .map(|(k, source)| listed(k, source))
            .collect())
    }

    /// Creates a key of `project` with `scope` in `keys.json` and returns
    /// it with its secret (shown once). In open mode (no key yet) the
    /// first key must be [`Scope::Admin`]; creating it makes keys required.
    pub fn create_key(
        &self,
        project: &ProjectId,
        scope: Scope,
    ) -> Result<CreatedKey, KeyEditError> {
        let path = self
            .config
            .keys_file
            .clone()
            .ok_or(KeyEditError::NotManaged)?;
        let _edit = self.edits.lock();
        let mut file = KeysFile::load(&path)?;
        if scope != Scope::Admin && !self.enforced() {
            return Err(KeyEditError::FirstNotAdmin);
        }
        let (record, secret) = generate_key(project, scope);
        file.version = 1;
        file.keys.push(record.clone());
        file.save(&path)?;
        self.reload()?;
        tracing::info!(project = %project, public_key = %record.public_key, scope = %scope, "api key created");
        Ok(CreatedKey {
            project: record.project,
            public_key: record.public_key,
            secret_key: secret,
            scope,
            created_at: record.created_at,
        })
    }

    /// Deletes the `keys.json` key `public_key` of `project`; its console
    /// sessions end with it. Refused for config keys and for the
    /// project's last admin key.
    pub fn revoke_key(&self, project: &ProjectId, public_key: &str) -> Result<(), KeyEditError> {
        let of_project = |k: &&KeyRecord| k.project == project.as_str();
        if self
            .config
            .keys
            .iter()
            .filter(of_project)
            .any(|k| k.public_key == public_key)
        {
            return Err(KeyEditError::InConfig(public_key.to_owned()));
        }
        let path = self
            .config
            .keys_file
            .clone()
            .ok_or_else(|| KeyEditError::NotFound(public_key.to_owned()))?;
        let _edit = self.edits.lock();
        let mut file = KeysFile::load(&path)?;
        let Some(at) = file
            .keys
            .iter()
            .position(|k| k.project == project.as_str() && k.public_key == public_key)
        else {
            return Err(KeyEditError::NotFound(public_key.to_owned()));
        };
        let is_admin = |k: &KeyRecord| k.scope.unwrap_or(Scope::Admin) == Scope::Admin;
        if is_admin(&file.keys[at]) {
            let other_admins = self
                .config
                .keys
                .iter()
                .chain(file.keys.iter())
                .filter(of_project)
                .filter(|k| k.public_key != public_key)
                .filter(|k| is_admin(k))
                .count();
            if other_admins == 0 {
                return Err(KeyEditError::LastAdmin(public_key.to_owned()));
            }
        }
        file.keys.remove(at);
        file.save(&path)?;
        self.reload()?;
        tracing::info!(project = %project, public_key, "api key revoked");
        Ok(())
    }
}
