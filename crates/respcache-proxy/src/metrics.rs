//! What `GET /metrics` on the admin listener says, through
//! `prometheus-client`: the engine's counters, bytes sent by where they
//! came from, response times by cache status, and the backend's size.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use respcache_core::BoxError;
use respcache_http::{BodySource, CacheBody, HttpCache, Storage};

/// The label of a response time: what the cache did, from the response's
/// `Cache-Status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    cache_status: &'static str,
}

/// What a response's `Cache-Status` says the cache did: `hit` (served
/// from storage, a stale one included), `stale` (revalidated with the
/// origin), `miss`, `bypass` (sent on without a lookup), or `none` (no
/// `Cache-Status`: the proxy's own answers, tunnels).
fn outcome(response: &Response<CacheBody>) -> &'static str {
    let Some(status) = response
        .headers()
        .get("cache-status")
        .and_then(|value| value.to_str().ok())
    else {
        return "none";
    };
    let mut members = status.split(';').map(str::trim);
    let mut fwd = None;
    let mut hit = false;
    for member in &mut members {
        match member.split_once('=') {
            Some(("fwd", value)) => fwd = Some(value),
            None if member == "hit" => hit = true,
            _ => {}
        }
    }
    match fwd {
        None if hit => "hit",
        None => "none",
        Some("stale") => "stale",
        Some("uri-miss" | "vary-miss" | "miss") => "miss",
        Some(_) => "bypass",
    }
}

/// Bytes sent to clients by where they came from, origin failures, and
/// response times.
#[derive(Debug)]
pub struct Traffic {
    hit_bytes: Counter,
    origin_bytes: Counter,
    coalesced_bytes: Counter,
    origin_errors: Counter,
    response_seconds: Family<Outcome, Histogram>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            hit_bytes: Counter::default(),
            origin_bytes: Counter::default(),
            coalesced_bytes: Counter::default(),
            origin_errors: Counter::default(),
            // 0.5 ms to about 33 s, doubling.
            response_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 17))
            }),
        }
    }
}

impl Traffic {
    pub fn origin_error(&self) {
        self.origin_errors.inc();
    }

    /// Wraps a response so that its body's bytes are counted as they go,
    /// by the source the engine names (none for the proxy's own `502`),
    /// and its time is recorded when it is done.
    pub fn count(self: &Arc<Self>, response: Response<CacheBody>) -> Response<Counted> {
        let source = response.extensions().get::<BodySource>().copied();
        let outcome = outcome(&response);
        let traffic = self.clone();
        response.map(|inner| Counted {
            inner,
            traffic,
            source,
            outcome,
            started: Instant::now(),
        })
    }

    fn counter(&self, source: BodySource) -> &Counter {
        match source {
            BodySource::Storage => &self.hit_bytes,
            BodySource::Origin => &self.origin_bytes,
            BodySource::Coalesced => &self.coalesced_bytes,
        }
    }
}

/// A response body whose bytes are counted into [`Traffic`], and whose
/// time, from the request's arrival to the body's end (or the client
/// leaving), is recorded by cache status when it is dropped.
pub struct Counted {
    inner: CacheBody,
    traffic: Arc<Traffic>,
    source: Option<BodySource>,
    outcome: &'static str,
    started: Instant,
}

impl Counted {
    /// Times the response from `started` (the request's arrival) instead
    /// of from the moment its head was ready.
    pub fn since(mut self, started: Instant) -> Self {
        self.started = started;
        self
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let outcome = Outcome {
            cache_status: self.outcome,
        };
        self.traffic
            .response_seconds
            .get_or_create(&outcome)
            .observe(self.started.elapsed().as_secs_f64());
    }
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
            self.traffic.counter(source).inc_by(data.len() as u64);
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

/// The engine's counters and the backend's size, read at each scrape.
struct Engine<S> {
    cache: HttpCache<S>,
}

impl<S> fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Engine")
    }
}

impl<S: Storage> Collector for Engine<S> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let m = self.cache.metrics();
        let counters: [(&str, &str, u64); 8] = [
            (
                "respcache_hits",
                "Responses served fresh from the cache.",
                m.hits,
            ),
            (
                "respcache_misses",
                "Requests answered by the origin.",
                m.misses,
            ),
            (
                "respcache_stale_served",
                "Stale responses served (stale-while-revalidate, stale-if-error).",
                m.stale,
            ),
            (
                "respcache_revalidations",
                "Revalidations sent to the origin.",
                m.revalidations,
            ),
            (
                "respcache_not_modified",
                "Revalidations answered 304 Not Modified.",
                m.not_modified,
            ),
            (
                "respcache_coalesced_waits",
                "Requests that waited for another request's origin response.",
                m.coalesced,
            ),
            (
                "respcache_stores",
                "Responses handed to the backend to store.",
                m.stores,
            ),
            (
                "respcache_cache_errors",
                "Cache failures that fell back to the origin.",
                m.errors,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let usage = self.cache.storage().usage();
        let gauges = [
            (
                "respcache_backend_entries",
                "Entries the backend holds (where it counts them cheaply).",
                usage.entries,
            ),
            (
                "respcache_backend_bytes",
                "Bytes of bodies the backend holds (where it counts them cheaply).",
                usage.bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value.and_then(|value| i64::try_from(value).ok()) else {
                continue;
            };
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// Every metric in Prometheus (OpenMetrics) text format.
pub fn render<S: Storage>(cache: &HttpCache<S>, traffic: &Traffic) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Engine {
        cache: cache.clone(),
    }));
    registry.register(
        "respcache_origin_errors",
        "Requests answered 502 because the origin could not be reached.",
        traffic.origin_errors.clone(),
    );
    registry.register(
        "respcache_hit_bytes",
        "Body bytes sent to clients from storage.",
        traffic.hit_bytes.clone(),
    );
    registry.register(
        "respcache_origin_bytes",
        "Body bytes sent to clients from the origin, for their own requests.",
        traffic.origin_bytes.clone(),
    );
    registry.register(
        "respcache_coalesced_bytes",
        "Body bytes sent to clients from another request's origin response.",
        traffic.coalesced_bytes.clone(),
    );
    registry.register(
        "respcache_response_seconds",
        "Time from a request's arrival to the end of its response, by what the cache did.",
        traffic.response_seconds.clone(),
    );
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::warn!(%error, "could not encode the metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: Option<&'static str>) -> Response<CacheBody> {
        let mut response = Response::new(respcache_http::empty());
        if let Some(status) = status {
            response
                .headers_mut()
                .insert("cache-status", http::HeaderValue::from_static(status));
        }
        response
    }

    #[test]
    fn cache_status_names_the_outcome() {
        for (status, expected) in [
            (Some("respcache; hit; ttl=10"), "hit"),
            (
                Some("respcache; fwd=uri-miss; fwd-status=200; stored"),
                "miss",
            ),
            (Some("respcache; fwd=vary-miss"), "miss"),
            (Some("respcache; fwd=stale; fwd-status=304"), "stale"),
            (Some("respcache; fwd=method"), "bypass"),
            (Some("respcache; fwd=request"), "bypass"),
            (None, "none"),
        ] {
            assert_eq!(outcome(&with_status(status)), expected, "{status:?}");
        }
    }
}
