//! The guide's completeness check, part of `cargo xtask ci` and `cargo
//! xtask guide`: every name the code declares for users appears on its
//! page, read from the code itself so that a new check, builder option,
//! flag or config key cannot land undocumented.
//!
//! - every check in the conformance suite's `catalogue!` in
//!   `docs/src/conformance.md`;
//! - every `pub fn` of each backend's `Builder` on that backend's page;
//! - every `respcache-proxy` flag (the `long` fields of `Args`) and every
//!   config-file key in `docs/src/proxy.md`.
//!
//! A page is read with its `{{#include}}` lines expanded, as mdBook shows
//! it, so a key documented in an included example file counts.

use std::path::Path;

use crate::{TaskResult, workspace_root};

/// A source of names, the page that must show them, and how a name is
/// looked for there.
struct Rule {
    what: &'static str,
    source: &'static str,
    page: &'static str,
    extract: fn(&str) -> Vec<String>,
    shown: fn(&str, &str) -> bool,
}

const RULES: &[Rule] = &[
    Rule {
        what: "conformance check",
        source: "crates/respcache-conformance/src/checks/mod.rs",
        page: "docs/src/conformance.md",
        extract: catalogue_checks,
        shown: shown_as_code,
    },
    Rule {
        what: "fs builder option",
        source: "crates/respcache-fs/src/lib.rs",
        page: "docs/src/fs-backend.md",
        extract: builder_options,
        shown: shown_as_code,
    },
    Rule {
        what: "cacache builder option",
        source: "crates/respcache-cacache/src/lib.rs",
        page: "docs/src/cacache-backend.md",
        extract: builder_options,
        shown: shown_as_code,
    },
    Rule {
        what: "memory builder option",
        source: "crates/respcache-memory/src/lib.rs",
        page: "docs/src/memory-and-tiered.md",
        extract: builder_options,
        shown: shown_as_code,
    },
    Rule {
        what: "tiered builder option",
        source: "crates/respcache-tiered/src/lib.rs",
        page: "docs/src/memory-and-tiered.md",
        extract: builder_options,
        shown: shown_as_code,
    },
    Rule {
        what: "redis builder option",
        source: "crates/respcache-redis/src/lib.rs",
        page: "docs/src/redis.md",
        extract: builder_options,
        shown: shown_as_code,
    },
    Rule {
        what: "proxy flag",
        source: "crates/respcache-proxy/src/args.rs",
        page: "docs/src/proxy.md",
        extract: proxy_flags,
        shown: shown_as_code,
    },
    Rule {
        what: "proxy config key",
        source: "crates/respcache-proxy/src/config.rs",
        page: "docs/src/proxy.md",
        extract: config_keys,
        shown: shown_as_key,
    },
];

/// Runs every rule on the workspace's files; fails with each name missing
/// from its page.
pub fn run() -> TaskResult {
    println!("\n== guide completeness: checks, builder options, proxy flags and config keys");
    let root = workspace_root();
    let mut missing = Vec::new();
    let mut counted = 0;
    for rule in RULES {
        let source = read(&root.join(rule.source))?;
        let page_path = root.join(rule.page);
        let page = expand_includes(&read(&page_path)?, page_path.parent().unwrap_or(&root))?;
        let names = (rule.extract)(&source);
        if names.is_empty() {
            return Err(format!(
                "found no {} in {}: has its shape changed? (xtask/src/completeness.rs reads it)",
                rule.what, rule.source
            ));
        }
        counted += names.len();
        missing.extend(
            names
                .iter()
                .filter(|name| !(rule.shown)(&page, name))
                .map(|name| {
                    format!(
                        "{} `{name}` ({}) is not in {}",
                        rule.what, rule.source, rule.page
                    )
                }),
        );
    }
    missing.extend(unknown_anchors(&root.join("docs").join("src"))?);
    if missing.is_empty() {
        println!("all {counted} names appear on their pages, and every included anchor exists");
        Ok(())
    } else {
        for line in &missing {
            eprintln!("undocumented: {line}");
        }
        Err(format!(
            "{} name(s) the code declares are missing from the guide (above)",
            missing.len()
        ))
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Every `{{#include path:anchor}}` of the pages in `dir` whose file has
/// no such anchor, or an empty one: mdBook includes nothing for it and
/// says nothing.
fn unknown_anchors(dir: &Path) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut pages: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    pages.sort();
    for page in pages {
        let text = read(&page)?;
        for (file, anchor) in anchored_includes(&text) {
            // A missing file is mdBook's own error, which the build step reports.
            let Ok(included) = std::fs::read_to_string(dir.join(&file)) else {
                continue;
            };
            if anchored(&included, &anchor).trim().is_empty() {
                found.push(format!(
                    "{}: `{{{{#include {file}:{anchor}}}}}` names no anchor (or an empty one) in that file",
                    page.display()
                ));
            }
        }
    }
    Ok(found)
}

/// The `(file, anchor)` of each `{{#include file:anchor}}` in `text`
/// whose anchor is a name (not a line range).
fn anchored_includes(text: &str) -> Vec<(String, String)> {
    text.match_indices("{{#include ")
        .filter_map(|(at, needle)| {
            let rest = &text[at + needle.len()..];
            let spec = rest[..rest.find("}}")?].trim();
            let (file, anchor) = spec.split_once(':')?;
            let named = anchor.chars().next()?.is_ascii_alphabetic();
            named.then(|| (file.to_owned(), anchor.to_owned()))
        })
        .collect()
}

/// `text` with each `{{#include path}}` and `{{#include path:anchor}}`
/// replaced by what mdBook would put there (a line range or any other
/// form: the whole file, which can only find more names, never fewer).
fn expand_includes(text: &str, dir: &Path) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{#include ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{#include ".len()..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let spec = after[..end].trim();
        let (file, anchor) = match spec.split_once(':') {
            Some((file, anchor)) => (file, Some(anchor)),
            None => (spec, None),
        };
        let included = read(&dir.join(file))?;
        match anchor.filter(|a| !a.is_empty() && !a.chars().next().unwrap().is_ascii_digit()) {
            Some(anchor) => out.push_str(&anchored(&included, anchor)),
            None => out.push_str(&included),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The lines between `ANCHOR: name` and `ANCHOR_END: name`.
fn anchored(text: &str, anchor: &str) -> String {
    let start = format!("ANCHOR: {anchor}");
    let end = format!("ANCHOR_END: {anchor}");
    text.lines()
        .skip_while(|line| !line.trim_end().ends_with(&start))
        .skip(1)
        .take_while(|line| !line.trim_end().ends_with(&end))
        .fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
}

/// The names in `catalogue! { ... }`: each `name => [kinds]`.
fn catalogue_checks(source: &str) -> Vec<String> {
    let Some(at) = source.find("\ncatalogue! {") else {
        return Vec::new();
    };
    source[at..]
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with('}'))
        .filter_map(|line| line.trim().split_once("=>"))
        .map(|(name, _)| name.trim().to_owned())
        .collect()
}

/// The `pub fn` names of `impl Builder` (generic or not), `build` aside.
fn builder_options(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in source.lines() {
        if line.starts_with("impl") && (line.contains(" Builder {") || line.contains(" Builder<")) {
            inside = true;
        } else if inside && line.starts_with('}') {
            inside = false;
        } else if inside {
            let trimmed = line.trim_start();
            let Some(rest) = trimmed
                .strip_prefix("pub fn ")
                .or_else(|| trimmed.strip_prefix("pub async fn "))
            else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name != "build" {
                names.push(name);
            }
        }
    }
    names
}

/// The fields of `struct name { ... }` in `source`, each with the
/// attribute text above it.
fn struct_fields(source: &str, name: &str) -> Vec<(String, String)> {
    let header = format!("struct {name} {{");
    let Some(at) = source.lines().position(|line| line.contains(&header)) else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    let mut attributes = String::new();
    for line in source.lines().skip(at + 1) {
        if line.starts_with('}') {
            break;
        }
        let trimmed = line.trim();
        if trimmed.starts_with("//") {
            continue;
        }
        let field = trimmed.strip_prefix("pub ").unwrap_or(trimmed);
        let ident: String = field
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !ident.is_empty() && field[ident.len()..].starts_with(':') {
            fields.push((ident, std::mem::take(&mut attributes)));
        } else {
            attributes.push_str(trimmed);
            attributes.push('\n');
        }
    }
    fields
}

/// `--flag` for each field of `Args` that clap gives a long name: the
/// field's name with `-` for `_`, or the `long = "..."` it states.
fn proxy_flags(source: &str) -> Vec<String> {
    struct_fields(source, "Args")
        .into_iter()
        .filter_map(|(field, attributes)| {
            if let Some(at) = attributes.find("long = \"") {
                let rest = &attributes[at + "long = \"".len()..];
                return rest.split('"').next().map(|long| format!("--{long}"));
            }
            let has_long = attributes
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|word| word == "long");
            has_long.then(|| format!("--{}", field.replace('_', "-")))
        })
        .collect()
}

/// The keys of the config file: the fields of `File` and of the structs
/// it holds, as serde names them (no field there is renamed).
fn config_keys(source: &str) -> Vec<String> {
    [
        "File",
        "CacheFile",
        "AccessLogFile",
        "VhostFile",
        "RouteFile",
    ]
    .iter()
    .flat_map(|name| struct_fields(source, name))
    .map(|(field, _)| field)
    .collect()
}

/// `name` in code on the page: `` `name` ``, `` `name(...)` ``,
/// `` `.name(...)` ``, or inside a code block as `name(` or `.name(`.
fn shown_as_code(page: &str, name: &str) -> bool {
    [
        format!("`{name}`"),
        format!("`{name}("),
        format!(".{name}("),
        format!("`{name}="),
        format!("`{name} "),
        format!("`{name},"),
    ]
    .iter()
    .any(|form| page.contains(form.as_str()))
}

/// A config key: in code (`` `name` ``), as a table (`[name]`,
/// `[[name]]`, `[[a.name]]`) or set in a TOML example, commented out or
/// not (`name = ...`, `# name = ...`).
fn shown_as_key(page: &str, name: &str) -> bool {
    shown_as_code(page, name)
        || [
            format!("[{name}]"),
            format!("[[{name}]]"),
            format!(".{name}]]"),
        ]
        .iter()
        .any(|form| page.contains(form.as_str()))
        || page.lines().any(|line| {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_checks_options_flags_and_keys_from_source_shapes() {
        let catalogue = "macro_rules! catalogue {}\n\ncatalogue! {\n    Buffered:\n        a_check => [MissingKey],\n        b_check => [RoundTrip, PutResult];\n    Streaming:\n        c_check => [Streaming];\n}\nfn after() { x => [y] }\n";
        assert_eq!(
            catalogue_checks(catalogue),
            ["a_check", "b_check", "c_check"]
        );

        let builder = "impl Builder {\n    /// doc\n    pub fn max_size(mut self, b: u64) -> Self {\n        self\n    }\n    fn private(self) {}\n    pub fn build(self) -> M {}\n}\nimpl<N, F> Builder<N, F> {\n    pub fn near_lifetime(self) -> Self {}\n}\nimpl Other {\n    pub fn not_an_option(self) {}\n}\n";
        assert_eq!(builder_options(builder), ["max_size", "near_lifetime"]);

        let args = "pub struct Args {\n    /// A file.\n    #[arg(long, value_name = \"FILE\")]\n    pub config: Option<PathBuf>,\n    #[arg(\n        long,\n        env = \"X\"\n    )]\n    pub redis_url: Option<String>,\n    #[arg(long = \"renamed\")]\n    pub other: bool,\n    /// Positional.\n    pub target: String,\n}\n";
        assert_eq!(proxy_flags(args), ["--config", "--redis-url", "--renamed"]);

        let config = "pub struct File {\n    #[serde(default)]\n    listen: Option<u16>,\n    cache: CacheFile,\n}\nstruct CacheFile {\n    backend: Option<B>,\n}\n";
        assert_eq!(config_keys(config), ["listen", "cache", "backend"]);
    }

    #[test]
    fn a_name_counts_only_where_the_page_shows_it_as_code_or_a_key() {
        let page = "| `max_size(bytes)` | x |\n`--listen` and `.prefix(\"a\")`\n# purge_token = \"...\"\n[cache]\n[[vhost.route]]\nthe timeout is long";
        assert!(shown_as_code(page, "max_size"));
        assert!(shown_as_code(page, "--listen"));
        assert!(shown_as_code(page, "prefix"));
        assert!(!shown_as_code(page, "timeout"), "prose is not a mention");
        assert!(
            !shown_as_code(page, "--list"),
            "a prefix of a name is not the name"
        );
        assert!(shown_as_key(page, "purge_token"));
        assert!(shown_as_key(page, "cache"));
        assert!(shown_as_key(page, "route"));
        assert!(!shown_as_key(page, "timeout"));
    }

    #[test]
    fn the_workspace_guide_names_everything_the_code_declares() {
        run().unwrap();
    }

    #[test]
    fn includes_are_expanded_to_their_anchor() {
        let dir = std::env::temp_dir().join(format!("xtask-completeness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ex.toml"),
            "outside = 1\n# ANCHOR: top\ninside = 2\n# ANCHOR_END: top\n",
        )
        .unwrap();
        let page = "a\n{{#include ex.toml:top}}\nb {{#include ex.toml}}";
        let expanded = expand_includes(page, &dir).unwrap();
        let missing = expand_includes("{{#include nope.toml}}", &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            expanded,
            "a\ninside = 2\n\nb outside = 1\n# ANCHOR: top\ninside = 2\n# ANCHOR_END: top\n"
        );
        assert!(missing.is_err());
    }

    #[test]
    fn an_include_of_an_anchor_the_file_lacks_is_reported() {
        let dir = std::env::temp_dir().join(format!("xtask-anchors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ex.rs"),
            "// ANCHOR: here
fn x() {}
// ANCHOR_END: here
",
        )
        .unwrap();
        std::fs::write(
            dir.join("page.md"),
            "{{#include ex.rs:here}}
{{#include ex.rs:gone}}
{{#include ex.rs:2:3}}
",
        )
        .unwrap();
        let found = unknown_anchors(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("ex.rs:gone"), "{found:?}");
    }
}
