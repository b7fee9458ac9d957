//! A memory tier in front of the fs backend, each with its options: the
//! set-up the guide's "Memory and tiers" page shows. A response stored
//! through the tiers is in both, and a new tiered manager on the same
//! directory (a restart) finds it in the far one.
//!
//! `cargo run -p respcache-tiered --example tiers`

use std::time::Duration;

use respcache_core::{CacheManager, CachePolicy, HttpResponse};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let directory = dir.path().join("http-cache");

    // ANCHOR: memory
    use respcache_memory::MemoryManager;

    let memory = MemoryManager::builder(256 * 1024 * 1024) // bytes, heads and bodies
        .max_body_size(8 * 1024 * 1024) // larger bodies pass through
        .build();
    // ANCHOR_END: memory

    // ANCHOR: tiered
    use respcache_fs::StreamingManager;
    use respcache_tiered::TieredManager;

    let cache = TieredManager::builder(memory, StreamingManager::new(directory.clone()))
        // Another process's change to the far tier is seen within a minute.
        .near_lifetime(Duration::from_secs(60))
        .build();
    // ANCHOR_END: tiered

    let url = url::Url::parse("https://example.com/")?;
    let request = http::Request::get(url.as_str()).body(())?;
    let response = http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(bytes::Bytes::from_static(b"hello"))?;
    let policy = CachePolicy::new(&request, &response);
    cache
        .put(
            "GET:/".into(),
            HttpResponse::from_http(response, url),
            policy,
        )
        .await?;
    assert!(cache.near().get("GET:/").await?.is_some());

    let restarted = TieredManager::new(
        MemoryManager::new(1024 * 1024),
        StreamingManager::new(directory),
    );
    let (hit, _) = restarted.get("GET:/").await?.expect("the far tier kept it");
    assert_eq!(hit.body, "hello");
    println!("stored in both tiers; found again after a restart");
    Ok(())
}
