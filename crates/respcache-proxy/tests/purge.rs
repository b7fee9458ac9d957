//! Purging through the real `respcache-proxy` binary: `POST /purge` on
//! the admin listener by URL (every `Vary` variant), by prefix and by
//! tag, hard and soft, with and without the token; and `PURGE` on the
//! client listener from allowed addresses only.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use support::{Client, Origin, Proxy, full, ok};

const TOKEN: &str = "s3cret-token";

/// An origin whose responses are fresh for an hour, vary on `Accept`,
/// carry tags by path (`/blog/...` → `blog`, everything → `all`) and
/// name the path in their body.
async fn origin() -> Origin {
    Origin::start(|seen, _| {
        let path = seen.path.clone();
        let tags = if path.starts_with("/blog/") {
            "blog all"
        } else {
            "all"
        };
        let accept = seen
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        ok(
            &[
                ("cache-control", "max-age=3600"),
                ("vary", "accept"),
                ("surrogate-key", tags),
                ("cache-tag", "edge"),
            ],
            format!("{path} for {accept}"),
        )
    })
    .await
}

async fn get(client: &Client, url: &str, accept: &str) -> support::client::Reply {
    client
        .fetch(
            Request::get(url)
                .header("accept", accept)
                .body(full(Bytes::new()))
                .expect("a GET"),
        )
        .await
}

/// `POST /purge?QUERY` on the admin listener with `token`, if any.
async fn purge(
    client: &Client,
    proxy: &Proxy,
    query: &str,
    token: Option<&str>,
) -> support::client::Reply {
    let mut request = Request::post(proxy.admin_url(&format!("/purge?{query}")));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    client
        .fetch(request.body(full(Bytes::new())).expect("a POST"))
        .await
}

/// The URL-encoded form of `value` for a query.
fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Whether `url` with `accept` is answered from the cache.
async fn is_hit(client: &Client, url: &str, accept: &str) -> bool {
    let reply = get(client, url, accept).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.cache_status_has("hit")
}

async fn proxy_with_token(origin: &Origin, backend: &str) -> Proxy {
    Proxy::start_with(&origin.base_url(), backend, &["--purge-token", TOKEN]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_purge_needs_the_token_and_removes_every_vary_variant() {
    let origin = origin().await;
    let proxy = proxy_with_token(&origin, "fs").await;
    let client = Client::default();
    let page = proxy.url("/page");
    let other = proxy.url("/page2");
    for (url, accept) in [(&page, "a"), (&page, "b"), (&other, "a")] {
        get(&client, url, accept).await;
        assert!(is_hit(&client, url, accept).await, "{url} {accept} stored");
    }
    let query = format!("url={}", encoded(&page));

    for token in [None, Some("wrong"), Some("s3cret-tokeN"), Some("")] {
        let refused = purge(&client, &proxy, &query, token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(refused.headers["www-authenticate"], "Bearer");
    }
    assert!(is_hit(&client, &page, "a").await, "a refused purge purged");

    let done = purge(&client, &proxy, &query, Some(TOKEN)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.headers["content-type"], "application/json");
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(reply["purged"], 2, "two variants: {reply}");
    assert_eq!(reply["soft"], false);

    let before = origin.requests();
    assert!(!is_hit(&client, &page, "a").await, "variant a survived");
    assert!(!is_hit(&client, &page, "b").await, "variant b survived");
    assert_eq!(origin.requests(), before + 2);
    assert!(
        is_hit(&client, &other, "a").await,
        "a URL it is a prefix of was purged"
    );

    let never = format!("url={}", encoded(&proxy.url("/never")));
    let none = purge(&client, &proxy, &never, Some(TOKEN)).await;
    let reply: serde_json::Value = serde_json::from_slice(&none.body).unwrap();
    assert_eq!(reply["purged"], 0, "a URL never stored: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_purge_removes_the_urls_under_it_only() {
    let origin = origin().await;
    let proxy = proxy_with_token(&origin, "fs").await;
    let client = Client::default();
    let urls = [
        proxy.url("/blog/1"),
        proxy.url("/blog/2?page=3"),
        proxy.url("/blogroll"),
        proxy.url("/shop/1"),
    ];
    for url in &urls {
        get(&client, url, "a").await;
    }
    let query = format!("prefix={}", encoded(&proxy.url("/blog/")));
    assert_eq!(
        purge(&client, &proxy, &query, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let done = purge(&client, &proxy, &query, Some(TOKEN)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(reply["purged"], 2, "{reply}");
    assert!(!is_hit(&client, &urls[0], "a").await);
    assert!(!is_hit(&client, &urls[1], "a").await);
    assert!(
        is_hit(&client, &urls[2], "a").await,
        "/blogroll is not under /blog/"
    );
    assert!(is_hit(&client, &urls[3], "a").await);
}

async fn tag_purge(backend: &str) {
    let origin = origin().await;
    let proxy = proxy_with_token(&origin, backend).await;
    let client = Client::default();
    let blog = [proxy.url("/blog/1"), proxy.url("/blog/2")];
    let shop = proxy.url("/shop/1");
    for url in blog.iter().chain([&shop]) {
        get(&client, url, "a").await;
    }
    get(&client, &blog[0], "b").await;
    assert_eq!(
        purge(&client, &proxy, "tag=blog", Some("nope"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let done = purge(&client, &proxy, "tag=blog", Some(TOKEN)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(
        reply["purged"], 3,
        "two URLs, one with two variants: {reply}"
    );
    assert!(!is_hit(&client, &blog[0], "a").await);
    assert!(!is_hit(&client, &blog[0], "b").await);
    assert!(!is_hit(&client, &blog[1], "a").await);
    assert!(
        is_hit(&client, &shop, "a").await,
        "an untagged URL was purged"
    );

    // Tags from `Cache-Tag` too; the shop page and the refetched blog
    // pages carry `edge`.
    let done = purge(&client, &proxy, "tag=edge", Some(TOKEN)).await;
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(reply["purged"], 4, "{reply}");
    assert!(!is_hit(&client, &shop, "a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_purge_removes_the_tagged_responses_with_the_fs_index() {
    tag_purge("fs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_purge_reads_every_head_where_the_backend_keeps_no_index() {
    tag_purge("cacache").await;
}

/// An origin that answers with an `ETag` and `cache_control`, `304` to a
/// matching `If-None-Match`.
async fn validating_origin(cache_control: &'static str) -> Origin {
    Origin::start(move |seen, n| {
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return Response::builder()
                .status(304)
                .header("etag", "\"v1\"")
                .header("cache-control", cache_control)
                .body(full(Bytes::new()))
                .unwrap();
        }
        ok(
            &[("cache-control", cache_control), ("etag", "\"v1\"")],
            format!("version 1, answer {n}"),
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_purge_makes_the_next_request_revalidate() {
    let origin = validating_origin("max-age=3600").await;
    let proxy = proxy_with_token(&origin, "fs").await;
    let client = Client::default();
    let page = proxy.url("/page");
    let first = client.get(&page).await;
    assert!(client.get(&page).await.cache_status_has("hit"));

    let query = format!("url={}&soft=true", encoded(&page));
    let done = purge(&client, &proxy, &query, Some(TOKEN)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(reply, serde_json::json!({"purged": 1, "soft": true}));

    let after = client.get(&page).await;
    assert_eq!(origin.requests(), 2, "the next request went to the origin");
    let seen = origin.seen();
    assert_eq!(
        seen[1].headers.get("if-none-match").map(|v| v.as_bytes()),
        Some(&b"\"v1\""[..]),
        "it revalidated the stored response"
    );
    assert_eq!(after.body, first.body, "the stored body, kept by the 304");
    assert!(
        after.cache_status_has("fwd=stale"),
        "{}",
        after.cache_status()
    );
    // Refreshed by the 304: fresh again.
    assert!(client.get(&page).await.cache_status_has("hit"));
    assert_eq!(origin.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_purge_leaves_stale_while_revalidate_in_force() {
    let origin = validating_origin("max-age=3600, stale-while-revalidate=60").await;
    let proxy = proxy_with_token(&origin, "cacache").await;
    let client = Client::default();
    let page = proxy.url("/page");
    let first = client.get(&page).await;

    let query = format!("url={}&soft=1", encoded(&page));
    let done = purge(&client, &proxy, &query, Some(TOKEN)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());

    // Served stale at once, revalidated in the background.
    let after = client.get(&page).await;
    assert_eq!(after.body, first.body);
    assert!(after.cache_status_has("hit"), "{}", after.cache_status());
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.requests() < 2 {
        assert!(Instant::now() < deadline, "no background revalidation");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(origin.seen()[1].headers.contains_key("if-none-match"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_is_off_without_a_token_and_the_token_may_come_from_the_environment() {
    let origin = origin().await;
    let client = Client::default();
    let off = Proxy::start(&origin.base_url(), "fs").await;
    let refused = purge(&client, &off, "tag=all", Some(TOKEN)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert!(refused.text().contains("RESPCACHE_PURGE_TOKEN"));

    let from_env = Proxy::start_with_env(
        &origin.base_url(),
        "fs",
        &[],
        &[("RESPCACHE_PURGE_TOKEN", TOKEN)],
    )
    .await;
    get(&client, &from_env.url("/x"), "a").await;
    assert_eq!(
        purge(&client, &from_env, "tag=all", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let done = purge(&client, &from_env, "tag=all", Some(TOKEN)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(!from_env.log().contains(TOKEN), "the token was logged");

    let get_purge = client.get(&from_env.admin_url("/purge?tag=all")).await;
    assert_eq!(get_purge.status, StatusCode::METHOD_NOT_ALLOWED);
    let bad = purge(&client, &from_env, "colour=red", Some(TOKEN)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = purge(&client, &from_env, "url=ftp%3A%2F%2Fx%2F", Some(TOKEN)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn client_purge(client: &Client, url: &str) -> support::client::Reply {
    client
        .fetch(
            Request::builder()
                .method("PURGE")
                .uri(url)
                .body(full(Bytes::new()))
                .expect("a PURGE"),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_on_the_client_listener_only_from_allowed_addresses() {
    let origin = origin().await;
    let client = Client::default();

    let closed = Proxy::start(&origin.base_url(), "fs").await;
    let page = closed.url("/page");
    get(&client, &page, "a").await;
    let refused = client_purge(&client, &page).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(is_hit(&client, &page, "a").await, "a refused PURGE purged");
    let before = origin.requests();

    let open = Proxy::start_with(
        &origin.base_url(),
        "fs",
        &["--purge-from", "10.0.0.0/8,127.0.0.1"],
    )
    .await;
    let page = open.url("/page");
    get(&client, &page, "a").await;
    get(&client, &page, "b").await;
    let done = client_purge(&client, &page).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(reply["purged"], 2, "{reply}");
    assert!(!is_hit(&client, &page, "a").await);
    assert_eq!(
        origin.seen()[before..]
            .iter()
            .filter(|seen| seen.method.as_str() == "PURGE")
            .count(),
        0,
        "a PURGE reached the origin"
    );
}
