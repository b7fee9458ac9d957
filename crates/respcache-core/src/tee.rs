//! [`tee`]: one body, two readers. The caller reads the origin's frames as
//! they arrive while a cache writer receives the same bytes (a reference
//! count each, not a copy) to store them.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::PollSender;

use crate::StreamingError;

/// What the writer side of a [`tee`] receives.
#[derive(Debug)]
pub enum TeeEvent {
    /// The next bytes of the body.
    Data(Bytes),
    /// The body completed: the writer may commit, then call
    /// [`TeeWriter::committed`].
    End,
}

/// Splits `body` into the body the caller reads and a [`TeeWriter`] that
/// receives the same bytes.
///
/// At most `in_flight` frames wait for the writer: a writer slower than the
/// origin slows the caller's reads down instead of buffering without bound.
/// The caller's end of stream waits until the writer reports
/// [`TeeWriter::committed`] (or is dropped), so a caller that has read the
/// whole body can read the stored entry at once. If the writer goes away
/// early (a write failed, the body is too large to store), the caller's body
/// carries on as a plain pass-through; if the origin fails or the caller
/// drops its body, the writer receives no [`TeeEvent::End`] and must commit
/// nothing.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use respcache_core::{TeeEvent, tee};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let (body, mut writer) = tee(Full::new(Bytes::from_static(b"hello")), 8);
/// let store = tokio::spawn(async move {
///     let mut stored = Vec::new();
///     while let Some(event) = writer.recv().await {
///         match event {
///             TeeEvent::Data(bytes) => stored.extend_from_slice(&bytes),
///             TeeEvent::End => {
///                 writer.committed();
///                 return Some(stored);
///             }
///         }
///     }
///     None // the body failed or was dropped: store nothing
/// });
/// assert_eq!(body.collect().await?.to_bytes(), "hello");
/// assert_eq!(store.await?.as_deref(), Some(&b"hello"[..]));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// # }).map_err(|e| e as Box<dyn std::error::Error>)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tee<B>(body: B, in_flight: usize) -> (TeeBody<B>, TeeWriter)
where
    B: Body,
    B::Error: Into<StreamingError>,
{
    // One slot more than `in_flight`, held from the start for `End`, so
    // that the end can be announced together with the last bytes.
    let (tx, rx) = mpsc::channel(in_flight.max(1) + 1);
    let end = tx.clone().try_reserve_owned().ok();
    let (done_tx, done_rx) = oneshot::channel();
    let (outcome, watch) = watch::channel(None);
    let body = TeeBody {
        origin: Box::pin(body),
        state: State::Teeing(PollSender::new(tx)),
        end,
        committed: Some(done_rx),
        watch: CommitWatch(watch),
    };
    let writer = TeeWriter {
        events: rx,
        done: Some(done_tx),
        outcome,
    };
    (body, writer)
}

/// Tells whether a store that is under way committed its entry.
///
/// A streaming backend puts one into the extensions of the response its
/// `put_stream` returns (the [`tee`] makes it: [`TeeBody::commit_watch`]),
/// so that a caller can say "stored" only once it is true, and count
/// stores that failed late (a full disk) as failures. A response without
/// one comes from a backend that does not tell.
#[derive(Debug, Clone)]
pub struct CommitWatch(watch::Receiver<Option<bool>>);

impl CommitWatch {
    /// Waits until the store has ended: `true` when the entry was
    /// committed, `false` when it was abandoned or failed.
    pub async fn committed(mut self) -> bool {
        match self.0.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.unwrap_or(false),
            Err(_) => false,
        }
    }
}

/// The writer's side of a [`tee`]. Dropped without
/// [`TeeWriter::committed`], it tells the [`CommitWatch`] that nothing was
/// committed.
#[derive(Debug)]
pub struct TeeWriter {
    events: mpsc::Receiver<TeeEvent>,
    done: Option<oneshot::Sender<()>>,
    outcome: watch::Sender<Option<bool>>,
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        self.outcome.send_if_modified(|outcome| {
            let unset = outcome.is_none();
            if unset {
                *outcome = Some(false);
            }
            unset
        });
    }
}

impl TeeWriter {
    /// The next event; `None` when the body failed or was dropped before
    /// its end.
    pub async fn recv(&mut self) -> Option<TeeEvent> {
        self.events.recv().await
    }

    /// [`TeeWriter::recv`] for a writer on a blocking thread.
    pub fn blocking_recv(&mut self) -> Option<TeeEvent> {
        self.events.blocking_recv()
    }

    /// Says the entry is committed, and releases the caller's end of
    /// stream, after [`TeeEvent::End`]. A writer that could not commit
    /// drops itself instead.
    pub fn committed(&mut self) {
        self.outcome.send_replace(Some(true));
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// The caller's side of a [`tee`].
pub struct TeeBody<B> {
    origin: Pin<Box<B>>,
    state: State,
    end: Option<OwnedPermit<TeeEvent>>,
    committed: Option<oneshot::Receiver<()>>,
    watch: CommitWatch,
}

impl<B> std::fmt::Debug for TeeBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Teeing(_) => "teeing",
            State::Committing(_) | State::CommittingLast(..) => "committing",
            State::PassThrough => "pass-through",
            State::Done => "done",
        };
        f.debug_struct("TeeBody").field("state", &state).finish()
    }
}

enum State {
    Teeing(PollSender<TeeEvent>),
    Committing(oneshot::Receiver<()>),
    /// The origin's last frame, held back until the writer has committed:
    /// a server that knows the length (hyper with `Content-Length`) stops
    /// reading a body once the last byte is out and never polls for its
    /// end, and a client that has every byte must find the entry stored.
    CommittingLast(oneshot::Receiver<()>, Option<Frame<Bytes>>),
    PassThrough,
    Done,
}

impl<B> Body for TeeBody<B>
where
    B: Body,
    B::Error: Into<StreamingError>,
{
    type Data = Bytes;
    type Error = StreamingError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamingError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Committing(committed) => {
                    let _ = ready!(Pin::new(committed).poll(cx));
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                State::CommittingLast(committed, last) => {
                    let _ = ready!(Pin::new(committed).poll(cx));
                    let last = last.take();
                    this.state = State::Done;
                    return Poll::Ready(last.map(Ok));
                }
                State::PassThrough => {
                    return this.origin.as_mut().poll_frame(cx).map(|frame| {
                        frame.map(|f| f.map(|f| f.map_data(to_bytes)).map_err(Into::into))
                    });
                }
                State::Teeing(writer) => {
                    if ready!(writer.poll_reserve(cx)).is_err() {
                        this.pass_through();
                        continue;
                    }
                    match ready!(this.origin.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            let frame = frame.map_data(to_bytes);
                            if let Some(data) = frame.data_ref()
                                && writer.send_item(TeeEvent::Data(data.clone())).is_err()
                            {
                                this.pass_through();
                                return Poll::Ready(Some(Ok(frame)));
                            }
                            if !this.origin.is_end_stream() {
                                return Poll::Ready(Some(Ok(frame)));
                            }
                            match this.end() {
                                Some(committed) => {
                                    this.state = State::CommittingLast(committed, Some(frame));
                                }
                                None => {
                                    this.state = State::Done;
                                    return Poll::Ready(Some(Ok(frame)));
                                }
                            }
                        }
                        Some(Err(err)) => {
                            // Dropping the sender without `End` aborts the write.
                            this.pass_through();
                            return Poll::Ready(Some(Err(err.into())));
                        }
                        None => {
                            this.state = match this.end() {
                                Some(committed) => State::Committing(committed),
                                None => State::Done,
                            };
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.state {
            State::Done => true,
            // One more poll is needed to send `End` and wait for the commit.
            State::Committing(_) | State::CommittingLast(..) | State::Teeing(_) => false,
            State::PassThrough => self.origin.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.origin.size_hint()
    }
}

impl<B> TeeBody<B> {
    /// How to learn whether the writer committed the entry.
    pub fn commit_watch(&self) -> CommitWatch {
        self.watch.clone()
    }

    /// Announces the end to the writer; returns how to wait for its commit.
    fn end(&mut self) -> Option<oneshot::Receiver<()>> {
        let sent = self.end.take().map(|permit| permit.send(TeeEvent::End));
        self.state = State::Done;
        sent.and(self.committed.take())
    }

    /// Stops feeding the writer; it receives no `End` and commits nothing.
    fn pass_through(&mut self) {
        self.end = None;
        self.state = State::PassThrough;
    }
}

fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    // Zero-copy when the origin's data already is `Bytes`.
    data.copy_to_bytes(data.remaining())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_writer_that_goes_away_leaves_a_pass_through() {
        let data = Bytes::from(vec![5u8; 100_000]);
        let (body, writer) = tee(http_body_util::Full::new(data.clone()), 1);
        drop(writer);
        assert_eq!(body.collect().await.unwrap().to_bytes(), data);
    }

    #[tokio::test]
    async fn the_last_frame_of_a_body_of_known_end_waits_for_the_commit() {
        // A server that knows the length drops the body after its last
        // byte, never polling for the end: the end must travel with it.
        let (mut body, mut writer) = tee(http_body_util::Full::new(Bytes::from_static(b"all")), 4);
        let mut first = std::pin::pin!(body.frame());
        let waker = std::task::Waker::noop();
        let pending = first.as_mut().poll(&mut Context::from_waker(waker));
        assert!(pending.is_pending(), "held until the commit");
        assert!(matches!(writer.recv().await, Some(TeeEvent::Data(d)) if d == "all"));
        assert!(matches!(writer.recv().await, Some(TeeEvent::End)));
        writer.committed();
        let frame = first.await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "all");
        drop(body);
    }

    #[tokio::test]
    async fn an_origin_error_reaches_the_caller_and_no_end_reaches_the_writer() {
        let stream = http_body_util::StreamBody::new(futures_util::stream::iter(vec![
            Ok(Frame::data(Bytes::from_static(b"part"))),
            Err(StreamingError::from("reset")),
        ]));
        let (body, mut writer) = tee(stream, 4);
        assert!(body.collect().await.is_err());
        assert!(matches!(writer.recv().await, Some(TeeEvent::Data(_))));
        assert!(writer.recv().await.is_none(), "no End after an error");
    }

    #[tokio::test]
    async fn the_commit_watch_says_whether_the_writer_committed() {
        let (body, mut writer) = tee(http_body_util::Full::new(Bytes::from_static(b"x")), 4);
        let watch = body.commit_watch();
        let reading = tokio::spawn(body.collect());
        assert!(matches!(writer.recv().await, Some(TeeEvent::Data(_))));
        assert!(matches!(writer.recv().await, Some(TeeEvent::End)));
        writer.committed();
        assert!(watch.committed().await);
        assert!(reading.await.unwrap().is_ok());

        // A writer that fails after the end drops itself: no commit.
        let (body, mut writer) = tee(http_body_util::Full::new(Bytes::from_static(b"x")), 4);
        let watch = body.commit_watch();
        let reading = tokio::spawn(body.collect());
        while let Some(TeeEvent::Data(_)) = writer.recv().await {}
        drop(writer);
        assert!(!watch.committed().await);
        assert_eq!(
            reading.await.unwrap().unwrap().to_bytes(),
            "x",
            "the caller still gets its body"
        );
    }
}
