//! [`Entry`]: one stored response, and what it weighs.

use bytes::Bytes;
use http::HeaderMap;
use respcache_core::{CacheError, CachePolicy, HttpResponse, HttpVersion, StreamingBody};
use tokio::time::Instant;
use url::Url;

/// Bytes counted for each header field beyond its name and value: the
/// map's own bookkeeping (HPACK counts 32 for the same reason).
const PER_FIELD: usize = 32;
/// Bytes counted for the policy beyond the headers it copies: its
/// request line, times and flags.
const POLICY_FIXED: usize = 256;

/// A stored response. Never changed once stored: a new head or body is a
/// new `Entry`, so a reader holding one always sees one whole response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) status: u16,
    pub(crate) version: HttpVersion,
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) policy: CachePolicy,
    /// Shared with every hit: a hit clones the reference, not the bytes.
    pub(crate) body: Bytes,
    /// When the entry stops being worth keeping; `None` for never.
    pub(crate) expires_at: Option<Instant>,
    /// What the entry weighs, key aside; see [`Entry::weigh`].
    pub(crate) weight: u64,
}

impl Entry {
    pub(crate) fn new(
        status: u16,
        version: HttpVersion,
        headers: HeaderMap,
        url: Url,
        policy: CachePolicy,
        body: Bytes,
        expires_at: Option<Instant>,
    ) -> Self {
        let mut entry = Self {
            status,
            version,
            headers,
            url,
            policy,
            body,
            expires_at,
            weight: 0,
        };
        entry.weight = entry.weigh();
        entry
    }

    pub(crate) fn from_response(
        response: &HttpResponse,
        policy: CachePolicy,
        expires_at: Option<Instant>,
    ) -> Self {
        Self::new(
            response.status,
            response.version,
            response.headers.clone(),
            response.url.clone(),
            policy,
            response.body.clone(),
            expires_at,
        )
    }

    /// The same body under a new head and policy.
    pub(crate) fn with_head(
        &self,
        head: http::response::Parts,
        policy: CachePolicy,
        expires_at: Option<Instant>,
    ) -> Self {
        Self::new(
            head.status.as_u16(),
            head.version.into(),
            head.headers,
            self.url.clone(),
            policy,
            self.body.clone(),
            expires_at,
        )
    }

    /// Bytes the entry holds: its body, its head (every header twice, as
    /// the policy keeps its own copy), its URL and a fixed allowance for
    /// the structures around them. An estimate of the head, exact for the
    /// body, which is what fills a cache.
    fn weigh(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + PER_FIELD)
            .sum();
        let fixed = std::mem::size_of::<Self>() + POLICY_FIXED;
        (self.body.len() + 2 * headers + 2 * self.url.as_str().len() + fixed) as u64
    }

    pub(crate) fn expired(&self, now: impl FnOnce() -> Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now())
    }

    /// The stored response; the body is shared, not copied.
    pub(crate) fn response(&self) -> HttpResponse {
        HttpResponse {
            status: self.status,
            version: self.version,
            headers: self.headers.clone(),
            body: self.body.clone(),
            url: self.url.clone(),
        }
    }

    /// The stored response as an `http::Response` with the URL in its
    /// extensions; the body is shared, not copied.
    pub(crate) fn http_response(&self) -> Result<http::Response<StreamingBody>, CacheError> {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = http::StatusCode::from_u16(self.status).map_err(|_| {
            CacheError::InvalidResponse(format!("status {} is outside 100..=999", self.status))
        })?;
        parts.version = self.version.into();
        parts.headers = self.headers.clone();
        parts.extensions.insert(self.url.clone());
        Ok(http::Response::from_parts(
            parts,
            StreamingBody::buffered(self.body.clone()),
        ))
    }
}
