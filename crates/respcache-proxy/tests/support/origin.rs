//! A real HTTP/1 origin on loopback that records what reaches it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::body::Body;

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// The request fields.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
}

type Respond = Arc<dyn Fn(&Seen, usize) -> Response<Body> + Send + Sync>;

/// An origin on 127.0.0.1; it stops when dropped.
#[derive(Debug)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests (or, for [`Origin::hanging_up`], connections) so far.
    count: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// An origin that answers each request with `respond(request, n)`,
    /// `n` counting requests from 1.
    pub async fn start<F>(respond: F) -> Self
    where
        F: Fn(&Seen, usize) -> Response<Body> + Send + Sync + 'static,
    {
        let listener = bind().await;
        let addr = listener.local_addr().expect("origin address");
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Respond = Arc::new(respond);
        let task = tokio::spawn({
            let count = count.clone();
            let seen = seen.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let count = count.clone();
                    let seen = seen.clone();
                    let respond = respond.clone();
                    let service = service_fn(move |request: Request<Incoming>| {
                        let count = count.clone();
                        let seen = seen.clone();
                        let respond = respond.clone();
                        async move {
                            let request = record(request).await;
                            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                            let response = respond(&request, n);
                            lock(&seen).push(request);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            count,
            seen,
            task,
        }
    }

    /// An origin that accepts each connection, reads what arrives first
    /// and closes it without answering.
    pub async fn hanging_up() -> Self {
        let listener = bind().await;
        let addr = listener.local_addr().expect("origin address");
        let count = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let count = count.clone();
            async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let mut buffer = [0; 4096];
                    let _ = stream.read(&mut buffer).await;
                    drop(stream);
                }
            }
        });
        Self {
            addr,
            count,
            seen: Arc::default(),
            task,
        }
    }

    /// `http://` and the origin's address, for `--upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached the origin (connections, for
    /// [`Origin::hanging_up`]).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The requests that reached the origin, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the origin on 127.0.0.1")
}

async fn record(request: Request<Incoming>) -> Seen {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    Seen {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        headers: parts.headers,
        body,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
