//! Accepting clients, answering them through the cache, and stopping
//! cleanly on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use respcache_core::BoxError;
use respcache_http::{CacheBody, HttpCache, Storage};
use tokio::net::TcpListener;

use crate::args::Args;
use crate::forwarding::{Forwarding, Peer, Refusal};
use crate::metrics::{Counted, Traffic};
use crate::upstream::Upstream;

/// How long open connections get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What answering a client needs, shared by every connection.
struct Context<S> {
    cache: HttpCache<S>,
    upstream: Upstream,
    forwarding: Forwarding,
    traffic: Arc<Traffic>,
    purge: Arc<crate::purge::Access>,
}

/// Runs the proxy until SIGTERM or Ctrl-C.
pub async fn serve<S: Storage>(args: Args, cache: HttpCache<S>) -> Result<(), BoxError> {
    let forwarding = Forwarding::new(args.trust_forwarded.clone(), args.via_name.clone())?;
    let upstream = Upstream::new(
        &args.upstream,
        args.origin_timeout,
        forwarding.via().clone(),
    )
    .ok_or("--upstream has no host")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let traffic = Arc::new(Traffic::default());
    let purge = Arc::new(crate::purge::Access::new(&args));
    if let Some(admin) = args.admin {
        let admin = TcpListener::bind(admin)
            .await
            .map_err(|e| format!("cannot listen on {admin} (admin): {e}"))?;
        tokio::spawn(crate::admin::serve(
            admin,
            cache.clone(),
            traffic.clone(),
            purge.clone(),
        ));
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        upstream = %args.upstream,
        backend = ?args.backend,
        dir = %args.dir.display(),
        "respcache-proxy ready"
    );
    let context = Arc::new(Context {
        cache,
        upstream,
        forwarding,
        traffic,
        purge,
    });
    // Every connection task holds a sender: when all are gone, every
    // connection has finished. The watch tells them to finish.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let client = Arc::new(context.forwarding.peer(peer));
        let service = service_fn(move |request: Request<Incoming>| {
            let (context, client) = (context.clone(), client.clone());
            let started = std::time::Instant::now();
            async move {
                if request.method().as_str() == "PURGE" {
                    let purged = context
                        .purge
                        .client_request(request, peer, &context.cache)
                        .await;
                    return Ok(context.traffic.count(purged));
                }
                let response = answer(request, &client, &context).await;
                Ok::<_, std::convert::Infallible>(response.map(|body| body.since(started)))
            }
        });
        // The header timeout runs from the moment the connection waits for
        // a request head: it also closes a connection left idle.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(args.client_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let (open, mut stopping) = (open.clone(), stopping.clone());
        tokio::spawn(async move {
            let _open = open;
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    // Finish the response in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: no new connections, letting open ones finish");
    drop(listener);
    stop.send_replace(true);
    drop(open);
    tokio::select! {
        _ = all_closed.recv() => tracing::info!("all connections finished"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; stopping anyway"),
        // A second signal means: now.
        () = shutdown_signal() => tracing::warn!("second signal: stopping without waiting for open connections"),
    }
    Ok(())
}

/// One request: through the cache to the origin, or a clear `502` when
/// the origin cannot be reached.
async fn answer<S: Storage>(
    request: Request<Incoming>,
    peer: &Peer,
    context: &Context<S>,
) -> Response<Counted> {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let traffic = &context.traffic;
    let (mut parts, body) = request.into_parts();
    let host = context.upstream.host();
    if let Err(Refusal::Loop) = context.forwarding.prepare(&mut parts, peer, &host) {
        tracing::warn!(%method, %uri, "a request came back through this proxy: a loop");
        return traffic.count(plain(StatusCode::LOOP_DETECTED, "respcache-proxy: this request has passed through this proxy already (Via): a forwarding loop\n"));
    }
    let request = Request::from_parts(parts, body);
    let response = if respcache_http::is_upgrade(request.headers()) {
        crate::tunnel::tunnel(request, &context.upstream).await
    } else {
        let request = request.map(respcache_http::boxed);
        context
            .cache
            .handle(request, context.upstream.clone())
            .await
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            traffic.origin_error();
            tracing::warn!(%method, %uri, error = %error_chain(&*error), "origin unreachable");
            bad_gateway(&error)
        }
    };
    tracing::debug!(
        %method,
        %uri,
        status = response.status().as_u16(),
        cache_status = ?response.headers().get("cache-status"),
        "answered"
    );
    traffic.count(response)
}

/// A plain-text response of the proxy's own.
fn plain(status: StatusCode, text: &'static str) -> Response<CacheBody> {
    let mut response = Response::new(respcache_http::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn bad_gateway(error: &BoxError) -> Response<CacheBody> {
    let mut response = Response::new(respcache_http::full(Bytes::from(format!(
        "respcache-proxy: the origin could not be reached: {}\n",
        error_chain(&**error)
    ))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An error and its sources, on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
