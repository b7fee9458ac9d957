use crate::checks::store;
use crate::failure::Context;
use crate::{CheckResult, Harness, ensure, fixtures};
use respcache_core::CacheManager;

const BODY: usize = 256 * 1024;
const ENTRIES: u32 = 8;
/// Room for indexes, metadata and directories beside the bodies.
const SLACK: u64 = 128 * 1024;

/// Deleted entries give their bytes back (at once or after the backend's
/// reclamation).
pub async fn deleted_entries_release_their_storage<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    for i in 0..ENTRIES {
        store(&*manager, &format!("k{i}"), fixtures::generated(i, 1, BODY)).await?;
    }
    let full = h.stored_bytes().await.context("measuring storage")?;
    ensure!(
        full >= u64::from(ENTRIES) * BODY as u64,
        "{ENTRIES} bodies of {BODY} bytes are held in {full} bytes: stored_bytes undercounts"
    );
    for i in 0..ENTRIES {
        manager.delete(&format!("k{i}")).await.context("delete")?;
    }
    h.reclaim().await.context("reclaiming storage")?;
    let after = h.stored_bytes().await.context("measuring storage")?;
    ensure!(
        after <= SLACK,
        "after deleting every entry {after} bytes are still held"
    );
    Ok(())
}

/// Overwriting one key again and again holds about one body, not all of them.
pub async fn overwrites_do_not_accumulate_storage<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    for generation in 0..u64::from(ENTRIES) {
        store(&*manager, "k", fixtures::generated(0, generation, BODY)).await?;
    }
    h.reclaim().await.context("reclaiming storage")?;
    let held = h.stored_bytes().await.context("measuring storage")?;
    ensure!(
        held <= BODY as u64 + SLACK,
        "{ENTRIES} overwrites of one {BODY}-byte entry hold {held} bytes"
    );
    Ok(())
}
