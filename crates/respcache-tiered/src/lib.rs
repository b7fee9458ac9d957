//! A respcache backend of two tiers, any two managers: a near one (memory)
//! in front of a far one (files, Redis).
//!
//! ```
//! use respcache_core::{CacheManager, CachePolicy, HttpResponse};
//! use respcache_fs::StreamingManager;
//! use respcache_memory::MemoryManager;
//! use respcache_tiered::TieredManager;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let cache = TieredManager::new(
//!     MemoryManager::new(64 * 1024 * 1024),
//!     StreamingManager::new(dir.path().to_path_buf()),
//! );
//!
//! let url = url::Url::parse("https://example.com/")?;
//! let request = http::Request::get(url.as_str()).body(())?;
//! let response = http::Response::builder()
//!     .header("cache-control", "max-age=60")
//!     .body(bytes::Bytes::from_static(b"hello"))?;
//! let policy = CachePolicy::new(&request, &response);
//! cache.put("GET:/".into(), HttpResponse::from_http(response, url), policy).await?;
//!
//! // Both tiers hold it; a hit comes from memory.
//! assert!(cache.near().get("GET:/").await?.is_some());
//! assert!(cache.far().get("GET:/").await?.is_some());
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the tiers are used
//!
//! - **Reads** try the near tier, then the far one. What the far tier
//!   returns is promoted into the near tier: a buffered read stores it
//!   there; a streamed read streams it through the near tier's streaming
//!   put, so the caller reads the far tier's body as it arrives and a body
//!   the near tier will not keep (too large) passes through uncopied.
//! - **Writes** go to both: the near tier's entry is dropped first, then
//!   the far tier stores, then the near tier. A far tier that fails fails
//!   the write; a near tier that fails only loses its copy. Two writes of
//!   one key that overlap keep no near copy, since which one the far tier
//!   kept last is unknown.
//! - **Deletes** remove from both.
//! - **Promotions race no write**: a read promotes only if no write of
//!   the key (put, delete, head update through this manager) was under
//!   way when it read the far tier, and drops its copy again if one
//!   started before the copy was stored. So the near tier never holds an
//!   entry the far tier replaced through this manager (a streamed
//!   promotion that a write overtakes may be served for the moment between
//!   its store and its removal).
//! - **Damage** in either tier is a miss there: each tier checks its own
//!   entries, a damaged near entry sends the read to the far tier, and a
//!   far body that turns out damaged while it streams ends in an error and
//!   is not kept in the near tier. A near tier that fails is logged and
//!   read past; a far tier that fails is an error.
//! - **Lifetimes**: a write hands its [`StoreHints`] to both tiers. An
//!   entry promoted from the far tier is kept in the near one for
//!   [`Builder::promoted_lifetime`] (default 60 s): the far tier does not
//!   say how long its entry has left, and another process may change it.
//!
//! The near tier is this manager's own: two managers on one far location
//! (two processes on one directory) each keep their own near copies, so
//! one may serve an entry the other has since replaced or deleted, for at
//! most [`Builder::near_lifetime`] when that is set, else for as long as
//! the write's hint or the promoted lifetime. Set a short
//! `near_lifetime` where that matters.

#![deny(rustdoc::broken_intra_doc_links)]

mod body;
mod stamps;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use respcache_core::{
    CacheManager, CachePolicy, CommitWatch, HttpResponse, Result, StoreHints,
    StreamingCacheManager, StreamingError, abbreviate_key,
};
use url::Url;

pub use body::TieredBody;
use stamps::{Stamp, Stamps};

/// How long a promoted entry is kept in the near tier unless
/// [`Builder::promoted_lifetime`] says otherwise.
pub const DEFAULT_PROMOTED_LIFETIME: Duration = Duration::from_secs(60);

/// A near tier in front of a far one; see the crate docs.
#[derive(Debug, Clone)]
pub struct TieredManager<N, F> {
    // Shared with the tasks that watch a streamed store end.
    near: Arc<N>,
    far: F,
    options: Options,
    stamps: Stamps,
}

#[derive(Debug, Clone)]
struct Options {
    promoted_lifetime: Duration,
    near_lifetime: Option<Duration>,
}

/// Options for a [`TieredManager`], from [`TieredManager::builder`].
#[derive(Debug, Clone)]
pub struct Builder<N, F> {
    near: N,
    far: F,
    options: Options,
}

impl<N, F> Builder<N, F> {
    /// How long an entry promoted from the far tier stays in the near one
    /// (default [`DEFAULT_PROMOTED_LIFETIME`]; capped by
    /// [`Builder::near_lifetime`]).
    pub fn promoted_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.promoted_lifetime = lifetime;
        self
    }

    /// The longest the near tier keeps any entry, whatever a write's
    /// hint says (default: no cap): how long another manager's change to
    /// the far tier may go unseen here.
    pub fn near_lifetime(mut self, lifetime: Duration) -> Self {
        self.options.near_lifetime = Some(lifetime);
        self
    }

    /// The manager.
    pub fn build(self) -> TieredManager<N, F> {
        TieredManager {
            near: Arc::new(self.near),
            far: self.far,
            options: self.options,
            stamps: Stamps::new(),
        }
    }
}

impl<N, F> TieredManager<N, F> {
    /// `near` in front of `far`, with default options.
    pub fn new(near: N, far: F) -> Self {
        Self::builder(near, far).build()
    }

    /// Options for `near` in front of `far`.
    pub fn builder(near: N, far: F) -> Builder<N, F> {
        Builder {
            near,
            far,
            options: Options {
                promoted_lifetime: DEFAULT_PROMOTED_LIFETIME,
                near_lifetime: None,
            },
        }
    }

    /// The near tier.
    pub fn near(&self) -> &N {
        &self.near
    }

    /// The far tier.
    pub fn far(&self) -> &F {
        &self.far
    }

    /// The hints the near tier gets for a write with `hints`.
    fn near_hints(&self, hints: &StoreHints) -> StoreHints {
        match (hints.keep_for, self.options.near_lifetime) {
            (Some(keep), Some(cap)) => StoreHints::keep_for(keep.min(cap)),
            (None, Some(cap)) => StoreHints::keep_for(cap),
            (_, None) => hints.clone(),
        }
    }

    /// The hints the near tier gets for a promoted entry.
    fn promoted_hints(&self) -> StoreHints {
        let lifetime = self.options.promoted_lifetime;
        StoreHints::keep_for(
            self.options
                .near_lifetime
                .map_or(lifetime, |cap| lifetime.min(cap)),
        )
    }
}

impl<N: CacheManager, F: CacheManager> TieredManager<N, F> {
    /// Drops the near tier's entry; a failure is logged, not returned: the
    /// caller goes on to the far tier, which decides.
    async fn forget_near(&self, cache_key: &str) {
        if let Err(err) = self.near.delete(cache_key).await {
            tracing::warn!(key = %abbreviate_key(cache_key), error = %err, "near tier delete failed");
        }
    }

    /// Drops a copy just promoted under `cache_key` if a write of the key
    /// started or ended since `before`, read before the far tier was.
    async fn keep_promoted_if(&self, cache_key: &str, before: Stamp) {
        if self.stamps.read(cache_key) != before {
            tracing::debug!(key = %abbreviate_key(cache_key), "a write overtook the promotion; dropping it");
            self.forget_near(cache_key).await;
        }
    }
}

/// Drops `near`'s entry under `key`; for the tasks that watch a store.
async fn forget(near: &impl CacheManager, key: &str) {
    if let Err(err) = near.delete(key).await {
        tracing::warn!(key = %abbreviate_key(key), error = %err, "near tier delete failed");
    }
}

#[async_trait::async_trait]
impl<N: CacheManager, F: CacheManager> CacheManager for TieredManager<N, F> {
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        match self.near.get(cache_key).await {
            Ok(Some(found)) => return Ok(Some(found)),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(key = %abbreviate_key(cache_key), error = %err, "near tier read failed; reading the far tier");
            }
        }
        let before = self.stamps.read(cache_key);
        let Some((response, policy)) = self.far.get(cache_key).await? else {
            return Ok(None);
        };
        if !before.quiet() {
            // A write is under way: what the far tier returned may be
            // what it replaces.
            return Ok(Some((response, policy)));
        }
        if let Err(err) = self
            .near
            .put_with(
                cache_key.to_owned(),
                response.clone(),
                policy.clone(),
                self.promoted_hints(),
            )
            .await
        {
            tracing::debug!(key = %abbreviate_key(cache_key), error = %err, "not promoted to the near tier");
        }
        self.keep_promoted_if(cache_key, before).await;
        Ok(Some((response, policy)))
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
        let write = self.stamps.start(&cache_key);
        self.forget_near(&cache_key).await;
        let stored = self
            .far
            .put_with(cache_key.clone(), response, policy.clone(), hints.clone())
            .await?;
        let near_hints = self.near_hints(&hints);
        if let Err(err) = self
            .near
            .put_with(cache_key.clone(), stored.clone(), policy, near_hints)
            .await
        {
            tracing::debug!(key = %abbreviate_key(&cache_key), error = %err, "not kept in the near tier");
            self.forget_near(&cache_key).await;
        }
        if !write.finish() {
            // Another write overlapped: the far tier holds one of the two,
            // the near tier perhaps the other.
            self.forget_near(&cache_key).await;
        }
        Ok(stored)
    }

    async fn delete(&self, cache_key: &str) -> Result<()> {
        let write = self.stamps.start(cache_key);
        let near = self.near.delete(cache_key).await;
        self.far.delete(cache_key).await?;
        if !write.finish() {
            self.forget_near(cache_key).await;
        }
        near
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
        let write = self.stamps.start(cache_key);
        let near_head = respcache_core::clone_head(&head);
        let updated = self
            .far
            .update_head_with(cache_key, head, policy.clone(), hints.clone())
            .await?;
        // The near copy follows the far one, or goes.
        let near_updated = updated
            && self
                .near
                .update_head_with(cache_key, near_head, policy, self.near_hints(&hints))
                .await
                .unwrap_or(false);
        if !write.finish() || !near_updated {
            self.forget_near(cache_key).await;
        }
        Ok(updated)
    }
}

/// The far tier's body as the near tier's streaming put takes it.
type FarBody<F> = http_body_util::combinators::MapErr<
    <F as StreamingCacheManager>::Body,
    fn(<<F as StreamingCacheManager>::Body as http_body::Body>::Error) -> StreamingError,
>;

/// Runs `task` on the current Tokio runtime; without one (a caller on
/// another executor) it is dropped, which ends a write it holds.
fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(task);
        }
        Err(_) => tracing::debug!("no Tokio runtime to watch a store on"),
    }
}

fn far_error<E: Into<respcache_core::BoxError>>(error: E) -> StreamingError {
    StreamingError::from(error.into())
}

impl<N, F> TieredManager<N, F>
where
    N: StreamingCacheManager,
    F: StreamingCacheManager,
{
    /// A far hit, streamed through the near tier's put: the caller reads
    /// the far body as it arrives, and the near tier keeps it if it is
    /// whole and fits. A far response without its URL is returned as it
    /// is. A near tier that fails here has consumed the far body: the read
    /// fails, and a caller such as the HTTP engine goes to the origin.
    async fn promote(
        &self,
        cache_key: &str,
        response: http::Response<F::Body>,
        policy: CachePolicy,
        before: Stamp,
    ) -> Result<http::Response<TieredBody<N::Body, F::Body>>> {
        if !before.quiet() {
            // A write is under way: what the far tier returned may be
            // what it replaces.
            return Ok(response.map(TieredBody::far));
        }
        let Some(url) = response.extensions().get::<Url>().cloned() else {
            return Ok(response.map(TieredBody::far));
        };
        let response =
            response.map(|body| body.map_err(far_error as fn(_) -> StreamingError) as FarBody<F>);
        let mut promoted = self
            .near
            .put_stream_with(
                cache_key.to_owned(),
                response,
                policy,
                url,
                self.promoted_hints(),
            )
            .await?;
        // A read: no store the caller should wait on or count; but one
        // that a write overtook while it streamed must go once it is in.
        if let Some(commit) = promoted.extensions_mut().remove::<CommitWatch>() {
            let (near, stamps, key) =
                (self.near.clone(), self.stamps.clone(), cache_key.to_owned());
            spawn(async move {
                if commit.committed().await && stamps.read(&key) != before {
                    tracing::debug!(key = %abbreviate_key(&key), "a write overtook the streamed promotion; dropping it");
                    forget(&*near, &key).await;
                }
            });
        }
        Ok(promoted.map(TieredBody::near))
    }

    /// The far tier's entry with its policy, promoted.
    async fn far_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<TieredBody<N::Body, F::Body>>, CachePolicy)>> {
        let before = self.stamps.read(cache_key);
        let Some((response, policy)) = self.far.get_stream(cache_key).await? else {
            return Ok(None);
        };
        let response = self
            .promote(cache_key, response, policy.clone(), before)
            .await?;
        Ok(Some((response, policy)))
    }

    /// The near tier's streamed read; a failure is logged and read past.
    fn near_failed(cache_key: &str, err: &respcache_core::BoxError) {
        tracing::warn!(key = %abbreviate_key(cache_key), error = %err, "near tier read failed; reading the far tier");
    }
}

#[async_trait::async_trait]
impl<N, F> StreamingCacheManager for TieredManager<N, F>
where
    N: StreamingCacheManager,
    F: StreamingCacheManager,
{
    type Body = TieredBody<N::Body, F::Body>;

    async fn get_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<Self::Body>, CachePolicy)>> {
        match self.near.get_stream(cache_key).await {
            Ok(Some((response, policy))) => {
                return Ok(Some((response.map(TieredBody::near), policy)));
            }
            Ok(None) => {}
            Err(err) => Self::near_failed(cache_key, &err),
        }
        self.far_stream(cache_key).await
    }

    async fn get_stream_response(
        &self,
        cache_key: &str,
    ) -> Result<Option<http::Response<Self::Body>>> {
        match self.near.get_stream_response(cache_key).await {
            Ok(Some(response)) => return Ok(Some(response.map(TieredBody::near))),
            Ok(None) => {}
            Err(err) => Self::near_failed(cache_key, &err),
        }
        // The policy is needed to promote.
        Ok(self
            .far_stream(cache_key)
            .await?
            .map(|(response, _)| response))
    }

    async fn put_stream<B>(
        &self,
        cache_key: String,
        response: http::Response<B>,
        policy: CachePolicy,
        request_url: Url,
    ) -> Result<http::Response<Self::Body>>
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

    /// The origin's body streams through the far tier's put, then through
    /// the near tier's, to the caller: each tier stores what passes
    /// through it, and the caller's end of stream waits for both. The
    /// response carries the far tier's [`CommitWatch`]: the entry counts
    /// as stored when the far tier has it.
    async fn put_stream_with<B>(
        &self,
        cache_key: String,
        response: http::Response<B>,
        policy: CachePolicy,
        request_url: Url,
        hints: StoreHints,
    ) -> Result<http::Response<Self::Body>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<StreamingError>,
    {
        let write = self.stamps.start(&cache_key);
        self.forget_near(&cache_key).await;
        let mut far = self
            .far
            .put_stream_with(
                cache_key.clone(),
                response,
                policy.clone(),
                request_url.clone(),
                hints.clone(),
            )
            .await?;
        let commit = far.extensions_mut().remove::<CommitWatch>();
        let far = far.map(|body| body.map_err(far_error as fn(_) -> StreamingError) as FarBody<F>);
        let near_hints = self.near_hints(&hints);
        let mut both = self
            .near
            .put_stream_with(cache_key.clone(), far, policy, request_url, near_hints)
            .await?;
        let near_commit = both.extensions_mut().remove::<CommitWatch>();
        if let Some(commit) = &commit {
            both.extensions_mut().insert(commit.clone());
        }
        // The write ends when both tiers have stored or given up; one that
        // another write overlapped keeps no near copy.
        let near = self.near.clone();
        spawn(async move {
            if let Some(commit) = commit {
                commit.committed().await;
            }
            if let Some(commit) = near_commit {
                commit.committed().await;
            }
            if !write.finish() {
                forget(&*near, &cache_key).await;
            }
        });
        Ok(both.map(TieredBody::near))
    }

    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<Self::Body>> {
        Ok(self.near.stream_response(response)?.map(TieredBody::near))
    }
}
