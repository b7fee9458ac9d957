//! Two real `respcache-proxy` processes on one real Redis Cluster (six
//! `redis-server`s, started once for this test binary): what one stores
//! the other serves as a hit, a purge on one's admin listener (by URL, by
//! tag) is seen by the other, and a purge by prefix, which a cluster
//! cannot list keys for, is refused with a clear `501` that removes
//! nothing.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use respcache_testkit::RedisCluster;
use support::client::Reply;
use support::{Client, Origin, Proxy, full, ok};

const TOKEN: &str = "cluster-purge-token";

/// Behind a load balancer both proxies see the name clients asked for, so
/// both compute the same cache keys.
const HOST: &str = "www.example.test";

/// An origin whose responses are fresh for an hour, vary on `Accept`, are
/// tagged `blog` under `/blog/`, and name the path, the `Accept` and the
/// origin's request count in their body (so a refetch shows).
async fn origin() -> Origin {
    Origin::start(|seen, n| {
        let tags = if seen.path.starts_with("/blog/") {
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
            ],
            format!("{} for {accept}, answer {n}", seen.path),
        )
    })
    .await
}

/// The shared cluster of this test binary; it blocks while it forms.
async fn cluster() -> &'static RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("the cluster")
}

/// A proxy on the redis backend, given the cluster as a
/// `redis+cluster://` URL of its seed nodes, under `prefix`.
async fn proxy(origin: &Origin, cluster: &RedisCluster, prefix: &str) -> Proxy {
    Proxy::start_with_env(
        &origin.base_url(),
        "redis",
        &["--redis-prefix", prefix],
        &[
            ("RESPCACHE_REDIS_URL", &cluster.url()),
            ("RESPCACHE_PURGE_TOKEN", TOKEN),
        ],
    )
    .await
}

/// `GET path` through `proxy` for `HOST`, with `accept`.
async fn get(client: &Client, proxy: &Proxy, path: &str, accept: &str) -> Reply {
    let reply = client
        .fetch(
            Request::get(proxy.url(path))
                .header("host", HOST)
                .header("accept", accept)
                .body(full(Bytes::new()))
                .expect("a GET"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    reply
}

/// Fetches `path` through `proxy` until it is a hit: the store commits
/// after the body has gone to the client, so the proxy that stored it is
/// the first to say it is in the cluster. Returns the hit.
async fn stored(client: &Client, proxy: &Proxy, path: &str, accept: &str) -> Reply {
    get(client, proxy, path, accept).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get(client, proxy, path, accept).await;
        if reply.cache_status_has("hit") {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{path} ({accept}) was never stored: {}",
            reply.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /purge?QUERY` on `proxy`'s admin listener, with the token.
async fn purge(client: &Client, proxy: &Proxy, query: &str) -> Reply {
    client
        .fetch(
            Request::post(proxy.admin_url(&format!("/purge?{query}")))
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(full(Bytes::new()))
                .expect("a POST"),
        )
        .await
}

fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The URL clients asked for, as a purge names it.
fn public(path: &str) -> String {
    format!("http://{HOST}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_on_one_cluster_serve_what_either_stored() {
    let cluster = cluster().await;
    let prefix = cluster.prefix("proxies");
    let origin = origin().await;
    let one = proxy(&origin, cluster, &prefix).await;
    let two = proxy(&origin, cluster, &prefix).await;
    let client = Client::default();

    for (writer, reader, path) in [(&one, &two, "/from-one"), (&two, &one, "/from-two")] {
        let hit = stored(&client, writer, path, "a").await;
        let asked = origin.requests();
        let served = get(&client, reader, path, "a").await;
        assert!(
            served.cache_status_has("hit"),
            "{path} stored by one proxy was not a hit on the other: {}",
            served.cache_status()
        );
        assert_eq!(served.body, hit.body, "{path}");
        assert_eq!(origin.requests(), asked, "{path}: the other proxy asked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_proxy_is_seen_by_the_other_on_a_cluster() {
    let cluster = cluster().await;
    let prefix = cluster.prefix("purges");
    let origin = origin().await;
    let one = proxy(&origin, cluster, &prefix).await;
    let two = proxy(&origin, cluster, &prefix).await;
    let client = Client::default();

    // By URL, every Vary variant: stored through `one`, purged on `one`,
    // a miss on `two`.
    for accept in ["a", "b"] {
        stored(&client, &one, "/page", accept).await;
        assert!(
            get(&client, &two, "/page", accept)
                .await
                .cache_status_has("hit")
        );
    }
    stored(&client, &one, "/other", "a").await;
    let done = purge(&client, &one, &format!("url={}", encoded(&public("/page")))).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert!(reply["purged"].as_u64() >= Some(1), "{reply}");
    let before = origin.requests();
    for accept in ["a", "b"] {
        let after = get(&client, &two, "/page", accept).await;
        assert!(
            !after.cache_status_has("hit"),
            "variant {accept} was still a hit on the other proxy: {}",
            after.cache_status()
        );
    }
    assert_eq!(origin.requests(), before + 2, "both variants refetched");
    assert!(
        get(&client, &two, "/other", "a")
            .await
            .cache_status_has("hit"),
        "a URL the purge did not name was purged"
    );

    // By tag: stored through `one`, purged on `two`, a miss on `one`.
    for path in ["/blog/1", "/blog/2"] {
        stored(&client, &one, path, "a").await;
    }
    let done = purge(&client, &two, "tag=blog").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let reply: serde_json::Value = serde_json::from_slice(&done.body).unwrap();
    assert_eq!(reply["purged"], 2, "{reply}");
    let before = origin.requests();
    for path in ["/blog/1", "/blog/2"] {
        let after = get(&client, &one, path, "a").await;
        assert!(
            !after.cache_status_has("hit"),
            "{path} was still a hit on the other proxy: {}",
            after.cache_status()
        );
    }
    assert_eq!(origin.requests(), before + 2, "both tagged URLs refetched");
    assert!(
        get(&client, &one, "/other", "a")
            .await
            .cache_status_has("hit"),
        "an entry without the tag was purged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_purge_on_a_cluster_is_refused_and_removes_nothing() {
    let cluster = cluster().await;
    let prefix = cluster.prefix("prefix");
    let origin = origin().await;
    let one = proxy(&origin, cluster, &prefix).await;
    let two = proxy(&origin, cluster, &prefix).await;
    let client = Client::default();
    stored(&client, &one, "/blog/1", "a").await;

    let refused = purge(
        &client,
        &two,
        &format!("prefix={}", encoded(&public("/blog/"))),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_IMPLEMENTED,
        "{}",
        refused.text()
    );
    assert_eq!(refused.headers["content-type"], "application/json");
    let reply: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("by prefix") && error.contains("url=") && error.contains("tag="),
        "the error neither says what failed nor what to do instead: {reply}"
    );
    for proxy in [&one, &two] {
        assert!(
            get(&client, proxy, "/blog/1", "a")
                .await
                .cache_status_has("hit"),
            "a refused prefix purge removed an entry"
        );
    }
}
