//! Listing keys, by prefix and by tag, and keeping the tag index.

use std::io::ErrorKind;
use std::path::Path;

use respcache_core::CacheError;

use crate::layout::{Layout, key_id, key_of_id};
use crate::metadata::{CacheMetadata, Decoded};
use crate::remove::{read_current, remove_quietly};

/// Every stored key starting with `prefix`. A key short enough to be its
/// own file name is read from the name; a hashed one from its record.
pub(crate) fn keys(layout: &Layout, prefix: &str) -> Result<Vec<String>, CacheError> {
    let dir = &layout.metadata;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(CacheError::io("list", dir, err)),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|name| name.strip_suffix(".json")) else {
            continue;
        };
        let key = match key_of_id(id) {
            Some(key) => key,
            None => match record(&entry.path()) {
                Some(meta) if key_id(&meta.key) == id => meta.key,
                _ => continue,
            },
        };
        if key.starts_with(prefix) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The record at `path`, whatever key it holds, if it decodes as ours.
fn record(path: &Path) -> Option<CacheMetadata> {
    let bytes = std::fs::read(path).ok()?;
    match CacheMetadata::decode("", &bytes) {
        Ok(Decoded::Entry(meta)) => Some(*meta),
        _ => None,
    }
}

/// Every stored key whose entry carries `tag`, from the tag's index;
/// index files of entries that no longer carry it are removed.
pub(crate) fn tagged(layout: &Layout, tag: &str) -> Result<Vec<String>, CacheError> {
    let dir = layout.tag_dir(tag);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(CacheError::io("list", &dir, err)),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("list", &dir, e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str() else {
            remove_quietly(&entry.path());
            continue;
        };
        let current = record(&layout.metadata.join(format!("{id}.json")))
            .filter(|meta| key_id(&meta.key) == id)
            .and_then(|meta| read_current(&meta.key, &layout.metadata_path(&meta.key)));
        match current {
            Some(meta) if meta.tags.iter().any(|t| t == tag) => keys.push(meta.key),
            _ => remove_quietly(&entry.path()),
        }
    }
    Ok(keys)
}

/// Names the entry of `key` in the index of each of `tags`. A failure
/// only costs the index an entry (logged): the entry itself is stored.
pub(crate) fn index_tags(layout: &Layout, key: &str, tags: &[String]) {
    let id = key_id(key);
    for tag in tags {
        let dir = layout.tag_dir(tag);
        let path = dir.join(&id);
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let created = match create() {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir).and_then(|()| create())
            }
            other => other,
        };
        if let Err(err) = created {
            tracing::warn!(path = %path.display(), error = %err, "could not index a cache entry's tag");
        }
    }
}
