//! The in-process service the engine bench and the http-cache directory
//! test put caches in front of.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_service::Service;

/// A fixed body, fresh for an hour, and a count of the requests that
/// reached it.
#[derive(Debug, Clone)]
pub struct Origin {
    body: Bytes,
    calls: Arc<AtomicUsize>,
}

impl Origin {
    /// An origin that answers every request with `body`.
    pub fn new(body: Bytes) -> Self {
        Self {
            body,
            calls: Arc::default(),
        }
    }

    /// How many requests have reached it (clones share the count).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Request<Full<Bytes>>> for Origin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let response = Response::builder()
            .header("cache-control", "max-age=3600")
            .header("content-type", "application/octet-stream")
            .body(Full::new(self.body.clone()))
            .expect("a response");
        ready(Ok(response))
    }
}
