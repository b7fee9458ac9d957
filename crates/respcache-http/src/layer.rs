//! The engine as a tower `Layer`, around any `Service` that answers HTTP
//! requests.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use respcache_core::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::CacheBody;
use crate::engine::HttpCache;
use crate::origin::{OriginFuture, ServiceOrigin};
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
