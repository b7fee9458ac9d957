//! `cargo xtask`: the project's repeated tasks, in Rust, so they run the
//! same on every machine.
//!
//! - `cargo xtask ci`: everything CI checks (the README's test command).
//! - `cargo xtask conformance`: the conformance suite on every backend, as a table.
//! - `cargo xtask conformance --prove`: which broken manager proves each check.
//! - `cargo xtask demo`: real responses from a local origin through every backend.
//! - `cargo xtask guide`: the guide built with mdBook, its links and includes checked,
//!   and every check, builder option, proxy flag and config key found on its page.
//! - `cargo xtask bench [--quick]`: the benchmarks, and `target/bench/report.md`
//!   (backends, Redis on one server and a cluster, reqwest clients).
//! - `cargo xtask bench reqwest [--quick]`: the reqwest rows alone.
//! - `cargo xtask bench proxy [--quick] [...]`: respcache-proxy beside nginx and
//!   Varnish under wrk, added to the report with a chart.
//! - `cargo xtask bench engine [--quick]`: the engine's hit path beside
//!   `http-cache`'s tower middleware, added to the report.
//! - `cargo xtask cache-tests [--no-cache | --backend fs|cacache] [--proxy-arg FLAG]... [--id TEST_ID]`:
//!   the HTTP caching tests of cache-tests.fyi against `respcache-proxy`, scored
//!   beside the reverse proxies and CDNs the suite ships results for.

mod bench;
mod cache_tests;
mod ci;
mod completeness;
mod conformance;
mod demo;
mod guide;
mod tools;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <ci | conformance [--prove] | demo | guide | bench [--quick] | bench proxy [--quick] [--duration SECS] [--urls-duration SECS] [--urls N] [--only SUBJECTS] | bench engine [--quick] | bench reqwest [--quick] | cache-tests [--no-cache | --backend fs|cacache] [--proxy-arg FLAG]... [--id TEST_ID]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("conformance") => conformance::run(&args[1..]),
        Some("demo") => demo::run(),
        Some("guide") => guide::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("cache-tests") => cache_tests::run(&args[1..]),
        _ => Err(USAGE.into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Whether this xtask was built optimised (`cargo xtask` builds it with
/// `--release`): the demo shows timings only then, and the proxy it starts
/// is built the same way.
pub const OPTIMISED: bool = !cfg!(debug_assertions);

/// What a task failed with: a message for the person running it.
pub type TaskResult = Result<(), String>;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> std::path::PathBuf {
    // `cargo run` sets it for the running binary too; the compile-time
    // value would point at wherever the binary was first built.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest
        .parent()
        .map_or(manifest.clone(), std::path::Path::to_path_buf)
}

/// Cargo's target directory for this workspace, as cargo itself reports it
/// (so `CARGO_TARGET_DIR`, relative or not, and `build.target-dir` in a
/// config file are honoured); `target/` under the root if cargo cannot
/// tell.
pub fn target_dir() -> std::path::PathBuf {
    let reported = cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| serde_json::from_slice::<serde_json::Value>(&output.stdout).ok())
        .and_then(|metadata| metadata["target_directory"].as_str().map(Into::into));
    reported.unwrap_or_else(|| workspace_root().join("target"))
}

/// A `cargo` command run from the workspace root.
pub fn cargo(args: &[&str]) -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(args).current_dir(workspace_root());
    command
}

/// Runs a command to completion, failing with its description if it fails.
pub fn run_step(title: &str, command: &mut std::process::Command) -> TaskResult {
    println!("\n== {title}");
    let status = command
        .status()
        .map_err(|e| format!("{title}: could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title}: failed ({status})"))
    }
}

/// Builds the `respcache-proxy` binary (optimised when this xtask is, see
/// [`OPTIMISED`]) and returns its path
/// as cargo reports it, so that wherever the target directory is
/// (`CARGO_TARGET_DIR`, relative or not, or `build.target-dir`), the path
/// is the binary just built. The demo and cache-tests both start it.
pub fn build_proxy() -> Result<std::path::PathBuf, String> {
    let mut args = vec!["build", "-p", "respcache-proxy", "--bin", "respcache-proxy"];
    if OPTIMISED {
        args.push("--release");
    }
    let title = format!("cargo {}", args.join(" "));
    println!("\n== {title}");
    // Diagnostics still reach the terminal rendered; stdout carries one
    // JSON message per line, among them the binary's path.
    args.push("--message-format=json-render-diagnostics");
    let output = cargo(&args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("{title}: could not start: {e}"))?;
    if !output.status.success() {
        return Err(format!("{title}: failed ({})", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let binary = executable(&stdout, "respcache-proxy")
        .ok_or_else(|| format!("{title}: cargo reported no respcache-proxy executable"))?;
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{title}: cargo built {}, but it is not there",
            binary.display()
        ))
    }
}

/// The `executable` of binary target `name` in cargo's JSON messages.
fn executable(messages: &str, name: &str) -> Option<std::path::PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == name
        })
        .find_map(|message| message["executable"].as_str().map(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_binary_cargo_reports() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"respcache-proxy","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"other"},"executable":"/t/debug/other"}
not json at all
{"reason":"compiler-artifact","target":{"name":"respcache-proxy","kind":["bin"]},"executable":"/t/debug/respcache-proxy"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable(messages, "respcache-proxy"),
            Some("/t/debug/respcache-proxy".into())
        );
        assert_eq!(executable(messages, "missing"), None);
    }
}
