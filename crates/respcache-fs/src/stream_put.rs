//! The streaming put: the caller reads the origin's body as it arrives,
//! while a writer thread hashes and stores the same bytes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use respcache_core::StreamingError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;

use crate::Shared;
use crate::write::{BodyWriter, Head};

/// Frames in flight between the caller's body and the writer: the memory
/// bound of a streaming put, whatever the body's size.
const IN_FLIGHT: usize = 8;

enum Message {
    Data(Bytes),
    /// The origin's body completed: commit.
    End,
}

/// Starts the writer thread and returns the body the caller reads.
pub(crate) fn tee<B>(shared: Arc<Shared>, head: Head, origin: B) -> TeeBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StreamingError>,
{
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let (done_tx, done_rx) = oneshot::channel();
    tokio::task::spawn_blocking(move || write_entry(&shared, head, rx, done_tx));
    TeeBody {
        origin: Box::pin(origin),
        state: State::Teeing(PollSender::new(tx)),
        committed: Some(done_rx),
    }
}

/// The writer thread: stores each chunk; commits on `End`. A closed
/// channel without `End` (origin error, caller dropped the body) or any
/// failure drops the writer, which removes its temporary file.
fn write_entry(
    shared: &Shared,
    head: Head,
    mut rx: mpsc::Receiver<Message>,
    done: oneshot::Sender<()>,
) {
    let key = respcache_core::abbreviate_key(&head.key);
    let mut writer = match BodyWriter::create(shared) {
        Ok(writer) => writer,
        Err(err) => {
            tracing::warn!(%key, error = %err, "cache write failed; passing the body through");
            return;
        }
    };
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Data(chunk) => {
                if let Some(limit) = shared.options.max_body_size
                    && writer.len() + chunk.len() as u64 > limit
                {
                    tracing::debug!(%key, limit, "body too large to cache; passing it through");
                    return;
                }
                if let Err(err) = writer.write(&chunk) {
                    tracing::warn!(%key, error = %err, "cache write failed; passing the body through");
                    return;
                }
            }
            Message::End => {
                if let Err(err) = writer.commit(shared, head) {
                    tracing::warn!(%key, error = %err, "cache commit failed");
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// The body a streaming put hands back: each frame from the origin as it
/// arrives, with a copy (a reference count, not bytes) sent to the writer.
pub(crate) struct TeeBody<B: Body> {
    origin: Pin<Box<B>>,
    state: State,
    /// Resolves when the writer has committed (or given up).
    committed: Option<oneshot::Receiver<()>>,
}

enum State {
    /// Every frame goes to the caller and to the writer.
    Teeing(PollSender<Message>),
    /// The origin ended; end-of-stream waits for the commit, so a caller
    /// that read the whole body can read its own write at once.
    Committing(oneshot::Receiver<()>),
    /// Caching was abandoned (write failure, body too large): the bytes
    /// keep flowing to the caller untouched.
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
                State::PassThrough => {
                    return this.origin.as_mut().poll_frame(cx).map(|frame| {
                        frame.map(|f| f.map(|f| f.map_data(to_bytes)).map_err(Into::into))
                    });
                }
                State::Teeing(writer) => {
                    // Room for one more frame first: a writer slower than
                    // the origin slows the read instead of buffering.
                    if ready!(writer.poll_reserve(cx)).is_err() {
                        this.state = State::PassThrough;
                        continue;
                    }
                    match ready!(this.origin.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            let frame = frame.map_data(to_bytes);
                            if let Some(data) = frame.data_ref()
                                && writer.send_item(Message::Data(data.clone())).is_err()
                            {
                                this.state = State::PassThrough;
                            }
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        Some(Err(err)) => {
                            // Dropping the sender without `End` aborts the write.
                            this.state = State::PassThrough;
                            return Poll::Ready(Some(Err(err.into())));
                        }
                        None => {
                            this.state =
                                match (writer.send_item(Message::End), this.committed.take()) {
                                    (Ok(()), Some(committed)) => State::Committing(committed),
                                    _ => State::Done,
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
            // One more poll is needed to send `End` and commit.
            State::Committing(_) | State::Teeing(_) => false,
            State::PassThrough => self.origin.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.origin.size_hint()
    }
}

fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    // Zero-copy when the origin's data already is `Bytes`.
    data.copy_to_bytes(data.remaining())
}
