use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::Rng;
use respcache_core::CacheManager;

use crate::checks::{fetch, round_trip::missing, store};
use crate::failure::Context;
use crate::{CheckResult, Failure, Harness, ensure, fixtures};

/// Environment variable that tells the child entry point where to write.
pub const CHILD_LOCATION_ENV: &str = "RESPCACHE_CONFORMANCE_LOCATION";
/// Keys the child writer cycles through.
const CHILD_KEYS: u32 = 8;
/// The child stops by itself after this long, even if nobody kills it.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// Kill-and-check rounds of the crash check.
const CRASH_ROUNDS: u32 = 24;

fn child_key(index: u32) -> String {
    format!("child-{index}")
}

/// An ignored test in the backend's own test binary that a check starts
/// as a child process: the suite's macros declare them
/// (`conformance_child_writer`, `conformance_child_streamer`) and pass
/// their module path here.
#[derive(Debug, Clone)]
pub struct ChildTest {
    test_name: String,
}

impl ChildTest {
    /// The test `name` in module `module_path` (as `module_path!()` gives
    /// it, crate name first).
    pub fn in_module(module_path: &str, name: &str) -> Self {
        let test_name = match module_path.split_once("::") {
            Some((_crate, module)) => format!("{module}::{name}"),
            None => name.to_owned(),
        };
        Self { test_name }
    }

    /// The child writer of the process checks.
    pub fn writer(module_path: &str) -> Self {
        Self::in_module(module_path, "conformance_child_writer")
    }

    /// The child of the streaming memory check.
    pub fn streamer(module_path: &str) -> Self {
        Self::in_module(module_path, "conformance_child_streamer")
    }

    pub(crate) fn command(&self, location: &str) -> Result<tokio::process::Command, Failure> {
        let exe = std::env::current_exe().context("finding the test binary")?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args([
                &self.test_name,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_LOCATION_ENV, location)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        Ok(command)
    }

    fn spawn(&self, location: &str) -> Result<tokio::process::Child, Failure> {
        self.command(location)?
            .spawn()
            .context("spawning the child writer")
    }
}

/// The body of the child test: with [`CHILD_LOCATION_ENV`] set, writes
/// generated entries to that location in a loop until killed (or until a
/// time limit); without it, returns at once.
pub fn child_writer_main<H: Harness>() {
    let Ok(location) = std::env::var(CHILD_LOCATION_ENV) else {
        eprintln!("conformance_child_writer is started by the process checks; nothing to do");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the child writer");
    runtime.block_on(async move {
        let manager = H::open_location(&location).await;
        let started = Instant::now();
        let mut generation: u64 = rand::random::<u32>().into();
        while started.elapsed() < CHILD_LIFETIME {
            generation += 1;
            let key = (generation % u64::from(CHILD_KEYS)) as u32;
            let len = rand::rng().random_range(0..1024 * 1024);
            let response = fixtures::generated(key, generation, len);
            let policy = fixtures::policy_for(&response);
            // Errors are the parent's to find: it checks what is stored.
            let _ = manager.put(child_key(key), response, policy).await;
        }
    });
}

/// Reads every child key through `manager`; each is whole or absent.
/// Returns how many were present.
async fn verify_child_keys<M: CacheManager + ?Sized>(manager: &M) -> Result<u32, Failure> {
    let mut present = 0;
    for key in 0..CHILD_KEYS {
        if let Some(back) = fetch(manager, &child_key(key)).await? {
            fixtures::verify_generated(key, &back)
                .map_err(|e| Failure(format!("{}: {e}", child_key(key))))?;
            present += 1;
        }
    }
    Ok(present)
}

/// A new manager on the same location sees what the old one stored, and
/// both agree on later writes and deletes.
pub async fn restart_sees_stored_entries<H: Harness>(h: &H) -> CheckResult {
    let first = h.manager();
    for key in 0..3 {
        store(
            &*first,
            &format!("r{key}"),
            fixtures::generated(key, 1, 10_000),
        )
        .await?;
    }
    let second = h.reopen().await;
    for key in 0..3 {
        let back = fetch(&second, &format!("r{key}"))
            .await?
            .ok_or_else(|| missing("r"))?;
        fixtures::verify_generated(key, &back).map_err(Failure)?;
    }
    second
        .delete("r0")
        .await
        .context("delete through the second manager")?;
    store(&second, "r1", fixtures::generated(1, 2, 10)).await?;
    ensure!(
        fetch(&*first, "r0").await?.is_none(),
        "a delete by one manager is not seen by the other"
    );
    let r1 = fetch(&*first, "r1").await?.ok_or_else(|| missing("r1"))?;
    ensure!(
        fixtures::verify_generated(1, &r1) == Ok(2),
        "an overwrite by one manager is not seen by the other"
    );
    Ok(())
}

/// A child process writing in a loop is killed with SIGKILL at random
/// moments, many times; after each kill every key reads as a whole value
/// some write stored, or as absent.
pub async fn all_or_nothing_after_sigkill<H: Harness>(h: &H, child: &ChildTest) -> CheckResult {
    let mut seen = 0;
    for round in 0..CRASH_ROUNDS {
        let mut process = child.spawn(&h.location())?;
        let pause = rand::rng().random_range(30..250);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        process.kill().await.context("killing the child writer")?;
        let manager = h.reopen().await;
        seen += verify_child_keys(&manager)
            .await
            .map_err(|e| Failure(format!("after kill {round} ({pause} ms): {e}")))?;
    }
    ensure!(
        seen > 0,
        "the child writer never stored an entry, so the kills proved nothing"
    );
    Ok(())
}

/// Two processes on one location: while a child writes in a loop, this
/// process writes its own keys and reads both; every read is whole.
pub async fn two_processes_share_one_location<H: Harness>(h: &H, child: &ChildTest) -> CheckResult {
    let manager = h.manager();
    let mut process = child.spawn(&h.location())?;
    let started = Instant::now();
    let mut seen_from_child = 0;
    let mut generation = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        generation += 1;
        let key = (generation % 4) as u32;
        store(
            &*manager,
            &format!("parent-{key}"),
            fixtures::generated(key, generation, 50_000),
        )
        .await?;
        let back = fetch(&*manager, &format!("parent-{key}"))
            .await?
            .ok_or_else(|| missing("parent"))?;
        ensure!(
            fixtures::verify_generated(key, &back) == Ok(generation),
            "this process's own write was lost or mixed while another process wrote"
        );
        seen_from_child += verify_child_keys(&*manager).await?;
    }
    process.kill().await.context("stopping the child writer")?;
    seen_from_child += verify_child_keys(&*manager).await?;
    ensure!(
        seen_from_child > 0,
        "no entry written by the other process was ever seen"
    );
    Ok(())
}
