//! Purging: removing stored responses (hard), or marking them stale so
//! that the next request revalidates them (soft), by URL, URL prefix or
//! tag.
//!
//! Every key the engine stores for a URL starts with the URL's key: the
//! `Vary` variants (`{key}\nvary:...`) and the parts of partial content
//! (`{key}\npart...`) too, so a URL purge takes the key and every key
//! under `{key}\n`, and a prefix purge every key starting with the
//! prefix's key.

use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName};
use respcache_core::{BoxError, abbreviate_key};
use std::collections::BTreeSet;
use url::Url;

use crate::engine::HttpCache;
use crate::storage::{Putting, Storage};
use crate::store::store_whole;
use crate::vary::VaryIndex;

/// What to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// One URL, with every `Vary` variant stored for it.
    Url(String),
    /// Every URL starting with this one (`https://example.com/blog/`).
    Prefix(String),
    /// Every entry whose response carried this tag in one of
    /// [`Options::tag_fields`](crate::Options::tag_fields).
    Tag(String),
}

/// How hard to purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// Remove the entries.
    Hard,
    /// Mark them stale: the next request revalidates with the origin
    /// (a `304` keeps the stored body), and `stale-while-revalidate` and
    /// `stale-if-error` still apply from now.
    Soft,
}

/// Why a purge could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The URL given cannot name a stored response.
    #[error("{0:?} is not an absolute http(s) URL")]
    InvalidUrl(String),
    /// The backend can list neither its keys nor its tags, which this
    /// purge needs.
    #[error("the cache backend cannot list its keys, which a purge {0} needs")]
    Unsupported(&'static str),
    /// The backend failed.
    #[error("the cache backend failed during a purge: {0}")]
    Backend(#[source] BoxError),
}

/// The tags `fields` give a response: the items of their values,
/// separated by spaces or commas, in order, each once.
pub(crate) fn tags(headers: &HeaderMap, fields: &[HeaderName]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for field in fields {
        for value in headers.get_all(field) {
            let Ok(value) = value.to_str() else {
                continue;
            };
            for tag in value.split([' ', '\t', ',']).filter(|t| !t.is_empty()) {
                if !tags.iter().any(|seen| seen == tag) {
                    tags.push(tag.to_owned());
                }
            }
        }
    }
    tags
}

impl<S: Storage> HttpCache<S> {
    /// Purges what `target` names, as hard as `strength` says, and
    /// returns how many stored responses were removed or marked stale
    /// (the engine's own `Vary` indexes are not counted).
    ///
    /// ```
    /// use respcache_http::{Buffered, HttpCache, Options, Purge, Strength};
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let backend = respcache_cacache::CACacheManager::new(dir.path(), true);
    /// let cache = HttpCache::new(Buffered::new(backend), Options::default());
    /// let url = Purge::Url("http://example.com/page".into());
    /// assert_eq!(cache.purge(&url, Strength::Hard).await?, 0);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// # }).map_err(|e| e as Box<dyn std::error::Error>)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn purge(&self, target: &Purge, strength: Strength) -> Result<usize, PurgeError> {
        let keys = self.purge_keys(target).await?;
        // A key with variants under it is a `Vary` index: removing it
        // retires them, but it is not a response.
        let is_index = |key: &str| {
            let under = format!("{key}\nvary:");
            keys.range(under.clone()..)
                .next()
                .is_some_and(|next| next.starts_with(&under))
        };
        let mut purged = 0;
        for key in &keys {
            let counted = !is_index(key) && !key.ends_with("\nparts");
            let done = match strength {
                Strength::Hard => self.inner.storage.delete(key).await.map(|()| true),
                Strength::Soft => self.mark_stale(key).await,
            }
            .map_err(PurgeError::Backend)?;
            if done && counted {
                purged += 1;
            }
        }
        tracing::info!(?target, ?strength, purged, "purged");
        Ok(purged)
    }

    /// The keys `target` names, sorted.
    async fn purge_keys(&self, target: &Purge) -> Result<BTreeSet<String>, PurgeError> {
        let storage = &self.inner.storage;
        let listed =
            |listing: Result<Option<Vec<String>>, BoxError>| listing.map_err(PurgeError::Backend);
        match target {
            Purge::Url(url) => {
                let key = self.key_of(url)?;
                let under = format!("{key}\n");
                if let Some(listed) = listed(storage.keys(&key).await)? {
                    // The key itself and what is stored under it; not
                    // another URL that merely starts with this one.
                    return Ok(listed
                        .into_iter()
                        .filter(|k| *k == key || k.starts_with(&under))
                        .collect());
                }
                // A backend that cannot list: the key alone (removing a
                // `Vary` index still retires its variants).
                let stored = storage.get(&key).await.map_err(PurgeError::Backend)?;
                Ok(stored.map(|_| key).into_iter().collect())
            }
            Purge::Prefix(prefix) => {
                let key = self.key_of(prefix)?;
                listed(storage.keys(&key).await)?
                    .map(BTreeSet::from_iter)
                    .ok_or(PurgeError::Unsupported("by prefix"))
            }
            Purge::Tag(tag) => {
                if let Some(keys) = listed(storage.tagged(tag).await)? {
                    return Ok(keys.into_iter().collect());
                }
                // No tag index: read every head.
                let all =
                    listed(storage.keys("").await)?.ok_or(PurgeError::Unsupported("by tag"))?;
                let fields = &self.inner.options.tag_fields;
                let mut keys = BTreeSet::new();
                for key in all {
                    let stored = storage.get(&key).await.map_err(PurgeError::Backend)?;
                    if stored.is_some_and(|stored| tags(&stored.head.headers, fields).contains(tag))
                    {
                        keys.insert(key);
                    }
                }
                Ok(keys)
            }
        }
    }

    /// The key a `GET` of `url` is stored under.
    fn key_of(&self, url: &str) -> Result<String, PurgeError> {
        let invalid = || PurgeError::InvalidUrl(url.to_owned());
        let parsed = Url::parse(url).map_err(|_| invalid())?;
        if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
            return Err(invalid());
        }
        let request = http::Request::get(url).body(()).map_err(|_| invalid())?;
        Ok((self.inner.options.key)(&request.into_parts().0))
    }

    /// Makes the response under `key` stale from now: its stored `Age`
    /// is raised until its age equals its freshness lifetime, so that it
    /// is stale by nothing and every stale window still lies ahead.
    /// Whether there was a response there to mark.
    async fn mark_stale(&self, key: &str) -> Result<bool, BoxError> {
        let storage = &self.inner.storage;
        let Some(stored) = storage.get(key).await? else {
            return Ok(false);
        };
        let mut head = stored.head;
        if VaryIndex::read(&head).is_some() || key.ends_with("\nparts") {
            return Ok(false);
        }
        let now = self.now();
        let freshness = self.freshness(&head, now);
        if !freshness.is_fresh() {
            return Ok(true);
        }
        // Age ≥ lifetime − resident makes the age at least the lifetime;
        // rounded up to whole seconds, it may pass it by under a second.
        let received = crate::freshness::received_at(&head.headers).unwrap_or(now);
        let resident = now.duration_since(received).unwrap_or_default();
        let needed = freshness.lifetime.saturating_sub(resident);
        let seconds = needed.as_secs() + u64::from(needed.subsec_nanos() > 0);
        head.headers.insert(header::AGE, HeaderValue::from(seconds));
        let url = head
            .extensions
            .get::<Url>()
            .cloned()
            .map_or_else(|| Url::parse("http://unknown.invalid/"), Ok)?;
        let request = http::Request::get(url.as_str()).body(())?.into_parts().0;
        let policy = self.policy(&request, &head, now);
        let hints = self.hints(&head, self.inner.options.mode, now);
        let refreshed = respcache_core::clone_head(&head);
        if storage
            .update_head(key, refreshed, policy.clone(), hints.clone())
            .await?
        {
            return Ok(true);
        }
        // A backend that cannot update a head takes the whole entry again.
        match storage
            .put(key.to_owned(), head, stored.body, policy, url, hints)
            .await
        {
            Ok(Putting { body, commit }) => {
                let (_body, committed) = store_whole(body, commit).await;
                if committed != Some(true) {
                    tracing::warn!(key = %abbreviate_key(key), "a soft purge could not store the entry again; removing it");
                    storage.delete(key).await?;
                }
                Ok(true)
            }
            Err(failed) => {
                storage.delete(key).await?;
                Err(failed.error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_on_spaces_and_commas_once_each() {
        let mut headers = HeaderMap::new();
        headers.append("surrogate-key", HeaderValue::from_static("a b  c"));
        headers.append("cache-tag", HeaderValue::from_static("c,d, e"));
        headers.append("x-other", HeaderValue::from_static("f"));
        let fields = [
            HeaderName::from_static("surrogate-key"),
            HeaderName::from_static("cache-tag"),
        ];
        assert_eq!(tags(&headers, &fields), ["a", "b", "c", "d", "e"]);
        assert!(tags(&headers, &[]).is_empty());
    }
}
