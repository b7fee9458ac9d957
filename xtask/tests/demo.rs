//! `cargo xtask demo` as a newcomer runs it: on a machine where
//! `redis-server` is not on the PATH, it still exits 0 and shows the
//! cacache and fs rows and the proxy's steps, and says in one line how to
//! add the Redis rows.

#![cfg(unix)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every path the demo fetches, each a row per backend.
const PATHS: &[&str] = &[
    "/fresh",
    "/no-store",
    "/vary",
    "/cookies",
    "/raw-header",
    "/large",
];

#[test]
fn without_redis_server_the_demo_shows_cacache_fs_and_the_proxy_and_exits_0() {
    let shadow = std::env::temp_dir().join(format!("xtask-demo-test-{}", std::process::id()));
    let path = path_without("redis-server", &shadow);
    let hidden = Command::new("redis-server")
        .arg("--version")
        .env("PATH", &path)
        .output();
    assert!(
        hidden.is_err(),
        "redis-server is still on the PATH the demo gets"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("demo")
        .env("PATH", &path)
        .output()
        .expect("running xtask demo");
    let _ = std::fs::remove_dir_all(&shadow);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let shown = format!(
        "status {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(output.status.success(), "the demo failed: {shown}");

    // Built like this test: a debug build must not show timings, which
    // would mislead (fs slower than cacache on /large).
    let header = stdout
        .lines()
        .find(|line| line.starts_with("backend"))
        .unwrap_or_default();
    let timed = header.split_whitespace().any(|column| column == "put");
    assert_eq!(
        timed,
        !cfg!(debug_assertions),
        "timings shown in a debug build, or left out of an optimised one: {shown}"
    );

    let rows = |backend: &str| -> Vec<&str> {
        stdout
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(backend))
            .collect()
    };
    for backend in ["cacache", "fs"] {
        let rows = rows(backend);
        for path in PATHS {
            assert!(
                rows.iter()
                    .any(|row| row.split_whitespace().nth(1) == Some(path)),
                "no {backend} row for {path}: {shown}"
            );
        }
        assert!(
            !rows.iter().any(|row| row.contains(" NO ")),
            "a {backend} response differs: {shown}"
        );
    }
    assert!(
        rows("redis").is_empty(),
        "Redis rows without redis-server: {shown}"
    );
    let about_redis: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| line.contains("redis-server"))
        .collect();
    assert_eq!(
        about_redis.len(),
        1,
        "not one line about the missing redis-server: {shown}"
    );
    assert!(
        about_redis[0].contains("apt-get install redis-server"),
        "the line does not say how to add the Redis rows: {shown}"
    );

    assert!(
        stdout.contains("respcache-proxy (fs backend"),
        "no proxy part: {shown}"
    );
    for step in ["MISS", "HIT", "REVALIDATED", "STALE"] {
        assert!(
            stdout.lines().any(|line| line.starts_with(step)),
            "no proxy step {step}: {shown}"
        );
    }
}

/// The PATH with `program` hidden: each directory that holds it is
/// replaced by a directory (under `shadow`) of links to everything else it
/// holds, so that every other program (cargo, rustc, the linker) is found
/// as before.
fn path_without(program: &str, shadow: &Path) -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .enumerate()
        .map(|(i, dir)| {
            if !dir.join(program).exists() {
                return dir;
            }
            let copy = shadow.join(i.to_string());
            std::fs::create_dir_all(&copy).expect("a shadow directory");
            for entry in std::fs::read_dir(&dir).expect("a PATH directory").flatten() {
                if entry.file_name() != program {
                    let _ = std::os::unix::fs::symlink(entry.path(), copy.join(entry.file_name()));
                }
            }
            copy
        })
        .collect();
    std::env::join_paths(dirs).expect("a PATH")
}
