//! [`Origin`]: a real HTTP/1 origin on loopback that records what reaches
//! it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// The path and query, as sent.
    pub path: String,
    /// The request's fields.
    pub headers: HeaderMap,
    /// The whole request body.
    pub body: Bytes,
}

/// A handler's answer, once it is ready.
type Answer<B> = Pin<Box<dyn Future<Output = Response<B>> + Send>>;

/// An HTTP/1 origin on 127.0.0.1, serving on a free port until it is
/// dropped. Every request is recorded (and counted) as soon as its body
/// has arrived, before the handler answers it, so a test can see a request
/// whose answer a [`Gate`](crate::Gate) holds back.
#[derive(Debug)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests (for [`Origin::hanging_up`], connections) so far.
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
    pub async fn start<F, B>(respond: F) -> Self
    where
        F: Fn(&Seen, usize) -> Response<B> + Send + Sync + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let respond = Arc::new(respond);
        Self::start_async(move |seen, n| {
            let respond = respond.clone();
            Box::pin(async move { respond(&seen, n) })
        })
        .await
    }

    /// Like [`Origin::start`], for handlers that wait (on a
    /// [`Gate`](crate::Gate), a timer) before they answer.
    pub async fn start_async<F, B>(handler: F) -> Self
    where
        F: Fn(Seen, usize) -> Answer<B> + Send + Sync + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = bind().await;
        let addr = listener.local_addr().expect("the origin's address");
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let task = tokio::spawn({
            let (count, seen) = (count.clone(), seen.clone());
            async move {
                loop {
                    let Some(stream) = accept(&listener).await else {
                        continue;
                    };
                    let (handler, count, seen) = (handler.clone(), count.clone(), seen.clone());
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (handler, count, seen) = (handler.clone(), count.clone(), seen.clone());
                        async move {
                            let request = record(request).await;
                            lock(&seen).push(request.clone());
                            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                            Ok::<_, Infallible>(handler(request, n).await)
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
    /// and closes it without answering: an upstream that fails.
    pub async fn hanging_up() -> Self {
        let listener = bind().await;
        let addr = listener.local_addr().expect("the origin's address");
        let count = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let count = count.clone();
            async move {
                loop {
                    let Some(mut stream) = accept(&listener).await else {
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

    /// How many requests reached the origin (connections, for
    /// [`Origin::hanging_up`]).
    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The requests that reached the origin, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// `http://`, the origin's address and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://` and the origin's address, with no path: what a proxy is
    /// given as its upstream.
    pub fn base_url(&self) -> String {
        self.url("")
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the origin on 127.0.0.1")
}

/// The next connection; `None` after a failed accept (out of file
/// descriptors, say), after a pause so that a lasting failure does not
/// spin.
async fn accept(listener: &TcpListener) -> Option<tokio::net::TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => Some(stream),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
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

/// A poisoned lock still holds a consistent list: pushes cannot panic
/// halfway.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::{Gate, full};

    async fn raw(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply).await;
        reply
    }

    #[tokio::test]
    async fn records_method_path_query_fields_and_body_and_counts() {
        let origin =
            Origin::start(|seen, n| Response::new(full(format!("{n}:{}", seen.path)))).await;
        let reply = raw(
            origin.addr,
            "POST /p?q=1 HTTP/1.1\r\nhost: x\r\nx-a: b\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc",
        )
        .await;
        assert!(reply.ends_with("1:/p?q=1"), "{reply}");
        let seen = origin.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, Method::POST);
        assert_eq!(seen[0].headers["x-a"], "b");
        assert_eq!(seen[0].body, "abc");
        assert_eq!(origin.requests(), 1);
        assert_eq!(origin.base_url(), format!("http://{}", origin.addr));
    }

    #[tokio::test]
    async fn a_request_is_recorded_before_a_waiting_handler_answers() {
        let gate = Gate::new();
        let origin = Origin::start_async({
            let gate = gate.clone();
            move |_, _| {
                let gate = gate.clone();
                Box::pin(async move {
                    gate.opened().await;
                    Response::new(full("late"))
                })
            }
        })
        .await;
        let addr = origin.addr;
        let reply = tokio::spawn(async move {
            raw(
                addr,
                "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .await
        });
        let recorded = async {
            while origin.requests() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), recorded)
            .await
            .expect("the request was not recorded while its handler waited");
        assert_eq!(origin.seen().len(), 1);
        assert!(!reply.is_finished());
        gate.open();
        assert!(reply.await.unwrap().ends_with("late"));
    }

    #[tokio::test]
    async fn a_hanging_up_origin_counts_connections_and_answers_none() {
        let origin = Origin::hanging_up().await;
        let reply = raw(origin.addr, "GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert_eq!(reply, "");
        assert_eq!(origin.requests(), 1);
        assert!(origin.seen().is_empty());
    }
}
