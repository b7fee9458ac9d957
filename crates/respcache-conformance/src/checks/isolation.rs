use crate::checks::{fetch, round_trip::missing, store};
use crate::failure::Context;
use crate::{CheckResult, Failure, Harness, ensure, ensure_eq, fixtures};
use respcache_core::CacheManager;

/// `update_head` replaces head and policy and keeps the body, or declines
/// (`false`) and leaves the entry as it was; on a missing key it declines
/// and creates nothing.
pub async fn update_head_keeps_the_body_or_declines<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let original = fixtures::response(vec![7u8; 100_000]);
    store(&*manager, "k", original.clone()).await?;
    let mut head = original.parts().map_err(|e| Failure(e.to_string()))?;
    head.headers
        .insert("x-refreshed", http::HeaderValue::from_static("yes"));
    let mut refreshed = original.clone();
    refreshed.headers = head.headers.clone();
    let policy = fixtures::policy_for(&refreshed);
    let updated = manager
        .update_head("k", head, policy)
        .await
        .context("update_head")?;
    let back = fetch(&*manager, "k").await?.ok_or_else(|| missing("k"))?;
    ensure!(back.body == original.body, "update_head changed the body");
    let expected = if updated { "yes" } else { "" };
    let seen = back
        .headers
        .get("x-refreshed")
        .map_or("", |v| v.to_str().unwrap_or("?"));
    ensure_eq!(
        seen,
        expected,
        "update_head's answer does not match the stored head"
    );
    let head = original.parts().map_err(|e| Failure(e.to_string()))?;
    let missing_updated = manager
        .update_head("never-stored", head, fixtures::policy_for(&original))
        .await
        .context("update_head of a missing key")?;
    ensure!(
        !missing_updated,
        "update_head of a missing key said it updated"
    );
    ensure!(
        fetch(&*manager, "never-stored").await?.is_none(),
        "update_head created an entry"
    );
    Ok(())
}

/// A second put on a key replaces the first whole: head and body.
pub async fn second_put_replaces_the_first_whole<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    store(&*manager, "k", fixtures::generated(0, 1, 100_000)).await?;
    store(&*manager, "k", fixtures::generated(0, 2, 10)).await?;
    let back = fetch(&*manager, "k").await?.ok_or_else(|| missing("k"))?;
    let generation = fixtures::verify_generated(0, &back).map_err(Failure)?;
    ensure_eq!(generation, 2, "the second put did not replace the first");
    Ok(())
}

/// After `delete`, the key reads as missing, also through a new manager.
pub async fn delete_removes_the_entry<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    store(&*manager, "k", fixtures::response("doomed")).await?;
    manager.delete("k").await.context("delete")?;
    ensure!(
        fetch(&*manager, "k").await?.is_none(),
        "entry survived its delete"
    );
    let reopened = h.reopen().await;
    ensure!(
        fetch(&reopened, "k").await?.is_none(),
        "entry came back after a restart"
    );
    Ok(())
}

/// Two keys holding byte-identical bodies: deleting one leaves the other whole.
pub async fn keys_are_isolated_when_bodies_are_shared<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let shared = fixtures::response(vec![42u8; 200_000]);
    store(&*manager, "a", shared.clone()).await?;
    store(&*manager, "b", shared.clone()).await?;
    manager.delete("a").await.context("delete of a")?;
    let back = fetch(&*manager, "b").await?;
    ensure!(
        back.is_some(),
        "deleting a removed b, which held the same body"
    );
    ensure!(
        back.map(|r| r.body) == Some(shared.body.clone()),
        "b's body changed"
    );
    let reopened = h.reopen().await;
    let back = fetch(&reopened, "b").await?.map(|r| r.body);
    ensure!(back == Some(shared.body), "b's body lost after a restart");
    Ok(())
}

/// Two keys holding byte-identical bodies: overwriting one leaves the other whole.
pub async fn overwriting_a_key_that_shares_a_body_leaves_the_other_intact<H: Harness>(
    h: &H,
) -> CheckResult {
    let manager = h.manager();
    let shared = fixtures::response(vec![7u8; 100_000]);
    store(&*manager, "a", shared.clone()).await?;
    store(&*manager, "b", shared.clone()).await?;
    store(&*manager, "a", fixtures::response("replacement")).await?;
    let a = fetch(&*manager, "a").await?.map(|r| r.body);
    ensure!(
        a.as_deref() == Some(b"replacement".as_slice()),
        "a was not replaced"
    );
    let b = fetch(&*manager, "b").await?.map(|r| r.body);
    ensure!(b == Some(shared.body), "overwriting a changed b");
    Ok(())
}

/// Writing and deleting many keys leaves every other key as it was.
pub async fn many_keys_do_not_interfere<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    const KEYS: u32 = 200;
    for i in 0..KEYS {
        store(
            &*manager,
            &format!("key-{i}"),
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
        let back = fetch(&*manager, &format!("key-{i}")).await?;
        match (i % 3 == 0, back) {
            (true, None) => {}
            (true, Some(_)) => return Err(Failure(format!("key-{i} survived its delete"))),
            (false, None) => return Err(Failure(format!("key-{i} vanished"))),
            (false, Some(back)) => {
                fixtures::verify_generated(i, &back)
                    .map_err(|e| Failure(format!("key-{i}: {e}")))?;
            }
        }
    }
    Ok(())
}
