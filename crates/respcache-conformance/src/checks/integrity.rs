use crate::checks::{fetch, round_trip::missing, store};
use crate::failure::Context;
use crate::{CheckResult, Damage, Failure, Harness, ensure, fixtures};
use respcache_core::CacheManager;

/// Damages a stored entry as `how` says and proves the manager never returns
/// it as valid: `get` is `Ok(None)` (the entry is dropped, so a second get is
/// a miss too), and a new put on the key works.
async fn damaged_entry_is_a_miss<H: Harness>(h: &H, how: Damage) -> CheckResult {
    let manager = h.manager();
    let original = fixtures::generated(3, 1, 256 * 1024);
    store(&*manager, "victim", original.clone()).await?;
    store(&*manager, "bystander", fixtures::generated(4, 1, 1000)).await?;
    h.damage("victim", how)
        .await
        .context(&format!("damaging the entry ({how:?})"))?;

    match manager.get("victim").await {
        Ok(None) => {}
        Ok(Some((back, _))) => {
            let verdict = match fixtures::verify_generated(3, &back) {
                Ok(_) => "the undamaged value, so the damage was not detected or not made".into(),
                Err(e) => format!("damaged bytes as a valid entry ({e})"),
            };
            return Err(Failure(format!("after {how:?}, get returned {verdict}")));
        }
        Err(err) => {
            return Err(Failure(format!(
                "after {how:?}, get failed instead of missing: {err}"
            )));
        }
    }
    ensure!(
        fetch(&*manager, "victim").await?.is_none(),
        "the damaged entry was not dropped"
    );
    let bystander = fetch(&*manager, "bystander")
        .await?
        .ok_or_else(|| missing("bystander"))?;
    fixtures::verify_generated(4, &bystander).map_err(Failure)?;

    store(&*manager, "victim", fixtures::generated(3, 2, 10)).await?;
    let back = fetch(&*manager, "victim")
        .await?
        .ok_or_else(|| missing("victim"))?;
    fixtures::verify_generated(3, &back).map_err(Failure)?;
    Ok(())
}

/// A body with one flipped byte is never returned.
pub async fn body_with_a_flipped_byte_is_never_returned<H: Harness>(h: &H) -> CheckResult {
    damaged_entry_is_a_miss(h, Damage::FlipBodyByte).await
}

/// A truncated body is never returned.
pub async fn truncated_body_is_never_returned<H: Harness>(h: &H) -> CheckResult {
    damaged_entry_is_a_miss(h, Damage::TruncateBody).await
}

/// A body with bytes appended is never returned.
pub async fn extended_body_is_never_returned<H: Harness>(h: &H) -> CheckResult {
    damaged_entry_is_a_miss(h, Damage::ExtendBody).await
}

/// An entry whose metadata no longer decodes is a miss, not an error or a panic.
pub async fn garbled_metadata_is_a_miss<H: Harness>(h: &H) -> CheckResult {
    damaged_entry_is_a_miss(h, Damage::GarbleMetadata).await
}
