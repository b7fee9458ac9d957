//! A reqwest client with respcache as middleware: the second request is
//! answered from the cache, and a per-request mode goes around it.
//!
//! `cargo run -p respcache-reqwest --example reqwest_client`

// ANCHOR: imports
use reqwest_middleware::ClientBuilder;
use respcache_reqwest::{Cache, CacheMode};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // A stand-in origin on loopback, so that the example runs anywhere.
    let origin = respcache_testkit::Origin::start(|_, n| {
        http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(respcache_testkit::full(format!("response number {n}")))
            .expect("a response")
    })
    .await;
    let dir = tempfile::tempdir()?;
    let url = origin.url("/");

    // ANCHOR: setup
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Cache::streaming(respcache_fs::StreamingManager::new(
            dir.path().join("http-cache"),
        )))
        .build();
    // ANCHOR_END: setup

    // ANCHOR: requests
    for _ in 0..2 {
        let response = client.get(&url).send().await?;
        let cache_status = response.headers()["cache-status"].clone();
        println!(
            "{:?}  (Cache-Status: {cache_status:?})",
            response.text().await?
        );
    }
    // One request that goes to the origin whatever is stored.
    let reloaded = client
        .get(&url)
        .with_extension(CacheMode::Reload)
        .send()
        .await?;
    let cache_status = reloaded.headers()["cache-status"].clone();
    println!(
        "{:?}  (Cache-Status: {cache_status:?})",
        reloaded.text().await?
    );
    // ANCHOR_END: requests
    assert_eq!(origin.requests(), 2, "one miss, one hit, one reload");

    // For dashboards that read http-cache's `x-cache` and `x-cache-lookup`.
    // ANCHOR: x_cache
    let options = respcache_reqwest::Options {
        x_cache_headers: true,
        ..respcache_reqwest::Options::private()
    };
    let backend = respcache_fs::StreamingManager::new(dir.path().join("http-cache"));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Cache::new(respcache_reqwest::HttpCache::new(
            respcache_reqwest::Streaming::new(backend),
            options,
        )))
        .build();
    let response = client.get(&url).send().await?;
    assert_eq!(response.headers()["x-cache"], "HIT");
    assert_eq!(response.headers()["x-cache-lookup"], "HIT");
    // ANCHOR_END: x_cache
    Ok(())
}
