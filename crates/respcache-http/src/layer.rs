//! The engine as a tower `Layer`, around any `Service` that answers HTTP
//! requests.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use respcache_core::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::CacheBody;
use crate::engine::HttpCache;
use crate::origin::{OriginFuture, ServiceOrigin};
use crate::status::CacheStatus;
use crate::storage::Storage;

/// Puts an [`HttpCache`] in front of a service.
#[derive(Debug, Clone)]
pub struct CacheLayer<S> {
    cache: HttpCache<S>,
}

impl<S: Storage> CacheLayer<S> {
    /// A layer that answers through `cache`.
    pub fn new(cache: HttpCache<S>) -> Self {
        Self { cache }
    }
}

impl<S: Storage> CacheLayer<S> {
    /// The same layer, whose services never fail: where the inner service
    /// fails and nothing stored may stand in for its answer, they answer
    /// `502 Bad Gateway` themselves, and log the error. This is the layer
    /// for `axum::Router::layer`, which takes infallible services only.
    pub fn infallible(self) -> InfallibleCacheLayer<S> {
        InfallibleCacheLayer { cache: self.cache }
    }
}

impl<S: Storage, Inner> Layer<Inner> for CacheLayer<S> {
    type Service = CacheService<S, Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        CacheService {
            cache: self.cache.clone(),
            inner,
        }
    }
}

/// A service answered from the cache where RFC 9111 allows, else by the
/// inner service. Its error is the inner service's (origin unreachable and
/// nothing stale may be served); cache failures are never errors.
#[derive(Debug, Clone)]
pub struct CacheService<S, Inner> {
    cache: HttpCache<S>,
    inner: Inner,
}

impl<S, Inner, ReqB, ResB> Service<Request<ReqB>> for CacheService<S, Inner>
where
    S: Storage,
    Inner: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Inner::Future: Send + 'static,
    Inner::Error: Into<BoxError>,
    ReqB: Default + Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<CacheBody>;
    type Error = BoxError;
    type Future = OriginFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness of the inner service is awaited on the clone that sends.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let cache = self.cache.clone();
        let origin = ServiceOrigin(self.inner.clone());
        Box::pin(async move { cache.handle(request, origin).await })
    }
}

/// A [`CacheLayer`] whose services answer `502 Bad Gateway` instead of
/// failing; from [`CacheLayer::infallible`].
#[derive(Debug, Clone)]
pub struct InfallibleCacheLayer<S> {
    cache: HttpCache<S>,
}

impl<S: Storage, Inner> Layer<Inner> for InfallibleCacheLayer<S> {
    type Service = InfallibleCacheService<S, Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        InfallibleCacheService(CacheService {
            cache: self.cache.clone(),
            inner,
        })
    }
}

/// A [`CacheService`] that answers `502 Bad Gateway` where that one
/// fails, so that its error is [`Infallible`].
#[derive(Debug, Clone)]
pub struct InfallibleCacheService<S, Inner>(CacheService<S, Inner>);

/// The future of an [`InfallibleCacheService`].
pub type InfallibleFuture =
    Pin<Box<dyn Future<Output = Result<Response<CacheBody>, Infallible>> + Send>>;

impl<S, Inner, ReqB, ResB> Service<Request<ReqB>> for InfallibleCacheService<S, Inner>
where
    S: Storage,
    Inner: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Inner::Future: Send + 'static,
    Inner::Error: Into<BoxError>,
    ReqB: Default + Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<CacheBody>;
    type Error = Infallible;
    type Future = InfallibleFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let cache_name = self.0.cache.options().cache_name.clone();
        let answer = self.0.call(request);
        Box::pin(async move {
            Ok(answer.await.unwrap_or_else(|error| {
                tracing::warn!(%method, %uri, %error, "the inner service failed; answering 502");
                bad_gateway(&cache_name)
            }))
        })
    }
}

/// A `502` of the cache's own, with its `Cache-Status`. The error stays in
/// the log: it may name internals a client has no business seeing.
fn bad_gateway(cache_name: &str) -> Response<CacheBody> {
    let mut response = Response::new(crate::body::full(Bytes::from_static(b"502 Bad Gateway\n")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        HeaderName::from_static("cache-status"),
        CacheStatus::default().to_header(cache_name),
    );
    response
}
