//! `Options::x_cache_headers`: `x-cache` and `x-cache-lookup` as
//! `http-cache` sets them, against a real origin on loopback and the fs
//! backend.

mod support;

use std::sync::Arc;
use std::time::Duration;

use respcache_http::{ManualClock, Options};
use support::{Got, Origin, get, response, send};

fn pair(got: &Got) -> (Option<&str>, Option<&str>) {
    (got.header("x-cache"), got.header("x-cache-lookup"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cache_says_where_the_body_came_from_and_lookup_whether_an_entry_was_found() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let options = Options {
        x_cache_headers: true,
        clock: Arc::new(clock.clone()),
        ..Options::default()
    };
    let cache = support::fs_cache(dir.path(), options);
    // 1: stored; 2: a 304 to the revalidation; 3: a new body.
    let origin = Origin::start(|_, n| match n {
        1 => response(
            200,
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("x-cache", "FROM-ORIGIN"),
            ],
            "body-1",
        ),
        2 => response(
            304,
            &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
            "",
        ),
        _ => response(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"v2\"")],
            "body-2",
        ),
    })
    .await;
    let url = origin.url("/r");

    let miss = send(&cache, get(&url, &[])).await;
    assert_eq!(
        pair(&miss),
        (Some("MISS"), Some("MISS")),
        "nothing stored yet"
    );
    assert_eq!(
        miss.headers.get_all("x-cache").iter().count(),
        1,
        "the origin's own x-cache is replaced"
    );

    let hit = send(&cache, get(&url, &[])).await;
    assert_eq!(
        pair(&hit),
        (Some("HIT"), Some("HIT")),
        "fresh: {}",
        hit.cache_status()
    );

    clock.advance(Duration::from_secs(2));
    let revalidated = send(&cache, get(&url, &[])).await;
    assert_eq!(revalidated.body, "body-1");
    assert_eq!(
        pair(&revalidated),
        (Some("HIT"), Some("HIT")),
        "a 304 serves the stored body: {}",
        revalidated.cache_status()
    );

    clock.advance(Duration::from_secs(2));
    let replaced = send(&cache, get(&url, &[])).await;
    assert_eq!(replaced.body, "body-2");
    assert_eq!(
        pair(&replaced),
        (Some("MISS"), Some("HIT")),
        "found, but the origin's new body is sent: {}",
        replaced.cache_status()
    );
    assert_eq!(origin.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_only_cache_status_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let origin =
        Origin::start(|_, _| response(200, &[("cache-control", "max-age=60")], "body")).await;
    let url = origin.url("/r");
    send(&cache, get(&url, &[])).await;
    let hit = send(&cache, get(&url, &[])).await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(pair(&hit), (None, None));
}
