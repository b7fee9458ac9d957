//! What the memory backend does beyond the conformance suite: lifetimes
//! from the caller's hints, hits that share the stored body, capacity that
//! counts heads, and streamed bodies too large to keep.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_core::{
    CacheError, CacheManager, CachePolicy, CommitWatch, HttpResponse, StoreHints,
    StreamingCacheManager,
};
use respcache_memory::MemoryManager;

fn url() -> url::Url {
    url::Url::parse("https://example.com/a").expect("a URL")
}

fn response(body: impl Into<Bytes>) -> (HttpResponse, CachePolicy) {
    let head = http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(body.into())
        .expect("a response");
    let request = http::Request::get(url().as_str())
        .body(())
        .expect("a request");
    let policy = CachePolicy::new(&request, &head);
    (HttpResponse::from_http(head, url()), policy)
}

#[tokio::test(start_paused = true)]
async fn an_entry_lives_as_long_as_the_hint_says() {
    let cache = MemoryManager::new(1 << 20);
    let (stored, policy) = response("short");
    let hints = StoreHints::keep_for(Duration::from_secs(60));
    cache
        .put_with("short".into(), stored.clone(), policy.clone(), hints)
        .await
        .unwrap();
    cache
        .put("forever".into(), stored.clone(), policy)
        .await
        .unwrap();

    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(
        cache.get("short").await.unwrap().is_some(),
        "within its lifetime"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        cache.get("short").await.unwrap().is_none(),
        "past its lifetime"
    );
    assert!(cache.get_stream("short").await.unwrap().is_none());
    assert_eq!(cache.len(), 1, "the expired entry was dropped when read");
    assert!(
        cache.get("forever").await.unwrap().is_some(),
        "no hint: until evicted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_head_update_carries_a_new_lifetime_and_expired_entries_can_be_swept() {
    let cache = MemoryManager::new(1 << 20);
    let (stored, policy) = response("body");
    let minute = StoreHints::keep_for(Duration::from_secs(60));
    for key in ["renewed", "swept"] {
        cache
            .put_with(key.into(), stored.clone(), policy.clone(), minute.clone())
            .await
            .unwrap();
    }
    tokio::time::advance(Duration::from_secs(50)).await;
    let head = stored.parts().unwrap();
    let hour = StoreHints::keep_for(Duration::from_secs(3600));
    assert!(
        cache
            .update_head_with("renewed", head, policy, hour)
            .await
            .unwrap()
    );
    tokio::time::advance(Duration::from_secs(20)).await;
    cache.remove_expired();
    assert_eq!(cache.len(), 1, "only the entry past its lifetime is swept");
    let (back, _) = cache.get("renewed").await.unwrap().expect("renewed");
    assert_eq!(back.body, "body");
}

#[tokio::test]
async fn hits_share_the_stored_bytes() {
    let cache = MemoryManager::new(1 << 20);
    let (stored, policy) = response(vec![7u8; 64 * 1024]);
    let at = stored.body.as_ptr();
    cache.put("k".into(), stored, policy).await.unwrap();

    let (buffered, _) = cache.get("k").await.unwrap().expect("a hit");
    assert_eq!(buffered.body.as_ptr(), at, "get copied the body");
    let streamed = cache
        .get_stream_response("k")
        .await
        .unwrap()
        .expect("a hit");
    let frame = streamed.into_body().frame().await.unwrap().unwrap();
    assert_eq!(
        frame.into_data().unwrap().as_ptr(),
        at,
        "get_stream_response copied the body"
    );
}

#[tokio::test]
async fn capacity_counts_heads_as_well_as_bodies() {
    let capacity = 1 << 20;
    let cache = MemoryManager::new(capacity);
    let (mut stored, policy) = response(Bytes::new());
    let big = http::HeaderValue::from_str(&"v".repeat(8 * 1024)).unwrap();
    stored.headers.insert("x-big", big);

    cache
        .put("0".into(), stored.clone(), policy.clone())
        .await
        .unwrap();
    assert!(
        cache.weight() > 16 * 1024,
        "an empty body under 8 KiB of headers (kept twice) weighs {}",
        cache.weight()
    );
    for i in 1..400 {
        cache
            .put(i.to_string(), stored.clone(), policy.clone())
            .await
            .unwrap();
    }
    assert!(cache.weight() <= capacity, "{} held", cache.weight());
    assert!(
        cache.len() < 400,
        "400 entries of 16 KiB of head each do not fit in 1 MiB; {} are held",
        cache.len()
    );
}

#[tokio::test]
async fn a_buffered_body_past_the_limit_is_refused() {
    let cache = MemoryManager::builder(1 << 20).max_body_size(1000).build();
    let (stored, policy) = response(vec![1u8; 1001]);
    let err = cache.put("k".into(), stored, policy).await.unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<CacheError>(),
            Some(CacheError::TooLarge {
                size: 1001,
                limit: 1000,
                ..
            })
        ),
        "{err}"
    );
    assert!(cache.get("k").await.unwrap().is_none());
}

/// A streamed origin of `frames` frames of `frame` bytes each.
fn origin(
    frames: usize,
    frame: usize,
) -> http::Response<http_body_util::StreamBody<impl futures_util::Stream<Item = FrameResult> + use<>>>
{
    let chunks =
        (0..frames).map(move |i| Ok(http_body::Frame::data(Bytes::from(vec![i as u8; frame]))));
    http::Response::builder()
        .header("cache-control", "max-age=60")
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )))
        .expect("a response")
}

type FrameResult = Result<http_body::Frame<Bytes>, std::convert::Infallible>;

#[tokio::test]
async fn a_streamed_body_past_the_limit_passes_through_and_is_not_kept() {
    let cache = MemoryManager::builder(64 << 20)
        .max_body_size(1 << 20)
        .build();
    let (_, policy) = response("");
    let put = cache
        .put_stream("big".into(), origin(40, 64 * 1024), policy.clone(), url())
        .await
        .unwrap();
    let commit = put
        .extensions()
        .get::<CommitWatch>()
        .cloned()
        .expect("a commit watch");
    let body = put.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 40 * 64 * 1024, "the caller gets the whole body");
    assert!(
        body.chunks(64 * 1024)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8))
    );
    assert!(!commit.committed().await, "nothing was stored");
    assert!(cache.get("big").await.unwrap().is_none());
    assert_eq!(cache.weight(), 0, "what was gathered was let go");

    // Up to the limit, the same origin is kept whole.
    let put = cache
        .put_stream("fits".into(), origin(16, 64 * 1024), policy, url())
        .await
        .unwrap();
    let commit = put
        .extensions()
        .get::<CommitWatch>()
        .cloned()
        .expect("a commit watch");
    let body = put.into_body().collect().await.unwrap().to_bytes();
    assert!(commit.committed().await);
    let (kept, _) = cache.get("fits").await.unwrap().expect("kept");
    assert_eq!(kept.body, body);
}

#[tokio::test]
async fn a_put_refused_for_its_size_removes_the_older_entry() {
    let cache = MemoryManager::builder(64 << 20)
        .max_body_size(1 << 20)
        .build();

    // Buffered: a revalidation got a new 200 too large to keep.
    let (older, policy) = response("older");
    cache.put("buffered".into(), older, policy).await.unwrap();
    let (newer, policy) = response(vec![1u8; (1 << 20) + 1]);
    cache
        .put("buffered".into(), newer, policy)
        .await
        .unwrap_err();
    assert!(
        cache.get("buffered").await.unwrap().is_none(),
        "the older entry is still served"
    );

    // Streamed: the body goes past the limit on its way through.
    let (older, policy) = response("older");
    cache
        .put("streamed".into(), older, policy.clone())
        .await
        .unwrap();
    let put = cache
        .put_stream("streamed".into(), origin(40, 64 * 1024), policy, url())
        .await
        .unwrap();
    let commit = put
        .extensions()
        .get::<CommitWatch>()
        .cloned()
        .expect("a commit watch");
    put.into_body().collect().await.unwrap();
    assert!(!commit.committed().await, "nothing was stored");
    assert!(
        cache.get("streamed").await.unwrap().is_none(),
        "the older entry is still served"
    );
}
