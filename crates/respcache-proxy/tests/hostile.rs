//! The real `respcache-proxy` binary against a hostile client: poisoning,
//! replayed sessions, amplification, forged forwarding, loops, slow and
//! idle clients, and the classics of HTTP/1 request smuggling. Each test
//! fails against a proxy without the defence it names.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use respcache_testkit as kit;
use support::{Body, Client, Origin, Proxy, full, response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `raw` on a connection of its own and reads until the proxy
/// closes it (or 10 s pass); what came back, as text.
async fn raw(proxy: &Proxy, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connecting");
    stream.write_all(raw).await.expect("sending");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

fn get(url: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(full(Bytes::new())).expect("a request")
}

/// An origin that answers with the `Host` it was asked for.
async fn echo_host() -> Origin {
    Origin::start(|seen, _| {
        let host = seen
            .headers
            .get("host")
            .map_or("none", |h| h.to_str().unwrap());
        response(
            200,
            &[("cache-control", "max-age=600")],
            format!("site {host}"),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_host_in_connection_cannot_poison_another_site() {
    let origin = echo_host().await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let attack = raw(
        &proxy,
        b"GET /vhost HTTP/1.1\r\nHost: www.site\r\nConnection: host, close\r\n\r\n",
    )
    .await;
    assert!(attack.contains("fwd=bypass"), "{attack}");
    let victim = Client::default()
        .fetch(get(&proxy.url("/vhost"), &[("host", "www.site")]))
        .await;
    assert_eq!(
        victim.text(),
        "site www.site",
        "the attacker's answer was stored for www.site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_host_passes_through_uncached() {
    let origin = echo_host().await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let old = raw(&proxy, b"GET /old HTTP/1.0\r\n\r\n").await;
    let upstream = origin.addr.to_string();
    assert!(old.ends_with(&format!("site {upstream}")), "{old}");
    assert!(old.contains("fwd=bypass"), "{old}");
    // Not stored under the upstream's name, which a virtual host may
    // answer: a client naming it gets its own answer.
    let named = Client::default()
        .fetch(get(&proxy.url("/old"), &[("host", &upstream)]))
        .await;
    assert!(!named.cache_status_has("hit"), "{}", named.cache_status());
    let before = origin.requests();
    raw(&proxy, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        origin.requests(),
        before + 1,
        "a Host-less request was a hit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_page_is_never_replayed_to_another_client() {
    // Express's default: a weak ETag, no Cache-Control, a session cookie.
    let origin = Origin::start(|seen, n| {
        let who = seen
            .headers
            .get("cookie")
            .map_or("anonymous", |c| c.to_str().unwrap());
        response(
            200,
            &[
                ("etag", &format!("W/\"{who}\"")),
                ("set-cookie", "sid=ALICE"),
            ],
            format!("page {n} of {who}"),
        )
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    let url = proxy.url("/account");
    let alice = client.fetch(get(&url, &[("cookie", "sid=ALICE")])).await;
    assert_eq!(alice.text(), "page 1 of sid=ALICE");
    let mallory = client
        .fetch(get(&url, &[("cache-control", "max-stale")]))
        .await;
    assert!(
        !mallory.text().contains("ALICE"),
        "replayed: {}",
        mallory.text()
    );
    assert!(
        mallory
            .headers
            .get("set-cookie")
            .is_none_or(|c| c == "sid=ALICE" && mallory.text().contains("anonymous"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_s_cookie_never_reaches_another() {
    let origin = Origin::start(|seen, n| {
        if seen.headers.contains_key("if-none-match") {
            return response(
                304,
                &[
                    ("etag", "\"v\""),
                    ("set-cookie", "sid=BOB"),
                    ("cache-control", "public, max-age=600"),
                ],
                Bytes::new(),
            );
        }
        match seen.path.as_str() {
            "/refreshed" => response(
                200,
                &[("etag", "\"v\""), ("cache-control", "public, max-age=0")],
                "page",
            ),
            _ => response(
                200,
                &[
                    ("cache-control", "max-age=600"),
                    ("set-cookie", &format!("sid=USER{n}")),
                ],
                "welcome",
            ),
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    let url = proxy.url("/login");
    let alice = client.get(&url).await;
    assert_eq!(alice.headers["set-cookie"], "sid=USER1");
    let bob = client.get(&url).await;
    assert_eq!(
        bob.headers["set-cookie"], "sid=USER2",
        "Alice's session was handed out"
    );

    let url = proxy.url("/refreshed");
    client.get(&url).await;
    let revalidated = client.get(&url).await;
    assert_eq!(revalidated.headers["set-cookie"], "sid=BOB");
    let anonymous = client.get(&url).await;
    assert!(
        anonymous.cache_status_has("hit"),
        "{}",
        anonymous.cache_status()
    );
    assert!(
        anonymous.headers.get("set-cookie").is_none(),
        "Bob's cookie went into the entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_on_an_unstorable_url_does_not_pull_its_body() {
    const CHUNK: usize = 64 * 1024;
    const BODY: usize = 32 * 1024 * 1024;
    let produced = Arc::new(AtomicUsize::new(0));
    let origin = Origin::start({
        let produced = produced.clone();
        move |_, _| {
            let produced = produced.clone();
            let chunks = (0..BODY / CHUNK).map(move |_| {
                produced.fetch_add(CHUNK, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![
                    b'x';
                    CHUNK
                ])))
            });
            Response::builder()
                .header("cache-control", "no-store")
                .header("content-length", BODY)
                .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
                .unwrap()
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    for _ in 0..10 {
        let answered = client
            .fetch(get(&proxy.url("/big"), &[("if-none-match", "*")]))
            .await;
        assert_eq!(answered.status, StatusCode::NOT_MODIFIED);
    }
    // Let anything still running in the background show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // What socket buffers take before the proxy hangs up is the bound:
    // a few MiB a request, never the body.
    let pulled = produced.load(Ordering::SeqCst);
    assert_eq!(origin.requests(), 10);
    assert!(
        pulled < 10 * 4 * 1024 * 1024,
        "ten 304s pulled {} MiB from the origin; each body is {} MiB",
        pulled / 1024 / 1024,
        BODY / 1024 / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_an_unstorable_url_go_to_the_origin_side_by_side() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let origin = Origin::start_async({
        let (in_flight, most) = (in_flight.clone(), most.clone());
        move |_, _| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                response(200, &[("cache-control", "no-store")], "live")
            })
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let url = proxy.url("/poll");
    Client::default().get(&url).await;
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::default().get(&url).await })
        })
        .collect();
    for client in clients {
        assert_eq!(client.await.unwrap().text(), "live");
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        5,
        "the five queued behind one another"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_claims_about_itself_is_replaced_by_what_the_connection_shows() {
    let origin = Origin::start(|_, _| response(200, &[("cache-control", "no-store")], "ok")).await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    Client::default()
        .fetch(get(
            &proxy.url("/who"),
            &[
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-for", "10.9.9.9"),
                ("forwarded", "for=10.9.9.9"),
                ("x-original-url", "/admin"),
                ("host", "www.site"),
            ],
        ))
        .await;
    let seen = origin.seen().pop().unwrap();
    assert!(seen.headers.get("x-forwarded-host").is_none());
    assert!(seen.headers.get("x-original-url").is_none());
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["forwarded"],
        "for=127.0.0.1;proto=http;host=www.site"
    );

    let trusting = Proxy::start_with(
        &origin.base_url(),
        "fs",
        &["--trust-forwarded", "127.0.0.1"],
    )
    .await;
    Client::default()
        .fetch(get(
            &trusting.url("/who"),
            &[("x-forwarded-for", "203.0.113.7")],
        ))
        .await;
    let seen = origin.seen().pop().unwrap();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_comes_back_through_the_proxy_is_a_loop() {
    let origin = echo_host().await;
    let proxy = Proxy::start_with(&origin.base_url(), "fs", &["--via-name", "edge-7"]).await;
    let client = Client::default();
    let looped = client
        .fetch(get(&proxy.url("/l"), &[("via", "1.1 edge-7")]))
        .await;
    assert_eq!(looped.status, StatusCode::LOOP_DETECTED);
    assert_eq!(origin.requests(), 0);
    let passed = client
        .fetch(get(&proxy.url("/l"), &[("via", "1.1 edge-8")]))
        .await;
    assert_eq!(passed.status, StatusCode::OK);
    let via: Vec<_> = origin.seen()[0]
        .headers
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(via, ["1.1 edge-8", "1.1 edge-7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_tunnelled_to_the_origin_and_never_cached() {
    // An origin that switches protocols, then echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.contains("upgrade: websocket"), "{head}");
        stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0; 64];
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    });
    let proxy = Proxy::start(&format!("http://{origin}"), "fs").await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        client
            .read_exact(&mut byte)
            .await
            .expect("the proxy's answer");
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    client.write_all(b"ping").await.unwrap();
    let mut echo = [0; 4];
    tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut echo))
        .await
        .expect("the echo in time")
        .unwrap();
    assert_eq!(&echo, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off() {
    let origin = echo_host().await;
    let proxy = Proxy::start_with(&origin.base_url(), "fs", &["--client-timeout", "1"]).await;
    // Idle: connects, sends nothing.
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    let mut byte = [0];
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection stayed open"
    );
    // Slow: a header byte every 300 ms, forever.
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let dripping = async {
        loop {
            if slow.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let cut = tokio::time::timeout(Duration::from_secs(10), dripping).await;
    assert!(
        cut.is_ok(),
        "a client sending one header byte at a time was never cut off"
    );
    let mut got = String::new();
    let _ = slow.read_to_string(&mut got).await;
    assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got:?}");
    assert_eq!(origin.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_hundred_stalled_readers_do_not_delay_a_small_hit() {
    let big = kit::pattern(4 * 1024 * 1024, 3);
    let origin = Origin::start({
        let big = big.clone();
        move |seen, _| {
            let body = if seen.path == "/big" {
                big.clone()
            } else {
                Bytes::from_static(b"small")
            };
            response(200, &[("cache-control", "max-age=600")], body)
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    client.get(&proxy.url("/big")).await;
    client.get(&proxy.url("/small")).await;
    let mut stalled = Vec::new();
    for _ in 0..600 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let hit = tokio::time::timeout(Duration::from_secs(10), client.get(&proxy.url("/small")))
        .await
        .expect("a small hit waited behind 600 stalled readers");
    assert!(hit.cache_status_has("hit"), "{}", hit.cache_status());
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_largest_stored_reaches_its_client_whole_and_is_not_stored() {
    let big = kit::pattern(3 * 1024 * 1024, 5);
    let origin = Origin::start({
        let big = big.clone();
        move |_, _| response(200, &[("cache-control", "max-age=600")], big.clone())
    })
    .await;
    let proxy = Proxy::start_with(&origin.base_url(), "fs", &["--max-body-size", "1MiB"]).await;
    let client = Client::default();
    let first = client.get(&proxy.url("/huge")).await;
    assert!(first.body == big, "the client did not get the whole body");
    let second = client.get(&proxy.url("/huge")).await;
    assert!(!second.cache_status_has("hit"), "{}", second.cache_status());
    assert_eq!(origin.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_and_splitting_attempts_are_refused_before_the_origin() {
    let origin = echo_host().await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let attempts: [&[u8]; 3] = [
        // Two lengths that disagree.
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 12\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n",
        // A header folded over two lines (obsolete line folding).
        b"GET /a HTTP/1.1\r\nHost: a\r\nX-Split: one\r\n two\r\n\r\n",
        // A bare CR inside a value.
        b"GET /a HTTP/1.1\r\nHost: a\r\nX-Split: one\rInjected: two\r\n\r\n",
    ];
    for attempt in attempts {
        let reply = raw(&proxy, attempt).await;
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(attempt)
        );
    }
    // Both framings: Transfer-Encoding wins and the connection closes
    // after the answer (RFC 9112 §6.3), so what a reader of the length
    // would take for body is never a request of its own.
    let smuggle = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 36\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let reply = raw(&proxy, smuggle).await;
    assert!(
        reply.contains("connection: close") || reply.starts_with("HTTP/1.1 400"),
        "{reply:?}"
    );
    assert!(
        origin.seen().iter().all(|seen| seen.path != "/smuggled"),
        "a smuggled request reached the origin"
    );
    let before_oversize = origin.requests();
    // Oversize headers.
    let mut huge = b"GET /a HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let reply = raw(&proxy, &huge).await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431") || reply.starts_with("HTTP/1.1 400"),
        "{reply:?}"
    );
    assert_eq!(
        origin.requests(),
        before_oversize,
        "an attempt reached the origin"
    );
    assert!(
        before_oversize <= 1,
        "only the chunked POST may reach the origin"
    );

    // A body on a GET reaches the origin, and is never cached under the URL.
    let with_body = raw(
        &proxy,
        b"GET /q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert!(with_body.contains("fwd=bypass"), "{with_body}");
    let plain = Client::default()
        .fetch(get(&proxy.url("/q"), &[("host", "a")]))
        .await;
    assert!(!plain.cache_status_has("hit"), "{}", plain.cache_status());
}
