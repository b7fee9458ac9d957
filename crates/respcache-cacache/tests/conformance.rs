//! The whole conformance suite against `CACacheManager` on a real cacache
//! directory, three levels down in a temporary directory that the key
//! checks list whole.

use std::path::PathBuf;
use std::sync::Arc;

use respcache_cacache::CACacheManager;
use respcache_conformance::{Capabilities, Damage, Harness, bytes_below, damage_file};
use respcache_core::BoxError;

struct CacacheHarness {
    dir: tempfile::TempDir,
    manager: Arc<CACacheManager>,
}

#[async_trait::async_trait]
impl Harness for CacacheHarness {
    type Manager = CACacheManager;

    /// Everything but `update_head`: an entry is one cacache content
    /// file, head and body together, so the manager declines to replace
    /// a head alone and the engine stores the whole response again.
    fn capabilities() -> Capabilities {
        Capabilities::DEFAULT
    }

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("a").join("b").join("cache");
        let manager = Arc::new(CACacheManager::new(root, true));
        Self { dir, manager }
    }

    fn manager(&self) -> Arc<CACacheManager> {
        self.manager.clone()
    }

    async fn reopen(&self) -> CACacheManager {
        CACacheManager::new(self.manager.path.clone(), true)
    }

    fn location(&self) -> String {
        self.manager.path.display().to_string()
    }

    async fn open_location(location: &str) -> CACacheManager {
        CACacheManager::new(location, true)
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.manager.path.clone())
    }

    fn sandbox(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
    }

    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError> {
        let path = match how {
            Damage::GarbleMetadata => self.manager.index_path(key),
            _ => self
                .manager
                .content_path(key)
                .await?
                .ok_or("the entry to damage is not indexed")?,
        };
        Ok(damage_file(&path, how)?)
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        Ok(bytes_below(&self.manager.path)?)
    }
}

respcache_conformance::buffered_suite!(CacacheHarness);
