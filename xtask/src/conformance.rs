//! `cargo xtask conformance`: runs each backend's conformance test binary
//! and prints a backend × check table.

use std::collections::BTreeMap;

use crate::{TaskResult, cargo};

/// Each backend: its column title and the crate whose `conformance` test
/// runs the suite.
const BACKENDS: &[(&str, &str)] = &[
    ("cacache", "respcache-cacache"),
    ("fs", "respcache-fs"),
    ("redis", "respcache-redis"),
];

/// The ignored helper tests that checks start as child processes.
const CHILD_TESTS: &[&str] = &["conformance_child_writer", "conformance_child_streamer"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
}

pub fn run() -> TaskResult {
    crate::ci::redis_server_is_installed()?;
    let mut checks: Vec<String> = Vec::new();
    let mut results: Vec<BTreeMap<String, Outcome>> = Vec::new();
    for (title, package) in BACKENDS {
        println!("\n== conformance: {title}");
        let output = cargo(&[
            "test",
            "--package",
            package,
            "--test",
            "conformance",
            "--no-fail-fast",
        ])
        .output()
        .map_err(|e| format!("could not run the {title} suite: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let outcomes = parse(&stdout);
        if outcomes.is_empty() {
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            return Err(format!("the {title} suite ran no check"));
        }
        for name in outcomes.keys() {
            if !checks.contains(name) {
                checks.push(name.clone());
            }
        }
        if !output.status.success() {
            // Show the failures' own messages above the table.
            print!("{stdout}");
        }
        results.push(outcomes);
    }
    checks.sort();

    let width = checks.iter().map(String::len).max().unwrap_or(5);
    print!("\n{:width$}", "check");
    for (title, _) in BACKENDS {
        print!(" | {title:^8}");
    }
    println!();
    println!("{}", "-".repeat(width + BACKENDS.len() * 11));
    let mut failures = 0;
    for check in &checks {
        print!("{check:width$}");
        for outcomes in &results {
            let cell = match outcomes.get(check) {
                Some(Outcome::Pass) => "pass",
                Some(Outcome::Fail) => {
                    failures += 1;
                    "FAIL"
                }
                None => "n/a",
            };
            print!(" | {cell:^8}");
        }
        println!();
    }
    println!(
        "\n{} checks x {} backend(s), {failures} failure(s)",
        checks.len(),
        BACKENDS.len()
    );
    if failures == 0 {
        Ok(())
    } else {
        Err(format!("{failures} conformance checks failed"))
    }
}

/// Reads libtest's `test NAME ... ok|FAILED` lines.
fn parse(stdout: &str) -> BTreeMap<String, Outcome> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, outcome) = rest.split_once(" ... ")?;
            let name = name.rsplit("::").next().unwrap_or(name).to_owned();
            let outcome = match outcome.trim() {
                "ok" => Outcome::Pass,
                "FAILED" => Outcome::Fail,
                _ => return None,
            };
            (!CHILD_TESTS.contains(&name.as_str())).then_some((name, outcome))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines_and_skips_the_child() {
        let out = "running 3 tests\n\
            test a_check ... ok\n\
            test mod::b_check ... FAILED\n\
            test conformance_child_writer ... ignored, started by the checks\n\
            test result: FAILED. 1 passed; 1 failed";
        let parsed = parse(out);
        assert_eq!(parsed.len(), 2);
        assert!(parsed["a_check"] == Outcome::Pass);
        assert!(parsed["b_check"] == Outcome::Fail);
    }
}
