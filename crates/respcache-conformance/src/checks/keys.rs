use crate::checks::{fetch, round_trip::missing, store};
use crate::failure::Context;
use crate::{CheckResult, Failure, Harness, ensure, ensure_eq, fixtures};
use respcache_core::CacheManager;

/// Keys that look like paths, hold NUL or emoji, or are empty: each is its
/// own entry, and none leads the backend to write outside its root.
pub const AWKWARD_KEYS: &[&str] = &[
    "",
    "/",
    ".",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b/c",
    "a\\b\\c",
    "nul\0inside",
    "\0",
    "🦀 emoji ☃ key",
    "CON",
    "key with spaces and\nnewline",
    "GET:https://example.com/path?query=1&x=%2F",
];

/// Awkward keys are distinct entries and stay inside the cache root.
pub async fn keys_with_path_syntax_stay_inside_the_root<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    for (i, key) in AWKWARD_KEYS.iter().enumerate() {
        store(&*manager, key, fixtures::generated(i as u32, 1, 64)).await?;
    }
    for (i, key) in AWKWARD_KEYS.iter().enumerate() {
        let back = fetch(&*manager, key).await?.ok_or_else(|| missing(key))?;
        fixtures::verify_generated(i as u32, &back)
            .map_err(|e| Failure(format!("key {key:?}: {e}")))?;
    }
    nothing_outside_root(h)?;
    for key in AWKWARD_KEYS {
        manager.delete(key).await.context("delete")?;
        ensure!(
            fetch(&*manager, key).await?.is_none(),
            "{key:?} survived its delete"
        );
    }
    Ok(())
}

/// A key of 64 KiB is stored, read and deleted like any other.
pub async fn keys_of_64_kib_work<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let key = "k".repeat(64 * 1024);
    store(&*manager, &key, fixtures::generated(1, 1, 100)).await?;
    let back = fetch(&*manager, &key)
        .await?
        .ok_or_else(|| missing("64 KiB key"))?;
    fixtures::verify_generated(1, &back).map_err(Failure)?;
    manager.delete(&key).await.context("delete")?;
    ensure!(
        fetch(&*manager, &key).await?.is_none(),
        "64 KiB key survived its delete"
    );
    nothing_outside_root(h)
}

/// Keys that differ only in letter case are different entries.
pub async fn keys_differing_only_in_case_are_distinct<H: Harness>(h: &H) -> CheckResult {
    distinct_keys(
        h,
        &[
            "GET:https://example.com/Page",
            "GET:https://example.com/page",
            "get:HTTPS://EXAMPLE.COM/PAGE",
        ],
    )
    .await
}

/// Two 10 KiB keys that differ only in their last byte are different entries
/// (a backend that hashes or cuts long keys must still tell them apart).
pub async fn long_keys_differing_only_in_the_last_byte_are_distinct<H: Harness>(
    h: &H,
) -> CheckResult {
    let stem = "x".repeat(10 * 1024 - 1);
    distinct_keys(h, &[&format!("{stem}a"), &format!("{stem}b")]).await
}

async fn distinct_keys<H: Harness>(h: &H, keys: &[&str]) -> CheckResult {
    let manager = h.manager();
    for (i, key) in keys.iter().enumerate() {
        store(&*manager, key, fixtures::generated(i as u32, 7, 32)).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let back = fetch(&*manager, key).await?.ok_or_else(|| missing(key))?;
        fixtures::verify_generated(i as u32, &back).map_err(|e| {
            Failure(format!(
                "key {} shares an entry: {e}",
                respcache_core::abbreviate_key(key)
            ))
        })?;
    }
    manager.delete(keys[0]).await.context("delete")?;
    for (i, key) in keys.iter().enumerate().skip(1) {
        let back = fetch(&*manager, key).await?;
        ensure!(
            back.is_some(),
            "deleting {:?} removed another key's entry",
            keys[0]
        );
        if let Some(back) = back {
            fixtures::verify_generated(i as u32, &back).map_err(Failure)?;
        }
    }
    Ok(())
}

/// Nothing exists beside the root in the root's parent directory.
fn nothing_outside_root<H: Harness>(h: &H) -> CheckResult {
    let Some(root) = h.root() else { return Ok(()) };
    let parent = root
        .parent()
        .ok_or_else(|| Failure(format!("root {} has no parent", root.display())))?;
    let mut outside = Vec::new();
    for entry in std::fs::read_dir(parent).context("listing the root's parent")? {
        let path = entry.context("listing the root's parent")?.path();
        if path != root {
            outside.push(path);
        }
    }
    ensure_eq!(
        outside,
        Vec::<std::path::PathBuf>::new(),
        "files written outside the root {}",
        root.display()
    );
    Ok(())
}
