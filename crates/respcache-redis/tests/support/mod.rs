//! A real redis-server per harness, and direct access to it for the hooks
//! that reach behind the manager's back.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use respcache_conformance::{Capabilities, Damage, Harness};
use respcache_core::BoxError;
use respcache_redis::RedisManager;
use respcache_testkit::{RedisCluster, RedisServer};

pub struct RedisHarness {
    pub server: Mutex<RedisServer>,
    pub url: String,
    pub prefix: String,
    pub manager: Arc<RedisManager>,
    _dir: tempfile::TempDir,
}

/// Location text: `<url>|<prefix>`.
fn split(location: &str) -> (&str, &str) {
    location.split_once('|').expect("a `url|prefix` location")
}

/// The options the suite runs with: bodies up to 2 GiB (the memory check
/// streams 1 GiB), and replaced chunks removed at once, so storage checks
/// see overwrites reclaimed without waiting out the default 30 s grace.
pub fn manager(url: &str, prefix: &str) -> RedisManager {
    RedisManager::builder(url)
        .prefix(prefix)
        .max_body_size(2 << 30)
        .old_chunk_grace(Duration::ZERO)
        .build()
        .expect("a manager")
}

/// A direct connection to a server (`redis://`) or a cluster
/// (`redis+cluster://`), for the hooks that reach behind the manager.
pub enum Direct {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Direct {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Direct::Single(con) => con.req_packed_command(cmd),
            Direct::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Direct::Single(con) => con.req_packed_commands(pipeline, offset, count),
            Direct::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

pub async fn connection(url: &str) -> Direct {
    match url.strip_prefix("redis+cluster://") {
        Some(hosts) => {
            let seeds = hosts
                .trim_end_matches('/')
                .split(',')
                .map(|host| format!("redis://{host}/"));
            Direct::Cluster(
                redis::cluster::ClusterClient::new(seeds)
                    .expect("a cluster client")
                    .get_async_connection()
                    .await
                    .expect("a cluster connection"),
            )
        }
        None => Direct::Single(
            redis::Client::open(url)
                .expect("a client")
                .get_multiplexed_async_connection()
                .await
                .expect("a connection"),
        ),
    }
}

/// The suite on the test binary's shared Redis Cluster, each harness under
/// its own prefix.
pub struct ClusterHarness {
    pub url: String,
    pub prefix: String,
    pub manager: Arc<RedisManager>,
}

#[async_trait::async_trait]
impl Harness for ClusterHarness {
    type Manager = RedisManager;

    /// As on one server: entries live in the cluster.
    fn capabilities() -> Capabilities {
        Capabilities::ALL
    }

    async fn create() -> Self {
        let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
            .await
            .expect("the cluster starts");
        let url = cluster.url();
        let prefix = cluster.prefix("conformance");
        let manager = Arc::new(manager(&url, &prefix));
        Self {
            url,
            prefix,
            manager,
        }
    }

    fn manager(&self) -> Arc<RedisManager> {
        self.manager.clone()
    }

    async fn reopen(&self) -> RedisManager {
        manager(&self.url, &self.prefix)
    }

    fn location(&self) -> String {
        format!("{}|{}", self.url, self.prefix)
    }

    async fn open_location(location: &str) -> RedisManager {
        let (url, prefix) = split(location);
        manager(url, prefix)
    }

    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError> {
        damage(&self.manager, &self.url, key, how).await
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        stored_bytes(&self.url, &self.prefix).await
    }
}

impl RedisHarness {
    #[track_caller]
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let server = RedisServer::start(dir.path());
        let url = server.url();
        let prefix = "conformance".to_owned();
        let manager = Arc::new(manager(&url, &prefix));
        Self {
            server: Mutex::new(server),
            url,
            prefix,
            manager,
            _dir: dir,
        }
    }
}

#[async_trait::async_trait]
impl Harness for RedisHarness {
    type Manager = RedisManager;

    /// Entries live in the server, so a new manager and other processes
    /// see them; the harness damages them through direct Redis commands;
    /// `update_head` rewrites the head hash in place.
    fn capabilities() -> Capabilities {
        Capabilities::ALL
    }

    async fn create() -> Self {
        Self::start()
    }

    fn manager(&self) -> Arc<RedisManager> {
        self.manager.clone()
    }

    async fn reopen(&self) -> RedisManager {
        manager(&self.url, &self.prefix)
    }

    fn location(&self) -> String {
        format!("{}|{}", self.url, self.prefix)
    }

    async fn open_location(location: &str) -> RedisManager {
        let (url, prefix) = split(location);
        manager(url, prefix)
    }

    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError> {
        damage(&self.manager, &self.url, key, how).await
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        stored_bytes(&self.url, &self.prefix).await
    }
}

pub async fn damage(
    manager: &RedisManager,
    url: &str,
    key: &str,
    how: Damage,
) -> Result<(), BoxError> {
    let (head, chunks) = manager.redis_keys(key).await?;
    let mut con = connection(url).await;
    let middle = chunks.get(chunks.len() / 2).ok_or("no chunks to damage")?;
    match how {
        Damage::FlipBodyByte => {
            let mut bytes: Vec<u8> = redis::cmd("GET").arg(middle).query_async(&mut con).await?;
            let at = bytes.len() / 2;
            bytes[at] ^= 0xff;
            redis::cmd("SET")
                .arg(middle)
                .arg(bytes)
                .arg("KEEPTTL")
                .query_async::<()>(&mut con)
                .await?;
        }
        Damage::TruncateBody if chunks.len() > 1 => {
            let _: i64 = redis::cmd("DEL")
                .arg(&chunks[chunks.len() / 2..])
                .query_async(&mut con)
                .await?;
        }
        Damage::TruncateBody => {
            let bytes: Vec<u8> = redis::cmd("GET").arg(middle).query_async(&mut con).await?;
            let half = bytes[..bytes.len() / 2].to_vec();
            redis::cmd("SET")
                .arg(middle)
                .arg(half)
                .arg("KEEPTTL")
                .query_async::<()>(&mut con)
                .await?;
        }
        Damage::ExtendBody => {
            let last = chunks.last().ok_or("no chunks")?;
            let _: i64 = redis::cmd("APPEND")
                .arg(last)
                .arg("trailing garbage")
                .query_async(&mut con)
                .await?;
        }
        Damage::GarbleMetadata => {
            let garbage = [respcache_redis::FORMAT_VERSION, 0xff, 0xfe, 0x00, 0x42];
            let _: i64 = redis::cmd("HSET")
                .arg(&head)
                .arg("meta")
                .arg(&garbage[..])
                .query_async(&mut con)
                .await?;
        }
    }
    Ok(())
}

pub async fn stored_bytes(url: &str, prefix: &str) -> Result<u64, BoxError> {
    let mut con = connection(url).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await?;
    let mut total = 0u64;
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut con).await?;
        total += match kind.as_str() {
            "string" => {
                redis::cmd("STRLEN")
                    .arg(&key)
                    .query_async::<u64>(&mut con)
                    .await?
            }
            "hash" => {
                redis::cmd("HSTRLEN")
                    .arg(&key)
                    .arg("meta")
                    .query_async::<u64>(&mut con)
                    .await?
                    + 64
            }
            _ => 0,
        };
    }
    Ok(total)
}
