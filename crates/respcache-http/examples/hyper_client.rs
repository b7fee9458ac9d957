//! A hyper client with a private respcache in front of it: the second
//! request is answered from the cache.
//!
//! `cargo run -p respcache-http --example hyper_client`

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use respcache_http::{BoxError, CacheLayer, HttpCache, Layer, Options, Streaming};
use tower_service::Service;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // A stand-in origin on loopback, so that the example runs anywhere.
    let origin = respcache_testkit::Origin::start(|_, n| {
        http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(respcache_testkit::full(format!("response number {n}")))
            .expect("a response")
    })
    .await;
    let dir = tempfile::tempdir()?;

    // ANCHOR: setup
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let backend = respcache_fs::StreamingManager::new(dir.path().join("http-cache"));
    let cache = HttpCache::new(Streaming::new(backend), Options::private());
    let mut client = CacheLayer::new(cache).layer(client);
    // ANCHOR_END: setup

    // ANCHOR: request
    for _ in 0..2 {
        let request = http::Request::get(origin.url("/")).body(Empty::new())?;
        let response = client.call(request).await?;
        let cache_status = response.headers()["cache-status"].clone();
        let body = response.into_body().collect().await?.to_bytes();
        println!("{body:?}  (Cache-Status: {cache_status:?})");
    }
    // ANCHOR_END: request
    assert_eq!(origin.requests(), 1, "the second request was a hit");
    Ok(())
}
