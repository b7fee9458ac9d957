//! The whole conformance suite, buffered and streaming, against memory in
//! front of fs. The near tier keeps bodies up to 4 MiB, so the suite's
//! larger bodies (5 MiB buffered, 1 GiB streamed) exercise the far tier
//! alone while smaller ones live in both.

use std::path::PathBuf;
use std::sync::Arc;

use respcache_conformance::{Capabilities, Damage, Harness, bytes_below, damage_file};
use respcache_core::{BoxError, CacheManager};
use respcache_fs::StreamingManager;
use respcache_memory::MemoryManager;
use respcache_tiered::TieredManager;

type Tiered = TieredManager<MemoryManager, StreamingManager>;

fn open(root: PathBuf) -> Tiered {
    let near = MemoryManager::builder(256 * 1024 * 1024)
        .max_body_size(4 * 1024 * 1024)
        .build();
    TieredManager::new(near, StreamingManager::new(root))
}

struct TieredHarness {
    dir: tempfile::TempDir,
    root: PathBuf,
    manager: Arc<Tiered>,
}

#[async_trait::async_trait]
impl Harness for TieredHarness {
    type Manager = Tiered;

    /// Everything but agreement at once: each manager's near tier serves
    /// its own copies for a while after another manager changed the far
    /// tier (see the crate docs).
    fn capabilities() -> Capabilities {
        Capabilities {
            coherent_between_managers: false,
            ..Capabilities::ALL
        }
    }

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("a").join("b").join("cache");
        let manager = Arc::new(open(root.clone()));
        Self { dir, root, manager }
    }

    fn manager(&self) -> Arc<Tiered> {
        self.manager.clone()
    }

    async fn reopen(&self) -> Tiered {
        open(self.root.clone())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn open_location(location: &str) -> Tiered {
        open(location.into())
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    fn sandbox(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
    }

    /// Process memory cannot be damaged, so the entry leaves the near tier
    /// (as after an eviction or a restart) and the far tier's copy is
    /// damaged: what a read then gets must be a miss, never promoted.
    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError> {
        self.manager.near().delete(key).await?;
        let far = self.manager.far();
        let path = match how {
            Damage::GarbleMetadata => far.metadata_path(key),
            _ => far
                .body_path(key)
                .await?
                .ok_or("the entry to damage is not stored")?,
        };
        Ok(damage_file(&path, how)?)
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        Ok(self.manager.near().weight() + bytes_below(&self.root)?)
    }

    async fn reclaim(&self) -> Result<(), BoxError> {
        self.manager.far().gc().await?;
        Ok(())
    }
}

respcache_conformance::buffered_suite!(TieredHarness);
respcache_conformance::streaming_suite!(TieredHarness);
