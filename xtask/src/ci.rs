//! `cargo xtask ci`: format, lints, tests, docs, benches compiled, and the
//! conformance table. The README's test command and what `.ci/run` calls.

use crate::{TaskResult, cargo, conformance, run_step};

pub fn run() -> TaskResult {
    run_step("format", &mut cargo(&["fmt", "--all", "--", "--check"]))?;
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
    // Benchmarks are compiled so they cannot rot, never run in CI.
    run_step(
        "benches compile",
        &mut cargo(&["build", "--benches", "--workspace"]),
    )?;
    conformance::run()?;
    println!("\nci: all steps passed");
    Ok(())
}
