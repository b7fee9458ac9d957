//! What a backend gives the suite so the checks can drive it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use respcache_core::{BoxError, CacheManager};

/// How [`Harness::damage`] damages a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Flip the bits of one byte in the middle of the stored body.
    FlipBodyByte,
    /// Cut the stored body to half its length.
    TruncateBody,
    /// Append bytes to the stored body.
    ExtendBody,
    /// Garble the record that describes the entry (metadata, index line,
    /// head), so that it no longer decodes.
    GarbleMetadata,
}

impl Damage {
    /// Every kind of damage.
    pub const ALL: [Damage; 4] = [
        Damage::FlipBodyByte,
        Damage::TruncateBody,
        Damage::ExtendBody,
        Damage::GarbleMetadata,
    ];
}

/// What a harness's backend can do, so that checks it cannot meet show as
/// `n/a` instead of failing (or, worse, passing without testing anything).
///
/// Start from [`Capabilities::ALL`] or [`Capabilities::default()`] and
/// switch off what the backend cannot do, with struct update syntax, so
/// that a field added later keeps its default:
///
/// ```
/// use respcache_conformance::Capabilities;
/// // An in-memory backend: nothing outlives the manager or its process.
/// let memory = Capabilities {
///     survives_restart: false,
///     shared_between_processes: false,
///     damageable_medium: false,
///     bodies_outside_memory: false,
///     ..Capabilities::default()
/// };
/// assert!(!memory.updates_heads);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A new manager on the same location ([`Harness::reopen`]) sees what
    /// the old one stored. Without it the restart check is `n/a`, and the
    /// checks that also look through a reopened manager skip that part.
    pub survives_restart: bool,
    /// Managers in two processes on one location
    /// ([`Harness::open_location`] in a child process) share entries.
    /// Without it the SIGKILL and two-process checks are `n/a`.
    pub shared_between_processes: bool,
    /// [`Harness::damage`] can damage stored bytes. Without it the
    /// integrity checks are `n/a`.
    pub damageable_medium: bool,
    /// `update_head` replaces head and policy of a stored entry and
    /// returns `true`. Without it, the backend may decline (`false`, the
    /// trait's default), and the check then requires the entry to be left
    /// as it was; a backend that returns `true` is checked either way.
    pub updates_heads: bool,
    /// A stored body lives outside the process's memory (a file, a
    /// server), so a streamed body need not be resident whole while it is
    /// stored or read. Without it the flat-memory check is `n/a`: a
    /// backend in process memory holds every body it keeps.
    pub bodies_outside_memory: bool,
    /// Two managers on one location agree at once: what one deletes or
    /// replaces, the other no longer returns, even if it read or wrote
    /// the entry before. A manager that keeps entries in its own memory in
    /// front of a shared location (a tiered cache) serves them a while
    /// longer. Without it the check that managers agree is `n/a`; the
    /// restart check still runs.
    pub coherent_between_managers: bool,
}

impl Capabilities {
    /// Everything: a persistent medium shared by processes, reachable by
    /// [`Harness::damage`], and heads updated in place.
    pub const ALL: Self = Self {
        survives_restart: true,
        shared_between_processes: true,
        damageable_medium: true,
        updates_heads: true,
        bodies_outside_memory: true,
        coherent_between_managers: true,
    };

    /// What a harness that declares nothing gets: every check runs, and
    /// `update_head` may decline, as the trait's default implementation
    /// does.
    pub const DEFAULT: Self = Self {
        updates_heads: false,
        ..Self::ALL
    };
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A backend under test: a fresh location and a manager on it, plus the
/// hooks the checks need to reach behind the manager's back.
///
/// Implement it once in a backend's test file and run every check with
/// [`buffered_suite!`](crate::buffered_suite).
#[async_trait::async_trait]
pub trait Harness: Send + Sync + Sized + 'static {
    /// The manager under test.
    type Manager: CacheManager;

    /// What the backend can do; checks that need more are `n/a`. The
    /// default, [`Capabilities::DEFAULT`], runs every check.
    fn capabilities() -> Capabilities {
        Capabilities::DEFAULT
    }

    /// A fresh, empty location (a new temporary directory, a new key
    /// namespace on a server) and a manager on it.
    async fn create() -> Self;

    /// The manager on this harness's location.
    fn manager(&self) -> Arc<Self::Manager>;

    /// A new manager on the same location, as after a process restart.
    async fn reopen(&self) -> Self::Manager;

    /// The location as text, for [`Harness::open_location`] in another
    /// process.
    fn location(&self) -> String;

    /// A manager on a location given by [`Harness::location`]; called in a
    /// child process.
    async fn open_location(location: &str) -> Self::Manager;

    /// The directory the backend keeps its files in, if it keeps files.
    /// Without one, the check that keys stay inside the root is `n/a`.
    fn root(&self) -> Option<PathBuf> {
        None
    }

    /// A directory dedicated to this harness that holds [`Harness::root`],
    /// at any depth, and nothing else the backend may write to. The key
    /// checks list its whole tree before and after they run, and aim `..`
    /// and absolute keys at canary files they create in it, up to the
    /// sandbox and no further: the deeper the root, the more `..` keys are
    /// tried. The default is the root's parent.
    fn sandbox(&self) -> Option<PathBuf> {
        self.root()
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
    }

    /// Damages the stored entry of `key` as `how` says, behind the manager's
    /// back, the way a failing disk or a stray write would.
    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError>;

    /// Bytes the backend holds for this location now.
    async fn stored_bytes(&self) -> Result<u64, BoxError>;

    /// Runs the backend's reclamation of unreferenced storage, if it has one.
    async fn reclaim(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Sum of the sizes of the regular files below `dir` (0 when it is missing),
/// each hard-linked file counted once: a ready [`Harness::stored_bytes`]
/// for backends that keep files.
pub fn bytes_below(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let metadata = entry.metadata()?;
                if first_link(&mut seen, &metadata) {
                    total += metadata.len();
                }
            }
        }
    }
    Ok(total)
}

#[cfg(unix)]
fn first_link(
    seen: &mut std::collections::HashSet<(u64, u64)>,
    metadata: &std::fs::Metadata,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    metadata.nlink() == 1 || seen.insert((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn first_link(_: &mut std::collections::HashSet<(u64, u64)>, _: &std::fs::Metadata) -> bool {
    true
}

/// Damages the file at `path` as `how` says: a ready [`Harness::damage`]
/// for backends that keep an entry's body (or, for
/// [`Damage::GarbleMetadata`], its record) in one file.
pub fn damage_file(path: &std::path::Path, how: Damage) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = file.metadata()?.len();
    match how {
        Damage::FlipBodyByte => {
            let mut byte = [0u8; 1];
            file.seek(SeekFrom::Start(len / 2))?;
            std::io::Read::read_exact(&mut file, &mut byte)?;
            file.seek(SeekFrom::Start(len / 2))?;
            file.write_all(&[byte[0] ^ 0xff])?;
        }
        Damage::TruncateBody => file.set_len(len / 2)?,
        Damage::ExtendBody => {
            file.seek(SeekFrom::End(0))?;
            file.write_all(b"trailing garbage")?;
        }
        Damage::GarbleMetadata => {
            file.seek(SeekFrom::Start(len / 2))?;
            file.write_all(b"\x00garbled\x00")?;
        }
    }
    file.sync_all()
}
