use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respcache_core::CacheManager;

use crate::checks::{fetch, store};
use crate::failure::Context;
use crate::{CheckResult, Failure, Harness, fixtures};

const TASKS: u64 = 64;
const ROUNDS: u64 = 30;
const KEYS: u32 = 8;
const DEADLINE: Duration = Duration::from_secs(120);

/// 64 tasks putting, getting and deleting 8 shared keys: no panic, no
/// deadlock, and every body read is exactly one of the bodies written to
/// that key.
pub async fn concurrent_tasks_on_overlapping_keys_see_whole_values<H: Harness>(
    h: &H,
) -> CheckResult {
    let seed: u64 = rand::random();
    let work = async {
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let manager = h.manager();
            tasks.push(tokio::spawn(async move {
                run_task(manager, StdRng::seed_from_u64(seed ^ task), task).await
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| Failure(format!("a task panicked: {e}")))??;
        }
        Ok::<(), Failure>(())
    };
    tokio::time::timeout(DEADLINE, work)
        .await
        .map_err(|_| Failure(format!("not done in {DEADLINE:?}: deadlock? (seed {seed})")))?
        .map_err(|e| Failure(format!("{e} (seed {seed})")))?;
    for key in 0..KEYS {
        if let Some(back) = fetch(&*h.manager(), &format!("shared-{key}")).await? {
            fixtures::verify_generated(key, &back).map_err(Failure)?;
        }
    }
    Ok(())
}

async fn run_task<M: CacheManager>(manager: Arc<M>, mut rng: StdRng, task: u64) -> CheckResult {
    for round in 0..ROUNDS {
        let key = rng.random_range(0..KEYS);
        let name = format!("shared-{key}");
        match rng.random_range(0..100) {
            0..50 => {
                let len = rng.random_range(0..32 * 1024);
                store(
                    &*manager,
                    &name,
                    fixtures::generated(key, task * 1000 + round, len),
                )
                .await?;
            }
            50..85 => {
                if let Some(back) = fetch(&*manager, &name).await? {
                    fixtures::verify_generated(key, &back)
                        .map_err(|e| Failure(format!("{name}: {e}")))?;
                }
            }
            _ => manager.delete(&name).await.context("delete")?,
        }
    }
    Ok(())
}
