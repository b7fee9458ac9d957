//! Storing: a response from the origin on its way to the client, with
//! its `Vary` index; a refreshed head over a stored body; the policy and
//! the lifetime the backend is handed with each.

use std::time::SystemTime;

use http::{Method, Request, Response, request, response};
use http_body::Body as _;
use respcache_core::http_cache_semantics::CacheOptions;
use respcache_core::{CachePolicy, CommitWatch, StoreHints, abbreviate_key};
use url::Url;

use crate::body::{self, CacheBody};
use crate::directives::{remove_hop_by_hop, vary_fields};
use crate::engine::{Exchange, HttpCache, Spooled};
use crate::freshness;
use crate::options::{CacheMode, absolute_url};
use crate::rules;
use crate::stale;
use crate::status::CacheStatus;
use crate::storage::{PutFailed, Putting, Storage};
use crate::vary::{self, VaryIndex};

/// Bodies of at most this many bytes, by their declared length, are
/// stored whole before their head goes out, so that `Cache-Status` can say
/// `stored` truthfully and requests waiting for the same key find the
/// entry committed.
pub(crate) const STORED_BEFORE_HEAD: u64 = 64 * 1024;

/// Whether the body of an exchange's response is being stored.
#[derive(Debug, Default)]
pub(crate) enum Storing {
    /// It is not.
    #[default]
    No,
    /// It is, and will be committed once it has been read; the watch (where
    /// the backend gives one) says whether that happened.
    Yes(Option<CommitWatch>),
}

impl<S: Storage> HttpCache<S> {
    /// Stores `response` where the rules (or the mode) allow, returning the
    /// response for the caller with a body that is stored as it is read.
    /// Followers of the exchange's flight read it too. A key whose response
    /// may not be stored is remembered for hit-for-pass.
    pub(crate) async fn store(
        &self,
        exchange: &mut Exchange,
        response: Response<CacheBody>,
        status: &mut CacheStatus,
    ) -> Response<CacheBody> {
        let (mut head, body) = response.into_parts();
        vary::strip_internal(&mut head.headers);
        if head.status == http::StatusCode::PARTIAL_CONTENT {
            return self.store_part(exchange, head, body, status).await;
        }
        let options = &self.inner.options;
        let parts = &exchange.parts;
        let fields = vary_fields(&head.headers);
        let url = Url::parse(&absolute_url(parts));
        let (Some(fields), Ok(url), true) = (
            fields,
            url,
            rules::may_store(parts, &head, exchange.mode, options),
        ) else {
            if parts.method == Method::GET {
                self.pass_from_now_on(&exchange.key);
            }
            return Response::from_parts(head, body);
        };
        let now = exchange.now;
        let policy = self.policy(parts, &head, now);
        let mut stored_head = respcache_core::clone_head(&head);
        remove_hop_by_hop(&mut stored_head.headers);
        rules::strip_qualified(&mut stored_head.headers, options);
        freshness::mark_received(&mut stored_head.headers, now);
        let hints = self.hints(&stored_head, exchange.mode, now);
        self.inner.passes.forget(&exchange.key);
        let mut vary = None;
        let store_key = if fields.is_empty() {
            exchange.key.clone()
        } else {
            let index = VaryIndex::for_fields(fields, exchange.index.take());
            if index.is_new
                && !self
                    .store_index(exchange, &index, &policy, &hints, &url)
                    .await
            {
                return Response::from_parts(head, body);
            }
            let variant = index.variant_key(&exchange.key, &parts.headers);
            vary = Some((index, variant.clone()));
            variant
        };
        // Followers are told the head and policy as stored.
        let spooled = exchange.flight.as_ref().map(|_| Spooled {
            head: respcache_core::clone_head(&stored_head),
            status: CacheStatus::default(),
            vary,
        });
        let small = body.is_end_stream()
            || body
                .size_hint()
                .exact()
                .is_some_and(|len| len <= STORED_BEFORE_HEAD);
        let put = self
            .inner
            .storage
            .put(store_key.clone(), stored_head, body, policy, url, hints)
            .await;
        let body = match put {
            Ok(Putting { body, commit }) if small => {
                // Stored whole now; the flight ends when the exchange
                // does, and its followers find the entry.
                let (body, committed) = store_whole(body, commit).await;
                match committed {
                    Some(true) => self.inner.metrics.store(),
                    Some(false) => self.inner.metrics.error(),
                    // The body failed: nothing to store, no cache failure.
                    None => {}
                }
                status.stored = committed == Some(true);
                body
            }
            Ok(Putting { body, commit }) => {
                // Committed, or not, once the body has been read: until
                // then nobody can say it is stored.
                self.count_commit(commit.clone());
                exchange.storing = Storing::Yes(commit);
                match (exchange.flight.take(), spooled) {
                    (Some(flight), Some(mut spooled)) => {
                        spooled.status = status.clone();
                        let (limit, stall) = (options.coalesce_buffer, options.coalesce_stall);
                        flight.spool(spooled, body, limit, stall)
                    }
                    _ => body,
                }
            }
            // Where nothing is being stored, the flight ends here and
            // the followers go to the origin themselves.
            Err(PutFailed {
                error,
                body: Some(body),
            }) => {
                self.inner.metrics.error();
                tracing::warn!(key = %abbreviate_key(&store_key), %error, "storing a response failed; passing it through");
                body
            }
            Err(PutFailed { error, body: None }) => {
                self.inner.metrics.error();
                tracing::error!(key = %abbreviate_key(&store_key), %error, "the backend failed after taking the body");
                body::failed(format!("the cache backend lost the response body: {error}"))
            }
        };
        Response::from_parts(head, body)
    }

    /// Counts a store that commits later, once it has: a store that fails
    /// at the end (a full disk) is an error, not a store.
    fn count_commit(&self, commit: Option<CommitWatch>) {
        let Some(commit) = commit else {
            self.inner.metrics.store();
            return;
        };
        let cache = self.clone();
        tokio::spawn(async move {
            if commit.committed().await {
                cache.inner.metrics.store();
            }
        });
    }

    /// Remembers `key` for hit-for-pass: its response could not be stored.
    fn pass_from_now_on(&self, key: &str) {
        let options = &self.inner.options;
        if options.hit_for_pass.is_zero() {
            return;
        }
        if let Some(until) = self.now().checked_add(options.hit_for_pass) {
            self.inner
                .passes
                .remember(key, until, options.hit_for_pass_keys);
        }
    }

    /// Writes a new `Vary` index under the primary key; whether it is
    /// stored.
    async fn store_index(
        &self,
        exchange: &Exchange,
        index: &VaryIndex,
        policy: &CachePolicy,
        hints: &StoreHints,
        url: &Url,
    ) -> bool {
        let key = &exchange.key;
        let put = self
            .inner
            .storage
            .put(
                key.clone(),
                index.marker_head(),
                body::empty(),
                policy.clone(),
                url.clone(),
                hints.clone(),
            )
            .await;
        let written = match put {
            Ok(Putting { body, commit }) => store_whole(body, commit).await.1 == Some(true),
            Err(failed) => {
                tracing::warn!(key = %abbreviate_key(key), error = %failed.error, "storing a Vary index failed");
                false
            }
        };
        if !written {
            self.inner.metrics.error();
        }
        written
    }

    /// Writes a refreshed head over a stored entry by passing its body
    /// through the backend once more (for backends that cannot update a
    /// head alone); returns the body for the caller.
    pub(crate) async fn store_again(
        &self,
        key: &str,
        head: &response::Parts,
        policy: CachePolicy,
        hints: StoreHints,
        body: CacheBody,
        parts: &request::Parts,
    ) -> CacheBody {
        let Ok(url) = Url::parse(&absolute_url(parts)) else {
            return body;
        };
        let head = respcache_core::clone_head(head);
        match self
            .inner
            .storage
            .put(key.to_owned(), head, body, policy, url, hints)
            .await
        {
            Ok(putting) => {
                self.count_commit(putting.commit);
                putting.body
            }
            Err(PutFailed { error, body }) => {
                self.inner.metrics.error();
                tracing::warn!(key = %abbreviate_key(key), %error, "refreshing a stored head failed");
                body.unwrap_or_else(|| {
                    body::failed(format!("the cache backend lost the stored body: {error}"))
                })
            }
        }
    }

    /// The policy stored with a response to this request.
    pub(crate) fn policy(
        &self,
        parts: &request::Parts,
        head: &response::Parts,
        now: SystemTime,
    ) -> CachePolicy {
        let options = &self.inner.options;
        let mut request = as_get(parts);
        redact_credentials(request.headers_mut());
        CachePolicy::new_options(
            &request,
            head,
            now,
            CacheOptions {
                shared: options.shared,
                cache_heuristic: options.heuristic_fraction,
                ..CacheOptions::default()
            },
        )
    }

    /// What the backend is told with a head stored at `now`: how long the
    /// entry is worth keeping, and its tags.
    pub(crate) fn hints(
        &self,
        head: &response::Parts,
        mode: CacheMode,
        now: SystemTime,
    ) -> StoreHints {
        let freshness = self.freshness(head, now);
        StoreHints::keep_for(stale::keep_for(
            &head.headers,
            &freshness,
            mode,
            &self.inner.options,
        ))
        .with_tags(crate::purge::tags(
            &head.headers,
            &self.inner.options.tag_fields,
        ))
    }
}

/// The request as the `GET` it is looked up as (a `HEAD` uses a stored
/// `GET`).
/// Keeps a user's secrets out of the stored policy, which records the
/// request's fields: it keeps that a request carried credentials (a
/// shared cache may store such a response only when the origin allows it),
/// never their value. Storage is not the place for a session or a token.
fn redact_credentials(headers: &mut http::HeaderMap) {
    for name in [
        http::header::AUTHORIZATION,
        http::header::PROXY_AUTHORIZATION,
        http::header::COOKIE,
    ] {
        if headers.contains_key(&name) {
            headers.insert(name, http::HeaderValue::from_static("(not stored)"));
        }
    }
}

fn as_get(parts: &request::Parts) -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = if parts.method == http::Method::HEAD {
        http::Method::GET
    } else {
        parts.method.clone()
    };
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    request
}

/// Reads a small body being stored to its end, so that its store commits
/// now; returns the body for the caller and, when the body was whole,
/// whether the entry was committed (a backend that does not tell is taken
/// at its word).
pub(crate) async fn store_whole(
    body: CacheBody,
    commit: Option<CommitWatch>,
) -> (CacheBody, Option<bool>) {
    let (body, complete) = body::read_whole(body).await;
    if !complete {
        return (body, None);
    }
    let committed = match commit {
        Some(commit) => commit.committed().await,
        None => true,
    };
    (body, Some(committed))
}
