//! [`TieredBody`]: the body of a response from either tier.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use respcache_core::{BoxError, StreamingError};

pin_project_lite::pin_project! {
    /// The body of a response from the near tier (a hit there, or a far
    /// hit on its way into the near tier) or from the far tier.
    #[derive(Debug)]
    pub struct TieredBody<N, F> {
        #[pin]
        inner: Inner<N, F>,
    }
}

pin_project_lite::pin_project! {
    #[project = Projected]
    #[derive(Debug)]
    enum Inner<N, F> {
        Near { #[pin] body: N },
        Far { #[pin] body: F },
    }
}

impl<N, F> TieredBody<N, F> {
    /// A body of the near tier.
    pub fn near(body: N) -> Self {
        Self {
            inner: Inner::Near { body },
        }
    }

    /// A body of the far tier.
    pub fn far(body: F) -> Self {
        Self {
            inner: Inner::Far { body },
        }
    }

    /// Whether the body comes from the near tier.
    pub fn is_near(&self) -> bool {
        matches!(self.inner, Inner::Near { .. })
    }
}

fn streaming_error(error: impl Into<BoxError>) -> StreamingError {
    StreamingError::from(error.into())
}

impl<N, F> Body for TieredBody<N, F>
where
    N: Body<Data = Bytes>,
    N::Error: Into<BoxError>,
    F: Body<Data = Bytes>,
    F::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = StreamingError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamingError>>> {
        match self.project().inner.project() {
            Projected::Near { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(streaming_error))),
            Projected::Far { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(streaming_error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Near { body } => body.is_end_stream(),
            Inner::Far { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Near { body } => body.size_hint(),
            Inner::Far { body } => body.size_hint(),
        }
    }
}
