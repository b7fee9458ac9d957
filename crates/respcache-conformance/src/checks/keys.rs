use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use respcache_core::{CacheManager, abbreviate_key};

use crate::checks::{fetch, fetch_as, missing, store_and_verify, store_as, verify};
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, ensure, fixtures};

/// Keys that look like paths, hold NUL or emoji, or are empty: each is its
/// own entry. None is absolute and none climbs above the root's parent,
/// so a backend that joins keys onto its root writes nothing outside its
/// harness's directory with them (the escape check aims its own keys).
pub const AWKWARD_KEYS: &[&str] = &[
    "",
    ".",
    "..",
    "a/b/c",
    "a\\b\\c",
    "a/./b",
    "a//b",
    "nul\0inside",
    "\0",
    "🦀 emoji ☃ key",
    "CON",
    "key with spaces and\nnewline",
    "GET:https://example.com/path?query=1&x=%2F",
    "%2e%2e%2fencoded",
];

/// Awkward keys are distinct entries: each reads back as its own, also
/// once all are written, and deleting one leaves the others.
pub async fn keys_with_path_syntax_are_distinct_entries<H: Harness>(h: &H) -> CheckResult {
    distinct_keys(h, AWKWARD_KEYS).await
}

/// Keys aimed outside the root, by `..` segments and as absolute paths,
/// never make the backend write, change or remove anything outside it:
/// the whole sandbox is listed before and after, with canary files the
/// check owns where the keys point.
pub async fn keys_with_path_syntax_stay_inside_the_root<H: Harness>(h: &H) -> CheckResult {
    let Some(root) = h.root() else {
        return Err(Failure::not_applicable(
            "the backend keeps no files (Harness::root is None)",
        ));
    };
    let sandbox = h.sandbox().ok_or_else(|| {
        Failure::new(
            FailureKind::Harness,
            "Harness::root is set but Harness::sandbox is None",
        )
    })?;
    let depth = root
        .strip_prefix(&sandbox)
        .map(|inside| inside.components().count())
        .unwrap_or(0);
    ensure!(
        Harness,
        depth > 0,
        "the root {} is not inside the sandbox {}",
        root.display(),
        sandbox.display()
    );

    let mut keys: Vec<String> = AWKWARD_KEYS.iter().map(|k| (*k).to_owned()).collect();
    let mut canaries = Vec::new();
    let mut ancestor = root.clone();
    for up in 1..=depth {
        ancestor.pop();
        let name = format!("respcache-canary-{up}");
        canaries.push(ancestor.join(&name));
        keys.push(format!("{}{name}", "../".repeat(up)));
        keys.push(format!("{}{name}", "..\\".repeat(up)));
        keys.push(format!("./{}{name}", "../".repeat(up)));
        keys.push(format!("a/{}{name}", "../".repeat(up + 1)));
    }
    let absolute = sandbox.join("respcache-canary-absolute");
    canaries.push(absolute.clone());
    keys.push(absolute.display().to_string());
    keys.push(
        sandbox
            .join("respcache-canary-dir")
            .join("created-by-a-key")
            .display()
            .to_string(),
    );
    for (i, canary) in canaries.iter().enumerate() {
        if let Some(parent) = canary.parent() {
            std::fs::create_dir_all(parent).context("creating the canaries' directories")?;
        }
        std::fs::write(canary, format!("respcache canary {i}\n")).context("writing a canary")?;
    }
    let before = snapshot(&sandbox, &root)?;

    // Every key is tried before anything is judged, so that an escape is
    // reported as one even if the same key also made a put fail.
    let manager = h.manager();
    let mut first_problem: Option<Failure> = None;
    for (i, key) in keys.iter().enumerate() {
        let outcome = store_and_verify(
            &*manager,
            key,
            i as u32,
            fixtures::generated(i as u32, 1, 64),
        )
        .await;
        if let Err(failure) = outcome {
            first_problem.get_or_insert(failure);
        }
    }
    escaped(&before, &snapshot(&sandbox, &root)?, "writing")?;
    for key in &keys {
        if let Err(err) = manager.delete(key).await {
            first_problem.get_or_insert(Failure::new(
                FailureKind::Operation,
                format!("delete of {key:?} failed: {err}"),
            ));
        }
    }
    escaped(&before, &snapshot(&sandbox, &root)?, "deleting")?;
    match first_problem {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// What the sandbox holds outside the root: every directory (`None`) and
/// every file or link with its contents.
type Listing = BTreeMap<PathBuf, Option<Vec<u8>>>;

fn snapshot(sandbox: &Path, root: &Path) -> Result<Listing, Failure> {
    let mut listing = Listing::new();
    let mut pending = vec![sandbox.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .context(&format!("listing {} in the sandbox", dir.display()))?;
        for entry in entries {
            let entry = entry.context("listing the sandbox")?;
            let path = entry.path();
            if path == root {
                continue;
            }
            let kind = entry.file_type().context("listing the sandbox")?;
            if kind.is_dir() {
                listing.insert(path.clone(), None);
                pending.push(path);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).context("reading a link")?;
                listing.insert(path, Some(target.into_os_string().into_encoded_bytes()));
            } else {
                let contents = std::fs::read(&path).context("reading a file in the sandbox")?;
                listing.insert(path, Some(contents));
            }
        }
    }
    Ok(listing)
}

fn escaped(before: &Listing, after: &Listing, doing: &str) -> CheckResult {
    let mut changes = Vec::new();
    for (path, contents) in after {
        match before.get(path) {
            None => changes.push(format!("{} appeared", path.display())),
            Some(old) if old != contents => changes.push(format!("{} changed", path.display())),
            Some(_) => {}
        }
    }
    for path in before.keys().filter(|path| !after.contains_key(*path)) {
        changes.push(format!("{} vanished", path.display()));
    }
    ensure!(
        KeyEscape,
        changes.is_empty(),
        "{doing} keys with path syntax touched the sandbox outside the root: {}",
        changes.join("; ")
    );
    Ok(())
}

/// A key of 64 KiB is stored, read and deleted like any other.
pub async fn keys_of_64_kib_work<H: Harness>(h: &H) -> CheckResult {
    let manager = h.manager();
    let key = "k".repeat(64 * 1024);
    store_as(
        FailureKind::LongKey,
        &*manager,
        &key,
        fixtures::generated(1, 1, 100),
    )
    .await?;
    let back = fetch_as(FailureKind::LongKey, &*manager, &key)
        .await?
        .ok_or_else(|| missing(FailureKind::LongKey, "the 64 KiB key"))?;
    verify(FailureKind::LongKey, 1, &back, "the 64 KiB key")?;
    manager
        .delete(&key)
        .await
        .context_as(FailureKind::LongKey, "delete of the 64 KiB key")?;
    ensure!(
        LongKey,
        fetch(&*manager, &key).await?.is_none(),
        "64 KiB key survived its delete"
    );
    Ok(())
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

/// Each key reads back whole right after its put (a round trip); once all
/// are written each still reads as its own, and deleting each in turn
/// leaves the ones after it.
async fn distinct_keys<H: Harness>(h: &H, keys: &[&str]) -> CheckResult {
    let manager = h.manager();
    for (i, key) in keys.iter().enumerate() {
        store_and_verify(
            &*manager,
            key,
            i as u32,
            fixtures::generated(i as u32, 7, 32),
        )
        .await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let back = fetch(&*manager, key)
            .await?
            .ok_or_else(|| collision(key, "vanished once the other keys were written"))?;
        verify(
            FailureKind::KeyCollision,
            i as u32,
            &back,
            &format!("key {} once the others were written", abbreviate_key(key)),
        )?;
    }
    for (i, key) in keys.iter().enumerate() {
        manager.delete(key).await.context("delete")?;
        for (j, other) in keys.iter().enumerate().skip(i + 1) {
            let back = fetch(&*manager, other).await?.ok_or_else(|| {
                collision(
                    other,
                    &format!("vanished when {} was deleted", abbreviate_key(key)),
                )
            })?;
            verify(
                FailureKind::KeyCollision,
                j as u32,
                &back,
                &format!(
                    "key {} after deleting {}",
                    abbreviate_key(other),
                    abbreviate_key(key)
                ),
            )?;
        }
    }
    Ok(())
}

fn collision(key: &str, what: &str) -> Failure {
    Failure::new(
        FailureKind::KeyCollision,
        format!("key {} {what}", abbreviate_key(key)),
    )
}
