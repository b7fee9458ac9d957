//! Listing keys by prefix and by tag: what purges and cache tools walk.

use std::collections::BTreeSet;

use respcache_core::{CacheManager, StoreHints};

use crate::checks::store;
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, ensure_eq, fixtures};

/// The keys a listing returned, as a set; a key listed twice fails.
fn as_set(kind: FailureKind, listed: Vec<String>, what: &str) -> Result<BTreeSet<String>, Failure> {
    let count = listed.len();
    let set: BTreeSet<String> = listed.into_iter().collect();
    if set.len() != count {
        return Err(Failure::new(
            kind,
            format!(
                "{what} listed a key more than once: {count} keys, {} distinct",
                set.len()
            ),
        ));
    }
    Ok(set)
}

fn set_of(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|key| (*key).to_owned()).collect()
}

/// `keys(prefix)` lists exactly the stored keys that start with the
/// prefix (every one for `""`): keys with a newline, path syntax or 64
/// KiB of text too, and never a deleted key. A backend that cannot list
/// (`Ok(None)`, the trait's default) makes the check `n/a`.
pub async fn keys_lists_every_stored_key_by_prefix<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let long = format!("GET:http://a/{}", "x".repeat(64 * 1024));
    let stored = [
        "GET:http://a/1",
        "GET:http://a/2\nvary:1:ab",
        "GET:http://a/../3",
        long.as_str(),
        "GET:http://b/1",
        "GET:http://ab/1",
    ];
    for key in stored {
        store(&*manager, key, fixtures::response("listed")).await?;
    }
    let Some(all) = manager.keys("").await.context("keys(\"\")")? else {
        return Err(Failure::not_applicable(
            "the backend does not list its keys",
        ));
    };
    let all = as_set(FailureKind::Listing, all, "keys(\"\")")?;
    ensure_eq!(Listing, all, set_of(&stored), "keys(\"\") after six puts");

    let under_a = manager
        .keys("GET:http://a/")
        .await
        .context("keys(prefix)")?
        .unwrap_or_default();
    let under_a = as_set(FailureKind::Listing, under_a, "keys(prefix)")?;
    ensure_eq!(
        Listing,
        under_a,
        set_of(&stored[..4]),
        "keys(\"GET:http://a/\")"
    );

    manager.delete("GET:http://a/1").await.context("delete")?;
    manager.delete(&long).await.context("delete")?;
    let after = manager
        .keys("GET:http://a/")
        .await
        .context("keys after delete")?
        .unwrap_or_default();
    let after = as_set(FailureKind::Listing, after, "keys after delete")?;
    ensure_eq!(
        Listing,
        after,
        set_of(&stored[1..3]),
        "keys(\"GET:http://a/\") after two deletes"
    );
    Ok(())
}

/// `tagged(tag)` lists exactly the keys whose entries carry the tag:
/// those stored (or whose head was last updated) with it in
/// [`StoreHints::tags`], including tags with path syntax or spaces; not
/// an entry replaced without the tag, nor a deleted one. A backend that
/// keeps no tag index (`Ok(None)`, the trait's default) makes the check
/// `n/a`.
pub async fn tagged_lists_the_entries_that_carry_the_tag<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let weird = "../../etc/tag with spaces/é";
    let put = |key: &'static str, tags: &[&str]| {
        let manager = manager.clone();
        let tags: Vec<String> = tags.iter().map(|tag| (*tag).to_owned()).collect();
        async move {
            let response = fixtures::response("tagged");
            let policy = fixtures::policy_for(&response);
            let hints = StoreHints::default().with_tags(tags);
            manager
                .put_with(key.to_owned(), response, policy, hints)
                .await
                .context(&format!("put_with of {key}"))
        }
    };
    put("k1", &["red", weird]).await?;
    put("k2", &["red"]).await?;
    put("k3", &[]).await?;
    store(&*manager, "k4", fixtures::response("untagged")).await?;
    let tagged = |tag: &'static str| {
        let manager = manager.clone();
        async move {
            let listed = manager.tagged(tag).await.context("tagged")?;
            match listed {
                Some(listed) => as_set(FailureKind::Tags, listed, "tagged").map(Some),
                None => Ok(None),
            }
        }
    };
    let Some(red) = tagged("red").await? else {
        return Err(Failure::not_applicable("the backend keeps no tag index"));
    };
    ensure_eq!(Tags, red, set_of(&["k1", "k2"]), "tagged(\"red\")");
    let by_weird = manager
        .tagged(weird)
        .await
        .context("tagged")?
        .unwrap_or_default();
    ensure_eq!(Tags, by_weird, vec!["k1".to_owned()], "tagged({weird:?})");
    ensure_eq!(
        Tags,
        tagged("blue").await?.unwrap_or_default(),
        BTreeSet::new(),
        "tagged(\"blue\"), a tag never stored"
    );

    put("k1", &["blue"]).await?;
    manager.delete("k2").await.context("delete")?;
    ensure_eq!(
        Tags,
        tagged("red").await?.unwrap_or_default(),
        BTreeSet::new(),
        "tagged(\"red\") after k1 was replaced without it and k2 deleted"
    );
    ensure_eq!(
        Tags,
        tagged("blue").await?.unwrap_or_default(),
        set_of(&["k1"]),
        "tagged(\"blue\") after k1 was replaced with it"
    );
    // The index forgets nothing it still needs after it dropped what it
    // no longer does.
    put("k2", &["red"]).await?;
    ensure_eq!(
        Tags,
        tagged("red").await?.unwrap_or_default(),
        set_of(&["k2"]),
        "tagged(\"red\") after k2 was stored again with it"
    );
    Ok(())
}
