//! The body type the engine hands out, and small helpers around it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use respcache_core::BoxError;

/// Every response the engine returns carries this body: the origin's,
/// a stored one, or one being stored on its way to the caller.
pub type CacheBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into a [`CacheBody`].
pub fn boxed<B>(body: B) -> CacheBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> CacheBody {
    boxed(Full::new(bytes.into()))
}

/// A body with nothing in it.
pub fn empty() -> CacheBody {
    boxed(Empty::<Bytes>::new())
}

/// A body that fails at once with `error`: what a caller gets when the
/// bytes it was owed are gone (a backend consumed them and failed), so
/// that it sees a failure and never an empty body posing as the response.
pub(crate) fn failed(error: impl Into<BoxError>) -> CacheBody {
    UnsyncBoxBody::new(Failed(Some(error.into())))
}

struct Failed(Option<BoxError>);

impl Body for Failed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

/// Reads `body` to its end and throws the bytes away; the way to drive a
/// store (which commits only when its body is read whole) when nobody is
/// reading. Returns whether the body completed.
pub(crate) async fn drain(mut body: CacheBody) -> bool {
    while let Some(frame) = body.frame().await {
        if let Err(error) = frame {
            tracing::debug!(%error, "body failed while being drained");
            return false;
        }
    }
    true
}

/// A body that holds `guard` until the body ends or is dropped, whichever
/// comes first: it tells waiting requests that a store has finished.
pub(crate) struct Guarded<G> {
    inner: CacheBody,
    guard: Option<G>,
}

impl<G: Send + Unpin + 'static> Guarded<G> {
    pub(crate) fn wrap(inner: CacheBody, guard: G) -> CacheBody {
        let body = Guarded {
            inner,
            guard: Some(guard),
        };
        UnsyncBoxBody::new(body)
    }
}

impl<G: Unpin> Body for Guarded<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
