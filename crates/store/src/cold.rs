//! The cold tier: parts whose day ended more than `hot_days` ago live in
//! object storage (an S3-compatible bucket or a directory), at the same
//! relative path as on local disk (`parts/<project>/<day>/<id>.parquet`),
//! so the tier is a plain Parquet tree DuckDB or Spark can read.
//!
//! - `Tier` is the one client. Both kinds of target are an
//!   `object_store::ObjectStore` (`AmazonS3` or `LocalFileSystem`), so a
//!   directory and S3 share every code path; a directory tier is also
//!   fsynced after each copy (`LocalFileSystem` does not sync).
//! - `cache.rs`: cold parts are read through a bounded local cache of
//!   whole files, so the read path is unchanged: pruning (time, ids, text)
//!   happens on the manifest and in-memory indexes *before* any fetch, and
//!   a fetched part is read as a local file.
//! - `mover.rs`: the maintenance step that moves parts (copy, verify,
//!   commit the manifest, then delete the local file after the grace
//!   period).
//! - Each cold part keeps a small local *id file* (`cold-ids/<id>.parquet`:
//!   its span, trace and run ids and row versions), so opening the store
//!   rebuilds the id indexes without fetching a part; the write path's
//!   merge-base lookups, run lookups and deletion vectors work on cold
//!   parts as on hot ones.
//!
//! The object store client is async; the store's part I/O is blocking. The
//! tier owns a one-thread runtime and blocking callers wait for it
//! (`Tier::run`), which works from any thread without nesting runtimes.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path as Key;
use tokio::io::AsyncWriteExt;

use crate::Error;
use crate::parts::PartMeta;
use crate::wal::io_err;

mod cache;
mod config;
mod mover;

pub(crate) use cache::Cache;
pub use config::{ColdConfig, Target};

/// Directory of the cold parts' id files in the data directory.
pub(crate) const IDS_DIR: &str = "cold-ids";

/// Bytes read from the local file per write when copying a part.
const CHUNK: usize = 8 << 20;

/// An object store error with its causes, each once: its own message
/// stops at "error sending request", the cause (a refused connection, a
/// bad certificate) is further down the chain.
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

/// The local id file of cold part `id`.
pub(crate) fn ids_path(data_dir: &Path, id: u64) -> PathBuf {
    data_dir.join(IDS_DIR).join(format!("{id:016x}.parquet"))
}

/// An open cold tier: the object store, the key prefix, the cache.
pub(crate) struct Tier {
    objects: Arc<dyn ObjectStore>,
    prefix: String,
    /// A directory tier's root (fsynced after each copy).
    dir: Option<PathBuf>,
    /// Where the tier is, for logs (never holds a secret).
    pub describe: String,
    runtime: Option<tokio::runtime::Runtime>,
    pub cache: Cache,
    /// Tests only (`LOUPE_TEST_COLD_MOVE_PAUSE_MS`): how long a move waits
    /// between its verified copy and its commit, so a test can kill the
    /// process there.
    pub test_pause: Option<std::time::Duration>,
}

impl Drop for Tier {
    fn drop(&mut self) {
        // A runtime may not be dropped (blocking) inside an async context,
        // where the last store handle often goes.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A client of `target` with the section's S3 settings (and the `AWS_*`
/// environment under them).
pub fn object_store_for(target: &Target, cfg: &ColdConfig) -> Result<Arc<dyn ObjectStore>, Error> {
    match target {
        Target::Dir(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| Error::Invalid(format!("store.cold.url {}: {e}", dir.display())))?;
            Ok(Arc::new(fs))
        }
        Target::S3 { bucket, .. } => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &cfg.endpoint {
                b = b
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            if let Some(region) = &cfg.region {
                b = b.with_region(region);
            }
            if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            b = b.with_virtual_hosted_style_request(!cfg.path_style);
            let s3 = b
                .build()
                .map_err(|e| Error::Invalid(format!("store.cold.url {:?}: {e}", cfg.url)))?;
            Ok(Arc::new(s3))
        }
    }
}

impl Tier {
    /// Opens the tier of `cfg` with its cache. `live`: relative path →
    /// bytes of every cold part the manifest names (what the cache may
    /// keep). A read-only open gets a private temporary cache.
    pub(crate) fn open(
        cfg: &ColdConfig,
        data_dir: &Path,
        live: &HashMap<String, u64>,
        read_only: bool,
    ) -> Result<Option<Arc<Self>>, Error> {
        let Some(target) = cfg.target().map_err(Error::Invalid)? else {
            return Ok(None);
        };
        let objects = object_store_for(&target, cfg)?;
        let (prefix, dir) = match &target {
            Target::Dir(d) => (String::new(), Some(d.clone())),
            Target::S3 { prefix, .. } => (prefix.clone(), None),
        };
        let cache_dir = if read_only {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            std::env::temp_dir().join(format!("loupe-cold-cache-{}-{nanos}", std::process::id()))
        } else {
            cfg.cache_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("cold-cache"))
        };
        // Parquet scans name files by absolute path.
        let cache_dir = std::path::absolute(&cache_dir).map_err(io_err(&cache_dir))?;
        let cache = Cache::open(cache_dir, cfg.cache_bytes, read_only, live)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loupe-cold")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the cold tier's runtime: {e}")))?;
        let test_pause = std::env::var("LOUPE_TEST_COLD_MOVE_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis);
        tracing::info!(tier = %cfg.url, hot_days = cfg.hot_days, cache_bytes = cfg.cache_bytes, "cold tier open");
        Ok(Some(Arc::new(Self {
            objects,
            prefix,
            dir,
            describe: cfg.url.clone(),
            runtime: Some(runtime),
            cache,
            test_pause,
        })))
    }

    /// The object key of the part at `rel`.
    fn key(&self, rel: &str) -> Result<Key, Error> {
        let full = if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        };
        Key::parse(&full).map_err(|e| Error::Internal(format!("bad object key {full:?}: {e}")))
    }

    fn object_err(&self, key: &Key) -> impl Fn(object_store::Error) -> Error + '_ {
        let key = key.to_string();
        move |source| Error::Cold {
            key: format!("{}: {key}", self.describe),
            error: Box::new(source),
        }
    }

    /// Runs `fut` on the tier's runtime and waits for it. Blocking.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Internal("the cold tier is closed".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| Error::Internal("a cold tier task was dropped".into()))?
    }

    /// Copies the local file `local` to the part's key and verifies it by
    /// reading it back (length and CRC-32 of every byte). Returns the bytes
    /// copied. An existing object at the key (a copy a crash interrupted
    /// before its commit) is overwritten. Blocking.
    #[tracing::instrument(name = "cold.copy", skip_all, fields(part = %rel))]
    pub(crate) fn copy_in(&self, local: &Path, rel: &str) -> Result<u64, Error> {
        let key = self.key(rel)?;
        let err = self.object_err(&key);
        let (objects, path, put_key, describe) = (
            self.objects.clone(),
            local.to_owned(),
            key.clone(),
            self.describe.clone(),
        );
        let (bytes, crc) =
            self.run(async move { upload(objects, put_key, path, describe).await })?;
        let (back_bytes, back_crc) = self.read_back(&key).map_err(&err)?;
        if (back_bytes, back_crc) != (bytes, crc) {
            return Err(Error::Corrupt {
                path: PathBuf::from(format!("{}/{key}", self.describe)),
                offset: 0,
                reason: format!(
                    "the copy in the cold tier differs from the part ({back_bytes} bytes, crc {back_crc:08x}; expected {bytes}, {crc:08x})"
                ),
            });
        }
        if let Some(root) = &self.dir {
            sync_tree(root, &root.join(rel))?;
        }
        Ok(bytes)
    }

    /// Length and CRC-32 of the object at `key`, as stored.
    fn read_back(&self, key: &Key) -> Result<(u64, u32), object_store::Error> {
        let objects = self.objects.clone();
        let key = key.clone();
        let got = self.run(async move {
            let mut stream = match objects.get(&key).await {
                Ok(r) => r.into_stream(),
                Err(e) => return Ok(Err(e)),
            };
            let mut hasher = crc32fast::Hasher::new();
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        hasher.update(&c);
                        total += c.len() as u64;
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok((total, hasher.finalize())))
        });
        match got {
            Ok(r) => r,
            Err(e) => Err(object_store::Error::Generic {
                store: "cold",
                source: Box::new(e),
            }),
        }
    }

    /// A local path holding cold part `meta`'s file: its cached copy,
    /// downloaded first when missing (and checked against the manifest's
    /// size). Blocking.
    pub(crate) fn fetch(&self, meta: &PartMeta) -> Result<PathBuf, Error> {
        let path = self.cache.path_of(&meta.path);
        if self.cache.touch(&meta.path) {
            return Ok(path);
        }
        let _span =
            tracing::debug_span!("cold.fetch", part = meta.id, bytes = meta.bytes).entered();
        let key = self.key(&meta.path)?;
        let tmp = self.cache.temp_of(&meta.path);
        if let Some(parent) = tmp.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let objects = self.objects.clone();
        let (get_key, dest) = (key.clone(), tmp.clone());
        let describe = self.describe.clone();
        let fetched = self.run(async move {
            let cold = |e| Error::Cold {
                key: format!("{describe}: {get_key}"),
                error: Box::new(e),
            };
            let mut stream = objects.get(&get_key).await.map_err(cold)?.into_stream();
            let mut file = tokio::fs::File::create(&dest)
                .await
                .map_err(io_err(&dest))?;
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(cold)?;
                total += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(io_err(&dest))?;
            }
            file.flush().await.map_err(io_err(&dest))?;
            Ok(total)
        });
        let bytes = match fetched {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if bytes != meta.bytes {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Corrupt {
                path: PathBuf::from(format!("{}/{key}", self.describe)),
                offset: 0,
                reason: format!(
                    "the cold copy has {bytes} bytes, the manifest says {}",
                    meta.bytes
                ),
            });
        }
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.cache.insert(&meta.path, bytes);
        tracing::debug!(part = meta.id, bytes, "fetched a cold part");
        Ok(path)
    }

    /// Deletes the object of the part at `rel` (retention, or a copy whose
    /// commit was abandoned). A missing object is not an error. Blocking.
    pub(crate) fn delete(&self, rel: &str) -> Result<(), Error> {
        let key = self.key(rel)?;
        let objects = self.objects.clone();
        let err_key = format!("{}: {key}", self.describe);
        self.run(async move {
            match objects.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Error::Cold {
                    key: err_key,
                    error: Box::new(e),
                }),
            }
        })
    }

    /// Whether an object exists at the part's key. Blocking.
    #[cfg(test)]
    pub(crate) fn exists(&self, rel: &str) -> Result<bool, Error> {
        let key = self.key(rel)?;
        let objects = self.objects.clone();
        self.run(async move {
            match objects.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(Error::Internal(e.to_string())),
            }
        })
    }
}

/// Streams the local file `path` to `key` (multipart when large), returning
/// its length and CRC-32. Errors name `describe` (never a secret).
async fn upload(
    objects: Arc<dyn ObjectStore>,
    key: Key,
    path: PathBuf,
    describe: String,
) -> Result<(u64, u32), Error> {
    let cold = |e| Error::Cold {
        key: format!("{describe}: {key}"),
        error: Box::new(e),
    };
    let mut file = tokio::fs::File::open(&path).await.map_err(io_err(&path))?;
    let mut writer = object_store::buffered::BufWriter::new(objects, key.clone());
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
            .await
            .map_err(io_err(&path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Err(e) = writer.put(Bytes::copy_from_slice(&buf[..n])).await {
            let _ = writer.abort().await;
            return Err(cold(e));
        }
    }
    writer.shutdown().await.map_err(|e| {
        cold(object_store::Error::Generic {
            store: "cold",
            source: Box::new(e),
        })
    })?;
    Ok((total, hasher.finalize()))
}

/// Where `loupe export` writes: a directory or an S3 prefix, through the
/// same client as the cold tier.
pub struct Destination {
    objects: Arc<dyn ObjectStore>,
    prefix: String,
    dir: Option<PathBuf>,
    describe: String,
}

impl Destination {
    /// The destination `url` (`s3://bucket/prefix` or an absolute
    /// directory), with `s3`'s endpoint, region, keys and path style (the
    /// `[store.cold]` section's S3 settings, over the `AWS_*`
    /// environment). `flag` names the option in errors.
    pub fn new(url: &str, s3: &ColdConfig, flag: &str) -> Result<Self, Error> {
        let target = Target::parse(url, flag).map_err(Error::Invalid)?;
        let objects = object_store_for(&target, s3)?;
        let (prefix, dir) = match &target {
            Target::Dir(d) => (String::new(), Some(d.clone())),
            Target::S3 { prefix, .. } => (prefix.clone(), None),
        };
        Ok(Self {
            objects,
            prefix,
            dir,
            describe: url.to_owned(),
        })
    }

    /// Copies the local file `local` to `name` under the destination and
    /// checks the stored size. Returns the bytes written and where.
    pub async fn put_file(&self, name: &str, local: &Path) -> Result<(u64, String), Error> {
        let full = if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        };
        let key = Key::parse(&full)
            .map_err(|e| Error::Invalid(format!("cannot name an object {full:?}: {e}")))?;
        let (bytes, _) = upload(
            self.objects.clone(),
            key.clone(),
            local.to_owned(),
            self.describe.clone(),
        )
        .await?;
        let stored = self.objects.head(&key).await.map_err(|e| Error::Cold {
            key: format!("{}: {key}", self.describe),
            error: Box::new(e),
        })?;
        if stored.size != bytes {
            return Err(Error::Corrupt {
                path: PathBuf::from(format!("{}/{name}", self.describe)),
                offset: 0,
                reason: format!("{} bytes stored of {bytes} written", stored.size),
            });
        }
        if let Some(root) = &self.dir {
            sync_tree(root, &root.join(name))?;
        }
        let at = format!("{}/{name}", self.describe.trim_end_matches('/'));
        Ok((bytes, at))
    }
}

/// Fsyncs `file` and every directory from its parent up to `root`, so a
/// copy into a directory tier survives power loss before the manifest
/// names it.
fn sync_tree(root: &Path, file: &Path) -> Result<(), Error> {
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .map_err(io_err(file))?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io_err(d))?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
