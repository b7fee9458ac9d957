//! One client connection: TLS with ALPN on the TLS listener, the HTTP/2
//! preface told from HTTP/1.1 on the plain one (h2c with prior
//! knowledge), then hyper's HTTP/1.1 server (with upgrades) or its HTTP/2
//! server, each with its own timeouts, until it ends or the proxy stops.
//!
//! hyper-util's `auto` builder tells the versions apart too, but it waits
//! for the first bytes without a limit: a client that connects and says
//! nothing would hold its connection for ever. Here the wait is the
//! client timeout, as hyper's HTTP/1.1 header timeout is.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What every HTTP/2 connection opens with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a connection is served.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The longest wait for a TLS handshake, for the first bytes, for a
    /// request head (HTTP/1.1), and the longest an HTTP/2 connection
    /// stays open with no request under way.
    pub client_timeout: Duration,
}

/// Counts a connection's requests under way, so that an idle HTTP/2
/// connection can be told from a busy one.
#[derive(Debug)]
pub struct Idle {
    active: AtomicUsize,
    since: Mutex<Instant>,
}

/// One request under way on a connection; dropped with its response
/// body.
#[derive(Debug)]
pub struct Active(Arc<Idle>);

impl Idle {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            active: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        })
    }

    /// Marks a request under way until the returned value is dropped.
    pub fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::SeqCst);
        Active(self.clone())
    }

    /// Returns once the connection has had no request under way for
    /// `limit`.
    async fn idle_for(&self, limit: Duration) {
        let tick = (limit / 4).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(tick).await;
            let since = *self.since.lock().unwrap_or_else(|p| p.into_inner());
            if self.active.load(Ordering::SeqCst) == 0 && since.elapsed() >= limit {
                return;
            }
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        *self.0.since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one accepted connection: over TLS with `tls`, else in the
/// clear. `service` makes the request handler once the connection's
/// activity counter exists. Returns when the connection ends, or after
/// `stopping` turns true and the requests under way have finished.
pub async fn serve<M, S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: Settings,
    make_service: M,
    stopping: tokio::sync::watch::Receiver<bool>,
) where
    M: FnOnce(Arc<Idle>) -> S,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = settings.client_timeout;
    let idle = Idle::new();
    let service = make_service(idle.clone());
    match tls {
        Some(config) => {
            let accepting = tokio_rustls::TlsAcceptor::from(config).accept(stream);
            let stream = match tokio::time::timeout(limit, accepting).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no TLS handshake within the client timeout");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            http(stream, h2, peer, limit, idle, service, stopping).await;
        }
        None => {
            let mut stream = stream;
            let (read, h2) = match tokio::time::timeout(limit, sniff(&mut stream)).await {
                Ok(Ok(sniffed)) => sniffed,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "connection closed before a request");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no request within the client timeout");
                    return;
                }
            };
            let stream = Rewind {
                read,
                at: 0,
                inner: stream,
            };
            http(stream, h2, peer, limit, idle, service, stopping).await;
        }
    }
}

/// Reads until the bytes are, or cannot be, the HTTP/2 preface: what was
/// read, and whether it is.
async fn sniff(stream: &mut TcpStream) -> io::Result<(Vec<u8>, bool)> {
    let mut read = Vec::with_capacity(PREFACE.len());
    let mut buf = [0; PREFACE.len()];
    loop {
        let n = stream.read(&mut buf[..PREFACE.len() - read.len()]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        read.extend_from_slice(&buf[..n]);
        if !PREFACE.starts_with(&read) {
            return Ok((read, false));
        }
        if read.len() == PREFACE.len() {
            return Ok((read, true));
        }
    }
}

/// Serves HTTP/2 or HTTP/1.1 on `io`.
async fn http<I, S, B>(
    io: I,
    h2: bool,
    peer: SocketAddr,
    limit: Duration,
    idle: Arc<Idle>,
    service: S,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stop = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let ended = if h2 {
        // Pings find a peer that has gone; the idle watch closes (with
        // GOAWAY) a connection that stays open and asks nothing.
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(limit)
            .keep_alive_timeout(limit)
            .serve_connection(TokioIo::new(io), service);
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            ended = connection.as_mut() => ended,
            () = async { tokio::select! { () = stop => {}, () = idle.idle_for(limit) => {} } } => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    } else {
        // The header timeout runs from the moment the connection waits
        // for a request head: it also closes a connection left idle.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limit)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            ended = connection.as_mut() => ended,
            () = stop => {
                // Finish the response in flight, then close.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    };
    if let Err(error) = ended {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// A stream whose first bytes were read already: they are read again
/// first.
struct Rewind<T> {
    read: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.read.len() {
            let n = (self.read.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.read[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preface_is_told_from_a_request_line() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (sent, h2) in [(&PREFACE[..], true), (&b"GET / HTTP/1.1\r\n"[..], false)] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut client, sent)
                .await
                .unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let (read, is_h2) = sniff(&mut server).await.unwrap();
            assert_eq!(is_h2, h2);
            assert!(sent.starts_with(&read) && !read.is_empty());
        }
    }
}
