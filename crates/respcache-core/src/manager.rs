//! The two traits a storage backend implements.

use std::sync::Arc;

use bytes::Bytes;
use url::Url;

use crate::{BoxError, CachePolicy, HttpResponse, Result, StreamingError};

/// A store of whole responses and their cache policies, by key.
///
/// The trait is object safe: a program can choose its backend at run time
/// and hold it as `Arc<dyn CacheManager>`, which is itself a `CacheManager`.
///
/// What an implementation must do (missing keys, opaque keys, isolation,
/// all-or-nothing writes, integrity, concurrency, restarts) is stated in
/// the guide and checked by the `respcache-conformance` crate.
#[async_trait::async_trait]
pub trait CacheManager: Send + Sync + 'static {
    /// Returns the response and policy stored under `cache_key`, or
    /// `Ok(None)` when there is none (or what is stored there is damaged).
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>>;

    /// Stores `response` and `policy` under `cache_key`, replacing whatever
    /// was there whole, and returns the stored response.
    async fn put(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse>;

    /// Removes what is stored under `cache_key`; `Ok(())` also when nothing is.
    async fn delete(&self, cache_key: &str) -> Result<()>;

    /// Replaces the head (status, version, headers) and policy stored under
    /// `cache_key` and keeps its body: what a cache does on `304 Not
    /// Modified`. Returns `Ok(false)` when nothing is stored there, or when
    /// the backend cannot update a head alone (the default); the caller
    /// then stores the whole response again.
    async fn update_head(
        &self,
        cache_key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
    ) -> Result<bool> {
        let _ = (cache_key, head, policy);
        Ok(false)
    }
}

/// A [`CacheManager`] that can also take and hand out bodies as streams,
/// so that a large body never has to sit in memory whole.
#[async_trait::async_trait]
pub trait StreamingCacheManager: CacheManager {
    /// The body type of the responses this manager hands out.
    type Body: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;

    /// Returns the response stored under `cache_key` with a streaming body,
    /// or `Ok(None)` when there is none.
    async fn get_stream(
        &self,
        cache_key: &str,
    ) -> Result<Option<(http::Response<Self::Body>, CachePolicy)>>;

    /// Stores a response whose body arrives as a stream, and returns the
    /// response for the caller to read. The entry is committed only once
    /// the body has completed; a body that fails commits nothing.
    async fn put_stream<B>(
        &self,
        cache_key: String,
        response: http::Response<B>,
        policy: CachePolicy,
        request_url: Url,
    ) -> Result<http::Response<Self::Body>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<StreamingError>;

    /// Turns a buffered response into this manager's streaming response type.
    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<Self::Body>>;
}

macro_rules! forward_cache_manager {
    ($($pointer:ident),*) => {$(
        #[async_trait::async_trait]
        impl<M: CacheManager + ?Sized> CacheManager for $pointer<M> {
            async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
                (**self).get(cache_key).await
            }

            async fn put(
                &self,
                cache_key: String,
                response: HttpResponse,
                policy: CachePolicy,
            ) -> Result<HttpResponse> {
                (**self).put(cache_key, response, policy).await
            }

            async fn delete(&self, cache_key: &str) -> Result<()> {
                (**self).delete(cache_key).await
            }

            async fn update_head(
                &self,
                cache_key: &str,
                head: http::response::Parts,
                policy: CachePolicy,
            ) -> Result<bool> {
                (**self).update_head(cache_key, head, policy).await
            }
        }
    )*};
}

forward_cache_manager!(Arc, Box);
