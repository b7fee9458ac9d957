//! The engine's body as a reqwest body.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use respcache_http::{BoxError, CacheBody};

/// A [`CacheBody`] that is `Sync`, as `reqwest::Body::wrap` requires.
///
/// The engine's body is `Send` only. Polling takes `&mut self`, where the
/// mutex is reached without locking (`get_mut`); only `size_hint` and
/// `is_end_stream`, which take `&self`, lock it, and nothing else ever
/// holds it.
pub(crate) struct SyncBody(Mutex<CacheBody>);

impl SyncBody {
    pub(crate) fn new(body: CacheBody) -> Self {
        Self(Mutex::new(body))
    }

    fn inner_mut(&mut self) -> &mut CacheBody {
        // A panic inside the body's own poll leaves it no worse than any
        // body that panicked; the caller sees whatever it does next.
        self.0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with<T>(&self, f: impl FnOnce(&CacheBody) -> T) -> T {
        f(&self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Body for SyncBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(self.get_mut().inner_mut()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.with(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.with(Body::size_hint)
    }
}
