//! A cache in front of a real origin on loopback (the test kit's), for
//! engine tests.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_http::{CacheBody, HttpCache, Options, ServiceOrigin, Storage};
// Each test binary that includes this module uses some of these.
#[allow(unused_imports)]
pub use respcache_testkit::{Gate, Origin, pattern, stream};

/// A response with `headers` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<CacheBody> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(respcache_http::full(body)).unwrap()
}

pub type ClientOrigin = ServiceOrigin<Client<HttpConnector, Full<Bytes>>>;

/// The origin as the engine reaches it: hyper's client over loopback.
pub fn client() -> ClientOrigin {
    ServiceOrigin(Client::builder(TokioExecutor::new()).build_http())
}

/// A GET with extra headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    request("GET", url, headers)
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::default()).unwrap()
}

/// What a client got: status, headers and the whole body.
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    /// The `Cache-Status` field. Every response the engine gives carries
    /// one: a missing one fails the test, so that a negative check
    /// ("not a hit") cannot pass on a response without it.
    pub fn cache_status(&self) -> String {
        self.headers
            .get("cache-status")
            .expect("every response carries Cache-Status")
            .to_str()
            .unwrap()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn is_hit(&self) -> bool {
        self.cache_status().split(';').any(|p| p.trim() == "hit")
    }
}

/// Sends `request` through `cache` and reads the whole response.
pub async fn send<S: Storage>(cache: &HttpCache<S>, request: Request<Full<Bytes>>) -> Got {
    let response = cache.handle(request, client()).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A cache over the fs backend in `dir`.
pub fn fs_cache(
    dir: &std::path::Path,
    options: Options,
) -> HttpCache<respcache_http::Streaming<respcache_fs::StreamingManager>> {
    let manager = respcache_fs::StreamingManager::new(dir.to_path_buf());
    HttpCache::new(respcache_http::Streaming::new(manager), options)
}

/// A cache over the cacache backend in `dir`.
pub fn cacache_cache(
    dir: &std::path::Path,
    options: Options,
) -> HttpCache<respcache_http::Buffered<respcache_cacache::CACacheManager>> {
    let manager = respcache_cacache::CACacheManager::new(dir, true);
    HttpCache::new(respcache_http::Buffered::new(manager), options)
}
