//! A respcache backend on Redis (or Valkey, which speaks the same
//! protocol): one cache shared by every machine that can reach the server.
//!
//! ```no_run
//! use respcache_core::{CacheManager, CachePolicy, HttpResponse};
//! use respcache_redis::RedisManager;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = RedisManager::builder("redis://127.0.0.1:6379/")
//!     .prefix("my-app")
//!     .build()?;
//!
//! let url = url::Url::parse("https://example.com/")?;
//! let request = http::Request::get(url.as_str()).body(())?;
//! let response = http::Response::builder()
//!     .header("cache-control", "max-age=60")
//!     .body(bytes::Bytes::from_static(b"hello"))?;
//! let policy = CachePolicy::new(&request, &response);
//! cache.put("GET:https://example.com/".into(), HttpResponse::from_http(response, url), policy).await?;
//! assert!(cache.get("GET:https://example.com/").await?.is_some());
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! ```text
//! <prefix>:{<tag>}:h               the head: hash of gen, n (chunk count), meta
//! <prefix>:{<tag>}:c:<gen>:<i>     chunk i of generation gen's body
//! ```
//!
//! The tag is 128 bits of the SHA-256 of the cache key: every key of an
//! entry shares it, so an entry lives in one cluster slot. `meta` is a
//! format-version byte and the bincode encoding of the full key, status,
//! version, headers, URL, policy, body length and XXH3-64 of the body.
//!
//! A put writes its chunks under a new generation, then one Lua script
//! switches the head to it and ends the old generation's chunks (after a
//! short grace, so a reader streaming them can finish): readers never see
//! a mix of generations. A put interrupted before that leaves only chunks
//! that expire. Every key carries a TTL: the lifetime the caller hands
//! over in [`StoreHints`] (an HTTP engine says how long the entry is worth
//! keeping: freshness, stale windows, time to revalidate), or
//! [`Builder::default_ttl`] when it says nothing, capped at a year. So an
//! abandoned cache never fills Redis.
//!
//! Every read checks the body's length and XXH3: a missing chunk or a
//! mismatch is a miss, and the entry is removed (only while it is still at
//! the generation that was read).
//!
//! # Servers
//!
//! `redis://` (or `rediss://`, TLS) names one server, reached through a
//! `ConnectionManager`; `redis+cluster://host1:port1,host2:port2/` (or
//! [`RedisManager::cluster_builder`]) names a Redis Cluster, reached
//! through the `redis` crate's cluster client, which follows MOVED, ASK and
//! failovers. While a server is away, operations fail fast with clear
//! errors (an engine then goes to the origin) and the connection comes
//! back by itself. Chunk batches of large bodies go over a second
//! connection, so small requests do not queue behind them.

#![deny(rustdoc::broken_intra_doc_links)]

mod connection;
mod head;
mod keys;
mod read;
mod scripts;
mod tags;
mod write;

use std::time::Duration;

use bytes::Bytes;
use respcache_core::{
    CacheError, CacheManager, CachePolicy, HttpResponse, Result, StoreHints, StreamingBody,
    StreamingCacheManager, StreamingError,
};
use url::Url;

pub use head::FORMAT_VERSION;

pub(crate) use connection::Con;
use connection::Target;

/// Frames in flight between a streaming put's caller and its writer task.
const IN_FLIGHT: usize = 8;

/// Caches responses in Redis; see the crate docs.
#[derive(Clone)]
pub struct RedisManager {
    con: Con,
    /// A second connection (a second set, on a cluster) for chunk batches
    /// of bodies longer than one chunk, so heads, scripts and small bodies
    /// never queue behind megabytes on the way in or out.
    bulk: Con,
    options: Options,
}

impl std::fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisManager")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Options {
    prefix: String,
    chunk_size: usize,
    max_body_size: u64,
    default_ttl: Duration,
    old_chunk_grace: Duration,
    timeout: Duration,
}

/// Options for a [`RedisManager`], from [`RedisManager::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    target: std::result::Result<Target, String>,
    root_certificate: Option<Vec<u8>>,
    options: Options,
}

impl Builder {
    /// The namespace every key starts with, so several applications can
    /// share one server (default `respcache`). It may not contain `{` or
    /// `}`, which would change the keys' hash tag.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = prefix.into();
        self
    }

    /// Size of the chunks a body is stored in (default 256 KiB): large
    /// values stall Redis, and a string is capped at 512 MB.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.options.chunk_size = bytes.max(1);
        self
    }

    /// Bodies larger than this are not stored (default 64 MiB): a streaming
    /// put passes them through, a buffered put fails with
    /// [`CacheError::TooLarge`].
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.options.max_body_size = bytes;
        self
    }

    /// How long an entry lives when whoever stores it gives no lifetime
    /// in [`StoreHints`] (default 1 day). The HTTP engine always gives
    /// one; a program that calls `put` itself gets this.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.options.default_ttl = ttl;
        self
    }

    /// How long the chunks of a replaced body live on for readers still
    /// streaming them (default 30 s; zero removes them at once).
    pub fn old_chunk_grace(mut self, grace: Duration) -> Self {
        self.options.old_chunk_grace = grace;
        self
    }

    /// How long one request to the server may take, and one connection
    /// attempt (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Trusts the certificate authority in `pem` (PEM, one or more
    /// certificates) instead of the system's roots for `rediss://`
    /// connections: for servers with a private CA.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// The manager. It connects on first use and reconnects by itself.
    pub fn build(self) -> Result<RedisManager> {
        if self.options.prefix.contains(['{', '}']) {
            return Err("a RedisManager prefix may not contain `{` or `}`".into());
        }
        let target = self.target?;
        let settings = || connection::Settings {
            timeout: self.options.timeout,
            root_certificate: self.root_certificate.as_deref(),
        };
        let con = Con::open(&target, settings())?;
        let bulk = Con::open(&target, settings())?;
        Ok(RedisManager {
            con,
            bulk,
            options: self.options,
        })
    }
}

impl RedisManager {
    /// Options for a manager on the server at `url`: `redis://host:port/db`,
    /// `rediss://` for TLS, or a Redis Cluster's seed nodes as
    /// `redis+cluster://host1:port1,host2:port2/` (`rediss+cluster://` for
    /// TLS; user and password, if any, before the first host).
    pub fn builder(url: impl Into<String>) -> Builder {
        let url = url.into();
        Self::builder_for(Target::parse(&url).map_err(|err| err.to_string()))
    }

    /// Options for a manager on the Redis Cluster that `seeds` belong to
    /// (`redis://host:port` or `rediss://host:port` each; any one that
    /// answers is enough). The cluster client follows MOVED and ASK
    /// redirections and topology changes.
    pub fn cluster_builder<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Builder {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        let target = if seeds.is_empty() {
            Err("a Redis Cluster needs at least one seed node".to_owned())
        } else {
            Ok(Target::Cluster(seeds))
        };
        Self::builder_for(target)
    }

    fn builder_for(target: std::result::Result<Target, String>) -> Builder {
        Builder {
            target,
            root_certificate: None,
            options: Options {
                prefix: "respcache".into(),
                chunk_size: 256 * 1024,
                max_body_size: 64 * 1024 * 1024,
                default_ttl: Duration::from_secs(24 * 3600),
                old_chunk_grace: Duration::from_secs(30),
                timeout: Duration::from_secs(2),
            },
        }
    }

    /// A manager with default options on the server at `url`.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).build()
    }

    /// The connection for small requests and the one for chunk batches.
    fn cons(&self) -> (Con, Con) {
        (self.con.clone(), self.bulk.clone())
    }

    fn keys(&self, key: &str) -> keys::EntryKeys {
        keys::EntryKeys::new(&self.options.prefix, key)
    }

    /// The Redis keys that hold `cache_key` now: its head and, if it is
    /// stored, its chunks in order. For tools and tests.
    pub async fn redis_keys(&self, cache_key: &str) -> Result<(String, Vec<String>)> {
        let keys = self.keys(cache_key);
        let mut con = self.con.clone();
        let chunks = match read::head(&mut con, &keys, cache_key).await? {
            Some(head) => keys.chunks(&head.generation, head.chunks),
            None => Vec::new(),
        };
        Ok((keys.head, chunks))
    }

    /// How long the keys of an entry stored with `hints` live.
    fn ttl(&self, hints: &StoreHints) -> Duration {
        head::ttl(hints.keep_for.unwrap_or(self.options.default_ttl))
    }

    fn too_large(&self, key: &str, size: u64) -> Box<CacheError> {
        Box::new(CacheError::TooLarge {
            key: key.to_owned(),
            size,
            limit: self.options.max_body_size,
        })
    }

    fn meta(
        key: String,
        parts: &http::response::Parts,
        url: Url,
        policy: CachePolicy,
        hints: &StoreHints,
    ) -> head::Meta {
        head::Meta {
            key,
            status: parts.status.as_u16(),
            version: parts.version.into(),
            headers: parts.headers.clone(),
            url,
            policy,
            body_len: 0,
            check: 0,
            tags: hints.tags.clone().unwrap_or_default(),
        }
    }
}

#[async_trait::async_trait]
impl CacheManager for RedisManager {
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let mut con = self.con.clone();
        let mut bulk = self.bulk.clone();
        let found = read::whole(&mut con, &mut bulk, &self.keys(cache_key), cache_key).await?;
        Ok(found.map(|(meta, body)| (meta.response(body), meta.policy)))
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
        if response.body.len() as u64 > self.options.max_body_size {
            return Err(self.too_large(&cache_key, response.body.len() as u64));
        }
        let parts = response.parts()?;
        let ttl = self.ttl(&hints);
        let keys = self.keys(&cache_key);
        let meta = Self::meta(cache_key, &parts, response.url.clone(), policy, &hints);
        let mut writer = write::ChunkWriter::new(self.cons(), keys, self.options.chunk_size, ttl);
        writer.write(&response.body).await?;
        writer.commit(meta, self.options.old_chunk_grace).await?;
        Ok(response)
    }

    async fn delete(&self, cache_key: &str) -> Result<()> {
        let mut con = self.con.clone();
        read::remove(&mut con, &self.keys(cache_key)).await
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
        let keys = self.keys(cache_key);
        let mut con = self.con.clone();
        let Some(current) = read::head(&mut con, &keys, cache_key).await? else {
            return Ok(false);
        };
        let ttl = self.ttl(&hints);
        let tags = hints.tags.unwrap_or_else(|| current.meta.tags.clone());
        tags::index(&mut con, &keys, cache_key, &tags, ttl).await?;
        let meta = head::Meta {
            status: head.status.as_u16(),
            version: head.version.into(),
            headers: head.headers,
            policy,
            tags,
            ..current.meta
        };
        let mut script = scripts::UPDATE_HEAD.key(&keys.head);
        for chunk in keys.chunks(&current.generation, current.chunks) {
            script.key(chunk);
        }
        let updated: i64 = script
            .arg(&current.generation)
            .arg(meta.encode()?)
            .arg(head::expire_secs(ttl).max(1))
            .invoke_async(&mut con)
            .await?;
        Ok(updated == 1)
    }

    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        let mut con = self.con.clone();
        if matches!(con, connection::Con::Cluster(_)) {
            // A `SCAN` goes to one node of a cluster, so it would list part
            // of the keys; a partial listing would make a purge by prefix
            // miss entries. Not offered there until it walks every master.
            return Ok(None);
        }
        Ok(Some(
            tags::keys(&mut con, &self.options.prefix, prefix).await?,
        ))
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        let mut con = self.con.clone();
        let set = keys::tag_set(&self.options.prefix, tag);
        let prefix = &self.options.prefix;
        Ok(Some(
            tags::tagged(&mut con, &set, tag, |key| keys::EntryKeys::new(prefix, key)).await?,
        ))
    }
}

#[async_trait::async_trait]
impl StreamingCacheManager for RedisManager {
    type Body = StreamingBody;

    async fn get_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<StreamingBody>, CachePolicy)>> {
        let keys = self.keys(cache_key);
        let mut con = self.con.clone();
        let Some(head) = read::head(&mut con, &keys, cache_key).await? else {
            return Ok(None);
        };
        if head.chunks <= 1 {
            // One round trip more reads it whole, checked.
            let mut bulk = self.bulk.clone();
            let Some((meta, body)) = read::whole(&mut con, &mut bulk, &keys, cache_key).await?
            else {
                return Ok(None);
            };
            let response = meta
                .response(body)
                .into_http()?
                .map(StreamingBody::buffered);
            return Ok(Some((response, meta.policy)));
        }
        let parts = head.meta.response(Bytes::new()).parts()?;
        let policy = head.meta.policy.clone();
        let len = head.meta.body_len;
        let chunks = read::stream(con, self.bulk.clone(), keys, head);
        let body = StreamingBody::from_chunks(chunks, len);
        Ok(Some((http::Response::from_parts(parts, body), policy)))
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
        let declared = http_body::Body::size_hint(&body).lower();
        if declared > self.options.max_body_size {
            tracing::debug!(
                size = declared,
                "body too large to cache; passing it through"
            );
            // A tee without a writer is a plain pass-through.
            let (pass_through, _no_writer) = respcache_core::tee(body, 1);
            return Ok(http::Response::from_parts(
                parts,
                StreamingBody::boxed(pass_through),
            ));
        }
        let ttl = self.ttl(&hints);
        let keys = self.keys(&cache_key);
        let meta = Self::meta(cache_key, &parts, request_url, policy, &hints);
        let writer = write::ChunkWriter::new(self.cons(), keys, self.options.chunk_size, ttl);
        let (tee, events) = respcache_core::tee(body, IN_FLIGHT);
        let commit = tee.commit_watch();
        tokio::spawn(write::stream_entry(
            writer,
            meta,
            events,
            self.options.max_body_size,
            self.options.old_chunk_grace,
        ));
        let mut response = http::Response::from_parts(parts, StreamingBody::boxed(tee));
        response.extensions_mut().insert(commit);
        Ok(response)
    }

    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<StreamingBody>> {
        Ok(response.into_http()?.map(StreamingBody::buffered))
    }
}
