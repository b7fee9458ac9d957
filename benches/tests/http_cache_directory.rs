//! What the guide's "Coming from http-cache" says of an existing cache
//! directory: one that `http-cache` (the peer crate, here as the benches
//! pin it) filled reads as misses through respcache's cacache backend,
//! never as a hit and never as an error, and then fills with entries of
//! respcache's own.

#[path = "../benches/common/origin.rs"]
mod origin;

use std::future::poll_fn;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use respcache_core::CacheManager;
use tower_layer::Layer;
use tower_service::Service;

use origin::Origin;

/// One request through `service`: the response head and its whole body.
async fn get<S, B>(service: &mut S, uri: &Uri) -> (http::response::Parts, Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    poll_fn(|cx| service.poll_ready(cx)).await.expect("ready");
    let request = Request::builder()
        .uri(uri.clone())
        .body(Full::default())
        .expect("a request");
    let (parts, body) = service
        .call(request)
        .await
        .expect("a response")
        .into_parts();
    (parts, body.collect().await.expect("a body").to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_http_cache_filled_reads_as_misses_then_fills_anew() {
    let dir = tempfile::tempdir().unwrap();
    let uri: Uri = "http://example.test/item".parse().unwrap();

    // http-cache fills the directory: its second request is its own hit.
    let peer_origin = Origin::new(Bytes::from_static(b"from the origin"));
    let peer_manager = http_cache::CACacheManager::new(dir.path().to_path_buf(), true);
    let mut peer = http_cache_tower::HttpCacheLayer::new(peer_manager).layer(peer_origin.clone());
    get(&mut peer, &uri).await;
    get(&mut peer, &uri).await;
    assert_eq!(peer_origin.calls(), 1, "http-cache stored the response");

    // Its entry, under the key http-cache gives it, is a miss to respcache.
    let manager = respcache_cacache::CACacheManager::new(dir.path(), true);
    assert!(
        manager
            .get("GET:http://example.test/item")
            .await
            .unwrap()
            .is_none()
    );

    // Through the engine: a miss, not an error, then respcache's own hit.
    let origin = Origin::new(Bytes::from_static(b"from the origin"));
    let cache = respcache_http::HttpCache::new(
        respcache_http::Buffered::new(manager),
        respcache_http::Options::default(),
    );
    let mut ours = respcache_http::CacheLayer::new(cache).layer(origin.clone());
    let (first, body) = get(&mut ours, &uri).await;
    assert_eq!(body, "from the origin");
    let status = first.headers["cache-status"].to_str().unwrap();
    assert!(status.contains("fwd=uri-miss"), "{status}");
    let (second, _) = get(&mut ours, &uri).await;
    let status = second.headers["cache-status"].to_str().unwrap();
    assert!(status.contains("; hit"), "{status}");
    assert_eq!(origin.calls(), 1);
}
