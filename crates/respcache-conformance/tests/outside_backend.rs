//! The whole buffered suite against a backend written the way an author
//! outside the workspace wrote one (issue 13): one JSON file per key,
//! named by the SHA-256 of the key, written to a temporary file and
//! renamed, with the SHA-256 of the body checked on read. It uses nothing
//! but the public API of `respcache-core` and this crate.
//!
//! JSON writes a body as an array of numbers, three to four times its
//! length. The backend holds exactly one entry per key, so the storage
//! checks must pass: they judge what a backend holds, never how it
//! encodes it.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use respcache_conformance::{Damage, Harness, bytes_below, damage_file};
use respcache_core::{BoxError, CacheManager, CachePolicy, HttpResponse, Result};
use sha2::{Digest, Sha256};

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    key: String,
    body_sha256: String,
    response: HttpResponse,
    policy: CachePolicy,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
struct JsonFiles {
    root: PathBuf,
}

impl JsonFiles {
    fn path(&self, key: &str) -> PathBuf {
        self.root
            .join(format!("{}.json", hex(&Sha256::digest(key.as_bytes()))))
    }

    fn drop_damaged(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        self.remove(key)?;
        Ok(None)
    }

    fn remove(&self, key: &str) -> Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(err) if err.kind() != ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl CacheManager for JsonFiles {
    async fn get(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let bytes = match std::fs::read(self.path(key)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
            return self.drop_damaged(key);
        };
        if record.key != key {
            return Ok(None);
        }
        if record.body_sha256 != hex(&Sha256::digest(&record.response.body)) {
            return self.drop_damaged(key);
        }
        Ok(Some((record.response, record.policy)))
    }

    async fn put(
        &self,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        std::fs::create_dir_all(&self.root)?;
        let path = self.path(&key);
        let record = Record {
            body_sha256: hex(&Sha256::digest(&response.body)),
            key,
            response,
            policy,
        };
        let temp = self.root.join(format!(".tmp-{}", rand::random::<u64>()));
        std::fs::write(&temp, serde_json::to_vec(&record)?)?;
        std::fs::rename(&temp, path)?;
        Ok(record.response)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.remove(key)
    }
}

struct JsonHarness {
    dir: tempfile::TempDir,
    manager: Arc<JsonFiles>,
}

#[async_trait::async_trait]
impl Harness for JsonHarness {
    type Manager = JsonFiles;

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("a").join("b").join("cache");
        Self {
            dir,
            manager: Arc::new(JsonFiles { root }),
        }
    }

    fn manager(&self) -> Arc<JsonFiles> {
        self.manager.clone()
    }

    async fn reopen(&self) -> JsonFiles {
        JsonFiles {
            root: self.manager.root.clone(),
        }
    }

    fn location(&self) -> String {
        self.manager.root.display().to_string()
    }

    async fn open_location(location: &str) -> JsonFiles {
        JsonFiles {
            root: location.into(),
        }
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.manager.root.clone())
    }

    fn sandbox(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
    }

    async fn damage(&self, key: &str, how: Damage) -> std::result::Result<(), BoxError> {
        Ok(damage_file(&self.manager.path(key), how)?)
    }

    async fn stored_bytes(&self) -> std::result::Result<u64, BoxError> {
        Ok(bytes_below(&self.manager.root)?)
    }
}

respcache_conformance::buffered_suite!(JsonHarness);
