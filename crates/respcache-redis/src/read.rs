//! Reading an entry: the head, then its chunks, checked against the
//! recorded length and XXH3 on every read.

use bytes::{Bytes, BytesMut};
use redis::AsyncCommands;
use respcache_core::{BoxError, CacheError, StreamingError};
use std::hash::Hasher as _;
use tokio::sync::mpsc;
use twox_hash::XxHash3_64;

use crate::Con;
use crate::head::{Decoded, Meta};
use crate::keys::EntryKeys;
use crate::scripts::REMOVE;

/// How many chunks one MGET asks for.
const CHUNKS_PER_REQUEST: usize = 16;
/// How often a buffered read follows a concurrent overwrite.
const RETRIES: usize = 3;

/// The head of an entry as read.
pub(crate) struct Head {
    pub(crate) generation: String,
    pub(crate) chunks: u64,
    pub(crate) meta: Meta,
}

/// Reads the head of `key`: `None` when there is none, it is of another
/// format, or it belongs to another key; an undecodable head is removed.
pub(crate) async fn head(
    con: &mut Con,
    keys: &EntryKeys,
    key: &str,
) -> Result<Option<Head>, BoxError> {
    let (generation, chunks, meta): (Option<String>, Option<String>, Option<Vec<u8>>) =
        redis::cmd("HMGET")
            .arg(&keys.head)
            .arg(&["gen", "n", "meta"])
            .query_async(con)
            .await?;
    let (Some(generation), Some(chunks), Some(meta)) = (generation, chunks, meta) else {
        return Ok(None);
    };
    let Ok(chunks) = chunks.parse::<u64>() else {
        tracing::warn!(%chunks, "removing a cache head with a garbled chunk count");
        // Its chunks cannot be named; they expire with their TTL.
        remove_generation(con, keys, &generation, 0).await?;
        return Ok(None);
    };
    match Meta::decode(key, &meta) {
        Ok(Decoded::Entry(meta)) if meta.key == key => Ok(Some(Head {
            generation,
            chunks,
            meta: *meta,
        })),
        // Another key with the same 128-bit tag: not ours, leave it.
        Ok(Decoded::Entry(_)) | Ok(Decoded::OtherFormat) => Ok(None),
        Err(err) => {
            tracing::warn!(error = %err, "removing an undecodable cache head");
            remove_generation(con, keys, &generation, chunks).await?;
            Ok(None)
        }
    }
}

/// Removes the entry whatever generation it is at: reads the head to name
/// its chunks, then removes them with it. If a write committed in between,
/// the head names a newer generation and is left alone: that write came
/// after this delete, and its commit ended the chunks this one read.
pub(crate) async fn remove(con: &mut Con, keys: &EntryKeys) -> Result<(), BoxError> {
    let (generation, chunks): (Option<String>, Option<String>) = redis::cmd("HMGET")
        .arg(&keys.head)
        .arg(&["gen", "n"])
        .query_async(con)
        .await?;
    let chunks = chunks.and_then(|n| n.parse().ok()).unwrap_or(0);
    let generation = generation.unwrap_or_default();
    remove_generation(con, keys, &generation, chunks).await?;
    Ok(())
}

/// Removes the entry and the `chunks` chunks of `generation`, but only
/// while its head still names that generation (a head without one is
/// garbage and goes too). Whether the head is gone.
pub(crate) async fn remove_generation(
    con: &mut Con,
    keys: &EntryKeys,
    generation: &str,
    chunks: u64,
) -> Result<bool, BoxError> {
    let mut script = REMOVE.key(&keys.head);
    for chunk in keys.chunks(generation, chunks) {
        script.key(chunk);
    }
    let removed: i64 = script.arg(generation).invoke_async(con).await?;
    Ok(removed == 1)
}

/// Whether the head still names `generation`.
async fn still_at(con: &mut Con, keys: &EntryKeys, generation: &str) -> Result<bool, BoxError> {
    let now: Option<String> = con.hget(&keys.head, "gen").await?;
    Ok(now.as_deref() == Some(generation))
}

/// Reads the whole body of `key`. `None` for a miss; a damaged entry is
/// removed and is a miss.
pub(crate) async fn whole(
    con: &mut Con,
    bulk: &mut Con,
    keys: &EntryKeys,
    key: &str,
) -> Result<Option<(Meta, Bytes)>, BoxError> {
    'attempt: for _ in 0..RETRIES {
        let Some(head) = head(con, keys, key).await? else {
            return Ok(None);
        };
        let mut body = BytesMut::with_capacity(
            usize::try_from(head.meta.body_len)
                .unwrap_or(0)
                .min(1 << 30),
        );
        let indexes: Vec<u64> = (0..head.chunks).collect();
        for batch in indexes.chunks(CHUNKS_PER_REQUEST) {
            let names: Vec<String> = batch
                .iter()
                .map(|&i| keys.chunk(&head.generation, i))
                .collect();
            // A body of one chunk is small: it need not wait behind batches.
            let via = if head.chunks > 1 {
                &mut *bulk
            } else {
                &mut *con
            };
            let chunks: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(&names).query_async(via).await?;
            for chunk in chunks {
                match chunk {
                    Some(chunk) => body.extend_from_slice(&chunk),
                    None if still_at(con, keys, &head.generation).await? => {
                        return damaged(con, keys, &head, "a chunk is missing").await;
                    }
                    // Overwritten while we read: read the new generation.
                    None => continue 'attempt,
                }
            }
        }
        if let Err(detail) = verify(&head.meta, body.len() as u64, XxHash3_64::oneshot(&body)) {
            return damaged(con, keys, &head, &detail).await;
        }
        return Ok(Some((head.meta, body.freeze())));
    }
    Ok(None)
}

async fn damaged<T>(
    con: &mut Con,
    keys: &EntryKeys,
    head: &Head,
    detail: &str,
) -> Result<Option<T>, BoxError> {
    tracing::warn!(key = %respcache_core::abbreviate_key(&head.meta.key), %detail, "removing a damaged cache entry");
    remove_generation(con, keys, &head.generation, head.chunks).await?;
    Ok(None)
}

fn verify(meta: &Meta, len: u64, check: u64) -> Result<(), String> {
    if len != meta.body_len {
        return Err(format!("body is {len} bytes, {} recorded", meta.body_len));
    }
    if check != meta.check {
        return Err("body checksum differs from the recorded one".into());
    }
    Ok(())
}

/// Streams the chunks of `head` from a task, one request per chunk and
/// two chunks ahead of the caller. The last chunk is sent only after the
/// whole body passed its check.
pub(crate) fn stream(
    mut con: Con,
    mut bulk: Con,
    keys: EntryKeys,
    head: Head,
) -> mpsc::Receiver<Result<Bytes, StreamingError>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut check = XxHash3_64::new();
        let mut len = 0u64;
        for i in 0..head.chunks {
            let chunk: Option<Vec<u8>> = match bulk.get(keys.chunk(&head.generation, i)).await {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = tx.send(Err(StreamingError::new(err))).await;
                    return;
                }
            };
            let problem = match chunk {
                None => match still_at(&mut con, &keys, &head.generation).await {
                    Ok(true) => Some("a chunk is missing".to_owned()),
                    _ => {
                        let err = "the entry was replaced while it was read";
                        let _ = tx.send(Err(StreamingError::from(err))).await;
                        return;
                    }
                },
                Some(chunk) => {
                    check.write(&chunk);
                    len += chunk.len() as u64;
                    let last = i + 1 == head.chunks;
                    match last.then(|| verify(&head.meta, len, check.finish())) {
                        Some(Err(detail)) => Some(detail),
                        _ => {
                            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                                return; // The caller stopped reading.
                            }
                            None
                        }
                    }
                }
            };
            if let Some(detail) = problem {
                let _ = remove_generation(&mut con, &keys, &head.generation, head.chunks).await;
                let err = CacheError::Corrupt {
                    key: head.meta.key.clone(),
                    detail,
                };
                let _ = tx.send(Err(err.into())).await;
                return;
            }
        }
    });
    rx
}
