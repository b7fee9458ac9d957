//! `CacheLayer::infallible`: a service that answers `502` where the plain
//! one fails, for frameworks (axum) that take infallible services only.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use respcache_http::{Buffered, CacheLayer, FnService, HttpCache, Layer, Options};
use tower_service::Service;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn cache(dir: &std::path::Path) -> CacheLayer<Buffered<respcache_cacache::CACacheManager>> {
    let backend = respcache_cacache::CACacheManager::new(dir, true);
    CacheLayer::new(HttpCache::new(Buffered::new(backend), Options::shared()))
}

#[tokio::test]
async fn a_failing_inner_service_becomes_a_502_with_cache_status() -> TestResult {
    let dir = tempfile::tempdir()?;
    let failing = FnService(|_request: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("connection refused"))
    });
    let mut service = cache(dir.path()).infallible().layer(failing);
    let request = Request::get("http://example.com/").body(Full::default())?;
    let response: Result<_, Infallible> = service.call(request).await;
    let Ok(response) = response;
    assert_eq!(response.status(), 502);
    assert!(response.headers().contains_key("cache-status"));
    let body = response.into_body().collect().await?.to_bytes();
    assert!(
        !body.windows(7).any(|w| w == b"refused"),
        "the error leaked"
    );
    Ok(())
}

#[tokio::test]
async fn a_working_inner_service_is_cached_as_through_the_plain_layer() -> TestResult {
    let dir = tempfile::tempdir()?;
    let origin = FnService(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("cache-control", "max-age=60")
                .body(Full::new(Bytes::from_static(b"hello")))
                .expect("a response"),
        )
    });
    let mut service = cache(dir.path()).infallible().layer(origin);
    for expected in ["fwd=uri-miss", "hit"] {
        let request = Request::get("http://example.com/").body(Full::default())?;
        let Ok(response) = service.call(request).await;
        assert_eq!(response.status(), 200);
        let status = response.headers()["cache-status"].to_str()?.to_owned();
        assert!(status.contains(expected), "{status}");
        assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
    }
    Ok(())
}
