//! Storage is judged against what one entry takes on the backend under
//! test, measured by the check itself, never against a body's length: a
//! backend that writes a body as JSON numbers takes three or four times
//! the body, and holds no more entries for it.

use crate::checks::{store, store_and_verify};
use crate::failure::Context;
use crate::{CheckResult, Failure, Harness, ensure, fixtures};
use respcache_core::CacheManager;

const BODY: usize = 256 * 1024;
const ENTRIES: u32 = 8;

/// What one stored entry of `BODY` bytes adds to the location, measured
/// from an empty location, with the empty location's own bytes. An entry
/// that adds less than half its body means [`Harness::stored_bytes`]
/// undercounts (the check's bodies do not compress that well).
pub(crate) async fn one_entry<H: Harness>(
    h: &H,
    key: &str,
    body: usize,
) -> Result<(u64, u64), Failure> {
    h.reclaim().await.context("reclaiming storage")?;
    let empty = h.stored_bytes().await.context("measuring storage")?;
    store_and_verify(&*h.manager(), key, 0, fixtures::generated(0, 0, body)).await?;
    let held = h.stored_bytes().await.context("measuring storage")?;
    let entry = held.saturating_sub(empty);
    ensure!(
        Harness,
        entry >= body as u64 / 2,
        "one entry with a {body}-byte body adds {entry} bytes to the location: stored_bytes undercounts"
    );
    Ok((empty, entry))
}

/// Deleted entries give their bytes back (at once or after the backend's
/// reclamation): after deleting eight entries, less than half of one
/// entry's footprint is still held.
pub async fn deleted_entries_release_their_storage<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let (empty, entry) = one_entry(h, "k0", BODY).await?;
    for i in 1..ENTRIES {
        store(&*manager, &format!("k{i}"), fixtures::generated(i, 1, BODY)).await?;
    }
    let full = h.stored_bytes().await.context("measuring storage")?;
    ensure!(
        Harness,
        full.saturating_sub(empty) >= entry * u64::from(ENTRIES) / 2,
        "{ENTRIES} entries of {entry} bytes each are held in {} bytes: stored_bytes undercounts",
        full.saturating_sub(empty)
    );
    for i in 0..ENTRIES {
        manager.delete(&format!("k{i}")).await.context("delete")?;
    }
    h.reclaim().await.context("reclaiming storage")?;
    let left = h
        .stored_bytes()
        .await
        .context("measuring storage")?
        .saturating_sub(empty);
    ensure!(
        Storage,
        left < entry / 2,
        "after deleting {ENTRIES} entries of {entry} bytes each, {left} bytes are still held"
    );
    Ok(())
}

/// Overwriting one key again and again holds about one entry, not all of
/// them: at most one and a half times what the first write took.
pub async fn overwrites_do_not_accumulate_storage<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let (empty, entry) = one_entry(h, "k", BODY).await?;
    for generation in 1..u64::from(ENTRIES) {
        store(&*manager, "k", fixtures::generated(0, generation, BODY)).await?;
    }
    h.reclaim().await.context("reclaiming storage")?;
    let held = h
        .stored_bytes()
        .await
        .context("measuring storage")?
        .saturating_sub(empty);
    ensure!(
        Storage,
        held <= entry + entry / 2,
        "{ENTRIES} overwrites of one entry hold {held} bytes; the entry alone took {entry}"
    );
    Ok(())
}
