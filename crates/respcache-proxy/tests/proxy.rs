//! The `respcache-proxy` binary end to end: a real origin on loopback, the
//! binary started as a child process in front of it, and a real HTTP/1
//! client talking to it. Each test has its own origin, ports and cache
//! directory, so they run in parallel.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::{Client, Origin, Proxy, channel, full, pattern, response, trickle};

/// The value of counter `name` in Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
}

async fn metrics(client: &Client, proxy: &Proxy) -> String {
    let reply = client.get(&proxy.admin_url("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.text().to_owned()
}

/// An origin that serves `body` for an hour to every request.
async fn cacheable_origin(body: Bytes) -> Origin {
    Origin::start(move |_, _| response(200, &[("cache-control", "max-age=60")], body.clone())).await
}

/// Two GETs for one URL: the first goes to the origin and is stored, the
/// second is served from the cache without the origin.
async fn miss_then_hit(backend: &str) {
    let body = pattern(64 * 1024 + 17, 0);
    let origin = cacheable_origin(body.clone()).await;
    let proxy = Proxy::start(&origin.base_url(), backend).await;
    let client = Client::default();

    let first = client.get(&proxy.url("/article?id=1")).await;
    assert_eq!(first.status, StatusCode::OK);
    // Streamed on to the client as it arrives, so its head went out
    // before the store committed: it cannot claim `stored`.
    assert_eq!(
        first.cache_status(),
        "respcache; fwd=uri-miss; fwd-status=200"
    );
    assert!(
        first.body == body,
        "the first body differs from the origin's"
    );

    let second = client.get(&proxy.url("/article?id=1")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.cache_status_has("hit"), "{}", second.cache_status());
    assert!(
        second.body == body,
        "the stored body differs from the origin's"
    );
    assert_eq!(origin.requests(), 1, "the hit went to the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cacheable_get_is_a_miss_then_a_hit_with_the_fs_backend() {
    miss_then_hit("fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cacheable_get_is_a_miss_then_a_hit_with_the_cacache_backend() {
    miss_then_hit("cacache").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_method_body_and_request_field_reach_the_origin_untouched() {
    // The origin echoes the body it got.
    let origin = Origin::start(|seen, _| response(200, &[], seen.body.clone())).await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();

    // A POST with a Content-Length, and a PUT sent chunked, slowly.
    let post_body = pattern(300 * 1024 + 3, 0);
    let put_chunks: Vec<Bytes> = (0..8)
        .map(|i| pattern(32 * 1024 + i, 0).slice(i..))
        .collect();
    let put_body: Bytes = put_chunks.concat().into();
    let requests = [
        (Method::POST, full(post_body.clone()), post_body),
        (
            Method::PUT,
            trickle(put_chunks, Duration::from_millis(5)),
            put_body,
        ),
    ];
    for (method, body, sent) in requests {
        let request = Request::builder()
            .method(method.clone())
            .uri(proxy.url("/upload?name=a%20b"))
            .header("req-num", "7")
            .header("content-type", "application/octet-stream")
            .body(body)
            .expect("a request");
        let reply = client.fetch(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}");
        assert!(
            reply.cache_status_has("fwd=method"),
            "{method}: {}",
            reply.cache_status()
        );
        assert!(
            reply.cache_status_has("fwd-status=200"),
            "{method}: {}",
            reply.cache_status()
        );
        assert!(reply.body == sent, "{method}: the echoed body differs");

        let seen = origin.seen().pop().expect("the origin saw the request");
        assert_eq!(seen.method, method);
        assert_eq!(seen.path, "/upload?name=a%20b");
        assert_eq!(seen.headers["req-num"], "7", "{method}");
        assert_eq!(seen.headers["content-type"], "application/octet-stream");
        assert_eq!(seen.body.len(), sent.len(), "{method}: body length");
        assert!(seen.body == sent, "{method}: the origin got other bytes");
    }
    assert_eq!(origin.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_status_passes_through_even_unregistered_ones() {
    let origin = Origin::start(|seen, _| {
        let code: u16 = seen
            .path
            .trim_start_matches("/status/")
            .parse()
            .expect("a status in the path");
        response(code, &[], format!("status {code}"))
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();

    for code in [299, 599, 999] {
        let reply = client.get(&proxy.url(&format!("/status/{code}"))).await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.text(), format!("status {code}"));
        assert!(
            reply.cache_status_has(&format!("fwd-status={code}")),
            "{code}: {}",
            reply.cache_status()
        );
    }
    assert_eq!(origin.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_hangs_up_gets_a_502_that_says_so() {
    let origin = Origin::hanging_up().await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();

    let reply = client.get(&proxy.url("/anything")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/plain")),
        "{:?}",
        reply.headers
    );
    assert!(
        reply.text().contains("the origin could not be reached"),
        "{}",
        reply.text()
    );
    assert_eq!(origin.requests(), 1, "the proxy never reached the origin");
    let text = metrics(&client, &proxy).await;
    assert_eq!(metric(&text, "respcache_origin_errors_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_is_down_gets_a_502_that_says_so() {
    // Nothing listens on this port.
    let upstream = format!("http://{}", respcache_testkit::free_port());
    let proxy = Proxy::start(&upstream, "fs").await;
    let client = Client::default();

    let reply = client.get(&proxy.url("/anything")).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(
        reply.text().contains("the origin could not be reached"),
        "{}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_post_invalidates_the_stored_get() {
    let origin = Origin::start(|seen, n| {
        if seen.method == Method::GET {
            response(200, &[("cache-control", "max-age=60")], format!("get {n}"))
        } else {
            response(200, &[], "updated")
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    let url = proxy.url("/doc");

    let first = client.get(&url).await;
    assert!(first.cache_status_has("stored"), "{}", first.cache_status());
    let hit = client.get(&url).await;
    assert!(hit.cache_status_has("hit"), "{}", hit.cache_status());
    assert_eq!(hit.text(), "get 1");

    let post = client
        .fetch(Request::post(&url).body(full("new")).expect("a POST"))
        .await;
    assert_eq!(post.status, StatusCode::OK);
    assert!(
        post.cache_status_has("fwd=method"),
        "{}",
        post.cache_status()
    );

    let after = client.get(&url).await;
    assert!(
        after.cache_status_has("fwd=uri-miss"),
        "{}",
        after.cache_status()
    );
    assert_eq!(after.text(), "get 3");
    let gets = origin
        .seen()
        .iter()
        .filter(|seen| seen.method == Method::GET)
        .count();
    assert_eq!(gets, 2, "the GET after the POST was not sent to the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_counts_hits_misses_and_bytes_in_prometheus_text() {
    let body = Bytes::from_static(b"counted body");
    let origin = cacheable_origin(body.clone()).await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();

    let text = metrics(&client, &proxy).await;
    assert_eq!(metric(&text, "respcache_hits_total"), 0);
    assert_eq!(metric(&text, "respcache_misses_total"), 0);

    let miss = client.get(&proxy.url("/counted")).await;
    assert!(miss.cache_status_has("stored"), "{}", miss.cache_status());
    let hit = client.get(&proxy.url("/counted")).await;
    assert!(hit.cache_status_has("hit"), "{}", hit.cache_status());

    let reply = client.get(&proxy.admin_url("/metrics")).await;
    assert!(
        reply.headers["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.headers
    );
    let text = reply.text();
    assert!(text.contains("# TYPE respcache_hits counter"), "{text}");
    assert_eq!(metric(text, "respcache_hits_total"), 1);
    assert_eq!(metric(text, "respcache_misses_total"), 1);
    assert_eq!(metric(text, "respcache_stores_total"), 1);
    assert_eq!(metric(text, "respcache_origin_errors_total"), 0);
    let len = body.len() as u64;
    assert_eq!(metric(text, "respcache_hit_bytes_total"), len);
    assert_eq!(metric(text, "respcache_origin_bytes_total"), len);

    for path in ["/", "/nope", "/metrics/extra"] {
        let reply = client.get(&proxy.admin_url(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_connections_finishes_the_response_in_flight_and_exits_cleanly() {
    // The origin's body arrives when the test feeds it, so the response is
    // certainly in flight when the signal is sent.
    let (feed, body) = channel();
    let body = Arc::new(Mutex::new(Some(body)));
    let origin = Origin::start(move |_, _| {
        let body = body
            .lock()
            .expect("the body slot")
            .take()
            .unwrap_or_else(|| full("too late"));
        Response::builder()
            .header("cache-control", "max-age=60")
            .body(body)
            .expect("a response")
    })
    .await;
    let mut proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    let chunks: Vec<Bytes> = (0..10)
        .map(|i| Bytes::from(format!("chunk {i};").repeat(200)))
        .collect();
    let expected: Bytes = chunks.concat().into();

    feed.send(chunks[0].clone())
        .await
        .expect("feeding the body");
    let response = client
        .send(
            Request::get(proxy.url("/slow"))
                .body(full(""))
                .expect("a GET"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    proxy.terminate();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(proxy.addr).await {
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // Until the signal is handled connections are still accepted;
            // one the kernel queued as the listener closed is reset.
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("connecting after SIGTERM: {error}"),
        }
        assert!(
            Instant::now() < deadline,
            "the proxy still accepts connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        proxy.exited(),
        None,
        "the proxy exited with a response in flight"
    );

    // The rest of the body, over about a second.
    let feeding = tokio::spawn(async move {
        for chunk in &chunks[1..] {
            tokio::time::sleep(Duration::from_millis(100)).await;
            feed.send(chunk.clone()).await.expect("feeding the body");
        }
    });
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the whole body after SIGTERM")
        .to_bytes();
    feeding.await.expect("the feeding task");
    assert!(body == expected, "the in-flight body was cut or changed");

    let status = proxy.exit_status().await;
    assert!(status.success(), "respcache-proxy exited with {status}");
    assert_eq!(origin.requests(), 1);
}

// A plain `#[test]`: nothing here is async, and the binary must refuse the
// command line before it starts anything.
#[test]
fn a_command_line_without_upstream_exits_2_with_usage() {
    let output = support::proxy::run(&["--listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--upstream <URL>"), "{stderr}");
    assert!(stderr.contains("Usage: respcache-proxy"), "{stderr}");
}

#[test]
fn an_unknown_backend_exits_2_with_usage() {
    let output = support::proxy::run(&["--upstream", "http://127.0.0.1:9", "--backend", "s3"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'s3'") && stderr.contains("--backend"),
        "{stderr}"
    );
    assert!(stderr.contains("fs, cacache"), "the choices: {stderr}");
}

/// The revalidation flow: a stale entry goes to the origin with its
/// validator, and a `304` makes the proxy serve the stored body.
async fn stale_revalidated_with_304(backend: &str) {
    const ETAG: &str = "\"v1\"";
    let origin = Origin::start(|seen, _| {
        if seen.headers.get("if-none-match").is_some_and(|v| v == ETAG) {
            // The 304 also gives the entry a longer life.
            response(
                304,
                &[("etag", ETAG), ("cache-control", "max-age=60")],
                Bytes::new(),
            )
        } else {
            response(
                200,
                &[("etag", ETAG), ("cache-control", "max-age=0")],
                "version one",
            )
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), backend).await;
    let client = Client::default();
    let url = proxy.url("/validated");

    let first = client.get(&url).await;
    assert!(first.cache_status_has("stored"), "{}", first.cache_status());
    assert!(
        origin.seen()[0].headers.get("if-none-match").is_none(),
        "a first request carried a validator"
    );

    // max-age=0: stored for its validator, stale from the start.
    let revalidated = client.get(&url).await;
    assert_eq!(origin.requests(), 2, "the stale entry was not revalidated");
    assert_eq!(origin.seen()[1].headers["if-none-match"], ETAG);
    assert_eq!(revalidated.status, StatusCode::OK);
    assert_eq!(revalidated.text(), "version one");
    assert!(
        revalidated
            .cache_status()
            .contains("fwd=stale; fwd-status=304"),
        "{}",
        revalidated.cache_status()
    );
    assert_eq!(revalidated.headers["etag"], ETAG);

    // The 304's max-age=60 now holds: a hit, with the same body.
    let refreshed = client.get(&url).await;
    assert!(
        refreshed.cache_status_has("hit"),
        "{}",
        refreshed.cache_status()
    );
    assert_eq!(refreshed.text(), "version one");
    assert_eq!(origin.requests(), 2);

    // The origin sent the body once; the other two came from storage.
    let text = metrics(&client, &proxy).await;
    let len = "version one".len() as u64;
    assert_eq!(metric(&text, "respcache_origin_bytes_total"), len);
    assert_eq!(metric(&text, "respcache_hit_bytes_total"), 2 * len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_revalidated_and_a_304_serves_the_stored_body_with_the_fs_backend() {
    stale_revalidated_with_304("fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_revalidated_and_a_304_serves_the_stored_body_with_the_cacache_backend() {
    stale_revalidated_with_304("cacache").await;
}

/// A GET for `target` (any form, sent as written) with `Host: host`, on a
/// connection of its own; the whole response as text.
async fn raw_get(proxy: &Proxy, target: &str, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connecting to the proxy");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("sending the request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the proxy answers and closes")
        .expect("reading the response");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_is_asked_for_the_url_an_entry_is_stored_under() {
    // The origin answers with the Host and path it saw.
    let origin = Origin::start(|seen, _| {
        let host = seen.headers["host"].to_str().unwrap_or("?").to_owned();
        response(
            200,
            &[("cache-control", "max-age=60")],
            format!("{host} {}", seen.path),
        )
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;

    // An absolute-form target names the authority: it replaces Host
    // (RFC 9112 §3.2.2), and the entry is stored under it.
    let absolute = raw_get(&proxy, "http://a.example/page", "b.example").await;
    assert!(absolute.ends_with("a.example /page"), "{absolute}");
    let seen = origin.seen().pop().expect("the origin saw the request");
    assert_eq!(seen.headers["host"], "a.example");
    let via = seen.headers["via"].to_str().unwrap();
    assert!(
        via.starts_with("1.1 respcache-"),
        "this proxy's own name: {via}"
    );
    let same = raw_get(&proxy, "/page", "a.example").await;
    assert!(same.contains("; hit"), "{same}");
    assert!(same.ends_with("a.example /page"), "{same}");
    let other = raw_get(&proxy, "/page", "b.example").await;
    assert!(other.ends_with("b.example /page"), "{other}");

    // A path not in normal form goes to the origin as sent and is stored
    // for no URL.
    for _ in 0..2 {
        let dotted = raw_get(&proxy, "/admin/../public/x", "a.example").await;
        assert!(dotted.ends_with("a.example /admin/../public/x"), "{dotted}");
        assert!(dotted.contains("fwd=bypass"), "{dotted}");
    }
    let normal = raw_get(&proxy, "/public/x", "a.example").await;
    assert!(normal.ends_with("a.example /public/x"), "{normal}");
    assert!(normal.contains("fwd=uri-miss"), "{normal}");
    assert_eq!(origin.requests(), 5);
}
