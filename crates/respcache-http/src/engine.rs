//! The RFC 9111 engine: lookup, freshness, revalidation, storing,
//! invalidation, stale serving and request coalescing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, request, response};
use http_body::Body as _;
use respcache_core::BoxError;
use respcache_core::http_cache_semantics::CacheOptions;
use respcache_core::{CachePolicy, abbreviate_key};
use url::Url;

use crate::body::{self, CacheBody, Guarded};
use crate::coalesce::{Flight, Flights, Follower, Role, lock};
use crate::conditional;
use crate::directives::{Directives, remove_hop_by_hop};
use crate::freshness::{self, Freshness};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::options::{CacheMode, Options, absolute_url, has_valid_host, has_valid_target};
use crate::origin::Origin;
use crate::range::{self, RangeAnswer};
use crate::status::{BodySource, CacheStatus, Forward};
use crate::storage::{PutFailed, Storage, Stored};
use crate::surrogate::{self, SurrogateControl};
use crate::vary::{self, VaryIndex};

/// An HTTP cache: the RFC 9111 rules over a [`Storage`].
///
/// Cloning is cheap and clones share everything (storage, in-flight
/// requests, metrics).
#[derive(Debug)]
pub struct HttpCache<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for HttpCache<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct Shared<S> {
    storage: S,
    options: Options,
    /// Keys with a request on its way to the origin, and how to follow it.
    flights: Flights<Spooled>,
    /// Keys with a background revalidation under way.
    revalidating: Mutex<HashSet<String>>,
    metrics: Metrics,
}

/// What a lookup found.
enum Lookup {
    Miss {
        why: Forward,
        index: Option<VaryIndex>,
    },
    Found {
        key: String,
        stored: Box<Stored>,
        index: Option<VaryIndex>,
    },
}

/// How following another request ended.
enum Followed {
    /// Answered from the leader's response.
    Served(Response<CacheBody>),
    /// The leader is done; its response did not answer this request.
    LookAgain,
    /// The leader took longer than `coalesce_timeout`.
    GaveUp(Follower<Spooled>),
}

/// What a coalesced request learns of the leader's response, besides its
/// body, to tell whether that response answers it too.
#[derive(Debug)]
struct Spooled {
    /// The head as it is stored.
    head: response::Parts,
    policy: CachePolicy,
    /// What the leader's request did.
    status: CacheStatus,
    /// The `Vary` index and the variant key the response is stored under.
    vary: Option<(VaryIndex, String)>,
}

impl<S: Storage> HttpCache<S> {
    /// A cache over `storage` with `options`.
    pub fn new(storage: S, options: Options) -> Self {
        Self {
            shared: Arc::new(Shared {
                storage,
                options,
                flights: Flights::default(),
                revalidating: Mutex::new(HashSet::new()),
                metrics: Metrics::default(),
            }),
        }
    }

    /// The options this cache was made with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// The storage this cache uses.
    pub fn storage(&self) -> &S {
        &self.shared.storage
    }

    /// Counters of what the cache has done so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// Answers `request`, from the cache where the rules allow and from
    /// `origin` where they do not. Every response carries a `Cache-Status`
    /// member. A cache failure never fails the request: it is logged and
    /// the origin answers. The error is the origin's, when it could not be
    /// reached and nothing stored may stand in for it.
    pub async fn handle<O, ReqB>(
        &self,
        request: Request<ReqB>,
        origin: O,
    ) -> Result<Response<CacheBody>, BoxError>
    where
        O: Origin<ReqB>,
        ReqB: Default + Send + 'static,
    {
        let (parts, body) = request.into_parts();
        let mode = parts
            .extensions
            .get::<CacheMode>()
            .copied()
            .unwrap_or(self.shared.options.mode);
        let readable = parts.method == Method::GET || parts.method == Method::HEAD;
        if readable
            && !has_valid_target(&parts)
            && (mode == CacheMode::OnlyIfCached || only_if_cached(&parts))
        {
            // Nothing may be stored for such a target, and the origin may
            // not be asked (RFC 9111 §5.2.1.7).
            return Ok(gateway_timeout(&self.shared.options));
        }
        if mode == CacheMode::NoStore || !readable || !has_valid_target(&parts) {
            let why = if readable {
                Forward::Bypass
            } else {
                Forward::Method
            };
            return self.pass(parts, body, origin, why, mode).await;
        }
        let key = (self.shared.options.key)(&parts);
        let mut body = Some(body);
        let mut collapsed = false;
        let mut rechecked = false;
        // The flight this request waited for too long, to replace.
        let mut gave_up: Option<Follower<Spooled>> = None;
        loop {
            let now = SystemTime::now();
            let lookup = self.lookup(&key, &parts).await;
            let (mut why, prior, mut index) = match lookup {
                Lookup::Miss { why, index } => (why, None, index),
                Lookup::Found {
                    key: found_key,
                    stored,
                    index,
                } => {
                    let stored = *stored;
                    match self.choose(&parts, mode, &stored, now) {
                        Choice::Serve => {
                            self.shared.metrics.hit();
                            let ttl = self.freshness(&stored.head, now).ttl_seconds();
                            let mut status = CacheStatus::hit(ttl);
                            status.collapsed = collapsed;
                            return Ok(self.serve(&parts, stored, status, now, false));
                        }
                        Choice::ServeStale => {
                            self.shared.metrics.stale();
                            let ttl = self.freshness(&stored.head, now).ttl_seconds();
                            self.revalidate_in_background(&parts, &found_key, origin.clone());
                            return Ok(self.serve(
                                &parts,
                                stored,
                                CacheStatus::hit(ttl),
                                now,
                                false,
                            ));
                        }
                        Choice::Unsatisfiable => return Ok(gateway_timeout(&self.shared.options)),
                        Choice::Forward(why) => (why, Some((found_key, stored)), index),
                        Choice::Revalidate => (Forward::Stale, Some((found_key, stored)), index),
                    }
                }
            };
            if mode == CacheMode::OnlyIfCached || only_if_cached(&parts) {
                return Ok(gateway_timeout(&self.shared.options));
            }
            let flight = if collapsed || !self.may_collapse(&parts, mode) {
                None
            } else {
                let role = match gave_up.take() {
                    Some(stale) => self.shared.flights.replace(&key, &stale),
                    None => self.shared.flights.join_or_lead(&key),
                };
                match role {
                    // A leader that just finished may have stored the entry
                    // between this request's lookup and its joining: look
                    // once more before going to the origin.
                    Role::Leader(flight) if prior.is_none() && !rechecked => {
                        rechecked = true;
                        match self.lookup(&key, &parts).await {
                            Lookup::Found { .. } => {
                                drop(flight);
                                continue;
                            }
                            Lookup::Miss {
                                why: now_why,
                                index: now_index,
                            } => {
                                (why, index) = (now_why, now_index);
                                Some(flight)
                            }
                        }
                    }
                    Role::Leader(flight) => Some(flight),
                    Role::Follower(follower) => {
                        self.shared.metrics.coalesced();
                        drop(prior);
                        match self.follow(&parts, &key, mode, follower).await {
                            Followed::Served(response) => return Ok(response),
                            // The leader's response was not one to share:
                            // from here this request goes on its own.
                            Followed::LookAgain => collapsed = true,
                            Followed::GaveUp(stale) => gave_up = Some(stale),
                        }
                        continue;
                    }
                }
            };
            let body = body.take().unwrap_or_default();
            let response = match prior {
                Some((found_key, stored)) if why == Forward::Stale => {
                    self.revalidate(parts, body, origin, found_key, stored, index, flight, now)
                        .await?
                }
                _ => {
                    self.fetch(parts, body, origin, key, why, index, flight, mode, now)
                        .await?
                }
            };
            return Ok(response);
        }
    }

    /// Forwards a request the cache does not answer, and invalidates what a
    /// successful unsafe method changed.
    async fn pass<O, ReqB>(
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
        self.shared.metrics.miss();
        let changed = response.status().is_success() || response.status().is_redirection();
        if let Some(get) = &as_get
            && changed
        {
            self.invalidate(get, &request_url, response.headers()).await;
        }
        let mut status = CacheStatus::forward(why);
        status.fwd_status = Some(response.status().as_u16());
        let mut response = match as_get {
            Some(get) if may_store && reusable_for_get(&request_url, &response) => {
                let key = (self.shared.options.key)(&get);
                let mode = CacheMode::Default;
                let now = SystemTime::now();
                self.store(&get, key, response, None, None, mode, &mut status, now)
                    .await
            }
            _ => response,
        };
        self.add_status(response.headers_mut(), &status);
        response.extensions_mut().insert(BodySource::Origin);
        Ok(response)
    }

    /// Removes the stored `GET` entries for the request's URL, as sent and
    /// in normal form, and for the same-origin URLs in `Location` and
    /// `Content-Location`.
    async fn invalidate(&self, get: &request::Parts, request_url: &str, headers: &HeaderMap) {
        let options = &self.shared.options;
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
                if let Some(host) = get.headers.get(header::HOST) {
                    builder = builder.header(header::HOST, host.clone());
                }
                if let Ok(request) = builder.body(()) {
                    keys.push((options.key)(&request.into_parts().0));
                }
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            if let Err(error) = self.shared.storage.delete(&key).await {
                tracing::warn!(key = %abbreviate_key(&key), %error, "invalidating a stored entry failed");
            }
        }
    }

    /// Finds the stored entry for `key`, following a `Vary` index to the
    /// variant that matches `parts`.
    async fn lookup(&self, key: &str, parts: &request::Parts) -> Lookup {
        let stored = match self.shared.storage.get(key).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::debug!(key = %abbreviate_key(key), "nothing stored");
                return Lookup::Miss {
                    why: Forward::UriMiss,
                    index: None,
                };
            }
            Err(error) => {
                self.shared.metrics.error();
                tracing::warn!(key = %abbreviate_key(key), %error, "cache lookup failed; asking the origin");
                return Lookup::Miss {
                    why: Forward::UriMiss,
                    index: None,
                };
            }
        };
        let Some(index) = VaryIndex::read(&stored.head) else {
            return Lookup::Found {
                key: key.to_owned(),
                stored: Box::new(stored),
                index: None,
            };
        };
        let variant_key = index.variant_key(key, &parts.headers);
        match self.shared.storage.get(&variant_key).await {
            Ok(Some(stored)) if VaryIndex::read(&stored.head).is_none() => Lookup::Found {
                key: variant_key,
                stored: Box::new(stored),
                index: Some(index),
            },
            Ok(_) => Lookup::Miss {
                why: Forward::VaryMiss,
                index: Some(index),
            },
            Err(error) => {
                self.shared.metrics.error();
                tracing::warn!(key = %abbreviate_key(&variant_key), %error, "cache lookup failed; asking the origin");
                Lookup::Miss {
                    why: Forward::VaryMiss,
                    index: Some(index),
                }
            }
        }
    }

    fn freshness(&self, head: &response::Parts, now: SystemTime) -> Freshness {
        Freshness::of(head, &self.shared.options, now)
    }

    /// Decides what to do with a stored entry for this request (RFC 9111
    /// §4.2 and §5.2.1, and the mode).
    fn choose(
        &self,
        parts: &request::Parts,
        mode: CacheMode,
        stored: &Stored,
        now: SystemTime,
    ) -> Choice {
        let options = &self.shared.options;
        let freshness = self.freshness(&stored.head, now);
        let within_cap = options.max_ttl.is_none_or(|cap| freshness.age < cap);
        match mode {
            CacheMode::Reload => return Choice::Forward(Forward::Request),
            CacheMode::NoCache => return Choice::Revalidate,
            CacheMode::ForceCache | CacheMode::OnlyIfCached | CacheMode::IgnoreRules => {
                return if within_cap {
                    Choice::Serve
                } else {
                    Choice::Revalidate
                };
            }
            CacheMode::Default | CacheMode::NoStore => {}
        }
        let request_cc = Directives::of(&parts.headers);
        if request_cc.has("no-cache") || pragma_no_cache(&parts.headers) {
            return Choice::Revalidate;
        }
        let max_age = request_cc.single("max-age");
        let min_fresh = request_cc.single("min-fresh").flatten();
        let acceptable_age =
            max_age.is_none_or(|max| max.is_some_and(|max| freshness.age.as_secs() <= max));
        if freshness.is_fresh()
            && within_cap
            && acceptable_age
            && min_fresh.is_none_or(|min| freshness.ttl_seconds() >= min as i64)
        {
            return Choice::Serve;
        }
        let may_be_stale = within_cap && may_serve_stale(&stored.head.headers, options.shared);
        if may_be_stale && !freshness.is_fresh() && acceptable_age {
            match request_cc.single("max-stale") {
                Some(Some(max)) if freshness.staleness().as_secs() <= max => return Choice::Serve,
                _ if request_cc.has("max-stale")
                    && request_cc.single("max-stale") == Some(None) =>
                {
                    return Choice::Serve;
                }
                _ => {}
            }
        }
        if only_if_cached(parts) {
            return Choice::Unsatisfiable;
        }
        let asked_for_origin = max_age.is_some() || min_fresh.is_some();
        if may_be_stale
            && !asked_for_origin
            && let Some(Some(window)) =
                Directives::of(&stored.head.headers).single("stale-while-revalidate")
            && freshness.staleness() <= Duration::from_secs(window)
        {
            return Choice::ServeStale;
        }
        Choice::Revalidate
    }

    fn may_collapse(&self, parts: &request::Parts, mode: CacheMode) -> bool {
        matches!(
            mode,
            CacheMode::Default | CacheMode::ForceCache | CacheMode::IgnoreRules
        ) && !(self.shared.options.shared && parts.headers.contains_key(header::AUTHORIZATION))
            && !Directives::of(&parts.headers).has("no-store")
    }

    /// A coalesced request: answered from the leader's response as it
    /// arrives when that response answers this request too (the same
    /// variant, fresh enough for it); else, once the leader is done, the
    /// request looks the cache up again, and after `coalesce_timeout` it
    /// gives up on the leader.
    async fn follow(
        &self,
        parts: &request::Parts,
        key: &str,
        mode: CacheMode,
        mut follower: Follower<Spooled>,
    ) -> Followed {
        let deadline = tokio::time::Instant::now() + self.shared.options.coalesce_timeout;
        let gave_up = |follower| {
            tracing::debug!(key = %abbreviate_key(key), "waited too long for a coalesced request");
            Followed::GaveUp(follower)
        };
        let spool = match tokio::time::timeout_at(deadline, follower.spool()).await {
            Ok(spool) => spool,
            Err(_) => return gave_up(follower),
        };
        if let Some(spool) = spool {
            let meta = spool.meta();
            let same_variant = meta
                .vary
                .as_ref()
                .is_none_or(|(index, variant)| index.variant_key(key, &parts.headers) == *variant);
            if same_variant && let Some(reader) = spool.attach() {
                let stored = Stored {
                    head: respcache_core::clone_head(&meta.head),
                    policy: meta.policy.clone(),
                    body: body::boxed(reader),
                };
                let now = SystemTime::now();
                if matches!(self.choose(parts, mode, &stored, now), Choice::Serve) {
                    let mut status = meta.status.clone();
                    status.stored = false;
                    status.collapsed = true;
                    status.ttl = Some(self.freshness(&stored.head, now).ttl_seconds());
                    let mut response = self.serve(parts, stored, status, now, false);
                    response.extensions_mut().insert(BodySource::Coalesced);
                    return Followed::Served(response);
                }
            }
        }
        match tokio::time::timeout_at(deadline, follower.done()).await {
            Ok(()) => Followed::LookAgain,
            Err(_) => gave_up(follower),
        }
    }

    /// Goes to the origin for a request the cache could not answer, and
    /// stores the response where the rules allow.
    #[allow(clippy::too_many_arguments)]
    async fn fetch<O, ReqB>(
        &self,
        parts: request::Parts,
        body: ReqB,
        mut origin: O,
        key: String,
        why: Forward,
        index: Option<VaryIndex>,
        flight: Option<Flight<Spooled>>,
        mode: CacheMode,
        now: SystemTime,
    ) -> Result<Response<CacheBody>, BoxError>
    where
        O: Origin<ReqB>,
    {
        let client_conditions = conditional::Conditions::take_from(&parts.headers);
        let mut forward = clone_request_head(&parts);
        if parts.method == Method::GET {
            // Ask for the whole response so that it can be stored; the
            // client's own conditions are answered here afterwards.
            conditional::strip(&mut forward.headers);
        }
        self.announce(&mut forward.headers);
        let response = origin.send(Request::from_parts(forward, body)).await?;
        self.shared.metrics.miss();
        let mut status = CacheStatus::forward(why);
        status.fwd_status = Some(response.status().as_u16());
        let response = self
            .store(&parts, key, response, index, flight, mode, &mut status, now)
            .await;
        Ok(self.finish(&parts, response, &status, client_conditions))
    }

    /// Revalidates a stale entry with the origin: a `304` refreshes the
    /// stored head and the stored body is served; anything else replaces
    /// it, unless it is an error that `stale-if-error` lets the cache hide.
    #[allow(clippy::too_many_arguments)]
    async fn revalidate<O, ReqB>(
        &self,
        parts: request::Parts,
        body: ReqB,
        mut origin: O,
        key: String,
        stored: Stored,
        index: Option<VaryIndex>,
        mut flight: Option<Flight<Spooled>>,
        now: SystemTime,
    ) -> Result<Response<CacheBody>, BoxError>
    where
        O: Origin<ReqB>,
        ReqB: Default,
    {
        self.shared.metrics.revalidation();
        let client_conditions = conditional::Conditions::take_from(&parts.headers);
        let mut forward = clone_request_head(&parts);
        conditional::strip(&mut forward.headers);
        conditional::add_validators(&mut forward.headers, &stored.head.headers);
        self.announce(&mut forward.headers);
        let stale_if_error = self.stale_if_error(&parts, &stored, now);
        let response = match origin.send(Request::from_parts(forward, body)).await {
            Ok(response) => response,
            Err(error) if stale_if_error || self.may_serve_disconnected(&stored) => {
                tracing::info!(key = %abbreviate_key(&key), %error, "origin unreachable; serving stale");
                self.shared.metrics.stale();
                let mut status = CacheStatus::forward(Forward::Stale);
                status.ttl = Some(self.freshness(&stored.head, now).ttl_seconds());
                return Ok(self.serve(&parts, stored, status, now, false));
            }
            Err(error) => return Err(error),
        };
        let mut status = CacheStatus::forward(Forward::Stale);
        status.fwd_status = Some(response.status().as_u16());
        if response.status().is_server_error() && stale_if_error {
            self.shared.metrics.stale();
            status.ttl = Some(self.freshness(&stored.head, now).ttl_seconds());
            return Ok(self.serve(&parts, stored, status, now, false));
        }
        if response.status() == StatusCode::NOT_MODIFIED {
            let (head, _) = response.into_parts();
            // The 304 answers the validators of this stored response.
            self.shared.metrics.not_modified();
            let received = SystemTime::now();
            let mut merged = conditional::merge_304(&stored.head, &head.headers, received);
            freshness::mark_received(&mut merged.headers, received);
            let policy = self.policy(&parts, &merged, received);
            let head = respcache_core::clone_head(&merged);
            let (body, must_read) = match self
                .shared
                .storage
                .update_head(&key, head, policy.clone())
                .await
            {
                Ok(true) => {
                    // The new head is stored: followers may read it now,
                    // not once this client has read the body.
                    drop(flight.take());
                    (stored.body, false)
                }
                Ok(false) => {
                    let body = self
                        .restore(&key, &merged, policy.clone(), stored.body, &parts)
                        .await;
                    (body, true)
                }
                Err(error) => {
                    self.shared.metrics.error();
                    tracing::warn!(key = %abbreviate_key(&key), %error, "refreshing a stored head failed");
                    (stored.body, false)
                }
            };
            let body = match flight {
                Some(flight) => Guarded::wrap(body, flight),
                None => body,
            };
            status.ttl = Some(self.freshness(&merged, SystemTime::now()).ttl_seconds());
            let refreshed = Stored {
                head: merged,
                policy,
                body,
            };
            return Ok(self.serve(&parts, refreshed, status, SystemTime::now(), must_read));
        }
        drop(stored);
        let primary = key_of_primary(&self.shared.options, &parts);
        let response = self
            .store(
                &parts,
                primary,
                response,
                index,
                flight,
                CacheMode::Default,
                &mut status,
                now,
            )
            .await;
        Ok(self.finish(&parts, response, &status, client_conditions))
    }

    /// The policy of a response to this request.
    fn policy(
        &self,
        parts: &request::Parts,
        head: &response::Parts,
        now: SystemTime,
    ) -> CachePolicy {
        let options = &self.shared.options;
        CachePolicy::new_options(
            &as_get(parts),
            head,
            now,
            CacheOptions {
                shared: options.shared,
                cache_heuristic: options.heuristic_fraction,
                ..CacheOptions::default()
            },
        )
    }

    /// Writes a refreshed head over a stored entry, passing its body
    /// through the backend again; returns the body for the caller.
    async fn restore(
        &self,
        key: &str,
        head: &response::Parts,
        policy: CachePolicy,
        body: CacheBody,
        parts: &request::Parts,
    ) -> CacheBody {
        let Ok(url) = Url::parse(&absolute_url(parts)) else {
            return body;
        };
        let head = respcache_core::clone_head(head);
        match self
            .shared
            .storage
            .put(key.to_owned(), head, body, policy, url)
            .await
        {
            Ok(body) => body,
            Err(PutFailed { error, body }) => {
                self.shared.metrics.error();
                tracing::warn!(key = %abbreviate_key(key), %error, "refreshing a stored head failed");
                body.unwrap_or_else(|| {
                    body::failed(format!("the cache backend lost the stored body: {error}"))
                })
            }
        }
    }

    /// Revalidates `stored` in a task of its own while the stale response
    /// is served, once per key at a time.
    fn revalidate_in_background<O, ReqB>(&self, parts: &request::Parts, key: &str, origin: O)
    where
        O: Origin<ReqB>,
        ReqB: Default + Send + 'static,
    {
        if !lock(&self.shared.revalidating).insert(key.to_owned()) {
            return;
        }
        let cache = self.clone();
        let key = key.to_owned();
        let mut request = Request::get(parts.uri.clone()).body(ReqB::default());
        if let Ok(request) = &mut request {
            *request.headers_mut() = parts.headers.clone();
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
                shared: cache.shared.clone(),
                key,
            };
            if let Ok(request) = request {
                let response = cache.handle_revalidation(request, origin).await;
                if let Err(error) = response {
                    tracing::info!(key = %abbreviate_key(&done.key), %error, "background revalidation failed");
                }
            }
        });
    }

    async fn handle_revalidation<O, ReqB>(
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
        let key = (self.shared.options.key)(&parts);
        if let Lookup::Found { stored, .. } = self.lookup(&key, &parts).await
            && self.freshness(&stored.head, SystemTime::now()).is_fresh()
        {
            return Ok(());
        }
        parts.extensions.insert(CacheMode::NoCache);
        let request = Request::from_parts(parts, body);
        let response = Box::pin(self.handle(request, origin)).await?;
        body::drain(response.into_body()).await;
        Ok(())
    }

    /// RFC 9111 §4.2.4: a cache that cannot reach the origin may serve
    /// a stale response unless the response forbids it.
    fn may_serve_disconnected(&self, stored: &Stored) -> bool {
        self.shared.options.serve_stale_when_disconnected
            && may_serve_stale(&stored.head.headers, self.shared.options.shared)
    }

    fn stale_if_error(&self, parts: &request::Parts, stored: &Stored, now: SystemTime) -> bool {
        let response_cc = Directives::of(&stored.head.headers);
        let request_cc = Directives::of(&parts.headers);
        let window = [
            response_cc.single("stale-if-error").flatten(),
            request_cc.single("stale-if-error").flatten(),
        ]
        .into_iter()
        .flatten()
        .max();
        match window {
            Some(window) => {
                may_serve_stale(&stored.head.headers, self.shared.options.shared)
                    && self.freshness(&stored.head, now).staleness() <= Duration::from_secs(window)
            }
            None => false,
        }
    }

    /// Stores `response` where the rules (or the mode) allow, returning the
    /// response for the caller with a body that is stored as it is read.
    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        parts: &request::Parts,
        key: String,
        response: Response<CacheBody>,
        index: Option<VaryIndex>,
        flight: Option<Flight<Spooled>>,
        mode: CacheMode,
        status: &mut CacheStatus,
        now: SystemTime,
    ) -> Response<CacheBody> {
        let (mut head, body) = response.into_parts();
        vary::strip_internal(&mut head.headers);
        let options = &self.shared.options;
        let policy = self.policy(parts, &head, now);
        let storable = parts.method == Method::GET
            && match mode {
                CacheMode::IgnoreRules => IGNORE_RULES_STATUSES.contains(&head.status.as_u16()),
                CacheMode::NoStore => false,
                _ => storable(parts, &head, options),
            };
        if !storable {
            return Response::from_parts(head, body);
        }
        let Some(fields) = crate::directives::vary_fields(&head.headers) else {
            return Response::from_parts(head, body);
        };
        let mut stored_head = response::Parts::clone_from_head(&head);
        remove_hop_by_hop(&mut stored_head.headers);
        strip_qualified(&mut stored_head.headers, options.shared);
        freshness::mark_received(&mut stored_head.headers, now);
        let Ok(url) = Url::parse(&absolute_url(parts)) else {
            return Response::from_parts(head, body);
        };
        let mut vary = None;
        let store_key = if fields.is_empty() {
            key
        } else {
            let index = VaryIndex::for_fields(fields, index);
            if index.is_new {
                let marker = index.marker_head();
                let written = match self
                    .shared
                    .storage
                    .put(
                        key.clone(),
                        marker,
                        body::empty(),
                        policy.clone(),
                        url.clone(),
                    )
                    .await
                {
                    Ok(done) => body::drain(done).await,
                    Err(failed) => {
                        tracing::warn!(key = %abbreviate_key(&key), error = %failed.error, "storing a Vary index failed");
                        false
                    }
                };
                if !written {
                    self.shared.metrics.error();
                    return Response::from_parts(head, body);
                }
            }
            let variant = index.variant_key(&key, &parts.headers);
            vary = Some((index, variant.clone()));
            variant
        };
        // Followers are told the head and policy as stored.
        let spooled = flight
            .as_ref()
            .map(|_| (respcache_core::clone_head(&stored_head), policy.clone()));
        // A server never reads a body that is empty from the start (a 204,
        // a HEAD), so such a store is completed here.
        let empty = body.is_end_stream();
        let body = match self
            .shared
            .storage
            .put(store_key.clone(), stored_head, body, policy, url)
            .await
        {
            Ok(body) if empty => {
                status.stored = body::drain(body).await;
                self.shared.metrics.store();
                body::empty()
            }
            Ok(body) => {
                self.shared.metrics.store();
                status.stored = true;
                return match (flight, spooled) {
                    (Some(flight), Some((head_as_stored, policy))) => {
                        let meta = Spooled {
                            head: head_as_stored,
                            policy,
                            status: status.clone(),
                            vary,
                        };
                        let (limit, stall) = (options.coalesce_buffer, options.coalesce_timeout);
                        let body = flight.spool(meta, body, limit, stall);
                        Response::from_parts(head, body)
                    }
                    _ => Response::from_parts(head, body),
                };
            }
            // Where nothing is being stored, the flight ends here and
            // the followers go to the origin themselves.
            Err(PutFailed {
                error,
                body: Some(body),
            }) => {
                self.shared.metrics.error();
                tracing::warn!(key = %abbreviate_key(&store_key), %error, "storing a response failed; passing it through");
                body
            }
            Err(PutFailed { error, body: None }) => {
                self.shared.metrics.error();
                tracing::error!(key = %abbreviate_key(&store_key), %error, "the backend failed after taking the body");
                body::failed(format!("the cache backend lost the response body: {error}"))
            }
        };
        Response::from_parts(head, body)
    }

    /// The last touches on a response from the origin: `Cache-Status`, and
    /// the client's own conditions answered.
    fn finish(
        &self,
        parts: &request::Parts,
        response: Response<CacheBody>,
        status: &CacheStatus,
        conditions: conditional::Conditions,
    ) -> Response<CacheBody> {
        let (mut head, body) = response.into_parts();
        self.add_status(&mut head.headers, status);
        head.extensions.insert(BodySource::Origin);
        if head.status == StatusCode::OK
            && parts.method == Method::GET
            && conditions.not_modified(&head.headers)
        {
            // The body still has to be read for the store to complete.
            tokio::spawn(body::drain(body));
            return Response::from_parts(conditional::not_modified_head(&head), body::empty());
        }
        Response::from_parts(head, body)
    }

    /// A response from storage.
    /// `must_read` says the body is being stored as it is read, so a
    /// response without one still reads it to its end.
    fn serve(
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
        remove_hop_by_hop(&mut head.headers);
        vary::strip_internal(&mut head.headers);
        head.headers.insert(header::AGE, HeaderValue::from(age));
        self.add_status(&mut head.headers, &status);
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
            tokio::spawn(body::drain(body));
        }
        Response::from_parts(head, body::empty())
    }

    /// Says who the cache is on a request to the origin, when it is a
    /// surrogate.
    fn announce(&self, headers: &mut HeaderMap) {
        if let Some(token) = &self.shared.options.surrogate {
            surrogate::announce(headers, token);
        }
    }

    /// The cache's own `Cache-Status` member; in a surrogate, the
    /// origin's `Surrogate-Control` stops here.
    fn add_status(&self, headers: &mut HeaderMap, status: &CacheStatus) {
        if self.shared.options.surrogate.is_some() {
            surrogate::remove(headers);
        }
        headers.append(
            HeaderName::from_static("cache-status"),
            status.to_header(&self.shared.options.cache_name),
        );
    }
}

/// A key's place in [`Shared::revalidating`], given up when dropped.
struct Revalidating<S> {
    shared: Arc<Shared<S>>,
    key: String,
}

impl<S> Drop for Revalidating<S> {
    fn drop(&mut self) {
        lock(&self.shared.revalidating).remove(&self.key);
    }
}

enum Choice {
    Serve,
    ServeStale,
    Revalidate,
    Forward(Forward),
    Unsatisfiable,
}

/// The statuses `IgnoreRules` stores.
const IGNORE_RULES_STATUSES: &[u16] = &[200, 203, 300, 301, 308, 404, 410];

/// Statuses the cache understands, for `must-understand`.
const UNDERSTOOD_STATUSES: &[u16] = &[
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// Statuses a response may be stored for with no explicit freshness
/// (RFC 9110 §15.1), partial content aside.
const HEURISTIC_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// RFC 9111 §3: whether a response to a `GET` may be stored. Partial
/// (`206`) and `304` responses are not stored: this cache keeps whole
/// responses only.
fn storable(parts: &request::Parts, head: &response::Parts, options: &Options) -> bool {
    let status = head.status.as_u16();
    if status < 200 || status == 206 || status == 304 {
        return false;
    }
    let shared = options.shared;
    let surrogate = options
        .surrogate
        .as_deref()
        .and_then(|token| SurrogateControl::of(&head.headers, token));
    if let Some(control) = surrogate {
        // Surrogate-Control takes precedence over Cache-Control.
        if control.no_store {
            return false;
        }
        if control.max_age.is_some() {
            return true;
        }
    }
    let request_cc = Directives::of(&parts.headers);
    let cc = Directives::of(&head.headers);
    if request_cc.has("no-store") {
        return false;
    }
    if cc.has("must-understand") {
        if !UNDERSTOOD_STATUSES.contains(&status) {
            return false;
        }
    } else if cc.has("no-store") {
        return false;
    }
    if shared && cc.has("private") && cc.fields("private").is_empty() {
        return false;
    }
    if shared
        && parts.headers.contains_key(header::AUTHORIZATION)
        && !(cc.has("public") || cc.has("must-revalidate") || cc.has("s-maxage"))
    {
        return false;
    }
    cc.has("public")
        || (!shared && cc.has("private"))
        || head.headers.contains_key(header::EXPIRES)
        || cc.has("max-age")
        || (shared && cc.has("s-maxage"))
        || HEURISTIC_STATUSES.contains(&status)
}

/// RFC 9110 §9.3.3: a response to a `POST` may answer later `GET`s of the
/// same URL when it is a `2xx` with explicit freshness and a
/// `Content-Location` that names that URL. Whether it may be stored at all is `storable`'s
/// business.
fn reusable_for_get(request_url: &str, response: &Response<CacheBody>) -> bool {
    let headers = response.headers();
    let Ok(base) = Url::parse(request_url) else {
        return false;
    };
    let names_the_url = headers
        .get(header::CONTENT_LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| base.join(value).ok())
        .is_some_and(|location| location == base);
    let cc = Directives::of(headers);
    // Content-Location names the response's own URL only in a 2xx (RFC
    // 9110 §8.7).
    response.status().is_success()
        && names_the_url
        && (cc.has("max-age") || cc.has("s-maxage") || headers.contains_key(header::EXPIRES))
}

/// Removes the fields a `private="…"` (shared caches) or `no-cache="…"`
/// directive names: they may not be served from storage without the origin.
fn strip_qualified(headers: &mut HeaderMap, shared: bool) {
    let cc = Directives::of(headers);
    let mut fields = cc.fields("no-cache");
    if shared {
        fields.extend(cc.fields("private"));
    }
    for field in fields {
        if let Ok(name) = HeaderName::from_bytes(field.as_bytes()) {
            headers.remove(name);
        }
    }
}

/// Whether a stale response may be served at all: `must-revalidate`
/// (and, in a shared cache, `proxy-revalidate` and `s-maxage`) forbid it.
fn may_serve_stale(headers: &HeaderMap, shared: bool) -> bool {
    let cc = Directives::of(headers);
    !cc.has("must-revalidate")
        && !cc.has("no-cache")
        && !(shared && (cc.has("proxy-revalidate") || cc.has("s-maxage")))
}

fn only_if_cached(parts: &request::Parts) -> bool {
    Directives::of(&parts.headers).has("only-if-cached")
}

fn pragma_no_cache(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::CACHE_CONTROL)
        && headers
            .get_all(header::PRAGMA)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
}

fn gateway_timeout(options: &Options) -> Response<CacheBody> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response.headers_mut().insert(
        HeaderName::from_static("cache-status"),
        CacheStatus::default().to_header(&options.cache_name),
    );
    response
}

/// The request as the `GET` it is looked up as (a `HEAD` uses a stored
/// `GET`).
fn as_get(parts: &request::Parts) -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = if parts.method == Method::HEAD {
        Method::GET
    } else {
        parts.method.clone()
    };
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    request
}

fn key_of_primary(options: &Options, parts: &request::Parts) -> String {
    (options.key)(parts)
}

/// A copy of a request head (extensions aside) to send on.
fn clone_request_head(parts: &request::Parts) -> request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

trait CloneFromHead {
    fn clone_from_head(head: &Self) -> Self;
}

impl CloneFromHead for response::Parts {
    fn clone_from_head(head: &Self) -> Self {
        respcache_core::clone_head(head)
    }
}
