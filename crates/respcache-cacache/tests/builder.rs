//! The builder makes the same manager as `new`, option for option.

use respcache_cacache::CACacheManager;
use respcache_core::{CacheManager, CachePolicy, HttpResponse};

async fn put_one(cache: &CACacheManager, key: &str) -> Result<(), respcache_core::BoxError> {
    let url = url::Url::parse("https://example.com/")?;
    let request = http::Request::get(url.as_str()).body(())?;
    let response = http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(bytes::Bytes::from_static(b"hello"))?;
    let policy = CachePolicy::new(&request, &response);
    cache
        .put(key.into(), HttpResponse::from_http(response, url), policy)
        .await?;
    Ok(())
}

/// Whether deleting the entry left its content file on disk.
async fn content_kept_after_delete(
    cache: CACacheManager,
) -> Result<bool, respcache_core::BoxError> {
    put_one(&cache, "k").await?;
    let content = cache.content_path("k").await?.ok_or("no content path")?;
    assert!(content.exists());
    cache.delete("k").await?;
    assert!(cache.get("k").await?.is_none());
    Ok(content.exists())
}

#[tokio::test]
async fn builder_removes_fully_by_default() -> Result<(), respcache_core::BoxError> {
    let dir = tempfile::tempdir()?;
    let cache = CACacheManager::builder(dir.path()).build();
    assert!(!content_kept_after_delete(cache).await?);
    Ok(())
}

#[tokio::test]
async fn builder_can_leave_content_like_new_with_false() -> Result<(), respcache_core::BoxError> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let built = CACacheManager::builder(a.path())
        .remove_fully(false)
        .build();
    assert!(content_kept_after_delete(built).await?);
    assert!(content_kept_after_delete(CACacheManager::new(b.path(), false)).await?);
    Ok(())
}
