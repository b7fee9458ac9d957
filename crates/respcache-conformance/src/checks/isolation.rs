use respcache_core::CacheManager;

use crate::checks::round_trip::policy_json;
use crate::checks::{fetch, fetch_as, missing, store, store_and_verify, verify};
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, ensure, ensure_eq, fixtures};

/// `update_head` replaces head and policy and keeps the body: a `get`
/// afterwards returns the new headers, the new policy and the old body.
/// A backend whose harness does not declare
/// [`updates_heads`](crate::Capabilities::updates_heads) may decline
/// instead (`false`), and must then leave the entry as it was; one that
/// declares it must not decline. On a missing key it declines and
/// creates nothing.
pub async fn update_head_keeps_the_body_or_declines<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let original = fixtures::response(vec![7u8; 100_000]);
    let original_policy = fixtures::policy_for(&original);
    manager
        .put("k".into(), original.clone(), original_policy.clone())
        .await
        .context("put")?;
    let back = fetch(&*manager, "k")
        .await?
        .ok_or_else(|| missing(FailureKind::RoundTrip, "k"))?;
    ensure_eq!(RoundTrip, back, original, "round trip before update_head");

    let mut head = original
        .parts()
        .map_err(|e| Failure::new(FailureKind::Operation, e.to_string()))?;
    head.headers
        .insert("x-refreshed", http::HeaderValue::from_static("yes"));
    head.headers.insert(
        "cache-control",
        http::HeaderValue::from_static("max-age=7200"),
    );
    let mut refreshed = original.clone();
    refreshed.headers = head.headers.clone();
    let new_policy = fixtures::policy_for(&refreshed);
    ensure!(
        Harness,
        policy_json(&new_policy) != policy_json(&original_policy),
        "the refreshed policy does not differ from the original"
    );
    let updated = manager
        .update_head("k", head, new_policy.clone())
        .await
        .context_as(FailureKind::UpdateHead, "update_head")?;
    let (back, policy) = manager
        .get("k")
        .await
        .context("get after update_head")?
        .ok_or_else(|| {
            Failure::new(
                FailureKind::UpdateHead,
                format!("update_head returned {updated} and the entry is gone"),
            )
        })?;
    ensure!(
        UpdateHead,
        back.body == original.body,
        "update_head returned {updated} and changed the body: {} bytes, {} stored",
        back.body.len(),
        original.body.len()
    );
    if updated {
        ensure_eq!(
            UpdateHead,
            back,
            refreshed,
            "update_head returned true but get does not read the new head"
        );
        ensure!(
            UpdateHead,
            policy_json(&policy) == policy_json(&new_policy),
            "update_head returned true but the stored policy is not the new one"
        );
    } else {
        ensure!(
            UpdateHead,
            !H::capabilities().updates_heads,
            "update_head declined, although the harness declares that the backend updates heads"
        );
        ensure_eq!(
            UpdateHead,
            back,
            original,
            "update_head declined but changed the entry"
        );
        ensure!(
            UpdateHead,
            policy_json(&policy) == policy_json(&original_policy),
            "update_head declined but changed the policy"
        );
    }

    let head = original
        .parts()
        .map_err(|e| Failure::new(FailureKind::Operation, e.to_string()))?;
    let missing_updated = manager
        .update_head("never-stored", head, original_policy)
        .await
        .context_as(FailureKind::UpdateHead, "update_head of a missing key")?;
    ensure!(
        UpdateHead,
        !missing_updated,
        "update_head of a missing key said it updated"
    );
    ensure!(
        UpdateHead,
        fetch(&*manager, "never-stored").await?.is_none(),
        "update_head created an entry"
    );
    Ok(())
}

/// A second put on a key replaces the first whole: head and body.
pub async fn second_put_replaces_the_first_whole<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    store_and_verify(&*manager, "k", 0, fixtures::generated(0, 1, 100_000)).await?;
    store(&*manager, "k", fixtures::generated(0, 2, 10)).await?;
    let back = fetch(&*manager, "k")
        .await?
        .ok_or_else(|| missing(FailureKind::Replace, "k"))?;
    let generation = verify(FailureKind::Replace, 0, &back, "after the second put")?;
    ensure_eq!(
        Replace,
        generation,
        2,
        "the second put did not replace the first"
    );
    Ok(())
}

/// After `delete`, the key reads as missing, also through a new manager
/// (when the backend survives restarts).
pub async fn delete_removes_the_entry<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    store_and_verify(&*manager, "k", 0, fixtures::generated(0, 1, 1000)).await?;
    manager.delete("k").await.context("delete")?;
    ensure!(
        Delete,
        fetch(&*manager, "k").await?.is_none(),
        "entry survived its delete"
    );
    if H::capabilities().survives_restart {
        let reopened = h.reopen().await;
        ensure!(
            Delete,
            fetch(&reopened, "k").await?.is_none(),
            "entry came back after a restart"
        );
    }
    Ok(())
}

/// Two entries with byte-identical bodies (and heads of their own), each
/// read back whole before the check goes on.
async fn two_entries_sharing_a_body<M: CacheManager + ?Sized>(
    manager: &M,
    len: usize,
) -> Result<respcache_core::HttpResponse, Failure> {
    let shared = fixtures::response(vec![42u8; len]);
    for key in ["a", "b"] {
        let mut response = shared.clone();
        response
            .headers
            .insert("x-key", http::HeaderValue::from_static(key));
        store(manager, key, response.clone()).await?;
        let back = fetch(manager, key)
            .await?
            .ok_or_else(|| missing(FailureKind::RoundTrip, key))?;
        ensure_eq!(
            RoundTrip,
            back,
            response,
            "{key} read back right after its put"
        );
    }
    Ok(shared)
}

/// Two keys holding byte-identical bodies: deleting one leaves the other whole.
pub async fn keys_are_isolated_when_bodies_are_shared<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let shared = two_entries_sharing_a_body(&*manager, 200_000).await?;
    manager.delete("a").await.context("delete of a")?;
    let back = fetch(&*manager, "b").await?;
    ensure!(
        Isolation,
        back.is_some(),
        "deleting a removed b, which held the same body"
    );
    let body = back.map(|r| r.body);
    ensure!(
        Isolation,
        body.as_ref() == Some(&shared.body),
        "deleting a changed b's body, which was the same: {:?} bytes now",
        body.map(|b| b.len())
    );
    if H::capabilities().survives_restart {
        let reopened = h.reopen().await;
        let back = fetch(&reopened, "b").await?.map(|r| r.body);
        ensure!(
            Isolation,
            back == Some(shared.body),
            "b's body lost after a restart, once a, which held the same body, was deleted"
        );
    }
    Ok(())
}

/// Two keys holding byte-identical bodies: overwriting one leaves the other whole.
pub async fn overwriting_a_key_that_shares_a_body_leaves_the_other_intact<H: Harness>(
    h: &H,
) -> CheckResult {
    let manager = h.manager();
    let shared = two_entries_sharing_a_body(&*manager, 100_000).await?;
    store(&*manager, "a", fixtures::response("replacement")).await?;
    let a = fetch(&*manager, "a").await?.map(|r| r.body);
    ensure!(
        Replace,
        a.as_deref() == Some(b"replacement".as_slice()),
        "a was not replaced"
    );
    let b = fetch(&*manager, "b").await?.map(|r| r.body);
    ensure!(
        Isolation,
        b.as_ref() == Some(&shared.body),
        "overwriting a changed b, which held the same body: {:?} bytes now",
        b.map(|b| b.len())
    );
    Ok(())
}

/// Writing and deleting many keys leaves every other key as it was.
pub async fn many_keys_do_not_interfere<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    const KEYS: u32 = 200;
    for i in 0..KEYS {
        store_and_verify(
            &*manager,
            &format!("key-{i}"),
            i,
            fixtures::generated(i, 1, (i * 37 % 2000) as usize),
        )
        .await?;
    }
    for i in (0..KEYS).step_by(3) {
        manager
            .delete(&format!("key-{i}"))
            .await
            .context("delete")?;
    }
    for i in 0..KEYS {
        let back = fetch_as(FailureKind::Operation, &*manager, &format!("key-{i}")).await?;
        match (i % 3 == 0, back) {
            (true, None) => {}
            (true, Some(_)) => {
                return Err(Failure::new(
                    FailureKind::Delete,
                    format!("key-{i} survived its delete"),
                ));
            }
            (false, None) => {
                return Err(Failure::new(
                    FailureKind::Isolation,
                    format!("key-{i} vanished while other keys were written and deleted"),
                ));
            }
            (false, Some(back)) => {
                verify(
                    FailureKind::Isolation,
                    i,
                    &back,
                    &format!("key-{i}, after other keys were written and deleted"),
                )?;
            }
        }
    }
    Ok(())
}
