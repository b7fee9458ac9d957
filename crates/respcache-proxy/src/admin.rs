//! The admin listener: `GET /metrics`, `/healthz` and `/readyz`, and `POST /purge` for whoever holds
//! the purge token. It serves whatever address `--admin` names; keep it
//! on loopback or a private network.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use respcache_http::{CacheBody, HttpCache, Storage};
use tokio::net::TcpListener;

use crate::metrics::{Traffic, render};
use crate::purge::Access;

/// Serves the admin endpoints on `listener` until the process ends.
pub async fn serve<S: Storage>(
    listener: TcpListener,
    cache: HttpCache<S>,
    traffic: Arc<Traffic>,
    purge: Arc<Access>,
) {
    if let Ok(addr) = listener.local_addr()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(%addr, "the admin listener is reachable beyond this machine");
    }
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, say: retrying at once would spin.
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (cache, traffic, purge) = (cache.clone(), traffic.clone(), purge.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            let (cache, traffic, purge) = (cache.clone(), traffic.clone(), purge.clone());
            async move {
                Ok::<_, std::convert::Infallible>(answer(request, &cache, &traffic, &purge).await)
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer<S: Storage>(
    request: Request<Incoming>,
    cache: &HttpCache<S>,
    traffic: &Traffic,
    purge: &Access,
) -> Response<CacheBody> {
    if let Some(response) = crate::health::answer(request.uri().path(), cache.storage()).await {
        return response;
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(respcache_http::full(render(cache, traffic)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        (_, "/purge") => purge.admin_request(request, cache).await,
        _ => {
            let mut response = Response::new(respcache_http::full(
                "respcache-proxy admin: GET /metrics, /healthz, /readyz; POST /purge\n",
            ));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}
