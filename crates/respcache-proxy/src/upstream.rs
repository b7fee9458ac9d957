//! The origin behind the proxy, reached with hyper's pooled client, over
//! TLS (rustls) for an `https://` upstream: the certificate is checked
//! for the upstream URL's host, which is also the SNI sent.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_http::{CacheBody, Origin, OriginFuture, remove_hop_by_hop};

use crate::routes::{ROUTE_FIELD, Route};

/// How long the origin gets to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends requests to one origin, untouched but for the hop-by-hop fields,
/// a `Via`, and (for an absolute-form target) a `Host` naming its
/// authority.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, CacheBody>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The longest wait for the origin's response head.
    head_timeout: Duration,
    /// What this proxy adds to `Via`.
    via: HeaderValue,
    /// The targeted fields (RFC 9213) this proxy obeys: a response that
    /// carries one is steered by its origin, not by the route's TTLs.
    targeted: Arc<[http::HeaderName]>,
}

impl Upstream {
    /// An upstream at `base` (`http://HOST:PORT` or `https://HOST:PORT`)
    /// that waits up to `head_timeout` for each response head and names
    /// itself `via`; `tls` says which certificates an `https://` origin
    /// may present.
    pub fn new(
        base: &Uri,
        head_timeout: Duration,
        via: HeaderValue,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Option<Self> {
        let authority = base.authority()?.clone();
        let scheme = base.scheme()?.clone();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // The TLS layer takes `https://`; the TCP one must let it through.
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Some(Self {
            client,
            scheme,
            authority,
            head_timeout,
            via,
            targeted: Arc::from(Vec::new()),
        })
    }

    /// The targeted fields this upstream leaves to the origin.
    #[cfg(test)]
    pub fn targeted(&self) -> &[http::HeaderName] {
        &self.targeted
    }

    /// This upstream, leaving responses that carry one of `fields` (the
    /// targeted fields this proxy obeys) to their origin's directives.
    pub fn with_targeted(mut self, fields: Vec<http::HeaderName>) -> Self {
        self.targeted = Arc::from(fields);
        self
    }

    /// The `Host` the origin receives for a request that names none.
    pub fn host(&self) -> HeaderValue {
        HeaderValue::from_str(self.authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
    }

    /// Sends `request` with its fields as they are (a protocol switch keeps
    /// its `Upgrade`), adding only `Via` and the `Host` of an absolute
    /// target; returns the origin's response as it came.
    pub async fn send_raw(
        &self,
        request: Request<CacheBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, respcache_core::BoxError> {
        let request = self.to_origin(request, false)?;
        let response = tokio::time::timeout(self.head_timeout, self.client.request(request))
            .await
            .map_err(|_| format!("no response head within {:?}", self.head_timeout))??;
        Ok(response)
    }

    /// `request` as the origin is sent it: its target made absolute on the
    /// origin, `Via` added, hop-by-hop fields removed when `strip_hops`.
    fn to_origin(
        &self,
        request: Request<CacheBody>,
        strip_hops: bool,
    ) -> Result<Request<CacheBody>, respcache_core::BoxError> {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build();
        // RFC 9112 §3.2.2: the authority of an absolute-form target
        // replaces `Host`. The engine keys the request by it, so the origin
        // must be asked for the same.
        // Its host and port, that is: never user information.
        let target_host = parts.uri.host().and_then(|host| {
            let host = match parts.uri.port_u16() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            HeaderValue::from_str(&host).ok()
        });
        parts.uri = uri?;
        // The origin is spoken to in HTTP/1.1, whatever the client spoke.
        parts.version = http::Version::HTTP_11;
        if strip_hops {
            remove_hop_by_hop(&mut parts.headers);
        }
        // RFC 9110 §7.6.3: a gateway sends Via on the requests it
        // forwards.
        parts.headers.append(header::VIA, self.via.clone());
        match target_host {
            Some(host) => {
                parts.headers.insert(header::HOST, host);
            }
            None if !parts.headers.contains_key(header::HOST) => {
                parts.headers.insert(header::HOST, self.host());
            }
            None => {}
        }
        Ok(Request::from_parts(parts, body))
    }
}

impl Origin<CacheBody> for Upstream {
    fn send(&mut self, request: Request<CacheBody>) -> OriginFuture {
        // The route's TTLs are written on the response before the engine
        // decides whether to store it.
        let route = request.extensions().get::<Arc<Route>>().cloned();
        let authorized = request.headers().contains_key(header::AUTHORIZATION);
        let targeted = self.targeted.clone();
        let request = self.to_origin(request, true);
        let client = self.client.clone();
        let head_timeout = self.head_timeout;
        Box::pin(async move {
            let request = request?;
            // An origin answers an upload once it has read it, however
            // long that takes: only requests without a body are timed.
            let timed = http_body::Body::is_end_stream(request.body());
            let request = client.request(request);
            let response = if timed {
                tokio::time::timeout(head_timeout, request)
                    .await
                    .map_err(|_| format!("no response head within {head_timeout:?}"))??
            } else {
                request.await?
            };
            let (mut head, body) = response.into_parts();
            remove_hop_by_hop(&mut head.headers);
            match route {
                Some(route) => route.rules.apply(authorized, &mut head, &targeted),
                // Only a route writes this field.
                None => {
                    head.headers.remove(ROUTE_FIELD);
                }
            }
            Ok(http::Response::from_parts(
                head,
                respcache_http::boxed(body),
            ))
        })
    }
}
