//! Targeted cache-control (RFC 9213), partial content (RFC 9111 §3.3,
//! §3.4), `HEAD` updating a stored `GET` (§4.3.5) and `Age` as the
//! working group reads it, against a real origin on loopback.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use respcache_http::{CacheBody, ManualClock, Options};
use support::{Got, Origin, get, request, response, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_targeted_field_governs_a_shared_cache_and_an_invalid_one_does_not() {
    let origin = Origin::start(|seen, n| {
        let (cc, cdn) = match seen.path.as_str() {
            "/no-store" => ("no-store", "max-age=600"),
            "/private" => ("private", "max-age=600"),
            "/broken" => ("no-store", "max-age=600, ="),
            "/decimal" => ("max-age=600", "max-age=1.5"),
            _ => ("max-age=600", "no-store"),
        };
        let mut r = response(
            200,
            &[("cache-control", cc), ("cdn-cache-control", cdn)],
            "",
        );
        *r.body_mut() = respcache_http::full(format!("{} #{n}", seen.path));
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let shared = support::fs_cache(dir.path(), Options::default());
    let twice = |cache, path: &'static str| {
        let url = origin.url(path);
        async move {
            send(cache, get(&url, &[])).await;
            send(cache, get(&url, &[])).await
        }
    };
    for path in ["/no-store", "/private"] {
        let second = twice(&shared, path).await;
        assert!(
            second.is_hit(),
            "{path}: CDN-Cache-Control governs: {}",
            second.cache_status()
        );
        assert_eq!(
            second.header("cache-control").unwrap(),
            if path == "/private" {
                "private"
            } else {
                "no-store"
            },
            "the browser's field is passed on untouched"
        );
        assert!(
            second.header("cdn-cache-control").is_some(),
            "so is the targeted one"
        );
    }
    let second = twice(&shared, "/cdn-no-store").await;
    assert!(
        !second.is_hit(),
        "the targeted no-store wins: {}",
        second.cache_status()
    );
    let second = twice(&shared, "/broken").await;
    assert!(
        !second.is_hit(),
        "an invalid targeted field is ignored: {}",
        second.cache_status()
    );
    // Valid, but its max-age is no integer: no lifetime, and Cache-Control
    // no longer counts.
    let second = twice(&shared, "/decimal").await;
    assert!(!second.is_hit(), "{}", second.cache_status());

    let dir = tempfile::tempdir().unwrap();
    let private = support::fs_cache(
        dir.path(),
        Options {
            shared: false,
            ..Options::default()
        },
    );
    let second = twice(&private, "/no-store").await;
    assert!(
        !second.is_hit(),
        "a private cache ignores targeted fields: {}",
        second.cache_status()
    );
    let second = twice(&private, "/cdn-no-store").await;
    assert!(second.is_hit(), "{}", second.cache_status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_field_named_for_this_cache_comes_first() {
    let origin = Origin::start(|_, _| {
        response(
            200,
            &[
                ("cdn-cache-control", "no-store"),
                ("respcache-cache-control", "max-age=600"),
            ],
            "mine",
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        targeted_fields: vec![
            http::HeaderName::from_static("respcache-cache-control"),
            http::header::CDN_CACHE_CONTROL,
        ],
        ..Options::default()
    };
    let cache = support::fs_cache(dir.path(), options);
    send(&cache, get(&origin.url("/x"), &[])).await;
    assert!(send(&cache, get(&origin.url("/x"), &[])).await.is_hit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_age_that_is_not_one_integer_is_ignored_not_a_reason_to_be_stale() {
    let origin = Origin::start(|seen, _| {
        let age = &seen.path[1..];
        response(
            200,
            &[("cache-control", "max-age=600"), ("age", age)],
            "aged",
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    for (age, fresh) in [
        ("abc", true),
        ("7200.0", true),
        ("0,7200", true),
        ("7200,0", false),
    ] {
        let url = origin.url(&format!("/{age}"));
        send(&cache, get(&url, &[])).await;
        let second = send(&cache, get(&url, &[])).await;
        assert_eq!(
            second.is_hit(),
            fresh,
            "Age: {age}: {}",
            second.cache_status()
        );
    }
}

/// Byte `i` of the test representation.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(131) ^ (i >> 11)) as u8
}

/// Bytes `first..=last` of the test representation.
fn bytes(first: u64, last: u64) -> Bytes {
    (first..=last).map(byte_at).collect::<Vec<_>>().into()
}

/// An origin that answers ranges of a `total`-byte representation with
/// `206`, and anything else with the whole, tagged `etag` (none when
/// empty).
async fn ranged_origin(total: u64, etag: &'static str) -> Origin {
    Origin::start(move |seen, _| {
        let mut builder = Response::builder().header("cache-control", "max-age=600");
        if !etag.is_empty() {
            builder = builder.header("etag", etag);
        }
        let range = seen
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .map(|(a, b)| {
                (
                    a.parse::<u64>().unwrap(),
                    b.parse::<u64>().unwrap().min(total - 1),
                )
            });
        let response: Response<CacheBody> = match range {
            Some((first, last)) => builder
                .status(206)
                .header("content-range", format!("bytes {first}-{last}/{total}"))
                .body(respcache_http::full(bytes(first, last)))
                .unwrap(),
            None => builder
                .body(respcache_http::full(bytes(0, total - 1)))
                .unwrap(),
        };
        response
    })
    .await
}

async fn range(
    cache: &respcache_http::HttpCache<impl respcache_http::Storage>,
    url: &str,
    spec: &str,
) -> Got {
    send(cache, get(url, &[("range", spec)])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_only_asks_for_ranges_fills_the_cache() {
    let total = 300_000;
    let origin = ranged_origin(total, "\"v1\"").await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let url = origin.url("/video");

    let first = range(&cache, &url, "bytes=0-99999").await;
    assert_eq!(first.status, 206);
    assert!(first.body == bytes(0, 99_999));
    // Inside the stored part: from the cache, the right bytes.
    let inside = range(&cache, &url, "bytes=1000-1999").await;
    assert!(inside.is_hit(), "{}", inside.cache_status());
    assert_eq!(
        inside.header("content-range"),
        Some("bytes 1000-1999/300000")
    );
    assert!(inside.body == bytes(1000, 1999));
    // Across a part's end: the origin.
    let across = range(&cache, &url, "bytes=99990-100009").await;
    assert!(!across.is_hit(), "{}", across.cache_status());
    assert!(across.body == bytes(99_990, 100_009));
    let before = origin.requests();
    range(&cache, &url, "bytes=100000-199999").await;
    range(&cache, &url, "bytes=200000-299999").await;
    assert_eq!(origin.requests(), before + 2);

    // Covered: the parts become the whole, and the whole answers both a
    // plain GET and any range, without the origin.
    let whole = wait_for_hit(&cache, &url).await;
    assert_eq!(whole.status, 200);
    assert!(
        whole.body == bytes(0, total - 1),
        "the combined body differs"
    );
    let spanning = range(&cache, &url, "bytes=99990-100009").await;
    assert!(spanning.is_hit(), "{}", spanning.cache_status());
    assert!(spanning.body == bytes(99_990, 100_009));
    assert_eq!(origin.requests(), before + 2);
}

/// GETs `url` until it is a hit (the parts are combined in the
/// background).
async fn wait_for_hit(
    cache: &respcache_http::HttpCache<impl respcache_http::Storage>,
    url: &str,
) -> Got {
    for _ in 0..200 {
        let mut got = send(cache, get(url, &[("cache-control", "only-if-cached")])).await;
        if got.status == 200 {
            got.headers.remove("age");
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the parts were never combined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_without_a_strong_validator_are_served_but_never_combined() {
    let origin = ranged_origin(20, "").await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let url = origin.url("/untagged");
    range(&cache, &url, "bytes=0-9").await;
    range(&cache, &url, "bytes=10-19").await;
    let again = range(&cache, &url, "bytes=12-15").await;
    assert!(again.is_hit(), "{}", again.cache_status());
    assert!(again.body == bytes(12, 15));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let whole = send(&cache, get(&url, &[("cache-control", "only-if-cached")])).await;
    assert_eq!(whole.status, 504, "combined parts that share no validator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_of_another_version_drops_the_old_parts() {
    let versions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let origin = Origin::start({
        let versions = versions.clone();
        move |seen, _| {
            // The first answer is of the old version, every later one of
            // the new; each version's bytes are its own letter.
            let version = versions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (etag, letter) = if version == 0 {
                ("\"old\"", b'o')
            } else {
                ("\"new\"", b'n')
            };
            let (first, last) = if seen.headers["range"] == "bytes=0-4" {
                (0, 4)
            } else {
                (5, 9)
            };
            Response::builder()
                .status(206)
                .header("cache-control", "max-age=600")
                .header("etag", etag)
                .header("content-range", format!("bytes {first}-{last}/10"))
                .body(respcache_http::full(vec![letter; 5]))
                .unwrap()
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let url = origin.url("/changed");
    assert_eq!(range(&cache, &url, "bytes=0-4").await.body, "ooooo");
    assert_eq!(range(&cache, &url, "bytes=5-9").await.body, "nnnnn");
    // The old part went when the new version's came: asking for it again
    // goes to the origin, and what is stored from then on is all new.
    let again = range(&cache, &url, "bytes=0-4").await;
    assert!(
        !again.is_hit(),
        "a part of the old version was served: {}",
        again.cache_status()
    );
    assert_eq!(again.body, "nnnnn");
    let whole = wait_for_hit(&cache, &url).await;
    assert_eq!(
        whole.body, "nnnnnnnnnn",
        "two versions were combined into one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_or_410_to_a_head_updates_the_stored_get() {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Arc::new(clock.clone()),
        ..Options::default()
    };
    let origin = Origin::start(|seen, _| {
        if seen.method == http::Method::HEAD {
            let status = if seen.path == "/gone" { 410 } else { 200 };
            return response(
                status,
                &[("cache-control", "max-age=1000"), ("x-gen", "2")],
                "",
            );
        }
        response(
            200,
            &[("cache-control", "max-age=1"), ("x-gen", "1")],
            "body",
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), options);
    for (path, head_status) in [("/here", 200), ("/gone", 410)] {
        let url = origin.url(path);
        send(&cache, get(&url, &[])).await;
        clock.advance(Duration::from_secs(5));
        let head = send(&cache, request("HEAD", &url, &[])).await;
        assert_eq!(
            head.status, head_status,
            "{path}: the client hears the origin"
        );
        assert_eq!(origin.seen().last().unwrap().method, http::Method::HEAD);
        let after = send(&cache, get(&url, &[])).await;
        assert!(
            after.is_hit(),
            "{path}: the HEAD made it fresh: {}",
            after.cache_status()
        );
        assert_eq!(after.header("x-gen"), Some("2"), "{path}");
        assert_eq!(after.body, "body", "{path}: the stored body stays");
    }
}
