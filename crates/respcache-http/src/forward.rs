//! Requests the origin answers: those the cache does not handle (other
//! methods, bypasses), with the invalidation an unsafe method causes, and
//! misses, whose responses are stored on their way to the client.

use http::header::{self};
use http::{HeaderMap, Method, Request, Response, request};
use respcache_core::{BoxError, abbreviate_key};
use url::Url;

use crate::body::CacheBody;
use crate::conditional;
use crate::engine::{Exchange, HttpCache};
use crate::options::{CacheMode, absolute_url, has_valid_host, has_valid_target};
use crate::origin::Origin;
use crate::rules;
use crate::status::{BodySource, CacheStatus, Forward};
use crate::storage::Storage;
use crate::store::Storing;

impl<S: Storage> HttpCache<S> {
    /// Forwards a request the cache does not answer, and invalidates what a
    /// successful unsafe method changed.
    pub(crate) async fn pass<O, ReqB>(
        &self,
        parts: request::Parts,
        body: ReqB,
        mut origin: O,
        why: Forward,
        mode: CacheMode,
    ) -> Result<Response<CacheBody>, BoxError>
    where
        O: Origin<ReqB>,
    {
        let method = parts.method.clone();
        let request_url = absolute_url(&parts);
        // The request as the GET whose entries it may invalidate, or whose
        // entry its response may become (a POST's, below).
        let as_get = (!method.is_safe() && has_valid_host(&parts)).then(|| {
            let mut head = clone_request_head(&parts);
            head.method = Method::GET;
            head
        });
        let may_store =
            method == Method::POST && has_valid_target(&parts) && mode != CacheMode::NoStore;
        let mut parts = parts;
        self.announce(&mut parts.headers);
        let response = origin.send(Request::from_parts(parts, body)).await?;
        self.inner.metrics.miss();
        let changed = response.status().is_success() || response.status().is_redirection();
        if let Some(get) = &as_get
            && changed
        {
            self.invalidate(get, &request_url, response.headers()).await;
        }
        let mut status = CacheStatus::forward(why);
        status.fwd_status = Some(response.status().as_u16());
        let mut response = match as_get {
            Some(get)
                if may_store
                    && rules::reusable_for_get(&request_url, &response, &self.inner.options) =>
            {
                let mut exchange = Exchange {
                    key: (self.inner.options.key)(&get),
                    parts: get,
                    mode: CacheMode::Default,
                    now: self.now(),
                    index: None,
                    flight: None,
                    storing: Storing::No,
                };
                self.store(&mut exchange, response, &mut status).await
            }
            _ => response,
        };
        self.add_status(response.headers_mut(), &status, false);
        response.extensions_mut().insert(BodySource::Origin);
        Ok(response)
    }

    /// Removes the stored `GET` entries for the request's URL, as sent and
    /// in normal form, and for the same-origin URLs in `Location` and
    /// `Content-Location`.
    async fn invalidate(&self, get: &request::Parts, request_url: &str, headers: &HeaderMap) {
        let options = &self.inner.options;
        let mut keys = vec![(options.key)(get)];
        if let Ok(base) = Url::parse(request_url) {
            let mut urls = vec![base.clone()];
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
                    continue;
                };
                if let Ok(url) = base.join(value)
                    && url.origin() == base.origin()
                {
                    urls.push(url);
                }
            }
            for url in urls {
                let mut builder = Request::get(url.as_str());
                // What the key may be made of besides the URL.
                for name in [header::HOST, header::AUTHORIZATION] {
                    for value in get.headers.get_all(&name) {
                        builder = builder.header(&name, value.clone());
                    }
                }
                if let Ok(request) = builder.body(()) {
                    keys.push((options.key)(&request.into_parts().0));
                }
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            if let Err(error) = self.inner.storage.delete(&key).await {
                tracing::warn!(key = %abbreviate_key(&key), %error, "invalidating a stored entry failed");
            }
            self.forget_parts(&key).await;
        }
    }

    /// Goes to the origin for a request the cache could not answer, and
    /// stores the response where the rules allow.
    pub(crate) async fn fetch<O, ReqB>(
        &self,
        mut exchange: Exchange,
        body: ReqB,
        mut origin: O,
        why: Forward,
    ) -> Result<Response<CacheBody>, BoxError>
    where
        O: Origin<ReqB>,
    {
        let parts = &exchange.parts;
        let client_conditions = conditional::Conditions::take_from(&parts.headers);
        let mut forward = clone_request_head(parts);
        if parts.method == Method::GET {
            // Ask for the whole response so that it can be stored; the
            // client's own conditions are answered here afterwards.
            conditional::strip(&mut forward.headers);
        }
        self.announce(&mut forward.headers);
        let response = origin.send(Request::from_parts(forward, body)).await?;
        self.inner.metrics.miss();
        let mut status = CacheStatus::forward(why);
        status.fwd_status = Some(response.status().as_u16());
        let response = self.store(&mut exchange, response, &mut status).await;
        Ok(self.finish(&mut exchange, response, &status, client_conditions))
    }
}

/// A copy of a request head to send on. The extensions go too: what the
/// caller attached to the request (a route, a tenant) reaches its
/// [`Origin`](crate::Origin) on every request made for it, revalidations
/// included.
pub(crate) fn clone_request_head(parts: &request::Parts) -> request::Parts {
    let mut request = Request::new(());
    *request.extensions_mut() = parts.extensions.clone();
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}
