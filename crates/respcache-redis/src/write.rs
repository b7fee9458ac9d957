//! Writing an entry: chunks under a fresh generation, then one script
//! that switches the head to it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use respcache_core::{BoxError, TeeEvent, TeeWriter};
use std::hash::Hasher as _;
use twox_hash::XxHash3_64;

use crate::Con;
use crate::head::Meta;
use crate::keys::{EntryKeys, new_generation};
use crate::scripts::COMMIT;

/// How many chunk writes one pipeline carries.
const CHUNKS_PER_PIPELINE: usize = 16;

/// An entry on its way into Redis.
pub(crate) struct ChunkWriter {
    con: Con,
    /// For chunks of bodies longer than one chunk.
    bulk: Con,
    keys: EntryKeys,
    generation: String,
    chunk_size: usize,
    ttl: Duration,
    pending: BytesMut,
    written: u64,
    len: u64,
    check: XxHash3_64,
}

impl ChunkWriter {
    /// `cons`: the connection for small requests, and the one for batches.
    pub(crate) fn new(cons: (Con, Con), keys: EntryKeys, chunk_size: usize, ttl: Duration) -> Self {
        let (con, bulk) = cons;
        Self {
            con,
            bulk,
            keys,
            generation: new_generation(),
            chunk_size,
            ttl,
            pending: BytesMut::new(),
            written: 0,
            len: 0,
            check: XxHash3_64::new(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Takes the next bytes of the body; writes every full chunk.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), BoxError> {
        self.check.write(bytes);
        self.len += bytes.len() as u64;
        self.pending.extend_from_slice(bytes);
        let full = self.pending.len() / self.chunk_size * self.chunk_size;
        if full > 0 {
            let chunks = self.pending.split_to(full).freeze();
            self.send(chunks).await?;
        }
        Ok(())
    }

    /// Writes `bytes` as whole chunks (the last may be short), pipelined.
    async fn send(&mut self, bytes: Bytes) -> Result<(), BoxError> {
        let ttl = crate::head::expire_secs(self.ttl).max(1);
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + self.chunk_size).min(bytes.len());
            pieces.push(bytes.slice(at..end));
            at = end;
        }
        for batch in pieces.chunks(CHUNKS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            for piece in batch {
                let name = self.keys.chunk(&self.generation, self.written);
                pipe.cmd("SET")
                    .arg(name)
                    .arg(piece.as_ref())
                    .arg("EX")
                    .arg(ttl)
                    .ignore();
                self.written += 1;
            }
            // The only chunk of a small body need not wait behind batches.
            let single = self.written == 1 && bytes.len() <= self.chunk_size;
            let via = if single {
                &mut self.con
            } else {
                &mut self.bulk
            };
            pipe.query_async::<()>(via).await?;
        }
        Ok(())
    }

    /// Writes the rest and switches the head to this generation.
    pub(crate) async fn commit(
        mut self,
        mut meta: Meta,
        old_chunk_grace: Duration,
    ) -> Result<(), BoxError> {
        let rest = self.pending.split().freeze();
        if !rest.is_empty() {
            self.send(rest).await?;
        }
        meta.body_len = self.len;
        meta.check = self.check.finish();
        let encoded = meta.encode()?;
        // Indexed before the commit, so that a reader of the index never
        // misses a committed entry; an entry that fails to commit leaves a
        // member the next reader removes.
        crate::tags::index(&mut self.con, &self.keys, &meta.key, &meta.tags, self.ttl).await?;
        // The script must be given the old generation's chunks by name.
        let (old_generation, old_chunks): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&self.keys.head)
            .arg(&["gen", "n"])
            .query_async(&mut self.con)
            .await?;
        let old_generation = old_generation.unwrap_or_default();
        let old_chunks = old_chunks.and_then(|n| n.parse().ok()).unwrap_or(0);
        let grace = crate::head::expire_secs(old_chunk_grace);
        let mut script = COMMIT.key(&self.keys.head);
        for chunk in self.keys.chunks(&self.generation, self.written) {
            script.key(chunk);
        }
        if !old_generation.is_empty() && old_generation != self.generation {
            for chunk in self.keys.chunks(&old_generation, old_chunks) {
                script.key(chunk);
            }
        }
        let left: Vec<String> = script
            .arg(&self.generation)
            .arg(self.written)
            .arg(encoded)
            .arg(crate::head::expire_secs(self.ttl).max(1))
            .arg(grace)
            .arg(&old_generation)
            .invoke_async(&mut self.con)
            .await?;
        // Another commit came in between: end the chunks it left behind.
        if let [generation, chunks] = &left[..] {
            let chunks = chunks.parse().unwrap_or(0);
            self.end_chunks(self.keys.chunks(generation, chunks), grace)
                .await?;
        }
        Ok(())
    }

    /// Removes `chunks` at once, or after `grace` seconds when that is not 0.
    async fn end_chunks(&mut self, chunks: Vec<String>, grace: u64) -> Result<(), BoxError> {
        if chunks.is_empty() {
            return Ok(());
        }
        if grace == 0 {
            redis::cmd("DEL")
                .arg(chunks)
                .query_async::<i64>(&mut self.con)
                .await?;
        } else {
            let mut pipe = redis::pipe();
            for chunk in chunks {
                pipe.cmd("EXPIRE").arg(chunk).arg(grace).ignore();
            }
            pipe.query_async::<()>(&mut self.con).await?;
        }
        Ok(())
    }

    /// Removes the chunks written so far (best effort: they expire anyway).
    pub(crate) async fn abandon(mut self) {
        if self.written == 0 {
            return;
        }
        let names: Vec<String> = (0..self.written)
            .map(|i| self.keys.chunk(&self.generation, i))
            .collect();
        let _ = redis::cmd("DEL")
            .arg(names)
            .query_async::<i64>(&mut self.con)
            .await;
    }
}

/// The writer task of a streaming put: chunks as they arrive, the commit
/// on `End`; anything else abandons the write and the caller's body passes
/// through.
pub(crate) async fn stream_entry(
    mut writer: ChunkWriter,
    meta: Meta,
    mut events: TeeWriter,
    max_body_size: u64,
    old_chunk_grace: Duration,
) {
    let key = respcache_core::abbreviate_key(&meta.key);
    while let Some(event) = events.recv().await {
        match event {
            TeeEvent::Data(chunk) => {
                if writer.len() + chunk.len() as u64 > max_body_size {
                    tracing::debug!(%key, max_body_size, "body too large to cache; passing it through");
                    break;
                }
                if let Err(err) = writer.write(&chunk).await {
                    tracing::warn!(%key, error = %err, "cache write failed; passing the body through");
                    break;
                }
            }
            TeeEvent::End => {
                match writer.commit(meta, old_chunk_grace).await {
                    Ok(()) => events.committed(),
                    // Dropping `events` tells the caller nothing was stored.
                    Err(err) => tracing::warn!(%key, error = %err, "cache commit failed"),
                }
                return;
            }
        }
    }
    drop(events);
    writer.abandon().await;
}
