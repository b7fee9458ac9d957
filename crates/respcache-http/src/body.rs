//! The body type the engine hands out, and small helpers around it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use respcache_core::{BoxError, CommitWatch};

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

/// Reads `body` to its end; returns a body that yields the same frames
/// (and the same error, if it failed), and whether it completed.
pub(crate) async fn read_whole(mut body: CacheBody) -> (CacheBody, bool) {
    let mut frames = VecDeque::new();
    let complete = loop {
        match body.frame().await {
            Some(Ok(frame)) => frames.push_back(Ok(frame)),
            Some(Err(error)) => {
                frames.push_back(Err(error));
                break false;
            }
            None => break true,
        }
    };
    let left = frames
        .iter()
        .filter_map(|frame| {
            frame
                .as_ref()
                .ok()?
                .data_ref()
                .map(|data| data.len() as u64)
        })
        .sum();
    (UnsyncBoxBody::new(Replay { frames, left }), complete)
}

/// Frames read already, handed out again.
struct Replay {
    frames: VecDeque<Result<Frame<Bytes>, BoxError>>,
    /// Data bytes not yet handed out.
    left: u64,
}

impl Body for Replay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = self.frames.pop_front();
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            self.left -= data.map_or(0, |data| data.len() as u64);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.frames.iter().any(Result::is_err) {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.left)
        }
    }
}

/// Reads, in a task of its own, the rest of a body whose client no
/// longer wants it, so that its store completes: for at most `deadline`,
/// and no longer than the store goes on (a store that gives up, a body too
/// large, a failed write, leaves nothing worth reading for).
pub(crate) fn finish_storing(body: CacheBody, commit: Option<CommitWatch>, deadline: Duration) {
    tokio::spawn(async move {
        let abandoned = async {
            match commit {
                // `true` comes only after the body's end: drain finishes first.
                Some(commit) => {
                    if commit.committed().await {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            drained = tokio::time::timeout(deadline, drain(body)) => {
                if drained.is_err() {
                    tracing::info!(?deadline, "a background transfer ran past its deadline; its store is abandoned");
                }
            }
            () = abandoned => tracing::debug!("the store gave up; the rest of the body is not read"),
        }
    });
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
