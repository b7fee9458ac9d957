//! The origin behind the proxy, reached with hyper's pooled client.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_http::{CacheBody, Origin, OriginFuture, remove_hop_by_hop};

/// How long the origin gets to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends requests to one origin, untouched but for the hop-by-hop fields,
/// a `Via`, and (for an absolute-form target) a `Host` naming its
/// authority.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, CacheBody>,
    authority: http::uri::Authority,
    /// The longest wait for the origin's response head.
    head_timeout: Duration,
}

impl Upstream {
    /// An upstream at `base` (`http://HOST:PORT`) that waits up to
    /// `head_timeout` for each response head.
    pub fn new(base: &Uri, head_timeout: Duration) -> Option<Self> {
        let authority = base.authority()?.clone();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Some(Self {
            client,
            authority,
            head_timeout,
        })
    }
}

impl Origin<CacheBody> for Upstream {
    fn send(&mut self, request: Request<CacheBody>) -> OriginFuture {
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri = Uri::builder()
            .scheme("http")
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
        let client = self.client.clone();
        let head_timeout = self.head_timeout;
        Box::pin(async move {
            parts.uri = uri?;
            remove_hop_by_hop(&mut parts.headers);
            // RFC 9110 §7.6.3: a gateway sends Via on the requests it
            // forwards.
            parts
                .headers
                .append(header::VIA, HeaderValue::from_static("1.1 respcache"));
            match target_host {
                Some(host) => {
                    parts.headers.insert(header::HOST, host);
                }
                None if !parts.headers.contains_key(header::HOST) => {
                    if let Some(authority) = parts.uri.authority()
                        && let Ok(host) = HeaderValue::from_str(authority.as_str())
                    {
                        parts.headers.insert(header::HOST, host);
                    }
                }
                None => {}
            }
            // An origin answers an upload once it has read it, however
            // long that takes: only requests without a body are timed.
            let timed = http_body::Body::is_end_stream(&body);
            let request = client.request(Request::from_parts(parts, body));
            let response = if timed {
                tokio::time::timeout(head_timeout, request)
                    .await
                    .map_err(|_| format!("no response head within {head_timeout:?}"))??
            } else {
                request.await?
            };
            let (mut head, body) = response.into_parts();
            remove_hop_by_hop(&mut head.headers);
            Ok(http::Response::from_parts(
                head,
                respcache_http::boxed(body),
            ))
        })
    }
}
