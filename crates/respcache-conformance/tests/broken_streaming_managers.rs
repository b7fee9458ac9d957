//! The streaming checks can fail too: wrappers around a real
//! `StreamingManager` that buffer before answering, commit bodies that
//! failed, or stream bodies without checking them must each fail the check
//! that guards against it, while the faithful wrapper passes.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use respcache_conformance::{Damage, Harness, bytes_below, checks, damage_file};
use respcache_core::{
    BoxError, CacheManager, CachePolicy, HttpResponse, Result, StreamingBody,
    StreamingCacheManager, StreamingError,
};
use respcache_fs::StreamingManager;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// Collects the whole origin body before `put_stream` returns.
    BuffersBeforeAnswering,
    /// Stores what arrived before the origin failed.
    CommitsFailedBodies,
    /// Streams the stored file without checking it.
    SkipsChecksOnStreamedReads,
}

trait Defect: Send + Sync + 'static {
    const FLAW: Flaw;
}

struct Faithful;
impl Defect for Faithful {
    const FLAW: Flaw = Flaw::None;
}
struct BuffersBeforeAnswering;
impl Defect for BuffersBeforeAnswering {
    const FLAW: Flaw = Flaw::BuffersBeforeAnswering;
}
struct CommitsFailedBodies;
impl Defect for CommitsFailedBodies {
    const FLAW: Flaw = Flaw::CommitsFailedBodies;
}
struct SkipsChecksOnStreamedReads;
impl Defect for SkipsChecksOnStreamedReads {
    const FLAW: Flaw = Flaw::SkipsChecksOnStreamedReads;
}

struct Broken<D> {
    inner: StreamingManager,
    defect: PhantomData<D>,
}

impl<D> std::fmt::Debug for Broken<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broken")
    }
}

#[async_trait::async_trait]
impl<D: Defect> CacheManager for Broken<D> {
    async fn get(&self, key: &str) -> Result<Option<(HttpResponse, CachePolicy)>> {
        self.inner.get(key).await
    }
    async fn put(
        &self,
        key: String,
        response: HttpResponse,
        policy: CachePolicy,
    ) -> Result<HttpResponse> {
        self.inner.put(key, response, policy).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
}

#[async_trait::async_trait]
impl<D: Defect> StreamingCacheManager for Broken<D> {
    type Body = StreamingBody;

    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(http::Response<StreamingBody>, CachePolicy)>> {
        if D::FLAW != Flaw::SkipsChecksOnStreamedReads {
            return self.inner.get_stream(key).await;
        }
        let Some((head, policy)) = self.inner.get_stream(key).await? else {
            return Ok(None);
        };
        let Some(path) = self.inner.body_path(key).await? else {
            return Ok(None);
        };
        // The raw file, unchecked: the defect.
        let bytes = std::fs::read(path)?;
        Ok(Some((
            head.map(|_| StreamingBody::buffered(bytes.into())),
            policy,
        )))
    }

    async fn put_stream<B>(
        &self,
        key: String,
        response: http::Response<B>,
        policy: CachePolicy,
        url: url::Url,
    ) -> Result<http::Response<StreamingBody>>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<StreamingError>,
    {
        let (parts, body) = response.into_parts();
        match D::FLAW {
            Flaw::BuffersBeforeAnswering => {
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| e.into().into_inner())?
                    .to_bytes();
                let stored = HttpResponse::from_parts(parts, bytes, url);
                let stored = self.inner.put(key, stored, policy).await?;
                self.inner.stream_response(stored)
            }
            Flaw::CommitsFailedBodies => {
                let mut body = Box::pin(body);
                let mut received = Vec::new();
                let mut failure = None;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) => {
                            if let Ok(mut data) = frame.into_data() {
                                let len = bytes::Buf::remaining(&data);
                                received
                                    .extend_from_slice(&bytes::Buf::copy_to_bytes(&mut data, len));
                            }
                        }
                        Err(err) => {
                            failure = Some(err.into());
                            break;
                        }
                    }
                }
                let stored = HttpResponse::from_parts(
                    respcache_core::clone_head(&parts),
                    Bytes::from(received.clone()),
                    url,
                );
                self.inner.put(key, stored, policy).await?;
                let mut frames: Vec<std::result::Result<Bytes, StreamingError>> =
                    vec![Ok(Bytes::from(received))];
                frames.extend(failure.map(Err));
                let replay = respcache_conformance::fixtures::scripted_body(frames);
                Ok(http::Response::from_parts(
                    parts,
                    StreamingBody::boxed(replay),
                ))
            }
            Flaw::None | Flaw::SkipsChecksOnStreamedReads => {
                self.inner
                    .put_stream(key, http::Response::from_parts(parts, body), policy, url)
                    .await
            }
        }
    }

    fn stream_response(&self, response: HttpResponse) -> Result<http::Response<StreamingBody>> {
        self.inner.stream_response(response)
    }
}

struct BrokenHarness<D> {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manager: Arc<Broken<D>>,
}

fn broken<D>(root: PathBuf) -> Broken<D> {
    Broken {
        inner: StreamingManager::new(root),
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
        let path = match how {
            Damage::GarbleMetadata => inner.metadata_path(key),
            _ => inner.body_path(key).await?.ok_or("not stored")?,
        };
        Ok(damage_file(&path, how)?)
    }
    async fn stored_bytes(&self) -> std::result::Result<u64, BoxError> {
        Ok(bytes_below(&self.root)?)
    }
    async fn reclaim(&self) -> std::result::Result<(), BoxError> {
        self.manager.inner.gc().await?;
        Ok(())
    }
}

macro_rules! caught_by {
    ($defect:ty => $($check:ident),+ $(,)?) => {{
        $(
            let harness = BrokenHarness::<$defect>::create().await;
            assert!(
                checks::$check(&harness).await.is_err(),
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
async fn buffering_before_answering_is_caught() {
    caught_by!(BuffersBeforeAnswering => first_frame_reaches_the_caller_before_the_origin_sends_the_second);
}

#[tokio::test(flavor = "multi_thread")]
async fn committing_failed_bodies_is_caught() {
    caught_by!(CommitsFailedBodies => body_error_midway_commits_nothing);
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_unchecked_bodies_is_caught() {
    caught_by!(SkipsChecksOnStreamedReads => streamed_read_of_a_damaged_body_ends_in_an_error);
}
