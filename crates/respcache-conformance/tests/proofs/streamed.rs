//! Streaming managers broken on purpose, one defect each, built around a
//! real `StreamingManager` from `respcache-fs`; [`FaithfulStream`] is the
//! same wrapper without a defect.

use std::io::{Read, Seek, Write};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use respcache_conformance::{Capabilities, Damage, Harness, bytes_below, damage_file, fixtures};
use respcache_core::{
    BoxError, CacheManager, CachePolicy, HttpResponse, Result, StreamingBody,
    StreamingCacheManager, StreamingError,
};
use respcache_fs::StreamingManager;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    None,
    /// Collects the whole origin body before `put_stream` returns.
    BuffersBeforeAnswering,
    /// Stores what arrived before the origin failed.
    CommitsFailedBodies,
    /// Streams the stored file without checking it.
    SkipsChecksOnStreamedReads,
    /// Passes the origin's body through and never stores it.
    NeverCommitsStreams,
    /// A streamed read ends after the stored body's first frame.
    StreamedReadsStopAfterOneFrame,
    /// `stream_response` keeps only the first value of each header.
    StreamResponseKeepsOneValuePerHeader,
    /// Writes each frame straight into the entry as it arrives, so a body
    /// the caller drops midway leaves what had arrived.
    CommitsDroppedBodies,
    /// Spools the body to a temporary file and leaves it behind when the
    /// origin fails.
    LeavesTempFilesOnError,
    /// Spools every put of one key to the same temporary file.
    SharesOneTempFile,
    /// Passes frames through at once but keeps the whole body in memory
    /// until it can store it.
    BuffersStreamsInMemory,
    /// `update_head` stores the new head with an empty body.
    UpdateHeadDropsTheBody,
    /// `update_head` always declines.
    AlwaysDeclinesUpdateHead,
    /// `update_head` replaces the head but keeps the old policy.
    UpdateHeadKeepsTheOldPolicy,
    /// `get_stream_response` answers with the head and an empty body.
    StreamResponseReadsDropTheBody,
}

pub trait StreamDefect: Send + Sync + 'static {
    const FLAW: Flaw;
}

macro_rules! defects {
    ($($name:ident),+ $(,)?) => {$(
        pub struct $name;
        impl StreamDefect for $name {
            const FLAW: Flaw = Flaw::$name;
        }
    )+};
}

defects!(
    BuffersBeforeAnswering,
    CommitsFailedBodies,
    SkipsChecksOnStreamedReads,
    NeverCommitsStreams,
    StreamedReadsStopAfterOneFrame,
    StreamResponseKeepsOneValuePerHeader,
    CommitsDroppedBodies,
    LeavesTempFilesOnError,
    SharesOneTempFile,
    BuffersStreamsInMemory,
    UpdateHeadDropsTheBody,
    AlwaysDeclinesUpdateHead,
    UpdateHeadKeepsTheOldPolicy,
    StreamResponseReadsDropTheBody,
);

/// No defect: the control.
pub struct FaithfulStream;
impl StreamDefect for FaithfulStream {
    const FLAW: Flaw = Flaw::None;
}

pub struct BrokenStream<D> {
    inner: StreamingManager,
    root: PathBuf,
    defect: PhantomData<D>,
}

impl<D> std::fmt::Debug for BrokenStream<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<D>())
    }
}

fn first_values(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut kept = http::HeaderMap::new();
    for name in headers.keys() {
        if let Some(first) = headers.get(name) {
            kept.insert(name.clone(), first.clone());
        }
    }
    kept
}

#[async_trait::async_trait]
impl<D: StreamDefect> CacheManager for BrokenStream<D> {
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

    async fn update_head(
        &self,
        key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
    ) -> Result<bool> {
        match D::FLAW {
            Flaw::AlwaysDeclinesUpdateHead => Ok(false),
            Flaw::UpdateHeadDropsTheBody => {
                let Some((old, _)) = self.inner.get(key).await? else {
                    return Ok(false);
                };
                let new = HttpResponse::from_parts(head, Bytes::new(), old.url);
                self.inner.put(key.to_owned(), new, policy).await?;
                Ok(true)
            }
            Flaw::UpdateHeadKeepsTheOldPolicy => {
                let Some((_, old_policy)) = self.inner.get(key).await? else {
                    return Ok(false);
                };
                self.inner.update_head(key, head, old_policy).await
            }
            _ => self.inner.update_head(key, head, policy).await,
        }
    }
}

/// Where a relayed put is going, and what a relay needs to store it.
struct Target {
    inner: StreamingManager,
    root: PathBuf,
    key: String,
    head: http::response::Parts,
    policy: CachePolicy,
    url: url::Url,
}

impl Target {
    async fn store(&self, body: Bytes) -> Result<()> {
        let response = HttpResponse::from_parts(
            respcache_core::clone_head(&self.head),
            body,
            self.url.clone(),
        );
        self.inner
            .put(self.key.clone(), response, self.policy.clone())
            .await?;
        Ok(())
    }

    fn temp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("broken-temp");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// Reads the origin in a task of its own and hands the caller each frame
/// after the flaw has seen it; the flaw also sees how the body ended.
fn relay<B>(body: B, target: Target, flaw: Flaw) -> StreamingBody
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StreamingError>,
{
    let (tx, caller) = fixtures::channel_body();
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        let mut received = Vec::new();
        let mut spool: Option<std::fs::File> = None;
        let temp = match flaw {
            Flaw::LeavesTempFilesOnError => target
                .temp_dir()
                .map(|dir| dir.join(rand::random::<u64>().to_string())),
            Flaw::SharesOneTempFile => target.temp_dir().map(|dir| {
                let hex: String = target.key.bytes().map(|b| format!("{b:02x}")).collect();
                dir.join(hex)
            }),
            _ => Ok(PathBuf::new()),
        };
        let Ok(temp) = temp else { return };
        if matches!(flaw, Flaw::LeavesTempFilesOnError | Flaw::SharesOneTempFile) {
            // Shared, the file is appended to by every put of the key: any
            // two that overlap at all mix their bytes, whatever the order
            // the scheduler runs them in.
            let shared = flaw == Flaw::SharesOneTempFile;
            match std::fs::OpenOptions::new()
                .create(true)
                .truncate(!shared)
                .append(shared)
                .read(true)
                .write(!shared)
                .open(&temp)
            {
                Ok(file) => spool = Some(file),
                Err(_) => return,
            }
        }
        loop {
            let next = match body.frame().await {
                None => break,
                Some(Err(err)) => Err(err.into()),
                Some(Ok(frame)) => Ok(frame
                    .into_data()
                    .map(|mut data| data.copy_to_bytes(data.remaining()))
                    .unwrap_or_default()),
            };
            let data = match next {
                Ok(data) => data,
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            match flaw {
                Flaw::CommitsDroppedBodies | Flaw::BuffersStreamsInMemory => {
                    received.extend_from_slice(&data);
                }
                _ => {}
            }
            if flaw == Flaw::CommitsDroppedBodies {
                let _ = target.store(Bytes::copy_from_slice(&received)).await;
            }
            if let Some(file) = spool.as_mut()
                && file.write_all(&data).is_err()
            {
                return;
            }
            if tx.send(Ok(data)).await.is_err() {
                return;
            }
        }
        let whole = match flaw {
            Flaw::NeverCommitsStreams => return,
            Flaw::LeavesTempFilesOnError | Flaw::SharesOneTempFile => {
                let Some(mut file) = spool else { return };
                let mut whole = Vec::new();
                if file.rewind().is_err() || file.read_to_end(&mut whole).is_err() {
                    return;
                }
                let _ = std::fs::remove_file(&temp);
                whole
            }
            _ => received,
        };
        let _ = target.store(whole.into()).await;
    });
    StreamingBody::boxed(caller)
}

#[async_trait::async_trait]
impl<D: StreamDefect> StreamingCacheManager for BrokenStream<D> {
    type Body = StreamingBody;

    async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(http::Response<StreamingBody>, CachePolicy)>> {
        match D::FLAW {
            Flaw::SkipsChecksOnStreamedReads => {
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
            Flaw::StreamedReadsStopAfterOneFrame => {
                let Some((response, policy)) = self.inner.get_stream(key).await? else {
                    return Ok(None);
                };
                let (head, body) = response.into_parts();
                let mut body = Box::pin(body);
                let first = match body.frame().await {
                    Some(frame) => frame?.into_data().unwrap_or_default(),
                    None => Bytes::new(),
                };
                Ok(Some((
                    http::Response::from_parts(head, StreamingBody::buffered(first)),
                    policy,
                )))
            }
            _ => self.inner.get_stream(key).await,
        }
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
                                let len = data.remaining();
                                received.extend_from_slice(&data.copy_to_bytes(len));
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
                let replay = fixtures::scripted_body(frames);
                Ok(http::Response::from_parts(
                    parts,
                    StreamingBody::boxed(replay),
                ))
            }
            Flaw::NeverCommitsStreams
            | Flaw::CommitsDroppedBodies
            | Flaw::LeavesTempFilesOnError
            | Flaw::SharesOneTempFile
            | Flaw::BuffersStreamsInMemory => {
                let target = Target {
                    inner: self.inner.clone(),
                    root: self.root.clone(),
                    key,
                    head: respcache_core::clone_head(&parts),
                    policy,
                    url,
                };
                Ok(http::Response::from_parts(
                    parts,
                    relay(body, target, D::FLAW),
                ))
            }
            _ => {
                self.inner
                    .put_stream(key, http::Response::from_parts(parts, body), policy, url)
                    .await
            }
        }
    }

    async fn get_stream_response(
        &self,
        key: &str,
    ) -> Result<Option<http::Response<StreamingBody>>> {
        let found = self.inner.get_stream_response(key).await?;
        if D::FLAW == Flaw::StreamResponseReadsDropTheBody {
            return Ok(found.map(|response| response.map(|_| StreamingBody::empty())));
        }
        Ok(found)
    }

    fn stream_response(&self, mut response: HttpResponse) -> Result<http::Response<StreamingBody>> {
        if D::FLAW == Flaw::StreamResponseKeepsOneValuePerHeader {
            response.headers = first_values(&response.headers);
        }
        self.inner.stream_response(response)
    }
}

pub struct Streamed<D> {
    dir: tempfile::TempDir,
    root: PathBuf,
    manager: Arc<BrokenStream<D>>,
}

fn open<D>(root: PathBuf) -> BrokenStream<D> {
    BrokenStream {
        inner: StreamingManager::new(root.clone()),
        root,
        defect: PhantomData,
    }
}

#[async_trait::async_trait]
impl<D: StreamDefect> Harness for Streamed<D> {
    type Manager = BrokenStream<D>;

    fn capabilities() -> Capabilities {
        Capabilities::ALL
    }

    async fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let root = dir.path().join("cache");
        let manager = Arc::new(open(root.clone()));
        Self { dir, root, manager }
    }
    fn manager(&self) -> Arc<BrokenStream<D>> {
        self.manager.clone()
    }
    async fn reopen(&self) -> BrokenStream<D> {
        open(self.root.clone())
    }
    fn location(&self) -> String {
        self.root.display().to_string()
    }
    async fn open_location(location: &str) -> BrokenStream<D> {
        open(location.into())
    }
    fn root(&self) -> Option<PathBuf> {
        Some(self.root.clone())
    }
    fn sandbox(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
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
