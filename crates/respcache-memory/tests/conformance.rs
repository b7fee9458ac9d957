//! The whole conformance suite, buffered and streaming, against
//! `MemoryManager`. Nothing outlives the manager, so the checks that need
//! a restart, a second process or a medium to damage are `n/a`.

use std::sync::Arc;

use respcache_conformance::{Capabilities, Damage, Harness};
use respcache_core::BoxError;
use respcache_memory::MemoryManager;

/// Room for every check's entries: the largest is 5 MiB.
const CAPACITY: u64 = 256 * 1024 * 1024;

struct MemoryHarness {
    manager: Arc<MemoryManager>,
}

#[async_trait::async_trait]
impl Harness for MemoryHarness {
    type Manager = MemoryManager;

    fn capabilities() -> Capabilities {
        Capabilities {
            survives_restart: false,
            shared_between_processes: false,
            damageable_medium: false,
            bodies_outside_memory: false,
            ..Capabilities::ALL
        }
    }

    async fn create() -> Self {
        Self {
            manager: Arc::new(MemoryManager::new(CAPACITY)),
        }
    }

    fn manager(&self) -> Arc<MemoryManager> {
        self.manager.clone()
    }

    async fn reopen(&self) -> MemoryManager {
        MemoryManager::new(CAPACITY)
    }

    fn location(&self) -> String {
        String::new()
    }

    async fn open_location(_location: &str) -> MemoryManager {
        MemoryManager::new(CAPACITY)
    }

    async fn damage(&self, _key: &str, _how: Damage) -> Result<(), BoxError> {
        Err("process memory is no medium a check can damage".into())
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        Ok(self.manager.weight())
    }
}

respcache_conformance::buffered_suite!(MemoryHarness);
respcache_conformance::streaming_suite!(MemoryHarness);
