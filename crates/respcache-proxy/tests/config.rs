//! The config file end to end: the real binary started with `--config`,
//! real origins on loopback, real `redis-server`s: virtual hosts, route
//! rules, the redis backend shared by two proxies, health, reloads under
//! load, the access log.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use support::{Client, Origin, Proxy, full, ok};

/// The lines every test's config starts with.
fn head(addr: SocketAddr, admin: SocketAddr, dir: &Path) -> String {
    format!(
        "listen = \"{addr}\"\nadmin = \"{admin}\"\n[cache]\ndir = \"{}\"\n",
        dir.display()
    )
}

async fn get_host(client: &Client, url: &str, host: &str) -> support::client::Reply {
    client
        .fetch(
            Request::get(url)
                .header("host", host)
                .body(full(Bytes::new()))
                .unwrap(),
        )
        .await
}

#[test]
fn check_config_names_the_line_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[vhost]]\nupstream = \"http://127.0.0.1:1\"\n\n[[vhost.route]]\npath = \"/\"\nttl = \"1 fortnight\"\n",
    )
    .unwrap();
    let output = support::proxy::run(&["--config", file.to_str().unwrap(), "--check-config"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 6"), "{stderr}");
    assert!(stderr.contains("ttl"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/respcache-proxy.example.toml");
    let output = support::proxy::run(&["--config", example, "--check-config"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("is valid"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_send_each_host_to_its_own_origin() {
    let a = Origin::start(|_, _| ok(&[("cache-control", "max-age=60")], "from a")).await;
    let b = Origin::start(|_, _| ok(&[("cache-control", "max-age=60")], "from b")).await;
    let (a_url, b_url) = (a.base_url(), b.base_url());
    let proxy = Proxy::start_config(
        |addr, admin, dir| {
            format!(
                "{}[[vhost]]\nhosts = [\"a.test\"]\nupstream = \"{a_url}\"\n[[vhost]]\nhosts = [\"*.b.test\"]\nupstream = \"{b_url}\"\n",
                head(addr, admin, dir)
            )
        },
        &[],
    )
    .await;
    let client = Client::default();
    let url = proxy.url("/same-path");
    assert_eq!(get_host(&client, &url, "a.test").await.text(), "from a");
    assert_eq!(
        get_host(&client, &url, "www.b.test:8080").await.text(),
        "from b"
    );
    // Both are stored, each under its own host.
    assert!(
        get_host(&client, &url, "A.test")
            .await
            .cache_status_has("hit")
    );
    assert!(
        get_host(&client, &url, "www.b.test:8080")
            .await
            .cache_status_has("hit")
    );
    assert_eq!((a.requests(), b.requests()), (1, 1));
    let other = get_host(&client, &url, "b.test").await;
    assert_eq!(
        other.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        other.text()
    );
}

/// An origin that answers with the query it was asked, and no freshness
/// unless the path says so.
async fn echo_origin() -> Origin {
    Origin::start(|seen, n| {
        let cc = if seen.path.starts_with("/fresh") {
            "max-age=60"
        } else {
            ""
        };
        let mut headers = vec![("etag", "\"v\"")];
        if !cc.is_empty() {
            headers.push(("cache-control", cc));
        }
        ok(&headers, format!("{} #{n}", seen.path))
    })
    .await
}

fn routes_config(addr: SocketAddr, admin: SocketAddr, dir: &Path, upstream: &str) -> String {
    format!(
        r#"{}
[[vhost]]
upstream = "{upstream}"
[[vhost.route]]
path = "/fresh/private"
bypass = true
[[vhost.route]]
glob = "/fresh/**/*.css"
ttl = "1h"
[[vhost.route]]
path = "/fresh/"
ignore_query = ["utm_*", "fbclid"]
sort_query = true
key_headers = ["x-tenant"]
[[vhost.route]]
path = "/unmarked/defaulted"
default_ttl = "1m"
"#,
        head(addr, admin, dir)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_ignores_utm_parameters_serves_one_entry_for_all_of_them() {
    let origin = echo_origin().await;
    let upstream = origin.base_url();
    let proxy = Proxy::start_config(|a, b, d| routes_config(a, b, d, &upstream), &[]).await;
    let client = Client::default();

    let first = client
        .get(&proxy.url("/fresh/page?utm_source=news&id=7&fbclid=x"))
        .await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        origin.seen()[0].path,
        "/fresh/page?utm_source=news&id=7&fbclid=x",
        "the origin is asked for the URL as sent"
    );
    for url in [
        "/fresh/page?id=7",
        "/fresh/page?utm_medium=mail&id=7",
        "/fresh/page?id=7&utm_campaign=z",
    ] {
        let reply = client.get(&proxy.url(url)).await;
        assert!(
            reply.cache_status_has("hit"),
            "{url}: {}",
            reply.cache_status()
        );
        assert_eq!(reply.body, first.body, "{url}");
    }
    assert_eq!(origin.requests(), 1);
    // Other parameters still count, in any order once sorted.
    let other = client.get(&proxy.url("/fresh/page?id=8")).await;
    assert!(!other.cache_status_has("hit"));
    let sorted = client.get(&proxy.url("/fresh/sorted?b=2&a=1")).await;
    let reordered = client.get(&proxy.url("/fresh/sorted?a=1&b=2")).await;
    assert!(
        reordered.cache_status_has("hit"),
        "{}",
        reordered.cache_status()
    );
    assert_eq!(sorted.body, reordered.body);
    // A field named in the key keeps tenants apart.
    let tenant = |t: &'static str| {
        Request::get(proxy.url("/fresh/tenant"))
            .header("x-tenant", t)
            .body(full(Bytes::new()))
            .unwrap()
    };
    let one = client.fetch(tenant("one")).await;
    let two = client.fetch(tenant("two")).await;
    assert!(
        !two.cache_status_has("hit"),
        "tenant two got tenant one's entry"
    );
    assert_ne!(one.body, two.body);
    assert!(client.fetch(tenant("one")).await.cache_status_has("hit"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_ttls_and_bypass_decide_what_is_stored() {
    let origin = echo_origin().await;
    let upstream = origin.base_url();
    let proxy = Proxy::start_config(|a, b, d| routes_config(a, b, d, &upstream), &[]).await;
    let client = Client::default();

    // No freshness from the origin: a default TTL makes it a hit...
    client.get(&proxy.url("/unmarked/defaulted")).await;
    let second = client.get(&proxy.url("/unmarked/defaulted")).await;
    assert!(second.cache_status_has("hit"), "{}", second.cache_status());
    assert!(
        second.cache_status().contains("ttl=5") || second.cache_status().contains("ttl=6"),
        "a minute's freshness: {}",
        second.cache_status()
    );
    assert!(
        !second.headers.contains_key("respcache-route-control"),
        "the route's field reached a client"
    );
    // ...where no route gives one, it is revalidated.
    client.get(&proxy.url("/unmarked/plain")).await;
    let plain = client.get(&proxy.url("/unmarked/plain")).await;
    assert!(!plain.cache_status_has("hit"), "{}", plain.cache_status());

    // A glob's TTL overrides the origin's 60 s.
    client.get(&proxy.url("/fresh/a/b/site.css")).await;
    let css = client.get(&proxy.url("/fresh/a/b/site.css")).await;
    assert!(
        css.cache_status().contains("ttl=359"),
        "{}",
        css.cache_status()
    );

    // Bypass: a cacheable response, never stored nor served from cache.
    let before = origin.requests();
    for _ in 0..2 {
        let reply = client.get(&proxy.url("/fresh/private/x")).await;
        assert!(!reply.cache_status_has("hit"), "{}", reply.cache_status());
    }
    assert_eq!(origin.requests(), before + 2);

    // Nor under another spelling of the same path, which the origin reads
    // as the bypassed one (web cache deception).
    for spelling in [
        "/fresh/%70rivate/me",
        "/fresh//private/me",
        "/fresh/x/../private/me",
    ] {
        let before = origin.requests();
        for _ in 0..2 {
            let reply = client.get(&proxy.url(spelling)).await;
            assert!(
                !reply.cache_status_has("hit"),
                "{spelling}: {}",
                reply.cache_status()
            );
        }
        assert_eq!(origin.requests(), before + 2, "{spelling} was cached");
    }

    // A request without Host (HTTP/1.0) is not keyed by the upstream's
    // name: it passes through.
    let before = origin.requests();
    for _ in 0..2 {
        let head = host_less(proxy.addr, "/fresh/no-host").await;
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{head}"
        );
    }
    assert_eq!(
        origin.requests(),
        before + 2,
        "a Host-less request was cached"
    );
}

/// Sends `GET path HTTP/1.0` without `Host` to `addr`; the response, whole.
async fn host_less(addr: SocketAddr, path: &str) -> String {
    send_raw(addr, &format!("GET {path} HTTP/1.0\r\n\r\n")).await
}

/// Sends `request` as it is to `addr`; the response, whole.
async fn send_raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the proxy answered")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// A proxy on the redis backend at `url`, in front of `upstream`.
async fn redis_proxy(upstream: &str, url: &str) -> Proxy {
    Proxy::start_config(
        |addr, admin, dir| {
            format!(
                "{}backend = \"redis\"\nredis_prefix = \"shared\"\n[[vhost]]\nupstream = \"{upstream}\"\n",
                head(addr, admin, dir)
            )
        },
        &[("RESPCACHE_REDIS_URL", url)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_redis_serve_what_either_stored() {
    let dir = tempfile::tempdir().unwrap();
    let redis = respcache_testkit::RedisServer::start(dir.path());
    let origin =
        Origin::start(|_, n| ok(&[("cache-control", "max-age=60")], format!("body #{n}"))).await;
    let one = redis_proxy(&origin.base_url(), &redis.url()).await;
    let two = redis_proxy(&origin.base_url(), &redis.url()).await;
    let client = Client::default();
    // Behind a load balancer both see the name clients asked for.
    const HOST: &str = "www.example.test";

    let stored = get_host(&client, &one.url("/shared"), HOST).await;
    assert_eq!(stored.text(), "body #1");
    // The store commits after the body has gone to the client: the first
    // proxy's hit says it is in Redis.
    let deadline = Instant::now() + Duration::from_secs(5);
    let hit = loop {
        let reply = get_host(&client, &one.url("/shared"), HOST).await;
        if reply.cache_status_has("hit") {
            break reply;
        }
        assert!(Instant::now() < deadline, "the first proxy never stored it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let asked = origin.requests();
    let served = get_host(&client, &two.url("/shared"), HOST).await;
    assert!(served.cache_status_has("hit"), "{}", served.cache_status());
    assert_eq!(served.text(), hit.text());
    assert_eq!(
        origin.requests(),
        asked,
        "the second proxy asked the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_503_while_the_backend_is_down_and_healthz_still_200() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = respcache_testkit::RedisServer::start(dir.path());
    let origin = Origin::start(|_, _| ok(&[], "x")).await;
    let proxy = redis_proxy(&origin.base_url(), &redis.url()).await;
    let client = Client::default();

    assert_eq!(
        client.get(&proxy.admin_url("/readyz")).await.status,
        StatusCode::OK
    );
    redis.stop();
    let down = client.get(&proxy.admin_url("/readyz")).await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.text()
    );
    assert!(down.text().contains("backend"), "{}", down.text());
    assert_eq!(
        client.get(&proxy.admin_url("/healthz")).await.status,
        StatusCode::OK
    );
    // A cache failure degrades to pass-through.
    assert_eq!(client.get(&proxy.url("/")).await.text(), "x");
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(&proxy.admin_url("/readyz")).await.status != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "never ready again after redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_fails_no_request_and_applies_the_new_rules() {
    let origin = echo_origin().await;
    let upstream = origin.base_url();
    let config = |bypass: bool| {
        let upstream = upstream.clone();
        move |addr, admin, dir: &Path| {
            format!(
                "{}[access_log]\nformat = \"off\"\n[[vhost]]\nupstream = \"{upstream}\"\n[[vhost.route]]\npath = \"/fresh/\"\nbypass = {bypass}\n",
                head(addr, admin, dir)
            )
        }
    };
    let mut proxy = Proxy::start_config(config(false), &[]).await;
    let client = Client::default();
    client.get(&proxy.url("/fresh/x")).await;
    assert!(
        client
            .get(&proxy.url("/fresh/x"))
            .await
            .cache_status_has("hit")
    );

    // Clients loop, on kept-alive connections and new ones, while the
    // config is reloaded again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for i in 0..6 {
        let (stop, done, url) = (
            stop.clone(),
            done.clone(),
            proxy.url(&format!("/fresh/{}", i % 3)),
        );
        loops.push(tokio::spawn(async move {
            let pooled = Client::default();
            while !stop.load(Ordering::Relaxed) {
                let client = if i % 2 == 0 {
                    pooled.clone()
                } else {
                    Client::default()
                };
                let request = Request::get(&url).body(full(Bytes::new())).unwrap();
                let response = tokio::time::timeout(Duration::from_secs(5), client.fetch(request))
                    .await
                    .expect("a request hung across a reload");
                assert_eq!(response.status, StatusCode::OK, "{}", response.text());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let file = proxy.config_file();
    let text = std::fs::read_to_string(&file).unwrap();
    for round in 0..10 {
        let flipped = text.replace("bypass = false", &format!("bypass = {}", round % 2 == 0));
        std::fs::write(&file, flipped).unwrap();
        proxy.signal("HUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&file, text.replace("bypass = false", "bypass = true")).unwrap();
    proxy.signal("HUP");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        // A failed request panics its task.
        task.await.expect("a client saw a failed request");
    }
    assert!(
        done.load(Ordering::Relaxed) > 50,
        "too little load to prove anything"
    );
    assert!(proxy.exited().is_none(), "the proxy died on SIGHUP");
    // Signals close together may arrive as one: at least the first and
    // the last are read.
    let reloads = proxy.log().matches("reloaded the config").count();
    assert!(reloads >= 2, "{reloads} reloads:\n{}", proxy.log());
    // The last config bypasses the cache: the entry stored before is
    // no longer served.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = client.get(&proxy.url("/fresh/x")).await;
        if !reply.cache_status_has("hit") {
            assert!(
                reply.cache_status_has("fwd=bypass"),
                "{}",
                reply.cache_status()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reloaded route never applied:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A broken config changes nothing and is said to be broken.
    std::fs::write(&file, "listen = 5\n").unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.log().contains("reload failed") {
        assert!(Instant::now() < deadline, "{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        client.get(&proxy.url("/fresh/y")).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_a_line_per_request_with_cache_status_bytes_and_client() {
    let origin = echo_origin().await;
    let upstream = origin.base_url();
    let start = |format: &'static str| {
        let upstream = upstream.clone();
        Proxy::start_config(
            move |addr, admin, dir| {
                format!(
                    "purge_from = [\"127.0.0.1\"]\n{}[access_log]\nformat = \"{format}\"\n[[vhost]]\nupstream = \"{upstream}\"\n",
                    head(addr, admin, dir)
                )
            },
            &[],
        )
    };
    let client = Client::default();

    let common = start("common").await;
    let first = client.get(&common.url("/fresh/log")).await;
    client.get(&common.url("/fresh/log")).await;
    let lines = wait_for_lines(&common, 2).await;
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    assert!(
        lines[0].contains("\"GET /fresh/log HTTP/1.1\" 200"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&format!(" 200 {} ", first.body.len())),
        "the bytes: {}",
        lines[0]
    );
    assert!(
        lines[0].contains("cache=uri-miss origin_ms="),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("origin_ms=-"), "{}", lines[0]);
    assert!(lines[1].contains("cache=hit origin_ms=-"), "{}", lines[1]);
    // A quote or backslash in the target cannot end the quoted request
    // line and forge the fields after it.
    send_raw(
        common.addr,
        "GET /fresh/a\"b\\c\" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let lines = wait_for_lines(&common, 3).await;
    assert!(
        lines[2].contains(r#""GET /fresh/a\"b\\c\" HTTP/1.1" 200"#),
        "{}",
        lines[2]
    );
    // A PURGE on the client listener is a request like any other.
    let purged = client
        .fetch(
            Request::builder()
                .method("PURGE")
                .uri(common.url("/fresh/log"))
                .body(full(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(purged.status, StatusCode::OK, "{}", purged.text());
    let lines = wait_for_lines(&common, 4).await;
    assert!(
        lines[3].contains(&format!(
            "\"PURGE /fresh/log HTTP/1.1\" 200 {} ",
            purged.body.len()
        )),
        "{}",
        lines[3]
    );

    let json = start("json").await;
    client.get(&json.url("/fresh/json")).await;
    let lines = wait_for_lines(&json, 1).await;
    let entry: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON line");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["cache"], "uri-miss");
    assert_eq!(entry["client"], "127.0.0.1");
    assert_eq!(entry["uri"], "/fresh/json");
    assert!(entry["bytes"].as_u64().unwrap() > 0);
    assert!(entry["origin_ms"].is_u64());

    let off = start("off").await;
    client.get(&off.url("/fresh/off")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(off.stdout(), "", "the log is off");
}

async fn wait_for_lines(proxy: &Proxy, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<String> = proxy.stdout().lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} access log lines: {lines:?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
