//! The middleware in a real reqwest client, against a real origin on
//! loopback, with real backends.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use respcache_reqwest::{Cache, CacheMode};
use respcache_testkit::{Body, Gate, Origin, Seen, full, pattern};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn client_over_fs(dir: &std::path::Path) -> ClientWithMiddleware {
    let backend = respcache_fs::StreamingManager::new(dir.to_path_buf());
    ClientBuilder::new(reqwest::Client::new())
        .with(Cache::streaming(backend))
        .build()
}

fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("<none>")
        .to_owned()
}

fn answer(cache_control: &str, body: &'static str) -> Response<Body> {
    Response::builder()
        .header("cache-control", cache_control)
        .body(full(body))
        .expect("a response")
}

#[tokio::test]
async fn a_fresh_response_is_a_hit_the_second_time() -> TestResult {
    let origin = Origin::start(|_: &Seen, _| answer("max-age=60", "hello")).await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());

    let url = origin.url("/greeting");
    let miss = client.get(&url).send().await?;
    let miss_status = cache_status(&miss);
    assert_eq!(miss.url().as_str(), url);
    assert_eq!(miss.bytes().await?, "hello");
    assert!(miss_status.contains("fwd=uri-miss"), "{miss_status}");

    let hit = client.get(&url).send().await?;
    let hit_status = cache_status(&hit);
    assert_eq!(hit.url().as_str(), url, "a hit keeps the request's URL");
    assert_eq!(hit.bytes().await?, "hello");
    assert!(hit_status.contains("hit"), "{hit_status}");
    assert_eq!(origin.requests(), 1, "the hit reached the origin");
    Ok(())
}

#[tokio::test]
async fn a_private_response_is_kept_by_default() -> TestResult {
    // A client's own cache may keep what the origin marks `private`.
    let origin = Origin::start(|_: &Seen, _| answer("private, max-age=60", "mine")).await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let url = origin.url("/me");
    client.get(&url).send().await?.bytes().await?;
    let again = client.get(&url).send().await?;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(again.bytes().await?, "mine");
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_and_a_304_serves_the_stored_body() -> TestResult {
    let origin = Origin::start(|seen: &Seen, _| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|tag| tag == "\"v1\"")
        {
            return Response::builder()
                .status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", "no-cache")
                .body(full(""))
                .expect("a 304");
        }
        Response::builder()
            .header("etag", "\"v1\"")
            .header("cache-control", "no-cache")
            .body(full("stored body"))
            .expect("a response")
    })
    .await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let url = origin.url("/doc");
    assert_eq!(client.get(&url).send().await?.bytes().await?, "stored body");

    let revalidated = client.get(&url).send().await?;
    let status = cache_status(&revalidated);
    assert_eq!(revalidated.status(), 200);
    assert_eq!(revalidated.bytes().await?, "stored body");
    assert!(status.contains("fwd-status=304"), "{status}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].headers["if-none-match"], "\"v1\"");
    Ok(())
}

#[tokio::test]
async fn a_mode_in_the_request_extensions_overrides_the_default() -> TestResult {
    let origin = Origin::start(|_: &Seen, n| {
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(full(format!("answer {n}")))
            .expect("a response")
    })
    .await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let url = origin.url("/mode");
    assert_eq!(client.get(&url).send().await?.bytes().await?, "answer 1");

    // Reload: to the origin although the entry is fresh, and stored.
    let reloaded = client
        .get(&url)
        .with_extension(CacheMode::Reload)
        .send()
        .await?;
    assert_eq!(reloaded.bytes().await?, "answer 2");
    assert_eq!(client.get(&url).send().await?.bytes().await?, "answer 2");

    // NoStore: neither read nor written.
    let bypassed = client
        .get(&url)
        .with_extension(CacheMode::NoStore)
        .send()
        .await?;
    assert_eq!(bypassed.bytes().await?, "answer 3");
    assert_eq!(client.get(&url).send().await?.bytes().await?, "answer 2");

    // OnlyIfCached on a URL never fetched: 504, and the origin is not asked.
    let before = origin.requests();
    let not_cached = client
        .get(origin.url("/never"))
        .with_extension(CacheMode::OnlyIfCached)
        .send()
        .await?;
    assert_eq!(not_cached.status(), 504);
    assert_eq!(origin.requests(), before);
    Ok(())
}

#[tokio::test]
async fn every_response_carries_cache_status() -> TestResult {
    let origin = Origin::start(|_: &Seen, _| answer("no-store", "posted")).await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let posted = client.post(origin.url("/form")).body("a=1").send().await?;
    let status = cache_status(&posted);
    assert!(status.contains("fwd=method"), "{status}");
    assert_eq!(posted.bytes().await?, "posted");
    assert_eq!(
        origin.seen()[0].body,
        "a=1",
        "the request body reached the origin"
    );

    let uncacheable = client.get(origin.url("/no-store")).send().await?;
    assert!(
        cache_status(&uncacheable).contains("fwd="),
        "{}",
        cache_status(&uncacheable)
    );
    Ok(())
}

#[tokio::test]
async fn a_large_body_streams_through_on_a_miss_and_on_a_hit() -> TestResult {
    const LEN: usize = 8 * 1024 * 1024;
    let body = pattern(LEN, 7);
    let (first, rest) = (body.slice(..64 * 1024), body.slice(64 * 1024..));
    let gate = Gate::new();
    let origin = Origin::start({
        let gate = gate.clone();
        move |_: &Seen, _| {
            Response::builder()
                .header("cache-control", "max-age=60")
                .body(gate.body(first.clone(), rest.clone()))
                .expect("a response")
        }
    })
    .await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let url = origin.url("/large");

    // The first chunk reaches the caller while the origin still holds
    // the rest back: nothing waits for the whole body.
    let first_chunk = async {
        let mut miss = client.get(&url).send().await?;
        let chunk = miss.chunk().await?.ok_or("the body ended at once")?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((miss, chunk))
    };
    let (mut miss, chunk) = tokio::time::timeout(Duration::from_secs(10), first_chunk)
        .await
        .map_err(|_| "no byte reached the caller before the origin sent the whole body")??;
    let mut received = Vec::with_capacity(LEN);
    received.extend_from_slice(&chunk);
    gate.open();
    while let Some(chunk) = miss.chunk().await? {
        received.extend_from_slice(&chunk);
    }
    assert!(
        received == body,
        "the miss's body differs from the origin's"
    );

    // The hit is read from disk in chunks, not as one buffer.
    let mut hit = client.get(&url).send().await?;
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    let mut chunks = 0;
    received.clear();
    while let Some(chunk) = hit.chunk().await? {
        chunks += 1;
        received.extend_from_slice(&chunk);
    }
    assert!(received == body, "the hit's body differs from the origin's");
    assert!(chunks > 1, "the hit came as one {LEN}-byte chunk");
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn a_failing_backend_degrades_to_pass_through() -> TestResult {
    let origin = Origin::start(|_: &Seen, n| {
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(full(Bytes::from(format!("answer {n}"))))
            .expect("a response")
    })
    .await;
    // A regular file where the cache directory should be: every read and
    // write of the backend fails.
    let dir = tempfile::tempdir()?;
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"in the way")?;
    let client = client_over_fs(&not_a_dir);
    let url = origin.url("/degraded");
    for n in 1..=3 {
        let response = client.get(&url).send().await?;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("cache-status"));
        assert_eq!(response.bytes().await?, format!("answer {n}"));
    }
    assert_eq!(origin.requests(), 3);
    Ok(())
}

#[tokio::test]
async fn a_buffered_backend_serves_hits_too() -> TestResult {
    let origin = Origin::start(|_: &Seen, _| answer("max-age=60", "buffered")).await;
    let dir = tempfile::tempdir()?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(Cache::buffered(respcache_cacache::CACacheManager::new(
            dir.path(),
            true,
        )))
        .build();
    let url = origin.url("/b");
    assert_eq!(client.get(&url).send().await?.bytes().await?, "buffered");
    let hit = client.get(&url).send().await?;
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    assert_eq!(hit.bytes().await?, "buffered");
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_origin_is_reqwests_own_error() -> TestResult {
    let addr = respcache_testkit::free_port();
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let error = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect_err("nothing listens there");
    match error {
        reqwest_middleware::Error::Reqwest(error) => assert!(error.is_connect(), "{error}"),
        other => panic!("not reqwest's error: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn each_authorization_has_its_own_entries_in_a_private_cache() -> TestResult {
    // A server calling an API for several users, each with their token.
    let origin = Origin::start(|seen: &Seen, _| {
        let body = match seen.headers.get("authorization").map(|v| v.as_bytes()) {
            Some(b"Bearer alice-token") => "alice's orders",
            Some(b"Bearer bob-token") => "bob's orders",
            _ => "nobody's orders",
        };
        answer("private, max-age=60", body)
    })
    .await;
    let dir = tempfile::tempdir()?;
    let client = client_over_fs(dir.path());
    let url = origin.url("/orders");
    let get = |token: &'static str| client.get(&url).bearer_auth(token).send();

    assert_eq!(get("alice-token").await?.bytes().await?, "alice's orders");
    let bob = get("bob-token").await?;
    assert!(
        !cache_status(&bob).contains("hit"),
        "{}",
        cache_status(&bob)
    );
    assert_eq!(bob.bytes().await?, "bob's orders", "bob got alice's answer");
    assert_eq!(
        client.get(&url).send().await?.bytes().await?,
        "nobody's orders"
    );

    // One user's requests still hit.
    let again = get("alice-token").await?;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(again.bytes().await?, "alice's orders");
    assert_eq!(origin.requests(), 3);
    Ok(())
}
