//! Every check, one public async function per behaviour.

mod concurrency;
mod integrity;
mod isolation;
mod keys;
mod memory;
mod process;
mod round_trip;
mod storage;
mod streaming;

pub use concurrency::*;
pub use integrity::*;
pub use isolation::*;
pub use keys::*;
pub use memory::*;
pub use process::*;
pub use round_trip::*;
pub use storage::*;
pub use streaming::*;

use respcache_core::{CacheManager, HttpResponse};

use crate::failure::{Context, Failure};
use crate::fixtures;

/// Stores `response` under `key` with a fitting policy.
pub(crate) async fn store<M: CacheManager + ?Sized>(
    manager: &M,
    key: &str,
    response: HttpResponse,
) -> Result<(), Failure> {
    let policy = fixtures::policy_for(&response);
    manager
        .put(key.to_owned(), response, policy)
        .await
        .context(&format!("put of {}", respcache_core::abbreviate_key(key)))?;
    Ok(())
}

/// Reads `key`, failing on an error.
pub(crate) async fn fetch<M: CacheManager + ?Sized>(
    manager: &M,
    key: &str,
) -> Result<Option<HttpResponse>, Failure> {
    Ok(manager
        .get(key)
        .await
        .context(&format!("get of {}", respcache_core::abbreviate_key(key)))?
        .map(|(response, _)| response))
}
