//! The whole conformance suite against `CACacheManager` on a real cacache
//! directory.

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use respcache_cacache::CACacheManager;
use respcache_conformance::{Damage, Harness, bytes_below};
use respcache_core::BoxError;

struct CacacheHarness {
    _dir: tempfile::TempDir,
    manager: Arc<CACacheManager>,
}

#[async_trait::async_trait]
impl Harness for CacacheHarness {
    type Manager = CACacheManager;

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let manager = Arc::new(CACacheManager::new(dir.path().join("cache"), true));
        Self { _dir: dir, manager }
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

    async fn damage(&self, key: &str, how: Damage) -> Result<(), BoxError> {
        let path = match how {
            Damage::GarbleMetadata => self.manager.index_path(key),
            _ => self
                .manager
                .content_path(key)
                .await?
                .ok_or("the entry to damage is not indexed")?,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        let len = file.metadata()?.len();
        match how {
            Damage::FlipBodyByte => {
                let mut bytes = std::fs::read(&path)?;
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                file.write_all(&bytes)?;
            }
            Damage::TruncateBody => file.set_len(len / 2)?,
            Damage::ExtendBody => {
                file.seek(SeekFrom::End(0))?;
                file.write_all(b"trailing garbage")?;
            }
            Damage::GarbleMetadata => {
                file.seek(SeekFrom::Start(len / 2))?;
                file.write_all(b"\x00garbled\x00")?;
            }
        }
        Ok(())
    }

    async fn stored_bytes(&self) -> Result<u64, BoxError> {
        Ok(bytes_below(&self.manager.path)?)
    }
}

respcache_conformance::buffered_suite!(CacacheHarness);
