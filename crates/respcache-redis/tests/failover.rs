//! What readers and writers see while Redis goes away under them: a
//! master of a real cluster killed and replaced by its replica, and a
//! single server restarted, both while entries stream in and out.
//!
//! The guarantees: a reader gets the whole entry, a miss or an error,
//! never wrong or short bytes; a writer's caller gets the whole origin
//! body whatever happens to the cache; and once Redis is back, gets and
//! puts work again without a new manager.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_conformance::fixtures;
use respcache_core::{CacheManager, StreamingCacheManager};
use respcache_redis::RedisManager;
use respcache_testkit::{RedisCluster, RedisServer};

/// Keys the traffic goes to, each with one body of its own.
const KEYS: u32 = 6;
/// Bodies of many chunks, so that streams are cut in the middle.
const BODY: usize = 300 * 1024;
const CHUNK: usize = 16 * 1024;

fn key(i: u32) -> String {
    format!("GET:https://example.com/{i}")
}

fn body(i: u32) -> Bytes {
    fixtures::generated(i, 1, BODY).body
}

#[derive(Debug, Default)]
struct Tally {
    hits: AtomicU64,
    misses: AtomicU64,
    read_errors: AtomicU64,
    writes: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One streamed read of key `i`: a hit must be its body, byte for byte.
async fn read(manager: &RedisManager, i: u32, tally: &Tally) {
    match manager.get_stream(&key(i)).await {
        Err(_) => Tally::add(&tally.read_errors),
        Ok(None) => Tally::add(&tally.misses),
        Ok(Some((response, _))) => match slowly(response.into_body()).await {
            Err(_) => Tally::add(&tally.read_errors),
            Ok(got) => {
                let want = body(i);
                assert_eq!(got.len(), want.len(), "a hit on {i} served short or long");
                assert!(got == want, "a hit on {i} served wrong bytes");
                Tally::add(&tally.hits);
            }
        },
    }
}

/// Reads `body` a frame at a time with a pause between frames, as a slow
/// client would, so that streams are open when Redis goes away.
async fn slowly(
    body: respcache_core::StreamingBody,
) -> Result<Bytes, respcache_core::StreamingError> {
    let mut body = std::pin::pin!(body);
    let mut got = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            got.extend_from_slice(&data);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(got.freeze())
}

/// One streamed write of key `i`: its caller gets the whole body.
async fn write(manager: &RedisManager, i: u32, tally: &Tally) {
    let original = fixtures::generated(i, 1, BODY);
    let frames = fixtures::irregular_frames(&original.body);
    let response = http::Response::from_parts(
        original.parts().expect("parts"),
        fixtures::scripted_body(frames),
    );
    let policy = fixtures::policy_for(&original);
    match manager
        .put_stream(key(i), response, policy, original.url.clone())
        .await
    {
        // The engine passes the origin's response through on this error.
        Err(_) => {}
        Ok(response) => {
            let got = response
                .into_body()
                .collect()
                .await
                .expect("the origin body passes through whatever the cache does")
                .to_bytes();
            assert!(got == original.body, "the writer's caller got other bytes");
        }
    }
    Tally::add(&tally.writes);
}

/// Reads and writes from four tasks until `disrupt` is done and a second
/// more, then checks that gets and puts work again.
async fn traffic_across(manager: Arc<RedisManager>, disrupt: impl Future<Output = ()>) -> Tally {
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u32)
        .map(|worker| {
            let (manager, tally, stop) = (manager.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    let i = n % KEYS;
                    if n % 3 == 0 {
                        write(&manager, i, &tally).await;
                    } else {
                        read(&manager, i, &tally).await;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    disrupt.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker
            .await
            .expect("a worker saw wrong bytes or a cut body");
    }
    recovers(&manager).await;
    Arc::into_inner(tally).expect("the workers are done")
}

/// A put, then a get of what it stored, succeed within 30 s.
async fn recovers(manager: &RedisManager) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = fixtures::generated(99, 1, BODY);
    loop {
        let policy = fixtures::policy_for(&stored);
        let attempt = async {
            manager.put("after".into(), stored.clone(), policy).await?;
            manager.get("after").await
        };
        match attempt.await {
            Ok(Some((hit, _))) if hit.body == stored.body => return,
            outcome if Instant::now() > deadline => panic!(
                "gets and puts did not work again within 30 s: {:?}",
                outcome.map(|found| found.is_some())
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn store_all(manager: &RedisManager) {
    for i in 0..KEYS {
        let original = fixtures::generated(i, 1, BODY);
        let policy = fixtures::policy_for(&original);
        manager.put(key(i), original, policy).await.expect("put");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_killed_mid_stream_serves_whole_entries_misses_or_errors_then_recovers() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("a cluster");
    let manager = Arc::new(
        RedisManager::builder(cluster.url())
            .prefix(cluster.prefix("failover"))
            .chunk_size(CHUNK)
            .build()
            .expect("a manager"),
    );
    store_all(&manager).await;
    let (head, _) = manager.redis_keys(&key(0)).await.expect("keys");
    let master = cluster.master_of(&head).expect("a master for the entry");
    let tally = traffic_across(manager.clone(), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::spawn_blocking(move || {
            cluster.kill(master);
            cluster.wait_until_ok().expect("the replica takes over");
        })
        .await
        .expect("the failover");
    })
    .await;
    assert_ne!(
        cluster.master_of(&head),
        Some(master),
        "the killed master no longer serves the entry"
    );
    println!("{tally:?}");
    assert!(tally.hits.load(Ordering::Relaxed) > 0, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restarted_mid_stream_serves_whole_entries_misses_or_errors_then_recovers() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = Arc::new(std::sync::Mutex::new(RedisServer::start(dir.path())));
    let url = server.lock().expect("the server").url();
    let manager = Arc::new(
        RedisManager::builder(url)
            .chunk_size(CHUNK)
            .build()
            .expect("a manager"),
    );
    store_all(&manager).await;
    let tally = traffic_across(manager.clone(), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            server
                .lock()
                .expect("the server")
                .restart()
                .expect("a restart")
        })
        .await
        .expect("the restart");
    })
    .await;
    println!("{tally:?}");
    assert!(tally.hits.load(Ordering::Relaxed) > 0, "{tally:?}");
}
