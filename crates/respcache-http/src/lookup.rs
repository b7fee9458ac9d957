//! Looking an entry up: the key's entry, or behind a `Vary` index the
//! variant that matches the request.

use http::request;
use respcache_core::abbreviate_key;

use crate::engine::HttpCache;
use crate::status::Forward;
use crate::storage::{Storage, Stored};
use crate::vary::VaryIndex;

/// What a lookup found.
pub(crate) enum Lookup {
    Miss {
        why: Forward,
        index: Option<VaryIndex>,
    },
    Found {
        /// The key the entry is stored under (a variant's, behind an
        /// index).
        key: String,
        stored: Box<Stored>,
        index: Option<VaryIndex>,
    },
}

impl<S: Storage> HttpCache<S> {
    /// Finds the stored entry for `key`, following a `Vary` index to the
    /// variant that matches `parts`.
    pub(crate) async fn lookup(&self, key: &str, parts: &request::Parts) -> Lookup {
        let stored = match self.inner.storage.get(key).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::debug!(key = %abbreviate_key(key), "nothing stored");
                return Lookup::Miss {
                    why: Forward::UriMiss,
                    index: None,
                };
            }
            Err(error) => {
                self.inner.metrics.error();
                tracing::warn!(key = %abbreviate_key(key), %error, "cache lookup failed; asking the origin");
                return Lookup::Miss {
                    why: Forward::UriMiss,
                    index: None,
                };
            }
        };
        let Some(index) = VaryIndex::read(&stored.head) else {
            return Lookup::Found {
                key: key.to_owned(),
                stored: Box::new(stored),
                index: None,
            };
        };
        let variant_key = index.variant_key(key, &parts.headers);
        match self.inner.storage.get(&variant_key).await {
            Ok(Some(stored)) if VaryIndex::read(&stored.head).is_none() => Lookup::Found {
                key: variant_key,
                stored: Box::new(stored),
                index: Some(index),
            },
            Ok(_) => Lookup::Miss {
                why: Forward::VaryMiss,
                index: Some(index),
            },
            Err(error) => {
                self.inner.metrics.error();
                tracing::warn!(key = %abbreviate_key(&variant_key), %error, "cache lookup failed; asking the origin");
                Lookup::Miss {
                    why: Forward::VaryMiss,
                    index: Some(index),
                }
            }
        }
    }
}
