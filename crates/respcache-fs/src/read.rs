//! Reading an entry: metadata first, then the body through the entry's own
//! link, checked against the recorded length and XXH3 on every read.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use respcache_core::{BoxError, CacheError, StreamingError};
use std::hash::Hasher as _;
use tokio::sync::mpsc;
use twox_hash::XxHash3_64;

use crate::hot::Found;
use crate::metadata::{CacheMetadata, Decoded};
use crate::remove::drop_damaged;
use crate::{FileStamp, Shared};

/// How often a read follows a concurrent overwrite before it gives up.
const RETRIES: usize = 3;

/// An entry's metadata and its open body file.
pub(crate) struct Opened {
    pub(crate) meta: Arc<CacheMetadata>,
    pub(crate) file: File,
}

/// Finds the entry of `key` and opens its body. `Ok(None)` for a miss: no
/// entry, an entry of another format, or one whose body is gone (dropped).
///
/// Metadata this process has read is taken from memory while
/// the metadata file is still the same version (inode, size and
/// modification time): one `stat` instead of reading and parsing it.
pub(crate) fn open(shared: &Shared, key: &str) -> Result<Option<Opened>, BoxError> {
    if let Some((meta, stamp)) = shared.cached(key) {
        let current = std::fs::metadata(shared.layout.metadata_path(key));
        if current.is_ok_and(|m| FileStamp::of(&m) == stamp)
            && let Ok(file) = File::open(shared.layout.link_path(&meta.link))
        {
            return Ok(Some(Opened { meta, file }));
        }
        shared.uncache(key);
    }
    let layout = &shared.layout;
    let path = layout.metadata_path(key);
    let mut previous_link = None;
    for _ in 0..RETRIES {
        let since = shared.hot.since();
        let (bytes, stamp) = match read_stamped(&path) {
            Ok(read) => read,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(CacheError::io("read", &path, err).into()),
        };
        let meta = match CacheMetadata::decode(key, &bytes) {
            Ok(Decoded::Entry(meta)) => Arc::new(*meta),
            Ok(Decoded::OtherFormat) => return Ok(None),
            Err(err) => {
                tracing::warn!(error = %err, "dropping undecodable cache metadata");
                crate::remove::remove_quietly(&path);
                return Ok(None);
            }
        };
        // A hashed key id shared by two keys: not this key's entry.
        if meta.key != key {
            return Ok(None);
        }
        let link = layout.link_path(&meta.link);
        match File::open(&link) {
            Ok(file) => {
                shared.cache(meta.clone(), stamp, since);
                return Ok(Some(Opened { meta, file }));
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {
                // Replaced under us: read the new metadata. The same link
                // missing twice means the entry lost its body: drop it.
                if previous_link.as_ref() == Some(&meta.link) {
                    drop_damaged(layout, &meta);
                    return Ok(None);
                }
                previous_link = Some(meta.link.clone());
            }
            Err(err) => return Err(CacheError::io("open", &link, err).into()),
        }
    }
    Ok(None)
}

/// The entry of `key`, read on the calling thread, when this process
/// holds its metadata and either keeps its body or the body is at most
/// `limit` bytes: from memory when the body is kept there and its version
/// was confirmed lately, else with a `stat` to confirm the version and,
/// for a body not kept, one read of the file, checked (and then kept). `None` for any other entry:
/// the caller then takes the slow way, which may find it.
pub(crate) fn known_small(
    shared: &Shared,
    key: &str,
    limit: u64,
) -> Result<Option<(Arc<CacheMetadata>, Bytes)>, BoxError> {
    let kept = match shared.hot.find(key) {
        Found::Nothing => return Ok(None),
        Found::Current(kept) => kept,
        Found::Unconfirmed(kept) => {
            let current = std::fs::metadata(shared.layout.metadata_path(key));
            if !current.is_ok_and(|m| FileStamp::of(&m) == kept.stamp) {
                shared.hot.forget(key);
                return Ok(None);
            }
            shared.hot.confirm(key, kept.stamp);
            kept
        }
    };
    if let Some(body) = kept.body {
        return Ok(Some((kept.meta, body)));
    }
    if kept.meta.body_len > limit {
        return Ok(None);
    }
    let Ok(file) = File::open(shared.layout.link_path(&kept.meta.link)) else {
        return Ok(None);
    };
    let read = read_whole(
        shared,
        Opened {
            meta: kept.meta,
            file,
        },
    )?;
    if let Some((meta, body)) = &read {
        shared.hot.keep_body(meta, body);
    }
    Ok(read)
}

/// A file's bytes and the identity of the version read.
fn read_stamped(path: &std::path::Path) -> std::io::Result<(Vec<u8>, FileStamp)> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok((bytes, FileStamp::of(&metadata)))
}

/// The most a read reserves before it has seen the bytes.
const MAX_RESERVE: u64 = 64 * 1024 * 1024;

/// Reads are checked this many bytes at a time, while they are still in
/// the processor's cache.
const CHECK_STEP: u64 = 256 * 1024;

/// Reads the whole body and checks it. `None` (entry dropped) when damaged.
pub(crate) fn read_whole(
    shared: &Shared,
    opened: Opened,
) -> Result<Option<(Arc<CacheMetadata>, Bytes)>, BoxError> {
    let Opened { meta, mut file } = opened;
    let link = shared.layout.link_path(&meta.link);
    // One byte more than recorded, to see a body that grew. The record may
    // lie about the length: reserve no more than MAX_RESERVE up front.
    let limit = meta.body_len.saturating_add(1);
    let mut body = Vec::with_capacity(usize::try_from(limit.min(MAX_RESERVE)).unwrap_or(0));
    let mut check = XxHash3_64::new();
    let mut read = 0u64;
    while read < limit {
        let step = CHECK_STEP.min(limit - read);
        let got = (&mut file)
            .take(step)
            .read_to_end(&mut body)
            .map_err(|e| CacheError::io("read", &link, e))?;
        check.write(&body[body.len() - got..]);
        read += got as u64;
        if (got as u64) < step {
            break;
        }
    }
    if let Err(detail) = verify(&meta, read, check.finish()) {
        tracing::warn!(%detail, "cache body failed its check");
        shared.uncache(&meta.key);
        drop_damaged(&shared.layout, &meta);
        return Ok(None);
    }
    Ok(Some((meta, Bytes::from(body))))
}

fn verify(meta: &CacheMetadata, len: u64, check: u64) -> Result<(), String> {
    if len != meta.body_len {
        return Err(format!("body is {len} bytes, {} recorded", meta.body_len));
    }
    if u64::from_str_radix(&meta.body_check, 16) != Ok(check) {
        return Err("body checksum differs from the recorded one".into());
    }
    Ok(())
}

/// Streams the body in `chunk_size` chunks, one chunk ahead of the
/// caller. Each chunk is read by its own short blocking call, so a caller
/// that reads slowly (or a client that stops reading) holds a buffer and
/// a file, never a thread of the blocking pool. The check runs as the
/// bytes pass; the last chunk is sent only after it holds, so damage ends
/// the stream in an error and a caller never receives a whole body that
/// is wrong.
pub(crate) fn stream(
    shared: std::sync::Arc<Shared>,
    opened: Opened,
) -> mpsc::Receiver<Result<Bytes, StreamingError>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut reader = Some(ChunkReader {
            left: opened.meta.body_len,
            opened,
            check: XxHash3_64::new(),
            done: false,
        });
        while let Some(mut current) = reader.take() {
            // Room in the channel first, then the read: one chunk waits
            // for the caller, none more (the memory bound is the chunk
            // the caller holds and this one).
            let Ok(permit) = tx.reserve().await else {
                return; // The caller stopped reading.
            };
            let shared = shared.clone();
            // Allocated here, on a worker thread, rather than on whichever
            // blocking thread reads: glibc gives each thread its own arena,
            // and chunks allocated across dozens of them and freed
            // elsewhere held tens of megabytes under load.
            let buffer = BytesMut::zeroed(current.next_len(&shared));
            let read = tokio::task::spawn_blocking(move || {
                let chunk = current.next(&shared, buffer);
                (current, chunk)
            })
            .await;
            let (current, chunk) = match read {
                Ok(read) => read,
                Err(err) => {
                    let err = std::io::Error::other(format!("the body reader stopped: {err}"));
                    permit.send(Err(err.into()));
                    return;
                }
            };
            match chunk {
                Ok(Some(bytes)) if bytes.is_empty() => {} // An empty body.
                Ok(Some(bytes)) => permit.send(Ok(bytes)),
                Ok(None) => return,
                Err(err) => {
                    permit.send(Err(err));
                    return;
                }
            }
            reader = (!current.done).then_some(current);
        }
    });
    rx
}

/// Where a streamed read of a body is.
struct ChunkReader {
    opened: Opened,
    check: XxHash3_64,
    /// Bytes not yet read.
    left: u64,
    /// The whole body was read and checked.
    done: bool,
}

impl ChunkReader {
    /// The length of the next chunk.
    fn next_len(&self, shared: &Shared) -> usize {
        self.left.min(shared.options.chunk_size as u64) as usize
    }

    /// The next chunk, read into `chunk` (of [`ChunkReader::next_len`]
    /// bytes; empty only for an empty body), checked if it is the last;
    /// `None` once the body is all read. A body that is short, long or
    /// wrong is dropped from the cache and ends in an error.
    fn next(
        &mut self,
        shared: &Shared,
        mut chunk: BytesMut,
    ) -> Result<Option<Bytes>, StreamingError> {
        if self.done {
            return Ok(None);
        }
        let meta = &self.opened.meta;
        let want = chunk.len();
        if let Err(err) = self.opened.file.read_exact(&mut chunk) {
            return Err(if err.kind() == ErrorKind::UnexpectedEof {
                shared.uncache(&meta.key);
                drop_damaged(&shared.layout, meta);
                damage_error(meta, "body is shorter than recorded".into()).into()
            } else {
                let link = shared.layout.link_path(&meta.link);
                CacheError::io("read", link, err).into()
            });
        }
        // ANCHOR: last_chunk
        self.check.write(&chunk);
        self.left -= want as u64;
        if self.left == 0 {
            self.done = true;
            let mut extra = [0u8; 1];
            let grew = matches!(self.opened.file.read(&mut extra), Ok(n) if n > 0);
            let len = meta.body_len.saturating_add(u64::from(grew));
            if let Err(detail) = verify(meta, len, self.check.finish()) {
                shared.uncache(&meta.key);
                drop_damaged(&shared.layout, meta);
                return Err(damage_error(meta, detail).into());
            }
        }
        Ok(Some(chunk.freeze()))
        // ANCHOR_END: last_chunk
    }
}

fn damage_error(meta: &CacheMetadata, detail: String) -> CacheError {
    CacheError::Corrupt {
        key: meta.key.clone(),
        detail,
    }
}
