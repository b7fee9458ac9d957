//! respcache's HTTP cache as [`reqwest_middleware`] middleware: the
//! RFC 9111 engine of `respcache-http` over any respcache backend, behind a
//! reqwest client.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use respcache_reqwest::Cache;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(Cache::streaming(respcache_fs::StreamingManager::new("./http-cache".into())))
//!     .build();
//! let response = client.get("http://127.0.0.1:8000/").send().await?;
//! println!("{:?}", response.headers().get("cache-status"));
//! # Ok(())
//! # }
//! ```
//!
//! - **A private cache by default** ([`Options::private`]): it may keep
//!   `private` responses and those to requests with `Authorization`, as a
//!   client's own cache may. A request with `Authorization` is keyed by a
//!   SHA-256 of that header's value as well as its URL
//!   ([`respcache_http::private_key`]): a server calling an API with
//!   several users' tokens never answers one user with another's
//!   response, and a client with one token still gets hits. The token
//!   itself is never part of a key. Give [`Cache::new`] an [`HttpCache`]
//!   for any other [`Options`].
//! - **A [`CacheMode`] per request**, through reqwest-middleware's request
//!   extensions: `client.get(url).with_extension(CacheMode::NoStore)`.
//! - **`Cache-Status`** (RFC 9211) on every response: `hit`, or `fwd=` and
//!   why the origin was asked.
//! - **Streaming**: with a streaming backend ([`Cache::streaming`]) a body
//!   reaches the caller as the origin sends it while it is stored on the
//!   way, and a hit is read from the backend in chunks; neither is ever
//!   gathered in memory. A buffered backend ([`Cache::buffered`]) gathers a
//!   copy on the side, up to a limit, and the caller still reads as the
//!   origin sends.
//! - **A failing backend never fails a request**: it is logged with
//!   `tracing` and the origin answers.
//!
//! The origin is reached through the rest of the middleware chain, so
//! middleware added after the cache (retries, authentication) runs only
//! for requests the cache does not answer. One limit follows: a
//! `stale-while-revalidate` revalidation would outlive the request that
//! started it, and the chain lives only as long as that request, so the
//! stale response is served and the entry is revalidated by the first
//! request after the window, in the foreground.

#![deny(rustdoc::broken_intra_doc_links)]

mod body;
mod middleware;
mod origin;

pub use middleware::Cache;
pub use respcache_http::{Buffered, CacheMode, HttpCache, Options, Streaming};
