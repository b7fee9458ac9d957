//! The streaming put: the caller reads the origin's body as it arrives (a
//! [`respcache_core::tee`]) while a task gathers the same frames, each a
//! reference to the origin's bytes, and stores them once the body is whole.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use respcache_core::{StreamingError, TeeBody, TeeEvent, TeeWriter};

use crate::Shared;
use crate::entry::Entry;

/// Frames in flight between the caller's body and the gathering task.
const IN_FLIGHT: usize = 8;

/// What a streamed entry is stored with once its body is whole.
pub(crate) struct Pending {
    pub(crate) key: String,
    pub(crate) head: http::response::Parts,
    pub(crate) url: url::Url,
    pub(crate) policy: respcache_core::CachePolicy,
    pub(crate) expires_at: Option<tokio::time::Instant>,
}

/// Starts the gathering task and returns the body the caller reads.
pub(crate) fn start<B>(shared: Arc<Shared>, pending: Pending, origin: B) -> TeeBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StreamingError>,
{
    let (body, writer) = respcache_core::tee(origin, IN_FLIGHT);
    tokio::spawn(gather(shared, pending, writer));
    body
}

/// Gathers the frames; stores the entry on `End`. A body past the largest
/// body the manager keeps removes the key's older entry and stores
/// nothing; one that ends without `End` (the origin failed, the caller
/// dropped it) stores nothing. Either way, dropping the writer lets the
/// caller's body pass through and frees what was gathered.
async fn gather(shared: Arc<Shared>, pending: Pending, mut events: TeeWriter) {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut len: u64 = 0;
    while let Some(event) = events.recv().await {
        match event {
            TeeEvent::Data(frame) => {
                len += frame.len() as u64;
                if len > shared.max_body_size {
                    tracing::debug!(
                        key = %respcache_core::abbreviate_key(&pending.key),
                        limit = shared.max_body_size,
                        "body too large to keep in memory; passing it through"
                    );
                    shared.refused(&pending.key);
                    return;
                }
                frames.push(frame);
            }
            TeeEvent::End => {
                let entry = Entry::new(
                    pending.head.status.as_u16(),
                    pending.head.version.into(),
                    pending.head.headers,
                    pending.url,
                    pending.policy,
                    join(frames, len),
                    pending.expires_at,
                );
                if shared.insert(pending.key, entry).is_ok() {
                    events.committed();
                }
                return;
            }
        }
    }
}

/// One `Bytes` of the frames: the frame itself when there is one, else
/// one copy into a buffer of the exact length.
fn join(mut frames: Vec<Bytes>, len: u64) -> Bytes {
    if frames.len() <= 1 {
        return frames.pop().unwrap_or_default();
    }
    let mut whole = BytesMut::with_capacity(len as usize);
    for frame in frames {
        whole.extend_from_slice(&frame);
    }
    whole.freeze()
}
