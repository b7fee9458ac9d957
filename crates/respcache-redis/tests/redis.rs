//! Behaviour particular to `RedisManager`, against a real redis-server.

mod support;

use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use respcache_conformance::fixtures;
use respcache_core::{CacheManager, StoreHints, StreamingCacheManager, StreamingError};
use respcache_redis::RedisManager;
use support::{RedisHarness, connection};

async fn put(manager: &RedisManager, key: &str, response: respcache_core::HttpResponse) {
    let policy = fixtures::policy_for(&response);
    manager
        .put(key.into(), response, policy)
        .await
        .expect("put");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_managers_share_entries_as_two_proxies_would() {
    let h = RedisHarness::start();
    let first = RedisManager::builder(&h.url)
        .prefix("shared")
        .build()
        .unwrap();
    let second = RedisManager::builder(&h.url)
        .prefix("shared")
        .build()
        .unwrap();
    put(&first, "k", fixtures::generated(1, 1, 600_000)).await;
    let (hit, _) = second
        .get("k")
        .await
        .unwrap()
        .expect("stored through the other manager");
    assert_eq!(fixtures::verify_generated(1, &hit), Ok(1));
    second.delete("k").await.unwrap();
    assert!(
        first.get("k").await.unwrap().is_none(),
        "a delete through one is seen by the other"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prefixes_keep_applications_apart() {
    let h = RedisHarness::start();
    let a = RedisManager::builder(&h.url)
        .prefix("app-a")
        .build()
        .unwrap();
    let b = RedisManager::builder(&h.url)
        .prefix("app-b")
        .build()
        .unwrap();
    put(&a, "k", fixtures::generated(1, 1, 10)).await;
    assert!(b.get("k").await.unwrap().is_none());
    put(&b, "k", fixtures::generated(1, 2, 10)).await;
    b.delete("k").await.unwrap();
    let (hit, _) = a.get("k").await.unwrap().expect("a's entry");
    assert_eq!(fixtures::verify_generated(1, &hit), Ok(1));
    assert!(
        RedisManager::builder(&h.url)
            .prefix("bad{tag}")
            .build()
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_gives_clear_errors_then_the_manager_reconnects() {
    let h = RedisHarness::start();
    let manager = &h.manager;
    put(manager, "k", fixtures::generated(1, 1, 1000)).await;

    h.server.lock().unwrap().stop();
    let started = Instant::now();
    let err = manager.get("k").await.expect_err("the server is down");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failing took {:?}",
        started.elapsed()
    );
    assert!(!err.to_string().is_empty());
    assert!(
        manager
            .put(
                "k".into(),
                fixtures::generated(1, 2, 10),
                fixtures::policy_for(&fixtures::generated(1, 2, 10))
            )
            .await
            .is_err()
    );

    h.server.lock().unwrap().restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let found = loop {
        match manager.get("k").await {
            Ok(found) => break found,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(err) => panic!("the manager did not reconnect: {err}"),
        }
    };
    assert!(
        found.is_none(),
        "persistence is off: the restarted server is empty"
    );
    put(manager, "k", fixtures::generated(1, 3, 1000)).await;
    let (hit, _) = manager.get("k").await.unwrap().unwrap();
    assert_eq!(fixtures::verify_generated(1, &hit), Ok(3));
}

/// The TTLs of every key of `key`'s entry.
async fn ttls(manager: &RedisManager, url: &str, key: &str) -> Vec<(String, i64)> {
    let (head, chunks) = manager.redis_keys(key).await.unwrap();
    assert!(chunks.len() > 1, "a body of several chunks");
    let mut con = connection(url).await;
    let mut ttls = Vec::new();
    for key in std::iter::once(head).chain(chunks) {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap();
        ttls.push((key, ttl));
    }
    ttls
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_expires_with_the_lifetime_it_was_given_or_the_default() {
    let h = RedisHarness::start();
    let manager = RedisManager::builder(&h.url)
        .prefix("ttl")
        .chunk_size(1000)
        .default_ttl(Duration::from_secs(77))
        .build()
        .unwrap();
    // What the response says of its own lifetime plays no part: the
    // caller decides.
    let mut response = fixtures::generated(1, 1, 5000);
    response.headers.insert(
        "cache-control",
        http::HeaderValue::from_static("max-age=100000, stale-while-revalidate=30"),
    );
    let policy = fixtures::policy_for(&response);
    let hints = StoreHints::keep_for(Duration::from_secs(150));
    manager
        .put_with("k".into(), response.clone(), policy, hints)
        .await
        .unwrap();
    for (key, ttl) in ttls(&manager, &h.url, "k").await {
        assert!(
            (145..=150).contains(&ttl),
            "{key} expires in {ttl} s, expected 150"
        );
    }
    put(&manager, "plain", response).await;
    for (key, ttl) in ttls(&manager, &h.url, "plain").await {
        assert!(
            (72..=77).contains(&ttl),
            "{key} expires in {ttl} s, expected the default 77"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_streaming_put_leaves_nothing_behind() {
    let h = RedisHarness::start();
    let original = fixtures::generated(1, 1, 3 * 1024 * 1024);
    let mut frames = fixtures::irregular_frames(&original.body);
    frames.truncate(frames.len() / 2);
    frames.push(Err(StreamingError::from("origin reset")));
    let response = h
        .manager
        .put_stream(
            "k".into(),
            http::Response::from_parts(original.parts().unwrap(), fixtures::scripted_body(frames)),
            fixtures::policy_for(&original),
            original.url.clone(),
        )
        .await
        .unwrap();
    assert!(response.into_body().collect().await.is_err());
    let mut con = connection(&h.url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut con)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        for key in &keys {
            let ttl: i64 = redis::cmd("TTL")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            // -2: the writer's cleanup removed the key between KEYS and
            // TTL, which is what this test waits for. Only -1, a key
            // without an expiry, would outlive an abandoned write.
            assert_ne!(ttl, -1, "{key} would never expire");
        }
        assert!(
            Instant::now() < deadline,
            "abandoned chunks were not removed: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_streaming_an_old_body_finishes_it_across_an_overwrite() {
    let h = RedisHarness::start();
    // Default grace: replaced chunks live 30 s more.
    let manager = RedisManager::builder(&h.url)
        .chunk_size(64 * 1024)
        .build()
        .unwrap();
    let old = fixtures::generated(2, 1, 2 * 1024 * 1024);
    put(&manager, "k", old.clone()).await;
    let (response, _) = manager.get_stream("k").await.unwrap().unwrap();
    let mut body = Box::pin(response.into_body());
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    put(&manager, "k", fixtures::generated(2, 2, 1000)).await;
    let rest = body
        .collect()
        .await
        .expect("the old body streams to its end")
        .to_bytes();
    assert_eq!([first, rest].concat(), old.body.to_vec());
    let (now, _) = manager.get("k").await.unwrap().unwrap();
    assert_eq!(fixtures::verify_generated(2, &now), Ok(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_max_body_size_are_not_stored() {
    let h = RedisHarness::start();
    let manager = RedisManager::builder(&h.url)
        .max_body_size(100_000)
        .build()
        .unwrap();
    let big = fixtures::generated(1, 1, 300_000);
    let err = manager
        .put("big".into(), big.clone(), fixtures::policy_for(&big))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    let response = manager
        .put_stream(
            "big".into(),
            http::Response::from_parts(
                big.parts().unwrap(),
                fixtures::scripted_body(fixtures::irregular_frames(&big.body)),
            ),
            fixtures::policy_for(&big),
            big.url.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        big.body
    );
    assert!(manager.get("big").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_with_a_garbled_chunk_count_is_removed_not_an_error_forever() {
    let h = RedisHarness::start();
    put(&h.manager, "k", fixtures::generated(1, 1, 1000)).await;
    let (head, _) = h.manager.redis_keys("k").await.unwrap();
    let mut con = connection(&h.url).await;
    let _: i64 = redis::cmd("HSET")
        .arg(&head)
        .arg("n")
        .arg("many")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(h.manager.get("k").await.unwrap().is_none());
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&head)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0, "the garbled head was left in place");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_304_head_update_keeps_the_chunks_and_renews_every_ttl() {
    let h = RedisHarness::start();
    let manager = RedisManager::builder(&h.url)
        .prefix("upd")
        .chunk_size(1000)
        .build()
        .unwrap();
    let mut response = fixtures::generated(1, 1, 5000);
    response.headers.insert(
        "cache-control",
        http::HeaderValue::from_static("max-age=10"),
    );
    put(&manager, "k", response.clone()).await;
    let (_, chunks_before) = manager.redis_keys("k").await.unwrap();

    let mut head = response.parts().unwrap();
    head.headers.insert(
        "cache-control",
        http::HeaderValue::from_static("max-age=1000"),
    );
    let mut renewed = response.clone();
    renewed.headers = head.headers.clone();
    let hints = StoreHints::keep_for(Duration::from_secs(1020));
    let updated = manager
        .update_head_with("k", head, fixtures::policy_for(&renewed), hints)
        .await
        .unwrap();
    assert!(updated, "redis updates heads in place");

    let (head_key, chunks) = manager.redis_keys("k").await.unwrap();
    assert_eq!(chunks, chunks_before, "the body's chunks are the same keys");
    let (back, _) = manager.get("k").await.unwrap().expect("still stored");
    assert_eq!(fixtures::verify_generated(1, &back), Ok(1));
    assert_eq!(back.headers["cache-control"], "max-age=1000");
    let mut con = connection(&h.url).await;
    for key in std::iter::once(&head_key).chain(&chunks) {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!((1015..=1020).contains(&ttl), "{key} expires in {ttl} s");
    }
    assert!(
        !manager
            .update_head(
                "missing",
                response.parts().unwrap(),
                fixtures::policy_for(&response)
            )
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_works_with_the_servers_authority_and_refuses_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = respcache_testkit::RedisServer::start_tls(dir.path());
    let url = server.url();
    assert!(url.starts_with("rediss://"), "{url}");
    let manager = RedisManager::builder(&url)
        .tls_root_certificate(server.ca_pem().unwrap())
        .chunk_size(64 * 1024)
        .build()
        .unwrap();
    put(&manager, "k", fixtures::generated(1, 1, 300_000)).await;
    let (hit, _) = manager.get("k").await.unwrap().expect("a hit over TLS");
    assert_eq!(fixtures::verify_generated(1, &hit), Ok(1));
    let (streamed, _) = manager.get_stream("k").await.unwrap().unwrap();
    let body = streamed.into_body().collect().await.unwrap().to_bytes();
    assert!(body == hit.body, "the streamed body over TLS differs");

    // The system's roots do not know the test's authority.
    let untrusting = RedisManager::builder(&url)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(
        untrusting.get("k").await.is_err(),
        "an unknown authority was trusted"
    );
    // And the port speaks nothing but TLS.
    let plain = RedisManager::builder(url.replace("rediss://", "redis://"))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(
        plain.get("k").await.is_err(),
        "the server answered plain text"
    );
}
