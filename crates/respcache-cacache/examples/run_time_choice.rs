//! A backend chosen at run time, held as `Arc<dyn CacheManager>`, handed
//! to code written for any `M: CacheManager`: the guide's "Choosing a
//! backend at run time".
//!
//! `cargo run -p respcache-cacache --example run_time_choice`

// ANCHOR: dyn
use std::sync::Arc;

use respcache_cacache::CACacheManager;
use respcache_core::CacheManager;

async fn is_cached<M: CacheManager>(cache: &M, key: &str) -> respcache_core::Result<bool> {
    Ok(cache.get(key).await?.is_some())
}

async fn example(directory: std::path::PathBuf) -> respcache_core::Result<()> {
    let cache: Arc<dyn CacheManager> = Arc::new(CACacheManager::new(directory, true));
    let hit = is_cached(&cache, "GET:https://example.com/").await?;
    println!("cached: {hit}");
    Ok(())
}
// ANCHOR_END: dyn

#[tokio::main]
async fn main() -> respcache_core::Result<()> {
    let dir = tempfile::tempdir()?;
    example(dir.path().join("http-cache")).await
}
