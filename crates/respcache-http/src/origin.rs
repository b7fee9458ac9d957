//! The origin: where the engine sends what it cannot answer itself.

use std::future::{Future, poll_fn};
use std::pin::Pin;

use bytes::Bytes;
use http::{Request, Response};
use respcache_core::BoxError;
use tower_service::Service;

use crate::body::{self, CacheBody};

/// A future the engine can hold across tasks.
pub type OriginFuture = Pin<Box<dyn Future<Output = Result<Response<CacheBody>, BoxError>> + Send>>;

/// Something that answers requests: a hyper client, an axum app, any tower
/// `Service` (through [`ServiceOrigin`]). It is cloned for work that
/// outlives a request, such as a background revalidation.
pub trait Origin<ReqB>: Clone + Send + 'static {
    /// Sends `request` and returns the response head as soon as it arrives.
    fn send(&mut self, request: Request<ReqB>) -> OriginFuture;
}

/// A tower `Service` as an [`Origin`].
#[derive(Debug, Clone)]
pub struct ServiceOrigin<S>(pub S);

impl<S, ReqB, ResB> Origin<ReqB> for ServiceOrigin<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqB: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    fn send(&mut self, request: Request<ReqB>) -> OriginFuture {
        // The clone is the one made ready, as tower's docs ask.
        let mut service = self.0.clone();
        Box::pin(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service.call(request).await.map_err(Into::into)?;
            Ok(response.map(body::boxed))
        })
    }
}

/// A function from request to response future as a tower `Service`: the
/// smallest origin, for tests and examples.
#[derive(Debug, Clone)]
pub struct FnService<F>(pub F);

impl<F, Fut, ReqB, Res, E> Service<Request<ReqB>> for FnService<F>
where
    F: FnMut(Request<ReqB>) -> Fut,
    Fut: Future<Output = Result<Res, E>>,
{
    type Response = Res;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), E>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Fut {
        (self.0)(request)
    }
}
