//! The score of a run: `score.mjs` classifies every result with the
//! package's own code; this prints its counts as one table (the tested
//! cache, then the package's reverse proxies and CDNs), followed by the
//! tested cache's required and optional tests that did not pass.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::{node, not_installed};
use crate::TaskResult;

/// The outcomes that count a test neither passed nor failed, summed over
/// every kind in the table, as `score.mjs` (and display.mjs) names them.
const OTHER_OUTCOMES: &[(&str, &str)] = &[
    ("setup_fail", "setup"),
    ("dependency_fail", "dependency"),
    ("retry", "retry"),
    ("harness_fail", "harness"),
    ("untested", "untested"),
];

/// Scores `results` as `name` and prints the table and the lists.
pub async fn print(script: &Path, package: &Path, name: &str, results: &Path) -> TaskResult {
    let output = node()
        .arg(script)
        .arg(package)
        .arg(name)
        .arg(results)
        .current_dir(package)
        .output()
        .await
        .map_err(|e| not_installed("node", e))?;
    if !output.status.success() {
        return Err(format!(
            "score.mjs failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let score: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("score.mjs printed: {e}"))?;
    print!("{}", table(&score));
    if let Some(ours) = score["caches"].get(0) {
        print!("{}", not_passed(ours));
    }
    Ok(())
}

fn count(cache: &Value, kind: &str, outcome: &str) -> u64 {
    cache["outcomes"][kind][outcome].as_u64().unwrap_or(0)
}

fn table(score: &Value) -> String {
    let total = |kind: &str| score["totals"][kind].as_u64().unwrap_or(0);
    let caches = score["caches"].as_array().cloned().unwrap_or_default();
    let text = |cache: &Value, field: &str| cache[field].as_str().unwrap_or("").to_owned();
    let name_width = caches
        .iter()
        .map(|c| text(c, "name").len())
        .max()
        .unwrap_or(5);
    let version_width = caches
        .iter()
        .map(|c| text(c, "version").len())
        .max()
        .unwrap_or(7)
        .max(7);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{}: {} required, {} optional and {} check tests run against a proxy\n",
        score["package"].as_str().unwrap_or("?"),
        total("required"),
        total("optimal"),
        total("check"),
    );
    let _ = write!(
        out,
        "{:name_width$}  {:version_width$}  {:>9} {:>5}  {:>9} {:>5}  {:>7}",
        "cache", "version", "required", "fail", "optional", "fail", "checks"
    );
    for (_, title) in OTHER_OUTCOMES {
        let _ = write!(out, " {title:>10}");
    }
    let _ = writeln!(out);
    let _ = write!(
        out,
        "{:name_width$}  {:version_width$}  {:>9} {:>5}  {:>9} {:>5}  {:>7}",
        "", "", "passed", "", "passed", "", "yes/no"
    );
    let _ = writeln!(out);
    for cache in &caches {
        let passed = |kind: &str| format!("{}/{}", count(cache, kind, "pass"), total(kind));
        let checks = format!(
            "{}/{}",
            count(cache, "check", "yes"),
            count(cache, "check", "no")
        );
        let _ = write!(
            out,
            "{:name_width$}  {:version_width$}  {:>9} {:>5}  {:>9} {:>5}  {:>7}",
            text(cache, "name"),
            text(cache, "version"),
            passed("required"),
            count(cache, "required", "fail"),
            passed("optimal"),
            count(cache, "optimal", "optional_fail"),
            checks,
        );
        for (outcome, _) in OTHER_OUTCOMES {
            let sum: u64 = ["required", "optimal", "check"]
                .iter()
                .map(|kind| count(cache, kind, outcome))
                .sum();
            let _ = write!(out, " {sum:>10}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "\nsetup … untested: tests of any kind that count as neither passed nor failed. \
         A test whose dependency did not pass is a dependency failure even if it passed itself, \
         as on cache-tests.fyi."
    );
    out
}

/// The tested cache's required and optional tests that did not pass,
/// grouped by kind and outcome, each with the suite's reason.
fn not_passed(cache: &Value) -> String {
    let tests = cache["not_passed"].as_array().cloned().unwrap_or_default();
    let name = cache["name"].as_str().unwrap_or("?");
    let mut out = String::new();
    for (kind, kind_title) in [("required", "required"), ("optimal", "optional")] {
        for (outcome, title) in [
            ("fail", "failed"),
            ("optional_fail", "failed"),
            ("setup_fail", "setup failure"),
            ("dependency_fail", "dependency failure"),
            ("retry", "retried"),
            ("harness_fail", "harness failure"),
            ("untested", "not tested"),
        ] {
            let group: Vec<&Value> = tests
                .iter()
                .filter(|t| t["kind"] == kind && t["outcome"] == outcome)
                .collect();
            if group.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{name}: {kind_title} tests, {title} ({}):",
                group.len()
            );
            for test in group {
                let _ = writeln!(
                    out,
                    "  {}: {}\n      {}",
                    test["id"].as_str().unwrap_or("?"),
                    test["name"].as_str().unwrap_or("?"),
                    test["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_sums_the_other_outcomes_over_every_kind() {
        let score = serde_json::json!({
            "package": "http-cache-tests 0.4.5",
            "totals": { "required": 3, "optimal": 2, "check": 2 },
            "caches": [{
                "name": "ours", "version": "", "type": "ours",
                "outcomes": {
                    "required": { "pass": 1, "fail": 1, "setup_fail": 1 },
                    "optimal": { "optional_fail": 1, "setup_fail": 1 },
                    "check": { "yes": 1, "dependency_fail": 1 }
                },
                "not_passed": []
            }]
        });
        let table = table(&score);
        let row = table.lines().find(|l| l.starts_with("ours")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "ours", "1/3", "1", "0/2", "1", "1/0", "2", "1", "0", "0", "0"
            ]
        );
    }
}
