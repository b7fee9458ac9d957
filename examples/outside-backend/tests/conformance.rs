//! Step 2 of the guide's "Implementing a backend": the whole conformance
//! suite against `MapManager`. The harness tells the suite how to make a
//! manager, and what this backend cannot do, so that those checks show
//! as `n/a` instead of failing.

// ANCHOR: harness
use std::sync::Arc;

use outside_backend::MapManager;
use respcache_conformance::{Capabilities, Damage, Harness};
use respcache_core::{BoxError, async_trait};

struct MapHarness {
    manager: Arc<MapManager>,
}

#[async_trait]
impl Harness for MapHarness {
    type Manager = MapManager;

    /// Nothing outlives the manager: no restart, no second process, no
    /// medium to damage, and every body is in memory.
    // ANCHOR: capabilities
    fn capabilities() -> Capabilities {
        Capabilities {
            survives_restart: false,
            shared_between_processes: false,
            damageable_medium: false,
            bodies_outside_memory: false,
            ..Capabilities::ALL
        }
    }
    // ANCHOR_END: capabilities

    async fn create() -> Self {
        Self {
            manager: Arc::new(MapManager::new()),
        }
    }

    fn manager(&self) -> Arc<MapManager> {
        self.manager.clone()
    }

    async fn reopen(&self) -> MapManager {
        MapManager::new()
    }

    fn location(&self) -> String {
        String::new()
    }

    async fn open_location(_: &str) -> MapManager {
        MapManager::new()
    }

    async fn damage(&self, _: &str, _: Damage) -> Result<(), BoxError> {
        Err("memory cannot be damaged by a check".into())
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        self.manager.body_bytes()
    }
}

respcache_conformance::buffered_suite!(MapHarness);
// ANCHOR_END: harness
