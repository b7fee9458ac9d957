//! Managers broken on purpose, one defect each, built around a real
//! `CACacheManager`; [`Faithful`] is the same wrapper without a defect.
//! Each defect is one a backend author could plausibly write.

use std::collections::{BTreeSet, HashMap};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use respcache_cacache::CACacheManager;
use respcache_conformance::{Capabilities, Damage, Harness, bytes_below, damage_file};
use respcache_core::{
    BoxError, CacheManager, CachePolicy, HttpResponse, HttpVersion, Result, StoreHints,
};
use sha2::Digest;

/// Where a broken manager keeps its entries: a cacache directory, and the
/// root for defects that keep files of their own beside it.
pub struct Store {
    root: PathBuf,
    cacache: CACacheManager,
    /// Tag → every key ever stored with it: an index that is never
    /// cleaned, as an append-only one would be.
    tag_index: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Key → the tags its current entry carries.
    carried: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl Store {
    /// Records the tags of the entry now stored under `key`.
    fn set_tags(&self, key: &str, tags: Vec<String>) {
        let mut index = self.tag_index.lock().unwrap();
        for tag in &tags {
            index.entry(tag.clone()).or_default().insert(key.to_owned());
        }
        self.carried
            .lock()
            .unwrap()
            .insert(key.to_owned(), tags.into_iter().collect());
    }

    /// Every key the index names for `tag`, whatever its entry carries now.
    fn indexed(&self, tag: &str) -> Vec<String> {
        let index = self.tag_index.lock().unwrap();
        index.get(tag).into_iter().flatten().cloned().collect()
    }

    /// Whether the current entry of `key` carries `tag`.
    fn carries(&self, key: &str, tag: &str) -> bool {
        let carried = self.carried.lock().unwrap();
        carried.get(key).is_some_and(|tags| tags.contains(tag))
    }

    /// A file of this manager's own for `key` in `dir` below the root.
    fn file_for(&self, dir: &str, key: &str) -> PathBuf {
        let digest = sha2::Sha256::digest(key.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.root.join(dir).join(name)
    }
}

/// One defect: how the broken manager differs from cacache used right.
#[async_trait::async_trait]
pub trait Defect: Send + Sync + Sized + 'static {
    /// The defect's state for a manager on `root`.
    fn open(root: &Path) -> Self;

    /// What the harness declares for it.
    fn capabilities() -> Capabilities {
        Capabilities::DEFAULT
    }

    /// Whether deletes remove content as well as the index entry.
    fn remove_fully() -> bool {
        true
    }

    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        s.cacache.get(key).await
    }

    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        s.cacache.put(key, response, policy).await
    }

    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        s.cacache.delete(key).await
    }

    async fn keys(&self, s: &Store, prefix: &str) -> Result<Option<Vec<String>>> {
        s.cacache.keys(prefix).await
    }

    async fn tagged(&self, s: &Store, tag: &str) -> Result<Option<Vec<String>>> {
        let keys = s.indexed(tag);
        Ok(Some(
            keys.into_iter().filter(|key| s.carries(key, tag)).collect(),
        ))
    }

    /// The file `damage` must change, where the defect keeps a body or a
    /// record somewhere cacache does not.
    fn damaged_file(&self, _s: &Store, _key: &str, _how: Damage) -> Option<PathBuf> {
        None
    }

    /// The key cacache holds the entry under.
    fn cacache_key(key: &str) -> String {
        key.to_owned()
    }
}

/// No defect: the control.
pub struct Faithful;
impl Defect for Faithful {
    fn open(_: &Path) -> Self {
        Faithful
    }
}

/// `get` and `delete` of a key never stored fail with "not found", as a
/// backend that passes on the file system's error does.
pub struct MissingKeyIsAnError;
#[async_trait::async_trait]
impl Defect for MissingKeyIsAnError {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        match s.cacache.get(key).await? {
            Some(found) => Ok(Some(found)),
            None => Err(
                std::io::Error::new(ErrorKind::NotFound, format!("no entry for {key:?}")).into(),
            ),
        }
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        if s.cacache.get(key).await?.is_none() {
            return Err(
                std::io::Error::new(ErrorKind::NotFound, format!("no entry for {key:?}")).into(),
            );
        }
        s.cacache.delete(key).await
    }
}

fn first_values(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in headers.keys() {
        if let Some(first) = headers.get(name) {
            kept.insert(name.clone(), first.clone());
        }
    }
    kept
}

/// Stores only the first value of each header field, and returns the
/// response it was given.
pub struct DropsRepeatedHeaderValues;
#[async_trait::async_trait]
impl Defect for DropsRepeatedHeaderValues {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let mut stored = response.clone();
        stored.headers = first_values(&response.headers);
        s.cacache.put(key, stored, policy).await?;
        Ok(response)
    }
}

/// Returns bodies one byte short.
pub struct TruncatesBodies;
#[async_trait::async_trait]
impl Defect for TruncatesBodies {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        Ok(s.cacache.get(key).await?.map(|(mut response, policy)| {
            let len = response.body.len().saturating_sub(1);
            response.body.truncate(len);
            (response, policy)
        }))
    }
}

/// Stores every version but HTTP/1.0 as HTTP/1.1, as a backend that
/// writes the version as `HTTP/1.x` would.
pub struct StoresVersionsAsHttp11;
#[async_trait::async_trait]
impl Defect for StoresVersionsAsHttp11 {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        mut response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        if response.version != HttpVersion::Http10 {
            response.version = HttpVersion::Http11;
        }
        s.cacache.put(key, response, policy).await
    }
}

/// Stores header values through `String::from_utf8_lossy`.
pub struct StoresHeaderValuesAsUtf8Lossy;
#[async_trait::async_trait]
impl Defect for StoresHeaderValuesAsUtf8Lossy {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        mut response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let mut lossy = HeaderMap::new();
        for (name, value) in &response.headers {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            lossy.append(name.clone(), HeaderValue::from_str(&text)?);
        }
        response.headers = lossy;
        s.cacache.put(key, response, policy).await
    }
}

/// Reads an entry with an empty body as no entry.
pub struct EmptyBodyReadsAsMissing;
#[async_trait::async_trait]
impl Defect for EmptyBodyReadsAsMissing {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        Ok(s.cacache
            .get(key)
            .await?
            .filter(|(response, _)| !response.body.is_empty()))
    }
}

/// Stores bodies through `String::from_utf8_lossy`.
pub struct StoresBodiesAsUtf8Lossy;
#[async_trait::async_trait]
impl Defect for StoresBodiesAsUtf8Lossy {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        mut response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        response.body = Bytes::from(String::from_utf8_lossy(&response.body).into_owned());
        s.cacache.put(key, response, policy).await
    }
}

/// Silently keeps only the first MiB of a body, as a backend with a value
/// size limit that cuts instead of refusing would.
pub struct CapsBodiesAt1Mib;
#[async_trait::async_trait]
impl Defect for CapsBodiesAt1Mib {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        mut response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        response.body.truncate(1024 * 1024);
        s.cacache.put(key, response, policy).await
    }
}

/// Stores statuses above 599 as 500.
pub struct ClampsUnknownStatuses;
#[async_trait::async_trait]
impl Defect for ClampsUnknownStatuses {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        mut response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        if response.status > 599 {
            response.status = 500;
        }
        s.cacache.put(key, response, policy).await
    }
}

/// Does not keep the policy: rebuilds one on read from the stored head
/// and a bare GET, losing the request the policy was made for.
pub struct RebuildsThePolicyOnRead;
#[async_trait::async_trait]
impl Defect for RebuildsThePolicyOnRead {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let Some((response, _)) = s.cacache.get(key).await? else {
            return Ok(None);
        };
        let request = http::Request::get(response.url.as_str()).body(())?;
        let mut head = http::Response::new(());
        *head.status_mut() = http::StatusCode::from_u16(response.status)?;
        *head.headers_mut() = response.headers.clone();
        let policy = CachePolicy::new(&request, &head);
        Ok(Some((response, policy)))
    }
}

/// Stores a key only if it holds nothing yet (put-if-absent).
pub struct KeepsTheFirstPut;
#[async_trait::async_trait]
impl Defect for KeepsTheFirstPut {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        if s.cacache.get(&key).await?.is_some() {
            return Ok(response);
        }
        s.cacache.put(key, response, policy).await
    }
}

/// Answers `Ok(())` to delete and keeps the entry.
pub struct IgnoresDelete;
#[async_trait::async_trait]
impl Defect for IgnoresDelete {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn delete(&self, _s: &Store, _key: &str) -> Result<()> {
        Ok(())
    }
}

const BODY_INTEGRITY: &str = "x-broken-body-integrity";

/// Keeps each body once, by its hash, shared by every key with the same
/// body; but a delete or an overwrite removes the key's body without
/// asking whether another key still uses it.
pub struct DedupWithUnsafeDelete;
impl DedupWithUnsafeDelete {
    async fn body_of(
        s: &Store,
        key: &str,
    ) -> Result<Option<(HttpResponse, CachePolicy, cacache::Integrity)>> {
        let Some((mut head, policy)) = s.cacache.get(key).await? else {
            return Ok(None);
        };
        let integrity: cacache::Integrity = head
            .headers
            .remove(BODY_INTEGRITY)
            .ok_or("no body integrity")?
            .to_str()?
            .parse()?;
        Ok(Some((head, policy, integrity)))
    }
}
#[async_trait::async_trait]
impl Defect for DedupWithUnsafeDelete {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let Some((mut head, policy, integrity)) = Self::body_of(s, key).await? else {
            return Ok(None);
        };
        match cacache::read_hash_sync(&s.root, &integrity) {
            Ok(body) => {
                head.body = body.into();
                Ok(Some((head, policy)))
            }
            Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        if let Some((_, _, old)) = Self::body_of(s, &key).await? {
            let _ = cacache::remove_hash_sync(&s.root, &old);
        }
        let integrity = cacache::write_hash_sync(&s.root, &response.body)?;
        let mut head = response.clone();
        head.body = Bytes::new();
        head.headers.insert(
            BODY_INTEGRITY,
            HeaderValue::from_str(&integrity.to_string())?,
        );
        s.cacache.put(key, head, policy).await?;
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        if let Some((_, _, integrity)) = Self::body_of(s, key).await? {
            let _ = cacache::remove_hash_sync(&s.root, &integrity);
        }
        s.cacache.delete(key).await
    }
}

/// Deletes every key that starts with the one asked for, as a Redis
/// backend that deletes by `KEYS prefix*` without a delimiter does.
pub struct DeletesByPrefix {
    keys: Mutex<BTreeSet<String>>,
}
#[async_trait::async_trait]
impl Defect for DeletesByPrefix {
    fn open(_: &Path) -> Self {
        Self {
            keys: Mutex::new(BTreeSet::new()),
        }
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.keys
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key.clone());
        s.cacache.put(key, response, policy).await
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        let doomed: Vec<String> = {
            let mut keys = self.keys.lock().map_err(|e| e.to_string())?;
            let doomed: Vec<String> = keys
                .iter()
                .filter(|k| k.starts_with(key))
                .cloned()
                .collect();
            for k in &doomed {
                keys.remove(k);
            }
            doomed
        };
        for k in doomed.iter().map(String::as_str).chain([key]) {
            s.cacache.delete(k).await?;
        }
        Ok(())
    }
}

macro_rules! maps_keys {
    ($(#[$doc:meta])* $name:ident, |$key:ident| $map:expr) => {
        $(#[$doc])*
        pub struct $name;
        #[async_trait::async_trait]
        impl Defect for $name {
            fn open(_: &Path) -> Self {
                Self
            }
            async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
                s.cacache.get(&Self::cacache_key(key)).await
            }
            async fn put(
                &self,
                s: &Store,
                key: String,
                response: HttpResponse,
                policy: CachePolicy,
            ) -> Result<HttpResponse> {
                s.cacache.put(Self::cacache_key(&key), response, policy).await
            }
            async fn delete(&self, s: &Store, key: &str) -> Result<()> {
                s.cacache.delete(&Self::cacache_key(key)).await
            }
            fn cacache_key($key: &str) -> String {
                $map
            }
        }
    };
}

maps_keys!(
    /// Reads a backslash as a slash, so `a\b\c` and `a/b/c` are one entry.
    NormalisesPathSyntax,
    |key| key.replace('\\', "/")
);
maps_keys!(
    /// Folds keys to lower case.
    FoldsKeyCase,
    |key| key.to_lowercase()
);
maps_keys!(
    /// Cuts keys at 1 KiB.
    CutsKeysAt1Kib,
    |key| key.chars().take(1024).collect()
);

/// One file per key at `path`, JSON-encoded, written in place.
fn write_entry(path: &Path, response: &HttpResponse, policy: &CachePolicy) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_vec(&(response, policy))?)?;
    Ok(())
}

fn read_entry(path: &Path) -> Result<Option<(HttpResponse, CachePolicy)>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err.into()),
        _ => Ok(()),
    }
}

/// Keeps each entry in a file at `root.join(key)`: a `..` or absolute key
/// writes wherever it points.
pub struct JoinsKeysOntoRoot;
#[async_trait::async_trait]
impl Defect for JoinsKeysOntoRoot {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        read_entry(&s.root.join(key))
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        write_entry(&s.root.join(&key), &response, &policy)?;
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        remove_file(&s.root.join(key))
    }
}

/// Keeps each entry in a file named by the hex of its key, with no hash
/// for keys too long to be a file name.
pub struct HexKeysAsFileNames;
impl HexKeysAsFileNames {
    fn path(s: &Store, key: &str) -> PathBuf {
        let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        s.root.join(hex)
    }
}
#[async_trait::async_trait]
impl Defect for HexKeysAsFileNames {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        read_entry(&Self::path(s, key))
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        write_entry(&Self::path(s, &key), &response, &policy)?;
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        remove_file(&Self::path(s, key))
    }
}

/// Decodes cacache content read without its integrity check; the layout
/// is `respcache-cacache`'s documented format.
fn decode_unchecked(bytes: &[u8]) -> Option<(HttpResponse, CachePolicy)> {
    #[derive(serde::Deserialize)]
    struct Stored {
        #[allow(dead_code)]
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    }
    let payload = bytes.strip_prefix(respcache_cacache::FORMAT_PREFIX.as_slice())?;
    let stored: Stored = bincode::deserialize(payload).ok()?;
    Some((stored.response, stored.policy))
}

/// Checks only that the content has the length the index recorded, not
/// its digest.
pub struct ChecksIntegrityOnlyByLength;
#[async_trait::async_trait]
impl Defect for ChecksIntegrityOnlyByLength {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let Some(entry) = cacache::metadata(&s.root, key).await? else {
            return Ok(None);
        };
        let Some(path) = s.cacache.content_path(key).await? else {
            return Ok(None);
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if bytes.len() != entry.size {
            return Ok(None);
        }
        Ok(decode_unchecked(&bytes))
    }
}

/// The head and policy as a cacache entry, the body as a plain file of its
/// own beside it, read back as it is.
async fn put_head(
    s: &Store,
    key: &str,
    response: &HttpResponse,
    policy: CachePolicy,
) -> Result<()> {
    let mut head = response.clone();
    head.body = Bytes::new();
    s.cacache.put(key.to_owned(), head, policy).await?;
    Ok(())
}

async fn get_head_and_body_file(
    s: &Store,
    key: &str,
) -> Result<Option<(HttpResponse, CachePolicy)>> {
    let Some((mut response, policy)) = s.cacache.get(key).await? else {
        return Ok(None);
    };
    match std::fs::read(s.file_for("bodies", key)) {
        Ok(body) => {
            response.body = body.into();
            Ok(Some((response, policy)))
        }
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn delete_head_and_body_file(s: &Store, key: &str) -> Result<()> {
    s.cacache.delete(key).await?;
    remove_file(&s.file_for("bodies", key))
}

/// Keeps the body in a file of its own, written to a temporary file and
/// renamed, but never checks it on read.
pub struct NoIntegrityCheck;
#[async_trait::async_trait]
impl Defect for NoIntegrityCheck {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        get_head_and_body_file(s, key).await
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let path = s.file_for("bodies", &key);
        std::fs::create_dir_all(s.root.join("bodies"))?;
        let temp = path.with_extension(format!("tmp{}", rand::random::<u64>()));
        std::fs::write(&temp, &response.body)?;
        std::fs::rename(&temp, &path)?;
        put_head(s, &key, &response, policy).await?;
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        delete_head_and_body_file(s, key).await
    }
    fn damaged_file(&self, s: &Store, key: &str, how: Damage) -> Option<PathBuf> {
        (how != Damage::GarbleMetadata).then(|| s.file_for("bodies", key))
    }
}

/// Keeps each entry in one file, its head first and its body after it,
/// and writes that file in place, syncing every 64 KiB: no temporary file,
/// no rename, so a reader finds whatever part of the body was written.
pub struct WritesInPlace;
impl WritesInPlace {
    fn path(s: &Store, key: &str) -> PathBuf {
        s.file_for("entries", key)
    }
}
#[async_trait::async_trait]
impl Defect for WritesInPlace {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let bytes = match std::fs::read(Self::path(s, key)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*len) as usize;
        let Some(head) = rest.get(..len) else {
            return Ok(None);
        };
        let Ok((mut response, policy)) =
            serde_json::from_slice::<(HttpResponse, CachePolicy)>(head)
        else {
            return Ok(None);
        };
        response.body = Bytes::copy_from_slice(&rest[len..]);
        Ok(Some((response, policy)))
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let mut head = response.clone();
        head.body = Bytes::new();
        let head = serde_json::to_vec(&(&head, &policy))?;
        let mut bytes = (head.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&response.body);
        std::fs::create_dir_all(s.root.join("entries"))?;
        let mut file = std::fs::File::create(Self::path(s, &key))?;
        for chunk in bytes.chunks(64 * 1024) {
            file.write_all(chunk)?;
            file.sync_data()?;
        }
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        remove_file(&Self::path(s, key))
    }
}

/// Reports an entry whose index it cannot decode as an error, instead of
/// a miss.
pub struct GarbledMetadataIsAnError;
#[async_trait::async_trait]
impl Defect for GarbledMetadataIsAnError {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let found = s.cacache.get(key).await?;
        if found.is_none() && s.cacache.index_path(key).is_file() {
            return Err(format!("the index entry of {key:?} does not decode").into());
        }
        Ok(found)
    }
}

fn part(key: &str, part: &str) -> String {
    format!("{key}\u{0}{part}")
}

/// Keeps head and body as two cacache entries, each written whole, with
/// nothing tying one to the other: correct one call at a time, torn when
/// calls on one key overlap.
pub struct LockFreeRacer;
#[async_trait::async_trait]
impl Defect for LockFreeRacer {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let head = s.cacache.get(&part(key, "head")).await?;
        tokio::task::yield_now().await;
        let body = s.cacache.get(&part(key, "body")).await?;
        Ok(match (head, body) {
            (Some((mut head, policy)), Some((body, _))) => {
                head.body = body.body;
                Some((head, policy))
            }
            _ => None,
        })
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        put_head(s, &part(&key, "head"), &response, policy.clone()).await?;
        tokio::task::yield_now().await;
        let mut body = response.clone();
        body.headers = HeaderMap::new();
        s.cacache.put(part(&key, "body"), body, policy).await?;
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        s.cacache.delete(&part(key, "head")).await?;
        s.cacache.delete(&part(key, "body")).await
    }
}

/// Remembers which cacache entry holds each key in memory only: a new
/// manager finds nothing.
pub struct IndexOnlyInMemory {
    index: Mutex<HashMap<String, String>>,
}
#[async_trait::async_trait]
impl Defect for IndexOnlyInMemory {
    fn open(_: &Path) -> Self {
        Self {
            index: Mutex::new(HashMap::new()),
        }
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let inner = self
            .index
            .lock()
            .map_err(|e| e.to_string())?
            .get(key)
            .cloned();
        match inner {
            Some(inner) => s.cacache.get(&inner).await,
            None => Ok(None),
        }
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let inner = part(&key, &rand::random::<u64>().to_string());
        let stored = s.cacache.put(inner.clone(), response, policy).await?;
        let old = self
            .index
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key, inner);
        if let Some(old) = old {
            s.cacache.delete(&old).await?;
        }
        Ok(stored)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        let old = self.index.lock().map_err(|e| e.to_string())?.remove(key);
        match old {
            Some(old) => s.cacache.delete(&old).await,
            None => Ok(()),
        }
    }
}

/// Keeps what it writes and reads in its own memory too, and answers
/// from there first: a second manager on the location sees what this one
/// stored (the restart check passes), but this one goes on returning what
/// the other deleted or replaced.
pub struct KeepsEntriesInProcess {
    kept: Mutex<HashMap<String, (HttpResponse, CachePolicy)>>,
}
impl KeepsEntriesInProcess {
    fn keep(&self, key: &str, entry: &(HttpResponse, CachePolicy)) -> Result<()> {
        self.kept
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key.to_owned(), entry.clone());
        Ok(())
    }
}
#[async_trait::async_trait]
impl Defect for KeepsEntriesInProcess {
    fn open(_: &Path) -> Self {
        Self {
            kept: Mutex::new(HashMap::new()),
        }
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let kept = self
            .kept
            .lock()
            .map_err(|e| e.to_string())?
            .get(key)
            .cloned();
        if kept.is_some() {
            return Ok(kept);
        }
        let found = s.cacache.get(key).await?;
        if let Some(entry) = &found {
            self.keep(key, entry)?;
        }
        Ok(found)
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.keep(&key, &(response.clone(), policy.clone()))?;
        s.cacache.put(key, response, policy).await
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        self.kept.lock().map_err(|e| e.to_string())?.remove(key);
        s.cacache.delete(key).await
    }
}

/// Keeps an index file mapping keys to cacache entries, read fresh on
/// every get, but rewritten on every put and delete from the copy this
/// manager loaded when it opened: another process's keys vanish.
pub struct RewritesASharedIndex {
    index: Mutex<HashMap<String, String>>,
}
impl RewritesASharedIndex {
    fn file(root: &Path) -> PathBuf {
        root.join("shared-index.json")
    }
    fn load(root: &Path) -> HashMap<String, String> {
        std::fs::read(Self::file(root))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }
    fn save(root: &Path, index: &HashMap<String, String>) -> Result<()> {
        std::fs::create_dir_all(root)?;
        let temp = root.join(format!("shared-index.{}", rand::random::<u64>()));
        std::fs::write(&temp, serde_json::to_vec(index)?)?;
        std::fs::rename(temp, Self::file(root))?;
        Ok(())
    }
}
#[async_trait::async_trait]
impl Defect for RewritesASharedIndex {
    fn open(root: &Path) -> Self {
        Self {
            index: Mutex::new(Self::load(root)),
        }
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        match Self::load(&s.root).get(key) {
            Some(inner) => s.cacache.get(inner).await,
            None => Ok(None),
        }
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        let inner = part(&key, &rand::random::<u64>().to_string());
        let stored = s.cacache.put(inner.clone(), response, policy).await?;
        let mut index = self.index.lock().map_err(|e| e.to_string())?;
        index.insert(key, inner);
        Self::save(&s.root, &index)?;
        Ok(stored)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        let mut index = self.index.lock().map_err(|e| e.to_string())?;
        index.remove(key);
        Self::save(&s.root, &index)
    }
}

/// Deletes only the index entry (cacache's `remove_fully(false)`): the
/// content stays on disk.
pub struct DeletesOnlyTheIndex;
impl Defect for DeletesOnlyTheIndex {
    fn open(_: &Path) -> Self {
        Self
    }
    fn remove_fully() -> bool {
        false
    }
}

/// Writes with cacache's plain `write`, which appends an index line and
/// keeps the old content: every overwrite leaves the previous body behind.
pub struct LeaksOnOverwrite;
#[async_trait::async_trait]
impl Defect for LeaksOnOverwrite {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn get(&self, s: &Store, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        match cacache::read_sync(&s.root, key) {
            Ok(bytes) => Ok(Some(bincode::deserialize(&bytes)?)),
            Err(cacache::Error::EntryNotFound(..)) => Ok(None),
            Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        cacache::write_sync(&s.root, &key, bincode::serialize(&(&response, &policy))?)?;
        Ok(response)
    }
    async fn delete(&self, s: &Store, key: &str) -> Result<()> {
        match cacache::RemoveOpts::new()
            .remove_fully(true)
            .remove_sync(&s.root, key)
        {
            Ok(()) => Ok(()),
            Err(cacache::Error::IoError(err, _)) if err.kind() == ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

/// A manager with defect `D`.
pub struct Broken<D> {
    store: Store,
    defect: D,
}

impl<D> std::fmt::Debug for Broken<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<D>())
    }
}

impl<D: Defect> Broken<D> {
    fn open(root: PathBuf) -> Self {
        Self {
            defect: D::open(&root),
            store: Store {
                cacache: CACacheManager::new(root.clone(), D::remove_fully()),
                root,
                tag_index: Mutex::default(),
                carried: Mutex::default(),
            },
        }
    }
}

#[async_trait::async_trait]
impl<D: Defect> CacheManager for Broken<D> {
    async fn get(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        self.defect.get(&self.store, key).await
    }

    async fn put(
        &self,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.store.set_tags(&key, Vec::new());
        self.defect.put(&self.store, key, response, policy).await
    }

    async fn put_with(
        &self,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<HttpResponse> {
        self.store
            .set_tags(&key, hints.tags.clone().unwrap_or_default());
        self.defect.put(&self.store, key, response, policy).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store.carried.lock().unwrap().remove(key);
        self.defect.delete(&self.store, key).await
    }

    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        self.defect.keys(&self.store, prefix).await
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        self.defect.tagged(&self.store, tag).await
    }
}

/// `keys` answers from a log of every key ever stored, as an append-only
/// key index would, so deleted keys are still listed.
pub struct ListsDeletedKeys(Mutex<BTreeSet<String>>);
#[async_trait::async_trait]
impl Defect for ListsDeletedKeys {
    fn open(_: &Path) -> Self {
        Self(Mutex::default())
    }
    async fn put(
        &self,
        s: &Store,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.0.lock().unwrap().insert(key.clone());
        s.cacache.put(key, response, policy).await
    }
    async fn keys(&self, _s: &Store, prefix: &str) -> Result<Option<Vec<String>>> {
        let log = self.0.lock().unwrap();
        Ok(Some(
            log.iter()
                .filter(|key| key.starts_with(prefix))
                .cloned()
                .collect(),
        ))
    }
}

/// `tagged` answers from the tag index without checking what each entry
/// carries now, so an entry replaced without the tag, or deleted, is
/// still listed.
pub struct TagIndexNeverForgets;
#[async_trait::async_trait]
impl Defect for TagIndexNeverForgets {
    fn open(_: &Path) -> Self {
        Self
    }
    async fn tagged(&self, s: &Store, tag: &str) -> Result<Option<Vec<String>>> {
        Ok(Some(s.indexed(tag)))
    }
}

/// A fresh sandbox with the broken manager's root two levels down in it.
pub struct Wrapped<D> {
    dir: tempfile::TempDir,
    root: PathBuf,
    manager: Arc<Broken<D>>,
}

#[async_trait::async_trait]
impl<D: Defect> Harness for Wrapped<D> {
    type Manager = Broken<D>;

    fn capabilities() -> Capabilities {
        D::capabilities()
    }

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("a").join("b").join("cache");
        let manager = Arc::new(Broken::open(root.clone()));
        Self { dir, root, manager }
    }

    fn manager(&self) -> Arc<Broken<D>> {
        self.manager.clone()
    }

    async fn reopen(&self) -> Broken<D> {
        Broken::open(self.root.clone())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn open_location(location: &str) -> Broken<D> {
        Broken::open(location.into())
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    fn sandbox(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
    }

    async fn damage(&self, key: &str, how: Damage) -> std::result::Result<(), BoxError> {
        let store = &self.manager.store;
        let path = match self.manager.defect.damaged_file(store, key, how) {
            Some(path) => path,
            None => {
                let key = D::cacache_key(key);
                match how {
                    Damage::GarbleMetadata => store.cacache.index_path(&key),
                    _ => store
                        .cacache
                        .content_path(&key)
                        .await?
                        .ok_or("not indexed")?,
                }
            }
        };
        Ok(damage_file(&path, how)?)
    }

    async fn stored_bytes(&self) -> std::result::Result<u64, BoxError> {
        Ok(bytes_below(&self.root)?)
    }
}
