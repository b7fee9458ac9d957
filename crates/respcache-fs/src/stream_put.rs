//! The streaming put: the caller reads the origin's body as it arrives
//! (a [`respcache_core::tee`]), while a writer thread hashes and stores the
//! same bytes.

use std::sync::Arc;

use http_body::Body;
use respcache_core::{StreamingError, TeeBody, TeeEvent, TeeWriter};

use crate::Shared;
use crate::write::{BodyWriter, Head};

/// Frames in flight between the caller's body and the writer: the memory
/// bound of a streaming put, whatever the body's size.
const IN_FLIGHT: usize = 8;

/// Starts the writer thread and returns the body the caller reads.
pub(crate) fn start<B>(shared: Arc<Shared>, head: Head, origin: B) -> TeeBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StreamingError>,
{
    let (body, writer) = respcache_core::tee(origin, IN_FLIGHT);
    tokio::task::spawn_blocking(move || write_entry(&shared, head, writer));
    body
}

/// The writer thread: stores each chunk; commits on `End`. A body that
/// ends without `End` (origin error, caller dropped it) or any failure
/// drops the writer, which removes its temporary file; the caller's body
/// then passes through untouched.
fn write_entry(shared: &Shared, head: Head, mut events: TeeWriter) {
    let key = respcache_core::abbreviate_key(&head.key);
    let mut writer = match BodyWriter::create(shared, &head.key) {
        Ok(writer) => writer,
        Err(err) => {
            tracing::warn!(%key, error = %err, "cache write failed; passing the body through");
            return;
        }
    };
    while let Some(event) = events.blocking_recv() {
        match event {
            TeeEvent::Data(chunk) => {
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
            TeeEvent::End => {
                match writer.commit(shared, head) {
                    Ok(()) => events.committed(),
                    // Dropping `events` tells the caller nothing was stored.
                    Err(err) => tracing::warn!(%key, error = %err, "cache commit failed"),
                }
                return;
            }
        }
    }
}
