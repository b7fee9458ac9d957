//! `MapManager`: a respcache backend in a `HashMap`, written against
//! respcache-core alone. Step 1 of the guide's "Implementing a backend":
//! the four methods every backend has, each doing what the conformance
//! suite checks, and the `Clone` the engine's `Buffered` needs.

// ANCHOR: manager
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use respcache_core::{CacheManager, CachePolicy, HttpResponse, Result, async_trait, http};

/// One stored response and its policy. Shared, never changed in place: a
/// reader holding one sees one whole entry however writers race.
type Entry = Arc<(HttpResponse, CachePolicy)>;

/// Responses kept in process memory, by key. A clone shares the map: the
/// engine (`respcache_http::Buffered`) clones its manager into the tasks
/// that store a body, so every clone must reach the same entries.
#[derive(Debug, Default, Clone)]
pub struct MapManager {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MapManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of the bodies held: what a harness reports as storage.
    pub fn body_bytes(&self) -> Result<u64> {
        Ok(self.lock()?.values().map(|e| e.0.body.len() as u64).sum())
    }

    /// The map. A thread that panicked while holding the lock left it
    /// whole (every change is one insert or remove), so a poisoned lock
    /// is taken over rather than passed on as a panic.
    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, Entry>>> {
        Ok(self.entries.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl CacheManager for MapManager {
    /// A missing key is `Ok(None)`, never an error.
    async fn get(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let entry = self.lock()?.get(key).cloned();
        // The clone outside the lock: headers are copied, the body is not.
        Ok(entry.map(|e| (e.0.clone(), e.1.clone())))
    }

    /// Replaces whatever the key held, whole, and returns what it stored.
    async fn put(
        &self,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let entry = Arc::new((response.clone(), policy));
        self.lock()?.insert(key, entry);
        Ok(response)
    }

    /// Deleting a missing key is `Ok(())` too.
    async fn delete(&self, key: &str) -> Result<()> {
        self.lock()?.remove(key);
        Ok(())
    }

    /// Optional (the trait's default declines): a `304 Not Modified`
    /// refreshes the head and policy and keeps the body, under the lock,
    /// so no put can slip between reading the body and storing the head.
    async fn update_head(
        &self,
        key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
    ) -> Result<bool> {
        let mut entries = self.lock()?;
        let Some(old) = entries.get(key) else {
            return Ok(false);
        };
        let mut response = old.0.clone();
        response.status = head.status.as_u16();
        response.version = head.version.into();
        response.headers = head.headers;
        entries.insert(key.to_owned(), Arc::new((response, policy)));
        Ok(true)
    }
}
// ANCHOR_END: manager
