//! What the tiered backend does with its two tiers: promotion, writes and
//! deletes to both, damage in either tier, and a near tier that refuses.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_conformance::{Damage, damage_file, fixtures};
use respcache_core::{CacheManager, HttpResponse, StreamingCacheManager};
use respcache_fs::StreamingManager;
use respcache_memory::MemoryManager;
use respcache_tiered::TieredManager;

fn memory() -> MemoryManager {
    MemoryManager::builder(64 << 20)
        .max_body_size(1 << 20)
        .build()
}

async fn store_far<M: CacheManager>(far: &M, key: &str, response: &HttpResponse) {
    far.put(key.into(), response.clone(), fixtures::policy_for(response))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn reads_promote_what_the_far_tier_returns_for_the_promoted_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TieredManager::new(memory(), StreamingManager::new(dir.path().into()));
    let entry = fixtures::generated(1, 1, 10_000);
    store_far(cache.far(), "buffered", &entry).await;
    store_far(cache.far(), "streamed", &entry).await;

    let (back, _) = cache.get("buffered").await.unwrap().expect("a far hit");
    assert_eq!(back, entry);
    assert_eq!(
        cache.near().get("buffered").await.unwrap().map(|(r, _)| r),
        Some(entry.clone())
    );

    let streamed = cache
        .get_stream_response("streamed")
        .await
        .unwrap()
        .expect("a far hit");
    assert!(streamed.body().is_near(), "streamed through the near tier");
    assert_eq!(
        streamed.into_body().collect().await.unwrap().to_bytes(),
        entry.body
    );
    assert_eq!(
        cache.near().get("streamed").await.unwrap().map(|(r, _)| r),
        Some(entry.clone())
    );
    let hit = cache
        .get_stream_response("streamed")
        .await
        .unwrap()
        .expect("a near hit");
    assert!(hit.body().is_near());

    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(
        cache.near().get("buffered").await.unwrap().is_none(),
        "promoted for 60 s"
    );
    assert!(
        cache.get("buffered").await.unwrap().is_some(),
        "the far tier still has it"
    );
}

#[tokio::test]
async fn writes_go_to_both_tiers_and_deletes_remove_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TieredManager::new(memory(), StreamingManager::new(dir.path().into()));
    let entry = fixtures::generated(2, 1, 10_000);
    cache
        .put("k".into(), entry.clone(), fixtures::policy_for(&entry))
        .await
        .unwrap();
    assert!(cache.near().get("k").await.unwrap().is_some());
    assert!(cache.far().get("k").await.unwrap().is_some());

    let streamed = fixtures::generated(2, 2, 100_000);
    let origin = http::Response::from_parts(
        streamed.parts().unwrap(),
        http_body_util::Full::new(streamed.body.clone()),
    );
    let response = cache
        .put_stream(
            "s".into(),
            origin,
            fixtures::policy_for(&streamed),
            streamed.url.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        streamed.body
    );
    for tier in [
        &cache.near().get("s").await.unwrap(),
        &cache.far().get("s").await.unwrap(),
    ] {
        assert_eq!(tier.as_ref().map(|(r, _)| &r.body), Some(&streamed.body));
    }

    cache.delete("k").await.unwrap();
    cache.delete("s").await.unwrap();
    for key in ["k", "s"] {
        assert!(cache.near().get(key).await.unwrap().is_none());
        assert!(cache.far().get(key).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_write_the_near_tier_refuses_leaves_no_older_copy_there() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TieredManager::new(memory(), StreamingManager::new(dir.path().into()));
    let small = fixtures::generated(3, 1, 1000);
    let large = fixtures::generated(3, 2, 2 << 20);
    cache
        .put("k".into(), small.clone(), fixtures::policy_for(&small))
        .await
        .unwrap();
    cache
        .put("k".into(), large.clone(), fixtures::policy_for(&large))
        .await
        .unwrap();
    let (back, _) = cache.get("k").await.unwrap().expect("stored");
    assert_eq!(
        fixtures::verify_generated(3, &back),
        Ok(2),
        "the older, smaller copy was served"
    );
}

/// fs in front of fs, so that the near tier can be damaged too.
fn two_dirs() -> (
    tempfile::TempDir,
    TieredManager<StreamingManager, StreamingManager>,
) {
    let dir = tempfile::tempdir().unwrap();
    let near = StreamingManager::new(dir.path().join("near"));
    let far = StreamingManager::new(dir.path().join("far"));
    (dir, TieredManager::new(near, far))
}

async fn damage(tier: &StreamingManager, key: &str) {
    let path = tier.body_path(key).await.unwrap().expect("stored");
    damage_file(&path, Damage::FlipBodyByte).unwrap();
}

#[tokio::test]
async fn a_damaged_near_entry_is_a_miss_there_and_the_far_copy_is_served() {
    let (_dir, cache) = two_dirs();
    let entry = fixtures::generated(4, 1, 100_000);
    cache
        .put("k".into(), entry.clone(), fixtures::policy_for(&entry))
        .await
        .unwrap();
    damage(cache.near(), "k").await;
    let (back, _) = cache.get("k").await.unwrap().expect("the far copy");
    assert_eq!(back, entry);
    assert_eq!(
        cache.near().get("k").await.unwrap().map(|(r, _)| r),
        Some(entry),
        "promoted again, whole"
    );
}

#[tokio::test]
async fn a_damaged_far_entry_is_a_miss_and_never_promoted() {
    let (_dir, cache) = two_dirs();
    // Different bodies: fs links identical ones to one file.
    for (generation, key) in [(1, "buffered"), (2, "streamed")] {
        store_far(
            cache.far(),
            key,
            &fixtures::generated(5, generation, 300_000),
        )
        .await;
        damage(cache.far(), key).await;
    }
    assert!(cache.get("buffered").await.unwrap().is_none());
    match cache.get_stream("streamed").await.unwrap() {
        None => {}
        Some((response, _)) => {
            let read: Result<Bytes, _> = response.into_body().collect().await.map(|c| c.to_bytes());
            assert!(read.is_err(), "a damaged far body streamed to its end");
        }
    }
    for key in ["buffered", "streamed"] {
        assert!(
            cache.near().get(key).await.unwrap().is_none(),
            "{key} was promoted"
        );
        assert!(cache.get(key).await.unwrap().is_none(), "{key} was served");
    }
}
