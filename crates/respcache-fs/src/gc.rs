//! Reclaiming storage: files left by killed writers, bodies no entry
//! uses, entries past the lifetime they were stored with, and least
//! recently used entries beyond the size limit.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::Shared;
use crate::layout::tmp_owner;
use crate::metadata::{CacheMetadata, Decoded};
use crate::remove::{link_count, remove_quietly};

/// A link no metadata names is left alone this long: a put creates its
/// link a moment before it commits the metadata that names it.
pub(crate) const LINK_GRACE: Duration = Duration::from_secs(60);
/// Where process liveness cannot be read, temporary files older than this
/// are taken to be a dead writer's.
const TMP_GRACE: Duration = Duration::from_secs(3600);

/// What a [`gc`](crate::StreamingManager::gc) run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Entries past the lifetime they were stored with
    /// (`StoreHints::keep_for`).
    pub expired: u64,
    /// Temporary files of writers that are no longer running.
    pub temp_files: u64,
    /// Links no entry names.
    pub links: u64,
    /// Content files no link shares.
    pub contents: u64,
    /// Metadata files that did not decode.
    pub metadata: u64,
}

pub(crate) fn run(shared: &Shared, startup: bool) -> std::io::Result<GcReport> {
    let layout = &shared.layout;
    let mut report = GcReport::default();
    for entry in read_dir(&layout.tmp)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if writer_is_gone(&name, &entry.path()) {
            remove_quietly(&entry.path());
            report.temp_files += 1;
        }
    }
    let metadata_files: Vec<_> = read_dir(&layout.metadata)?.collect::<Result<_, _>>()?;
    let link_files: Vec<_> = read_dir(&layout.links)?.collect::<Result<_, _>>()?;
    // Cheap when there is nothing to do: one link per entry and no
    // unreferenced content is the steady state after clean shutdowns.
    if startup && metadata_files.len() == link_files.len() {
        return Ok(report);
    }

    let mut named = HashSet::with_capacity(metadata_files.len());
    // Links are only removed when every record was read: a record that
    // could not be read, or one of another format whose link we cannot
    // name, might be the one that names a link.
    let mut every_link_known = true;
    let now = crate::write::unix_now();
    for entry in &metadata_files {
        let path = entry.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Deleted since it was listed.
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        match CacheMetadata::decode("", &bytes) {
            Ok(Decoded::Entry(meta)) if is_expired(&meta, now) => {
                if crate::remove::delete_if_current(layout, &meta) {
                    shared.forget(&meta.key);
                    shared.note_deleted(meta.body_len);
                    report.expired += 1;
                } else {
                    // Replaced since it was read: the new record names
                    // its own link.
                    every_link_known = false;
                }
            }
            Ok(Decoded::Entry(meta)) => {
                named.insert(meta.link);
            }
            Ok(Decoded::OtherFormat) => every_link_known = false,
            Err(_) => {
                remove_quietly(&path);
                report.metadata += 1;
            }
        }
    }
    for entry in link_files.iter().filter(|_| every_link_known) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !named.contains(&name) && older_than(&entry.path(), shared.options.link_grace) {
            remove_quietly(&entry.path());
            report.links += 1;
        }
    }
    for entry in read_dir(&layout.content)? {
        let path = entry?.path();
        if link_count(&path) == Some(1) {
            remove_quietly(&path);
            report.contents += 1;
        }
    }
    Ok(report)
}

/// Whether `meta`'s entry has outlived the lifetime it was stored with.
fn is_expired(meta: &CacheMetadata, now: u64) -> bool {
    meta.expires_at.is_some_and(|at| at <= now)
}

/// Evicts entries until the bodies stored take at most nine tenths of
/// `limit`: first those past their lifetime, then the least recently used.
/// Recency is this process's own reads where it has them, else the time an
/// entry was written.
pub(crate) fn evict(shared: &Shared, limit: u64) -> std::io::Result<u64> {
    let layout = &shared.layout;
    let mut entries = Vec::new();
    let mut total = 0u64;
    let now = crate::write::unix_now();
    for entry in read_dir(&layout.metadata)? {
        let path = entry?.path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Ok(Decoded::Entry(meta)) = CacheMetadata::decode("", &bytes) {
            total += meta.body_len;
            let used = shared
                .last_used(&meta.key)
                .unwrap_or(meta.created_at.saturating_mul(1_000_000_000));
            entries.push(((!is_expired(&meta, now), used), meta.key, meta.body_len));
        }
    }
    // Room for the stores under way: their bytes are on disk too.
    let in_flight = shared.in_flight.load(std::sync::atomic::Ordering::Relaxed);
    let target = (limit / 10 * 9).saturating_sub(in_flight);
    entries.sort_unstable_by_key(|(used, _, _)| *used);
    let mut evicted = 0;
    for (_, key, len) in entries {
        if total <= target {
            break;
        }
        crate::remove::delete(layout, &key)?;
        shared.forget(&key);
        total = total.saturating_sub(len);
        evicted += 1;
    }
    shared.set_stored(total);
    Ok(evicted)
}

fn read_dir(
    dir: &Path,
) -> std::io::Result<Box<dyn Iterator<Item = std::io::Result<std::fs::DirEntry>>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Box::new(entries)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(err) => Err(err),
    }
}

/// A temporary file belongs to a dead writer when the process its name
/// starts with is gone (this process's own files belong to live writers).
fn writer_is_gone(name: &str, path: &Path) -> bool {
    match tmp_owner(name) {
        Some(pid) if pid == std::process::id() => false,
        Some(pid) if Path::new("/proc/self").exists() => {
            !Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => older_than(path, TMP_GRACE),
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(path)
        .ok()
        .and_then(|m| changed_at(&m))
        .is_some_and(|t| t.elapsed().is_ok_and(|e| e >= age))
}

/// When the file's inode last changed: for a hard link, when the link was
/// made, even if the content it points at is old.
#[cfg(unix)]
fn changed_at(metadata: &std::fs::Metadata) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let secs = u64::try_from(metadata.ctime()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(not(unix))]
fn changed_at(metadata: &std::fs::Metadata) -> Option<SystemTime> {
    metadata.modified().ok()
}
