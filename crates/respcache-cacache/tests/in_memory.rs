//! Small entries kept in memory: served without reading the cache, never
//! after this process changed them, and given up for another process's
//! change once the recheck interval has passed.

use std::time::Duration;

use respcache_cacache::CACacheManager;
use respcache_core::{CacheManager, CachePolicy, HttpResponse};

async fn put(cache: &CACacheManager, key: &str, body: &'static [u8]) {
    let url = url::Url::parse("https://example.com/").unwrap();
    let request = http::Request::get(url.as_str()).body(()).unwrap();
    let response = http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(bytes::Bytes::from_static(body))
        .unwrap();
    let policy = CachePolicy::new(&request, &response);
    cache
        .put(key.into(), HttpResponse::from_http(response, url), policy)
        .await
        .unwrap();
}

async fn body(cache: &CACacheManager, key: &str) -> Option<bytes::Bytes> {
    let found = cache.get(key).await.unwrap();
    found.map(|(response, _)| response.body)
}

#[tokio::test]
async fn a_hit_kept_in_memory_needs_no_content_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CACacheManager::builder(dir.path())
        .recheck_interval(Duration::from_secs(3600))
        .build();
    put(&cache, "k", b"first").await;
    let content = cache.content_path("k").await.unwrap().unwrap();
    assert_eq!(body(&cache, "k").await.unwrap(), "first");
    // Content gone behind the cache's back, bucket unchanged: served from
    // memory (it was checked when it was read).
    std::fs::remove_file(&content).unwrap();
    assert_eq!(body(&cache, "k").await.unwrap(), "first");
    let off = CACacheManager::builder(dir.path())
        .hot_body_bytes(0)
        .build();
    assert!(body(&off, "k").await.is_none(), "without memory, a miss");
}

#[tokio::test]
async fn this_managers_writes_and_deletes_are_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CACacheManager::builder(dir.path())
        .recheck_interval(Duration::from_secs(3600))
        .build();
    put(&cache, "k", b"first").await;
    assert_eq!(body(&cache, "k").await.unwrap(), "first");
    put(&cache, "k", b"second").await;
    assert_eq!(body(&cache, "k").await.unwrap(), "second");
    cache.delete("k").await.unwrap();
    assert!(body(&cache, "k").await.is_none());
    put(&cache, "k", b"third").await;
    assert_eq!(body(&cache, "k").await.unwrap(), "third");
    cache.clear().await.unwrap();
    assert!(body(&cache, "k").await.is_none());
}

#[tokio::test]
async fn another_managers_writes_are_seen_once_the_recheck_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(200);
    let reader = CACacheManager::builder(dir.path())
        .recheck_interval(interval)
        .build();
    let writer = CACacheManager::new(dir.path(), true);
    put(&writer, "k", b"first").await;
    assert_eq!(body(&reader, "k").await.unwrap(), "first");
    put(&writer, "k", b"second").await;
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_eq!(body(&reader, "k").await.unwrap(), "second");
    writer.delete("k").await.unwrap();
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert!(body(&reader, "k").await.is_none());
}
