//! [`StreamingBody`]: the body streaming backends hand out.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::error::StreamingError;

/// A response body: bytes already in memory, chunks produced by another
/// task (a reader thread, a network fetch), or any other body, boxed.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::BodyExt;
/// use respcache_core::StreamingBody;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let body = StreamingBody::buffered(Bytes::from_static(b"hello"));
/// assert_eq!(body.collect().await?.to_bytes(), "hello");
/// # Ok::<(), respcache_core::StreamingError>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamingBody {
    inner: Inner,
}

enum Inner {
    Buffered(Option<Bytes>),
    Chunks(ChunkBody),
    Boxed(UnsyncBoxBody<Bytes, StreamingError>),
}

struct ChunkBody {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, StreamingError>>,
    /// Bytes still expected.
    left: u64,
    failed: bool,
}

impl StreamingBody {
    /// A body of bytes already in memory, yielded as one frame.
    pub fn buffered(bytes: Bytes) -> Self {
        let bytes = (!bytes.is_empty()).then_some(bytes);
        Self {
            inner: Inner::Buffered(bytes),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::buffered(Bytes::new())
    }

    /// Chunks sent by another task (a reader thread, a network fetch) over
    /// `chunks`, `len` bytes in all. The sender ends the body by dropping
    /// its side; an error item ends it with that error, and a channel that
    /// closes before `len` bytes arrived ends it with `UnexpectedEof`, never
    /// as a silently short body.
    pub fn from_chunks(
        chunks: tokio::sync::mpsc::Receiver<Result<Bytes, StreamingError>>,
        len: u64,
    ) -> Self {
        Self {
            inner: Inner::Chunks(ChunkBody {
                chunks,
                left: len,
                failed: false,
            }),
        }
    }

    /// Any body whose error converts into [`StreamingError`], boxed.
    pub fn boxed<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StreamingError>,
    {
        Self {
            inner: Inner::Boxed(body.map_err(Into::into).boxed_unsync()),
        }
    }
}

impl fmt::Debug for StreamingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Buffered(bytes) => f
                .debug_tuple("StreamingBody::Buffered")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Inner::Chunks(chunks) => f
                .debug_struct("StreamingBody::Chunks")
                .field("left", &chunks.left)
                .finish(),
            Inner::Boxed(_) => f.write_str("StreamingBody::Boxed"),
        }
    }
}

impl Default for StreamingBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for StreamingBody {
    fn from(bytes: Bytes) -> Self {
        Self::buffered(bytes)
    }
}

impl ChunkBody {
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamingError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        Poll::Ready(match ready!(self.chunks.poll_recv(cx)) {
            Some(Ok(chunk)) => {
                self.left = self.left.saturating_sub(chunk.len() as u64);
                Some(Ok(Frame::data(chunk)))
            }
            Some(Err(err)) => {
                self.failed = true;
                Some(Err(err))
            }
            None if self.left > 0 => {
                self.failed = true;
                let err = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended {} bytes early", self.left),
                );
                Some(Err(err.into()))
            }
            None => None,
        })
    }
}

impl Body for StreamingBody {
    type Data = Bytes;
    type Error = StreamingError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamingError>>> {
        match &mut self.get_mut().inner {
            Inner::Buffered(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Chunks(chunks) => chunks.poll_chunk(cx),
            Inner::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Buffered(bytes) => bytes.is_none(),
            Inner::Chunks(chunks) => chunks.failed || chunks.left == 0 && chunks.chunks.is_closed(),
            Inner::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Chunks(chunks) => SizeHint::with_exact(chunks.left),
            Inner::Boxed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: StreamingBody) -> Result<(Vec<usize>, Vec<u8>), StreamingError> {
        let mut body = body;
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame?.into_data().unwrap_or_default();
            sizes.push(data.len());
            all.extend_from_slice(&data);
        }
        Ok((sizes, all))
    }

    #[tokio::test]
    async fn a_chunk_channel_that_closes_early_ends_in_an_error() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        drop(tx);
        let err = collect(StreamingBody::from_chunks(rx, 10))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("7 bytes early"), "{err}");

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        drop(tx);
        assert_eq!(
            collect(StreamingBody::from_chunks(rx, 3)).await.unwrap().1,
            b"abc"
        );
    }

    #[tokio::test]
    async fn buffered_and_boxed_bodies_yield_their_bytes() {
        let (_, all) = collect(StreamingBody::buffered(Bytes::from_static(b"abc")))
            .await
            .unwrap();
        assert_eq!(all, b"abc");
        let boxed = StreamingBody::boxed(http_body_util::Full::new(Bytes::from_static(b"xyz")));
        assert_eq!(collect(boxed).await.unwrap().1, b"xyz");
        assert!(StreamingBody::empty().is_end_stream());
    }
}
