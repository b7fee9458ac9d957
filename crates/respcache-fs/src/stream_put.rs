//! The streaming put: the caller reads the origin's body as it arrives
//! (a [`respcache_core::tee`]), while a writer task hashes and stores the
//! same bytes.

use std::sync::Arc;

use http_body::Body;
use respcache_core::{StreamingError, TeeBody, TeeEvent, TeeWriter};

use crate::Shared;
use crate::write::{BodyWriter, Head};

// ANCHOR: start
/// Frames in flight between the caller's body and the writer: the memory
/// bound of a streaming put, whatever the body's size.
const IN_FLIGHT: usize = 8;

/// Starts the writer and returns the body the caller reads.
pub(crate) fn start<B>(shared: Arc<Shared>, head: Head, origin: B) -> TeeBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StreamingError>,
{
    let (body, writer) = respcache_core::tee(origin, IN_FLIGHT);
    tokio::spawn(write_entry(shared, head, writer));
    body
}
// ANCHOR_END: start

/// The writer: stores each chunk; commits on `End`. A body that ends
/// without `End` (origin error, caller dropped it) or any failure drops
/// the writer, which removes its temporary file; the caller's body then
/// passes through untouched.
///
/// Each file operation is its own short blocking call, so a slow origin
/// holds a buffer and a file while it trickles, never a thread of the
/// blocking pool.
async fn write_entry(shared: Arc<Shared>, head: Head, mut events: TeeWriter) {
    let key = respcache_core::abbreviate_key(&head.key).to_string();
    let created = {
        let shared = shared.clone();
        let full_key = head.key.clone();
        blocking(move || Ok(BodyWriter::create(&shared, &full_key)?)).await
    };
    let mut writer = match created {
        Ok(writer) => writer,
        Err(err) => {
            tracing::warn!(%key, error = %err, "cache write failed; passing the body through");
            return;
        }
    };
    while let Some(event) = events.recv().await {
        match event {
            TeeEvent::Data(chunk) => {
                if let Some(limit) = shared.options.max_body_size
                    && writer.len() + chunk.len() as u64 > limit
                {
                    tracing::debug!(%key, limit, "body too large to cache; passing it through");
                    return;
                }
                let written = blocking(move || {
                    writer.write(&chunk)?;
                    Ok(writer)
                })
                .await;
                writer = match written {
                    Ok(writer) => writer,
                    Err(err) => {
                        tracing::warn!(%key, error = %err, "cache write failed; passing the body through");
                        return;
                    }
                };
            }
            TeeEvent::End => {
                let shared = shared.clone();
                match blocking(move || writer.commit(&shared, head)).await {
                    Ok(()) => events.committed(),
                    // Dropping `events` tells the caller nothing was stored.
                    Err(err) => tracing::warn!(%key, error = %err, "cache commit failed"),
                }
                return;
            }
        }
    }
}

/// Runs `work` on the blocking pool; a task that could not finish (the
/// runtime shutting down) is an error like any other write failure.
async fn blocking<T, F>(work: F) -> Result<T, respcache_core::BoxError>
where
    F: FnOnce() -> Result<T, respcache_core::BoxError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await?
}
