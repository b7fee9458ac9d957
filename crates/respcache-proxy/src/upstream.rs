//! The origin behind the proxy, reached with hyper's pooled client.

use http::header::{self, HeaderValue};
use http::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use respcache_http::{CacheBody, Origin, OriginFuture, remove_hop_by_hop};

/// Sends requests to one origin, untouched but for the hop-by-hop fields.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, CacheBody>,
    authority: http::uri::Authority,
}

impl Upstream {
    /// An upstream at `base` (`http://HOST:PORT`).
    pub fn new(base: &Uri) -> Option<Self> {
        let authority = base.authority()?.clone();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Some(Self { client, authority })
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
        let client = self.client.clone();
        Box::pin(async move {
            parts.uri = uri?;
            remove_hop_by_hop(&mut parts.headers);
            if !parts.headers.contains_key(header::HOST)
                && let Some(authority) = parts.uri.authority()
                && let Ok(host) = HeaderValue::from_str(authority.as_str())
            {
                parts.headers.insert(header::HOST, host);
            }
            let response = client.request(Request::from_parts(parts, body)).await?;
            let (mut head, body) = response.into_parts();
            remove_hop_by_hop(&mut head.headers);
            Ok(http::Response::from_parts(
                head,
                respcache_http::boxed(body),
            ))
        })
    }
}
