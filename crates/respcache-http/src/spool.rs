//! One response body read by several requests as it arrives (request
//! coalescing; see `coalesce`).
//!
//! A task of its own (the pump) reads the body being stored and hands
//! every chunk to the leader and to each follower, so a follower's first
//! byte does not wait for the origin's last. Memory stays flat: the spool
//! holds at most `limit` bytes that some reader has not read yet, and makes
//! the origin wait for the slowest reader beyond that. A follower that
//! comes once the body has outgrown the limit (its start is gone) waits for
//! the store to finish and reads the entry from storage instead.
//!
//! One reader leaving (a client that hangs up) never cuts the others off;
//! only when every reader has left is the transfer, and with it the store,
//! abandoned. One reader stalling holds the others back for at most
//! `stall` at a time: then the slowest readers are cut off, their bodies
//! ending in an error, and the rest go on.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use respcache_core::BoxError;

use crate::body::CacheBody;
use crate::lock;

/// The shortest stall the pump waits out before it looks again.
const MIN_STALL: Duration = Duration::from_millis(10);

/// One response body on its way from the origin to several readers.
pub(crate) struct Spool<M> {
    meta: M,
    limit: usize,
    /// The body's length, when the origin said it.
    len: Option<u64>,
    state: Mutex<State>,
}

impl<M> std::fmt::Debug for Spool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("limit", &self.limit)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Chunks not yet read by every reader (all of them while `whole`).
    chunks: VecDeque<Bytes>,
    /// The number of the chunk at the front of `chunks`.
    first: u64,
    /// Bytes in `chunks`.
    held: usize,
    /// The body outgrew the limit: its first bytes may be gone, so no
    /// reader may join any more.
    outgrown: bool,
    readers: HashMap<u64, Reader>,
    next_id: u64,
    end: Option<End>,
    /// The pump, waiting for the slowest reader.
    pump: Option<Waker>,
}

struct Reader {
    /// The number of the next chunk this reader gets.
    next: u64,
    waker: Option<Waker>,
    /// Cut off for holding the others back: its body ends in an error.
    cut_off: bool,
}

#[derive(Clone)]
enum End {
    Complete(Option<HeaderMap>),
    Failed(Arc<str>),
}

impl State {
    fn pushed(&self) -> u64 {
        self.first + self.chunks.len() as u64
    }

    fn wake_readers(&mut self) {
        for reader in self.readers.values_mut() {
            if let Some(waker) = reader.waker.take() {
                waker.wake();
            }
        }
    }

    /// Drops the chunks every reader has read, once joining is over.
    fn release(&mut self) {
        if !self.outgrown {
            return;
        }
        let pushed = self.pushed();
        let oldest = self
            .readers
            .values()
            .filter(|reader| !reader.cut_off)
            .map(|reader| reader.next)
            .min()
            .unwrap_or(pushed);
        let mut freed = false;
        while self.first < oldest {
            let Some(chunk) = self.chunks.pop_front() else {
                break;
            };
            self.held -= chunk.len();
            self.first += 1;
            freed = true;
        }
        if freed && let Some(pump) = self.pump.take() {
            pump.wake();
        }
    }
}

impl<M> Spool<M> {
    /// A spool for a body of `len` bytes (when known), holding at most
    /// `limit` unread bytes, and the first reader's (the leader's) end of
    /// it.
    pub(crate) fn new(meta: M, limit: usize, len: Option<u64>) -> (Arc<Self>, SpoolReader<M>) {
        let spool = Arc::new(Spool {
            meta,
            limit,
            len,
            state: Mutex::new(State::default()),
        });
        let leader = spool.reader(&mut lock(&spool.state));
        (spool, leader)
    }

    /// What the leader said about the response.
    pub(crate) fn meta(&self) -> &M {
        &self.meta
    }

    /// A reader from the body's first byte, unless that byte is gone (the
    /// body outgrew the limit) or the transfer failed.
    pub(crate) fn attach(self: &Arc<Self>) -> Option<SpoolReader<M>> {
        let mut state = lock(&self.state);
        if state.outgrown || matches!(state.end, Some(End::Failed(_))) {
            return None;
        }
        Some(self.reader(&mut state))
    }

    fn reader(self: &Arc<Self>, state: &mut State) -> SpoolReader<M> {
        let id = state.next_id;
        state.next_id += 1;
        state.readers.insert(
            id,
            Reader {
                next: 0,
                waker: None,
                cut_off: false,
            },
        );
        SpoolReader {
            spool: self.clone(),
            id,
            read: 0,
            finished: false,
        }
    }

    fn push(&self, chunk: Bytes) {
        let mut state = lock(&self.state);
        state.held += chunk.len();
        state.chunks.push_back(chunk);
        if state.held > self.limit {
            state.outgrown = true;
        }
        state.release();
        state.wake_readers();
    }

    /// Ends the body for every reader, unless it has ended already.
    fn finish(&self, end: End) {
        let mut state = lock(&self.state);
        if state.end.is_none() {
            state.end = Some(end);
        }
        state.wake_readers();
    }

    /// Cuts off the readers furthest behind, so that the others go on;
    /// none when nobody is ahead of them (a lone slow reader slows only
    /// itself, and the origin with it). Whether it cut any off.
    fn cut_off_slowest(&self) -> bool {
        let mut state = lock(&self.state);
        let mut positions = state
            .readers
            .values()
            .filter(|reader| !reader.cut_off)
            .map(|reader| reader.next);
        let Some(first) = positions.next() else {
            return false;
        };
        let (oldest, newest) = positions.fold((first, first), |(lo, hi), next| {
            (lo.min(next), hi.max(next))
        });
        if oldest == newest {
            return false;
        }
        for reader in state.readers.values_mut() {
            if reader.next == oldest {
                reader.cut_off = true;
                if let Some(waker) = reader.waker.take() {
                    waker.wake();
                }
            }
        }
        state.release();
        true
    }

    /// Ready when the pump may read on: some reader is left, and the
    /// slowest is within the limit. `false` when every reader has left.
    fn poll_wanted(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = lock(&self.state);
        if state.readers.values().all(|reader| reader.cut_off) {
            return Poll::Ready(false);
        }
        if state.held > self.limit {
            state.pump = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(true)
    }
}

/// Reads the stored body into the spool until it ends, fails, or nobody
/// reads any more; `flight` (what tells waiting requests that the store is
/// done) is dropped then, before the readers see the end.
pub(crate) async fn pump<M, F>(
    spool: Arc<Spool<M>>,
    mut body: CacheBody,
    flight: F,
    stall: Duration,
) {
    // Whatever stops the pump, a panic in a body included, ends the
    // readers' bodies too; none waits forever.
    let _ending = Ending(&spool);
    // A zero stall would spin while a lone reader is slow.
    let stall = stall.max(MIN_STALL);
    let mut trailers = None;
    let end = loop {
        let wanted = std::future::poll_fn(|cx| spool.poll_wanted(cx));
        match tokio::time::timeout(stall, wanted).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(
                    "every reader of a coalesced response left; its store is abandoned"
                );
                break End::Failed("every reader left".into());
            }
            Err(_) => {
                if spool.cut_off_slowest() {
                    tracing::info!(
                        ?stall,
                        "a reader of a coalesced response held the others back; it is cut off"
                    );
                }
                continue;
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => spool.push(data),
                // The store commits at the body's end, after its trailers.
                Err(frame) => trailers = frame.into_trailers().ok().or(trailers),
            },
            Some(Err(error)) => break End::Failed(error.to_string().into()),
            None => break End::Complete(trailers),
        }
    };
    // The store is committed (or abandoned) once its body has ended or is
    // dropped. The flight ends first, so that a request from now on looks
    // the entry up instead of reading this spool; the readers end after.
    drop(body);
    drop(flight);
    spool.finish(end);
}

/// Ends a spool's body as failed when dropped before it was ended.
struct Ending<'a, M>(&'a Spool<M>);

impl<M> Drop for Ending<'_, M> {
    fn drop(&mut self) {
        self.0.finish(End::Failed("the transfer stopped".into()));
    }
}

/// One reader's view of a spooled body.
pub(crate) struct SpoolReader<M> {
    spool: Arc<Spool<M>>,
    id: u64,
    /// Bytes this reader has had.
    read: u64,
    /// It has had the end (trailers or error) already.
    finished: bool,
}

impl<M> Drop for SpoolReader<M> {
    fn drop(&mut self) {
        let mut state = lock(&self.spool.state);
        state.readers.remove(&self.id);
        state.release();
        if state.readers.values().all(|reader| reader.cut_off)
            && let Some(pump) = state.pump.take()
        {
            pump.wake();
        }
    }
}

impl<M> Body for SpoolReader<M> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let spool = this.spool.clone();
        let mut state = lock(&spool.state);
        let Some((next, cut_off)) = state
            .readers
            .get(&this.id)
            .map(|reader| (reader.next, reader.cut_off))
        else {
            return Poll::Ready(None);
        };
        if cut_off {
            if this.finished {
                return Poll::Ready(None);
            }
            this.finished = true;
            return Poll::Ready(Some(Err(
                "this reader fell too far behind the others of a coalesced response".into(),
            )));
        }
        if next < state.pushed() {
            // A reader's chunks are released only after it has read them.
            let at = usize::try_from(next - state.first).unwrap_or(usize::MAX);
            let chunk = state.chunks.get(at).cloned().unwrap_or_default();
            if let Some(reader) = state.readers.get_mut(&this.id) {
                reader.next += 1;
            }
            this.read += chunk.len() as u64;
            state.release();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match state.end.clone() {
            None => {
                if let Some(reader) = state.readers.get_mut(&this.id) {
                    reader.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            Some(_) if this.finished => Poll::Ready(None),
            Some(End::Complete(trailers)) => {
                this.finished = true;
                Poll::Ready(trailers.map(|trailers| Ok(Frame::trailers(trailers))))
            }
            Some(End::Failed(error)) => {
                this.finished = true;
                Poll::Ready(Some(Err(
                    format!("the origin's response failed: {error}").into()
                )))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.spool.len {
            Some(len) => SizeHint::with_exact(len.saturating_sub(self.read)),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(limit: usize) -> Arc<Spool<()>> {
        Spool::new((), limit, None).0
    }

    async fn next(reader: &mut SpoolReader<()>) -> Option<Bytes> {
        reader.frame().await?.ok()?.into_data().ok()
    }

    #[tokio::test]
    async fn readers_joining_before_the_limit_get_every_chunk() {
        let spool = spool(10);
        let mut early = spool.attach().unwrap();
        spool.push(Bytes::from_static(b"abcd"));
        let mut late = spool.attach().expect("4 bytes of 10: the start is kept");
        spool.push(Bytes::from_static(b"efgh"));
        spool.finish(End::Complete(None));
        for reader in [&mut early, &mut late] {
            assert_eq!(next(reader).await.unwrap(), "abcd");
            assert_eq!(next(reader).await.unwrap(), "efgh");
            assert!(reader.frame().await.is_none());
        }
    }

    #[tokio::test]
    async fn past_the_limit_no_one_joins_and_read_chunks_are_released() {
        let spool = spool(6);
        let mut reader = spool.attach().unwrap();
        spool.push(Bytes::from_static(b"abcd"));
        spool.push(Bytes::from_static(b"efgh"));
        assert!(spool.attach().is_none(), "the body outgrew the limit");
        assert_eq!(lock(&spool.state).held, 8);
        assert_eq!(next(&mut reader).await.unwrap(), "abcd");
        assert_eq!(lock(&spool.state).held, 4, "the read chunk was released");
        drop(reader);
        assert_eq!(lock(&spool.state).held, 0);
    }

    #[tokio::test]
    async fn a_failed_transfer_ends_every_reader_in_an_error_and_takes_no_one_new() {
        let spool = spool(100);
        let mut reader = spool.attach().unwrap();
        spool.push(Bytes::from_static(b"part"));
        spool.finish(End::Failed("reset".into()));
        assert!(spool.attach().is_none());
        assert_eq!(next(&mut reader).await.unwrap(), "part");
        let error = reader.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("reset"), "{error}");
        assert!(reader.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_reader_that_holds_the_others_back_is_cut_off_with_an_error() {
        let spool = spool(4);
        let mut stalled = spool.attach().unwrap();
        let mut reading = spool.attach().unwrap();
        spool.push(Bytes::from_static(b"abcdef"));
        assert_eq!(next(&mut reading).await.unwrap(), "abcdef");
        assert_eq!(lock(&spool.state).held, 6, "kept for the stalled reader");
        assert!(spool.cut_off_slowest());
        assert_eq!(lock(&spool.state).held, 0, "nobody needs it now");
        let error = stalled.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("fell too far behind"), "{error}");
        assert!(stalled.frame().await.is_none());
        spool.push(Bytes::from_static(b"gh"));
        assert_eq!(next(&mut reading).await.unwrap(), "gh");
    }

    #[tokio::test]
    async fn a_lone_slow_reader_is_never_cut_off() {
        let spool = spool(4);
        let mut reader = spool.attach().unwrap();
        spool.push(Bytes::from_static(b"abcdef"));
        assert!(!spool.cut_off_slowest());
        assert_eq!(next(&mut reader).await.unwrap(), "abcdef");
    }

    #[tokio::test]
    async fn a_pump_that_stops_ends_every_reader() {
        let spool = spool(100);
        let mut reader = spool.attach().unwrap();
        drop(Ending(&spool));
        let error = reader.frame().await.unwrap().unwrap_err();
        assert!(error.to_string().contains("stopped"), "{error}");
    }

    #[tokio::test]
    async fn the_pump_waits_for_the_slowest_reader_and_stops_when_all_leave() {
        let spool = spool(4);
        let reader = spool.attach().unwrap();
        spool.push(Bytes::from_static(b"abcdef"));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            spool.poll_wanted(&mut cx).is_pending(),
            "6 unread bytes of 4"
        );
        drop(reader);
        assert_eq!(spool.poll_wanted(&mut cx), Poll::Ready(false));
    }
}
