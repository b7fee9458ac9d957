//! What `GET /metrics` on the admin listener says, in Prometheus text
//! format, and the counters of bytes sent behind it.

use std::fmt::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use respcache_core::BoxError;
use respcache_http::{BodySource, CacheBody, HttpCache, Storage};

/// Bytes sent to clients, by where they came from, and origin failures.
#[derive(Debug, Default)]
pub struct Traffic {
    hit_bytes: AtomicU64,
    origin_bytes: AtomicU64,
    coalesced_bytes: AtomicU64,
    origin_errors: AtomicU64,
}

impl Traffic {
    pub fn origin_error(&self) {
        self.origin_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Wraps a response so that its body's bytes are counted as they go,
    /// by the source the engine names (none for the proxy's own `502`).
    pub fn count(self: &Arc<Self>, response: Response<CacheBody>) -> Response<Counted> {
        let source = response.extensions().get::<BodySource>().copied();
        let traffic = self.clone();
        response.map(|inner| Counted {
            inner,
            traffic,
            source,
        })
    }

    fn counter(&self, source: BodySource) -> &AtomicU64 {
        match source {
            BodySource::Storage => &self.hit_bytes,
            BodySource::Origin => &self.origin_bytes,
            BodySource::Coalesced => &self.coalesced_bytes,
        }
    }
}

/// A response body whose bytes are counted into [`Traffic`].
pub struct Counted {
    inner: CacheBody,
    traffic: Arc<Traffic>,
    source: Option<BodySource>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some(source) = self.source
        {
            let counter = self.traffic.counter(source);
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The counters in Prometheus text exposition format.
pub fn render<S: Storage>(cache: &HttpCache<S>, traffic: &Traffic) -> String {
    let m = cache.metrics();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let rows: [(&str, &str, u64); 12] = [
        (
            "respcache_hits_total",
            "Responses served fresh from the cache.",
            m.hits,
        ),
        (
            "respcache_misses_total",
            "Requests answered by the origin.",
            m.misses,
        ),
        (
            "respcache_stale_served_total",
            "Stale responses served (stale-while-revalidate, stale-if-error).",
            m.stale,
        ),
        (
            "respcache_revalidations_total",
            "Revalidations sent to the origin.",
            m.revalidations,
        ),
        (
            "respcache_not_modified_total",
            "Revalidations answered 304 Not Modified.",
            m.not_modified,
        ),
        (
            "respcache_coalesced_waits_total",
            "Requests that waited for another request's origin response.",
            m.coalesced,
        ),
        (
            "respcache_stores_total",
            "Responses handed to the backend to store.",
            m.stores,
        ),
        (
            "respcache_cache_errors_total",
            "Cache failures that fell back to the origin.",
            m.errors,
        ),
        (
            "respcache_origin_errors_total",
            "Requests answered 502 because the origin could not be reached.",
            load(&traffic.origin_errors),
        ),
        (
            "respcache_hit_bytes_total",
            "Body bytes sent to clients from storage.",
            load(&traffic.hit_bytes),
        ),
        (
            "respcache_origin_bytes_total",
            "Body bytes sent to clients from the origin, for their own requests.",
            load(&traffic.origin_bytes),
        ),
        (
            "respcache_coalesced_bytes_total",
            "Body bytes sent to clients from another request's origin response.",
            load(&traffic.coalesced_bytes),
        ),
    ];
    let mut text = String::new();
    for (name, help, value) in rows {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    text
}
