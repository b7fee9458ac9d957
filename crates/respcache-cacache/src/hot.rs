//! Small entries this process has read, kept decoded in memory with the
//! identity of the index bucket they were read from. cacache checks a
//! body's hash each time it reads it; an entry kept here was checked when
//! it was read, and is served from memory while its bucket is unchanged:
//! one small read of the bucket confirms it (no system call at all while
//! it was confirmed within `recheck_interval`, when that is set).
//!
//! Any change to an entry changes its bucket: a write adds or rewrites a
//! line naming the new content's digest, a delete adds a tombstone or
//! removes the bucket. This process's own writes and deletes
//! forget the key at once; another process's are seen at the next
//! confirmation.
//!
//! Bounded twice: only bodies of at most [`LARGEST_KEPT`] bytes, and at
//! most `bytes` bytes of bodies in all (a full map starts over).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use respcache_core::{CachePolicy, HttpResponse};

/// The largest body kept in memory.
pub(crate) const LARGEST_KEPT: usize = 64 * 1024;

/// One version of a bucket file: its bytes. A bucket line holds the
/// digest of the content it points to, so equal buckets mean equal
/// entries; file times and inode numbers could not promise that (a
/// rewritten bucket may reuse both within a clock tick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp(Vec<u8>);

impl Stamp {
    /// The largest bucket compared; an entry with a larger one is not kept.
    const LARGEST: u64 = 16 * 1024;

    /// The bucket's version now; `None` when it cannot be read (gone) or
    /// is too large to compare.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let mut file = std::fs::File::open(path).ok()?;
        let mut bytes = Vec::with_capacity(512);
        std::io::Read::take(&mut file, Self::LARGEST + 1)
            .read_to_end(&mut bytes)
            .ok()?;
        (bytes.len() as u64 <= Self::LARGEST).then_some(Self(bytes))
    }
}

#[derive(Debug)]
struct Kept {
    stamp: Stamp,
    confirmed: Instant,
    response: HttpResponse,
    policy: CachePolicy,
}

#[derive(Debug, Default)]
struct State {
    kept: HashMap<String, Kept>,
    bytes: usize,
    /// Counts every `forget`, so that a read that began before a write
    /// keeps nothing once the write has forgotten the key.
    forgotten: u64,
}

/// When a read began: see [`Hot::since`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Since(u64);

/// The entries kept in memory.
#[derive(Debug)]
pub(crate) struct Hot {
    state: Mutex<State>,
    bytes: usize,
    recheck: Duration,
}

impl Hot {
    pub(crate) fn new(bytes: usize, recheck: Duration) -> Self {
        Self {
            state: Mutex::default(),
            bytes,
            recheck,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry kept for `key`, if its bucket was confirmed lately.
    pub(crate) fn find(&self, key: &str) -> Option<(HttpResponse, CachePolicy)> {
        let state = self.lock();
        let kept = state.kept.get(key)?;
        (kept.confirmed.elapsed() < self.recheck)
            .then(|| (kept.response.clone(), kept.policy.clone()))
    }

    /// The entry kept for `key`, if its bucket is still `stamp`'s version,
    /// now confirmed.
    pub(crate) fn confirm(&self, key: &str, stamp: &Stamp) -> Option<(HttpResponse, CachePolicy)> {
        let mut state = self.lock();
        let kept = state.kept.get_mut(key)?;
        if kept.stamp != *stamp {
            return None;
        }
        kept.confirmed = Instant::now();
        Some((kept.response.clone(), kept.policy.clone()))
    }

    /// Taken before a read of the bucket, for [`Hot::keep`].
    pub(crate) fn since(&self) -> Since {
        Since(self.lock().forgotten)
    }

    /// Keeps an entry read from bucket version `stamp` by a read that
    /// began at `since`, if its body is small and no key was forgotten
    /// since (what was read may be what a write has just replaced).
    pub(crate) fn keep(
        &self,
        key: &str,
        stamp: Stamp,
        since: Since,
        response: &HttpResponse,
        policy: &CachePolicy,
    ) {
        let size = response.body.len();
        if size > LARGEST_KEPT || size > self.bytes {
            return;
        }
        let mut state = self.lock();
        if state.forgotten != since.0 {
            return;
        }
        if let Some(old) = state.kept.remove(key) {
            state.bytes -= old.response.body.len();
        }
        if state.bytes + size > self.bytes {
            // Bounded without bookkeeping: a full map starts over.
            state.kept.clear();
            state.bytes = 0;
        }
        state.bytes += size;
        state.kept.insert(
            key.to_owned(),
            Kept {
                stamp,
                confirmed: Instant::now(),
                response: response.clone(),
                policy: policy.clone(),
            },
        );
    }

    /// Forgets every key (the cache was cleared).
    pub(crate) fn forget_all(&self) {
        let mut state = self.lock();
        state.forgotten += 1;
        state.kept.clear();
        state.bytes = 0;
    }

    /// Forgets `key` (written, deleted or damaged).
    pub(crate) fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.forgotten += 1;
        if let Some(old) = state.kept.remove(key) {
            state.bytes -= old.response.body.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &'static [u8]) -> (HttpResponse, CachePolicy) {
        let request = http::Request::get("https://a.example/").body(()).unwrap();
        let response = http::Response::new(());
        let policy = CachePolicy::new(&request, &response);
        let (parts, ()) = response.into_parts();
        let url = "https://a.example/".parse().unwrap();
        let response = HttpResponse::from_parts(parts, bytes::Bytes::from_static(body), url);
        (response, policy)
    }

    fn stamp(bucket: &str) -> Stamp {
        Stamp(bucket.as_bytes().to_vec())
    }

    #[test]
    fn a_kept_entry_is_served_until_its_bucket_changes() {
        let hot = Hot::new(1024, Duration::ZERO);
        let (response, policy) = entry(b"abc");
        hot.keep("a", stamp("line one\n"), hot.since(), &response, &policy);
        assert!(hot.find("a").is_none(), "not confirmed lately");
        assert!(hot.confirm("a", &stamp("line one\n")).is_some());
        let grown = stamp("line one\nline two\n");
        assert!(hot.confirm("a", &grown).is_none(), "a changed bucket");
        let lately = Hot::new(1024, Duration::from_secs(60));
        lately.keep("a", stamp("line one\n"), lately.since(), &response, &policy);
        assert!(matches!(lately.find("a"), Some((r, _)) if r.body == "abc"));
    }

    #[test]
    fn a_read_that_began_before_a_write_forgot_the_key_keeps_nothing() {
        let hot = Hot::new(1024, Duration::from_secs(60));
        let (response, policy) = entry(b"old");
        let reader = hot.since();
        hot.forget("a");
        hot.keep("a", stamp("line one\n"), reader, &response, &policy);
        assert!(hot.find("a").is_none());
    }

    #[test]
    fn bodies_are_kept_within_the_bound() {
        let hot = Hot::new(5, Duration::from_secs(60));
        let (small, policy) = entry(b"abc");
        hot.keep("a", stamp("line one\n"), hot.since(), &small, &policy);
        hot.keep("b", stamp("line one\n"), hot.since(), &small, &policy);
        assert!(hot.find("a").is_none(), "a full map starts over");
        assert!(hot.find("b").is_some());
        let (big, policy) = entry(b"abcdef");
        hot.keep("c", stamp("line one\n"), hot.since(), &big, &policy);
        assert!(hot.find("c").is_none(), "larger than the bound");
    }
}
