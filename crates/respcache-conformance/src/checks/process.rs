use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::Rng;
use respcache_core::CacheManager;

use crate::checks::{fetch, missing, require, store, store_and_verify, verify};
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, ensure, fixtures};

/// Environment variable that tells the child entry point where to write.
pub const CHILD_LOCATION_ENV: &str = "RESPCACHE_CONFORMANCE_LOCATION";
/// Keys the child writer cycles through.
const CHILD_KEYS: u32 = 8;
/// The child stops by itself after this long, even if nobody kills it.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);
/// Kill-and-check rounds of the crash check.
const CRASH_ROUNDS: u32 = 24;
/// Of those, how many kills must land between a write's start and its end.
const MID_WRITE_KILLS: u32 = 16;
/// Writes the parent watches complete in each round before it kills, to
/// learn how long one takes.
const WARM_UP_WRITES: usize = 3;
/// What the child writer prints before and after each put.
const WRITE_REPORT: &str = "respcache-conformance-write";

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

    fn std_command(&self, location: &str) -> Result<std::process::Command, Failure> {
        let exe = std::env::current_exe().context("finding the test binary")?;
        let mut command = std::process::Command::new(exe);
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
            .stderr(Stdio::null());
        Ok(command)
    }

    pub(crate) fn command(&self, location: &str) -> Result<tokio::process::Command, Failure> {
        let mut command = tokio::process::Command::from(self.std_command(location)?);
        command.kill_on_drop(true);
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
/// time limit), printing a line to stdout as each put starts and as it
/// ends; without it, returns at once.
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
            let len = rand::rng().random_range(384 * 1024..640 * 1024);
            let response = fixtures::generated(key, generation, len);
            let policy = fixtures::policy_for(&response);
            report(&format!("start {generation}"));
            // Errors are the parent's to find: it checks what is stored.
            let _ = manager.put(child_key(key), response, policy).await;
            report(&format!("end {generation}"));
        }
    });
}

/// One line to the parent, flushed at once: it times its kill by them.
fn report(event: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{WRITE_REPORT} {event}");
    let _ = stdout.flush();
}

/// Reads every child key through `manager`; each is whole or absent, or a
/// failure of `kind`. Returns how many were present.
async fn verify_child_keys<M: CacheManager + ?Sized>(
    manager: &M,
    kind: FailureKind,
) -> Result<u32, Failure> {
    let mut present = 0;
    for key in 0..CHILD_KEYS {
        if let Some(back) = fetch(manager, &child_key(key)).await? {
            verify(kind, key, &back, &child_key(key))?;
            present += 1;
        }
    }
    Ok(present)
}

/// Stores `count` entries named `prefix0`, `prefix1`... through the
/// harness's manager and checks each through a new manager on the same
/// location; returns both managers.
async fn reopened_with<H: Harness>(
    h: &H,
    prefix: &str,
    count: u32,
) -> Result<(std::sync::Arc<H::Manager>, H::Manager), crate::Failure> {
    let first = h.manager();
    for key in 0..count {
        store_and_verify(
            &*first,
            &format!("{prefix}{key}"),
            key,
            fixtures::generated(key, 1, 10_000),
        )
        .await?;
    }
    let second = h.reopen().await;
    for key in 0..count {
        let name = format!("{prefix}{key}");
        let back = fetch(&second, &name)
            .await?
            .ok_or_else(|| missing(FailureKind::Restart, &name))?;
        verify(
            FailureKind::Restart,
            key,
            &back,
            &format!("{name} through a new manager"),
        )?;
    }
    Ok((first, second))
}

/// A new manager on the same location sees what the old one stored.
pub async fn restart_sees_stored_entries<H: Harness>(h: &H) -> CheckResult {
    require::<H>(
        |c| c.survives_restart,
        "a new manager on the location sees what the old one stored (survives_restart)",
    )?;
    reopened_with::<H>(h, "r", 3).await?;
    Ok(())
}

/// Two managers on one location agree at once on writes and deletes,
/// each way, also about entries the other has just written or read: what
/// one deletes the other no longer returns, what one replaces the other
/// returns replaced.
pub async fn managers_on_one_location_agree<H: Harness>(h: &H) -> CheckResult {
    require::<H>(
        |c| c.survives_restart && c.coherent_between_managers,
        "two managers on one location agree at once (survives_restart, coherent_between_managers)",
    )?;
    let (first, second) = reopened_with::<H>(h, "a", 4).await?;
    // The second manager writes what the first wrote; then the first
    // writes what the second read.
    let turns: [(&H::Manager, &H::Manager, u32); 2] =
        [(&second, &*first, 0), (&*first, &second, 2)];
    for (writer, reader, key) in turns {
        let (deleted, replaced) = (format!("a{key}"), format!("a{}", key + 1));
        writer
            .delete(&deleted)
            .await
            .context("delete through one manager")?;
        store(writer, &replaced, fixtures::generated(key + 1, 2, 10)).await?;
        ensure!(
            Restart,
            fetch(reader, &deleted).await?.is_none(),
            "a delete of {deleted} by one manager is not seen by the other"
        );
        let back = fetch(reader, &replaced)
            .await?
            .ok_or_else(|| missing(FailureKind::Restart, &replaced))?;
        ensure!(
            Restart,
            fixtures::verify_generated(key + 1, &back) == Ok(2),
            "an overwrite of {replaced} by one manager is not seen by the other"
        );
    }
    Ok(())
}

/// A child process that is killed (if still running) and reaped when the
/// check is done with it, however it returns.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How one kill went.
struct Kill {
    /// The kill landed after a put started and before it ended.
    mid_write: bool,
    /// How long after the put's start the kill was sent.
    after: Duration,
}

/// Starts the child writer, watches it finish a few puts to learn how long
/// one takes, and kills it with SIGKILL a random fraction of that time
/// after the next put starts.
fn kill_during_a_write(child: &ChildTest, location: &str) -> Result<Kill, Failure> {
    let mut command = child.std_command(location)?;
    let mut process = KillOnDrop(
        command
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning the child writer")?,
    );
    let stdout =
        process.0.stdout.take().ok_or_else(|| {
            Failure::new(FailureKind::Operation, "the child writer has no stdout")
        })?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut next_event = move || -> Result<Option<(String, u64)>, Failure> {
        for line in lines.by_ref() {
            let line = line.context("reading the child writer's reports")?;
            if let Some(event) = line.strip_prefix(WRITE_REPORT)
                && let Some((what, generation)) = event.trim().split_once(' ')
                && let Ok(generation) = generation.parse()
            {
                return Ok(Some((what.to_owned(), generation)));
            }
        }
        Ok(None)
    };
    let mut durations: Vec<Duration> = Vec::new();
    let mut open: Option<(u64, Instant)> = None;
    loop {
        let Some((what, generation)) = next_event()? else {
            return Err(Failure::new(
                FailureKind::Operation,
                "the child writer ended before it could be killed",
            ));
        };
        match what.as_str() {
            "start" if durations.len() >= WARM_UP_WRITES => {
                let started = Instant::now();
                let shortest = durations.iter().min().copied().unwrap_or_default();
                let pause = shortest.mul_f64(rand::rng().random_range(0.0..0.95));
                while started.elapsed() < pause {
                    std::hint::spin_loop();
                }
                let after = started.elapsed();
                process.0.kill().context("killing the child writer")?;
                let mut ended = false;
                while let Some((what, seen)) = next_event()? {
                    ended |= what == "end" && seen == generation;
                }
                return Ok(Kill {
                    mid_write: !ended,
                    after,
                });
            }
            "start" => open = Some((generation, Instant::now())),
            "end" => {
                if let Some((started, at)) = open.take()
                    && started == generation
                {
                    durations.push(at.elapsed());
                }
            }
            _ => {}
        }
    }
}

/// A child process writing in a loop is killed with SIGKILL, 24 times,
/// each time in the middle of a put: the child reports over a pipe when
/// each put starts and ends, and the parent kills between the two. After
/// each kill every key reads as a whole value some put stored, or as
/// absent. At least 16 of the 24 kills must have landed before the put
/// they interrupted reported its end; otherwise the check proved nothing.
pub async fn all_or_nothing_after_sigkill<H: Harness>(h: &H, child: &ChildTest) -> CheckResult {
    require::<H>(
        |c| c.shared_between_processes && c.survives_restart,
        "another process's writes survive it (shared_between_processes, survives_restart)",
    )?;
    store_and_verify(
        &*h.manager(),
        &child_key(0),
        0,
        fixtures::generated(0, 0, 512 * 1024),
    )
    .await?;
    let mut mid_write = 0;
    for round in 0..CRASH_ROUNDS {
        let child = child.clone();
        let location = h.location();
        let kill = tokio::task::spawn_blocking(move || kill_during_a_write(&child, &location))
            .await
            .context("the killing thread")??;
        mid_write += u32::from(kill.mid_write);
        let manager = h.reopen().await;
        verify_child_keys(&manager, FailureKind::CrashAtomicity)
            .await
            .map_err(|e| {
                Failure::new(
                    e.kind(),
                    format!(
                        "after kill {round} ({:?} into a put, {}): {}",
                        kill.after,
                        if kill.mid_write {
                            "before it ended"
                        } else {
                            "after it ended"
                        },
                        e.message()
                    ),
                )
            })?;
    }
    println!("{mid_write} of {CRASH_ROUNDS} kills landed in the middle of a put");
    ensure!(
        Inconclusive,
        mid_write >= MID_WRITE_KILLS,
        "only {mid_write} of {CRASH_ROUNDS} kills landed in the middle of a put (at least {MID_WRITE_KILLS} must)"
    );
    Ok(())
}

/// Two processes on one location: while a child writes in a loop, this
/// process writes its own keys and reads both; every read is whole, none
/// of this process's writes is lost or replaced while the other process
/// writes (each is read again after the child's keys), and the child's
/// writes are seen.
pub async fn two_processes_share_one_location<H: Harness>(h: &H, child: &ChildTest) -> CheckResult {
    require::<H>(
        |c| c.shared_between_processes,
        "processes on one location share entries (shared_between_processes)",
    )?;
    const OWN_KEYS: u32 = 4;
    let manager = h.manager();
    let mut expected = Vec::new();
    for key in 0..OWN_KEYS {
        store_and_verify(
            &*manager,
            &format!("parent-{key}"),
            key,
            fixtures::generated(key, 0, 50_000),
        )
        .await?;
        expected.push(0);
    }
    let mut process = child.spawn(&h.location())?;
    let started = Instant::now();
    let mut seen_from_child = 0;
    let mut generation = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        generation += 1;
        let key = (generation % u64::from(OWN_KEYS)) as u32;
        store(
            &*manager,
            &format!("parent-{key}"),
            fixtures::generated(key, generation, 50_000),
        )
        .await?;
        expected[key as usize] = generation;
        seen_from_child += verify_child_keys(&*manager, FailureKind::SharedLocation).await?;
        own_keys_hold(&*manager, &expected).await?;
    }
    process.kill().await.context("stopping the child writer")?;
    seen_from_child += verify_child_keys(&*manager, FailureKind::SharedLocation).await?;
    own_keys_hold(&*manager, &expected).await?;
    ensure!(
        SharedLocation,
        seen_from_child > 0,
        "no entry written by the other process was ever seen"
    );
    Ok(())
}

/// Every `parent-N` key holds generation `expected[N]`, whole.
async fn own_keys_hold<M: CacheManager + ?Sized>(manager: &M, expected: &[u64]) -> CheckResult {
    for (key, generation) in expected.iter().enumerate() {
        let name = format!("parent-{key}");
        let back = fetch(manager, &name).await?.ok_or_else(|| {
            Failure::new(
                FailureKind::SharedLocation,
                format!("this process's own write of {name} was lost while another process wrote"),
            )
        })?;
        let seen = fixtures::verify_generated(key as u32, &back);
        ensure!(
            SharedLocation,
            seen == Ok(*generation),
            "this process's own write of {name} (generation {generation}) was replaced or mixed while another process wrote: {seen:?}"
        );
    }
    Ok(())
}
