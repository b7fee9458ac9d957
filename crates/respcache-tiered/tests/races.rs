//! Promotions and writes of one key that interleave: the near tier must
//! never keep an entry the far tier replaced or deleted.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use respcache_conformance::fixtures;
use respcache_core::{
    CacheManager, CachePolicy, HttpResponse, Result, StoreHints, StreamingCacheManager,
};
use respcache_fs::StreamingManager;
use respcache_memory::MemoryManager;
use respcache_tiered::TieredManager;
use tokio::sync::Notify;

/// Where a [`Paused`] far tier stops once, after doing its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Get,
    Put,
}

/// One stop: `reached` is signalled when the call gets there, and it
/// waits for `go`.
#[derive(Debug, Clone, Default)]
struct Stop {
    reached: Arc<Notify>,
    go: Arc<Notify>,
}

/// A far tier that, once armed, stops after a read or a write has done
/// its work and before it returns: the moment another call may run.
#[derive(Debug, Clone)]
struct Paused {
    inner: StreamingManager,
    armed: Arc<Mutex<Option<(At, Stop)>>>,
}

impl Paused {
    fn arm(&self, at: At) -> Stop {
        let stop = Stop::default();
        *self.armed.lock().unwrap() = Some((at, stop.clone()));
        stop
    }

    async fn maybe_stop(&self, at: At) {
        let stop = {
            let mut armed = self.armed.lock().unwrap();
            match armed.as_ref() {
                Some((armed_at, _)) if *armed_at == at => armed.take().map(|(_, stop)| stop),
                _ => None,
            }
        };
        if let Some(stop) = stop {
            stop.reached.notify_one();
            stop.go.notified().await;
        }
    }
}

#[async_trait::async_trait]
impl CacheManager for Paused {
    async fn get(&self, cache_key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let found = self.inner.get(cache_key).await;
        self.maybe_stop(At::Get).await;
        found
    }

    async fn put(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.put_with(cache_key, response, policy, StoreHints::default())
            .await
    }

    async fn put_with(
        &self,
        cache_key: String,
        response: HttpResponse,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<HttpResponse> {
        let stored = self
            .inner
            .put_with(cache_key, response, policy, hints)
            .await;
        self.maybe_stop(At::Put).await;
        stored
    }

    async fn delete(&self, cache_key: &str) -> Result<()> {
        self.inner.delete(cache_key).await
    }

    async fn update_head(
        &self,
        cache_key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
    ) -> Result<bool> {
        self.inner.update_head(cache_key, head, policy).await
    }
}

fn paused_cache() -> (tempfile::TempDir, TieredManager<MemoryManager, Paused>) {
    let dir = tempfile::tempdir().unwrap();
    let far = Paused {
        inner: StreamingManager::new(dir.path().into()),
        armed: Arc::default(),
    };
    (dir, TieredManager::new(MemoryManager::new(64 << 20), far))
}

async fn put(cache: &impl CacheManager, key: &str, entry: &HttpResponse) {
    cache
        .put(key.into(), entry.clone(), fixtures::policy_for(entry))
        .await
        .unwrap();
}

/// What a read of the whole cache returns, as a generation.
async fn served(cache: &impl CacheManager, key: &str) -> Option<u64> {
    let (response, _) = cache.get(key).await.unwrap()?;
    Some(fixtures::verify_generated(1, &response).unwrap())
}

#[tokio::test]
async fn a_read_that_a_delete_overtakes_does_not_promote_the_deleted_entry() {
    let (_dir, cache) = paused_cache();
    put(cache.far(), "k", &fixtures::generated(1, 1, 1000)).await;

    let stop = cache.far().arm(At::Get);
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { served(&cache, "k").await }
    });
    stop.reached.notified().await;
    cache.delete("k").await.unwrap();
    stop.go.notify_one();
    assert_eq!(reader.await.unwrap(), Some(1), "read before the delete");

    assert!(
        cache.near().get("k").await.unwrap().is_none(),
        "the deleted entry was promoted"
    );
    assert_eq!(served(&cache, "k").await, None);
}

#[tokio::test]
async fn a_read_that_a_put_overtakes_does_not_promote_the_older_entry() {
    let (_dir, cache) = paused_cache();
    put(cache.far(), "k", &fixtures::generated(1, 1, 1000)).await;

    let stop = cache.far().arm(At::Get);
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { served(&cache, "k").await }
    });
    stop.reached.notified().await;
    put(&cache, "k", &fixtures::generated(1, 2, 1000)).await;
    stop.go.notify_one();
    assert_eq!(reader.await.unwrap(), Some(1), "read before the put");

    assert_eq!(
        served(&cache, "k").await,
        Some(2),
        "the older entry was promoted"
    );
}

#[tokio::test]
async fn two_puts_that_overlap_leave_no_near_copy_the_far_tier_does_not_hold() {
    let (_dir, cache) = paused_cache();
    // The first put stores far, then waits while the second runs whole:
    // the far tier ends with the second, and the first's near write
    // comes last.
    let stop = cache.far().arm(At::Put);
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { put(&cache, "k", &fixtures::generated(1, 1, 1000)).await }
    });
    stop.reached.notified().await;
    put(&cache, "k", &fixtures::generated(1, 2, 1000)).await;
    stop.go.notify_one();
    first.await.unwrap();

    let (far, _) = cache.far().get("k").await.unwrap().expect("stored");
    let far = fixtures::verify_generated(1, &far).unwrap();
    assert_eq!(served(&cache, "k").await, Some(far), "near and far differ");
}

#[tokio::test]
async fn a_streamed_promotion_that_a_put_overtakes_does_not_stay() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TieredManager::new(
        MemoryManager::new(64 << 20),
        StreamingManager::new(dir.path().into()),
    );
    put(cache.far(), "k", &fixtures::generated(1, 1, 100_000)).await;

    // The far body is open, not yet read, while a newer entry is put.
    let slow = cache
        .get_stream_response("k")
        .await
        .unwrap()
        .expect("a far hit");
    assert!(slow.body().is_near(), "streamed through the near tier");
    put(&cache, "k", &fixtures::generated(1, 2, 100_000)).await;
    let old = slow.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(old, fixtures::generated(1, 1, 100_000).body);

    // The promotion's store and its check run on tasks: let them end.
    for _ in 0..100 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(
        served(&cache, "k").await,
        Some(2),
        "the older streamed entry replaced the newer one"
    );
}
