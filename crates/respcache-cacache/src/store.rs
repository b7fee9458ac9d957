//! Reading and writing one entry with cacache's synchronous API.
//!
//! Each operation runs whole inside one `spawn_blocking` call: one thread
//! hand-off per operation instead of one per file-system call, which is
//! what cacache's async API would cost.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use respcache_core::{BoxError, CacheError, CachePolicy, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::wrap;

/// The bytes every stored entry starts with: a tag and the format version.
pub const FORMAT_PREFIX: &[u8; 8] = b"rc-cac\x00\x01";

#[derive(Serialize)]
struct StoreRef<'a> {
    key: &'a str,
    response: &'a HttpResponse,
    policy: &'a CachePolicy,
}

#[derive(Deserialize)]
struct Store {
    key: String,
    response: HttpResponse,
    policy: CachePolicy,
}

/// Why a read found no usable entry although one was indexed.
pub(crate) enum ReadError {
    /// The entry is damaged or undecodable: drop it, report a miss.
    Damaged(BoxError),
    /// The cache could not be read at all: report the error.
    Failed(BoxError),
}

pub(crate) fn read(
    cache: &Path,
    key: &str,
) -> Result<Option<(HttpResponse, CachePolicy)>, ReadError> {
    let entry = match cacache::index::find(cache, key) {
        Ok(Some(entry)) => entry,
        Ok(None) => return Ok(None),
        Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(err) => return Err(ReadError::Failed(wrap(err, "read index of", cache))),
    };
    let bytes = match cacache::read_hash_sync(cache, &entry.integrity) {
        Ok(bytes) => bytes,
        // Content removed by a concurrent overwrite or delete: a miss.
        Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(err @ (cacache::Error::IntegrityError(_) | cacache::Error::SizeMismatch(..))) => {
            return Err(ReadError::Damaged(Box::new(CacheError::Corrupt {
                key: key.to_owned(),
                detail: err.to_string(),
            })));
        }
        Err(err) => return Err(ReadError::Failed(wrap(err, "read content of", cache))),
    };
    decode(key, &bytes).map(Some).map_err(ReadError::Damaged)
}

fn decode(key: &str, bytes: &[u8]) -> Result<(HttpResponse, CachePolicy), BoxError> {
    let undecodable = |source: BoxError| CacheError::Undecodable {
        key: key.to_owned(),
        source,
    };
    let Some(payload) = bytes.strip_prefix(FORMAT_PREFIX.as_slice()) else {
        return Err(undecodable("unknown format version".into()).into());
    };
    let store: Store = bincode::deserialize(payload).map_err(|e| undecodable(e))?;
    if store.key != key {
        return Err(undecodable("the entry belongs to another key".into()).into());
    }
    Ok((store.response, store.policy))
}

pub(crate) fn write(
    cache: &Path,
    key: &str,
    response: &HttpResponse,
    policy: &CachePolicy,
) -> Result<(), BoxError> {
    let record = StoreRef {
        key,
        response,
        policy,
    };
    let mut bytes = Vec::with_capacity(FORMAT_PREFIX.len() + response.body.len() + 1024);
    bytes.extend_from_slice(FORMAT_PREFIX);
    bincode::serialize_into(&mut bytes, &record)?;

    // Content first, then the index: a crash in between leaves the old
    // entry readable and only an unreferenced content file behind.
    let integrity = write_content(cache, &bytes).map_err(|e| wrap(e, "write content to", cache))?;
    let previous = cacache::index::find(cache, key).ok().flatten();
    // cacache appends one index line per write; starting the bucket afresh
    // keeps it at one line per key instead of growing with every overwrite.
    if previous.is_some() {
        remove_bucket(cache, key)?;
    }
    let opts = cacache::WriteOpts::new()
        .integrity(integrity.clone())
        .size(bytes.len());
    cacache::index::insert(cache, key, opts).map_err(|e| wrap(e, "write index of", cache))?;
    if let Some(previous) = previous
        && previous.integrity != integrity
    {
        remove_content(cache, &previous.integrity)?;
    }
    Ok(())
}

/// Writes content with plain `write` calls. Told the size up front,
/// cacache instead maps small files into memory (its `mmap` feature, which
/// another crate in a build may switch on): an `fallocate`, an `mmap`, page
/// faults and an `munmap` that cost more than the write they replace.
fn write_content(cache: &Path, bytes: &[u8]) -> cacache::Result<cacache::Integrity> {
    use std::io::Write;
    let mut writer = cacache::WriteOpts::new()
        .algorithm(cacache::Algorithm::Sha256)
        .open_hash_sync(cache)?;
    writer
        .write_all(bytes)
        .map_err(|e| cacache::Error::IoError(e, "writing cache content".into()))?;
    writer.commit()
}

pub(crate) fn remove(cache: &Path, key: &str) -> Result<(), BoxError> {
    let entry = match cacache::index::find(cache, key) {
        Ok(entry) => entry,
        Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => None,
        // An unreadable bucket is removed below all the same.
        Err(_) => None,
    };
    remove_bucket(cache, key)?;
    if let Some(entry) = entry {
        remove_content(cache, &entry.integrity)?;
    }
    Ok(())
}

/// Where cacache 13 keeps the index bucket of `key` (`index-v5`, by the
/// SHA-1 of the key). cacache does not export it; a test pins it.
pub(crate) fn bucket_path(cache: &Path, key: &str) -> PathBuf {
    use sha1::Digest;
    let hash = sha1::Sha1::digest(key.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    cache
        .join("index-v5")
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(&hex[4..])
}

/// Removes the index bucket of `key` only, never content.
pub(crate) fn remove_bucket(cache: &Path, key: &str) -> Result<(), BoxError> {
    let bucket = bucket_path(cache, key);
    match std::fs::remove_file(&bucket) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Box::new(CacheError::io("remove", bucket, err))),
    }
}

fn remove_content(cache: &Path, integrity: &cacache::Integrity) -> Result<(), BoxError> {
    match cacache::remove_hash_sync(cache, integrity) {
        Ok(()) => Ok(()),
        Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => Ok(()),
        Err(err) => Err(wrap(err, "remove content from", cache)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_path_matches_cacache_layout() {
        let dir = tempfile::tempdir().unwrap();
        let key = "GET:https://example.com/\u{0}/../é";
        cacache::write_sync(dir.path(), key, b"x").unwrap();
        assert!(bucket_path(dir.path(), key).is_file());
        remove_bucket(dir.path(), key).unwrap();
        assert!(cacache::index::find(dir.path(), key).unwrap().is_none());
    }
}
