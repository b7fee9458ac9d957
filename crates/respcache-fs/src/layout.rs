//! Where everything lives under the root, and how names are made.
//!
//! ```text
//! ROOT/cache-v2/metadata/<key-id>.json   one per key: head, policy, digest, length, check, link
//! ROOT/cache-v2/content/<sha256 hex>     one name per distinct body: the dedup index
//! ROOT/cache-v2/links/<link-id>          a hard link to the body, one per stored entry
//! ROOT/cache-v2/tmp/<pid>-<random>.*     bodies and metadata being written
//! ROOT/cache-v2/tags/<tag-id>/<key-id>   an empty file per tagged entry: the tag index
//! ```
//!
//! The tag index may name entries that no longer carry the tag (a put
//! without it, a delete, another process): whoever reads it checks each
//! entry's metadata and removes what is out of date.
//!
//! An entry reads its body through its own hard link, never through the
//! `content/` name, so the kernel counts who uses a body: removing one
//! entry's link (or even the `content/` name) never takes bytes from
//! another entry that shares them.

use std::path::{Path, PathBuf};

use sha2::Digest;

/// The longest key whose hex form is its id: `2 * 125 + ".json"` is 255
/// bytes, the longest file name most file systems allow.
const LONGEST_HEX_KEY: usize = 125;

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) base: PathBuf,
    pub(crate) metadata: PathBuf,
    pub(crate) content: PathBuf,
    pub(crate) links: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) tags: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        let base = root.join("cache-v2");
        Self {
            metadata: base.join("metadata"),
            content: base.join("content"),
            links: base.join("links"),
            tmp: base.join("tmp"),
            tags: base.join("tags"),
            base,
        }
    }

    pub(crate) fn create_dirs(&self) -> std::io::Result<()> {
        for dir in [&self.metadata, &self.content, &self.links, &self.tmp] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    pub(crate) fn metadata_path(&self, key: &str) -> PathBuf {
        self.metadata.join(format!("{}.json", key_id(key)))
    }

    pub(crate) fn content_path(&self, digest: &str) -> PathBuf {
        self.content.join(digest)
    }

    /// The directory indexing the entries tagged `tag`.
    pub(crate) fn tag_dir(&self, tag: &str) -> PathBuf {
        self.tags.join(key_id(tag))
    }

    pub(crate) fn link_path(&self, link: &str) -> PathBuf {
        self.links.join(link)
    }

    /// A fresh temporary path; its name starts with this process's id so
    /// that `gc` can tell files of live writers from those of dead ones.
    pub(crate) fn tmp_path(&self, suffix: &str) -> PathBuf {
        self.tmp
            .join(format!("{}-{}.{suffix}", std::process::id(), random_id()))
    }
}

/// The id of a key: its hex while that fits a file name, else a hash of it.
/// The two forms never meet: hex has no `-`, the hashed form starts with
/// `sha256-`. The full key is stored in the metadata and compared on read.
pub(crate) fn key_id(key: &str) -> String {
    if key.len() <= LONGEST_HEX_KEY {
        hex(key.as_bytes())
    } else {
        format!("sha256-{}", hex(&sha2::Sha256::digest(key.as_bytes())))
    }
}

/// The key whose id is `id`, when the id is the key's hex (not a hash).
pub(crate) fn key_of_id(id: &str) -> Option<String> {
    if !id.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A new id for an entry's link.
pub(crate) fn new_link_id() -> String {
    random_id()
}

fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The process id a temporary file's name starts with.
pub(crate) fn tmp_owner(name: &str) -> Option<u32> {
    name.split('-').next()?.parse().ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_hex_and_long_keys_are_hashed_to_a_valid_name() {
        assert_eq!(key_id("GET:/a"), "4745543a2f61");
        let long = "k".repeat(64 * 1024);
        let id = key_id(&long);
        assert!(id.starts_with("sha256-") && id.len() == 71, "{id}");
        let edge = "e".repeat(LONGEST_HEX_KEY);
        assert_eq!(format!("{}.json", key_id(&edge)).len(), 255);
        assert_ne!(key_id(&format!("{edge}a")), key_id(&format!("{edge}b")));
        assert_eq!(
            key_of_id(&key_id("GET:/a\nvary")).as_deref(),
            Some("GET:/a\nvary")
        );
        assert_eq!(key_of_id(&id), None);
    }

    #[test]
    fn tmp_names_carry_the_process_id() {
        let layout = Layout::new(Path::new("/r"));
        let path = layout.tmp_path("body");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(tmp_owner(name), Some(std::process::id()));
    }
}
