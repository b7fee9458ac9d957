//! What the benchmarks measure: each subject is one store (ours, the
//! peer's, or the floor) behind the same small interface.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_core::{CacheManager, CachePolicy, HttpResponse, StreamingCacheManager};

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// Whether the reduced set was asked for (`cargo xtask bench --quick`).
pub fn quick() -> bool {
    std::env::var_os("RESPCACHE_BENCH_QUICK").is_some()
}

pub fn url() -> url::Url {
    url::Url::parse("https://bench.example/item").expect("a URL")
}

pub fn policy() -> CachePolicy {
    let request = http::Request::get(url().as_str())
        .body(())
        .expect("a request");
    let response = http::Response::builder()
        .header("cache-control", "max-age=3600")
        .body(())
        .expect("a response");
    CachePolicy::new(&request, &response)
}

pub fn head() -> http::response::Parts {
    http::Response::builder()
        .header("cache-control", "max-age=3600")
        .header("content-type", "application/octet-stream")
        .body(())
        .expect("a head")
        .into_parts()
        .0
}

pub fn body(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| (i * 131 % 251) as u8).collect::<Vec<_>>())
}

/// `body` with its first bytes replaced by `n`: a body no other put
/// stored, so a deduplicating store must write it. Made before the timed
/// part starts.
pub fn distinct(body: &Bytes, n: u64) -> Bytes {
    let mut copy = body.to_vec();
    let stamp = n.to_le_bytes();
    let len = stamp.len().min(copy.len());
    copy[..len].copy_from_slice(&stamp[..len]);
    Bytes::from(copy)
}

/// One store under measurement.
#[async_trait::async_trait]
pub trait Subject: Send + Sync {
    fn name(&self) -> &'static str;
    async fn put(&self, key: &str, body: Bytes);
    /// Reads the entry whole; returns its body length (0 for a miss).
    async fn get(&self, key: &str) -> usize;
    async fn delete(&self, key: &str);
}

async fn drain<B>(body: B) -> usize
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("a body frame").into_data() {
            len += bytes::Buf::remaining(&data);
        }
    }
    len
}

/// Our buffered API on any of our managers.
pub struct Ours<M> {
    pub name: &'static str,
    pub manager: M,
}

#[async_trait::async_trait]
impl<M: CacheManager> Subject for Ours<M> {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn put(&self, key: &str, body: Bytes) {
        let response = HttpResponse::from_parts(head(), body, url());
        self.manager
            .put(key.into(), response, policy())
            .await
            .expect("put");
    }
    async fn get(&self, key: &str) -> usize {
        self.manager
            .get(key)
            .await
            .expect("get")
            .map_or(0, |(r, _)| r.body.len())
    }
    async fn delete(&self, key: &str) {
        self.manager.delete(key).await.expect("delete");
    }
}

/// Our streaming API: `put_stream` read to its end, `get_stream` drained.
pub struct OursStreaming<M> {
    pub name: &'static str,
    pub manager: M,
}

#[async_trait::async_trait]
impl<M: StreamingCacheManager> Subject for OursStreaming<M>
where
    <M::Body as http_body::Body>::Error: std::fmt::Debug,
{
    fn name(&self) -> &'static str {
        self.name
    }
    async fn put(&self, key: &str, body: Bytes) {
        let origin = http::Response::from_parts(head(), http_body_util::Full::new(body));
        let response = self
            .manager
            .put_stream(key.into(), origin, policy(), url())
            .await
            .expect("put_stream");
        drain(response.into_body()).await;
    }
    async fn get(&self, key: &str) -> usize {
        match self.manager.get_stream(key).await.expect("get_stream") {
            Some((response, _)) => drain(response.into_body()).await,
            None => 0,
        }
    }
    async fn delete(&self, key: &str) {
        self.manager.delete(key).await.expect("delete");
    }
}

fn peer_response(body: Bytes) -> http_cache::HttpResponse {
    let mut headers = http_cache::HttpHeaders::new();
    headers.insert("cache-control".into(), "max-age=3600".into());
    headers.insert("content-type".into(), "application/octet-stream".into());
    http_cache::HttpResponse {
        body: body.to_vec(),
        headers,
        status: 200,
        url: url(),
        version: http_cache::HttpVersion::Http11,
        metadata: None,
    }
}

/// The peer's `CACacheManager`.
pub struct PeerCacache(pub http_cache::CACacheManager);

#[async_trait::async_trait]
impl Subject for PeerCacache {
    fn name(&self) -> &'static str {
        "peer-cacache"
    }
    async fn put(&self, key: &str, body: Bytes) {
        use http_cache::CacheManager as _;
        self.0
            .put(key.into(), peer_response(body), policy())
            .await
            .expect("peer put");
    }
    async fn get(&self, key: &str) -> usize {
        use http_cache::CacheManager as _;
        self.0
            .get(key)
            .await
            .expect("peer get")
            .map_or(0, |(r, _)| r.body.len())
    }
    async fn delete(&self, key: &str) {
        use http_cache::CacheManager as _;
        let _ = self.0.delete(key).await;
    }
}

/// The peer's streaming file store.
pub struct PeerStreaming(pub http_cache::StreamingManager);

#[async_trait::async_trait]
impl Subject for PeerStreaming {
    fn name(&self) -> &'static str {
        "peer-streaming"
    }
    async fn put(&self, key: &str, body: Bytes) {
        use http_cache::StreamingCacheManager as _;
        let origin = http::Response::from_parts(head(), http_body_util::Full::new(body));
        let response = self
            .0
            .put(key.into(), origin, policy(), url(), None)
            .await
            .expect("peer put");
        drain(response.into_body()).await;
    }
    async fn get(&self, key: &str) -> usize {
        use http_cache::StreamingCacheManager as _;
        match self.0.get(key).await.expect("peer get") {
            Some((response, _)) => drain(response.into_body()).await,
            None => 0,
        }
    }
    async fn delete(&self, key: &str) {
        use http_cache::StreamingCacheManager as _;
        let _ = self.0.delete(key).await;
    }
}

/// The floor: what the disk itself costs. A put writes a temporary file
/// and renames it into place; a get reads a file whole.
pub struct Floor {
    pub dir: PathBuf,
}

impl Floor {
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace(['/', ':'], "_"))
    }
}

#[async_trait::async_trait]
impl Subject for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }
    async fn put(&self, key: &str, body: Bytes) {
        let path = self.path(key);
        let tmp = path.with_extension("tmp");
        tokio::task::spawn_blocking(move || {
            std::fs::write(&tmp, &body).expect("floor write");
            std::fs::rename(&tmp, &path).expect("floor rename");
        })
        .await
        .expect("floor put");
    }
    async fn get(&self, key: &str) -> usize {
        let path = self.path(key);
        tokio::task::spawn_blocking(move || std::fs::read(path).map_or(0, |b| b.len()))
            .await
            .expect("floor get")
    }
    async fn delete(&self, key: &str) {
        let path = self.path(key);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
    }
}

/// Every subject on fresh directories under `dir` (and a fresh
/// redis-server, and the test kit's six-node Redis Cluster), in the order
/// the report lists them.
pub struct Subjects {
    pub all: Vec<Arc<dyn Subject>>,
    _redis: respcache_testkit::RedisServer,
}

pub async fn subjects(dir: &Path) -> Subjects {
    let redis = respcache_testkit::RedisServer::start(&mkdir(dir, "redis-server"));
    let redis_manager = respcache_redis::RedisManager::builder(redis.url())
        .max_body_size(2 << 30)
        .build()
        .expect("a redis manager");
    // Formed once per process (it waits, so off the runtime's workers);
    // its nodes stop when this process exits.
    let cluster = tokio::task::spawn_blocking(respcache_testkit::RedisCluster::shared)
        .await
        .expect("a Redis Cluster");
    let cluster_manager = respcache_redis::RedisManager::builder(cluster.url())
        .prefix(cluster.prefix("bench"))
        .max_body_size(2 << 30)
        .build()
        .expect("a redis cluster manager");
    let peer_streaming = http_cache::StreamingManager::with_max_body_size(
        mkdir(dir, "peer-streaming"),
        10_000,
        2 << 30,
    )
    .await
    .expect("the peer's streaming manager");
    let all: Vec<Arc<dyn Subject>> = vec![
        Arc::new(Ours {
            name: "cacache",
            manager: respcache_cacache::CACacheManager::new(mkdir(dir, "cacache"), true),
        }),
        Arc::new(PeerCacache(http_cache::CACacheManager::new(
            mkdir(dir, "peer-cacache"),
            true,
        ))),
        Arc::new(Ours {
            name: "fs",
            manager: respcache_fs::StreamingManager::new(mkdir(dir, "fs")),
        }),
        Arc::new(OursStreaming {
            name: "fs-stream",
            manager: respcache_fs::StreamingManager::new(mkdir(dir, "fs-stream")),
        }),
        Arc::new(PeerStreaming(peer_streaming)),
        Arc::new(Ours {
            name: "memory",
            manager: memory(),
        }),
        // Memory in front of fs, read through the streaming API: a hit
        // comes from memory, to set beside `fs-stream`'s.
        Arc::new(OursStreaming {
            name: "tiered",
            manager: respcache_tiered::TieredManager::new(
                memory(),
                respcache_fs::StreamingManager::new(mkdir(dir, "tiered")),
            ),
        }),
        Arc::new(Ours {
            name: "redis",
            manager: redis_manager,
        }),
        // Three masters with a replica each, on this machine: beside
        // `redis`, what a cluster's routing and replication add.
        Arc::new(Ours {
            name: "redis-cluster",
            manager: cluster_manager,
        }),
        Arc::new(Floor {
            dir: mkdir(dir, "floor"),
        }),
    ];
    Subjects { all, _redis: redis }
}

/// Room for every body size the benches use, several times over.
fn memory() -> respcache_memory::MemoryManager {
    respcache_memory::MemoryManager::builder(1 << 30)
        .max_body_size(32 << 20)
        .build()
}

fn mkdir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("a bench dir");
    path
}

/// Waits (at most 90 s) until small file writes in `dir` cost what they
/// cost on a quiet disk. After many deletes (an earlier run's clean-up,
/// a test suite) the file system here discards freed blocks for about a
/// minute and each new file then costs up to 0.75 ms: whichever subject
/// ran first would pay for it.
pub fn settle_disk(dir: &Path) {
    use std::time::{Duration, Instant};
    const QUIET: Duration = Duration::from_micros(150);
    let probe = dir.join("settle-probe");
    let started = Instant::now();
    loop {
        let mut samples: Vec<Duration> = (0..50)
            .map(|i| {
                let path = probe.with_extension(i.to_string());
                let t = Instant::now();
                std::fs::write(&path, [0u8; 4096]).expect("a probe write");
                t.elapsed()
            })
            .collect();
        for i in 0..50 {
            let _ = std::fs::remove_file(probe.with_extension(i.to_string()));
        }
        samples.sort();
        let median = samples[samples.len() / 2];
        if median <= QUIET || started.elapsed() > Duration::from_secs(90) {
            eprintln!(
                "disk settled after {:?} (median small write {median:?})",
                started.elapsed()
            );
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
