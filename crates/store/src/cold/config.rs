//! `[store.cold]`: where parts older than `hot_days` go, and how they are
//! read back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[store.cold]` section. Empty `url` (the default): no cold tier.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColdConfig {
    /// Where cold parts live: `s3://bucket/prefix` (AWS S3, and MinIO,
    /// Alibaba OSS or Tencent COS through their S3 APIs with `endpoint`), or
    /// an absolute directory path (`/mnt/archive/loupe`, or
    /// `file:///mnt/archive/loupe`). Default empty: no cold tier.
    pub url: String,
    /// Parts whose UTC day ended more than this many days ago move to the
    /// cold tier. Default 7. Must be at least 1 and, with a retention, less
    /// than `store.retention_days`.
    pub hot_days: u32,
    /// Bytes of cold parts kept in the local cache after a read (whole
    /// files, least recently read evicted first). A file read in the last
    /// 30 s is not evicted, so one big query may exceed the bound for that
    /// long. Default 1 GiB.
    pub cache_bytes: u64,
    /// Cache directory. Default `<data_dir>/cold-cache`. (A read-only open,
    /// `loupe query --data-dir`, always uses a private temporary one.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// S3 endpoint URL, for anything but AWS (MinIO, OSS, COS, moto), e.g.
    /// `https://oss-cn-hangzhou.aliyuncs.com`. `http://` is allowed
    /// because it is written here. Default: `AWS_ENDPOINT_URL`, else AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else
    /// `us-east-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3 access key id. Default: `AWS_ACCESS_KEY_ID` (or the instance's
    /// role on AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// S3 secret access key. Default: `AWS_SECRET_ACCESS_KEY`. Never
    /// logged or printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which MinIO and moto
    /// need; virtual-hosted style (`bucket.endpoint/key`, what AWS, OSS and
    /// COS expect) otherwise. Default false.
    pub path_style: bool,
}

impl Default for ColdConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            hot_days: 7,
            cache_bytes: 1 << 30,
            cache_dir: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            path_style: false,
        }
    }
}

/// The secret never reaches a log through `{:?}`.
impl std::fmt::Debug for ColdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdConfig")
            .field("url", &self.url)
            .field("hot_days", &self.hot_days)
            .field("cache_bytes", &self.cache_bytes)
            .field("cache_dir", &self.cache_dir)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .finish()
    }
}

/// Where a cold tier lives, parsed from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A directory on a local or mounted file system.
    Dir(PathBuf),
    /// An S3-compatible bucket and a key prefix (no leading or trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, possibly empty.
        prefix: String,
    },
}

impl Target {
    /// Parses `s3://bucket/prefix`, `file:///dir` or `/dir`; `key` names
    /// the setting in errors.
    pub fn parse(url: &str, key: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{key} = {url:?} names no bucket: use s3://bucket/prefix"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") {
                return Err(format!("{key} = {url:?}: the prefix may not hold . or .."));
            }
            return Ok(Target::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.contains("://") {
            return Err(format!(
                "{key} = {url:?}: use s3://bucket/prefix or an absolute directory path"
            ));
        }
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!(
                "{key} = {url:?} is not an absolute directory path (or s3://bucket/prefix)"
            ));
        }
        Ok(Target::Dir(path))
    }
}

impl ColdConfig {
    /// Whether a cold tier is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The parsed `url`, `None` without a cold tier.
    pub fn target(&self) -> Result<Option<Target>, String> {
        if !self.enabled() {
            return Ok(None);
        }
        Target::parse(&self.url, "store.cold.url").map(Some)
    }

    /// Checks the section; errors name the key. `retention_days` is the
    /// store's (0 = forever).
    pub fn validate(&self, retention_days: u32) -> Result<(), String> {
        let Some(target) = self.target()? else {
            return Ok(());
        };
        if self.hot_days == 0 {
            return Err(
                "store.cold.hot_days must be at least 1 (today's parts are still written)".into(),
            );
        }
        if retention_days != 0 && self.hot_days >= retention_days {
            return Err(format!(
                "store.cold.hot_days = {} is not less than store.retention_days = {retention_days}: \
                 nothing would ever reach the cold tier",
                self.hot_days
            ));
        }
        if self.cache_bytes < 1 << 20 {
            return Err("store.cold.cache_bytes must be at least 1 MiB (1048576)".into());
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!(
                "store.cold.endpoint = {endpoint:?} must start with http:// or https://"
            ));
        }
        if matches!(target, Target::Dir(_))
            && (self.endpoint.is_some()
                || self.access_key_id.is_some()
                || self.secret_access_key.is_some())
        {
            return Err(
                "store.cold.endpoint and the S3 keys apply to an s3:// url only; store.cold.url is a directory"
                    .into(),
            );
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(
                "store.cold.access_key_id and store.cold.secret_access_key go together".into(),
            );
        }
        Ok(())
    }
}
