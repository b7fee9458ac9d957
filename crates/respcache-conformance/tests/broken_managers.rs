//! The suite's own proof that its checks can fail: managers broken on
//! purpose, each wrapped around a real `CACacheManager`, must fail the
//! checks that guard against their defect, while the same wrapper without a
//! defect passes those very checks.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use respcache_cacache::CACacheManager;
use respcache_conformance::{Damage, Harness, bytes_below, checks, damage_file};
use respcache_core::{BoxError, CacheManager, CachePolicy, HttpResponse, Result};

/// One defect, applied around a correct manager.
trait Defect: Send + Sync + 'static {
    /// The key the broken manager really uses.
    fn key(key: &str) -> String {
        key.to_owned()
    }
    /// What the broken manager really stores.
    fn on_put(response: HttpResponse) -> HttpResponse {
        response
    }
    /// What the broken manager really returns.
    fn on_get(response: HttpResponse) -> HttpResponse {
        response
    }
    /// Whether delete does nothing.
    const IGNORES_DELETE: bool = false;
    /// Whether reads skip the content's integrity check.
    const SKIPS_INTEGRITY: bool = false;
}

/// No defect: the control.
struct Faithful;
impl Defect for Faithful {}

/// Keeps only the first value of each header field.
struct DropsRepeatedHeaderValues;
impl Defect for DropsRepeatedHeaderValues {
    fn on_put(mut response: HttpResponse) -> HttpResponse {
        let mut kept = http::HeaderMap::new();
        for name in response.headers.keys() {
            if let Some(first) = response.headers.get(name) {
                kept.insert(name.clone(), first.clone());
            }
        }
        response.headers = kept;
        response
    }
}

/// Returns bodies one byte short.
struct TruncatesBodies;
impl Defect for TruncatesBodies {
    fn on_get(mut response: HttpResponse) -> HttpResponse {
        let len = response.body.len().saturating_sub(1);
        response.body.truncate(len);
        response
    }
}

/// Folds case and cuts keys at 1 KiB, so distinct keys share an entry.
struct MapsTwoKeysToOneEntry;
impl Defect for MapsTwoKeysToOneEntry {
    fn key(key: &str) -> String {
        key.to_lowercase().chars().take(1024).collect()
    }
}

/// Answers `Ok(())` to delete and keeps the entry.
struct IgnoresDelete;
impl Defect for IgnoresDelete {
    const IGNORES_DELETE: bool = true;
}

/// Reads content without checking its digest.
struct ReturnsDamagedBodies;
impl Defect for ReturnsDamagedBodies {
    const SKIPS_INTEGRITY: bool = true;
}

struct Broken<D> {
    inner: CACacheManager,
    defect: PhantomData<D>,
}

impl<D> std::fmt::Debug for Broken<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broken")
    }
}

/// Decodes content read without its integrity check; the layout is
/// `respcache-cacache`'s documented format.
fn decode_unchecked(bytes: &[u8]) -> Option<(HttpResponse, CachePolicy)> {
    #[derive(serde::Deserialize)]
    struct Store {
        #[allow(dead_code)]
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    }
    let payload = bytes.strip_prefix(respcache_cacache::FORMAT_PREFIX.as_slice())?;
    let store: Store = bincode::deserialize(payload).ok()?;
    Some((store.response, store.policy))
}

#[async_trait::async_trait]
impl<D: Defect> CacheManager for Broken<D> {
    async fn get(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        let key = D::key(key);
        let found = if D::SKIPS_INTEGRITY {
            match self.inner.content_path(&key).await? {
                Some(path) => std::fs::read(path).ok().and_then(|b| decode_unchecked(&b)),
                None => None,
            }
        } else {
            self.inner.get(&key).await?
        };
        Ok(found.map(|(response, policy)| (D::on_get(response), policy)))
    }

    async fn put(
        &self,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.inner
            .put(D::key(&key), D::on_put(response.clone()), policy)
            .await?;
        Ok(response)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if D::IGNORES_DELETE {
            return Ok(());
        }
        self.inner.delete(&D::key(key)).await
    }
}

struct BrokenHarness<D> {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manager: Arc<Broken<D>>,
}

fn broken<D>(root: PathBuf) -> Broken<D> {
    Broken {
        inner: CACacheManager::new(root, true),
        defect: PhantomData,
    }
}

#[async_trait::async_trait]
impl<D: Defect> Harness for BrokenHarness<D> {
    type Manager = Broken<D>;

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("cache");
        let manager = Arc::new(broken(root.clone()));
        Self {
            _dir: dir,
            root,
            manager,
        }
    }

    fn manager(&self) -> Arc<Broken<D>> {
        self.manager.clone()
    }

    async fn reopen(&self) -> Broken<D> {
        broken(self.root.clone())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn open_location(location: &str) -> Broken<D> {
        broken(location.into())
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    async fn damage(&self, key: &str, how: Damage) -> std::result::Result<(), BoxError> {
        let inner = &self.manager.inner;
        let key = D::key(key);
        let path = match how {
            Damage::GarbleMetadata => inner.index_path(&key),
            _ => inner.content_path(&key).await?.ok_or("not indexed")?,
        };
        Ok(damage_file(&path, how)?)
    }

    async fn stored_bytes(&self) -> std::result::Result<u64, BoxError> {
        Ok(bytes_below(&self.root)?)
    }
}

/// Runs each named check against the defect and against the faithful
/// control: the defect must fail every one, the control must pass.
macro_rules! caught_by {
    ($defect:ty => $($check:ident),+ $(,)?) => {{
        $(
            let harness = BrokenHarness::<$defect>::create().await;
            let outcome = checks::$check(&harness).await;
            assert!(
                outcome.is_err(),
                "{} passed against a manager that {}",
                stringify!($check),
                stringify!($defect),
            );
            let control = BrokenHarness::<Faithful>::create().await;
            if let Err(failure) = checks::$check(&control).await {
                panic!("{} failed against the faithful control: {failure}", stringify!($check));
            }
        )+
    }};
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_repeated_header_values_is_caught() {
    caught_by!(DropsRepeatedHeaderValues => round_trip_keeps_repeated_header_values_in_order);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncating_bodies_is_caught() {
    caught_by!(TruncatesBodies =>
        round_trip_keeps_status_version_headers_body_and_url,
        round_trip_keeps_a_binary_body_with_every_byte_value,
        round_trip_keeps_a_large_body,
        second_put_replaces_the_first_whole,
        keys_with_path_syntax_stay_inside_the_root,
        many_keys_do_not_interfere,
        concurrent_tasks_on_overlapping_keys_see_whole_values,
        restart_sees_stored_entries,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mapping_two_keys_to_one_entry_is_caught() {
    caught_by!(MapsTwoKeysToOneEntry =>
        keys_differing_only_in_case_are_distinct,
        long_keys_differing_only_in_the_last_byte_are_distinct,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ignoring_delete_is_caught() {
    caught_by!(IgnoresDelete =>
        delete_removes_the_entry,
        keys_with_path_syntax_stay_inside_the_root,
        keys_of_64_kib_work,
        many_keys_do_not_interfere,
        deleted_entries_release_their_storage,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn returning_damaged_bodies_is_caught() {
    caught_by!(ReturnsDamagedBodies => body_with_a_flipped_byte_is_never_returned);
}
