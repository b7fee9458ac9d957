//! An axum app with a shared respcache in front of its routes: repeated
//! requests are answered from the cache, not by the handler.
//!
//! `cargo run -p respcache-http --example axum_server`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use respcache_http::{BoxError, CacheLayer, HttpCache, Options, Streaming};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let calls = Arc::new(AtomicUsize::new(0));
    let handler_calls = calls.clone();

    // ANCHOR: router
    let backend = respcache_fs::StreamingManager::new(dir.path().join("http-cache"));
    let cache = HttpCache::new(Streaming::new(backend), Options::shared());
    let app = Router::new()
        .route(
            "/report",
            get(move || async move {
                let n = handler_calls.fetch_add(1, Ordering::SeqCst) + 1;
                (
                    [("cache-control", "max-age=60")],
                    format!("report number {n}"),
                )
            }),
        )
        // `infallible()`: where the app fails, the cache answers 502 itself,
        // as `Router::layer` wants a service that cannot fail.
        .layer(CacheLayer::new(cache).infallible());
    // ANCHOR_END: router

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/report", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for _ in 0..2 {
        let response = client.get(url.parse()?).await?;
        let cache_status = response.headers()["cache-status"].clone();
        let body = response.into_body().collect().await?.to_bytes();
        println!("{body:?}  (Cache-Status: {cache_status:?})");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second request was a hit"
    );
    Ok(())
}
