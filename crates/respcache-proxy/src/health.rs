//! Health endpoints on the admin listener: `/healthz` says the process is
//! up and answering; `/readyz` says its backend answers too, so that a
//! load balancer can send traffic elsewhere while it does not.

use std::time::Duration;

use http::{Response, StatusCode};
use respcache_http::{CacheBody, Storage};

/// The key `/readyz` looks up: a miss is as good an answer as a hit.
const PROBE_KEY: &str = "respcache-readyz-probe";

/// How long the backend gets to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer to a health path, or `None` for another path.
pub async fn answer<S: Storage>(path: &str, storage: &S) -> Option<Response<CacheBody>> {
    let (status, text) = match path {
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => match tokio::time::timeout(PROBE_TIMEOUT, storage.get(PROBE_KEY)).await {
            Ok(Ok(_)) => (StatusCode::OK, "ready\n".to_owned()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness probe: the backend failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: the backend failed: {error}\n"),
                )
            }
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: the backend did not answer within {PROBE_TIMEOUT:?}\n"),
            ),
        },
        _ => return None,
    };
    let mut response = Response::new(respcache_http::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Some(response)
}
