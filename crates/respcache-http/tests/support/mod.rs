//! A real origin on loopback and a cache in front of it, for engine tests.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use respcache_http::{CacheBody, HttpCache, Options, ServiceOrigin, Storage};

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Handler = Arc<
    dyn Fn(Seen, usize) -> Pin<Box<dyn Future<Output = Response<CacheBody>> + Send>> + Send + Sync,
>;

/// An HTTP/1 origin on 127.0.0.1 that answers with `handler` and records
/// every request.
pub struct Origin {
    pub addr: SocketAddr,
    count: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// An origin whose responses `respond` makes from the request and its
    /// number (1 for the first).
    pub async fn start<F>(respond: F) -> Origin
    where
        F: Fn(&Seen, usize) -> Response<CacheBody> + Send + Sync + 'static,
    {
        let respond = Arc::new(respond);
        Self::start_async(move |seen, n| {
            let respond = respond.clone();
            Box::pin(async move { respond(&seen, n) })
        })
        .await
    }

    /// Like [`Origin::start`], for handlers that wait.
    pub async fn start_async<F>(handler: F) -> Origin
    where
        F: Fn(Seen, usize) -> Pin<Box<dyn Future<Output = Response<CacheBody>> + Send>>
            + Send
            + Sync
            + 'static,
    {
        let handler: Handler = Arc::new(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (task_count, task_seen) = (count.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, count, seen) =
                    (handler.clone(), task_count.clone(), task_seen.clone());
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (handler, count, seen) = (handler.clone(), count.clone(), seen.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let record = Seen {
                            method: parts.method,
                            path: parts.uri.path().to_owned(),
                            headers: parts.headers,
                            body,
                        };
                        seen.lock().unwrap().push(record.clone());
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        Ok::<_, std::convert::Infallible>(handler(record, n).await)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin {
            addr,
            count,
            seen,
            task,
        }
    }

    /// Requests the origin has answered so far.
    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The requests the origin has seen, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A response with `headers` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<CacheBody> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(respcache_http::full(body)).unwrap()
}

pub type ClientOrigin = ServiceOrigin<Client<HttpConnector, Full<Bytes>>>;

/// The origin as the engine reaches it: hyper's client over loopback.
pub fn client() -> ClientOrigin {
    ServiceOrigin(Client::builder(TokioExecutor::new()).build_http())
}

/// A GET with extra headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    request("GET", url, headers)
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::default()).unwrap()
}

/// What a client got: status, headers and the whole body.
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn cache_status(&self) -> String {
        self.headers
            .get("cache-status")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn is_hit(&self) -> bool {
        self.cache_status().split(';').any(|p| p.trim() == "hit")
    }
}

/// Sends `request` through `cache` and reads the whole response.
pub async fn send<S: Storage>(cache: &HttpCache<S>, request: Request<Full<Bytes>>) -> Got {
    let response = cache.handle(request, client()).await.expect("a response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a whole body").to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A cache over the fs backend in `dir`.
pub fn fs_cache(
    dir: &std::path::Path,
    options: Options,
) -> HttpCache<respcache_http::Streaming<respcache_fs::StreamingManager>> {
    let manager = respcache_fs::StreamingManager::new(dir.to_path_buf());
    HttpCache::new(respcache_http::Streaming::new(manager), options)
}

/// A cache over the cacache backend in `dir`.
pub fn cacache_cache(
    dir: &std::path::Path,
    options: Options,
) -> HttpCache<respcache_http::Buffered<respcache_cacache::CACacheManager>> {
    let manager = respcache_cacache::CACacheManager::new(dir, true);
    HttpCache::new(respcache_http::Buffered::new(manager), options)
}

/// A gate that a test opens to let origin bodies go on.
#[derive(Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Waits until the gate is open.
    pub async fn opened(&self) {
        let _ = self.0.subscribe().wait_for(|open| *open).await;
    }

    /// A body that sends `first`, then waits for the gate, then sends
    /// `rest`.
    pub fn body(&self, first: Bytes, rest: Bytes) -> CacheBody {
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(2);
        let mut open = self.0.subscribe();
        tokio::spawn(async move {
            let _ = tx.send(Ok(http_body::Frame::data(first))).await;
            let _ = open.wait_for(|open| *open).await;
            let _ = tx.send(Ok(http_body::Frame::data(rest))).await;
        });
        respcache_http::boxed(http_body_util::StreamBody::new(stream(rx)))
    }
}

/// A receiver as a stream.
pub fn stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `len` bytes that differ from those of any other `seed`.
pub fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37))
        .collect::<Vec<u8>>()
        .into()
}
