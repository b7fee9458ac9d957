//! `CacheMetadata`: the JSON record of one entry.

use http::HeaderMap;
use respcache_core::{BoxError, CacheError, CachePolicy, HttpResponse, HttpVersion};
use serde::{Deserialize, Serialize};
use url::Url;

/// The format version written in every metadata record.
pub const FORMAT_VERSION: u32 = 2;

/// Everything stored about one entry except its body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheMetadata {
    /// [`FORMAT_VERSION`] when written; a record of another version is a miss.
    pub(crate) format: u32,
    /// The full key, compared on every read.
    pub(crate) key: String,
    /// Status code.
    pub(crate) status: u16,
    /// HTTP version.
    pub(crate) version: HttpVersion,
    /// Every header, in order, raw values kept (non-UTF-8 values are arrays
    /// of bytes in the JSON).
    #[serde(with = "respcache_core::headers::serde_header_map")]
    pub(crate) headers: HeaderMap,
    /// The URL the response answers.
    pub(crate) url: Url,
    /// SHA-256 of the body, hex: its name in `content/`.
    pub(crate) content_digest: String,
    /// Length of the body in bytes.
    pub(crate) body_len: u64,
    /// XXH3-64 of the body, hex: checked on every read.
    pub(crate) body_check: String,
    /// Name of the entry's hard link in `links/`, through which it is read.
    pub(crate) link: String,
    /// The cache policy.
    pub(crate) policy: CachePolicy,
    /// Unix seconds when the entry was written.
    pub(crate) created_at: u64,
    /// Unix seconds after which the entry is worth nothing to whoever
    /// stored it (the lifetime in its `StoreHints`): `gc` removes it and
    /// eviction takes it first. Absent when no lifetime was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    /// The tags the entry carries (`StoreHints::tags`), each indexed
    /// under `tags/`. Absent in records written before tags existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
}

#[derive(Deserialize)]
struct FormatProbe {
    format: u32,
}

/// What a metadata file turned out to hold.
pub(crate) enum Decoded {
    Entry(Box<CacheMetadata>),
    /// Written by another format version: not ours to read or remove.
    OtherFormat,
}

impl CacheMetadata {
    pub(crate) fn head(&self, body: bytes::Bytes) -> HttpResponse {
        HttpResponse {
            status: self.status,
            version: self.version,
            headers: self.headers.clone(),
            body,
            url: self.url.clone(),
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(self)?)
    }

    pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<Decoded, CacheError> {
        match serde_json::from_slice::<CacheMetadata>(bytes) {
            Ok(meta) if meta.format == FORMAT_VERSION => Ok(Decoded::Entry(Box::new(meta))),
            Ok(_) => Ok(Decoded::OtherFormat),
            Err(err) => match serde_json::from_slice::<FormatProbe>(bytes) {
                Ok(probe) if probe.format != FORMAT_VERSION => Ok(Decoded::OtherFormat),
                _ => Err(CacheError::Undecodable {
                    key: key.to_owned(),
                    source: Box::new(err),
                }),
            },
        }
    }
}
