//! The guide's CI step: `mdbook build` of `docs/`, failing on what mdBook
//! only logs (an `{{#include}}` it cannot read is an `ERROR` line, yet the
//! build exits 0) and on links mdBook does not check at all: every
//! relative link in the built pages must reach a file, and every `#anchor`
//! an element with that id. First, the completeness check
//! ([`crate::completeness`]): every name the code declares for users is on
//! its page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::{TaskResult, workspace_root};

/// `cargo xtask guide`: the CI step on its own, into `target/guide`
/// (mdBook installed first if it is missing).
pub fn run() -> TaskResult {
    let mdbook = crate::tools::mdbook()?;
    println!("mdbook: {}", mdbook.describe());
    build_and_check(&mdbook.path, &crate::target_dir().join("guide"))
}

/// Builds the guide with `mdbook` into `dest` and checks it.
pub fn build_and_check(mdbook: &Path, dest: &Path) -> TaskResult {
    crate::completeness::run()?;
    println!("\n== guide: mdbook build docs, links and includes checked");
    let _ = std::fs::remove_dir_all(dest);
    let output = Command::new(mdbook)
        .arg("build")
        .arg(workspace_root().join("docs"))
        .arg("--dest-dir")
        .arg(dest)
        .output()
        .map_err(|e| format!("could not run {}: {e}", mdbook.display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    print!("{log}");
    if !output.status.success() {
        return Err(format!("mdbook build failed ({})", output.status));
    }
    let complaints: Vec<&str> = log.lines().filter(|line| is_complaint(line)).collect();
    if !complaints.is_empty() {
        return Err(format!(
            "mdbook build docs logged {} error(s) or warning(s) (above), such as: {}",
            complaints.len(),
            complaints[0].trim()
        ));
    }
    let broken = broken_links(dest)?;
    if broken.is_empty() {
        println!("every link and anchor in {} resolves", dest.display());
        Ok(())
    } else {
        for link in &broken {
            eprintln!("broken link: {link}");
        }
        Err(format!(
            "the guide has {} broken link(s) (above); the page is the built one, its source is docs/src/<same name>.md",
            broken.len()
        ))
    }
}

/// mdBook's log lines for what it could not do: `ERROR ...`, `WARN ...`
/// (with or without the timestamp and module older versions print).
fn is_complaint(line: &str) -> bool {
    line.split_whitespace()
        .take(3)
        .any(|word| matches!(word.trim_matches(['[', ']']), "ERROR" | "WARN"))
}

/// Every relative link of every built page that reaches no file, or an
/// anchor its page does not have, as `page: href`.
fn broken_links(dest: &Path) -> Result<Vec<String>, String> {
    let mut pages = BTreeMap::new();
    collect_html(dest, &mut pages)?;
    let ids: BTreeMap<PathBuf, BTreeSet<String>> = pages
        .iter()
        .map(|(path, html)| {
            (
                path.clone(),
                attribute_values(html, "id").into_iter().collect(),
            )
        })
        .collect();
    let mut broken = Vec::new();
    for (page, html) in &pages {
        // The print page repeats every chapter; each is checked on its own.
        if page.file_name().is_some_and(|name| name == "print.html") {
            continue;
        }
        for href in attribute_values(html, "href") {
            if is_external(&href) {
                continue;
            }
            let (path, fragment) = match href.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (href.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or_default();
            let target = if path.is_empty() {
                page.clone()
            } else {
                normalise(&page.parent().unwrap_or(dest).join(path))
            };
            let target = if target.is_dir() {
                target.join("index.html")
            } else {
                target
            };
            let reachable = match ids.get(&target) {
                Some(ids) => fragment.is_none_or(|f| f.is_empty() || ids.contains(f)),
                None => target.is_file() && fragment.is_none(),
            };
            if !reachable {
                let shown = page.strip_prefix(dest).unwrap_or(page);
                broken.push(format!("{}: {href}", shown.display()));
            }
        }
    }
    Ok(broken)
}

fn collect_html(dir: &Path, pages: &mut BTreeMap<PathBuf, String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_html(&path, pages)?;
        } else if path.extension().is_some_and(|ext| ext == "html") {
            let html = std::fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            pages.insert(normalise(&path), html);
        }
    }
    Ok(())
}

/// Links that leave the book (another scheme, another host), or that
/// depend on where it is served (`/`, which the 404 page uses).
fn is_external(href: &str) -> bool {
    href.starts_with('/')
        || href
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.contains('/') && !scheme.contains('#'))
}

/// `a/./b/../c` as `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The values of every `name="..."` attribute in `html`, entities for `&`
/// decoded. mdBook writes double-quoted attributes.
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            let end = rest.find('"')?;
            Some(rest[..end].replace("&amp;", "&"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_missing_pages_and_anchors_and_lets_good_links_through() {
        let dir = std::env::temp_dir().join(format!("xtask-guide-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("style.css"), "").unwrap();
        std::fs::write(
            dir.join("a.html"),
            r##"<link href="style.css"><h2 id="top">x</h2>
            <a href="#top">ok</a> <a href="#nope">bad anchor</a>
            <a href="sub/b.html#there">ok</a> <a href="sub/b.html#gone">bad anchor</a>
            <a href="missing.html">bad page</a> <a href="https://example.com/x">out</a>
            <a href="mailto:a@b">out</a>"##,
        )
        .unwrap();
        std::fs::write(
            dir.join("sub").join("b.html"),
            r#"<p id="there"><a href="../a.html">ok</a> <a href="../a.html?x=1&amp;y=2#top">ok</a></p>"#,
        )
        .unwrap();
        let broken = broken_links(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            broken,
            [
                "a.html: #nope",
                "a.html: sub/b.html#gone",
                "a.html: missing.html"
            ]
        );
    }

    #[test]
    fn reads_mdbook_errors_and_warnings_in_both_log_formats() {
        assert!(is_complaint(
            "ERROR Error updating \"{{#include ../missing.rs}}\", Could not read file"
        ));
        assert!(is_complaint(" WARN Caused By: No such file or directory"));
        assert!(is_complaint(
            "2026-03-26 18:04:31 [WARN] (mdbook::renderer): Error writing"
        ));
        assert!(!is_complaint(" INFO Book building has started"));
        assert!(!is_complaint(" INFO HTML book written to `ERROR`"));
    }
}
