//! Revalidation: asking the origin whether a stale entry is still good,
//! in the client's request or in the background, merging a `304` into the
//! stored head, and standing in for errors with the stale entry where
//! `stale-if-error` or a disconnected origin allows.

use std::sync::Arc;

use http::header;
use http::{Method, Request, Response, StatusCode};
use respcache_core::{BoxError, abbreviate_key};

use crate::body::{self, CacheBody, Guarded};
use crate::conditional;
use crate::engine::{Exchange, HttpCache, Inner};
use crate::forward::clone_request_head;
use crate::freshness;
use crate::lock;
use crate::lookup::Lookup;
use crate::options::CacheMode;
use crate::origin::Origin;
use crate::stale;
use crate::status::{CacheStatus, Forward};
use crate::storage::{Storage, Stored};

impl<S: Storage> HttpCache<S> {
    /// Revalidates a stale entry with the origin: a `304` refreshes the
    /// stored head and the stored body is served; anything else replaces
    /// it, unless it is an error that `stale-if-error` lets the cache hide.
    pub(crate) async fn revalidate<O, ReqB>(
        &self,
        mut exchange: Exchange,
        body: ReqB,
        mut origin: O,
        key: String,
        stored: Stored,
    ) -> Result<Response<CacheBody>, BoxError>
    where
        O: Origin<ReqB>,
        ReqB: Default,
    {
        self.inner.metrics.revalidation();
        let options = &self.inner.options;
        let parts = &exchange.parts;
        let now = exchange.now;
        let client_conditions = conditional::Conditions::take_from(&parts.headers);
        let mut forward = clone_request_head(parts);
        conditional::strip(&mut forward.headers);
        conditional::add_validators(&mut forward.headers, &stored.head.headers);
        self.announce(&mut forward.headers);
        let freshness = self.freshness(&stored.head, now);
        let stale_if_error =
            stale::within_stale_if_error(&parts.headers, &stored.head.headers, &freshness, options);
        let mut status = CacheStatus::forward(Forward::Stale);
        let response = match origin.send(Request::from_parts(forward, body)).await {
            Ok(response) => response,
            Err(error)
                if stale_if_error
                    || stale::may_serve_disconnected(&stored.head.headers, options) =>
            {
                tracing::info!(key = %abbreviate_key(&key), %error, "origin unreachable; serving stale");
                self.inner.metrics.stale();
                status.ttl = Some(freshness.ttl_seconds());
                return Ok(self.serve(parts, stored, status, now, false));
            }
            Err(error) => return Err(error),
        };
        status.fwd_status = Some(response.status().as_u16());
        if response.status().is_server_error() && stale_if_error {
            self.inner.metrics.stale();
            status.ttl = Some(freshness.ttl_seconds());
            return Ok(self.serve(parts, stored, status, now, false));
        }
        if response.status() == StatusCode::NOT_MODIFIED {
            let (head, _) = response.into_parts();
            return Ok(self
                .refresh(&mut exchange, key, stored, &head.headers, status)
                .await);
        }
        // RFC 9111 §4.3.5: a 200 (or 410) to a HEAD updates the stored GET
        // response it describes: the same validators, the same length.
        let updates_stored = exchange.parts.method == Method::HEAD
            && matches!(response.status(), StatusCode::OK | StatusCode::GONE)
            && conditional::describes(response.headers(), &stored.head.headers);
        if updates_stored {
            let (head, body) = response.into_parts();
            let refreshed = self
                .refresh(&mut exchange, key, stored, &head.headers, status.clone())
                .await;
            if head.status == StatusCode::OK {
                return Ok(refreshed);
            }
            // The stored fields are updated; the client hears the origin.
            let response = Response::from_parts(head, body);
            return Ok(self.finish(&mut exchange, response, &status, client_conditions));
        }
        drop(stored);
        exchange.mode = CacheMode::Default;
        let response = self.store(&mut exchange, response, &mut status).await;
        Ok(self.finish(&mut exchange, response, &status, client_conditions))
    }

    /// A `304` answered the validators of `stored`: its fields go into the
    /// stored head, which is stored again and served with the stored body.
    async fn refresh(
        &self,
        exchange: &mut Exchange,
        key: String,
        stored: Stored,
        update: &http::HeaderMap,
        mut status: CacheStatus,
    ) -> Response<CacheBody> {
        self.inner.metrics.not_modified();
        let received = self.now();
        let options = &self.inner.options;
        // In a shared cache one client's new cookie is that client's: it
        // goes in the answer to it, never into the stored entry.
        let keep_cookie_out =
            options.shared && options.private_set_cookie && update.contains_key(header::SET_COOKIE);
        let for_storage = if keep_cookie_out {
            let mut without = update.clone();
            without.remove(header::SET_COOKIE);
            conditional::merge_304(&stored.head, &without, received)
        } else {
            conditional::merge_304(&stored.head, update, received)
        };
        let mut merged = for_storage;
        freshness::mark_received(&mut merged.headers, received);
        let parts = &exchange.parts;
        let policy = self.policy(parts, &merged, received);
        let hints = self.hints(&merged, exchange.mode, received);
        let head = respcache_core::clone_head(&merged);
        let updated = self
            .inner
            .storage
            .update_head(&key, head, policy.clone(), hints.clone())
            .await;
        let (body, must_read) = match updated {
            Ok(true) => {
                // The new head is stored: followers may read it now, not
                // once this client has read the body.
                drop(exchange.flight.take());
                (stored.body, false)
            }
            Ok(false) => {
                let body = self
                    .store_again(&key, &merged, policy.clone(), hints, stored.body, parts)
                    .await;
                (body, true)
            }
            Err(error) => {
                self.inner.metrics.error();
                tracing::warn!(key = %abbreviate_key(&key), %error, "refreshing a stored head failed");
                (stored.body, false)
            }
        };
        let body = match exchange.flight.take() {
            Some(flight) => Guarded::wrap(body, flight),
            None => body,
        };
        let now = self.now();
        status.ttl = Some(self.freshness(&merged, now).ttl_seconds());
        if keep_cookie_out {
            merged.headers.remove(header::SET_COOKIE);
            for cookie in update.get_all(header::SET_COOKIE) {
                merged.headers.append(header::SET_COOKIE, cookie.clone());
            }
        }
        let refreshed = Stored { head: merged, body };
        self.serve(&exchange.parts, refreshed, status, now, must_read)
    }

    /// Revalidates the entry under `key` in a task of its own while the
    /// stale response is served, once per key at a time.
    pub(crate) fn revalidate_in_background<O, ReqB>(
        &self,
        parts: &http::request::Parts,
        key: &str,
        origin: O,
    ) where
        O: Origin<ReqB>,
        ReqB: Default + Send + 'static,
    {
        if !lock(&self.inner.revalidating).insert(key.to_owned()) {
            return;
        }
        let cache = self.clone();
        let key = key.to_owned();
        let mut request = Request::get(parts.uri.clone()).body(ReqB::default());
        if let Ok(request) = &mut request {
            *request.headers_mut() = parts.headers.clone();
            // What the caller attached (a proxy's route, which picks the
            // key and the upstream) goes with it, as on a foreground miss.
            *request.extensions_mut() = parts.extensions.clone();
            // The whole response, to store: not the client's part of it.
            let headers = request.headers_mut();
            conditional::strip(headers);
            for name in [
                header::CACHE_CONTROL,
                header::PRAGMA,
                header::RANGE,
                header::IF_RANGE,
            ] {
                headers.remove(name);
            }
        }
        tokio::spawn(async move {
            // Removed however the task ends, a panic included, so that the
            // key can be revalidated again.
            let done = Revalidating {
                inner: cache.inner.clone(),
                key,
            };
            if let Ok(request) = request {
                let deadline = cache.inner.options.background_deadline;
                let revalidated =
                    tokio::time::timeout(deadline, cache.revalidate_detached(request, origin));
                match revalidated.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::info!(key = %abbreviate_key(&done.key), %error, "background revalidation failed");
                    }
                    Err(_) => {
                        tracing::info!(key = %abbreviate_key(&done.key), ?deadline, "background revalidation ran past its deadline; abandoned");
                    }
                }
            }
        });
    }

    /// The background revalidation itself: the request in mode `NoCache`,
    /// its response read to its end so that the store completes.
    async fn revalidate_detached<O, ReqB>(
        &self,
        request: Request<ReqB>,
        origin: O,
    ) -> Result<(), BoxError>
    where
        O: Origin<ReqB>,
        ReqB: Default + Send + 'static,
    {
        let (mut parts, body) = request.into_parts();
        // The stale entry may have been refreshed between the lookup that
        // served it and this task: by the revalidation before this one,
        // say. Then there is nothing to do.
        let key = (self.inner.options.key)(&parts);
        if let Lookup::Found { stored, .. } = self.lookup(&key, &parts).await
            && self.freshness(&stored.head, self.now()).is_fresh()
        {
            return Ok(());
        }
        parts.extensions.insert(CacheMode::NoCache);
        let request = Request::from_parts(parts, body);
        let response = Box::pin(self.handle(request, origin)).await?;
        body::drain(response.into_body()).await;
        Ok(())
    }
}

/// A key's place in [`Inner::revalidating`], given up when dropped.
struct Revalidating<S> {
    inner: Arc<Inner<S>>,
    key: String,
}

impl<S> Drop for Revalidating<S> {
    fn drop(&mut self) {
        lock(&self.inner.revalidating).remove(&self.key);
    }
}
