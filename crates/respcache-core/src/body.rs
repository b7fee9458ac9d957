//! [`StreamingBody`]: the body streaming backends hand out.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::StreamingError;

/// The chunk size [`StreamingBody::from_file`] reads with.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

/// A response body: bytes already in memory, a file read in fixed-size
/// chunks, chunks produced by another task, or any other body, boxed.
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
    File(FileBody),
    Chunks(ChunkBody),
    Boxed(UnsyncBoxBody<Bytes, StreamingError>),
}

struct ChunkBody {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, StreamingError>>,
    /// Bytes still expected.
    left: u64,
    failed: bool,
}

struct FileBody {
    file: tokio::fs::File,
    chunk_size: usize,
    /// Bytes still expected; `None` reads to the end of the file.
    remaining: Option<u64>,
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

    /// A file read from its current position to its end, in chunks of
    /// [`DEFAULT_CHUNK_SIZE`].
    pub fn from_file(file: tokio::fs::File) -> Self {
        Self::from_file_with(file, None, DEFAULT_CHUNK_SIZE)
    }

    /// A file read in chunks of `chunk_size` bytes. With `len`, exactly that
    /// many bytes are yielded, and a file that ends sooner ends the body with
    /// an `UnexpectedEof` error instead of a silently short body.
    pub fn from_file_with(file: tokio::fs::File, len: Option<u64>, chunk_size: usize) -> Self {
        Self {
            inner: Inner::File(FileBody {
                file,
                chunk_size: chunk_size.max(1),
                remaining: len,
            }),
        }
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
            Inner::File(file) => f
                .debug_struct("StreamingBody::File")
                .field("chunk_size", &file.chunk_size)
                .field("remaining", &file.remaining)
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

impl FileBody {
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamingError>>> {
        let want = match self.remaining {
            Some(0) => return Poll::Ready(None),
            Some(left) => usize::try_from(left).map_or(self.chunk_size, |l| l.min(self.chunk_size)),
            None => self.chunk_size,
        };
        let mut buf = BytesMut::zeroed(want);
        let mut read_buf = ReadBuf::new(&mut buf);
        if let Err(err) = ready!(Pin::new(&mut self.file).poll_read(cx, &mut read_buf)) {
            return Poll::Ready(Some(Err(err.into())));
        }
        let filled = read_buf.filled().len();
        if filled == 0 {
            return Poll::Ready(match self.remaining {
                None => None,
                Some(left) => {
                    self.remaining = Some(0);
                    Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("cached file ended {left} bytes early"),
                    )
                    .into()))
                }
            });
        }
        buf.truncate(filled);
        if let Some(left) = &mut self.remaining {
            *left -= filled as u64;
        }
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
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
            Inner::File(file) => file.poll_chunk(cx),
            Inner::Chunks(chunks) => chunks.poll_chunk(cx),
            Inner::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Buffered(bytes) => bytes.is_none(),
            Inner::File(file) => file.remaining == Some(0),
            Inner::Chunks(chunks) => chunks.failed || chunks.left == 0 && chunks.chunks.is_closed(),
            Inner::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::File(FileBody {
                remaining: Some(left),
                ..
            }) => SizeHint::with_exact(*left),
            Inner::File(_) => SizeHint::default(),
            Inner::Chunks(chunks) => SizeHint::with_exact(chunks.left),
            Inner::Boxed(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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

    fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[tokio::test]
    async fn file_body_reads_in_fixed_chunks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let file = temp_file(&data);
        let handle = tokio::fs::File::open(file.path()).await.unwrap();
        let body = StreamingBody::from_file_with(handle, Some(data.len() as u64), 4096);
        assert_eq!(body.size_hint().exact(), Some(10_000));
        let (sizes, all) = collect(body).await.unwrap();
        assert_eq!(all, data);
        assert!(sizes.iter().all(|&s| s <= 4096), "{sizes:?}");
    }

    #[tokio::test]
    async fn file_shorter_than_expected_ends_in_an_error() {
        let file = temp_file(b"short");
        let handle = tokio::fs::File::open(file.path()).await.unwrap();
        let body = StreamingBody::from_file_with(handle, Some(100), 4096);
        let err = collect(body).await.unwrap_err();
        let io = err.get_ref().downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
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
