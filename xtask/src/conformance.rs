//! `cargo xtask conformance`: runs each backend's conformance test binary
//! and prints a backend × check table. `--prove` instead runs the suite's
//! own proofs and prints which broken manager proves each check.

use std::collections::BTreeMap;

use respcache_conformance::checks::{self, Suite};
use respcache_conformance::{NOT_APPLICABLE_MARKER, PROOF_MARKER};

use crate::{TaskResult, cargo};

/// Each backend: its column title, the crate and the test binary that run
/// the suite.
const BACKENDS: &[(&str, &str, &str)] = &[
    ("cacache", "respcache-cacache", "conformance"),
    ("fs", "respcache-fs", "conformance"),
    ("redis", "respcache-redis", "conformance"),
    // Six redis-server processes, started once by the test binary.
    ("redis-cluster", "respcache-redis", "conformance_cluster"),
    ("memory", "respcache-memory", "conformance"),
    ("tiered", "respcache-tiered", "conformance"),
];

/// The ignored helper tests that checks start as child processes.
const CHILD_TESTS: &[&str] = &["conformance_child_writer", "conformance_child_streamer"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    /// The harness lacks a capability the check needs.
    NotApplicable,
    /// Listed by the test binary but never reported: the binary crashed.
    Crashed,
    /// Part of a suite the backend runs, but not declared by it.
    Missing,
}

impl Outcome {
    fn cell(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::NotApplicable => "n/a",
            Outcome::Crashed => "CRASH",
            Outcome::Missing => "MISSING",
        }
    }

    fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Crashed | Outcome::Missing)
    }
}

pub fn run(args: &[String]) -> TaskResult {
    match args {
        [] => table(),
        [flag] if flag == "--prove" => prove(),
        _ => Err("usage: cargo xtask conformance [--prove]".into()),
    }
}

fn table() -> TaskResult {
    crate::tools::require_redis_server("conformance")?;
    let mut results: Vec<BTreeMap<String, Outcome>> = Vec::new();
    let mut problems = Vec::new();
    for (title, package, test) in BACKENDS {
        println!("\n== conformance: {title}");
        let target = ["test", "--package", package, "--test", test];
        let listed = cargo(&[&target[..], &["--", "--list"]].concat())
            .output()
            .map_err(|e| format!("could not list the {title} suite: {e}"))?;
        let declared = parse_list(&String::from_utf8_lossy(&listed.stdout));
        if declared.is_empty() {
            eprint!("{}", String::from_utf8_lossy(&listed.stderr));
            return Err(format!("the {title} suite declares no check"));
        }
        let output = cargo(&[&target[..], &["--no-fail-fast", "--", "--show-output"]].concat())
            .output()
            .map_err(|e| format!("could not run the {title} suite: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let outcomes = outcomes(&declared, &stdout);
        let failed = outcomes.values().any(|o| o.is_failure());
        if failed || !output.status.success() {
            // Show the failures' own messages above the table.
            print!("{stdout}");
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        }
        if !output.status.success() && !failed {
            problems.push(format!(
                "the {title} suite exited with {} although no check failed",
                output.status
            ));
        }
        results.push(outcomes);
    }

    let mut rows: Vec<String> = checks::ALL.iter().map(|c| c.name.to_owned()).collect();
    for outcomes in &results {
        for name in outcomes.keys() {
            if !rows.contains(name) {
                rows.push(name.clone());
            }
        }
    }
    let width = rows.iter().map(String::len).max().unwrap_or(5);
    print!("\n{:width$}", "check");
    let cell_width = |title: &str| title.len().max(8);
    for (title, _, _) in BACKENDS {
        print!(" | {title:^w$}", w = cell_width(title));
    }
    println!();
    let columns: usize = BACKENDS.iter().map(|(t, _, _)| cell_width(t) + 3).sum();
    println!("{}", "-".repeat(width + columns));
    let mut failures = 0;
    let mut not_applicable = 0;
    for row in &rows {
        print!("{row:width$}");
        for ((title, _, _), outcomes) in BACKENDS.iter().zip(&results) {
            let outcome = outcomes.get(row).copied();
            failures += usize::from(outcome.is_some_and(Outcome::is_failure));
            not_applicable += usize::from(outcome.is_none_or(|o| o == Outcome::NotApplicable));
            let cell = outcome.map_or("n/a", Outcome::cell);
            print!(" | {cell:^w$}", w = cell_width(title));
        }
        println!();
    }
    println!(
        "\n{} checks x {} backend(s), {failures} failure(s), {not_applicable} n/a",
        rows.len(),
        BACKENDS.len()
    );
    for problem in &problems {
        eprintln!("xtask: {problem}");
    }
    if failures == 0 && problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{failures} conformance check(s) failed, crashed or are missing"
        ))
    }
}

/// The tests a binary declares, from libtest's `--list` (`NAME: test`),
/// without the child tests.
fn parse_list(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(last_segment)
        .filter(|name| !CHILD_TESTS.contains(&name.as_str()))
        .collect()
}

fn last_segment(name: &str) -> String {
    name.rsplit("::").next().unwrap_or(name).to_owned()
}

/// Reads libtest's `test NAME ... ok|FAILED` lines as full names.
fn reported(stdout: &str) -> BTreeMap<String, Outcome> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, outcome) = rest.split_once(" ... ")?;
            let outcome = match outcome.trim() {
                "ok" => Outcome::Pass,
                "FAILED" => Outcome::Fail,
                _ => return None,
            };
            Some((name.to_owned(), outcome))
        })
        .collect()
}

/// The outcome of every declared check: what libtest reported, `n/a` for
/// a pass that printed the not-applicable marker, a crash for a declared
/// test that never reported, and a missing check for each check of a
/// suite the backend runs but did not declare.
fn outcomes(declared: &[String], stdout: &str) -> BTreeMap<String, Outcome> {
    let reported: BTreeMap<String, Outcome> = reported(stdout)
        .into_iter()
        .map(|(name, outcome)| (last_segment(&name), outcome))
        .collect();
    let not_applicable: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once(NOT_APPLICABLE_MARKER))
        .filter_map(|(_, rest)| rest.trim().split_once(':'))
        .map(|(name, _)| name.trim())
        .collect();
    let mut outcomes = BTreeMap::new();
    for name in declared {
        let outcome = match reported.get(name) {
            Some(Outcome::Pass) if not_applicable.contains(&name.as_str()) => {
                Outcome::NotApplicable
            }
            Some(outcome) => *outcome,
            None => Outcome::Crashed,
        };
        outcomes.insert(name.clone(), outcome);
    }
    for suite in [Suite::Buffered, Suite::Streaming] {
        let of_suite = || checks::ALL.iter().filter(move |c| c.suite == suite);
        if of_suite().any(|c| outcomes.contains_key(c.name)) {
            for check in of_suite() {
                outcomes
                    .entry(check.name.to_owned())
                    .or_insert(Outcome::Missing);
            }
        }
    }
    outcomes
}

/// One proof as the proofs binary reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proof {
    check: String,
    defect: String,
    kind: String,
    seen: String,
}

/// The lines the proofs print when they hold.
fn parse_proofs(stdout: &str) -> Vec<Proof> {
    stdout
        .lines()
        .filter_map(|line| line.split_once(PROOF_MARKER))
        .filter_map(|(_, rest)| {
            let mut fields = rest.splitn(4, " | ").map(str::trim);
            Some(Proof {
                check: fields.next()?.to_owned(),
                defect: fields.next()?.to_owned(),
                kind: fields.next()?.to_owned(),
                seen: fields.next().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn prove() -> TaskResult {
    println!("\n== conformance proofs");
    let output = cargo(&[
        "test",
        "--package",
        "respcache-conformance",
        "--test",
        "proofs",
        "--no-fail-fast",
        "--",
        "--show-output",
    ])
    .output()
    .map_err(|e| format!("could not run the proofs: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reported = reported(&stdout);
    if reported.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        return Err("the proofs ran no test".into());
    }
    if !output.status.success() {
        print!("{stdout}");
    }
    let proofs = parse_proofs(&stdout);
    let (report, proven) = proof_table(&proofs, &reported);
    print!("{report}");
    let total = checks::ALL.len();
    println!("\n{proven} of {total} checks proven");
    let failed: Vec<&String> = reported
        .iter()
        .filter(|(_, outcome)| **outcome != Outcome::Pass)
        .map(|(name, _)| name)
        .collect();
    if proven == total && failed.is_empty() && output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} of {total} checks have no proof that holds; failing tests: {failed:?}",
            total - proven
        ))
    }
}

/// The table of proofs, one row per proof (a check without one gets a
/// row saying so), and how many checks have a proof that held.
fn proof_table(proofs: &[Proof], reported: &BTreeMap<String, Outcome>) -> (String, usize) {
    let width = checks::ALL.iter().map(|c| c.name.len()).max().unwrap_or(5);
    let defect_width = proofs.iter().map(|p| p.defect.len()).max().unwrap_or(6);
    let mut out = format!(
        "\n{:width$} | {:defect_width$} | reason\n{}\n",
        "check",
        "broken manager",
        "-".repeat(width + defect_width + 40)
    );
    let mut proven = 0;
    for check in checks::ALL {
        let held: Vec<&Proof> = proofs
            .iter()
            .filter(|p| {
                p.check == check.name
                    && reported.get(&format!("{}::{}::proof", p.check, p.defect))
                        == Some(&Outcome::Pass)
            })
            .collect();
        proven += usize::from(!held.is_empty());
        if held.is_empty() {
            out += &format!("{:width$} | {:defect_width$} | UNPROVEN\n", check.name, "-");
        }
        for proof in held {
            let seen: String = proof.seen.chars().take(110).collect();
            out += &format!(
                "{:width$} | {:defect_width$} | [{}] {seen}\n",
                check.name, proof.defect, proof.kind
            );
        }
    }
    (out, proven)
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
        let declared = vec!["a_check".to_owned(), "b_check".to_owned()];
        let parsed = outcomes(&declared, out);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["a_check"], Outcome::Pass);
        assert_eq!(parsed["b_check"], Outcome::Fail);
        let listed = parse_list(
            "a_check: test\nmod::conformance_child_writer: test\n\n2 tests, 0 benchmarks\n",
        );
        assert_eq!(listed, vec!["a_check".to_owned()]);
    }

    #[test]
    fn a_declared_check_that_never_reports_is_a_crash_not_n_a() {
        let out = "running 2 tests\n\
            test get_of_missing_key_is_none ... ok\n\
            error: test failed, to rerun pass `--test conformance`\n\
            Caused by: process didn't exit successfully (signal: 6, SIGABRT)";
        let declared = vec![
            "get_of_missing_key_is_none".to_owned(),
            "delete_of_missing_key_is_ok".to_owned(),
        ];
        let parsed = outcomes(&declared, out);
        assert_eq!(parsed["delete_of_missing_key_is_ok"], Outcome::Crashed);
        assert!(parsed["delete_of_missing_key_is_ok"].is_failure());
        assert_eq!(parsed["get_of_missing_key_is_none"], Outcome::Pass);
    }

    #[test]
    fn a_check_missing_from_a_suite_the_backend_runs_fails() {
        let declared = vec!["get_of_missing_key_is_none".to_owned()];
        let parsed = outcomes(&declared, "test get_of_missing_key_is_none ... ok\n");
        assert_eq!(parsed["delete_of_missing_key_is_ok"], Outcome::Missing);
        assert!(!parsed.contains_key("streaming_memory_stays_flat"));
    }

    #[test]
    fn a_pass_that_printed_the_marker_is_n_a() {
        let out = format!(
            "test restart_sees_stored_entries ... ok\n\
             test delete_removes_the_entry ... ok\n\
             successes:\n\
             ---- restart_sees_stored_entries stdout ----\n\
             {NOT_APPLICABLE_MARKER} restart_sees_stored_entries: the harness does not declare it\n"
        );
        let declared = vec![
            "restart_sees_stored_entries".to_owned(),
            "delete_removes_the_entry".to_owned(),
        ];
        let parsed = outcomes(&declared, &out);
        assert_eq!(
            parsed["restart_sees_stored_entries"],
            Outcome::NotApplicable
        );
        assert_eq!(parsed["delete_removes_the_entry"], Outcome::Pass);
    }

    #[test]
    fn a_check_is_proven_only_by_a_proof_that_held() {
        let out = format!(
            "test delete_removes_the_entry::ignores_delete::proof ... ok\n\
             test get_of_missing_key_is_none::missing_key_is_an_error::proof ... FAILED\n\
             {PROOF_MARKER} delete_removes_the_entry | ignores_delete | delete | entry survived its delete\n\
             {PROOF_MARKER} get_of_missing_key_is_none | missing_key_is_an_error | missing-key | stale line\n"
        );
        let proofs = parse_proofs(&out);
        assert_eq!(proofs.len(), 2);
        assert_eq!(proofs[0].seen, "entry survived its delete");
        let (table, proven) = proof_table(&proofs, &reported(&out));
        assert_eq!(proven, 1);
        assert!(table.contains("ignores_delete"));
        assert!(table.contains("UNPROVEN"));
    }
}
