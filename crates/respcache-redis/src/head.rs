//! The head of an entry: everything but the body, bincode-encoded behind a
//! format version, plus the TTL its policy earns.

use std::time::Duration;

use http::HeaderMap;
use respcache_core::{CacheError, CachePolicy, HttpResponse, HttpVersion};
use serde::{Deserialize, Serialize};
use url::Url;

/// The first byte of every stored head.
/// Version 2 added the entry's tags; heads of version 1 read as misses.
pub const FORMAT_VERSION: u8 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) key: String,
    pub(crate) status: u16,
    pub(crate) version: HttpVersion,
    #[serde(with = "respcache_core::headers::serde_header_map")]
    pub(crate) headers: HeaderMap,
    pub(crate) url: Url,
    pub(crate) policy: CachePolicy,
    pub(crate) body_len: u64,
    /// XXH3-64 of the whole body.
    pub(crate) check: u64,
    /// The tags the entry carries, each indexed in a set.
    pub(crate) tags: Vec<String>,
}

/// What a stored head turned out to be.
pub(crate) enum Decoded {
    Entry(Box<Meta>),
    OtherFormat,
}

impl Meta {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        let mut bytes = vec![FORMAT_VERSION];
        bincode::serialize_into(&mut bytes, self)?;
        Ok(bytes)
    }

    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Decoded, CacheError> {
        match bytes.split_first() {
            Some((&FORMAT_VERSION, rest)) => bincode::deserialize(rest)
                .map(|meta| Decoded::Entry(Box::new(meta)))
                .map_err(|err| CacheError::Undecodable {
                    key: key.to_owned(),
                    source: Box::new(err),
                }),
            Some(_) => Ok(Decoded::OtherFormat),
            None => Err(CacheError::Undecodable {
                key: key.to_owned(),
                source: "empty head".into(),
            }),
        }
    }

    pub(crate) fn response(&self, body: bytes::Bytes) -> HttpResponse {
        HttpResponse {
            status: self.status,
            version: self.version,
            headers: self.headers.clone(),
            body,
            url: self.url.clone(),
        }
    }
}

/// How long the keys of an entry kept for `keep` live: that, between a
/// second and [`MAX_TTL`].
pub(crate) fn ttl(keep: Duration) -> Duration {
    keep.clamp(Duration::from_secs(1), MAX_TTL)
}

/// The longest TTL given: a year. Headers come from the network; a
/// `max-age` near 2^64 must neither overflow nor be refused by Redis.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Whole seconds for an `EXPIRE`, rounded up: a grace of half a second
/// must not become zero, which means "at once".
pub(crate) fn expire_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_capped_not_overflowed() {
        assert_eq!(ttl(Duration::MAX), MAX_TTL);
        assert_eq!(ttl(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(ttl(Duration::from_secs(90)), Duration::from_secs(90));
        assert_eq!(expire_secs(Duration::from_millis(500)), 1);
        assert_eq!(expire_secs(Duration::ZERO), 0);
    }
}
