//! The whole conformance suite, buffered and streaming, against
//! `StreamingManager` on a real directory.

use std::path::PathBuf;
use std::sync::Arc;

use respcache_conformance::{Capabilities, Damage, Harness, bytes_below, damage_file};
use respcache_core::BoxError;
use respcache_fs::StreamingManager;

struct FsHarness {
    dir: tempfile::TempDir,
    root: PathBuf,
    manager: Arc<StreamingManager>,
}

#[async_trait::async_trait]
impl Harness for FsHarness {
    type Manager = StreamingManager;

    fn capabilities() -> Capabilities {
        Capabilities::ALL
    }

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("a").join("b").join("cache");
        let manager = Arc::new(StreamingManager::new(root.clone()));
        Self { dir, root, manager }
    }

    fn manager(&self) -> Arc<StreamingManager> {
        self.manager.clone()
    }

    async fn reopen(&self) -> StreamingManager {
        StreamingManager::new(self.root.clone())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn open_location(location: &str) -> StreamingManager {
        StreamingManager::new(location.into())
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    fn sandbox(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
    }

    // ANCHOR: differs
    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError> {
        let path = match how {
            Damage::GarbleMetadata => self.manager.metadata_path(key),
            _ => self
                .manager
                .body_path(key)
                .await?
                .ok_or("the entry to damage is not stored")?,
        };
        Ok(damage_file(&path, how)?)
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        Ok(bytes_below(&self.root)?)
    }

    async fn reclaim(&self) -> Result<(), BoxError> {
        self.manager.gc().await?;
        Ok(())
    }
}

respcache_conformance::buffered_suite!(FsHarness);
respcache_conformance::streaming_suite!(FsHarness);
// ANCHOR_END: differs
