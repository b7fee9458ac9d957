use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respcache_core::CacheManager;
use tokio::sync::Barrier;

use crate::checks::{fetch_as, store_and_verify, store_as, verify};
use crate::failure::{Context, FailureKind};
use crate::{CheckResult, Failure, Harness, fixtures};

const TASKS: usize = 64;
const ROUNDS: u64 = 30;
const KEYS: u32 = 8;
const DEADLINE: Duration = Duration::from_secs(120);

/// 64 tasks putting, getting and deleting 8 shared keys, 30 rounds, every
/// round started by all tasks at once (a barrier), so that puts, gets and
/// deletes of one key really overlap: no panic, no deadlock, and every
/// body read is exactly one of the bodies written to that key.
///
/// Each key is first written and read back alone, so a backend that
/// cannot keep one entry fails as a round trip, not as a race.
pub async fn concurrent_tasks_on_overlapping_keys_see_whole_values<H: Harness>(
    h: &H,
) -> CheckResult {
    let manager = h.manager();
    for key in 0..KEYS {
        store_and_verify(
            &*manager,
            &shared_key(key),
            key,
            fixtures::generated(key, 0, 16 * 1024),
        )
        .await?;
    }

    let seed: u64 = rand::random();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS as u64 {
        let manager = h.manager();
        let barrier = barrier.clone();
        let rng = StdRng::seed_from_u64(seed ^ task);
        tasks.spawn(async move { run_task(manager, rng, task, barrier).await });
    }
    let work = async {
        // The first task that fails ends the check; the others, waiting
        // at the barrier for it, are aborted with the set.
        while let Some(joined) = tasks.join_next().await {
            joined.map_err(|e| {
                Failure::new(FailureKind::Concurrency, format!("a task panicked: {e}"))
            })??;
        }
        Ok::<(), Failure>(())
    };
    match tokio::time::timeout(DEADLINE, work).await {
        Err(_) => {
            return Err(Failure::new(
                FailureKind::Concurrency,
                format!("not done in {DEADLINE:?}: deadlock? (seed {seed})"),
            ));
        }
        Ok(Err(failure)) => {
            let message = format!("{} (seed {seed})", failure.message());
            return Err(Failure::new(failure.kind(), message));
        }
        Ok(Ok(())) => {}
    }
    for key in 0..KEYS {
        if let Some(back) = fetch_as(FailureKind::Concurrency, &*manager, &shared_key(key)).await? {
            verify(
                FailureKind::Concurrency,
                key,
                &back,
                &format!("{} after the tasks", shared_key(key)),
            )?;
        }
    }
    Ok(())
}

fn shared_key(key: u32) -> String {
    format!("shared-{key}")
}

async fn run_task<M: CacheManager>(
    manager: Arc<M>,
    mut rng: StdRng,
    task: u64,
    barrier: Arc<Barrier>,
) -> CheckResult {
    for round in 0..ROUNDS {
        let key = rng.random_range(0..KEYS);
        let name = shared_key(key);
        let op = rng.random_range(0..100);
        barrier.wait().await;
        match op {
            0..50 => {
                let len = rng.random_range(0..32 * 1024);
                store_as(
                    FailureKind::Concurrency,
                    &*manager,
                    &name,
                    fixtures::generated(key, 1 + task * 1000 + round, len),
                )
                .await?;
            }
            50..85 => {
                if let Some(back) = fetch_as(FailureKind::Concurrency, &*manager, &name).await? {
                    verify(
                        FailureKind::Concurrency,
                        key,
                        &back,
                        &format!("{name} read while other tasks wrote it"),
                    )?;
                }
            }
            _ => manager
                .delete(&name)
                .await
                .context_as(FailureKind::Concurrency, "delete")?,
        }
    }
    Ok(())
}
