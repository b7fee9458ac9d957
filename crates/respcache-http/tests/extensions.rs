//! What a caller attaches to a request (its extensions) reaches the
//! origin on every request the engine makes for it: the proxy's routes
//! depend on it.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use respcache_http::{FnService, Options, ServiceOrigin};
use support::response;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Tag(u32);

#[tokio::test]
async fn the_origin_sees_the_request_s_extensions_on_misses_and_revalidations() {
    let dir = tempfile::tempdir().unwrap();
    let cache = support::cacache_cache(dir.path(), Options::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let origin = {
        let seen = seen.clone();
        ServiceOrigin(FnService(move |request: Request<Full<Bytes>>| {
            let conditional = request.headers().contains_key("if-none-match");
            seen.lock()
                .unwrap()
                .push((request.extensions().get::<Tag>().copied(), conditional));
            let reply = if conditional {
                response(
                    304,
                    &[("etag", "\"v\""), ("cache-control", "max-age=0")],
                    "",
                )
            } else {
                response(
                    200,
                    &[("etag", "\"v\""), ("cache-control", "max-age=0")],
                    "body",
                )
            };
            async move { Ok::<_, Infallible>(reply) }
        }))
    };
    for n in [1, 2] {
        let mut request = support::get("http://a.test/x", &[]);
        request.extensions_mut().insert(Tag(n));
        cache.handle(request, origin.clone()).await.unwrap();
    }
    assert_eq!(
        *seen.lock().unwrap(),
        [(Some(Tag(1)), false), (Some(Tag(2)), true)],
        "the miss, then the revalidation"
    );
}

#[tokio::test]
async fn the_origin_sees_the_request_s_extensions_on_a_background_revalidation() {
    let dir = tempfile::tempdir().unwrap();
    let cache = support::cacache_cache(dir.path(), Options::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut revalidated) = tokio::sync::mpsc::unbounded_channel();
    let origin = {
        let seen = seen.clone();
        ServiceOrigin(FnService(move |request: Request<Full<Bytes>>| {
            let conditional = request.headers().contains_key("if-none-match");
            seen.lock()
                .unwrap()
                .push((request.extensions().get::<Tag>().copied(), conditional));
            if conditional {
                let _ = tx.send(());
            }
            let fields = [
                ("etag", "\"v\""),
                ("cache-control", "max-age=0, stale-while-revalidate=600"),
            ];
            let reply = if conditional {
                response(304, &fields, "")
            } else {
                response(200, &fields, "body")
            };
            async move { Ok::<_, Infallible>(reply) }
        }))
    };
    for n in [1, 2] {
        let mut request = support::get("http://a.test/x", &[]);
        request.extensions_mut().insert(Tag(n));
        cache.handle(request, origin.clone()).await.unwrap();
    }
    // Not a speed target: the background request either comes or not.
    tokio::time::timeout(std::time::Duration::from_secs(30), revalidated.recv())
        .await
        .expect("a background revalidation");
    assert_eq!(
        *seen.lock().unwrap(),
        [(Some(Tag(1)), false), (Some(Tag(2)), true)],
        "the miss, then the revalidation in the background"
    );
}
