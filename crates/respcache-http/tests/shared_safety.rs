//! A shared cache in front of users with sessions, tried as a hostile
//! client would: no poisoning, no leaks, no amplification. Each test fails
//! on a cache that lacks the defence it names.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use respcache_http::{CacheBody, HttpCache, ManualClock, Options, Storage};
use support::{Gate, Origin, get, response, send};
use tokio::sync::mpsc;

/// A fresh fs-backed shared cache with default options.
fn shared_cache(dir: &tempfile::TempDir) -> HttpCache<impl Storage> {
    support::fs_cache(dir.path(), Options::default())
}

/// An origin body fed by hand; it ends when the sender is dropped. The
/// sender's `send` fails once nobody reads the body any more.
fn fed_body() -> (mpsc::Sender<Bytes>, CacheBody) {
    let (sender, receiver) = mpsc::channel::<Bytes>(1);
    let frames = futures_util::StreamExt::map(support::stream(receiver), |chunk| {
        Ok::<_, std::io::Error>(http_body::Frame::data(chunk))
    });
    (sender, respcache_http::boxed(StreamBody::new(frames)))
}

/// Feeds `sender`, a chunk every `pace`, until the other side stops
/// reading; how many chunks went. Panics if it is still read after `limit`
/// chunks.
async fn feed_until_dropped(sender: &mpsc::Sender<Bytes>, limit: usize, pace: Duration) -> usize {
    for sent in 0..limit {
        tokio::time::sleep(pace).await;
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let send = tokio::time::timeout(Duration::from_secs(10), sender.send(chunk));
        match send.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return sent,
            Err(_) => panic!("nobody read the body, but it was not dropped either"),
        }
    }
    panic!("still reading after {limit} chunks of 64 KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_named_in_connection_are_gone_before_the_key_and_variants_are_computed() {
    let origin = Origin::start(|seen, _| {
        let accept = seen
            .headers
            .get("accept")
            .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
        let mut r = response(
            200,
            &[("cache-control", "max-age=600"), ("vary", "accept")],
            "",
        );
        *r.body_mut() = respcache_http::full(format!("for {accept}"));
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/v");
    // The attacker's Accept is removed before the origin sees it: the
    // entry it makes is the one for requests without Accept.
    let attack = send(
        &cache,
        get(&url, &[("accept", "json"), ("connection", "accept")]),
    )
    .await;
    assert_eq!(attack.body, "for none");
    let victim = send(&cache, get(&url, &[("accept", "json")])).await;
    assert_eq!(
        victim.body, "for json",
        "the victim got the attacker's variant"
    );
    let bare = send(&cache, get(&url, &[])).await;
    assert!(bare.is_hit(), "{}", bare.cache_status());
    assert_eq!(bare.body, "for none");

    // Naming Host would key the request for one site and have the origin
    // answer for another: not cached at all.
    let lost_host = send(
        &cache,
        get(
            &origin.url("/h"),
            &[("host", "www.site"), ("connection", "host")],
        ),
    )
    .await;
    assert!(
        lost_host.cache_status().contains("fwd=bypass"),
        "{}",
        lost_host.cache_status()
    );
    let after = send(&cache, get(&origin.url("/h"), &[("host", "www.site")])).await;
    assert!(!after.is_hit(), "{}", after.cache_status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_page_without_cache_control_is_never_replayed_to_another_client() {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Arc::new(clock.clone()),
        ..Options::default()
    };
    // A page for the requester's session, sent without Cache-Control:
    // with no validator at all, or with the weak ETag Express adds.
    let origin = Origin::start(|seen, _| {
        let who = seen
            .headers
            .get("cookie")
            .map_or("nobody".to_owned(), |v| v.to_str().unwrap().to_owned());
        let mut r = response(200, &[], "");
        if seen.path == "/express" {
            r.headers_mut()
                .insert("etag", format!("W/\"{who}\"").parse().unwrap());
        }
        *r.body_mut() = respcache_http::full(format!("page of {who}"));
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), options);
    for path in ["/plain", "/express"] {
        let url = origin.url(path);
        let first = send(&cache, get(&url, &[("cookie", "sid=ALICE")])).await;
        assert_eq!(first.body, "page of sid=ALICE");
        clock.advance(Duration::from_secs(5));
        let other = send(&cache, get(&url, &[("cache-control", "max-stale")])).await;
        assert!(
            !other.is_hit(),
            "{path}: replayed stale: {}",
            other.cache_status()
        );
        assert_ne!(
            other.body, first.body,
            "{path}: another client got Alice's page"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_could_never_be_fresh_is_not_stored() {
    // The other defence (no stale serving of unmarked responses) off, to
    // see this one alone.
    let options = Options {
        stale_only_if_explicit: false,
        ..Options::default()
    };
    let origin = Origin::start(|_, n| {
        let mut r = response(200, &[], "");
        *r.body_mut() = respcache_http::full(format!("page {n}"));
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), options);
    let url = origin.url("/unmarked");
    let first = send(&cache, get(&url, &[])).await;
    assert!(
        !first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    let second = send(&cache, get(&url, &[("cache-control", "max-stale")])).await;
    assert_eq!(second.body, "page 2", "{}", second.cache_status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_stored_for_its_validator_alone_never_stands_in_for_an_unreachable_origin() {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Arc::new(clock.clone()),
        store_unmarked: true,
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = support::fs_cache(dir.path(), options);
    let origin = Origin::start(|_, _| response(200, &[("etag", "\"a\"")], "personal")).await;
    let url = origin.url("/validator-only");
    send(&cache, get(&url, &[])).await;
    let explicit = Origin::start(|_, _| {
        response(
            200,
            &[("cache-control", "max-age=1"), ("etag", "\"b\"")],
            "public page",
        )
    })
    .await;
    let explicit_url = explicit.url("/explicit");
    send(&cache, get(&explicit_url, &[])).await;
    drop(origin);
    drop(explicit);
    clock.advance(Duration::from_secs(5));
    let down = cache.handle(get(&url, &[]), support::client()).await;
    assert!(
        down.is_err(),
        "a validator-only entry stood in for a down origin"
    );
    let stands_in = send(&cache, get(&explicit_url, &[])).await;
    assert_eq!(
        stands_in.body,
        "public page",
        "{}",
        stands_in.cache_status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_s_set_cookie_reaches_another_only_when_the_origin_says_it_may() {
    let origin = Origin::start(|seen, n| {
        let cc = if seen.path == "/public" {
            "public, max-age=600"
        } else {
            "max-age=600"
        };
        let mut r = response(200, &[("cache-control", cc)], "");
        r.headers_mut()
            .insert("set-cookie", format!("sid=USER{n}").parse().unwrap());
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/private-by-cookie");
    let alice = send(&cache, get(&url, &[])).await;
    assert_eq!(alice.header("set-cookie"), Some("sid=USER1"));
    let bob = send(&cache, get(&url, &[])).await;
    assert!(!bob.is_hit(), "{}", bob.cache_status());
    assert_eq!(
        bob.header("set-cookie"),
        Some("sid=USER2"),
        "Bob got Alice's session"
    );

    let shared = origin.url("/public");
    send(&cache, get(&shared, &[])).await;
    let anyone = send(&cache, get(&shared, &[])).await;
    assert!(
        anyone.is_hit(),
        "public says it may be shared: {}",
        anyone.cache_status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_s_set_cookie_goes_to_its_client_and_never_into_the_entry() {
    let origin = Origin::start(|seen, _| {
        if seen.headers.contains_key("if-none-match") {
            response(
                304,
                &[
                    ("cache-control", "public, max-age=600"),
                    ("set-cookie", "sid=BOB"),
                    ("etag", "\"v\""),
                ],
                "",
            )
        } else {
            response(
                200,
                &[("cache-control", "public, max-age=0"), ("etag", "\"v\"")],
                "page",
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/refreshed");
    send(&cache, get(&url, &[])).await;
    let bob = send(&cache, get(&url, &[])).await;
    assert!(
        bob.cache_status().contains("fwd-status=304"),
        "{}",
        bob.cache_status()
    );
    assert_eq!(
        bob.header("set-cookie"),
        Some("sid=BOB"),
        "Bob's own cookie"
    );
    let next = send(&cache, get(&url, &[])).await;
    assert!(next.is_hit(), "{}", next.cache_status());
    assert_eq!(
        next.header("set-cookie"),
        None,
        "an anonymous client got Bob's session"
    );
    assert_eq!(next.body, "page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_answered_on_a_miss_does_not_download_a_body_that_is_not_stored() {
    let feeders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = Origin::start({
        let feeders = feeders.clone();
        move |_, _| {
            let (sender, body) = fed_body();
            feeders.lock().unwrap().push(sender);
            let mut r = response(200, &[("cache-control", "no-store")], "");
            *r.body_mut() = body;
            r
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/big-and-private");
    for _ in 0..3 {
        let answered = send(&cache, get(&url, &[("if-none-match", "*")])).await;
        assert_eq!(answered.status, 304);
        let sender = feeders.lock().unwrap().pop().expect("the origin was asked");
        let sent = feed_until_dropped(&sender, 64, Duration::ZERO).await;
        assert!(sent < 8, "{sent} chunks of 64 KiB read for nobody");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_transfer_stops_at_its_deadline() {
    let feeders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = Origin::start({
        let feeders = feeders.clone();
        move |_, _| {
            let (sender, body) = fed_body();
            feeders.lock().unwrap().push(sender);
            let mut r = response(
                200,
                &[("cache-control", "max-age=600"), ("etag", "\"e\"")],
                "",
            );
            *r.body_mut() = body;
            r
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        background_deadline: Duration::from_millis(300),
        ..Options::default()
    };
    let cache = support::fs_cache(dir.path(), options);
    // The client's condition is answered at once; the body, being stored,
    // is read on in the background, for the deadline and no longer.
    let answered = send(
        &cache,
        get(&origin.url("/endless"), &[("if-none-match", "*")]),
    )
    .await;
    assert_eq!(answered.status, 304);
    let sender = feeders.lock().unwrap().pop().expect("the origin was asked");
    // A chunk every 20 ms: some go before the 300 ms deadline, and 200
    // would take four seconds.
    let sent = feed_until_dropped(&sender, 200, Duration::from_millis(20)).await;
    assert!(sent > 0, "the stored body was not read on at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_a_key_that_could_not_be_stored_go_to_the_origin_side_by_side() {
    let gate = Gate::new();
    let origin = Origin::start_async({
        let gate = gate.clone();
        move |_, n| {
            let gate = gate.clone();
            Box::pin(async move {
                if n > 1 {
                    gate.opened().await;
                }
                response(200, &[("cache-control", "no-store")], "live")
            })
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/poll");
    send(&cache, get(&url, &[])).await;
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let cache = cache.clone();
            let request = get(&url, &[]);
            tokio::spawn(async move { send(&cache, request).await })
        })
        .collect();
    // All four reach the origin while it holds them: none waits for
    // another's response it could not share.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while origin.requests() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 5 requests reached the origin: they queued",
            origin.requests()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gate.open();
    for request in waiting {
        assert_eq!(request.await.unwrap().body, "live");
    }
}

/// A backend whose every store fails at the commit: what a full disk
/// looks like after the body went through.
#[derive(Debug, Clone)]
struct FullDisk;

#[async_trait::async_trait]
impl respcache_core::CacheManager for FullDisk {
    async fn get(
        &self,
        _: &str,
    ) -> respcache_core::Result<Option<(respcache_core::HttpResponse, respcache_core::CachePolicy)>>
    {
        Ok(None)
    }
    async fn put(
        &self,
        _: String,
        _: respcache_core::HttpResponse,
        _: respcache_core::CachePolicy,
    ) -> respcache_core::Result<respcache_core::HttpResponse> {
        Err("no space left on device".into())
    }
    async fn delete(&self, _: &str) -> respcache_core::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_is_said_and_counted_only_once_the_backend_committed() {
    let origin =
        Origin::start(|_, _| response(200, &[("cache-control", "max-age=600")], "small")).await;
    let cache = HttpCache::new(respcache_http::Buffered::new(FullDisk), Options::default());
    let got = send(&cache, get(&origin.url("/full"), &[])).await;
    assert_eq!(got.body, "small", "the client still gets its response");
    assert!(
        !got.cache_status().contains("stored"),
        "{}",
        got.cache_status()
    );
    let metrics = cache.metrics();
    assert_eq!((metrics.stores, metrics.errors), (0, 1), "{metrics:?}");

    let dir = tempfile::tempdir().unwrap();
    let working = shared_cache(&dir);
    let got = send(&working, get(&origin.url("/fine"), &[])).await;
    assert!(
        got.cache_status().ends_with("; stored"),
        "{}",
        got.cache_status()
    );
    assert_eq!(working.metrics().stores, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_a_body_is_passed_on_not_cached() {
    let origin = Origin::start(|seen, _| {
        let mut r = response(200, &[("cache-control", "max-age=600")], "");
        *r.body_mut() = respcache_http::full(format!("answer to {:?}", seen.body));
        r
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/search");
    let with_body = |text: &'static str| {
        http::Request::get(url.as_str())
            .header("content-length", text.len())
            .body(http_body_util::Full::new(Bytes::from_static(
                text.as_bytes(),
            )))
            .unwrap()
    };
    let first = send(&cache, with_body("q=alice")).await;
    assert!(
        first.cache_status().contains("fwd=bypass"),
        "{}",
        first.cache_status()
    );
    let other = send(&cache, with_body("q=bob")).await;
    assert_eq!(
        other.body, "answer to b\"q=bob\"",
        "another body got the first's answer"
    );
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_a_request_carried_are_never_written_to_storage() {
    let origin = Origin::start(|_, _| {
        response(
            200,
            &[("cache-control", "public, max-age=600")],
            "shared page",
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = shared_cache(&dir);
    let url = origin.url("/page");
    let secrets = [
        ("authorization", "Bearer alice-secret-token"),
        ("proxy-authorization", "Basic YWxpY2U6cHJveHktc2VjcmV0"),
        ("cookie", "sid=alice-session-id"),
    ];
    let first = send(&cache, get(&url, &secrets)).await;
    assert_eq!(first.body, "shared page");
    let again = send(&cache, get(&url, &[])).await;
    assert!(again.is_hit(), "stored: {}", again.cache_status());
    for (_, secret) in secrets {
        let found = files_containing(dir.path(), secret.as_bytes());
        assert!(found.is_empty(), "{secret} written to {found:?}");
    }
}
