//! The two traits a storage backend implements.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use url::Url;

use crate::{BoxError, CachePolicy, HttpResponse, Result, StreamingError};

/// What the caller of a store knows about the entry that the backend may
/// use: how long the entry is worth keeping, and the tags it carries.
///
/// An HTTP cache engine decides this from the response and its own
/// settings (fresh time, plus the stale windows it may still serve in,
/// plus an allowance for revalidation). Backends that expire entries
/// (Redis TTLs) or evict them (by age, by size) follow it instead of
/// computing a lifetime of their own; a backend that keeps everything
/// until told otherwise may ignore it.
///
/// ```
/// use std::time::Duration;
/// use respcache_core::StoreHints;
///
/// let hints = StoreHints::keep_for(Duration::from_secs(3600));
/// assert_eq!(hints.keep_for, Some(Duration::from_secs(3600)));
/// assert_eq!(StoreHints::default().keep_for, None);
///
/// let tagged = hints.with_tags(vec!["product-42".into()]);
/// assert_eq!(tagged.tags.as_deref(), Some(&["product-42".to_owned()][..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreHints {
    /// How long from now the entry is worth keeping; `None` when the
    /// caller does not say (the backend's own default applies).
    pub keep_for: Option<Duration>,
    /// The tags the entry carries (an HTTP engine reads them from a
    /// response field such as `Surrogate-Key`), so that
    /// [`CacheManager::tagged`] can find it; `None` when the caller does
    /// not say (a head update then keeps the entry's current tags).
    pub tags: Option<Vec<String>>,
}

impl StoreHints {
    /// Hints that the entry is worth keeping for `keep_for` from now.
    pub fn keep_for(keep_for: Duration) -> Self {
        Self {
            keep_for: Some(keep_for),
            tags: None,
        }
    }

    /// These hints, saying that the entry carries `tags`.
    pub fn with_tags(mut self, tags: Vec<String>) -> Self {
        self.tags = Some(tags);
        self
    }
}

/// How much a backend holds, as far as it can tell without walking its
/// entries (see [`CacheManager::usage`]).
///
/// ```
/// use respcache_core::Usage;
/// let usage = Usage::bytes(4096);
/// assert_eq!((usage.entries, usage.bytes), (None, Some(4096)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Stored entries, when the backend counts them.
    pub entries: Option<u64>,
    /// Bytes of stored bodies, when the backend counts them.
    pub bytes: Option<u64>,
}

impl Usage {
    /// A usage of `bytes` bytes, entries not counted.
    pub fn bytes(bytes: u64) -> Self {
        Self {
            entries: None,
            bytes: Some(bytes),
        }
    }
}

/// A store of whole responses and their cache policies, by key.
///
/// The trait is object safe: a program can choose its backend at run time
/// and hold it as `Arc<dyn CacheManager>`, which is itself a `CacheManager`.
///
/// What an implementation must do (missing keys, opaque keys, isolation,
/// all-or-nothing writes, integrity, concurrency, restarts) is stated in
/// the guide and checked by the `respcache-conformance` crate.
#[async_trait::async_trait]
pub trait CacheManager: Send + Sync + 'static {
    /// Returns the response and policy stored under `cache_key`, or
    /// `Ok(None)` when there is none (or what is stored there is damaged).
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>>;

    /// Stores `response` and `policy` under `cache_key`, replacing whatever
    /// was there whole, and returns the stored response.
    async fn put(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse>;

    /// Removes what is stored under `cache_key`; `Ok(())` also when nothing is.
    async fn delete(&self, cache_key: &str) -> Result<()>;

    /// Replaces the head (status, version, headers) and policy stored under
    /// `cache_key` and keeps its body: what a cache does on `304 Not
    /// Modified`. Returns `Ok(false)` when nothing is stored there, or when
    /// the backend cannot update a head alone (the default); the caller
    /// then stores the whole response again.
    async fn update_head(
        &self,
        cache_key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
    ) -> Result<bool> {
        let _ = (cache_key, head, policy);
        Ok(false)
    }

    /// [`put`](CacheManager::put), with what the caller knows about the
    /// entry. The default ignores the hints; a backend that expires or
    /// evicts entries overrides it.
    async fn put_with(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<HttpResponse> {
        let _ = hints;
        self.put(cache_key, response, policy).await
    }

    /// [`update_head`](CacheManager::update_head), with what the caller
    /// knows about the entry (its lifetime changes with its head). The
    /// default ignores the hints.
    async fn update_head_with(
        &self,
        cache_key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<bool> {
        let _ = hints;
        self.update_head(cache_key, head, policy).await
    }

    /// Every stored key that starts with `prefix` (every key for `""`),
    /// in no particular order: what a purge by prefix, or a tool that
    /// lists a cache, walks. `Ok(None)` when the backend cannot list its
    /// keys (the default). A key deleted or never stored is not listed.
    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        let _ = prefix;
        Ok(None)
    }

    /// Every stored key whose entry carries `tag`: it was stored, or its
    /// head last updated, with `tag` in [`StoreHints::tags`]. A backend
    /// that keeps an index of tags answers from it without reading every
    /// entry; `Ok(None)` when it keeps none (the default), and a caller
    /// then walks [`keys`](CacheManager::keys) instead. An entry replaced
    /// without the tag, or deleted, is not listed.
    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        let _ = tag;
        Ok(None)
    }

    /// How much the backend holds, where it knows without walking its
    /// entries (for a metrics endpoint, read at every scrape): the
    /// default knows nothing.
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// A [`CacheManager`] that can also take and hand out bodies as streams,
/// so that a large body never has to sit in memory whole.
#[async_trait::async_trait]
pub trait StreamingCacheManager: CacheManager {
    /// The body type of the responses this manager hands out.
    type Body: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;

    /// Returns the response stored under `cache_key` with a streaming body,
    /// or `Ok(None)` when there is none.
    async fn get_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<Self::Body>, CachePolicy)>>;

    /// [`get_stream`](StreamingCacheManager::get_stream) for a caller that
    /// does not need the stored policy (an HTTP engine serving a hit
    /// decides freshness from the head): a backend that would copy its
    /// policy for every read may skip it. The default calls `get_stream`.
    async fn get_stream_response(
        &self,
        cache_key: &str,
    ) -> Result<Option<http::Response<Self::Body>>> {
        Ok(self
            .get_stream(cache_key)
            .await?
            .map(|(response, _policy)| response))
    }

    /// Stores a response whose body arrives as a stream, and returns the
    /// response for the caller to read. The entry is committed only once
    /// the body has completed; a body that fails commits nothing.
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
        B::Error: Into<StreamingError>;

    /// [`put_stream`](StreamingCacheManager::put_stream), with what the
    /// caller knows about the entry. The default ignores the hints.
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
        let _ = hints;
        self.put_stream(cache_key, response, policy, request_url)
            .await
    }

    /// Turns a buffered response into this manager's streaming response type.
    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<Self::Body>>;
}

macro_rules! forward_cache_manager {
    ($($pointer:ident),*) => {$(
        #[async_trait::async_trait]
        impl<M: CacheManager + ?Sized> CacheManager for $pointer<M> {
            async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
                (**self).get(cache_key).await
            }

            async fn put(
                &self,
                cache_key: String,
                response: HttpResponse,
                policy: CachePolicy,
            ) -> Result<HttpResponse> {
                (**self).put(cache_key, response, policy).await
            }

            async fn delete(&self, cache_key: &str) -> Result<()> {
                (**self).delete(cache_key).await
            }

            async fn update_head(
                &self,
                cache_key: &str,
                head: http::response::Parts,
                policy: CachePolicy,
            ) -> Result<bool> {
                (**self).update_head(cache_key, head, policy).await
            }

            async fn put_with(
                &self,
                cache_key: String,
                response: HttpResponse,
                policy: CachePolicy,
                hints: StoreHints,
            ) -> Result<HttpResponse> {
                (**self).put_with(cache_key, response, policy, hints).await
            }

            async fn update_head_with(
                &self,
                cache_key: &str,
                head: http::response::Parts,
                policy: CachePolicy,
                hints: StoreHints,
            ) -> Result<bool> {
                (**self).update_head_with(cache_key, head, policy, hints).await
            }

            async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
                (**self).keys(prefix).await
            }

            async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
                (**self).tagged(tag).await
            }

            fn usage(&self) -> Usage {
                (**self).usage()
            }
        }
    )*};
}

forward_cache_manager!(Arc, Box);
