use crate::checks::{fetch, missing, require, store, store_and_verify, verify};
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Damage, Failure, Harness, ensure, fixtures};
use respcache_core::CacheManager;

/// Damages a stored entry as `how` says and proves the manager never returns
/// it as valid: `get` is `Ok(None)` (the entry is dropped, so a second get is
/// a miss too), a neighbour is unharmed, and a new put on the key works.
async fn damaged_entry_is_a_miss<H: Harness>(h: &H, how: Damage) -> CheckResult {
    require::<H>(
        |c| c.damageable_medium,
        "its medium can be damaged (damageable_medium)",
    )?;
    let manager = h.manager();
    store_and_verify(
        &*manager,
        "victim",
        3,
        fixtures::generated(3, 1, 256 * 1024),
    )
    .await?;
    store_and_verify(&*manager, "bystander", 4, fixtures::generated(4, 1, 1000)).await?;
    h.damage("victim", how).await.context_as(
        FailureKind::Harness,
        &format!("damaging the entry ({how:?})"),
    )?;

    match manager.get("victim").await {
        Ok(None) => {}
        Ok(Some((back, _))) => {
            return Err(match fixtures::verify_generated(3, &back) {
                Ok(_) => Failure::new(
                    FailureKind::Harness,
                    format!(
                        "after {how:?}, get returned the undamaged entry: the damage did not reach what get reads"
                    ),
                ),
                Err(e) => Failure::new(
                    FailureKind::Integrity,
                    format!("after {how:?}, get returned damaged bytes as a valid entry ({e})"),
                ),
            });
        }
        Err(err) => {
            return Err(Failure::new(
                FailureKind::Integrity,
                format!("after {how:?}, get failed instead of missing: {err}"),
            ));
        }
    }
    ensure!(
        Integrity,
        fetch(&*manager, "victim").await?.is_none(),
        "after {how:?}, the damaged entry was not dropped: a second get returned it"
    );
    let bystander = fetch(&*manager, "bystander")
        .await?
        .ok_or_else(|| missing(FailureKind::Isolation, "bystander"))?;
    verify(
        FailureKind::Isolation,
        4,
        &bystander,
        "the undamaged bystander",
    )?;

    store(&*manager, "victim", fixtures::generated(3, 2, 10))
        .await
        .map_err(|f| f.with_kind(FailureKind::Integrity))?;
    let back = fetch(&*manager, "victim").await?.ok_or_else(|| {
        missing(
            FailureKind::Integrity,
            "victim, stored again after the damage",
        )
    })?;
    verify(FailureKind::Integrity, 3, &back, "the victim stored again")?;
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
