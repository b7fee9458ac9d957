//! Accepting clients (in the clear, and over TLS), answering them through
//! the cache, reloading on SIGHUP, and stopping cleanly on SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use respcache_core::BoxError;
use respcache_http::{CacheBody, CacheMode, HttpCache, Storage};
use tokio::net::TcpListener;

use crate::access::{self, Format, Logged};
use crate::args::Args;
use crate::config::{Config, Fixed};
use crate::forwarding::{Forwarding, Peer, Refusal, Scheme};
use crate::metrics::{Counted, Traffic};
use crate::routes::{ROUTE_FIELD, Sites};

/// How long open connections get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What answering a client needs, shared by every connection.
struct Context<S> {
    cache: HttpCache<S>,
    forwarding: Forwarding,
    traffic: Arc<Traffic>,
    live: Arc<RwLock<Arc<Live>>>,
    purge: Arc<crate::purge::Access>,
}

/// What a reload replaces: the virtual hosts, their upstreams and routes,
/// the access log's format, and the TLS listener's certificate.
#[derive(Debug)]
pub struct Live {
    sites: Sites,
    access_log: Format,
    /// What new TLS connections are handed; ones open keep theirs.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl<S> Context<S> {
    /// The config in force; a request keeps the one it began with.
    fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Runs the proxy until SIGTERM or Ctrl-C; on SIGHUP, reads the config
/// again and applies what can change without a restart.
pub async fn serve<S: Storage>(
    args: Args,
    config: Config,
    cache: HttpCache<S>,
) -> Result<(), BoxError> {
    let fixed = config.fixed.clone();
    let forwarding = Forwarding::new(fixed.trust_forwarded.clone(), fixed.via_name.clone())?;
    let via = forwarding.via().clone();
    let live = Arc::new(RwLock::new(Arc::new(Live {
        sites: config.sites(&fixed, &via)?,
        access_log: config.access_log,
        tls: config.tls.as_ref().map(|tls| tls.config.clone()),
    })));
    let listener = TcpListener::bind(fixed.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", fixed.listen))?;
    let tls_listener = match fixed.tls_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (TLS): {e}"))?,
        ),
        None => None,
    };
    let traffic = Arc::new(Traffic::default());
    let purge = Arc::new(crate::purge::Access::new(&fixed));
    if let Some(admin) = fixed.admin {
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
        tls_listen = ?tls_listener.as_ref().and_then(|l| l.local_addr().ok()),
        upstreams = ?config.sites.iter().map(|s| s.upstream.to_string()).collect::<Vec<_>>(),
        backend = ?fixed.cache.backend,
        "respcache-proxy ready"
    );
    tokio::spawn(reload_on_hangup(args, fixed.clone(), via, live.clone()));
    let context = Arc::new(Context {
        cache,
        forwarding,
        traffic,
        live,
        purge,
    });
    // Every connection task holds a sender: when all are gone, every
    // connection has finished. The watch tells them to finish.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let settings = crate::connection::Settings {
        client_timeout: fixed.client_timeout,
    };
    loop {
        let (accepted, scheme) = tokio::select! {
            accepted = listener.accept() => (accepted, Scheme::Http),
            accepted = accept(tls_listener.as_ref()) => (accepted, Scheme::Https),
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The certificate in force when the connection came: a reload
        // changes it for the next ones.
        let tls = match scheme {
            Scheme::Https => match context.live().tls.clone() {
                Some(tls) => Some(tls),
                None => continue,
            },
            Scheme::Http => None,
        };
        let context = context.clone();
        let client = Arc::new(context.forwarding.peer(peer, scheme));
        let make_service = move |idle: Arc<crate::connection::Idle>| {
            service_fn(move |request: Request<Incoming>| {
                let (context, client) = (context.clone(), client.clone());
                let active = idle.begin();
                let started = Instant::now();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        answer(request, &client, peer, scheme, started, active, &context).await,
                    )
                }
            })
        };
        let (open, stopping, settings) = (open.clone(), stopping.clone(), settings.clone());
        tokio::spawn(async move {
            let _open = open;
            crate::connection::serve(stream, peer, tls, settings, make_service, stopping).await;
        });
    }
    tracing::info!("shutting down: no new connections, letting open ones finish");
    drop(listener);
    drop(tls_listener);
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

/// On each SIGHUP, reads the config again. Virtual hosts, routes, the
/// access log and the TLS certificate change at once for new requests
/// (new connections, for the certificate); requests under way finish
/// with the config they began with, and no connection is closed. A config
/// that does not load (a certificate that cannot be read, or that does
/// not match its key, among others) changes nothing.
async fn reload_on_hangup(
    args: Args,
    fixed: Fixed,
    via: http::HeaderValue,
    live: Arc<RwLock<Arc<Live>>>,
) {
    #[cfg(unix)]
    {
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP: no reloads");
                    return;
                }
            };
        while hangups.recv().await.is_some() {
            let loaded = Config::load(&args).and_then(|config| {
                let sites = config.sites(&fixed, &via)?;
                Ok((config, sites))
            });
            match loaded {
                Ok((config, sites)) => {
                    if config.fixed != fixed {
                        tracing::warn!(
                            "reload: listeners, [cache], forwarding or purge settings changed; they take effect on restart"
                        );
                    }
                    let mut live = live
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    let tls = match config.tls {
                        Some(tls) => {
                            tracing::info!(cert = %tls.cert.display(), "reload: TLS certificate read");
                            Some(tls.config)
                        }
                        // The listener stays until a restart, and so
                        // does its certificate.
                        None => live.tls.clone(),
                    };
                    *live = Arc::new(Live {
                        sites,
                        access_log: config.access_log,
                        tls,
                    });
                    tracing::info!("reloaded the config");
                }
                Err(error) => {
                    tracing::error!(%error, "reload failed; the config in force stays");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (args, fixed, via, live);
}

/// Waits for the next connection on `listener`; never, without one.
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// One request: a `PURGE` from an allowed client, or through the cache to
/// its virtual host's origin, or a clear `502` when the origin cannot be
/// reached. Each is logged.
async fn answer<S: Storage>(
    request: Request<Incoming>,
    peer: &Peer,
    address: SocketAddr,
    scheme: Scheme,
    started: Instant,
    active: crate::connection::Active,
    context: &Context<S>,
) -> Response<Logged<Counted>> {
    let live = context.live();
    let (mut parts, body) = request.into_parts();
    let mut entry = access::Entry::start(live.access_log, address, &parts, started);
    let response = match crate::forwarding::normalise_target(&mut parts, scheme) {
        Err(refusal) => plain(StatusCode::BAD_REQUEST, refusal),
        Ok(()) if parts.method.as_str() == "PURGE" => {
            context
                .purge
                .client_request(&parts, address, &context.cache)
                .await
        }
        Ok(()) => route(parts, body, peer, &live, context).await,
    };
    let mut response = context
        .traffic
        .count(response)
        .map(|body| body.since(started));
    response.headers_mut().remove(ROUTE_FIELD);
    if let Some(entry) = &mut entry {
        entry.answered(
            response.status().as_u16(),
            response.headers(),
            started.elapsed(),
        );
    }
    Logged::wrap(response, entry, Some(active))
}

/// Finds the request's virtual host and route and answers it.
async fn route<S: Storage>(
    mut parts: http::request::Parts,
    body: Incoming,
    peer: &Peer,
    live: &Live,
    context: &Context<S>,
) -> Response<CacheBody> {
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let Some(vhost) = live.sites.find(&parts) else {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            "respcache-proxy: no virtual host answers this Host\n",
        );
    };
    let upstream = &vhost.upstream;
    // A request without `Host` (HTTP/1.0) would be keyed by the
    // upstream's authority, the key of a virtual host answering that
    // name: it passes through. (Before `prepare`, which supplies one.)
    let host_less =
        !parts.headers.contains_key(http::header::HOST) && parts.uri.authority().is_none();
    if let Err(Refusal::Loop) = context
        .forwarding
        .prepare(&mut parts, peer, &upstream.host())
    {
        tracing::warn!(%method, %uri, "a request came back through this proxy: a loop");
        return plain(
            StatusCode::LOOP_DETECTED,
            "respcache-proxy: this request has passed through this proxy already (Via): a forwarding loop\n",
        );
    }
    // Routes match the path as origins read it (`/api/%70rivate`,
    // `/api//private`): a bypass route is never stepped around. Where
    // the path is not already in that form, nothing is cached, so that
    // no spelling shares a key with what another spelling reaches.
    let (path, ambiguous) = crate::routes::normalise_path(parts.uri.path());
    let route = vhost.route(&path);
    let mut bypass = route
        .is_some_and(|route| route.rules.bypass || route.key.query_is_ambiguous(parts.uri.query()));
    if ambiguous || path != parts.uri.path() {
        bypass = true;
    }
    if bypass || host_less {
        parts.extensions.insert(CacheMode::NoStore);
    }
    if let Some(route) = route {
        parts.extensions.insert(route.clone());
    }
    let request = Request::from_parts(parts, body);
    let response = if respcache_http::is_upgrade(request.headers()) {
        crate::tunnel::tunnel(request, upstream).await
    } else {
        let request = request.map(respcache_http::boxed);
        context.cache.handle(request, upstream.clone()).await
    };
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            context.traffic.origin_error();
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
    response
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
