//! What this process keeps in memory of the entries it has read or
//! written: their metadata, with the identity of the metadata file version
//! it came from, and for bodies up to `body_limit` bytes the bytes
//! themselves, checked when they were read. A hit on such an entry costs
//! no system call at all while the version was confirmed lately, and one
//! `stat` otherwise.
//!
//! Bounded twice: at most `entries` keys (a full map starts over) and at
//! most `body_bytes` bytes of bodies, counting those being read to be kept
//! (past it, bodies are simply not kept). This process's own writes and
//! deletes update it; another process's are seen at the next confirmation,
//! at most `recheck` later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::FileStamp;
use crate::metadata::CacheMetadata;

/// One entry kept in memory.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) meta: Arc<CacheMetadata>,
    pub(crate) stamp: FileStamp,
    /// The checked body, for those within the bounds.
    pub(crate) body: Option<Bytes>,
    /// Bytes of the budget held for a body being read to be kept (see
    /// [`Hot::reserve`]); 0 when none is.
    reserved: usize,
    /// When the metadata file was last seen to be this version.
    confirmed: Instant,
}

/// The entries kept in memory.
#[derive(Debug)]
pub(crate) struct Hot {
    state: Mutex<State>,
    entries: usize,
    body_bytes: usize,
    /// The largest body kept.
    body_limit: usize,
    recheck: Duration,
}

#[derive(Debug, Default)]
struct State {
    kept: HashMap<String, Kept>,
    body_bytes: usize,
    /// Counts every `forget`: a reader that read a file before a write
    /// replaced it must not keep what it read once the writer has
    /// forgotten the key.
    forgotten: u64,
}

/// When a reader started: see [`Hot::since`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Since(u64);

/// What a lookup in memory found.
pub(crate) enum Found {
    /// The entry, confirmed lately (or just now).
    Current(Kept),
    /// The entry, whose metadata file must be confirmed before use.
    Unconfirmed(Kept),
    /// Nothing kept for the key.
    Nothing,
}

impl Hot {
    pub(crate) fn new(
        entries: usize,
        body_bytes: usize,
        body_limit: usize,
        recheck: Duration,
    ) -> Self {
        Self {
            state: Mutex::default(),
            entries,
            body_bytes,
            body_limit,
            recheck,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What is kept of `key`.
    pub(crate) fn find(&self, key: &str) -> Found {
        let state = self.lock();
        match state.kept.get(key) {
            Some(kept) if kept.confirmed.elapsed() < self.recheck => Found::Current(kept.clone()),
            Some(kept) => Found::Unconfirmed(kept.clone()),
            None => Found::Nothing,
        }
    }

    /// The metadata of `key` is still `stamp`'s version, as of now.
    pub(crate) fn confirm(&self, key: &str, stamp: FileStamp) {
        if let Some(kept) = self.lock().kept.get_mut(key)
            && kept.stamp == stamp
        {
            kept.confirmed = Instant::now();
        }
    }

    /// Taken before a reader reads a metadata file, for [`Hot::keep`].
    pub(crate) fn since(&self) -> Since {
        Since(self.lock().forgotten)
    }

    /// Keeps `meta`, read as version `stamp` by a reader that started at
    /// `since` (without a body: a new version's body is kept once it is
    /// read and checked). Nothing is kept if any key was forgotten since:
    /// what was read may be the version a write has just replaced.
    pub(crate) fn keep(&self, meta: Arc<CacheMetadata>, stamp: FileStamp, since: Since) {
        if self.entries == 0 {
            return;
        }
        let mut state = self.lock();
        if state.forgotten != since.0 {
            return;
        }
        if state.kept.len() >= self.entries && !state.kept.contains_key(&meta.key) {
            // Bounded without bookkeeping: a full map starts over.
            state.kept.clear();
            state.body_bytes = 0;
        }
        let key = meta.key.clone();
        let kept = Kept {
            meta,
            stamp,
            body: None,
            reserved: 0,
            confirmed: Instant::now(),
        };
        if let Some(old) = state.kept.insert(key, kept) {
            state.body_bytes -= old.held();
        }
    }

    /// Holds room in the budget for `meta`'s body, to be read whole and
    /// kept: true when `meta`'s version is the one kept, its body is not
    /// kept nor being read by another caller, and it fits. The caller must
    /// then call [`Hot::fill`], whether the read succeeds or not. The
    /// bytes being read count toward the budget, so readers of large
    /// bodies hold no more memory than it between them.
    pub(crate) fn reserve(&self, meta: &CacheMetadata) -> bool {
        let Ok(len) = usize::try_from(meta.body_len) else {
            return false;
        };
        if len > self.body_limit {
            return false;
        }
        let mut state = self.lock();
        let room = self.body_bytes.saturating_sub(state.body_bytes);
        let Some(kept) = state.kept.get_mut(&meta.key) else {
            return false;
        };
        if kept.meta.link != meta.link || kept.body.is_some() || kept.reserved > 0 || len > room {
            return false;
        }
        // An empty body holds nothing but still marks the read under way.
        kept.reserved = len.max(1);
        state.body_bytes += len.max(1);
        true
    }

    /// Ends a [`Hot::reserve`]: keeps `body` (read and checked) in the
    /// room held for it, or gives the room back when there is none.
    /// Nothing happens if the key was forgotten or replaced meanwhile.
    pub(crate) fn fill(&self, meta: &CacheMetadata, body: Option<&Bytes>) {
        let mut state = self.lock();
        let Some(kept) = state.kept.get_mut(&meta.key) else {
            return;
        };
        if kept.meta.link != meta.link || kept.reserved == 0 {
            return;
        }
        let held = std::mem::take(&mut kept.reserved);
        let kept_len = match body {
            Some(body) if body.len() <= held && kept.body.is_none() => {
                kept.body = Some(body.clone());
                body.len()
            }
            _ => 0,
        };
        state.body_bytes = state.body_bytes - held + kept_len;
    }

    /// Keeps `body`, read and checked, for `meta`'s version, if it is the
    /// version kept and there is room.
    pub(crate) fn keep_body(&self, meta: &CacheMetadata, body: &Bytes) {
        let mut state = self.lock();
        let room = self.body_bytes.saturating_sub(state.body_bytes);
        let Some(kept) = state.kept.get_mut(&meta.key) else {
            return;
        };
        if kept.meta.link != meta.link
            || kept.body.is_some()
            || kept.reserved > 0
            || body.len() > room
            || body.len() > self.body_limit
        {
            return;
        }
        kept.body = Some(body.clone());
        state.body_bytes += body.len();
    }

    /// Forgets `key` (deleted, replaced or damaged).
    pub(crate) fn forget(&self, key: &str) {
        let mut state = self.lock();
        state.forgotten += 1;
        if let Some(old) = state.kept.remove(key) {
            state.body_bytes -= old.held();
        }
    }
}

impl Kept {
    /// Bytes of the budget this entry holds.
    fn held(&self) -> usize {
        self.body.as_ref().map_or(0, Bytes::len) + self.reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str, link: &str) -> Arc<CacheMetadata> {
        let response = http::Response::new(());
        let request = http::Request::get("https://a.example/").body(()).unwrap();
        Arc::new(CacheMetadata {
            format: crate::metadata::FORMAT_VERSION,
            key: key.into(),
            status: 200,
            version: respcache_core::HttpVersion::Http11,
            headers: http::HeaderMap::new(),
            url: "https://a.example/".parse().unwrap(),
            content_digest: String::new(),
            body_len: 3,
            body_check: String::new(),
            link: link.into(),
            policy: respcache_core::CachePolicy::new(&request, &response),
            created_at: 0,
            expires_at: None,
            tags: Vec::new(),
        })
    }

    const STAMP: FileStamp = FileStamp::fixed(1);

    #[test]
    fn bodies_are_kept_for_their_own_version_and_within_the_bound() {
        let hot = Hot::new(10, 4, 1024, Duration::from_secs(60));
        hot.keep(meta("a", "l1"), STAMP, hot.since());
        hot.keep_body(&meta("a", "l2"), &Bytes::from_static(b"old"));
        let Found::Current(kept) = hot.find("a") else {
            panic!("kept")
        };
        assert!(kept.body.is_none(), "a body of another version");
        hot.keep_body(&meta("a", "l1"), &Bytes::from_static(b"abc"));
        hot.keep(meta("b", "l3"), STAMP, hot.since());
        hot.keep_body(&meta("b", "l3"), &Bytes::from_static(b"xyz"));
        let Found::Current(b) = hot.find("b") else {
            panic!("kept")
        };
        assert!(b.body.is_none(), "past the bound of 4 bytes");
        hot.forget("a");
        hot.keep_body(&meta("b", "l3"), &Bytes::from_static(b"xyz"));
        let Found::Current(b) = hot.find("b") else {
            panic!("kept")
        };
        assert_eq!(b.body.unwrap(), "xyz", "room again once a went");
    }

    #[test]
    fn a_body_being_read_holds_its_room_until_it_is_kept_or_given_back() {
        let hot = Hot::new(10, 5, 4, Duration::from_secs(60));
        hot.keep(meta("a", "l1"), STAMP, hot.since());
        hot.keep(meta("b", "l2"), STAMP, hot.since());
        assert!(hot.reserve(&meta("a", "l1")), "3 bytes fit in 5");
        assert!(!hot.reserve(&meta("a", "l1")), "one reader at a time");
        assert!(!hot.reserve(&meta("b", "l2")), "3 more do not fit");
        assert!(!hot.reserve(&meta("a", "l9")), "another version");
        hot.fill(&meta("a", "l1"), None);
        assert!(hot.reserve(&meta("b", "l2")), "the room was given back");
        hot.fill(&meta("b", "l2"), Some(&Bytes::from_static(b"xyz")));
        let Found::Current(b) = hot.find("b") else {
            panic!("kept")
        };
        assert_eq!(b.body.unwrap(), "xyz");
        assert!(!hot.reserve(&meta("a", "l1")), "b's body holds the room");
        hot.forget("b");
        assert!(hot.reserve(&meta("a", "l1")));
        // Forgotten while being read: its room goes, and what was read is
        // not kept.
        hot.forget("a");
        hot.fill(&meta("a", "l1"), Some(&Bytes::from_static(b"abc")));
        assert!(matches!(hot.find("a"), Found::Nothing));
        hot.keep(meta("a", "l1"), STAMP, hot.since());
        let mut long = meta("a", "l1");
        Arc::get_mut(&mut long).unwrap().body_len = 5;
        assert!(!hot.reserve(&long), "past the limit of 4 bytes a body");
        assert!(hot.reserve(&meta("a", "l1")), "the budget is whole again");
    }

    #[test]
    fn an_entry_not_confirmed_lately_must_be() {
        let hot = Hot::new(10, 100, 1024, Duration::ZERO);
        hot.keep(meta("a", "l1"), STAMP, hot.since());
        assert!(matches!(hot.find("a"), Found::Unconfirmed(_)));
        assert!(matches!(hot.find("z"), Found::Nothing));
        let full = Hot::new(1, 100, 1024, Duration::from_secs(60));
        full.keep(meta("a", "l1"), STAMP, full.since());
        full.keep(meta("b", "l1"), STAMP, full.since());
        assert!(
            matches!(full.find("a"), Found::Nothing),
            "a full map starts over"
        );
    }

    #[test]
    fn a_read_that_began_before_a_write_forgot_the_key_keeps_nothing() {
        let hot = Hot::new(10, 100, 1024, Duration::from_secs(60));
        let reader = hot.since();
        hot.forget("a");
        hot.keep(meta("a", "old"), STAMP, reader);
        assert!(matches!(hot.find("a"), Found::Nothing));
        hot.keep(meta("a", "new"), STAMP, hot.since());
        assert!(matches!(hot.find("a"), Found::Current(_)));
    }
}
