//! `GET /metrics` from the real `respcache-proxy` binary: the engine's
//! counters, bytes, response times by cache status and the backend's
//! size, in the Prometheus text format a scraper reads.

mod support;

use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use support::{Client, Origin, Proxy, full, pattern};

/// The value of the sample `name` (with its labels, if any) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

async fn scrape(client: &Client, proxy: &Proxy) -> String {
    let reply = client.get(&proxy.admin_url("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let kind = reply.headers["content-type"].to_str().unwrap();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    reply.text().to_owned()
}

/// Scrapes until `ready` holds for the text (a response's time is
/// recorded once its body is dropped, a moment after the client has it).
async fn scrape_until(client: &Client, proxy: &Proxy, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(client, proxy).await;
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_hits_misses_bytes_times_by_cache_status_and_backend_size() {
    let body = pattern(10_000, 3);
    let origin = Origin::start({
        let body = body.clone();
        move |seen, _| {
            let cache_control = if seen.path == "/private" {
                "no-store"
            } else {
                "max-age=60"
            };
            Response::builder()
                .header("cache-control", cache_control)
                .body(full(body.clone()))
                .unwrap()
        }
    })
    .await;
    let proxy = Proxy::start(&origin.base_url(), "fs").await;
    let client = Client::default();
    client.get(&proxy.url("/a")).await;
    client.get(&proxy.url("/a")).await;
    client.get(&proxy.url("/a")).await;
    client.get(&proxy.url("/private")).await;

    let hits = "respcache_response_seconds_count{cache_status=\"hit\"}";
    let misses = "respcache_response_seconds_count{cache_status=\"miss\"}";
    let text = scrape_until(&client, &proxy, |text| {
        sample(text, hits) == Some(2.0) && sample(text, misses) == Some(2.0)
    })
    .await;
    assert!(
        text.contains("# TYPE respcache_response_seconds histogram"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert_eq!(sample(&text, "respcache_hits_total"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "respcache_misses_total"), Some(2.0), "{text}");
    assert_eq!(
        sample(&text, "respcache_hit_bytes_total"),
        Some(20_000.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "respcache_origin_bytes_total"),
        Some(20_000.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "respcache_origin_errors_total"),
        Some(0.0),
        "{text}"
    );
    let in_bucket = "respcache_response_seconds_bucket{le=\"+Inf\",cache_status=\"hit\"}";
    assert_eq!(sample(&text, in_bucket), Some(2.0), "{text}");
    // The one stored body, as the fs backend counts it.
    assert_eq!(
        sample(&text, "respcache_backend_bytes"),
        Some(10_000.0),
        "{text}"
    );
}
