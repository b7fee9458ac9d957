//! respcache's HTTP caching engine: the rules of RFC 9111 over any
//! respcache backend, for a client (a private cache) or in front of a
//! service (a shared one), and a tower `Layer` that puts it around any
//! `Service`.
//!
//! What it does, per request:
//! - serves fresh stored responses with a correct `Age`, and answers the
//!   client's own `If-None-Match` / `If-Modified-Since` from them;
//! - revalidates stale ones with the stored validators, and on `304`
//!   refreshes the stored head while serving the stored body;
//! - keeps several `Vary` variants of a URL side by side;
//! - invalidates stored entries after a successful unsafe method (and the
//!   same-origin `Location` / `Content-Location`);
//! - serves stale within `stale-while-revalidate` (revalidating once, in
//!   the background) and `stale-if-error`, never past `must-revalidate`;
//! - collapses concurrent misses for one key into one origin request,
//!   whose response the waiting requests read as it arrives;
//! - never caches a request whose target is ambiguous (a `Host` that is
//!   more than a host and port, a path not in normal form);
//! - says what it did in an RFC 9211 `Cache-Status` field.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use respcache_http::{Buffered, CacheLayer, FnService, HttpCache, Layer, Options};
//! use tower_service::Service;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let backend = respcache_cacache::CACacheManager::new(dir.path(), true);
//! let cache = HttpCache::new(Buffered::new(backend), Options::default());
//!
//! // Any tower service can be the origin; here, a function.
//! let origin = FnService(|_request: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("cache-control", "max-age=60")
//!             .body(Full::new(Bytes::from_static(b"hello")))
//!             .unwrap(),
//!     )
//! });
//! let mut service = CacheLayer::new(cache).layer(origin);
//!
//! for expected in ["fwd=uri-miss; fwd-status=200; stored", "hit"] {
//!     let request = Request::get("http://example.com/").body(Full::default())?;
//!     let response = service.call(request).await?;
//!     let status = response.headers()["cache-status"].to_str()?.to_owned();
//!     assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
//!     assert!(status.contains(expected), "{status}");
//! }
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(rustdoc::broken_intra_doc_links)]

mod body;
mod clock;
mod coalesce;
mod conditional;
mod directives;
mod engine;
mod forward;
mod freshness;
mod hit_for_pass;
mod layer;
mod lookup;
mod metrics;
mod options;
mod origin;
mod part_index;
mod partial;
mod purge;
mod range;
mod respond;
mod revalidate;
mod rules;
mod spool;
mod stale;
mod status;
mod storage;
mod store;
mod surrogate;
mod targeted;
mod vary;

/// The guarded value, also after a panic elsewhere poisoned the lock: every
/// critical section in this crate leaves its state whole.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub use body::{CacheBody, boxed, empty, full};
pub use clock::{Clock, ManualClock, SystemClock};
pub use directives::{is_upgrade, remove_hop_by_hop};
pub use engine::HttpCache;
pub use layer::{
    CacheLayer, CacheService, InfallibleCacheLayer, InfallibleCacheService, InfallibleFuture,
};
pub use metrics::MetricsSnapshot;
pub use options::{CacheMode, KeyFn, Options, absolute_url, default_key, private_key};
pub use origin::{FnService, Origin, OriginFuture, ServiceOrigin};
pub use purge::{Purge, PurgeError, Strength};
pub use respcache_core::{BoxError, CachePolicy, CommitWatch, StoreHints};
pub use status::{BodySource, CacheStatus, Forward};
pub use storage::{Buffered, PutFailed, Putting, Storage, Stored, Streaming};
/// tower's `Layer` trait, so that `CacheLayer::layer` needs no other import.
pub use tower_layer::Layer;
