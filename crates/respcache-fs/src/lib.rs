//! A respcache backend on plain files: content-addressed, deduplicated,
//! streaming both ways with flat memory, checked on every read, and safe
//! for many processes on one directory.
//!
//! ```
//! use http_body_util::BodyExt;
//! use respcache_core::{CachePolicy, StreamingCacheManager};
//! use respcache_fs::StreamingManager;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let cache = StreamingManager::new(dir.path().to_path_buf());
//!
//! let url = url::Url::parse("https://example.com/video")?;
//! let request = http::Request::get(url.as_str()).body(())?;
//! let origin = http::Response::builder()
//!     .header("cache-control", "max-age=60")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"frames")))?;
//! let policy = CachePolicy::new(&request, &origin);
//!
//! // The caller reads the origin's body as it arrives; the cache stores it
//! // on the way and commits once the body is complete.
//! let response = cache.put_stream("GET:video".into(), origin, policy, url).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "frames");
//!
//! let (hit, _policy) = cache.get_stream("GET:video").await?.expect("committed");
//! assert_eq!(hit.into_body().collect().await?.to_bytes(), "frames");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # On disk
//!
//! ```text
//! ROOT/cache-v2/metadata/<key-id>.json   one per key: the entry's metadata as JSON
//! ROOT/cache-v2/content/<sha256 hex>     one name per distinct body (the dedup index)
//! ROOT/cache-v2/links/<link-id>          a hard link to the body, one per entry
//! ROOT/cache-v2/tmp/<pid>-<random>.*     files being written
//! ROOT/cache-v2/tags/<tag-id>/<key-id>   the tag index: an empty file per tagged entry
//! ```
//!
//! The key id is the hex of the key while that fits a file name, else
//! `sha256-` and the hash of the key; the full key is in the metadata and
//! compared on read. A body is written to `tmp/` while it is hashed, given
//! the entry's own hard link (to an existing identical body when there is
//! one), and the entry is committed by renaming its metadata into place.
//! Reads go through the entry's link, so the kernel's link count decides
//! when a shared body's bytes are freed: deleting or overwriting one key
//! never takes bytes another key uses, with no lock between processes.
//!
//! Every read checks the body's length and XXH3-64 (recorded at write time
//! beside the SHA-256 address): a damaged body is never served. A buffered
//! `get` answers `None` and drops the entry; a streamed body ends in an
//! error before its last chunk, and the entry is dropped.

#![deny(rustdoc::broken_intra_doc_links)]

mod gc;
mod hot;
mod layout;
mod list;
mod metadata;
mod read;
mod remove;
mod stream_put;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use respcache_core::{
    CacheError, CacheManager, CachePolicy, HttpResponse, Result, StoreHints, StreamingBody,
    StreamingCacheManager, StreamingError,
};
use url::Url;

pub use gc::GcReport;
use metadata::CacheMetadata;
pub use metadata::FORMAT_VERSION;

/// The chunk size of streamed reads unless [`Builder::chunk_size`] says otherwise.
pub const DEFAULT_READ_CHUNK_SIZE: usize = 128 * 1024;

/// The largest body kept in memory unless [`Builder::hot_body_limit`] says
/// otherwise.
pub const DEFAULT_HOT_BODY_LIMIT: usize = 1024 * 1024;

/// Caches responses as files under a root directory; see the crate docs.
#[derive(Debug, Clone)]
pub struct StreamingManager {
    shared: Arc<Shared>,
}

/// Options for a [`StreamingManager`], from [`StreamingManager::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    root: PathBuf,
    options: Options,
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) chunk_size: usize,
    pub(crate) max_size: Option<u64>,
    pub(crate) max_body_size: Option<u64>,
    pub(crate) link_grace: std::time::Duration,
    pub(crate) gc_at_start: bool,
    pub(crate) metadata_cache_entries: usize,
    pub(crate) hot_body_bytes: usize,
    pub(crate) hot_body_limit: usize,
    pub(crate) recheck_interval: std::time::Duration,
}

impl Builder {
    /// Evict entries once the stored bodies, with the temporary files of
    /// this process's stores under way, exceed `bytes` (down to nine tenths
    /// of it): first those past their lifetime, then the least recently
    /// used. A store that would take the temporary files alone past it is
    /// abandoned (a streamed body still reaches its caller).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.options.max_size = Some(bytes);
        self
    }

    /// Do not store bodies larger than `bytes`; a streaming put passes such
    /// a body through uncached, a buffered put fails with
    /// [`CacheError::TooLarge`].
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.options.max_body_size = Some(bytes);
        self
    }

    /// How long `gc` leaves a link that no metadata names (default 60 s).
    /// A put makes its link a moment before the metadata that names it, so
    /// this must exceed the longest such moment on a busy disk.
    pub fn orphan_link_grace(mut self, grace: std::time::Duration) -> Self {
        self.options.link_grace = grace;
        self
    }

    /// Whether [`Builder::build`] starts a background `gc` (default true).
    /// Turn it off where something else runs [`StreamingManager::gc`].
    pub fn gc_at_start(mut self, run: bool) -> Self {
        self.options.gc_at_start = run;
        self
    }

    /// How many entries' metadata this process keeps in memory to skip a
    /// file read on a hit (default 8192; 0 turns it off, and with it the
    /// bodies of [`Builder::hot_body_bytes`]). A body not kept in memory is
    /// still read through its entry's own link and checked.
    pub fn metadata_cache_entries(mut self, entries: usize) -> Self {
        self.options.metadata_cache_entries = entries;
        self
    }

    /// How many bytes of bodies (each at most [`Builder::hot_body_limit`])
    /// this process keeps in memory, checked when they were read, to
    /// answer hits with no system call and no copy (default 8 MiB; 0 turns
    /// it off). Bodies being read to be kept count toward it.
    pub fn hot_body_bytes(mut self, bytes: usize) -> Self {
        self.options.hot_body_bytes = bytes;
        self
    }

    /// The largest body kept in memory under [`Builder::hot_body_bytes`]
    /// (default [`DEFAULT_HOT_BODY_LIMIT`], 1 MiB). A larger one is always
    /// streamed from its file.
    pub fn hot_body_limit(mut self, bytes: usize) -> Self {
        self.options.hot_body_limit = bytes;
        self
    }

    /// How long an entry kept in memory is served before its metadata file
    /// is looked at again (default 250 ms). This process's own writes and
    /// deletes are seen at once; another process's sharing the directory,
    /// at most this much later. Zero looks every time.
    pub fn recheck_interval(mut self, interval: std::time::Duration) -> Self {
        self.options.recheck_interval = interval;
        self
    }

    /// The chunk size of streamed reads (at least 1 byte).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.options.chunk_size = bytes.max(1);
        self
    }

    /// The manager. Inside a tokio runtime it starts a [`gc`] in the
    /// background (unless [`Builder::gc_at_start`] says not to), which
    /// returns at once when there is nothing to do.
    ///
    /// [`gc`]: StreamingManager::gc
    pub fn build(self) -> StreamingManager {
        let hot = hot::Hot::new(
            self.options.metadata_cache_entries,
            self.options.hot_body_bytes,
            self.options.hot_body_limit,
            self.options.recheck_interval,
        );
        let manager = StreamingManager {
            shared: Arc::new(Shared {
                layout: layout::Layout::new(&self.root),
                options: self.options,
                dirs_ready: AtomicBool::new(false),
                recency: Mutex::new(HashMap::new()),
                stored: AtomicU64::new(UNKNOWN),
                in_flight: Arc::default(),
                hot,
            }),
        };
        if let (true, Ok(runtime)) = (
            manager.shared.options.gc_at_start,
            tokio::runtime::Handle::try_current(),
        ) {
            let shared = manager.shared.clone();
            runtime.spawn_blocking(move || {
                if let Err(err) = gc::run(&shared, true) {
                    tracing::warn!(error = %err, "start-up gc failed");
                }
            });
        }
        manager
    }
}

const UNKNOWN: u64 = u64::MAX;

/// Bodies up to this size, of entries whose metadata this process holds,
/// are read without a hop to the blocking pool (larger ones only when
/// kept in memory).
const INLINE_READ: u64 = 64 * 1024;

/// State every clone of a manager shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) layout: layout::Layout,
    pub(crate) options: Options,
    dirs_ready: AtomicBool,
    /// Last read of each key by this process, in nanoseconds since the epoch.
    recency: Mutex<HashMap<String, u64>>,
    /// Bytes of stored bodies as far as this process knows, or `UNKNOWN`.
    stored: AtomicU64,
    /// Bytes written by this process's stores under way (temporary files),
    /// counted toward `max_size`.
    pub(crate) in_flight: Arc<AtomicU64>,
    /// Entries this process has read: metadata, and small
    /// checked bodies; see `hot`.
    pub(crate) hot: hot::Hot,
}

/// What identifies one version of a file: a rename puts a new inode in
/// place, a write in place changes the size or the modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    /// A stamp that stands for some version, in tests.
    #[cfg(test)]
    pub(crate) const fn fixed(inode: u64) -> Self {
        Self {
            inode,
            len: 0,
            modified: None,
        }
    }

    pub(crate) fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            inode,
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

impl Shared {
    pub(crate) fn ensure_dirs(&self) -> std::result::Result<(), CacheError> {
        if !self.dirs_ready.load(Ordering::Relaxed) {
            self.layout
                .create_dirs()
                .map_err(|e| CacheError::io("create", &self.layout.base, e))?;
            self.dirs_ready.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn cached(&self, key: &str) -> Option<(Arc<CacheMetadata>, FileStamp)> {
        match self.hot.find(key) {
            hot::Found::Current(kept) | hot::Found::Unconfirmed(kept) => {
                Some((kept.meta, kept.stamp))
            }
            hot::Found::Nothing => None,
        }
    }

    pub(crate) fn cache(&self, meta: Arc<CacheMetadata>, stamp: FileStamp, since: hot::Since) {
        self.hot.keep(meta, stamp, since);
    }

    pub(crate) fn uncache(&self, key: &str) {
        self.hot.forget(key);
    }

    pub(crate) fn forget_dirs(&self) {
        self.dirs_ready.store(false, Ordering::Relaxed);
    }

    fn touch(&self, key: &str) {
        if self.options.max_size.is_some()
            && let Ok(mut recency) = self.recency.lock()
        {
            recency.insert(key.to_owned(), now_nanos());
        }
    }

    pub(crate) fn last_used(&self, key: &str) -> Option<u64> {
        self.recency.lock().ok()?.get(key).copied()
    }

    /// Drops what this process remembers of `key` (it was deleted).
    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut recency) = self.recency.lock() {
            recency.remove(key);
        }
        self.uncache(key);
    }

    pub(crate) fn set_stored(&self, bytes: u64) {
        self.stored.store(bytes, Ordering::Relaxed);
    }

    /// Accounts for a committed body and evicts when over the size limit.
    pub(crate) fn note_stored(&self, added: u64, replaced: Option<u64>) {
        let Some(limit) = self.options.max_size else {
            return;
        };
        let known = self
            .stored
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |stored| {
                (stored != UNKNOWN).then(|| {
                    stored
                        .saturating_add(added)
                        .saturating_sub(replaced.unwrap_or(0))
                })
            })
            .ok()
            .map(|before| {
                before
                    .saturating_add(added)
                    .saturating_sub(replaced.unwrap_or(0))
            });
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        if known.is_none_or(|stored| stored.saturating_add(in_flight) > limit)
            && let Err(err) = gc::evict(self, limit)
        {
            tracing::warn!(error = %err, "eviction failed");
        }
    }

    fn note_deleted(&self, removed: u64) {
        let _ = self
            .stored
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |stored| {
                (stored != UNKNOWN).then(|| stored.saturating_sub(removed))
            });
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl StreamingManager {
    /// A manager on `root_path` with default options.
    pub fn new(root_path: PathBuf) -> Self {
        Self::builder(root_path).build()
    }

    /// Options for a manager on `root_path`.
    pub fn builder(root_path: PathBuf) -> Builder {
        Builder {
            root: root_path,
            options: Options {
                chunk_size: DEFAULT_READ_CHUNK_SIZE,
                max_size: None,
                max_body_size: None,
                link_grace: gc::LINK_GRACE,
                gc_at_start: true,
                metadata_cache_entries: 8192,
                hot_body_bytes: 8 * 1024 * 1024,
                hot_body_limit: DEFAULT_HOT_BODY_LIMIT,
                recheck_interval: std::time::Duration::from_millis(250),
            },
        }
    }

    /// Removes temporary files of writers that no longer run, links no
    /// entry names (after a grace period), bodies no entry uses, and
    /// metadata that does not decode. Safe while other managers, in this
    /// process or others, use the same root.
    pub async fn gc(&self) -> Result<GcReport> {
        let shared = self.shared.clone();
        Ok(tokio::task::spawn_blocking(move || gc::run(&shared, false)).await??)
    }

    /// The directory all files live under (`ROOT/cache-v2`).
    pub fn cache_dir(&self) -> PathBuf {
        self.shared.layout.base.clone()
    }

    /// The metadata file of `cache_key` (it may not exist).
    pub fn metadata_path(&self, cache_key: &str) -> PathBuf {
        self.shared.layout.metadata_path(cache_key)
    }

    /// The file the body of `cache_key` is read from, if the key is stored.
    pub async fn body_path(&self, cache_key: &str) -> Result<Option<PathBuf>> {
        let shared = self.shared.clone();
        let key = cache_key.to_owned();
        let opened = tokio::task::spawn_blocking(move || read::open(&shared, &key)).await??;
        Ok(opened.map(|o| self.shared.layout.link_path(&o.meta.link)))
    }

    /// An entry's record and its response, the body streamed or, when
    /// small, whole.
    async fn read_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(Arc<CacheMetadata>, http::Response<StreamingBody>)>> {
        let chunk_size = self.shared.options.chunk_size as u64;
        // A small entry this process knows is read on the calling thread:
        // a stat, an open and one read, from the page cache, cost less
        // than a hop to the blocking pool and back. Everything else, and
        // every first read, takes the hop.
        let found = match read::known_small(&self.shared, cache_key, INLINE_READ)? {
            Some((meta, body)) => Some((meta, Ok(body))),
            None => {
                let key = cache_key.to_owned();
                // Small bodies are read whole in the same blocking call: one
                // hop.
                self.blocking(move |shared| match read::open(shared, &key)? {
                    Some(opened) if opened.meta.body_len <= chunk_size => {
                        let read = read::read_whole(shared, opened)?;
                        if let Some((meta, body)) = &read {
                            shared.hot.keep_body(meta, body);
                        }
                        Ok(read.map(|(meta, body)| (meta, Ok(body))))
                    }
                    // A larger body is read whole only to be kept in
                    // memory, in room held for it in the budget: the
                    // next hits on it cost no system call and no copy.
                    // Otherwise (no room, or another caller is reading
                    // it) it is streamed.
                    Some(opened) if shared.hot.reserve(&opened.meta) => {
                        let meta = Arc::clone(&opened.meta);
                        let read = read::read_whole(shared, opened);
                        let body = match &read {
                            Ok(Some((_, body))) => Some(body),
                            _ => None,
                        };
                        shared.hot.fill(&meta, body);
                        Ok(read?.map(|(meta, body)| (meta, Ok(body))))
                    }
                    Some(opened) => Ok(Some((Arc::clone(&opened.meta), Err(opened)))),
                    None => Ok(None),
                })
                .await?
            }
        };
        let Some((meta, body)) = found else {
            return Ok(None);
        };
        self.shared.touch(cache_key);
        let parts = head_parts(&meta)?;
        let body = match body {
            Ok(bytes) => StreamingBody::buffered(bytes),
            Err(opened) => {
                let len = opened.meta.body_len;
                let chunks = read::stream(self.shared.clone(), opened);
                StreamingBody::from_chunks(chunks, len)
            }
        };
        Ok(Some((meta, http::Response::from_parts(parts, body))))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || work(&shared)).await?
    }
}

fn head_parts(meta: &CacheMetadata) -> std::result::Result<http::response::Parts, CacheError> {
    // Straight from the record: one copy of the headers per hit.
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::from_u16(meta.status).map_err(|_| {
        CacheError::InvalidResponse(format!("status {} is outside 100..=999", meta.status))
    })?;
    parts.version = meta.version.into();
    parts.headers = meta.headers.clone();
    parts.extensions.insert(meta.url.clone());
    Ok(parts)
}

#[async_trait::async_trait]
impl CacheManager for StreamingManager {
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let key = cache_key.to_owned();
        let found = self
            .blocking(move |shared| match read::open(shared, &key)? {
                Some(opened) => read::read_whole(shared, opened),
                None => Ok(None),
            })
            .await?;
        Ok(found.map(|(meta, body)| {
            self.shared.touch(cache_key);
            (meta.head(body), meta.policy.clone())
        }))
    }

    async fn put(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.put_with(cache_key, response, policy, StoreHints::default())
            .await
    }

    async fn put_with(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<HttpResponse> {
        if let Some(limit) = self.shared.options.max_body_size
            && response.body.len() as u64 > limit
        {
            return Err(Box::new(CacheError::TooLarge {
                key: cache_key,
                size: response.body.len() as u64,
                limit,
            }));
        }
        self.blocking(move |shared| {
            let mut writer = write::BodyWriter::create(shared, &cache_key)?;
            writer.write(&response.body)?;
            let head = write::Head {
                key: cache_key,
                parts: response.parts()?,
                url: response.url.clone(),
                policy,
                expires_at: write::expires_at(&hints),
                tags: hints.tags.clone().unwrap_or_default(),
            };
            writer.commit(shared, head)?;
            Ok(response)
        })
        .await
    }

    async fn delete(&self, cache_key: &str) -> Result<()> {
        let key = cache_key.to_owned();
        let removed = self
            .blocking(move |shared| {
                let removed = remove::delete(&shared.layout, &key)
                    .map_err(|e| CacheError::io("delete", shared.layout.metadata_path(&key), e))?;
                shared.forget(&key);
                Ok(removed)
            })
            .await?;
        if let Some(len) = removed {
            self.shared.note_deleted(len);
        }
        Ok(())
    }

    async fn update_head(
        &self,
        cache_key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
    ) -> Result<bool> {
        self.update_head_with(cache_key, head, policy, StoreHints::default())
            .await
    }

    async fn update_head_with(
        &self,
        cache_key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<bool> {
        let key = cache_key.to_owned();
        let expires_at = write::expires_at(&hints);
        let tags = hints.tags;
        self.blocking(move |shared| {
            write::update_head(shared, &key, head, policy, expires_at, tags)
        })
        .await
    }

    fn usage(&self) -> respcache_core::Usage {
        // Counted as bodies come and go while a size limit is set (other
        // processes on the directory aside); unknown otherwise.
        match self.shared.stored.load(Ordering::Relaxed) {
            UNKNOWN => respcache_core::Usage::default(),
            bytes => respcache_core::Usage::bytes(bytes),
        }
    }

    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        let prefix = prefix.to_owned();
        self.blocking(move |shared| Ok(Some(list::keys(&shared.layout, &prefix)?)))
            .await
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        let tag = tag.to_owned();
        self.blocking(move |shared| Ok(Some(list::tagged(&shared.layout, &tag)?)))
            .await
    }
}

#[async_trait::async_trait]
impl StreamingCacheManager for StreamingManager {
    type Body = StreamingBody;

    async fn get_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<StreamingBody>, CachePolicy)>> {
        let Some((meta, response)) = self.read_stream(cache_key).await? else {
            return Ok(None);
        };
        Ok(Some((response, meta.policy.clone())))
    }

    async fn get_stream_response(
        &self,
        cache_key: &str,
    ) -> Result<Option<http::Response<StreamingBody>>> {
        // The policy stays in the record: no copy of it per hit.
        Ok(self
            .read_stream(cache_key)
            .await?
            .map(|(_meta, response)| response))
    }

    async fn put_stream<B>(
        &self,
        cache_key: String,
        response: http::Response<B>,
        policy: CachePolicy,
        request_url: Url,
    ) -> Result<http::Response<StreamingBody>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<StreamingError>,
    {
        self.put_stream_with(
            cache_key,
            response,
            policy,
            request_url,
            StoreHints::default(),
        )
        .await
    }

    async fn put_stream_with<B>(
        &self,
        cache_key: String,
        response: http::Response<B>,
        policy: CachePolicy,
        request_url: Url,
        hints: StoreHints,
    ) -> Result<http::Response<StreamingBody>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<StreamingError>,
    {
        let (parts, body) = response.into_parts();
        let head = write::Head {
            key: cache_key,
            parts: respcache_core::clone_head(&parts),
            url: request_url,
            policy,
            expires_at: write::expires_at(&hints),
            tags: hints.tags.clone().unwrap_or_default(),
        };
        let tee = stream_put::start(self.shared.clone(), head, body);
        let commit = tee.commit_watch();
        let mut response = http::Response::from_parts(parts, StreamingBody::boxed(tee));
        response.extensions_mut().insert(commit);
        Ok(response)
    }

    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<StreamingBody>> {
        Ok(response.into_http()?.map(StreamingBody::buffered))
    }
}
