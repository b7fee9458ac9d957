//! The engine against a real HTTP origin on loopback, over the real fs and
//! cacache backends.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use respcache_http::{CacheMode, Clock, HttpCache, ManualClock, Options, Storage};
use support::{Gate, Origin, get, pattern, request, response, send};

/// Runs each named check over both backends, with default options.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = tempfile::tempdir().unwrap();
                super::$check(super::support::fs_cache(dir.path(), Default::default())).await;
            })*
        }
        mod cacache {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = tempfile::tempdir().unwrap();
                super::$check(super::support::cacache_cache(dir.path(), Default::default())).await;
            })*
        }
    };
}

/// Runs each named check over both backends, with a manual clock that
/// the check moves to make entries stale.
macro_rules! on_both_backends_in_time {
    ($($check:ident),* $(,)?) => {
        mod fs_in_time {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = tempfile::tempdir().unwrap();
                let (options, clock) = super::manual_time();
                super::$check(super::support::fs_cache(dir.path(), options), clock).await;
            })*
        }
        mod cacache_in_time {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let dir = tempfile::tempdir().unwrap();
                let (options, clock) = super::manual_time();
                super::$check(super::support::cacache_cache(dir.path(), options), clock).await;
            })*
        }
    };
}

/// Default options on a manual clock, and the clock.
fn manual_time() -> (Options, ManualClock) {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Arc::new(clock.clone()),
        ..Options::default()
    };
    (options, clock)
}

/// More than a second: enough to make `max-age=1` stale whatever the
/// sub-second part of the origin's `Date`.
const PAST_ONE_SECOND: Duration = Duration::from_secs(2);

on_both_backends_in_time!(
    a_fresh_response_is_stored_then_served_with_its_age,
    a_304_refreshes_the_stored_head_and_serves_the_stored_body,
    stale_while_revalidate_serves_stale_and_revalidates_once,
    stale_if_error_hides_a_5xx_but_must_revalidate_does_not,
);

on_both_backends!(
    vary_variants_are_kept_side_by_side,
    a_successful_unsafe_method_invalidates_the_url_and_its_location,
    a_post_response_naming_its_url_answers_later_gets,
    concurrent_misses_make_one_origin_request,
    responses_that_must_not_be_stored_are_not,
    head_is_answered_from_a_stored_get,
    the_client_s_own_conditions_are_answered_from_the_cache,
    a_range_is_served_from_a_stored_body,
    a_range_that_misses_reaches_the_origin_with_its_if_range,
    a_follower_reads_the_leader_s_response_as_it_arrives,
    a_follower_reads_on_when_the_leader_hangs_up,
    a_follower_of_another_variant_gets_its_own,
);

async fn a_fresh_response_is_stored_then_served_with_its_age<S: Storage>(
    cache: HttpCache<S>,
    clock: ManualClock,
) {
    let origin = Origin::start(|_, _| {
        let mut r = response(
            200,
            // Shareable, so a shared cache keeps its cookies.
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=1"),
            ],
            "hello",
        );
        r.headers_mut().append("set-cookie", "b=2".parse().unwrap());
        r
    })
    .await;
    let url = origin.url("/page");
    let miss = send(&cache, get(&url, &[])).await;
    assert_eq!(
        miss.cache_status(),
        "respcache; fwd=uri-miss; fwd-status=200; stored"
    );
    assert_eq!(miss.body, "hello");
    clock.advance(Duration::from_secs(7));
    let hit = send(&cache, get(&url, &[])).await;
    assert!(
        hit.cache_status().starts_with("respcache; hit; ttl="),
        "{}",
        hit.cache_status()
    );
    assert_eq!(hit.body, "hello");
    // Seven seconds in the cache, and less than one since the origin's
    // Date (whole seconds) when it arrived.
    assert_eq!(hit.header("age"), Some("7"));
    let cookies: Vec<_> = hit.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"], "repeated fields survive storage");
    assert_eq!(origin.requests(), 1);
    assert_eq!(cache.metrics().hits, 1);
}

async fn a_304_refreshes_the_stored_head_and_serves_the_stored_body<S: Storage>(
    cache: HttpCache<S>,
    clock: ManualClock,
) {
    let origin = Origin::start(|seen, n| match n {
        1 => response(
            200,
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("x-gen", "1"),
            ],
            "body-1",
        ),
        _ => {
            assert_eq!(seen.headers["if-none-match"], "\"v1\"");
            response(
                304,
                &[
                    ("cache-control", "max-age=60"),
                    ("etag", "\"v1\""),
                    ("x-gen", "2"),
                ],
                "",
            )
        }
    })
    .await;
    let url = origin.url("/r");
    send(&cache, get(&url, &[])).await;
    clock.advance(PAST_ONE_SECOND);
    let refreshed = send(&cache, get(&url, &[])).await;
    assert!(
        refreshed
            .cache_status()
            .contains("fwd=stale; fwd-status=304"),
        "{}",
        refreshed.cache_status()
    );
    assert_eq!(refreshed.status, 200);
    assert_eq!(refreshed.body, "body-1");
    assert_eq!(refreshed.header("x-gen"), Some("2"));
    let hit = send(&cache, get(&url, &[])).await;
    assert!(
        hit.is_hit(),
        "fresh again after the 304: {}",
        hit.cache_status()
    );
    assert_eq!(
        (hit.body.as_ref(), hit.header("x-gen")),
        (&b"body-1"[..], Some("2"))
    );
    assert_eq!(origin.requests(), 2);
}

async fn vary_variants_are_kept_side_by_side<S: Storage>(cache: HttpCache<S>) {
    let origin = Origin::start(|seen, _| {
        let body = match seen.headers.get("accept").map(|v| v.to_str().unwrap()) {
            Some("application/json") => "{}",
            _ => "<p>",
        };
        response(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept")],
            body,
        )
    })
    .await;
    let url = origin.url("/v");
    let json = [("accept", "application/json")];
    let html = [("accept", "text/html")];
    assert!(
        send(&cache, get(&url, &json))
            .await
            .cache_status()
            .contains("fwd=uri-miss")
    );
    let other = send(&cache, get(&url, &html)).await;
    assert!(
        other.cache_status().contains("fwd=vary-miss"),
        "{}",
        other.cache_status()
    );
    for _ in 0..2 {
        let j = send(&cache, get(&url, &json)).await;
        let h = send(&cache, get(&url, &html)).await;
        assert!(j.is_hit() && h.is_hit());
        assert_eq!(
            (j.body.as_ref(), h.body.as_ref()),
            (&b"{}"[..], &b"<p>"[..])
        );
    }
    assert_eq!(origin.requests(), 2, "one origin request per variant");
}

async fn a_post_response_naming_its_url_answers_later_gets<S: Storage>(cache: HttpCache<S>) {
    // The origin says which URL a POST's response represents in the
    // request's `x-location`, and how long it is fresh in `x-cc`.
    let origin = Origin::start(|seen, n| {
        let field = |name: &str| {
            seen.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let status = field("x-status").map_or(200, |s| s.parse().unwrap());
        let mut response = response(status, &[], "");
        if let Some(location) = field("x-location") {
            response
                .headers_mut()
                .insert("content-location", location.parse().unwrap());
        }
        if let Some(cc) = field("x-cc") {
            response
                .headers_mut()
                .insert("cache-control", cc.parse().unwrap());
        }
        *response.body_mut() = respcache_http::full(format!("{} {n}", seen.method));
        response
    })
    .await;
    let cases = [
        // (path, Content-Location, Cache-Control, reused by a GET)
        ("/form", Some("/form"), Some("max-age=60"), true),
        ("/error", Some("/error"), Some("max-age=60"), false),
        ("/abs", Some("ABSOLUTE"), Some("max-age=60"), true),
        ("/other", Some("/elsewhere"), Some("max-age=60"), false),
        ("/none", None, Some("max-age=60"), false),
        ("/heuristic", Some("/heuristic"), None, false),
        (
            "/nostore",
            Some("/nostore"),
            Some("max-age=60, no-store"),
            false,
        ),
    ];
    for (path, location, cc, reused) in cases {
        let url = origin.url(path);
        let absolute = url.clone();
        let mut headers = vec![];
        if let Some(location) = location {
            headers.push((
                "x-location",
                if location == "ABSOLUTE" {
                    absolute.as_str()
                } else {
                    location
                },
            ));
        }
        if let Some(cc) = cc {
            headers.push(("x-cc", cc));
        }
        if path == "/error" {
            headers.push(("x-status", "400"));
        }
        let posted = send(&cache, request("POST", &url, &headers)).await;
        let before = origin.requests();
        assert!(posted.body.starts_with(b"POST"), "{path}");
        assert_eq!(
            posted.cache_status().contains("stored"),
            reused,
            "{path}: {}",
            posted.cache_status()
        );
        let got = send(&cache, get(&url, &[])).await;
        assert_eq!(got.is_hit(), reused, "{path}: {}", got.cache_status());
        if reused {
            assert_eq!(got.body, posted.body, "{path}: the POST's response");
        } else {
            assert!(got.body.starts_with(b"GET"), "{path}: the origin's answer");
        }
        assert_eq!(origin.requests(), before + usize::from(!reused), "{path}");
    }

    // Mode NoStore stores nothing, POST responses included.
    let url = origin.url("/nostore-mode");
    let mut post = request(
        "POST",
        &url,
        &[("x-location", "/nostore-mode"), ("x-cc", "max-age=60")],
    );
    post.extensions_mut().insert(CacheMode::NoStore);
    let posted = send(&cache, post).await;
    assert!(
        !posted.cache_status().contains("stored"),
        "{}",
        posted.cache_status()
    );
    // This origin's GET answers are not storable: only the POST's could
    // make a hit here.
    assert!(!send(&cache, get(&url, &[])).await.is_hit());
}

async fn a_successful_unsafe_method_invalidates_the_url_and_its_location<S: Storage>(
    cache: HttpCache<S>,
) {
    let origin = Origin::start(|seen, _| match seen.method.as_str() {
        "POST" => response(201, &[("location", "/items/2")], "made"),
        _ => response(200, &[("cache-control", "max-age=60")], "item"),
    })
    .await;
    let (list, item) = (origin.url("/items"), origin.url("/items/2"));
    send(&cache, get(&list, &[])).await;
    send(&cache, get(&item, &[])).await;
    // Both are hits before the POST, so that "not a hit" after it means
    // the POST removed them.
    assert!(send(&cache, get(&list, &[])).await.is_hit());
    assert!(send(&cache, get(&item, &[])).await.is_hit());
    let posted = send(&cache, request("POST", &list, &[])).await;
    assert_eq!(
        posted.cache_status(),
        "respcache; fwd=method; fwd-status=201"
    );
    assert!(!send(&cache, get(&list, &[])).await.is_hit());
    assert!(
        !send(&cache, get(&item, &[])).await.is_hit(),
        "Location is invalidated too"
    );
    assert_eq!(origin.requests(), 5);

    // A query is keyed as sent, and a POST to it invalidates it.
    let quoted = origin.url("/items?name='x'");
    send(&cache, get(&quoted, &[])).await;
    assert!(send(&cache, get(&quoted, &[])).await.is_hit());
    send(&cache, request("POST", &quoted, &[])).await;
    assert!(!send(&cache, get(&quoted, &[])).await.is_hit());

    // A path not in normal form is neither cached nor served from the
    // entry of another spelling, but a POST to it invalidates that entry.
    let dotted = origin.url("/items/./3");
    send(&cache, get(&origin.url("/items/3"), &[])).await;
    assert!(
        send(&cache, get(&origin.url("/items/3"), &[]))
            .await
            .is_hit()
    );
    let bypassed = send(&cache, get(&dotted, &[])).await;
    assert!(
        bypassed.cache_status().contains("fwd=bypass"),
        "{}",
        bypassed.cache_status()
    );
    assert_eq!(origin.seen().pop().unwrap().path, "/items/./3");
    send(&cache, request("POST", &dotted, &[])).await;
    assert!(
        !send(&cache, get(&origin.url("/items/3"), &[]))
            .await
            .is_hit()
    );
}

async fn stale_while_revalidate_serves_stale_and_revalidates_once<S: Storage>(
    cache: HttpCache<S>,
    clock: ManualClock,
) {
    // The revalidation waits at the origin until the test has had its
    // stale hits.
    let gate = Gate::new();
    let origin = Origin::start_async({
        let gate = gate.clone();
        move |_, n| {
            let gate = gate.clone();
            Box::pin(async move {
                if n == 1 {
                    return response(
                        200,
                        &[("cache-control", "max-age=1, stale-while-revalidate=60")],
                        "old",
                    );
                }
                gate.opened().await;
                response(200, &[("cache-control", "max-age=60")], "new")
            })
        }
    })
    .await;
    let url = origin.url("/swr");
    send(&cache, get(&url, &[])).await;
    clock.advance(PAST_ONE_SECOND);
    for _ in 0..5 {
        let stale = send(&cache, get(&url, &[])).await;
        assert!(stale.is_hit(), "{}", stale.cache_status());
        assert!(
            stale.cache_status().contains("ttl=-"),
            "{}",
            stale.cache_status()
        );
        assert_eq!(stale.body, "old");
    }
    wait_for(async || origin.requests(), |n| *n == 2).await;
    assert_eq!(
        origin.requests(),
        2,
        "one background revalidation for five stale hits"
    );
    gate.open();
    let fresh = wait_for(
        || async { send(&cache, get(&url, &[])).await },
        |got| got.body == "new",
    )
    .await;
    assert_eq!(fresh.body, "new", "the revalidated response was stored");
    assert!(
        fresh.is_hit() && !fresh.cache_status().contains("ttl=-"),
        "{}",
        fresh.cache_status()
    );
    assert_eq!(origin.requests(), 2);
    assert!(cache.metrics().stale >= 5);
}

async fn stale_if_error_hides_a_5xx_but_must_revalidate_does_not<S: Storage>(
    cache: HttpCache<S>,
    clock: ManualClock,
) {
    let origin = Origin::start(|seen, n| {
        let cc = if seen.path == "/strict" {
            "max-age=1, stale-if-error=60, must-revalidate"
        } else {
            "max-age=1, stale-if-error=60"
        };
        if n <= 2 {
            response(200, &[("cache-control", cc)], "good")
        } else {
            response(503, &[], "down")
        }
    })
    .await;
    let (lenient, strict) = (origin.url("/lenient"), origin.url("/strict"));
    send(&cache, get(&lenient, &[])).await;
    send(&cache, get(&strict, &[])).await;
    clock.advance(PAST_ONE_SECOND);
    let hidden = send(&cache, get(&lenient, &[])).await;
    assert_eq!((hidden.status, hidden.body.as_ref()), (200, &b"good"[..]));
    assert!(
        hidden.cache_status().contains("fwd=stale; fwd-status=503"),
        "{}",
        hidden.cache_status()
    );
    let passed = send(&cache, get(&strict, &[])).await;
    assert_eq!((passed.status, passed.body.as_ref()), (503, &b"down"[..]));
}

async fn concurrent_misses_make_one_origin_request<S: Storage>(cache: HttpCache<S>) {
    // The origin answers once all ten requests are in.
    let gate = Gate::new();
    let origin = Origin::start_async({
        let gate = gate.clone();
        move |_, _| {
            let gate = gate.clone();
            Box::pin(async move {
                gate.opened().await;
                response(200, &[("cache-control", "max-age=60")], "shared")
            })
        }
    })
    .await;
    let url = origin.url("/hot");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, url) = (cache.clone(), url.clone());
            tokio::spawn(async move { send(&cache, get(&url, &[])).await })
        })
        .collect();
    wait_for(async || cache.metrics().coalesced, |n| *n == 9).await;
    gate.open();
    let mut collapsed = 0;
    for task in tasks {
        let got = task.await.unwrap();
        assert_eq!(got.body, "shared");
        collapsed += usize::from(got.cache_status().contains("collapsed"));
    }
    assert_eq!(
        origin.requests(),
        1,
        "ten concurrent misses, one origin request"
    );
    assert_eq!(collapsed, 9);
    assert_eq!(cache.metrics().coalesced, 9);
}

async fn responses_that_must_not_be_stored_are_not<S: Storage>(cache: HttpCache<S>) {
    let origin = Origin::start(|seen, _| match seen.path.as_str() {
        "/private" => response(200, &[("cache-control", "private, max-age=60")], "p"),
        "/no-store" => response(200, &[("cache-control", "no-store, max-age=60")], "n"),
        "/partial" => response(
            206,
            &[
                ("cache-control", "max-age=60"),
                ("content-range", "bytes 0-0/2"),
            ],
            "a",
        ),
        _ => response(200, &[("cache-control", "max-age=60")], "auth"),
    })
    .await;
    for (path, headers) in [
        ("/private", &[][..]),
        ("/no-store", &[][..]),
        ("/partial", &[][..]),
        ("/auth", &[("authorization", "Bearer x")][..]),
    ] {
        let url = origin.url(path);
        let first = send(&cache, get(&url, headers)).await;
        assert!(
            !first.cache_status().contains("stored"),
            "{path}: {}",
            first.cache_status()
        );
        assert!(!send(&cache, get(&url, headers)).await.is_hit(), "{path}");
    }
    assert_eq!(origin.requests(), 8);
}

async fn head_is_answered_from_a_stored_get<S: Storage>(cache: HttpCache<S>) {
    let origin =
        Origin::start(|_, _| response(200, &[("cache-control", "max-age=60")], "twelve bytes"))
            .await;
    let url = origin.url("/h");
    send(&cache, get(&url, &[])).await;
    let head = send(&cache, request("HEAD", &url, &[])).await;
    assert!(head.is_hit());
    assert_eq!(head.header("content-length"), Some("12"));
    assert!(head.body.is_empty());
    assert_eq!(origin.requests(), 1);
}

async fn the_client_s_own_conditions_are_answered_from_the_cache<S: Storage>(cache: HttpCache<S>) {
    let origin = Origin::start(|seen, _| {
        assert!(
            seen.headers.get("if-none-match").is_none(),
            "the cache asks for the whole response"
        );
        response(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"e\"")],
            "whole",
        )
    })
    .await;
    let url = origin.url("/c");
    let first = send(&cache, get(&url, &[("if-none-match", "\"e\"")])).await;
    assert_eq!((first.status, first.body.len()), (304, 0));
    let whole = send(&cache, get(&url, &[])).await;
    assert_eq!(
        (whole.status, whole.body.as_ref()),
        (200, &b"whole"[..]),
        "stored while answering 304"
    );
    let again = send(&cache, get(&url, &[("if-none-match", "W/\"e\"")])).await;
    assert!(again.is_hit());
    assert_eq!((again.status, again.header("etag")), (304, Some("\"e\"")));
    assert_eq!(origin.requests(), 1);
}

async fn a_range_that_misses_reaches_the_origin_with_its_if_range<S: Storage>(cache: HttpCache<S>) {
    let origin = Origin::start(|seen, _| {
        // The origin holds "v2": a range conditional on "v1" gets it whole.
        if seen.headers.get("if-range").is_some_and(|v| v != "\"v2\"") {
            response(200, &[("etag", "\"v2\"")], "0123456789")
        } else {
            response(
                206,
                &[("etag", "\"v2\""), ("content-range", "bytes 0-1/10")],
                "01",
            )
        }
    })
    .await;
    let url = origin.url("/versions");
    let got = send(
        &cache,
        get(&url, &[("range", "bytes=0-1"), ("if-range", "\"v1\"")]),
    )
    .await;
    let seen = origin.seen().pop().unwrap();
    assert_eq!(seen.headers["range"], "bytes=0-1");
    assert_eq!(seen.headers["if-range"], "\"v1\"");
    assert_eq!((got.status, got.body.as_ref()), (200, &b"0123456789"[..]));
}

async fn a_range_is_served_from_a_stored_body<S: Storage>(cache: HttpCache<S>) {
    let origin =
        Origin::start(|_, _| response(200, &[("cache-control", "max-age=60")], "0123456789")).await;
    let url = origin.url("/bytes");
    send(&cache, get(&url, &[])).await;
    let part = send(&cache, get(&url, &[("range", "bytes=2-4")])).await;
    assert_eq!((part.status, part.body.as_ref()), (206, &b"234"[..]));
    assert_eq!(part.header("content-range"), Some("bytes 2-4/10"));
    let past = send(&cache, get(&url, &[("range", "bytes=20-")])).await;
    assert_eq!(
        (past.status, past.header("content-range")),
        (416, Some("bytes */10"))
    );
    assert_eq!(origin.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_do_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = manual_time();
    let cache = support::fs_cache(dir.path(), options);
    let origin = Origin::start(|seen, n| match seen.path.as_str() {
        "/plain" => response(200, &[], "no freshness"),
        _ => response(
            200,
            &[("cache-control", "max-age=1")],
            if n == 1 { "v1" } else { "vN" },
        ),
    })
    .await;
    let url = origin.url("/m");
    let with_mode = |mode| {
        let mut request = get(&url, &[]);
        request.extensions_mut().insert(mode);
        request
    };
    let missing = send(&cache, with_mode(CacheMode::OnlyIfCached)).await;
    assert_eq!(missing.status, 504);
    assert_eq!(
        origin.requests(),
        0,
        "only-if-cached never reaches the origin"
    );
    send(&cache, with_mode(CacheMode::NoStore)).await;
    assert_eq!(
        send(&cache, with_mode(CacheMode::OnlyIfCached))
            .await
            .status,
        504,
        "no-store stored nothing"
    );
    send(&cache, get(&url, &[])).await;
    let reload = send(&cache, with_mode(CacheMode::Reload)).await;
    assert!(reload.cache_status().contains("fwd=request"));
    clock.advance(PAST_ONE_SECOND);
    let forced = send(&cache, with_mode(CacheMode::ForceCache)).await;
    assert!(
        forced.is_hit() && forced.cache_status().contains("ttl=-"),
        "force-cache takes a stale entry (its ttl negative): {}",
        forced.cache_status()
    );
    let before = origin.requests();
    let no_cache = send(&cache, with_mode(CacheMode::NoCache)).await;
    assert!(no_cache.cache_status().contains("fwd=stale"));
    assert_eq!(origin.requests(), before + 1);

    let plain = origin.url("/plain");
    let mut ignore = get(&plain, &[]);
    ignore.extensions_mut().insert(CacheMode::IgnoreRules);
    assert!(send(&cache, ignore).await.cache_status().contains("stored"));
    let mut again = get(&plain, &[]);
    again.extensions_mut().insert(CacheMode::IgnoreRules);
    assert!(
        send(&cache, again).await.is_hit(),
        "ignore-rules serves what it stored"
    );
    assert!(
        !send(&cache, get(&plain, &[])).await.is_hit(),
        "the default mode does not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ttl_caps_freshness() {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = manual_time();
    let options = Options {
        max_ttl: Some(Duration::from_secs(60)),
        ..options
    };
    let cache = support::fs_cache(dir.path(), options);
    // The origin's clock is the cache's, so that a response after the
    // jump is not born 61 seconds old.
    let origin_clock = clock.clone();
    let origin = Origin::start(move |_, _| {
        let date = httpdate::fmt_http_date(origin_clock.now());
        response(
            200,
            &[("cache-control", "max-age=3600"), ("date", &date)],
            "long",
        )
    })
    .await;
    let url = origin.url("/cap");
    send(&cache, get(&url, &[])).await;
    assert!(send(&cache, get(&url, &[])).await.is_hit());
    clock.advance(Duration::from_secs(61));
    let capped = send(&cache, get(&url, &[])).await;
    assert!(
        capped.cache_status().contains("fwd=stale"),
        "{}",
        capped.cache_status()
    );
    let mut forced = get(&url, &[]);
    forced.extensions_mut().insert(CacheMode::ForceCache);
    send(&cache, forced).await;
    assert_eq!(
        origin.requests(),
        2,
        "the refreshed entry is within the cap again"
    );
}

/// A backend that fails every operation: what a full disk looks like.
#[derive(Debug, Clone)]
struct Broken;

#[async_trait::async_trait]
impl respcache_core::CacheManager for Broken {
    async fn get(
        &self,
        _: &str,
    ) -> respcache_core::Result<Option<(respcache_core::HttpResponse, respcache_core::CachePolicy)>>
    {
        Err("disk on fire".into())
    }
    async fn put(
        &self,
        _: String,
        _: respcache_core::HttpResponse,
        _: respcache_core::CachePolicy,
    ) -> respcache_core::Result<respcache_core::HttpResponse> {
        Err("disk full".into())
    }
    async fn delete(&self, _: &str) -> respcache_core::Result<()> {
        Err("disk gone".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_degrades_to_the_origin() {
    let cache = HttpCache::new(respcache_http::Buffered::new(Broken), Options::default());
    let origin =
        Origin::start(|_, _| response(200, &[("cache-control", "max-age=60")], "still here")).await;
    let url = origin.url("/x");
    for _ in 0..3 {
        let got = send(&cache, get(&url, &[])).await;
        assert_eq!((got.status, got.body.as_ref()), (200, &b"still here"[..]));
    }
    let posted = send(&cache, request("POST", &url, &[])).await;
    assert_eq!(
        posted.status, 200,
        "a failed invalidation does not fail the request"
    );
    assert_eq!(origin.requests(), 4);
    assert!(cache.metrics().errors >= 3);
}

/// Storage that reads a body's first frame and then fails: the bytes it
/// took are gone.
struct Swallowing;

#[async_trait::async_trait]
impl Storage for Swallowing {
    async fn get(&self, _: &str) -> respcache_core::Result<Option<respcache_http::Stored>> {
        Ok(None)
    }
    async fn put(
        &self,
        _: String,
        _: http::response::Parts,
        mut body: respcache_http::CacheBody,
        _: respcache_core::CachePolicy,
        _: url::Url,
        _: respcache_http::StoreHints,
    ) -> Result<respcache_http::Putting, respcache_http::PutFailed> {
        let _ = body.frame().await;
        Err(respcache_http::PutFailed {
            error: "disk failed mid-write".into(),
            body: None,
        })
    }
    async fn delete(&self, _: &str) -> respcache_core::Result<()> {
        Ok(())
    }
    async fn update_head(
        &self,
        _: &str,
        _: http::response::Parts,
        _: respcache_core::CachePolicy,
        _: respcache_http::StoreHints,
    ) -> respcache_core::Result<bool> {
        Ok(false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_loses_the_body_fails_the_response_instead_of_emptying_it() {
    let cache = HttpCache::new(Swallowing, Options::default());
    let origin =
        Origin::start(|_, _| response(200, &[("cache-control", "max-age=60")], "owed")).await;
    let response = cache
        .handle(get(&origin.url("/lost"), &[]), support::client())
        .await
        .unwrap();
    let error = response
        .into_body()
        .collect()
        .await
        .expect_err("an empty body would pose as the response");
    assert!(
        error.to_string().contains("lost the response body"),
        "{error}"
    );
    assert_eq!(cache.metrics().errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_before_the_origin_finishes() {
    // The origin sends its first half, then waits until the client has it:
    // a cache that buffered the body first would never deliver it.
    let gate = Gate::new();
    let origin = gated_origin(&gate).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let url = origin.url("/stream");
    let response = cache
        .handle(get(&url, &[]), support::client())
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = first_bytes(&mut body).await;
    assert_eq!(first[0], pattern(1, FIRST.0)[0]);
    gate.open();
    assert!(rest_of(first, body).await == whole());
    let hit = send(&cache, get(&url, &[])).await;
    assert!(hit.is_hit());
    assert!(hit.body == whole());
}

/// What [`gated_origin`] sends before its gate opens, and after: a seed
/// and a length.
const FIRST: (u8, usize) = (1, 64 * 1024);
const REST: (u8, usize) = (2, 64 * 1024);

fn whole() -> Bytes {
    [pattern(FIRST.1, FIRST.0), pattern(REST.1, REST.0)]
        .concat()
        .into()
}

/// An origin whose fresh response sends [`FIRST`], then waits for `gate`
/// to send [`REST`].
async fn gated_origin(gate: &Gate) -> Origin {
    let gate = gate.clone();
    Origin::start(move |_, _| {
        let body = gate.body(pattern(FIRST.1, FIRST.0), pattern(REST.1, REST.0));
        http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(body)
            .unwrap()
    })
    .await
}

/// A [`gated_origin`] and a GET for `path` through `cache` that has its
/// head (so its flight is out): the gate, the origin, the URL and the
/// leader's response.
async fn lead<S: Storage>(
    cache: &HttpCache<S>,
    path: &str,
) -> (
    Gate,
    Origin,
    String,
    http::Response<respcache_http::CacheBody>,
) {
    let gate = Gate::new();
    let origin = gated_origin(&gate).await;
    let url = origin.url(path);
    let leader = cache
        .handle(get(&url, &[]), support::client())
        .await
        .unwrap();
    (gate, origin, url, leader)
}

/// The next frame's bytes, which must come within ten seconds.
async fn first_bytes(body: &mut respcache_http::CacheBody) -> Bytes {
    tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("bytes arrive while the origin still holds the rest")
        .expect("a frame")
        .expect("data")
        .into_data()
        .expect("a data frame")
}

/// A GET for `url` while another is at the origin: its head must come
/// within ten seconds, before the origin's last byte.
async fn follow<S: Storage>(
    cache: &HttpCache<S>,
    url: &str,
) -> http::Response<respcache_http::CacheBody> {
    let follower = cache.handle(get(url, &[]), support::client());
    tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("a follower's head comes before the origin's last byte")
        .unwrap()
}

/// Collects `body`, where `first` was read from it already.
async fn rest_of(first: Bytes, body: respcache_http::CacheBody) -> Bytes {
    let rest = body.collect().await.unwrap().to_bytes();
    [first, rest].concat().into()
}

async fn a_follower_reads_the_leader_s_response_as_it_arrives<S: Storage>(cache: HttpCache<S>) {
    let (gate, origin, url, leader) = lead(&cache, "/coalesced").await;
    // The leader has its head, so its request is out: this one follows it.
    let follower = follow(&cache, &url).await;
    let status = follower.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        status.contains("fwd=uri-miss") && status.contains("collapsed"),
        "{status}"
    );
    assert!(
        !status.contains("stored"),
        "a follower stores nothing: {status}"
    );
    // The follower reads while the leader has read nothing yet.
    let mut follower = follower.into_body();
    let first = first_bytes(&mut follower).await;
    gate.open();
    assert!(
        rest_of(first, follower).await == whole(),
        "the follower's body"
    );
    let leader = leader.into_body().collect().await.unwrap().to_bytes();
    assert!(leader == whole(), "the leader's body");
    assert_eq!(origin.requests(), 1);
    assert_eq!(cache.metrics().coalesced, 1);
    let hit = send(&cache, get(&url, &[])).await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert!(hit.body == whole());
}

async fn a_follower_reads_on_when_the_leader_hangs_up<S: Storage>(cache: HttpCache<S>) {
    let (gate, origin, url, leader) = lead(&cache, "/abandoned").await;
    let follower = follow(&cache, &url).await;
    let mut leader = leader.into_body();
    first_bytes(&mut leader).await;
    drop(leader);
    let mut follower = follower.into_body();
    let first = first_bytes(&mut follower).await;
    gate.open();
    assert!(rest_of(first, follower).await == whole());
    // The follower read the body to its end, so the store completed.
    let hit = send(&cache, get(&url, &[])).await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert!(hit.body == whole());
    assert_eq!(origin.requests(), 1);
}

async fn a_follower_of_another_variant_gets_its_own<S: Storage>(cache: HttpCache<S>) {
    // The first request's answer waits until the second has joined it.
    let gate = Gate::new();
    let origin = Origin::start_async({
        let gate = gate.clone();
        move |seen, _| {
            let language = seen.headers["accept-language"].to_str().unwrap().to_owned();
            let gate = gate.clone();
            Box::pin(async move {
                gate.opened().await;
                let mut response = response(
                    200,
                    &[("cache-control", "max-age=60"), ("vary", "accept-language")],
                    "",
                );
                *response.body_mut() = respcache_http::full(language);
                response
            })
        }
    })
    .await;
    let url = origin.url("/negotiated");
    let leader = tokio::spawn({
        let (cache, url) = (cache.clone(), url.clone());
        async move { send(&cache, get(&url, &[("accept-language", "en")])).await }
    });
    wait_for(async || origin.requests(), |n| *n == 1).await;
    let follower = tokio::spawn({
        let (cache, url) = (cache.clone(), url.clone());
        async move { send(&cache, get(&url, &[("accept-language", "de")])).await }
    });
    wait_for(async || cache.metrics().coalesced, |n| *n == 1).await;
    gate.open();
    let follower = follower.await.unwrap();
    assert_eq!(follower.body, "de", "{}", follower.cache_status());
    assert_eq!(leader.await.unwrap().body, "en");
    assert_eq!(
        cache.metrics().coalesced,
        1,
        "the second request did follow"
    );
    assert_eq!(origin.requests(), 2);
    // Both variants are stored side by side.
    for language in ["en", "de"] {
        let again = send(&cache, get(&url, &[("accept-language", language)])).await;
        assert!(
            again.is_hit() && again.body == language,
            "{language}: {}",
            again.cache_status()
        );
    }
}

/// A follower that comes once the leader's body has outgrown the
/// coalescing buffer waits for the store and reads the entry from it.
async fn a_late_follower_reads_the_stored_entry<S: Storage>(cache: HttpCache<S>) {
    let (gate, origin, url, leader) = lead(&cache, "/late").await;
    let mut leader = leader.into_body();
    let mut read = BytesMut::new();
    while read.len() <= cache.options().coalesce_buffer {
        read.extend_from_slice(&first_bytes(&mut leader).await);
    }
    let follower = tokio::spawn({
        let (cache, url) = (cache.clone(), url.clone());
        async move { send(&cache, get(&url, &[])).await }
    });
    wait_for(async || cache.metrics().coalesced, |n| *n == 1).await;
    gate.open();
    assert!(rest_of(read.freeze(), leader).await == whole());
    let follower = follower.await.unwrap();
    assert!(follower.body == whole(), "the late follower's body");
    let status = follower.cache_status();
    assert!(
        status.contains("hit") && status.contains("collapsed"),
        "{status}"
    );
    assert_eq!(origin.requests(), 1);
}

/// A client that stops reading holds the others back for
/// `coalesce_stall` at most: a reader ahead of it goes on once it is cut
/// off, and a follower waiting for it goes to the origin itself. (The
/// buffer holds [`FIRST`] but not [`whole`].)
async fn a_stalled_reader_holds_up_no_one_for_long<S: Storage>(cache: HttpCache<S>) {
    // The leader never reads; the follower reads everything it can.
    let (gate, origin, url, leader) = lead(&cache, "/stalled").await;
    let follower = follow(&cache, &url).await;
    let mut follower = follower.into_body();
    let first = first_bytes(&mut follower).await;
    gate.open();
    let followed = tokio::time::timeout(Duration::from_secs(10), rest_of(first, follower))
        .await
        .expect("the follower is not held back for good");
    assert!(followed == whole());
    let cut_off = leader.into_body().collect().await;
    assert!(
        cut_off.is_err(),
        "the stalled leader's body ends in an error"
    );
    let hit = send(&cache, get(&url, &[])).await;
    assert!(
        hit.is_hit(),
        "the follower completed the store: {}",
        hit.cache_status()
    );
    assert_eq!(origin.requests(), 1);

    // A leader alone is never cut off. Followers that cannot join it (the
    // body outgrew the buffer) wait no longer than the timeout; then one
    // of them asks the origin in its place and the other follows that.
    let big = pattern(4 * cache.options().coalesce_buffer, 9);
    let origin = Origin::start({
        let big = big.clone();
        move |_, _| {
            let mut response = response(200, &[("cache-control", "max-age=60")], "");
            *response.body_mut() = respcache_http::full(big.clone());
            response
        }
    })
    .await;
    let url = origin.url("/stalled-alone");
    let leader = cache
        .handle(get(&url, &[]), support::client())
        .await
        .unwrap();
    // Past the buffer, so that nobody can join; then the leader stalls.
    let mut leader = leader.into_body();
    let mut read = BytesMut::new();
    while read.len() <= cache.options().coalesce_buffer {
        read.extend_from_slice(&first_bytes(&mut leader).await);
    }
    let late: Vec<_> = (0..2)
        .map(|_| {
            let (cache, url) = (cache.clone(), url.clone());
            tokio::spawn(async move { send(&cache, get(&url, &[])).await })
        })
        .collect();
    for late in late {
        let late = tokio::time::timeout(Duration::from_secs(10), late)
            .await
            .expect("a follower of a stalled leader waits no longer than the timeout")
            .unwrap();
        assert!(late.body == big);
    }
    assert_eq!(
        origin.requests(),
        2,
        "one request took the stalled leader's place, for both followers"
    );
    assert!(
        rest_of(read.freeze(), leader).await == big,
        "the slow leader's body is whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_holds_up_no_one_for_long_on_both_backends() {
    let options = || Options {
        coalesce_buffer: FIRST.1 + REST.1 / 2,
        coalesce_wait: Duration::from_millis(300),
        coalesce_stall: Duration::from_millis(300),
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    a_stalled_reader_holds_up_no_one_for_long(support::fs_cache(dir.path(), options())).await;
    let dir = tempfile::tempdir().unwrap();
    a_stalled_reader_holds_up_no_one_for_long(support::cacache_cache(dir.path(), options())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_follower_reads_the_stored_entry_on_both_backends() {
    let options = || Options {
        coalesce_buffer: 16 * 1024,
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    a_late_follower_reads_the_stored_entry(support::fs_cache(dir.path(), options())).await;
    let dir = tempfile::tempdir().unwrap();
    a_late_follower_reads_the_stored_entry(support::cacache_cache(dir.path(), options())).await;
}

/// Repeats `attempt` until `done` holds (a background task is finishing).
async fn wait_for<T, F, Fut>(attempt: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let tries = Arc::new(AtomicUsize::new(0));
    loop {
        let got = attempt().await;
        if done(&got) || tries.fetch_add(1, Ordering::SeqCst) > 100 {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_fails_halfway_reaches_the_client_as_an_error_and_is_not_stored() {
    let origin = Origin::start_async(|_, n| {
        Box::pin(async move {
            // Each path's first request fails (fs makes requests 1-2, cacache 3-4).
            if n % 2 == 0 {
                return response(200, &[("cache-control", "max-age=60")], "complete");
            }
            // Half the body, a pause (the head and half reach the cache),
            // then the origin fails.
            let (tx, rx) =
                tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(http_body::Frame::data(Bytes::from_static(b"half"))))
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = tx.send(Err(std::io::Error::other("origin crashed"))).await;
            });
            let body = http_body_util::StreamBody::new(support::stream(rx));
            http::Response::builder()
                .header("cache-control", "max-age=60")
                .header("content-length", "100")
                .body(respcache_http::boxed(body))
                .unwrap()
        })
    })
    .await;
    for backend in ["fs", "cacache"] {
        let dir = tempfile::tempdir().unwrap();
        let url = origin.url(&format!("/broken-{backend}"));
        let response = if backend == "fs" {
            let cache = support::fs_cache(dir.path(), Options::default());
            let response = cache
                .handle(get(&url, &[]), support::client())
                .await
                .unwrap();
            assert!(
                response.into_body().collect().await.is_err(),
                "{backend}: the client sees the failure"
            );
            send(&cache, get(&url, &[])).await
        } else {
            let cache = support::cacache_cache(dir.path(), Options::default());
            let response = cache
                .handle(get(&url, &[]), support::client())
                .await
                .unwrap();
            assert!(
                response.into_body().collect().await.is_err(),
                "{backend}: the client sees the failure"
            );
            send(&cache, get(&url, &[])).await
        };
        assert!(
            !response.is_hit(),
            "{backend}: a failed body is never served as a hit"
        );
        assert_eq!(response.body, "complete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_that_are_not_utf8_survive_storage() {
    let origin = Origin::start(|_, _| {
        let mut r = response(200, &[("cache-control", "max-age=60")], "raw");
        r.headers_mut().insert(
            "x-raw",
            http::HeaderValue::from_bytes(b"caf\xe9 \xff").unwrap(),
        );
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), Options::default());
    let url = origin.url("/raw");
    send(&cache, get(&url, &[])).await;
    let hit = send(&cache, get(&url, &[])).await;
    assert!(hit.is_hit());
    assert_eq!(hit.headers["x-raw"].as_bytes(), b"caf\xe9 \xff");
}
