//! Responding: a stored entry made into the response a client gets (its
//! `Age`, its range, the client's own conditions), the last touches on an
//! origin's response, and the `Cache-Status` member on each.

use std::time::SystemTime;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode, request};

use crate::body::{self, CacheBody};
use crate::conditional;
use crate::engine::{Exchange, HttpCache};
use crate::options::Options;
use crate::range::{self, RangeAnswer};
use crate::status::{BodySource, CacheStatus};
use crate::storage::{Storage, Stored};
use crate::store::Storing;
use crate::surrogate;
use crate::vary;

impl<S: Storage> HttpCache<S> {
    /// The last touches on a response from the origin: `Cache-Status`, and
    /// the client's own conditions answered.
    pub(crate) fn finish(
        &self,
        exchange: &mut Exchange,
        response: Response<CacheBody>,
        status: &CacheStatus,
        conditions: conditional::Conditions,
    ) -> Response<CacheBody> {
        let (mut head, body) = response.into_parts();
        self.add_status(&mut head.headers, status, false);
        head.extensions.insert(BodySource::Origin);
        if head.status == StatusCode::OK
            && exchange.parts.method == Method::GET
            && conditions.not_modified(&head.headers)
        {
            // A body being stored is read on for the store to complete,
            // within bounds; any other is dropped unread.
            if let Storing::Yes(commit) = std::mem::take(&mut exchange.storing) {
                body::finish_storing(body, commit, self.inner.options.background_deadline);
            }
            return Response::from_parts(conditional::not_modified_head(&head), body::empty());
        }
        Response::from_parts(head, body)
    }

    /// A response from storage, as of `now`. `must_read` says the body is
    /// being stored as it is read, so a response without one still reads
    /// it to its end.
    pub(crate) fn serve(
        &self,
        parts: &request::Parts,
        stored: Stored,
        status: CacheStatus,
        now: SystemTime,
        must_read: bool,
    ) -> Response<CacheBody> {
        let age = self.freshness(&stored.head, now).age.as_secs();
        let Stored { mut head, body, .. } = stored;
        head.extensions.insert(BodySource::Storage);
        // Stored heads had their hop-by-hop fields removed when stored.
        vary::strip_internal(&mut head.headers);
        head.headers.insert(header::AGE, HeaderValue::from(age));
        self.add_status(&mut head.headers, &status, true);
        let conditions = conditional::Conditions::take_from(&parts.headers);
        let head = if conditions.not_modified(&head.headers) && head.status == StatusCode::OK {
            conditional::not_modified_head(&head)
        } else if parts.method == Method::HEAD {
            head
        } else if must_read {
            return Response::from_parts(head, body);
        } else {
            match range::answer(&parts.headers, &head) {
                RangeAnswer::Whole => return Response::from_parts(head, body),
                RangeAnswer::Part { start, len, total } => {
                    range::partial_head(&mut head, start, len, total);
                    let body = body::boxed(range::Slice::new(body, start, len));
                    return Response::from_parts(head, body);
                }
                RangeAnswer::Unsatisfiable { total } => {
                    range::unsatisfiable_head(&mut head, total);
                    head
                }
            }
        };
        if must_read {
            body::finish_storing(body, None, self.inner.options.background_deadline);
        }
        Response::from_parts(head, body::empty())
    }

    /// Says who the cache is on a request to the origin, when it is a
    /// surrogate.
    pub(crate) fn announce(&self, headers: &mut HeaderMap) {
        if let Some(token) = &self.inner.options.surrogate {
            surrogate::announce(headers, token);
        }
    }

    /// The cache's own `Cache-Status` member, and `x-cache` and
    /// `x-cache-lookup` when [`Options::x_cache_headers`] asks for them
    /// (`served`: the response is served through the storage path); in a surrogate,
    /// the origin's `Surrogate-Control` stops here.
    pub(crate) fn add_status(&self, headers: &mut HeaderMap, status: &CacheStatus, served: bool) {
        if self.inner.options.surrogate.is_some() {
            surrogate::remove(headers);
        }
        headers.append(
            HeaderName::from_static("cache-status"),
            status.to_header(&self.inner.options.cache_name),
        );
        if self.inner.options.x_cache_headers {
            let (x_cache, lookup) = status.x_cache(served);
            headers.insert(
                HeaderName::from_static("x-cache"),
                HeaderValue::from_static(x_cache),
            );
            headers.insert(
                HeaderName::from_static("x-cache-lookup"),
                HeaderValue::from_static(lookup),
            );
        }
    }
}

/// `504 Gateway Timeout`: what a request that may only be answered from
/// the cache gets when nothing stored answers it.
pub(crate) fn gateway_timeout(options: &Options) -> Response<CacheBody> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("cache-status"),
        CacheStatus::default().to_header(&options.cache_name),
    );
    if options.x_cache_headers {
        headers.insert(
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static("MISS"),
        );
        headers.insert(
            HeaderName::from_static("x-cache-lookup"),
            HeaderValue::from_static("MISS"),
        );
    }
    response
}
