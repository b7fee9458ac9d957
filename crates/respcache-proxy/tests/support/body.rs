//! Bodies for requests and responses on both sides of the proxy.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use tokio::sync::mpsc;

/// The one body type the test origin and client send.
pub type Body = BoxBody<Bytes, Infallible>;

/// A body of `data`, sent with a `Content-Length`.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

/// A body whose chunks are what is sent on the returned sender; it ends
/// when the sender is dropped. Sent chunked, as its length is unknown.
pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
    let (sender, receiver) = mpsc::channel(16);
    (sender, Channel { receiver }.boxed())
}

/// A chunked body that sends `chunks` one at a time, `gap` apart.
pub fn trickle(chunks: Vec<Bytes>, gap: Duration) -> Body {
    let (sender, body) = channel();
    tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
    });
    body
}

/// `len` bytes that are not all alike, so that a reordered, dropped or
/// repeated chunk shows in a comparison.
pub fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

struct Channel {
    receiver: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}
