//! The contract between an HTTP cache and the storage behind it.
//!
//! `respcache-core` holds what every respcache backend and every user of one
//! shares, and nothing else: the [`CacheManager`] and
//! [`StreamingCacheManager`] traits, the [`HttpResponse`] a cache stores,
//! the [`StreamingBody`] streaming backends hand out, and the errors. It
//! depends on no storage library, serializer format or hash, so a program
//! that picks one backend compiles only that backend's stack.
//!
//! The smallest complete use: a backend held as a trait object, chosen at
//! run time. (This one keeps entries in a `HashMap`, which is enough to show
//! the contract; the real backends live in their own crates.)
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//!
//! use respcache_core::{CacheManager, CachePolicy, HttpResponse, Result};
//!
//! #[derive(Debug, Default)]
//! struct InMemory(Mutex<HashMap<String, (HttpResponse, CachePolicy)>>);
//!
//! #[async_trait::async_trait]
//! impl CacheManager for InMemory {
//!     async fn get(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
//!         Ok(self.0.lock().unwrap().get(key).cloned())
//!     }
//!     async fn put(&self, key: String, res: HttpResponse, policy: CachePolicy) -> Result<HttpResponse> {
//!         self.0.lock().unwrap().insert(key, (res.clone(), policy));
//!         Ok(res)
//!     }
//!     async fn delete(&self, key: &str) -> Result<()> {
//!         self.0.lock().unwrap().remove(key);
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let cache: Arc<dyn CacheManager> = Arc::new(InMemory::default());
//!
//! let request = http::Request::get("https://example.com/").body(())?;
//! let response = http::Response::builder()
//!     .header("cache-control", "max-age=60")
//!     .body(bytes::Bytes::from_static(b"hello"))?;
//! let policy = CachePolicy::new(&request, &response);
//! let stored = HttpResponse::from_http(response, url::Url::parse("https://example.com/")?);
//!
//! cache.put("GET:https://example.com/".into(), stored, policy).await?;
//! let (hit, _policy) = cache.get("GET:https://example.com/").await?.expect("a hit");
//! assert_eq!(hit.body, "hello");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).map_err(|e| e as Box<dyn std::error::Error>)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(rustdoc::broken_intra_doc_links)]

mod body;
mod error;
pub mod headers;
mod manager;
mod response;
mod tee;

pub use body::StreamingBody;
pub use error::{BoxError, CacheError, Result, StreamingError, abbreviate_key};
pub use manager::{CacheManager, StoreHints, StreamingCacheManager, Usage};
pub use response::{HttpResponse, HttpVersion, clone_head};
pub use tee::{CommitWatch, TeeBody, TeeEvent, TeeWriter, tee};

/// Re-exported so that implementors use the same `async_trait`.
pub use async_trait::async_trait;
/// Re-exported so that a backend can name the `http` types of the traits
/// (`http::response::Parts` in `update_head`) with no dependency of its own.
pub use http;
/// Re-exported so that backends and users name one `http-cache-semantics`.
pub use http_cache_semantics;
/// The policy stored beside each response: `http-cache-semantics`'
/// `CachePolicy`, with its serde feature on.
pub use http_cache_semantics::CachePolicy;
