//! Listing keys, by prefix and by tag, and keeping the tag sets.

use std::time::Duration;

use respcache_core::BoxError;

use crate::connection::Con;
use crate::head::{Decoded, Meta};
use crate::keys::{EntryKeys, head_pattern};
use crate::scripts::TAG;

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 1000;

/// Adds `key` to the set of each of `tags`, living at least `ttl`.
pub(crate) async fn index(
    con: &mut Con,
    keys: &EntryKeys,
    key: &str,
    tags: &[String],
    ttl: Duration,
) -> Result<(), BoxError> {
    for tag in tags {
        let _: i64 = TAG
            .key(keys.tag_set(tag))
            .arg(key)
            .arg(crate::head::expire_secs(ttl).max(1))
            .invoke_async(con)
            .await?;
    }
    Ok(())
}

/// Every stored key of the manager's `prefix` starting with `starts`:
/// a `SCAN` over the heads, each head's key read from its metadata.
pub(crate) async fn keys(
    con: &mut Con,
    prefix: &str,
    starts: &str,
) -> Result<Vec<String>, BoxError> {
    let pattern = head_pattern(prefix);
    let mut cursor: u64 = 0;
    let mut found = Vec::new();
    loop {
        let (next, heads): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(con)
            .await?;
        for head in heads {
            let meta: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(&head)
                .arg("meta")
                .query_async(con)
                .await?;
            // Undecodable or of another format: not a key this manager
            // can read, so not one it lists.
            if let Some(Ok(Decoded::Entry(meta))) = meta.map(|m| Meta::decode(&head, &m))
                && meta.key.starts_with(starts)
            {
                found.push(meta.key);
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // SCAN may return a key more than once.
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Every key in `set` whose entry still carries `tag`. Members that do
/// not are left alone: one may be a write that indexed its tags and has
/// not committed yet, and the set expires with its longest-lived entry.
pub(crate) async fn tagged(
    con: &mut Con,
    set: &str,
    tag: &str,
    entry_keys: impl Fn(&str) -> EntryKeys,
) -> Result<Vec<String>, BoxError> {
    let members: Vec<String> = redis::cmd("SMEMBERS").arg(set).query_async(con).await?;
    let mut found = Vec::new();
    for member in members {
        let head = crate::read::head(con, &entry_keys(&member), &member).await?;
        if head.is_some_and(|head| head.meta.tags.iter().any(|t| t == tag)) {
            found.push(member);
        }
    }
    Ok(found)
}
