//! Removing entries: on delete, and when a read finds one damaged.

use std::io::ErrorKind;
use std::path::Path;

use crate::layout::Layout;
use crate::metadata::{CacheMetadata, Decoded};

/// The metadata now stored at `path` for `key`, if it decodes as ours.
pub(crate) fn read_current(key: &str, path: &Path) -> Option<CacheMetadata> {
    let bytes = std::fs::read(path).ok()?;
    match CacheMetadata::decode(key, &bytes) {
        Ok(Decoded::Entry(meta)) if meta.key == key => Some(*meta),
        _ => None,
    }
}

/// Removes an entry's link, and its `content/` name once no link but that
/// name holds the body.
pub(crate) fn release_body(layout: &Layout, meta: &CacheMetadata) {
    remove_quietly(&layout.link_path(&meta.link));
    remove_content_if_unlinked(layout, &meta.content_digest);
}

/// Removes `content/<digest>` when its link count says no entry uses it.
/// A racing put that links it in between keeps its own link, so the worst
/// outcome is one lost chance to dedup, never lost bytes.
pub(crate) fn remove_content_if_unlinked(layout: &Layout, digest: &str) {
    let path = layout.content_path(digest);
    if link_count(&path) == Some(1) {
        remove_quietly(&path);
    }
}

#[cfg(unix)]
pub(crate) fn link_count(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.nlink())
}

#[cfg(not(unix))]
pub(crate) fn link_count(_path: &Path) -> Option<u64> {
    // Unknown: leave the content to be reclaimed by a later gc.
    None
}

/// Deletes the entry of `key`. Returns the body length it held.
pub(crate) fn delete(layout: &Layout, key: &str) -> std::io::Result<Option<u64>> {
    let path = layout.metadata_path(key);
    let current = read_current(key, &path);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    }
    Ok(current.map(|meta| {
        release_body(layout, &meta);
        meta.body_len
    }))
}

/// Deletes the entry `meta` describes, unless a newer one has replaced it
/// since: whether it did.
pub(crate) fn delete_if_current(layout: &Layout, meta: &CacheMetadata) -> bool {
    let path = layout.metadata_path(&meta.key);
    if read_current(&meta.key, &path).is_none_or(|now| now.link != meta.link) {
        return false;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            release_body(layout, meta);
            true
        }
        Err(_) => false,
    }
}

/// Drops an entry found damaged: its metadata (if it still names the same
/// link), its link, and the `content/` name when that is the same damaged
/// file, so that later puts do not dedup onto it.
pub(crate) fn drop_damaged(layout: &Layout, meta: &CacheMetadata) {
    let path = layout.metadata_path(&meta.key);
    if read_current(&meta.key, &path).is_none_or(|now| now.link == meta.link) {
        remove_quietly(&path);
    }
    let link = layout.link_path(&meta.link);
    let content = layout.content_path(&meta.content_digest);
    if same_file(&link, &content) {
        remove_quietly(&content);
    }
    remove_quietly(&link);
    tracing::warn!(
        key = %respcache_core::abbreviate_key(&meta.key),
        "dropped a damaged cache entry"
    );
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_a: &Path, _b: &Path) -> bool {
    true
}

pub(crate) fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path)
        && err.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %err, "could not remove a cache file");
    }
}
