//! Redis key names. Every key of one entry carries the same hash tag, so
//! the entry lives in one cluster slot and its scripts run atomically on a
//! cluster too:
//!
//! ```text
//! <prefix>:{<tag>}:h               the head: a hash of gen, n (chunks), meta
//! <prefix>:{<tag>}:c:<gen>:<i>     chunk i of the body of generation gen
//! <prefix>:tag:<hash of a tag>      a set: the keys of entries carrying that tag
//! ```
//!
//! A tag's set may still name an entry replaced without the tag, or
//! deleted; whoever reads it checks each head and removes those.
//!
//! The tag is the first 128 bits of the SHA-256 of the cache key, in hex;
//! the full key is in the head's metadata and compared on read.

use sha2::Digest;

#[derive(Debug, Clone)]
pub(crate) struct EntryKeys {
    pub(crate) head: String,
    /// Chunk keys are this followed by `<gen>:<i>`.
    pub(crate) chunk_prefix: String,
    /// The manager's prefix.
    pub(crate) prefix: String,
}

impl EntryKeys {
    pub(crate) fn new(prefix: &str, key: &str) -> Self {
        let digest = sha2::Sha256::digest(key.as_bytes());
        let tag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            head: format!("{prefix}:{{{tag}}}:h"),
            chunk_prefix: format!("{prefix}:{{{tag}}}:c:"),
            prefix: prefix.to_owned(),
        }
    }

    /// The set indexing the entries that carry `tag`.
    pub(crate) fn tag_set(&self, tag: &str) -> String {
        tag_set(&self.prefix, tag)
    }

    pub(crate) fn chunk(&self, generation: &str, index: u64) -> String {
        format!("{}{generation}:{index}", self.chunk_prefix)
    }

    /// The keys of chunks `0..count` of `generation`.
    pub(crate) fn chunks(&self, generation: &str, count: u64) -> Vec<String> {
        (0..count).map(|i| self.chunk(generation, i)).collect()
    }
}

/// The set indexing the entries of `prefix` that carry `tag`.
pub(crate) fn tag_set(prefix: &str, tag: &str) -> String {
    let digest = sha2::Sha256::digest(tag.as_bytes());
    let hash: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}:tag:{hash}")
}

/// The `SCAN` pattern matching every head of `prefix`.
pub(crate) fn head_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 8);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":{*}:h");
    pattern
}

/// A fresh generation id.
pub(crate) fn new_generation() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_entry_shares_one_hash_tag() {
        let keys = EntryKeys::new("app", &"k".repeat(65_536));
        let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
        assert_eq!(tag(&keys.head), tag(&keys.chunk("abc", 7)));
        assert!(keys.head.len() < 64, "{}", keys.head);
        assert_ne!(
            EntryKeys::new("app", "a").head,
            EntryKeys::new("app", "A").head
        );
    }
}
