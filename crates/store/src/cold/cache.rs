//! The local cache of cold parts: whole files under the cache directory,
//! at the part's relative path, bounded in bytes, least recently read
//! evicted first.
//!
//! Whole files, not ranges, because the store's read path (DataFusion's
//! Parquet scan, the id-index row selections) reads local files; a part
//! is fetched once per residency and then read like a hot one. A file read
//! in the last [`PIN`] is never evicted: a query that listed it may not
//! have opened it yet (an open file survives its unlinking, a listed one
//! does not). So the bound can be exceeded by what was read in the last
//! [`PIN`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::Error;
use crate::wal::io_err;

/// How long after its last read a cached file is protected from eviction.
pub(crate) const PIN: Duration = Duration::from_secs(30);

/// The cache of one store.
pub(crate) struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// A read-only open's private directory, removed when the store drops.
    private: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    total: u64,
    /// Ticks on every read: the LRU order.
    clock: u64,
}

struct Entry {
    bytes: u64,
    used: u64,
    at: Instant,
}

impl Cache {
    /// Opens the cache in `dir`, keeping the files of `live` (relative path
    /// → size of each cold part) that are complete and removing the rest
    /// (temp files of interrupted downloads, parts no longer cold).
    pub(crate) fn open(
        dir: PathBuf,
        max_bytes: u64,
        private: bool,
        live: &HashMap<String, u64>,
    ) -> Result<Self, Error> {
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut state = State::default();
        let old = Instant::now().checked_sub(PIN).unwrap_or_else(Instant::now);
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
                let entry = entry.map_err(io_err(&d))?;
                let path = entry.path();
                let meta = entry.metadata().map_err(io_err(&path))?;
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(&dir)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                match live.get(&rel) {
                    Some(&bytes) if bytes == meta.len() => {
                        state.total += bytes;
                        state.entries.insert(
                            rel,
                            Entry {
                                bytes,
                                used: 0,
                                at: old,
                            },
                        );
                    }
                    _ => {
                        std::fs::remove_file(&path).map_err(io_err(&path))?;
                    }
                }
            }
        }
        let cache = Self {
            dir,
            max_bytes,
            private,
            state: Mutex::new(state),
        };
        cache.evict();
        Ok(cache)
    }

    /// Where the file of the part at `rel` sits when cached.
    pub(crate) fn path_of(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// A temp path beside `rel`'s for a download in progress.
    pub(crate) fn temp_of(&self, rel: &str) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = self.path_of(rel).into_os_string();
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        PathBuf::from(name)
    }

    /// Marks `rel` read now; false when it is not cached.
    pub(crate) fn touch(&self, rel: &str) -> bool {
        let mut st = self.state.lock();
        st.clock += 1;
        let clock = st.clock;
        match st.entries.get_mut(rel) {
            Some(e) => {
                e.used = clock;
                e.at = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Records a file just placed at `rel`'s path, then evicts down to the
    /// bound.
    pub(crate) fn insert(&self, rel: &str, bytes: u64) {
        {
            let mut st = self.state.lock();
            st.clock += 1;
            let used = st.clock;
            let old = st.entries.insert(
                rel.to_owned(),
                Entry {
                    bytes,
                    used,
                    at: Instant::now(),
                },
            );
            st.total = st.total - old.map_or(0, |e| e.bytes) + bytes;
        }
        self.evict();
    }

    /// Forgets `rel` and deletes its file (its part left the store).
    pub(crate) fn remove(&self, rel: &str) {
        let removed = {
            let mut st = self.state.lock();
            let e = st.entries.remove(rel);
            st.total -= e.as_ref().map_or(0, |e| e.bytes);
            e.is_some()
        };
        if removed {
            remove_quietly(&self.path_of(rel));
        }
    }

    /// Bytes cached now.
    pub(crate) fn bytes(&self) -> u64 {
        self.state.lock().total
    }

    /// Deletes least recently read files not read within [`PIN`] until the
    /// cache is within its bound (or only pinned files are left).
    fn evict(&self) {
        let victims: Vec<String> = {
            let mut st = self.state.lock();
            if st.total <= self.max_bytes {
                return;
            }
            let mut order: Vec<(u64, String, u64)> = st
                .entries
                .iter()
                .filter(|(_, e)| e.at.elapsed() >= PIN)
                .map(|(k, e)| (e.used, k.clone(), e.bytes))
                .collect();
            order.sort_unstable();
            let mut victims = Vec::new();
            for (_, rel, bytes) in order {
                if st.total <= self.max_bytes {
                    break;
                }
                st.entries.remove(&rel);
                st.total -= bytes;
                victims.push(rel);
            }
            victims
        };
        for rel in &victims {
            remove_quietly(&self.path_of(rel));
        }
        if !victims.is_empty() {
            tracing::debug!(files = victims.len(), "evicted cold parts from the cache");
        }
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if self.private {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not delete a cached cold part");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_its_bound_evicting_the_least_recently_read_unpinned_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("c");
        // A stale temp and a file of no cold part are removed at open; a
        // complete live file is kept.
        std::fs::create_dir_all(root.join("parts/p")).expect("mkdir");
        std::fs::write(root.join("parts/p/a.parquet"), [0u8; 10]).expect("a");
        std::fs::write(root.join("parts/p/x.parquet.1.2.tmp"), b"half").expect("tmp");
        std::fs::write(root.join("parts/p/gone.parquet"), b"old").expect("gone");
        let live = HashMap::from([
            ("parts/p/a.parquet".to_owned(), 10),
            ("parts/p/b.parquet".to_owned(), 10),
            ("parts/p/c.parquet".to_owned(), 10),
        ]);
        let cache = Cache::open(root.clone(), 25, false, &live).expect("open");
        assert!(!root.join("parts/p/x.parquet.1.2.tmp").exists());
        assert!(!root.join("parts/p/gone.parquet").exists());
        assert_eq!(cache.bytes(), 10);
        // b arrives: 20 bytes, within the bound.
        std::fs::write(root.join("parts/p/b.parquet"), [0u8; 10]).expect("b");
        cache.insert("parts/p/b.parquet", 10);
        assert_eq!(cache.bytes(), 20);
        // c arrives: a (read at open, unpinned) goes; b is pinned (just
        // read), so it stays.
        std::fs::write(root.join("parts/p/c.parquet"), [0u8; 10]).expect("c");
        cache.insert("parts/p/c.parquet", 10);
        assert_eq!(cache.bytes(), 20);
        assert!(!root.join("parts/p/a.parquet").exists());
        assert!(cache.touch("parts/p/b.parquet") && !cache.touch("parts/p/a.parquet"));
        cache.remove("parts/p/b.parquet");
        assert!(!root.join("parts/p/b.parquet").exists());
        assert_eq!(cache.bytes(), 10);
    }
}
