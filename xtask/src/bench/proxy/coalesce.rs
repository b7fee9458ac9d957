//! The coalescing case: many clients at once on a cold URL whose origin
//! takes a second. A cache that coalesces sends the origin one request and
//! answers everyone about a second later.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use respcache_testkit::Origin;

use super::client;

/// Clients sent at once.
pub const CLIENTS: usize = 50;
/// How long the slow origin takes to answer.
pub const DELAY: Duration = Duration::from_secs(1);
/// The slow origin's body.
const BODY: usize = 1024;

/// What one cache did with [`CLIENTS`] requests at once.
#[derive(Debug, Clone)]
pub struct Coalesced {
    /// Requests that reached the origin.
    pub origin_requests: usize,
    /// From the first request sent to the last response read whole.
    pub seconds: f64,
    /// Clients that did not get a 200 with the whole body.
    pub failed: usize,
}

/// An origin that answers each request after [`DELAY`], storable for an
/// hour. nginx's origin passes `/slow/` to it.
pub async fn slow_origin() -> Origin {
    Origin::start_async(|_, _| {
        Box::pin(async {
            tokio::time::sleep(DELAY).await;
            http::Response::builder()
                .header("cache-control", "max-age=3600")
                .header("content-type", "application/octet-stream")
                .body(http_body_util::Full::new(Bytes::from(vec![b's'; BODY])))
                .unwrap_or_default()
        })
    })
    .await
}

/// [`CLIENTS`] GETs of `path` (a URL no one asked for yet) on `cache` at
/// once, each on its own connection.
pub async fn run(cache: SocketAddr, path: &str, origin: &Origin) -> Coalesced {
    let before = origin.requests();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let path = path.to_owned();
            tokio::spawn(async move { client::get_ok(cache, &path, BODY).await })
        })
        .collect();
    let mut failed = 0;
    for client in clients {
        match client.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("coalescing: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("coalescing: a client panicked: {e}");
            }
        }
    }
    Coalesced {
        seconds: started.elapsed().as_secs_f64(),
        origin_requests: origin.requests() - before,
        failed,
    }
}
