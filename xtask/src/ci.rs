//! `cargo xtask ci`: format, lints, tests, the outside backend, docs, the
//! guide, benches compiled, and the conformance table, after installing the
//! programs the tests need. The README's test command, and all that `.ci/run` calls.

use crate::{TaskResult, cargo, conformance, guide, run_step, tools};

/// What the core must never depend on: a user who picks one backend
/// compiles only that backend's storage, format and hash.
const FORBIDDEN_IN_CORE: &[&str] = &["cacache", "bincode", "serde_json", "sha2", "hex", "redis"];

pub fn run() -> TaskResult {
    run_step("format", &mut cargo(&["fmt", "--all", "--", "--check"]))?;
    core_dependencies_are_clean()?;
    println!("\n== programs the tests need");
    println!("redis-server: {}", tools::redis_server()?.describe());
    let mdbook = tools::mdbook()?;
    println!("mdbook: {}", mdbook.describe());
    run_step(
        "clippy",
        &mut cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run_step(
        "tests",
        &mut cargo(&["test", "--workspace", "--no-fail-fast"]),
    )?;
    run_step(
        "docs",
        cargo(&["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    outside_backend()?;
    guide::build_and_check(&mdbook.path, &crate::target_dir().join("guide"))?;
    package_published_crates()?;
    // Benchmarks are compiled so they cannot rot, never run in CI.
    run_step(
        "benches compile",
        &mut cargo(&["build", "--benches", "--workspace"]),
    )?;
    conformance::run(&[])?;
    println!("\nci: all steps passed");
    Ok(())
}

/// The backend in `examples/outside-backend`, its own workspace as a
/// crate outside the repository would be: its conformance suite, run with
/// its own lock file, in the workspace's target directory so that shared
/// dependencies build once.
fn outside_backend() -> TaskResult {
    let target = crate::target_dir();
    let target = target.to_str().ok_or("the target directory is not UTF-8")?;
    run_step(
        "outside backend: examples/outside-backend",
        &mut cargo(&[
            "test",
            "--manifest-path",
            "examples/outside-backend/Cargo.toml",
            "--locked",
            "--target-dir",
            target,
        ]),
    )
}

/// `cargo tree -p respcache-core -e normal` names none of [`FORBIDDEN_IN_CORE`].
fn core_dependencies_are_clean() -> TaskResult {
    println!("\n== core dependencies");
    let output = cargo(&[
        "tree",
        "-p",
        "respcache-core",
        "-e",
        "normal",
        "--prefix",
        "none",
    ])
    .output()
    .map_err(|e| format!("cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN_IN_CORE.contains(name))
        .collect();
    if found.is_empty() {
        println!("respcache-core depends on none of {FORBIDDEN_IN_CORE:?}");
        Ok(())
    } else {
        Err(format!("respcache-core depends on {found:?}"))
    }
}

/// `cargo package --no-verify` of every crate that would be published, so
/// that what stops a release (a sibling dependency without a version, two
/// crates that need each other published first, a README or license the
/// manifest names but the crate lacks) stops CI instead. `--allow-dirty`:
/// the check is of the manifests and files, not of git's state, so it
/// passes on a working copy with changes too.
fn package_published_crates() -> TaskResult {
    let crates = published_crates()?;
    let mut args = vec!["package", "--no-verify", "--allow-dirty"];
    for name in &crates {
        args.extend(["-p", name.as_str()]);
    }
    run_step(
        &format!("package: {}", crates.join(", ")),
        &mut cargo(&args),
    )
}

/// The workspace members whose manifests allow publishing (`publish`
/// absent, or naming a registry).
fn published_crates() -> Result<Vec<String>, String> {
    let output = cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let crates: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| {
            package["publish"]
                .as_array()
                .is_none_or(|registries| !registries.is_empty())
        })
        .filter_map(|package| package["name"].as_str().map(str::to_owned))
        .collect();
    if crates.is_empty() {
        return Err("cargo metadata lists no crate to publish".into());
    }
    Ok(crates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_crates_are_the_libraries_the_proxy_and_the_cli_only() {
        let mut crates = published_crates().unwrap();
        crates.sort();
        assert_eq!(
            crates,
            [
                "respcache-cacache",
                "respcache-cli",
                "respcache-conformance",
                "respcache-core",
                "respcache-fs",
                "respcache-http",
                "respcache-memory",
                "respcache-proxy",
                "respcache-redis",
                "respcache-reqwest",
                "respcache-tiered",
            ]
        );
    }
}
