//! Behaviour particular to `StreamingManager`, beyond the conformance suite.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_conformance::{bytes_below, fixtures};
use respcache_core::{CacheError, CacheManager, CommitWatch, StoreHints, StreamingCacheManager};
use respcache_fs::StreamingManager;

fn body_of(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

async fn put(manager: &StreamingManager, key: &str, body: Bytes) {
    let response = fixtures::response(body);
    let policy = fixtures::policy_for(&response);
    manager
        .put(key.into(), response, policy)
        .await
        .expect("put");
}

#[tokio::test]
async fn identical_bodies_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::new(dir.path().into());
    let body = body_of(1024 * 1024, 1);
    for key in ["a", "b", "c"] {
        put(&manager, key, body.clone()).await;
    }
    let held = bytes_below(dir.path()).unwrap();
    assert!(
        held < 1024 * 1024 + 64 * 1024,
        "three equal bodies take {held} bytes"
    );
    for key in ["a", "b", "c"] {
        manager.delete(key).await.unwrap();
    }
    assert!(
        bytes_below(dir.path()).unwrap() == 0,
        "deleting every key frees every byte"
    );
}

#[tokio::test]
async fn least_recently_used_entries_are_evicted_beyond_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::builder(dir.path().into())
        .max_size(1024 * 1024)
        .build();
    for i in 0..8u8 {
        put(&manager, &format!("k{i}"), body_of(200 * 1024, i)).await;
        // k0 is read after every put: it is the most recently used.
        assert!(
            manager.get("k0").await.unwrap().is_some(),
            "k0 evicted after put {i}"
        );
    }
    let mut present = Vec::new();
    for i in 0..8 {
        if manager.get(&format!("k{i}")).await.unwrap().is_some() {
            present.push(i);
        }
    }
    assert!(
        present.contains(&0),
        "the most recently used entry was evicted: {present:?}"
    );
    assert!(
        !present.contains(&1),
        "the least recently used entry survived: {present:?}"
    );
    assert!(
        present.len() * 200 * 1024 <= 1024 * 1024,
        "{present:?} exceed max_size"
    );
    assert!(bytes_below(dir.path()).unwrap() <= 1024 * 1024 + 64 * 1024);
}

/// Puts `body` under `key`, worth keeping for `keep`.
async fn put_keeping(manager: &StreamingManager, key: &str, body: Bytes, keep: Duration) {
    let response = fixtures::response(body);
    let policy = fixtures::policy_for(&response);
    let hints = StoreHints::keep_for(keep);
    manager
        .put_with(key.into(), response, policy, hints)
        .await
        .expect("put");
}

#[tokio::test]
async fn gc_removes_entries_past_the_lifetime_they_were_stored_with() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::new(dir.path().into());
    put_keeping(&manager, "spent", body_of(4096, 1), Duration::ZERO).await;
    put_keeping(
        &manager,
        "kept",
        body_of(4096, 2),
        Duration::from_secs(3600),
    )
    .await;
    put(&manager, "unsaid", body_of(4096, 3)).await;
    // A refreshed head brings its own lifetime.
    let (response, policy) = manager.get("kept").await.unwrap().unwrap();
    let renewed = manager
        .update_head_with(
            "kept",
            response.parts().unwrap(),
            policy,
            StoreHints::keep_for(Duration::ZERO),
        )
        .await
        .unwrap();
    assert!(renewed);
    put_keeping(&manager, "renewed", body_of(4096, 4), Duration::ZERO).await;
    let (response, policy) = manager.get("renewed").await.unwrap().unwrap();
    let hints = StoreHints::keep_for(Duration::from_secs(3600));
    assert!(
        manager
            .update_head_with("renewed", response.parts().unwrap(), policy, hints)
            .await
            .unwrap()
    );

    let report = manager.gc().await.unwrap();
    assert_eq!(report.expired, 2, "{report:?}");
    assert!(manager.get("spent").await.unwrap().is_none());
    assert!(
        manager.get("kept").await.unwrap().is_none(),
        "its 304 said it was worth nothing more"
    );
    assert!(
        manager.get("renewed").await.unwrap().is_some(),
        "its 304 renewed it"
    );
    assert!(
        manager.get("unsaid").await.unwrap().is_some(),
        "no lifetime given, none enforced"
    );
    assert_eq!(
        manager.gc().await.unwrap().contents,
        0,
        "the expired bodies went with them"
    );
}

#[tokio::test]
async fn eviction_takes_entries_past_their_lifetime_before_recently_unused_ones() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::builder(dir.path().into())
        .max_size(1024 * 1024)
        .build();
    put_keeping(
        &manager,
        "old",
        body_of(300 * 1024, 1),
        Duration::from_secs(3600),
    )
    .await;
    put_keeping(&manager, "spent", body_of(300 * 1024, 2), Duration::ZERO).await;
    put_keeping(
        &manager,
        "new",
        body_of(300 * 1024, 3),
        Duration::from_secs(3600),
    )
    .await;
    // The spent entry is the most recently used: by recency alone it
    // would be the last to go.
    assert!(manager.get("spent").await.unwrap().is_some());
    // A fourth entry passes the limit: the spent one goes.
    put_keeping(
        &manager,
        "newest",
        body_of(300 * 1024, 4),
        Duration::from_secs(3600),
    )
    .await;
    assert!(manager.get("spent").await.unwrap().is_none());
    for key in ["old", "new", "newest"] {
        assert!(
            manager.get(key).await.unwrap().is_some(),
            "{key} was evicted"
        );
    }
}

#[tokio::test]
async fn gc_removes_temp_files_of_dead_writers_and_unused_bodies() {
    let dir = tempfile::tempdir().unwrap();
    // No background gc: this test counts what its own gc removes.
    let manager = StreamingManager::builder(dir.path().into())
        .gc_at_start(false)
        .build();
    put(&manager, "kept", body_of(1000, 2)).await;
    let base = manager.cache_dir();

    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let dead = base.join("tmp").join(format!("{dead_pid}-leftover.body"));
    std::fs::write(&dead, vec![0u8; 50_000]).unwrap();
    let live = base
        .join("tmp")
        .join(format!("{}-in-flight.body", std::process::id()));
    std::fs::write(&live, b"being written").unwrap();
    let orphan = base.join("content").join("0".repeat(64));
    std::fs::write(&orphan, vec![1u8; 50_000]).unwrap();

    let report = manager.gc().await.unwrap();
    assert_eq!((report.temp_files, report.contents), (1, 1), "{report:?}");
    assert!(!dead.exists() && !orphan.exists());
    assert!(live.exists(), "a live writer's temp file was removed");
    let kept = manager
        .get("kept")
        .await
        .unwrap()
        .expect("gc kept the entry");
    assert_eq!(kept.0.body, body_of(1000, 2));
}

#[tokio::test]
async fn metadata_of_another_format_version_is_a_miss_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::new(dir.path().into());
    put(&manager, "k", body_of(10, 3)).await;
    let path = manager.metadata_path("k");
    std::fs::write(&path, br#"{"format": 99, "from": "the future"}"#).unwrap();
    assert!(manager.get("k").await.unwrap().is_none());
    assert!(manager.get_stream("k").await.unwrap().is_none());
    assert!(path.exists(), "another version's entry was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_under_way_count_toward_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::builder(dir.path().into())
        .max_size(1024 * 1024)
        .build();
    let template = fixtures::response(Bytes::new());
    let start = |key: &str| {
        let (feed, origin) = fixtures::channel_body();
        let response = template.parts().unwrap().into_response(origin);
        let putting = manager.put_stream(
            key.into(),
            response,
            fixtures::policy_for(&template),
            template.url.clone(),
        );
        (feed, putting)
    };
    // An endless stream, 900 KiB in: held in a temporary file.
    let (endless, putting) = start("endless");
    let endless_body = putting.await.unwrap().into_body();
    let reading = tokio::spawn(endless_body.collect());
    for i in 0..9u8 {
        endless.send(Ok(body_of(100 * 1024, i))).await.unwrap();
    }
    // A second store of 300 KiB would take the budget past 1 MiB: it is
    // abandoned, and its caller still gets every byte.
    let (second, putting) = start("second");
    let second_response = putting.await.unwrap();
    let commit = second_response
        .extensions()
        .get::<CommitWatch>()
        .cloned()
        .expect("a commit watch");
    let second_body = second_response.into_body();
    let second_reading = tokio::spawn(second_body.collect());
    let sent = body_of(300 * 1024, 42);
    for chunk in sent.chunks(64 * 1024) {
        second
            .send(Ok(Bytes::copy_from_slice(chunk)))
            .await
            .unwrap();
    }
    drop(second);
    let got = second_reading.await.unwrap().unwrap().to_bytes();
    assert_eq!(got, sent, "the caller's body is whole");
    assert!(!commit.committed().await, "committed past the budget");
    assert!(
        manager.get("second").await.unwrap().is_none(),
        "stored past the budget"
    );
    drop(endless);
    reading.await.unwrap().unwrap();
    assert!(
        manager.get("endless").await.unwrap().is_some(),
        "900 KiB fit"
    );
    // Both writers are done: nothing counts as under way any more, and a
    // small store fits again.
    put(&manager, "small", body_of(50 * 1024, 7)).await;
    assert!(manager.get("small").await.unwrap().is_some());
}

#[tokio::test]
async fn bodies_over_max_body_size_pass_through_uncached() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::builder(dir.path().into())
        .max_body_size(100_000)
        .build();
    let big = fixtures::response(body_of(300_000, 4));
    let err = manager
        .put("big".into(), big.clone(), fixtures::policy_for(&big))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<CacheError>(),
            Some(CacheError::TooLarge { .. })
        ),
        "{err}"
    );

    let origin = fixtures::scripted_body(fixtures::irregular_frames(&big.body));
    let response = manager
        .put_stream(
            "big".into(),
            big.parts().unwrap().into_response(origin),
            fixtures::policy_for(&big),
            big.url.clone(),
        )
        .await
        .unwrap();
    let seen = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(seen, big.body, "the caller must get the whole body");
    assert!(
        manager.get("big").await.unwrap().is_none(),
        "a body over the limit was stored"
    );
}

#[tokio::test]
async fn a_cache_that_cannot_write_still_streams_the_body_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    // The root is a file: no directory can be made under it.
    let root = dir.path().join("not-a-directory");
    std::fs::write(&root, b"in the way").unwrap();
    let manager = StreamingManager::new(root);
    let original = fixtures::generated(1, 1, 2 * 1024 * 1024);
    let origin = fixtures::scripted_body(fixtures::irregular_frames(&original.body));
    let response = manager
        .put_stream(
            "k".into(),
            original.parts().unwrap().into_response(origin),
            fixtures::policy_for(&original),
            original.url.clone(),
        )
        .await
        .expect("put_stream answers even when the cache cannot write");
    let seen = response
        .into_body()
        .collect()
        .await
        .expect("the body flows")
        .to_bytes();
    assert_eq!(seen, original.body);
    assert!(
        !matches!(manager.get("k").await, Ok(Some(_))),
        "nothing can have been stored"
    );
}

trait IntoResponse {
    fn into_response<B>(self, body: B) -> http::Response<B>;
}

impl IntoResponse for http::response::Parts {
    fn into_response<B>(self, body: B) -> http::Response<B> {
        http::Response::from_parts(self, body)
    }
}

#[tokio::test]
async fn a_cache_directory_removed_while_running_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StreamingManager::new(dir.path().join("cache"));
    put(&manager, "before", body_of(100, 5)).await;
    std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
    assert!(manager.get("before").await.unwrap().is_none());
    put(&manager, "after", body_of(100, 6)).await;
    let (hit, _) = manager
        .get("after")
        .await
        .unwrap()
        .expect("stored after the directory came back");
    assert_eq!(hit.body, body_of(100, 6));
}

#[tokio::test]
async fn gc_removes_unnamed_links_unless_another_format_might_name_them() {
    let dir = tempfile::tempdir().unwrap();
    put(
        &StreamingManager::new(dir.path().into()),
        "k",
        body_of(100, 7),
    )
    .await;
    // With no grace a link made a moment before its metadata would be fair
    // game, so this manager only runs gc, after every put has committed.
    let manager = StreamingManager::builder(dir.path().into())
        .orphan_link_grace(std::time::Duration::ZERO)
        .gc_at_start(false)
        .build();
    let base = manager.cache_dir();
    let orphan = base.join("links").join("left-by-a-crash");

    std::fs::write(&orphan, b"body").unwrap();
    let report = manager.gc().await.unwrap();
    assert_eq!(report.links, 1, "{report:?}");
    assert!(!orphan.exists(), "an unnamed link survived gc");

    // A future version's record shares the directory: its links are ones
    // this version cannot name, so none may go.
    std::fs::write(&orphan, b"body").unwrap();
    std::fs::write(
        base.join("metadata").join("66757475726500.json"),
        br#"{"format": 3}"#,
    )
    .unwrap();
    let report = manager.gc().await.unwrap();
    assert_eq!(report.links, 0, "{report:?}");
    assert!(orphan.exists(), "gc removed a link another format may name");
    assert!(
        manager.get("k").await.unwrap().is_some(),
        "gc broke a live entry"
    );
}

/// Which of the bodies `body_of(1000, version)` a streamed read of `key`
/// hands out, if the key is stored.
async fn version(manager: &StreamingManager, key: &str) -> Option<u8> {
    let response = manager.get_stream_response(key).await.expect("read")?;
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, body_of(1000, body[0]), "a body this test never wrote");
    Some(body[0])
}

#[tokio::test]
async fn another_managers_writes_are_seen_once_the_recheck_interval_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let writer = StreamingManager::new(dir.path().into());
    // A second manager on the same directory stands for another process:
    // it keeps its own entries in memory.
    let reader = |recheck| {
        StreamingManager::builder(dir.path().into())
            .recheck_interval(recheck)
            .build()
    };
    let (looks_every_time, looks_later) =
        (reader(Duration::ZERO), reader(Duration::from_secs(3600)));
    put(&writer, "k", body_of(1000, 1)).await;
    for manager in [&looks_every_time, &looks_later] {
        // Twice: the second read comes from memory.
        for _ in 0..2 {
            assert_eq!(version(manager, "k").await, Some(1));
        }
    }

    put(&writer, "k", body_of(1000, 2)).await;
    assert_eq!(
        version(&looks_every_time, "k").await,
        Some(2),
        "a zero interval looks at the metadata file on every read"
    );
    assert_eq!(
        version(&looks_later, "k").await,
        Some(1),
        "within the interval the version kept is served: the documented window"
    );
    writer.delete("k").await.unwrap();
    assert_eq!(version(&looks_every_time, "k").await, None);
    // The writer's own process sees its own writes at once.
    put(&writer, "k", body_of(1000, 3)).await;
    assert_eq!(version(&writer, "k").await, Some(3));
    put(&writer, "k", body_of(1000, 4)).await;
    assert_eq!(version(&writer, "k").await, Some(4));
}

/// How many frames a streamed read of `key` hands out, and its bytes.
async fn frames(manager: &StreamingManager, key: &str) -> Option<(usize, Vec<u8>)> {
    let response = manager.get_stream_response(key).await.expect("read")?;
    let mut body = response.into_body();
    let (mut count, mut bytes) = (0, Vec::new());
    while let Some(frame) = body.frame().await {
        let data = frame.expect("a sound body").into_data().expect("data");
        count += 1;
        bytes.extend_from_slice(&data);
    }
    Some((count, bytes))
}

#[tokio::test]
async fn bodies_up_to_the_hot_limit_are_checked_once_then_served_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mib = 1024 * 1024;
    let manager = StreamingManager::builder(dir.path().into())
        .recheck_interval(Duration::from_secs(3600))
        // Room for one 1 MiB body and a bit.
        .hot_body_bytes(mib + 1000)
        .build();
    let (good, other) = (body_of(mib, 1), body_of(mib, 2));
    put(&manager, "good", good.clone()).await;
    put(&manager, "other", other.clone()).await;
    put(&manager, "bad", body_of(mib, 3)).await;

    // Damaged before anything read it: the read that would keep it checks
    // it, and it is a miss, never the damaged bytes.
    let bad = manager.body_path("bad").await.unwrap().unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes[mib / 2] ^= 1;
    std::fs::write(&bad, bytes).unwrap();
    assert!(manager.get_stream_response("bad").await.unwrap().is_none());

    // Read whole, checked, kept: one frame, the stored bytes.
    assert_eq!(frames(&manager, "good").await, Some((1, good.to_vec())));
    // Kept: served from memory, the file is no longer read.
    let link = manager.body_path("good").await.unwrap().unwrap();
    std::fs::remove_file(&link).unwrap();
    assert_eq!(frames(&manager, "good").await, Some((1, good.to_vec())));
    // No room left in the budget: the other body is streamed in chunks,
    // every time.
    for _ in 0..2 {
        let (count, bytes) = frames(&manager, "other").await.unwrap();
        assert!(count > 1, "streamed, not kept: {count} frame(s)");
        assert_eq!(bytes, other);
    }
}

/// Slow readers and slow origins must not hold the blocking pool: with
/// two blocking threads, eight streamed reads that stop reading and four
/// streamed stores whose origin stalls still leave room for a plain get.
#[test]
fn stalled_streams_hold_no_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let manager = StreamingManager::builder(dir.path().into())
            .chunk_size(16 * 1024)
            // Streamed, not read whole into memory.
            .hot_body_limit(64 * 1024)
            .build();
        put(&manager, "big", body_of(1024 * 1024, 3)).await;
        put(&manager, "small", body_of(100, 4)).await;
        let stalled = async {
            let mut readers = Vec::new();
            for _ in 0..8 {
                let (response, _) = manager.get_stream("big").await.unwrap().expect("a hit");
                let mut body = response.into_body();
                let first = body.frame().await.expect("a first chunk").unwrap();
                assert!(!first.into_data().unwrap().is_empty());
                readers.push(body); // ... and never read again.
            }
            let template = fixtures::response(Bytes::new());
            let mut origins = Vec::new();
            for i in 0..4 {
                let (feed, origin) = fixtures::channel_body();
                let response = manager
                    .put_stream(
                        format!("stalled{i}"),
                        template.parts().unwrap().into_response(origin),
                        fixtures::policy_for(&template),
                        template.url.clone(),
                    )
                    .await
                    .unwrap();
                feed.send(Ok(body_of(1000, 5))).await.unwrap();
                let mut body = response.into_body();
                body.frame().await.expect("the first chunk").unwrap();
                origins.push((feed, body)); // The origin sends no more.
            }
            let (small, _) = manager.get("small").await.unwrap().expect("a hit");
            assert_eq!(small.body, body_of(100, 4));
            (readers, origins)
        };
        // Not a speed target: a pool held by the stalled streams never
        // answers at all.
        tokio::time::timeout(Duration::from_secs(60), stalled)
            .await
            .expect("a get waited behind stalled streams");
    });
}
