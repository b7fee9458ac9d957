//! A respcache backend on [`cacache`]: every entry is one cacache entry,
//! content-addressed and integrity-checked on every read.
//!
//! ```
//! use respcache_cacache::CACacheManager;
//! use respcache_core::{CacheManager, CachePolicy, HttpResponse};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let cache = CACacheManager::new(dir.path().join("http-cache"), true);
//!
//! let url = url::Url::parse("https://example.com/")?;
//! let request = http::Request::get(url.as_str()).body(())?;
//! let response = http::Response::builder()
//!     .header("cache-control", "max-age=60")
//!     .body(bytes::Bytes::from_static(b"hello"))?;
//! let policy = CachePolicy::new(&request, &response);
//!
//! cache.put("GET:https://example.com/".into(), HttpResponse::from_http(response, url), policy).await?;
//! let (hit, _) = cache.get("GET:https://example.com/").await?.expect("stored");
//! assert_eq!(hit.body, "hello");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Format
//!
//! The cacache content of an entry is [`FORMAT_PREFIX`] followed by the
//! bincode 1.3 encoding of the key, the response and the policy. The key is
//! stored so that a read can prove the entry is the one asked for, and so
//! that two keys never share one content file: deleting one key's content
//! can never take another key's away. An entry with another prefix is
//! treated as a miss and dropped.
//!
//! # In memory
//!
//! Entries of at most 64 KiB that this process has read are kept decoded
//! in memory (up to [`Builder::hot_body_bytes`], 8 MiB by default), with
//! the version of their index bucket. cacache checked the body when it
//! was read; a later hit is served from memory while the entry's index
//! bucket is unchanged, which one small read of the bucket confirms. A
//! bucket names its content's digest, so every manager and process on the
//! directory agrees at once. [`Builder::recheck_interval`] trades that
//! for hits without any system call: another process's writes are then
//! seen within the interval.

#![deny(rustdoc::broken_intra_doc_links)]

mod hot;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use respcache_core::{BoxError, CacheError, CacheManager, CachePolicy, HttpResponse, Result};

pub use store::FORMAT_PREFIX;

/// Caches responses in a cacache directory.
#[derive(Clone)]
pub struct CACacheManager {
    /// Directory where the cache is stored.
    pub path: PathBuf,
    /// How entries are removed; see [`CACacheManager::new`].
    pub remove_opts: cacache::RemoveOpts,
    hot: Arc<hot::Hot>,
}

/// The default of [`Builder::hot_body_bytes`].
pub const DEFAULT_HOT_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The default of [`Builder::recheck_interval`].
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::ZERO;

impl CACacheManager {
    /// A manager on the cache directory `path` (created on first write).
    ///
    /// With `remove_fully`, `delete` removes the entry's index bucket and
    /// content from disk; without it, deletion only appends a tombstone to
    /// the index and the content stays until [`CACacheManager::clear`].
    pub fn new(path: impl Into<PathBuf>, remove_fully: bool) -> Self {
        Self::builder(path).remove_fully(remove_fully).build()
    }

    /// Options for a manager on the cache directory `path`, the shape
    /// every respcache backend's constructor has (`builder(location)`,
    /// then `build()`). Entries are removed fully unless
    /// [`Builder::remove_fully`] says otherwise.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let cache = respcache_cacache::CACacheManager::builder(dir.path())
    ///     .remove_fully(false)
    ///     .build();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder(path: impl Into<PathBuf>) -> Builder {
        Builder {
            path: path.into(),
            remove_fully: true,
            hot_body_bytes: DEFAULT_HOT_BODY_BYTES,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
        }
    }

    /// Removes every entry.
    pub async fn clear(&self) -> Result<()> {
        self.hot.forget_all();
        let cleared = cacache::clear(&self.path).await;
        // Again: a read while the directory was being emptied may have
        // kept an entry that is now gone, and would serve it until the
        // next recheck.
        self.hot.forget_all();
        match cleared {
            Ok(()) => Ok(()),
            Err(cacache::Error::IoError(err, _)) if err.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            Err(err) => Err(wrap(err, "clear", &self.path)),
        }
    }

    /// Where the index record of `cache_key` lives. For tools and tests
    /// that inspect the cache; the file may hold records of other keys.
    pub fn index_path(&self, cache_key: &str) -> PathBuf {
        store::bucket_path(&self.path, cache_key)
    }

    /// Where the stored content of `cache_key` lives, if it is indexed.
    pub async fn content_path(&self, cache_key: &str) -> Result<Option<PathBuf>> {
        let entry = cacache::metadata(&self.path, cache_key)
            .await
            .map_err(|e| wrap(e, "read index of", &self.path))?;
        Ok(entry.map(|entry| {
            let (algorithm, hex) = entry.integrity.to_hex();
            self.path
                .join("content-v2")
                .join(algorithm.to_string())
                .join(&hex[0..2])
                .join(&hex[2..4])
                .join(&hex[4..])
        }))
    }
}

/// Options for a [`CACacheManager`], from [`CACacheManager::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    path: PathBuf,
    remove_fully: bool,
    hot_body_bytes: usize,
    recheck_interval: Duration,
}

impl Builder {
    /// Whether `delete` removes an entry's index bucket and content from
    /// disk (default `true`), or only appends a tombstone to the index,
    /// leaving the content until [`CACacheManager::clear`].
    pub fn remove_fully(mut self, remove_fully: bool) -> Self {
        self.remove_fully = remove_fully;
        self
    }

    /// How many bytes of small bodies (64 KiB at most each) this process
    /// keeps in memory, decoded, to serve hits without reading the cache
    /// (default [`DEFAULT_HOT_BODY_BYTES`], 8 MiB). 0 turns it off.
    pub fn hot_body_bytes(mut self, bytes: usize) -> Self {
        self.hot_body_bytes = bytes;
        self
    }

    /// How long an entry kept in memory is served before its index bucket
    /// is checked again for another manager's or process's write or
    /// delete (default [`DEFAULT_RECHECK_INTERVAL`], zero: on every hit,
    /// with one small read).
    pub fn recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck_interval = interval;
        self
    }

    /// The manager.
    pub fn build(self) -> CACacheManager {
        CACacheManager {
            path: self.path,
            remove_opts: cacache::RemoveOpts::new().remove_fully(self.remove_fully),
            hot: Arc::new(hot::Hot::new(self.hot_body_bytes, self.recheck_interval)),
        }
    }
}

impl std::fmt::Debug for CACacheManager {
    // `cacache::RemoveOpts` has no Debug of its own.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CACacheManager")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn wrap(err: cacache::Error, op: &'static str, path: &Path) -> BoxError {
    match err {
        cacache::Error::IoError(source, _) => Box::new(CacheError::io(op, path, source)),
        other => Box::new(other),
    }
}

#[async_trait::async_trait]
impl CacheManager for CACacheManager {
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        if let Some(found) = self.hot.find(cache_key) {
            return Ok(Some(found));
        }
        // One small read of the bucket, on this thread: a kept entry whose
        // bucket is unchanged needs nothing more.
        let since = self.hot.since();
        let stamp = hot::Stamp::of(&store::bucket_path(&self.path, cache_key));
        if let Some(found) = stamp
            .as_ref()
            .and_then(|stamp| self.hot.confirm(cache_key, stamp))
        {
            return Ok(Some(found));
        }
        let path = self.path.clone();
        let key = cache_key.to_owned();
        let hot = self.hot.clone();
        let read = tokio::task::spawn_blocking(move || {
            let found = store::read(&path, &key)?;
            if let (Some((response, policy)), Some(stamp)) = (&found, stamp) {
                hot.keep(&key, stamp, since, response, policy);
            }
            Ok(found)
        })
        .await?;
        match read {
            Ok(found) => Ok(found),
            Err(store::ReadError::Damaged(err)) => {
                // Never serve it, never fail the caller for it: drop the
                // entry so the next response can be stored in its place.
                tracing::warn!(error = %err, "dropping a damaged cacache entry");
                if let Err(err) = self.delete_entry(cache_key).await {
                    tracing::warn!(error = %err, "could not drop the damaged entry");
                }
                Ok(None)
            }
            Err(store::ReadError::Failed(err)) => Err(err),
        }
    }

    async fn put(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let path = self.path.clone();
        let hot = self.hot.clone();
        tokio::task::spawn_blocking(move || {
            let written = store::write(&path, &cache_key, &response, &policy);
            hot.forget(&cache_key);
            written?;
            Ok(response)
        })
        .await?
    }

    async fn delete(&self, cache_key: &str) -> Result<()> {
        let removed = self.remove_opts.clone().remove(&self.path, cache_key).await;
        self.hot.forget(cache_key);
        match removed {
            Ok(()) => Ok(()),
            // Nothing indexed, or (with `remove_fully`) content already gone:
            // cacache stops before the bucket then, so finish the job.
            Err(cacache::Error::IoError(err, _)) if err.kind() == std::io::ErrorKind::NotFound => {
                self.delete_entry(cache_key).await
            }
            Err(err) => Err(wrap(err, "delete", &self.path)),
        }
    }

    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        let path = self.path.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            // The index lists each key's latest record; deleted keys
            // have none.
            for entry in cacache::index::ls(&path) {
                let entry = match entry {
                    Ok(entry) => entry,
                    // A cache nothing was ever stored in has no index.
                    Err(cacache::Error::IoError(err, _))
                        if err.kind() == std::io::ErrorKind::NotFound =>
                    {
                        continue;
                    }
                    Err(err) => return Err(wrap(err, "list", &path)),
                };
                if entry.key.starts_with(&prefix) {
                    keys.push(entry.key);
                }
            }
            Ok(Some(keys))
        })
        .await?
    }
}

impl CACacheManager {
    /// Removes the index bucket and the content of `key`, whatever state
    /// they are in.
    async fn delete_entry(&self, cache_key: &str) -> Result<()> {
        let path = self.path.clone();
        let key = cache_key.to_owned();
        let removed = tokio::task::spawn_blocking(move || store::remove(&path, &key)).await?;
        self.hot.forget(cache_key);
        removed
    }
}
