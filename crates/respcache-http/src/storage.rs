//! The engine's view of a backend: any [`CacheManager`] through
//! [`Buffered`], any [`StreamingCacheManager`] through [`Streaming`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::Frame;
use respcache_core::{
    BoxError, CacheManager, CachePolicy, CommitWatch, HttpResponse, Result, StoreHints,
    StreamingCacheManager, TeeEvent, tee,
};
use url::Url;

use crate::body::{self, CacheBody};

/// A stored response: its head and its body. (The policy stored beside
/// it is the backend's business: the engine decides from the head, and
/// a backend need not copy its policy for every hit.)
#[derive(Debug)]
pub struct Stored {
    /// Status and headers as stored.
    pub head: http::response::Parts,
    /// The stored body.
    pub body: CacheBody,
}

/// What the engine needs from a backend. Implemented by [`Buffered`] and
/// [`Streaming`]; a backend implements [`CacheManager`] (and
/// [`StreamingCacheManager`]), not this.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The entry under `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<Stored>>;

    /// Stores a response whose body is still arriving and returns the body
    /// for the caller. The entry is committed when the returned body has
    /// been read to its end; a failed or abandoned body stores nothing.
    /// Where the backend tells, [`Putting::commit`] says whether the
    /// commit took place.
    /// When the backend refuses the entry, the error gives the body back
    /// (if the backend had not started on it) so that the caller still
    /// gets its response. `hints` say how long the entry is worth
    /// keeping.
    async fn put(
        &self,
        key: String,
        head: http::response::Parts,
        body: CacheBody,
        policy: CachePolicy,
        url: Url,
        hints: StoreHints,
    ) -> std::result::Result<Putting, PutFailed>;

    /// Removes the entry under `key`.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Replaces the head and policy of the entry under `key`, keeping its
    /// body; `false` when the backend cannot (see
    /// [`CacheManager::update_head`]).
    async fn update_head(
        &self,
        key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<bool>;

    /// The stored keys starting with `prefix`, or `None` when the backend
    /// cannot list them (see [`CacheManager::keys`]).
    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        let _ = prefix;
        Ok(None)
    }

    /// The stored keys whose entries carry `tag`, or `None` when the
    /// backend keeps no index of tags (see [`CacheManager::tagged`]).
    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        let _ = tag;
        Ok(None)
    }

    /// How much the backend holds, as far as it knows cheaply (see
    /// [`CacheManager::usage`]).
    fn usage(&self) -> respcache_core::Usage {
        respcache_core::Usage::default()
    }
}

/// A store under way.
#[derive(Debug)]
pub struct Putting {
    /// The body for the caller: the entry is committed once it has been
    /// read to its end.
    pub body: CacheBody,
    /// Whether the entry was committed, once the body has ended; `None`
    /// when the backend does not tell.
    pub commit: Option<CommitWatch>,
}

/// A store that did not take place.
#[derive(Debug)]
pub struct PutFailed {
    /// Why.
    pub error: BoxError,
    /// The body, when the backend failed before reading any of it.
    pub body: Option<CacheBody>,
}

/// A body that stays in a shared slot until first polled, so that whoever
/// handed it to a backend can take it back if the backend failed before
/// reading it.
struct Reclaimable {
    slot: Arc<Mutex<Option<CacheBody>>>,
    taken: Option<CacheBody>,
}

impl Reclaimable {
    fn new(body: CacheBody) -> (Self, Arc<Mutex<Option<CacheBody>>>) {
        let slot = Arc::new(Mutex::new(Some(body)));
        let body = Self {
            slot: slot.clone(),
            taken: None,
        };
        (body, slot)
    }
}

impl http_body::Body for Reclaimable {
    // (is_end_stream and size_hint pass through: servers rely on them)
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        if self.taken.is_none() {
            let taken = self.slot.lock().ok().and_then(|mut slot| slot.take());
            match taken {
                Some(body) => self.taken = Some(body),
                None => return Poll::Ready(Some(Err("the body was reclaimed".into()))),
            }
        }
        match self.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.taken {
            Some(body) => body.is_end_stream(),
            None => self
                .slot
                .lock()
                .ok()
                .and_then(|slot| slot.as_ref().map(|body| body.is_end_stream()))
                .unwrap_or(false),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.taken {
            Some(body) => body.size_hint(),
            None => self
                .slot
                .lock()
                .ok()
                .and_then(|slot| slot.as_ref().map(|body| body.size_hint()))
                .unwrap_or_default(),
        }
    }
}

/// Any [`CacheManager`] as engine storage. Bodies reach the caller as they
/// arrive; a copy is gathered on the side (up to `max_body` bytes, larger
/// ones are not stored) and handed to the manager once complete.
#[derive(Debug, Clone)]
pub struct Buffered<M> {
    manager: M,
    max_body: usize,
}

impl<M: CacheManager> Buffered<M> {
    /// Wraps `manager`, storing bodies of up to 64 MiB.
    pub fn new(manager: M) -> Self {
        Self::with_max_body(manager, 64 * 1024 * 1024)
    }

    /// Wraps `manager`, storing bodies of up to `max_body` bytes.
    pub fn with_max_body(manager: M, max_body: usize) -> Self {
        Self { manager, max_body }
    }
}

#[async_trait::async_trait]
impl<M: CacheManager + Clone> Storage for Buffered<M> {
    async fn get(&self, key: &str) -> Result<Option<Stored>> {
        let Some((response, _policy)) = self.manager.get(key).await? else {
            return Ok(None);
        };
        // Moved, not copied: the headers go to the caller as they are.
        let (head, bytes) = response.into_http()?.into_parts();
        Ok(Some(Stored {
            head,
            body: body::full(bytes),
        }))
    }

    async fn put(
        &self,
        key: String,
        head: http::response::Parts,
        body: CacheBody,
        policy: CachePolicy,
        url: Url,
        hints: StoreHints,
    ) -> std::result::Result<Putting, PutFailed> {
        let (body, mut writer) = tee(body, 16);
        let commit = body.commit_watch();
        let manager = self.manager.clone();
        let max_body = self.max_body;
        tokio::spawn(async move {
            let mut bytes = BytesMut::new();
            while let Some(event) = writer.recv().await {
                match event {
                    TeeEvent::Data(data) => {
                        if bytes.len() + data.len() > max_body {
                            tracing::debug!(
                                key,
                                max_body,
                                "body too large to store; passing through"
                            );
                            return;
                        }
                        bytes.extend_from_slice(&data);
                    }
                    TeeEvent::End => {
                        let response = HttpResponse::from_parts(head, bytes.freeze(), url);
                        match manager.put_with(key.clone(), response, policy, hints).await {
                            Ok(_) => writer.committed(),
                            // Dropping the writer says nothing was stored.
                            Err(error) => {
                                tracing::warn!(key, %error, "storing a response failed; it was passed through")
                            }
                        }
                        return;
                    }
                }
            }
        });
        Ok(Putting {
            body: body::boxed(body),
            commit: Some(commit),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.manager.delete(key).await
    }

    async fn update_head(
        &self,
        key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<bool> {
        self.manager
            .update_head_with(key, head, policy, hints)
            .await
    }

    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        self.manager.keys(prefix).await
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        self.manager.tagged(tag).await
    }

    fn usage(&self) -> respcache_core::Usage {
        self.manager.usage()
    }
}

/// Any [`StreamingCacheManager`] as engine storage: bodies stream into
/// and out of the backend and never sit whole in memory.
#[derive(Debug, Clone)]
pub struct Streaming<M> {
    manager: M,
}

impl<M: StreamingCacheManager> Streaming<M> {
    /// Wraps `manager`.
    pub fn new(manager: M) -> Self {
        Self { manager }
    }
}

#[async_trait::async_trait]
impl<M: StreamingCacheManager> Storage for Streaming<M> {
    async fn get(&self, key: &str) -> Result<Option<Stored>> {
        let Some(response) = self.manager.get_stream_response(key).await? else {
            return Ok(None);
        };
        let (head, body) = response.into_parts();
        Ok(Some(Stored {
            head,
            body: body::boxed(body),
        }))
    }

    async fn put(
        &self,
        key: String,
        head: http::response::Parts,
        body: CacheBody,
        policy: CachePolicy,
        url: Url,
        hints: StoreHints,
    ) -> std::result::Result<Putting, PutFailed> {
        let (body, slot) = Reclaimable::new(body);
        let response = Response::from_parts(head, body);
        match self
            .manager
            .put_stream_with(key, response, policy, url, hints)
            .await
        {
            Ok(stored) => {
                let commit = stored.extensions().get::<CommitWatch>().cloned();
                Ok(Putting {
                    body: body::boxed(stored.into_body()),
                    commit,
                })
            }
            Err(error) => Err(PutFailed {
                error,
                body: slot.lock().ok().and_then(|mut slot| slot.take()),
            }),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.manager.delete(key).await
    }

    async fn update_head(
        &self,
        key: &str,
        head: http::response::Parts,
        policy: CachePolicy,
        hints: StoreHints,
    ) -> Result<bool> {
        self.manager
            .update_head_with(key, head, policy, hints)
            .await
    }

    async fn keys(&self, prefix: &str) -> Result<Option<Vec<String>>> {
        self.manager.keys(prefix).await
    }

    async fn tagged(&self, tag: &str) -> Result<Option<Vec<String>>> {
        self.manager.tagged(tag).await
    }

    fn usage(&self) -> respcache_core::Usage {
        self.manager.usage()
    }
}
