//! A respcache backend in process memory: capacity in bytes, lifetimes
//! from the engine, hits that share the stored bytes, and streaming puts
//! that hand the body to the caller while they fill.
//!
//! ```
//! use http_body_util::BodyExt;
//! use respcache_core::{CachePolicy, StreamingCacheManager};
//! use respcache_memory::MemoryManager;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let cache = MemoryManager::new(64 * 1024 * 1024); // 64 MiB, heads and bodies
//!
//! let url = url::Url::parse("https://example.com/")?;
//! let request = http::Request::get(url.as_str()).body(())?;
//! let origin = http::Response::builder()
//!     .header("cache-control", "max-age=60")
//!     .body(http_body_util::Full::new(bytes::Bytes::from_static(b"hello")))?;
//! let policy = CachePolicy::new(&request, &origin);
//!
//! // The caller reads the origin's body as it arrives; the entry is
//! // stored once the body is complete.
//! let response = cache.put_stream("GET:/".into(), origin, policy, url).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
//!
//! let (hit, _policy) = cache.get_stream("GET:/").await?.expect("stored");
//! assert_eq!(hit.into_body().collect().await?.to_bytes(), "hello");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it keeps
//!
//! - **Capacity** is in bytes and counts every entry whole: its body
//!   exactly, its head (each header twice, since the policy keeps a copy),
//!   URL and key, and a fixed allowance for the structures around them.
//!   Past it, the least valuable entries are evicted (CLOCK-Pro: entries
//!   read once go before entries read again).
//! - **Lifetime** comes from the caller: the HTTP engine hands each store
//!   a [`StoreHints::keep_for`](respcache_core::StoreHints) (fresh time,
//!   stale windows, time to revalidate), and an entry past it is a miss
//!   and is dropped when next read, or by
//!   [`MemoryManager::remove_expired`]. A store without one lives until
//!   evicted, or for [`Builder::default_lifetime`].
//! - **Hits share the stored body**: a hit hands out the stored
//!   [`Bytes`](bytes::Bytes), a reference count, never a copy; the head is
//!   copied (an `http::HeaderMap` cannot be shared).
//! - **The largest body** it keeps is [`Builder::max_body_size`] (default
//!   an eighth of the capacity). A buffered put of a larger one fails with
//!   [`CacheError::TooLarge`]; a streamed put passes it through to its
//!   caller whole and stops gathering it as soon as it is past the limit.
//!   Either way the key's older entry is removed: it is no longer what
//!   the origin sends.
//!
//! Nothing outlives the manager: entries are neither shared between
//! processes nor kept across a restart. Put it in front of a persistent
//! backend (respcache-tiered) for both.
//!
//! # Why quick_cache and not moka
//!
//! Both are maintained concurrent caches with byte weights. They were
//! measured on the workload of this crate (10,000 keys of `Arc`'d entries,
//! a weigher, hits from one and two threads, release build, on the 2-core
//! machine the project is built on, 2026-12-02, shared with other builds;
//! the program is `benches/examples/choose_memory_store.rs`, run by `cargo
//! run --release -p respcache-benches --example choose_memory_store`):
//!
//! | per operation, 1 KiB bodies | moka 0.12 `sync::Cache` | quick_cache 0.6 `sync::Cache` |
//! |---|---|---|
//! | first put | 6.9 µs | 1.1 µs |
//! | overwrite | 3.9 µs | 0.4 µs |
//! | hit, one thread | 4.4 µs | 1.9 µs |
//! | hits per second, two threads | 0.20 M | 0.59 M |
//!
//! (64 KiB bodies gave the same order: puts 3.4 against 0.2 µs, hits 3.9
//! against 1.7 µs.) quick_cache is 2 to 3 times faster on hits and 5 to
//! 10 times on puts, keeps its weight exactly and at once (moka settles
//! its counts in deferred housekeeping), and runs no background work. What
//! moka has and quick_cache lacks is expiry per entry; here an expiry
//! check is one comparison on a hit, which the hit path pays either way.
//! quick_cache's `entry` API replaces a head in place under the shard's
//! lock, so `update_head` never races a put into a mixed entry.

#![deny(rustdoc::broken_intra_doc_links)]

mod entry;
mod stream_put;

use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use respcache_core::{
    CacheError, CacheManager, CachePolicy, HttpResponse, Result, StoreHints, StreamingBody,
    StreamingCacheManager, StreamingError,
};
use tokio::time::Instant;
use url::Url;

use entry::Entry;

/// Room for a head beside the largest body, when shards are sized.
const HEAD_ROOM: u64 = 64 * 1024;

/// Keeps responses in process memory; see the crate docs.
///
/// Clones share one store.
#[derive(Clone)]
pub struct MemoryManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("capacity", &self.shared.cache.capacity())
            .field("weight", &self.shared.cache.weight())
            .field("entries", &self.shared.cache.len())
            .field("max_body_size", &self.shared.max_body_size)
            .finish()
    }
}

/// Options for a [`MemoryManager`], from [`MemoryManager::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    capacity: u64,
    max_body_size: Option<u64>,
    default_lifetime: Option<Duration>,
}

impl Builder {
    /// The largest body kept (default an eighth of the capacity, and never
    /// more than half of it).
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.max_body_size = Some(bytes);
        self
    }

    /// How long an entry lives when whoever stores it gives no lifetime in
    /// [`StoreHints`] (default: until evicted). The HTTP engine always
    /// gives one.
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = Some(lifetime);
        self
    }

    /// The manager.
    pub fn build(self) -> MemoryManager {
        let capacity = self.capacity.max(1);
        let max_body_size = self.max_body_size.unwrap_or(capacity / 8).min(capacity / 2);
        // An entry heavier than a shard's share is never admitted, so
        // shards are few enough that the largest body and a head fit in
        // half of one.
        let parallel = std::thread::available_parallelism().map_or(4, |n| n.get() * 4);
        let room = 2 * (max_body_size + HEAD_ROOM);
        let mut shards = parallel.next_power_of_two();
        while shards > 1 && capacity / shards as u64 <= room {
            shards /= 2;
        }
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity((capacity / (16 * 1024)).clamp(64, 1 << 20) as usize)
            .weight_capacity(capacity)
            .shards(shards)
            .build()
            .expect("the capacity and the item estimate are both set");
        let cache = Cache::with_options(options, Weigher, Default::default(), Default::default());
        // What a shard admits (its hot share, 97%, with a margin).
        let admit = cache.shard_capacity() / 10 * 9;
        MemoryManager {
            shared: Arc::new(Shared {
                cache,
                max_body_size,
                admit,
                default_lifetime: self.default_lifetime,
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct Weigher;

impl quick_cache::Weighter<String, Arc<Entry>> for Weigher {
    fn weight(&self, key: &String, entry: &Arc<Entry>) -> u64 {
        key.len() as u64 + entry.weight
    }
}

/// State every clone of a manager shares.
pub(crate) struct Shared {
    cache: Cache<String, Arc<Entry>, Weigher>,
    pub(crate) max_body_size: u64,
    /// The heaviest entry the store admits.
    admit: u64,
    default_lifetime: Option<Duration>,
}

impl Shared {
    /// Stores `entry` under `key`, replacing what was there; an entry too
    /// heavy to admit is refused, and the key's older entry goes too.
    pub(crate) fn insert(&self, key: String, entry: Entry) -> std::result::Result<(), CacheError> {
        let weight = key.len() as u64 + entry.weight;
        if weight > self.admit {
            self.refused(&key);
            return Err(CacheError::TooLarge {
                key,
                size: weight,
                limit: self.admit,
            });
        }
        self.cache.insert(key, Arc::new(entry));
        Ok(())
    }

    /// Drops the entry under `key` when a newer response for it is not
    /// kept: the older one is no longer what the origin sends (after a
    /// revalidation that got a new, too large 200, it would go on being
    /// served).
    pub(crate) fn refused(&self, key: &str) {
        self.cache.remove(key);
    }

    /// The entry under `key` if it is still worth keeping; one past its
    /// lifetime is dropped (unless a newer one replaced it meanwhile).
    fn live(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = self.cache.get(key)?;
        if entry.expired(Instant::now) {
            self.cache.remove_if(key, |now| Arc::ptr_eq(now, &entry));
            return None;
        }
        Some(entry)
    }

    fn expires_at(&self, hints: &StoreHints) -> Option<Instant> {
        let keep_for = hints.keep_for.or(self.default_lifetime)?;
        Instant::now().checked_add(keep_for)
    }
}

impl MemoryManager {
    /// A manager holding up to `capacity` bytes, with default options.
    pub fn new(capacity: u64) -> Self {
        Self::builder(capacity).build()
    }

    /// Options for a manager holding up to `capacity` bytes, heads and
    /// bodies counted.
    pub fn builder(capacity: u64) -> Builder {
        Builder {
            capacity,
            max_body_size: None,
            default_lifetime: None,
        }
    }

    /// Bytes held now, as the capacity counts them.
    pub fn weight(&self) -> u64 {
        self.shared.cache.weight()
    }

    /// The capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.shared.cache.capacity()
    }

    /// Entries held now, including any past their lifetime not yet read.
    pub fn len(&self) -> usize {
        self.shared.cache.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.shared.cache.is_empty()
    }

    /// The largest body kept.
    pub fn max_body_size(&self) -> u64 {
        self.shared.max_body_size
    }

    /// Drops every entry past its lifetime now, instead of when next read
    /// or evicted.
    pub fn remove_expired(&self) {
        let now = Instant::now();
        self.shared.cache.retain(|_, entry| !entry.expired(|| now));
    }

    fn check_body(&self, key: &str, len: usize) -> std::result::Result<(), CacheError> {
        if len as u64 > self.shared.max_body_size {
            self.shared.refused(key);
            return Err(CacheError::TooLarge {
                key: key.to_owned(),
                size: len as u64,
                limit: self.shared.max_body_size,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl CacheManager for MemoryManager {
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        Ok(self
            .shared
            .live(cache_key)
            .map(|entry| (entry.response(), entry.policy.clone())))
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
        self.check_body(&cache_key, response.body.len())?;
        let entry = Entry::from_response(&response, policy, self.shared.expires_at(&hints));
        self.shared.insert(cache_key, entry)?;
        Ok(response)
    }

    async fn delete(&self, cache_key: &str) -> Result<()> {
        self.shared.cache.remove(cache_key);
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
        let expires_at = self.shared.expires_at(&hints);
        // Under the shard's lock: a put of the same key lands before or
        // after, never between the read of the body and the new head.
        let updated = self.shared.cache.entry(cache_key, None, |_, entry| {
            if entry.expired(Instant::now) {
                return EntryAction::Remove;
            }
            *entry = Arc::new(entry.with_head(head, policy, expires_at));
            EntryAction::Retain(())
        });
        Ok(matches!(updated, EntryResult::Retained(())))
    }
}

#[async_trait::async_trait]
impl StreamingCacheManager for MemoryManager {
    type Body = StreamingBody;

    async fn get_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<StreamingBody>, CachePolicy)>> {
        let Some(entry) = self.shared.live(cache_key) else {
            return Ok(None);
        };
        Ok(Some((entry.http_response()?, entry.policy.clone())))
    }

    async fn get_stream_response(
        &self,
        cache_key: &str,
    ) -> Result<Option<http::Response<StreamingBody>>> {
        // No copy of the policy per hit.
        match self.shared.live(cache_key) {
            Some(entry) => Ok(Some(entry.http_response()?)),
            None => Ok(None),
        }
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
        let pending = stream_put::Pending {
            key: cache_key,
            head: respcache_core::clone_head(&parts),
            url: request_url,
            policy,
            expires_at: self.shared.expires_at(&hints),
        };
        let tee = stream_put::start(self.shared.clone(), pending, body);
        let commit = tee.commit_watch();
        let mut response = http::Response::from_parts(parts, StreamingBody::boxed(tee));
        response.extensions_mut().insert(commit);
        Ok(response)
    }

    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<StreamingBody>> {
        Ok(response.into_http()?.map(StreamingBody::buffered))
    }
}
