//! A hyper client that talks to the proxy, and what it got back.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use respcache_testkit::{Body, full};

/// An HTTP/1 client with a connection pool, as a real client would use.
#[derive(Debug, Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Body>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The fields.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The `Cache-Status` field, or `""`.
    pub fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Whether `Cache-Status` has `member` (`hit`, `stored`,
    /// `fwd=method`…) among its parameters.
    pub fn cache_status_has(&self, member: &str) -> bool {
        self.cache_status()
            .split(';')
            .any(|part| part.trim() == member)
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

impl Client {
    /// Sends `request` and returns the response as soon as its head is in.
    pub async fn send(&self, request: Request<Body>) -> Response<Incoming> {
        let uri = request.uri().clone();
        self.inner
            .request(request)
            .await
            .unwrap_or_else(|error| panic!("{uri}: {error}"))
    }

    /// Sends `request` and reads the whole response.
    pub async fn fetch(&self, request: Request<Body>) -> Reply {
        let uri = request.uri().clone();
        let (head, body) = self.send(request).await.into_parts();
        let body = body
            .collect()
            .await
            .unwrap_or_else(|error| panic!("{uri}: reading the body: {error}"))
            .to_bytes();
        Reply {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    /// `GET url`, read whole.
    pub async fn get(&self, url: &str) -> Reply {
        self.fetch(
            Request::get(url)
                .body(full(Bytes::new()))
                .expect("a GET request"),
        )
        .await
    }
}
