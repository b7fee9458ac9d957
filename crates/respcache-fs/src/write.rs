//! Writing an entry: a body hashed while it is written to a temporary file,
//! then the commit (body linked into place, metadata renamed over the old).

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::response::Parts;
use respcache_core::{BoxError, CacheError, CachePolicy};
use sha2::Digest;
use std::hash::Hasher as _;
use twox_hash::XxHash3_64;
use url::Url;

use crate::Shared;
use crate::layout::{Layout, hex, new_link_id};
use crate::metadata::{CacheMetadata, FORMAT_VERSION};
use crate::remove::{read_current, release_body};

/// A body on its way to disk. Dropped before [`BodyWriter::commit`], it
/// removes its temporary file: nothing is committed.
pub(crate) struct BodyWriter {
    file: File,
    tmp: PathBuf,
    sha: sha2::Sha256,
    check: XxHash3_64,
    len: u64,
    committed: bool,
    /// The process's bytes of stores under way, this one's included.
    in_flight: Arc<AtomicU64>,
    /// This store's share of them.
    len_under_way: u64,
    /// The key being stored, for errors.
    key: String,
    /// What they may add up to (`max_size`).
    budget: Option<u64>,
}

/// The head of the response being stored.
pub(crate) struct Head {
    pub(crate) key: String,
    pub(crate) parts: Parts,
    pub(crate) url: Url,
    pub(crate) policy: CachePolicy,
    /// Unix seconds after which the entry is worth nothing.
    pub(crate) expires_at: Option<u64>,
    /// The tags it carries.
    pub(crate) tags: Vec<String>,
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When an entry stored now with `hints` stops being worth keeping.
pub(crate) fn expires_at(hints: &respcache_core::StoreHints) -> Option<u64> {
    hints
        .keep_for
        .map(|keep| unix_now().saturating_add(keep.as_secs()))
}

impl BodyWriter {
    pub(crate) fn create(shared: &Shared, key: &str) -> Result<Self, CacheError> {
        shared.ensure_dirs()?;
        let tmp = shared.layout.tmp_path("body");
        let open = || File::options().write(true).create_new(true).open(&tmp);
        let file = match open() {
            // The cache directory was removed while we ran: make it again.
            Err(err) if err.kind() == ErrorKind::NotFound => {
                shared.forget_dirs();
                shared.ensure_dirs()?;
                open()
            }
            other => other,
        }
        .map_err(|e| CacheError::io("create", &tmp, e))?;
        Ok(Self {
            file,
            tmp,
            sha: sha2::Sha256::new(),
            check: XxHash3_64::new(),
            len: 0,
            committed: false,
            in_flight: shared.in_flight.clone(),
            len_under_way: 0,
            key: key.to_owned(),
            budget: shared.options.max_size,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn write(&mut self, chunk: &[u8]) -> Result<(), CacheError> {
        let added = chunk.len() as u64;
        let under_way = self.in_flight.fetch_add(added, Ordering::Relaxed) + added;
        // Counted from here until the commit or the drop.
        self.len_under_way += added;
        if let Some(budget) = self.budget
            && under_way > budget
        {
            return Err(CacheError::TooLarge {
                key: self.key.clone(),
                size: under_way,
                limit: budget,
            });
        }
        self.sha.update(chunk);
        self.check.write(chunk);
        self.file
            .write_all(chunk)
            .map_err(|e| CacheError::io("write", &self.tmp, e))?;
        self.len += added;
        Ok(())
    }

    /// Puts the body in place and commits the entry by renaming its
    /// metadata over the old one; then releases the old entry's body.
    /// No fsync: a cache may lose entries to a power cut, and the read-time
    /// check turns any bytes a power cut damaged into a miss.
    pub(crate) fn commit(mut self, shared: &Shared, head: Head) -> Result<(), BoxError> {
        let layout = &shared.layout;
        let digest = hex(&std::mem::take(&mut self.sha).finalize());
        let link = new_link_id();
        let link_path = layout.link_path(&link);
        place_body(layout, &self.tmp, &digest, &link_path)?;
        self.committed = true;
        // Its bytes are about to count as stored.
        self.in_flight
            .fetch_sub(std::mem::take(&mut self.len_under_way), Ordering::Relaxed);

        let meta = CacheMetadata {
            format: FORMAT_VERSION,
            key: head.key,
            status: head.parts.status.as_u16(),
            version: head.parts.version.into(),
            headers: head.parts.headers,
            url: head.url,
            content_digest: digest,
            body_len: self.len,
            body_check: format!("{:016x}", self.check.finish()),
            link,
            policy: head.policy,
            created_at: unix_now(),
            expires_at: head.expires_at,
            tags: head.tags,
        };
        match commit_metadata(shared, &meta) {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = std::fs::remove_file(&link_path);
                Err(err)
            }
        }
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        // Abandoned, its bytes are no longer under way.
        self.in_flight
            .fetch_sub(self.len_under_way, Ordering::Relaxed);
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Gives the new entry its own hard link to the body: to the existing
/// `content/<digest>` when there is one (dedup), else to the new file,
/// which then becomes `content/<digest>`. The temporary file is gone after.
fn place_body(
    layout: &Layout,
    tmp: &PathBuf,
    digest: &str,
    link: &PathBuf,
) -> Result<(), CacheError> {
    let content = layout.content_path(digest);
    match std::fs::hard_link(&content, link) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            return Ok(());
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        // No hard links here (or too many): keep an undeduplicated copy.
        Err(_) => {
            return std::fs::rename(tmp, link).map_err(|e| CacheError::io("rename", tmp, e));
        }
    }
    match std::fs::hard_link(tmp, link) {
        Ok(()) => {
            // Publish for dedup; replacing a concurrent twin is harmless,
            // the twin's entries keep their own links.
            if let Err(err) = std::fs::rename(tmp, &content) {
                tracing::debug!(error = %err, "could not publish content for dedup");
                let _ = std::fs::remove_file(tmp);
            }
            Ok(())
        }
        Err(_) => std::fs::rename(tmp, link).map_err(|e| CacheError::io("rename", tmp, e)),
    }
}

/// Replaces the head and policy of the entry under `key`, keeping its
/// body (same link, digest and check); `false` when there is no entry.
pub(crate) fn update_head(
    shared: &Shared,
    key: &str,
    head: Parts,
    policy: CachePolicy,
    expires_at: Option<u64>,
    tags: Option<Vec<String>>,
) -> Result<bool, BoxError> {
    let path = shared.layout.metadata_path(key);
    let Some(current) = read_current(key, &path) else {
        return Ok(false);
    };
    let meta = CacheMetadata {
        status: head.status.as_u16(),
        version: head.version.into(),
        headers: head.headers,
        policy,
        expires_at,
        tags: tags.unwrap_or_else(|| current.tags.clone()),
        ..current
    };
    commit_metadata(shared, &meta)?;
    Ok(true)
}

/// Renames the metadata into place, and has this process forget what it
/// kept in memory of the key, whether or not the rename happened.
///
/// What was written is not kept: its headers and policy share the buffers
/// the request and the response were read into, and keeping them would
/// keep those buffers, kilobytes for each entry. The first read keeps its
/// own compact copy.
fn commit_metadata(shared: &Shared, meta: &CacheMetadata) -> Result<(), BoxError> {
    let committed = rename_metadata(shared, meta);
    shared.uncache(&meta.key);
    committed
}

fn rename_metadata(shared: &Shared, meta: &CacheMetadata) -> Result<(), BoxError> {
    let layout = &shared.layout;
    let path = layout.metadata_path(&meta.key);
    let previous = read_current(&meta.key, &path);
    // Indexed before the commit, so that a reader of the index never
    // misses a committed entry; an entry that fails to commit leaves an
    // index file the next reader removes.
    crate::list::index_tags(layout, &meta.key, &meta.tags);
    let tmp = layout.tmp_path("json");
    write_new(&tmp, &meta.encode()?).map_err(|e| CacheError::io("write", &tmp, e))?;
    if let Err(err) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CacheError::io("rename", &tmp, err).into());
    }
    shared.note_stored(meta.body_len, previous.as_ref().map(|p| p.body_len));
    if let Some(previous) = previous
        && previous.link != meta.link
    {
        release_body(layout, &previous);
    }
    Ok(())
}

/// Writes a new file.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = File::options().write(true).create_new(true).open(path)?;
    file.write_all(bytes)
}
