//! The request's flow through the cache: look the key up, decide with
//! the rules, serve what may be served, wait for a request already at the
//! origin for the same key, or go to the origin. The steps that touch the
//! origin and storage live in `forward`, `store`, `revalidate` and
//! `respond`; the decisions are the pure functions of `rules`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{Method, Request, Response, header, request, response};
use respcache_core::{BoxError, abbreviate_key};

use crate::body::{self, CacheBody};
use crate::coalesce::{Flight, Flights, Follower, Role};
use crate::directives::{self, remove_hop_by_hop};
use crate::freshness::Freshness;
use crate::hit_for_pass::HitForPass;
use crate::lookup::Lookup;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::options::{CacheMode, Options, has_valid_target};
use crate::origin::Origin;
use crate::respond::gateway_timeout;
use crate::rules::{self, Choice};
use crate::status::{BodySource, CacheStatus, Forward};
use crate::storage::{Storage, Stored};
use crate::store::Storing;
use crate::vary::VaryIndex;

/// An HTTP cache: the RFC 9111 rules over a [`Storage`].
///
/// Cloning is cheap and clones share everything (storage, in-flight
/// requests, metrics).
#[derive(Debug)]
pub struct HttpCache<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for HttpCache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// What every clone of a cache shares.
#[derive(Debug)]
pub(crate) struct Inner<S> {
    pub(crate) storage: S,
    pub(crate) options: Options,
    /// Keys with a request on its way to the origin, and how to follow it.
    pub(crate) flights: Flights<Spooled>,
    /// Keys with a background revalidation under way.
    pub(crate) revalidating: Mutex<HashSet<String>>,
    /// Keys whose last response could not be stored.
    pub(crate) passes: HitForPass,
    pub(crate) metrics: Metrics,
}

/// One request the cache may answer from storage or store the answer
/// to: what each step of its flow needs to know.
pub(crate) struct Exchange {
    /// The request's head, as the client sent it.
    pub(crate) parts: request::Parts,
    /// Its primary key.
    pub(crate) key: String,
    pub(crate) mode: CacheMode,
    /// The time of its lookup.
    pub(crate) now: SystemTime,
    /// The key's `Vary` index, when one is stored.
    pub(crate) index: Option<VaryIndex>,
    /// The coalescing flight it leads, if any: requests for the same key
    /// wait for it.
    pub(crate) flight: Option<Flight<Spooled>>,
    /// Whether the origin's response is being stored.
    pub(crate) storing: Storing,
}

/// What a coalesced request learns of the leader's response, besides its
/// body, to tell whether that response answers it too.
#[derive(Debug)]
pub(crate) struct Spooled {
    /// The head as it is stored.
    pub(crate) head: response::Parts,
    /// What the leader's request did.
    pub(crate) status: CacheStatus,
    /// The `Vary` index and the variant key the response is stored under.
    pub(crate) vary: Option<(VaryIndex, String)>,
}

/// Where the search of storage and of requests in flight ended.
enum Found {
    /// The request is answered.
    Answered(Response<CacheBody>),
    /// The request is answered with a stale entry, stored under `key`,
    /// that is to be revalidated in the background
    /// (`stale-while-revalidate`).
    AnsweredStale {
        response: Response<CacheBody>,
        parts: request::Parts,
        key: String,
    },
    /// The origin must be asked: for a new response, or (with the stale
    /// entry and its key) whether the stored one is still good.
    Origin {
        exchange: Exchange,
        why: Forward,
        prior: Option<(String, Box<Stored>)>,
    },
}

/// What became of a stored entry for a request.
enum Served {
    /// It answers the request (or nothing may: a `504`).
    Fresh(Response<CacheBody>),
    /// It answers stale, to be revalidated in the background.
    Stale(Response<CacheBody>),
    /// The origin must be asked, for this reason.
    Not(Forward, Box<Stored>),
}

/// A request's dealings with the other requests for its key.
#[derive(Default)]
struct Coalescing {
    /// It followed a leader whose response did not answer it: from then
    /// on it goes alone.
    alone: bool,
    /// It leads a flight, and looks the key up once more before going to
    /// the origin.
    leads: Option<Flight<Spooled>>,
    /// It has looked once more since it began to lead.
    rechecked: bool,
    /// The flight it waited for too long, to replace.
    gave_up: Option<Follower<Spooled>>,
}

/// How joining the requests for a key ended.
enum Joined {
    /// This request goes to the origin on its own, or leading `Some`
    /// flight.
    Go(Option<Flight<Spooled>>),
    /// It leads a new flight, and must look the key up once more first.
    Recheck,
    /// The leader's response answered it.
    Served(Response<CacheBody>),
    /// Look the key up again: the leader is done, or was given up.
    LookAgain,
}

impl<S: Storage> HttpCache<S> {
    /// A cache over `storage` with `options`.
    pub fn new(storage: S, options: Options) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                options,
                flights: Flights::default(),
                revalidating: Mutex::new(HashSet::new()),
                passes: HitForPass::default(),
                metrics: Metrics::default(),
            }),
        }
    }

    /// The options this cache was made with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The storage this cache uses.
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// Counters of what the cache has done so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
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
        let (mut parts, body) = request.into_parts();
        let mode = parts
            .extensions
            .get::<CacheMode>()
            .copied()
            .unwrap_or(self.inner.options.mode);
        let readable = parts.method == Method::GET || parts.method == Method::HEAD;
        if self.inner.options.shared && directives::is_upgrade(&parts.headers) {
            // A protocol switch (WebSocket) is the origin's to answer, with
            // its hop-by-hop fields intact; nothing of it is cached.
            return self.pass(parts, body, origin, Forward::Bypass, mode).await;
        }
        // In a shared cache the key and every variant are computed from
        // exactly the request the origin receives: fields a client names
        // in `Connection` go before keying. A request that names `Host`
        // there would be keyed for one site and answered for another: it
        // is not cached.
        // A GET with a body may be answered by what the body says: such a
        // request is passed on, not cached (RFC 9110 §9.3.1).
        let has_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
            || parts
                .headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0");
        let mut names_host = false;
        if self.inner.options.shared {
            names_host = directives::connection_names(&parts.headers, &header::HOST);
            remove_hop_by_hop(&mut parts.headers);
        }
        let cacheable = readable && !names_host && !has_body && has_valid_target(&parts);
        if !cacheable {
            if readable && (mode == CacheMode::OnlyIfCached || rules::only_if_cached(&parts)) {
                // Nothing may be stored for such a target, and the origin
                // may not be asked (RFC 9111 §5.2.1.7).
                return Ok(gateway_timeout(&self.inner.options));
            }
            let why = if readable {
                Forward::Bypass
            } else {
                Forward::Method
            };
            return self.pass(parts, body, origin, why, mode).await;
        }
        if mode == CacheMode::NoStore {
            return self.pass(parts, body, origin, Forward::Bypass, mode).await;
        }
        let key = (self.inner.options.key)(&parts);
        match self.find(parts, key, mode).await {
            Found::Answered(response) => Ok(response),
            Found::AnsweredStale {
                response,
                parts,
                key,
            } => {
                self.revalidate_in_background(&parts, &key, origin);
                Ok(response)
            }
            Found::Origin {
                exchange,
                why: Forward::Stale,
                prior: Some((found_key, stored)),
            } => {
                self.revalidate(exchange, body, origin, found_key, *stored)
                    .await
            }
            Found::Origin { exchange, why, .. } => self.fetch(exchange, body, origin, why).await,
        }
    }

    /// The time on the cache's clock.
    pub(crate) fn now(&self) -> SystemTime {
        self.inner.options.clock.now()
    }

    /// The freshness of a stored head at `now`.
    pub(crate) fn freshness(&self, head: &response::Parts, now: SystemTime) -> Freshness {
        Freshness::of(head, &self.inner.options, now)
    }

    /// Looks `key` up until the request is answered from storage or from
    /// the response of a request it waits for, or must go to the origin.
    async fn find(&self, parts: request::Parts, key: String, mode: CacheMode) -> Found {
        let mut coalescing = Coalescing::default();
        loop {
            let now = self.now();
            let (why, prior, index) = match self.lookup(&key, &parts).await {
                Lookup::Miss { why, index } => (why, None, index),
                Lookup::Found {
                    key: found_key,
                    stored,
                    index,
                } => match self.serve_stored(&parts, mode, *stored, now, coalescing.alone) {
                    Served::Fresh(response) => return Found::Answered(response),
                    Served::Stale(response) => {
                        return Found::AnsweredStale {
                            response,
                            parts,
                            key: found_key,
                        };
                    }
                    Served::Not(why, stored) => (why, Some((found_key, stored)), index),
                },
            };
            if why == Forward::UriMiss
                && let Some(response) = self.serve_part(&parts, &key, mode, now).await
            {
                return Found::Answered(response);
            }
            if mode == CacheMode::OnlyIfCached || rules::only_if_cached(&parts) {
                return Found::Answered(gateway_timeout(&self.inner.options));
            }
            let flight = match self
                .join(&key, &parts, mode, prior.is_none(), &mut coalescing)
                .await
            {
                Joined::Go(flight) => flight,
                Joined::Recheck | Joined::LookAgain => continue,
                Joined::Served(response) => return Found::Answered(response),
            };
            let exchange = Exchange {
                parts,
                key,
                mode,
                now,
                index,
                flight,
                storing: Storing::No,
            };
            return Found::Origin {
                exchange,
                why,
                prior,
            };
        }
    }

    /// Serves a stored entry where the rules allow; `collapsed` says the
    /// request waited for another one first.
    fn serve_stored(
        &self,
        parts: &request::Parts,
        mode: CacheMode,
        stored: Stored,
        now: SystemTime,
        collapsed: bool,
    ) -> Served {
        let freshness = self.freshness(&stored.head, now);
        let options = &self.inner.options;
        match rules::choose(parts, mode, &stored.head.headers, &freshness, options) {
            Choice::Serve => {
                self.inner.metrics.hit();
                let mut status = CacheStatus::hit(freshness.ttl_seconds());
                status.collapsed = collapsed;
                Served::Fresh(self.serve(parts, stored, status, now, false))
            }
            Choice::ServeStale => {
                self.inner.metrics.stale();
                let status = CacheStatus::hit(freshness.ttl_seconds());
                Served::Stale(self.serve(parts, stored, status, now, false))
            }
            Choice::Unsatisfiable => Served::Fresh(gateway_timeout(options)),
            Choice::Forward(why) => Served::Not(why, Box::new(stored)),
            Choice::Revalidate => Served::Not(Forward::Stale, Box::new(stored)),
        }
    }

    /// Joins the requests for `key`: leads the one that goes to the
    /// origin, or follows it and reads its response.
    async fn join(
        &self,
        key: &str,
        parts: &request::Parts,
        mode: CacheMode,
        missed: bool,
        coalescing: &mut Coalescing,
    ) -> Joined {
        if let Some(flight) = coalescing.leads.take() {
            return Joined::Go(Some(flight));
        }
        if coalescing.alone
            || !rules::may_collapse(parts, mode, self.inner.options.shared)
            || self.inner.passes.holds(key, self.now())
        {
            return Joined::Go(None);
        }
        let role = match coalescing.gave_up.take() {
            Some(stale) => self.inner.flights.replace(key, &stale),
            None => self.inner.flights.join_or_lead(key),
        };
        match role {
            // A leader that just finished may have stored the entry
            // between this request's lookup and its joining: look once
            // more before going to the origin.
            Role::Leader(flight) if missed && !coalescing.rechecked => {
                coalescing.rechecked = true;
                coalescing.leads = Some(flight);
                Joined::Recheck
            }
            Role::Leader(flight) => Joined::Go(Some(flight)),
            Role::Follower(follower) => {
                self.inner.metrics.coalesced();
                match self.follow(parts, key, mode, follower).await {
                    Followed::Served(response) => Joined::Served(response),
                    // The leader's response was not one to share: from
                    // here this request goes on its own.
                    Followed::LookAgain => {
                        coalescing.alone = true;
                        Joined::LookAgain
                    }
                    Followed::GaveUp(stale) => {
                        coalescing.gave_up = Some(stale);
                        Joined::LookAgain
                    }
                }
            }
        }
    }

    /// A coalesced request: answered from the leader's response as it
    /// arrives when that response answers this request too (the same
    /// variant, fresh enough for it); else, once the leader is done, the
    /// request looks the cache up again, and after `coalesce_wait` it
    /// gives up on the leader.
    async fn follow(
        &self,
        parts: &request::Parts,
        key: &str,
        mode: CacheMode,
        mut follower: Follower<Spooled>,
    ) -> Followed {
        let deadline = tokio::time::Instant::now() + self.inner.options.coalesce_wait;
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
                    body: body::boxed(reader),
                };
                let now = self.now();
                let freshness = self.freshness(&stored.head, now);
                let choice = rules::choose(
                    parts,
                    mode,
                    &stored.head.headers,
                    &freshness,
                    &self.inner.options,
                );
                if choice == Choice::Serve {
                    let mut status = meta.status.clone();
                    status.stored = false;
                    status.collapsed = true;
                    status.ttl = Some(freshness.ttl_seconds());
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
}

/// How following another request ended.
enum Followed {
    /// Answered from the leader's response.
    Served(Response<CacheBody>),
    /// The leader is done; its response did not answer this request.
    LookAgain,
    /// The leader took longer than `coalesce_wait`.
    GaveUp(Follower<Spooled>),
}
