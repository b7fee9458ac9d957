//! Partial content (RFC 9111 §3.3 and §3.4): `206` responses stored as
//! parts of the representation they come from, later ranges served from a
//! part that covers them, and the parts combined into the whole entry
//! once they cover it.
//!
//! Each part is an entry of its own, under `KEY\npart:V:FIRST-LAST`; a
//! parts index under `KEY\nparts` names the representation's validator
//! (`V`, a hash of its strong `ETag`, else its `Last-Modified`), its
//! length, and the ranges stored. A part whose validator differs from the
//! index's starts a new index: the old parts are dropped. Parts without a
//! validator are served alone and never combined, as RFC 9110 §15.3.7.3
//! allows combining only what shares a strong validator. Every body
//! streams: a multi-GiB representation fetched in ranges is stored,
//! served and combined with flat memory on a streaming backend.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, request, response};
use http_body::Body;
use http_body_util::BodyExt;
use respcache_core::{BoxError, CachePolicy, StoreHints, abbreviate_key};
use url::Url;

use crate::body::{self, CacheBody};
use crate::directives::{remove_hop_by_hop, vary_fields};
use crate::engine::{Exchange, HttpCache};
use crate::freshness;
use crate::options::{CacheMode, absolute_url};
use crate::part_index::{PartIndex, index_key, part_key, validator_of};
use crate::range::{self, ContentRange, RangeAnswer};
use crate::rules::{self, Choice};
use crate::status::{BodySource, CacheStatus};
use crate::storage::{Putting, Storage, Stored};
use crate::store::{STORED_BEFORE_HEAD, store_whole};
use crate::vary;

/// A part committed, to be named in its index: and the whole combined,
/// once the parts cover it.
struct PartIndexed<S> {
    cache: HttpCache<S>,
    key: String,
    /// The index with this part.
    index: PartIndex,
    policy: CachePolicy,
    hints: StoreHints,
    url: Url,
}

impl<S: Storage> PartIndexed<S> {
    async fn record(self) {
        let Self {
            cache,
            key,
            index,
            policy,
            hints,
            url,
        } = self;
        cache.inner.metrics.store();
        cache.write_index(&key, &index, &policy, &hints, &url).await;
        if !index.validator.is_empty() && index.plan().is_some() {
            tokio::spawn(async move { cache.combine(key, index, url).await });
        }
    }
}

impl<S: Storage> HttpCache<S> {
    /// Stores a `206` as a part of its representation, where the rules
    /// allow, and returns it for the caller with a body stored as it is
    /// read.
    pub(crate) async fn store_part(
        &self,
        exchange: &mut Exchange,
        head: response::Parts,
        body: CacheBody,
        status: &mut CacheStatus,
    ) -> Response<CacheBody> {
        let options = &self.inner.options;
        let parts = &exchange.parts;
        let range = ContentRange::of(&head.headers);
        let as_whole = {
            let mut whole = respcache_core::clone_head(&head);
            whole.status = StatusCode::OK;
            whole
        };
        let storable = parts.method == Method::GET
            && parts.headers.contains_key(header::RANGE)
            && exchange.mode != CacheMode::NoStore
            && rules::storable(parts, &as_whole, options)
            && vary_fields(&head.headers).is_some_and(|fields| fields.is_empty())
            && head.headers.get(header::CONTENT_LENGTH).is_none_or(|len| {
                range.is_some_and(|r| len.to_str().ok() == Some(&r.len().to_string()))
            });
        let (Some(range), true, Ok(url)) = (range, storable, Url::parse(&absolute_url(parts)))
        else {
            return Response::from_parts(head, body);
        };
        let now = exchange.now;
        let key = exchange.key.clone();
        let validator = validator_of(&head.headers);
        let index = match self.part_index(&key).await {
            Some(index) if index.validator == validator && index.total == range.total => index,
            other => {
                // Parts of another version, or none: they go.
                if let Some(old) = other {
                    self.drop_parts(&key, &old).await;
                }
                PartIndex::new(validator.clone(), range.total)
            }
        };
        let part = (range.first, range.last);
        let policy = self.policy(parts, &head, now);
        let mut stored_head = respcache_core::clone_head(&head);
        remove_hop_by_hop(&mut stored_head.headers);
        rules::strip_qualified(&mut stored_head.headers, options);
        freshness::mark_received(&mut stored_head.headers, now);
        let hints = self.hints(&stored_head, exchange.mode, now);
        let put = self
            .inner
            .storage
            .put(
                part_key(&key, &validator, part),
                stored_head,
                body,
                policy.clone(),
                url.clone(),
                hints.clone(),
            )
            .await;
        let Ok(Putting { body, commit }) = put.map_err(|failed| {
            self.inner.metrics.error();
            tracing::warn!(key = %abbreviate_key(&key), error = %failed.error, "storing a part failed; passing it through");
            failed.body
        }) else {
            return Response::from_parts(head, body::failed("the cache backend lost a part"));
        };
        // The index names the part once it is committed: at once for a
        // small part, after its last byte for a large one, which streams.
        let indexed = PartIndexed {
            cache: self.clone(),
            key,
            index: index.with(part),
            policy,
            hints,
            url,
        };
        if range.len() <= STORED_BEFORE_HEAD {
            let (body, committed) = store_whole(body, commit).await;
            status.stored = committed == Some(true);
            if status.stored {
                indexed.record().await;
            }
            return Response::from_parts(head, body);
        }
        // The caller's last byte waits until the part is named, so that a
        // client that has read its part finds it stored.
        let record = Box::pin(async move {
            let committed = match commit {
                Some(commit) => commit.committed().await,
                None => false,
            };
            if committed {
                indexed.record().await;
            }
        });
        let body = body::boxed(ThenEnd {
            inner: body,
            record: Some(record),
            last: None,
        });
        Response::from_parts(head, body)
    }

    /// A stored part's answer to a request for a range it covers, when it
    /// may be served; `None` sends the request on.
    pub(crate) async fn serve_part(
        &self,
        parts: &request::Parts,
        key: &str,
        mode: CacheMode,
        now: SystemTime,
    ) -> Option<Response<CacheBody>> {
        if !parts.headers.contains_key(header::RANGE) {
            return None;
        }
        let index = self.part_index(key).await?;
        let RangeAnswer::Part { start, len, total } = range::requested(&parts.headers, index.total)
        else {
            return None;
        };
        let part = index.covering(start, start + len - 1)?;
        let stored = match self
            .inner
            .storage
            .get(&part_key(key, &index.validator, part))
            .await
        {
            Ok(Some(stored)) => stored,
            _ => return None,
        };
        // An If-Range is met only by the representation's strong validator.
        if let Some(condition) = parts.headers.get(header::IF_RANGE) {
            let strong_etag = stored.head.headers.get(header::ETAG);
            if condition.as_bytes().starts_with(b"W/") || strong_etag != Some(condition) {
                return None;
            }
        }
        let freshness = self.freshness(&stored.head, now);
        let options = &self.inner.options;
        if rules::choose(parts, mode, &stored.head.headers, &freshness, options) != Choice::Serve {
            return None;
        }
        self.inner.metrics.hit();
        let Stored { mut head, body, .. } = stored;
        head.extensions.insert(BodySource::Storage);
        remove_hop_by_hop(&mut head.headers);
        vary::strip_internal(&mut head.headers);
        head.headers
            .insert(header::AGE, HeaderValue::from(freshness.age.as_secs()));
        range::partial_head(&mut head, start, len, total);
        let status = CacheStatus::hit(freshness.ttl_seconds());
        self.add_status(&mut head.headers, &status, true);
        let body = body::boxed(range::Slice::new(body, start - part.0, len));
        Some(Response::from_parts(head, body))
    }

    /// Removes the parts of `key` (an unsafe method changed it).
    pub(crate) async fn forget_parts(&self, key: &str) {
        if let Some(index) = self.part_index(key).await {
            self.drop_parts(key, &index).await;
        }
    }

    async fn part_index(&self, key: &str) -> Option<PartIndex> {
        match self.inner.storage.get(&index_key(key)).await {
            Ok(Some(stored)) => PartIndex::read(&stored.head),
            _ => None,
        }
    }

    async fn write_index(
        &self,
        key: &str,
        index: &PartIndex,
        policy: &CachePolicy,
        hints: &StoreHints,
        url: &Url,
    ) {
        let put = self
            .inner
            .storage
            .put(
                index_key(key),
                index.head(),
                body::empty(),
                policy.clone(),
                url.clone(),
                hints.clone(),
            )
            .await;
        let written = match put {
            Ok(Putting { body, commit }) => store_whole(body, commit).await.1 == Some(true),
            Err(_) => false,
        };
        if !written {
            self.inner.metrics.error();
            tracing::warn!(key = %abbreviate_key(key), "storing a parts index failed");
        }
    }

    async fn drop_parts(&self, key: &str, index: &PartIndex) {
        let storage = &self.inner.storage;
        for &part in &index.stored {
            let _ = storage.delete(&part_key(key, &index.validator, part)).await;
        }
        let _ = storage.delete(&index_key(key)).await;
    }

    /// Stores the whole representation made of its parts under `key`,
    /// then drops the parts. The parts stream through one after another.
    async fn combine(&self, key: String, index: PartIndex, url: Url) {
        let Some(plan) = index.plan() else {
            return;
        };
        let storage = &self.inner.storage;
        // The head of the last part read stands for the whole.
        let last = plan.last().map(|(part, _)| *part);
        let Some(Ok(Some(template))) = (match last {
            Some(part) => Some(storage.get(&part_key(&key, &index.validator, part)).await),
            None => None,
        }) else {
            return;
        };
        let mut head = template.head;
        head.status = StatusCode::OK;
        head.headers.remove(header::CONTENT_RANGE);
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(index.total));
        let now = self.now();
        let hints = self.hints(&head, CacheMode::Default, now);
        // The policy of the whole, as of a plain GET of its URL.
        let Ok(get) = http::Request::get(url.as_str()).body(()) else {
            return;
        };
        let policy = self.policy(&get.into_parts().0, &head, now);
        let body = self.concatenated(&key, &index, plan);
        let put = storage
            .put(key.clone(), head, body, policy, url, hints)
            .await;
        let combined = match put {
            Ok(Putting { body, commit }) => {
                let complete = body::drain(body).await;
                match commit {
                    Some(commit) if complete => commit.committed().await,
                    _ => complete,
                }
            }
            Err(_) => false,
        };
        if combined {
            tracing::debug!(key = %abbreviate_key(&key), total = index.total, "parts combined into the whole");
            self.inner.metrics.store();
            self.drop_parts(&key, &index).await;
        } else {
            tracing::info!(key = %abbreviate_key(&key), "combining stored parts failed; they stay parts");
        }
    }

    /// The parts of `plan`, one after another, as one body.
    fn concatenated(
        &self,
        key: &str,
        index: &PartIndex,
        plan: Vec<((u64, u64), u64)>,
    ) -> CacheBody {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(2);
        let cache = self.clone();
        let (key, validator, total) = (key.to_owned(), index.validator.clone(), index.total);
        tokio::spawn(async move {
            let mut written = 0;
            for ((first, last), skip) in plan {
                let part = cache
                    .inner
                    .storage
                    .get(&part_key(&key, &validator, (first, last)))
                    .await;
                let Ok(Some(stored)) = part else {
                    let _ = sender.send(Err("a stored part is gone".into())).await;
                    return;
                };
                let take = (last - first + 1 - skip).min(total - written);
                let mut slice = range::Slice::new(stored.body, skip, take);
                while let Some(frame) = slice.frame().await {
                    let chunk = match frame.map(|frame| frame.into_data()) {
                        Ok(Ok(data)) => Ok(data),
                        Ok(Err(_trailers)) => continue,
                        Err(error) => Err(error),
                    };
                    let failed = chunk.is_err();
                    if sender.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
                written += take;
            }
        });
        body::boxed(Concatenated {
            chunks: receiver,
            left: total,
        })
    }
}

/// A body whose last frame (or end) waits for `record` to be done.
struct ThenEnd {
    inner: CacheBody,
    record: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// The last frame, held while `record` runs.
    last: Option<http_body::Frame<Bytes>>,
}

impl Body for ThenEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(record) = &mut this.record
                && (this.last.is_some() || this.inner.is_end_stream())
            {
                std::task::ready!(record.as_mut().poll(cx));
                this.record = None;
            }
            if let Some(last) = this.last.take() {
                return std::task::Poll::Ready(Some(Ok(last)));
            }
            let polled = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_frame(cx));
            match polled {
                // A server that knows the length stops at the last byte:
                // hold it until the record is done.
                Some(Ok(frame)) if this.record.is_some() && this.inner.is_end_stream() => {
                    this.last = Some(frame);
                }
                Some(frame) => return std::task::Poll::Ready(Some(frame)),
                None if this.record.is_some() => {}
                None => return std::task::Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.record.is_none() && self.last.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The chunks of the parts, as one body of a known length: it is stored
/// with its `Content-Length`, and ends in an error if it comes short.
struct Concatenated {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>,
    left: u64,
}

impl Body for Concatenated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let chunk = std::task::ready!(self.chunks.poll_recv(cx));
        std::task::Poll::Ready(match chunk {
            Some(Ok(data)) => {
                self.left = self.left.saturating_sub(data.len() as u64);
                Some(Ok(http_body::Frame::data(data)))
            }
            Some(Err(error)) => Some(Err(error)),
            None if self.left > 0 => {
                let left = std::mem::take(&mut self.left);
                Some(Err(format!(
                    "the parts ended {left} bytes short of the whole"
                )
                .into()))
            }
            None => None,
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}
