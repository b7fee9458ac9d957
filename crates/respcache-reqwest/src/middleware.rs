//! [`Cache`]: the middleware.

use std::fmt;

use http::Extensions;
use reqwest::ResponseBuilderExt;
use reqwest_middleware::{Middleware, Next};
use respcache_core::{CacheManager, StreamingCacheManager};
use respcache_http::{BoxError, Buffered, CacheMode, HttpCache, Options, Storage, Streaming};

use crate::body::SyncBody;
use crate::origin::{ChainOrigin, Sent};

/// reqwest-middleware that answers requests from an [`HttpCache`] where
/// RFC 9111 allows, and through the rest of the chain where it does not.
/// See the crate docs.
///
/// Cloning is cheap; clones share the cache.
#[derive(Debug, Clone)]
pub struct Cache<S> {
    cache: HttpCache<S>,
}

impl<M> Cache<Streaming<M>>
where
    M: StreamingCacheManager,
{
    /// A private cache over a streaming backend (fs, redis): bodies are
    /// stored and read in chunks, never whole in memory.
    pub fn streaming(manager: M) -> Self {
        Self::new(HttpCache::new(Streaming::new(manager), Options::private()))
    }
}

impl<M> Cache<Buffered<M>>
where
    M: CacheManager + Clone,
{
    /// A private cache over any backend that is `Clone` (cacache, or one
    /// of your own; one that is not goes in an `Arc`): a copy of each body
    /// is gathered on the side, up to 64 MiB, and stored once complete.
    pub fn buffered(manager: M) -> Self {
        Self::new(HttpCache::new(Buffered::new(manager), Options::private()))
    }
}

impl<S: Storage> Cache<S> {
    /// The middleware over `cache`, with whatever storage and
    /// [`Options`] it was made with.
    pub fn new(cache: HttpCache<S>) -> Self {
        Self { cache }
    }

    /// The engine, for its metrics and storage.
    pub fn cache(&self) -> &HttpCache<S> {
        &self.cache
    }
}

#[async_trait::async_trait]
impl<S: Storage> Middleware for Cache<S> {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = request.url().clone();
        let mut request = http::Request::<reqwest::Body>::try_from(request)?;
        if let Some(mode) = extensions.get::<CacheMode>() {
            request.extensions_mut().insert(*mode);
        }
        let (origin, mut chain) = ChainOrigin::new();
        let answer = self.cache.handle(request, origin);
        let mut answer = std::pin::pin!(answer);
        let answered = loop {
            tokio::select! {
                biased;
                answered = &mut answer => break answered,
                Some(Sent { request, reply }) = chain.recv() => {
                    // The engine asks one thing of the origin at a time
                    // for a request, and waits for its head: run it now.
                    let response = next.clone().run(request, extensions).await;
                    let _ = reply.send(response);
                }
            }
        };
        let response = answered.map_err(into_middleware_error)?;
        let (mut parts, body) = response.into_parts();
        // The request's URL, unless the response came from the origin with
        // one of its own (after a redirect).
        let mut response_extensions = url_extension(url);
        response_extensions.extend(std::mem::take(&mut parts.extensions));
        parts.extensions = response_extensions;
        let body = reqwest::Body::wrap(SyncBody::new(body));
        Ok(reqwest::Response::from(http::Response::from_parts(
            parts, body,
        )))
    }
}

/// Extensions that give a reqwest response built from an `http` one its
/// URL. (reqwest keeps the type that holds it private; its builder
/// extension is the way in.)
pub(crate) fn url_extension(url: reqwest::Url) -> Extensions {
    http::Response::builder()
        .url(url)
        .body(())
        .map(|response| response.into_parts().0.extensions)
        .unwrap_or_default()
}

/// The engine's error for the caller: the chain's own error when it was
/// one (a connection refused, another middleware's failure), else ours.
fn into_middleware_error(error: BoxError) -> reqwest_middleware::Error {
    match error.downcast::<reqwest_middleware::Error>() {
        Ok(error) => *error,
        Err(error) => match error.downcast::<reqwest::Error>() {
            Ok(error) => reqwest_middleware::Error::Reqwest(*error),
            Err(error) => reqwest_middleware::Error::middleware(CacheFailed(error)),
        },
    }
}

/// A request the cache could neither answer nor pass on.
#[derive(Debug)]
struct CacheFailed(BoxError);

impl fmt::Display for CacheFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "respcache: {}", self.0)
    }
}

impl std::error::Error for CacheFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
