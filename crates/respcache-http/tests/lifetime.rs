//! One lifetime, the engine's: what a backend that expires entries keeps
//! is what the engine can still use. Here against a real redis-server,
//! whose TTLs are the hints the engine hands over.

mod support;

use std::sync::Arc;
use std::time::Duration;

use respcache_core::CacheManager;
use respcache_http::{CacheMode, HttpCache, ManualClock, Options, Streaming};
use respcache_redis::RedisManager;
use respcache_testkit::RedisServer;
use support::{Origin, get, response, send};

const DAY: u64 = 24 * 60 * 60;

/// The TTL, in seconds, Redis gives the head of the entry under `key`.
async fn ttl(manager: &RedisManager, url: &str, key: &str) -> i64 {
    let (head, _) = manager.redis_keys(key).await.unwrap();
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("TTL")
        .arg(&head)
        .query_async(&mut con)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_the_engine_can_still_serve_outlives_its_freshness_in_redis() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path());
    let manager = RedisManager::builder(server.url())
        .prefix("lifetime")
        .build()
        .unwrap();
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Arc::new(clock.clone()),
        keep_stale: Duration::from_secs(3 * DAY),
        serve_stale_when_disconnected: false,
        ..Options::default()
    };
    let cache = HttpCache::new(Streaming::new(manager.clone()), options);
    let origin = Origin::start(|seen, n| {
        let cc = match seen.path.as_str() {
            "/if-error" => "max-age=1, stale-if-error=86400",
            "/validator" => "no-cache",
            "/forced" => "max-age=1",
            _ => "max-age=60, must-revalidate",
        };
        if n > 4 {
            return match seen.path.as_str() {
                "/if-error" => response(500, &[], "down"),
                _ => response(304, &[("etag", "\"v\"")], ""),
            };
        }
        if seen.path == "/strict" {
            // No validator, no stale: worth nothing once stale.
            return response(200, &[("cache-control", cc)], "kept");
        }
        response(
            200,
            &[
                ("cache-control", cc),
                ("etag", "\"v\""),
                ("x-n", &n.to_string()),
            ],
            "kept",
        )
    })
    .await;
    for path in ["/if-error", "/validator", "/strict"] {
        send(&cache, get(&origin.url(path), &[])).await;
    }
    let mut forced = get(&origin.url("/forced"), &[]);
    forced.extensions_mut().insert(CacheMode::ForceCache);
    send(&cache, forced).await;

    let key = |path: &str| format!("GET:{}", origin.url(path));
    let url = server.url();
    // http-cache-semantics' time_to_live gives each at most a minute; the
    // engine keeps each as long as it can still use it.
    let now = std::time::SystemTime::now();
    for path in ["/if-error", "/validator", "/forced"] {
        let (_, policy) = manager.get(&key(path)).await.unwrap().expect("stored");
        assert!(
            policy.time_to_live(now) <= Duration::from_secs(60),
            "{path}"
        );
    }
    let if_error = ttl(&manager, &url, &key("/if-error")).await;
    assert!(
        if_error > DAY as i64,
        "stale-if-error for a day: TTL {if_error}"
    );
    let validator = ttl(&manager, &url, &key("/validator")).await;
    assert!(
        validator > 2 * DAY as i64,
        "kept to be revalidated: TTL {validator}"
    );
    let forced = ttl(&manager, &url, &key("/forced")).await;
    assert!(
        forced > 2 * DAY as i64,
        "force-cache serves it whatever its age: TTL {forced}"
    );
    let strict = ttl(&manager, &url, &key("/strict")).await;
    assert!(
        (55..=60).contains(&strict),
        "worth its freshness alone: TTL {strict}"
    );

    // Past every freshness, the engine still serves them from Redis.
    clock.advance(Duration::from_secs(3600));
    let hidden = send(&cache, get(&origin.url("/if-error"), &[])).await;
    assert_eq!(
        (hidden.status, hidden.body.as_ref()),
        (200, &b"kept"[..]),
        "{}",
        hidden.cache_status()
    );
    let revalidated = send(&cache, get(&origin.url("/validator"), &[])).await;
    assert!(
        revalidated.cache_status().contains("fwd-status=304"),
        "{}",
        revalidated.cache_status()
    );
    assert_eq!(revalidated.body, "kept");
    let mut forced = get(&origin.url("/forced"), &[]);
    forced.extensions_mut().insert(CacheMode::ForceCache);
    let forced = send(&cache, forced).await;
    assert!(forced.is_hit(), "{}", forced.cache_status());
}
