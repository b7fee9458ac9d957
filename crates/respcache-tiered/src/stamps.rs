//! [`Stamps`]: per key (per bucket of keys), how many writes have started
//! and how many have finished, so that a promotion or a write can tell
//! whether another write ran while it worked.
//!
//! A promotion copies what the far tier returned into the near tier; a
//! write (put, delete, head update) that ran meanwhile may have replaced
//! that entry. A promotion therefore keeps its copy only if the bucket
//! was quiet when it read the far tier and still is, unchanged, once the
//! copy is stored; otherwise it drops the copy. A write keeps its near
//! copy only if no other write of the bucket overlapped it. Keys share a
//! bucket by hash: a collision only costs a near copy, never a stale one.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets of keys; a power of two.
const BUCKETS: usize = 4096;

#[derive(Debug, Default)]
struct Bucket {
    started: AtomicU64,
    finished: AtomicU64,
}

/// The counters every clone of a manager shares.
#[derive(Debug, Clone)]
pub(crate) struct Stamps {
    buckets: Arc<[Bucket]>,
    hasher: RandomState,
}

/// A bucket's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    started: u64,
    finished: u64,
}

impl Stamp {
    /// Whether no write was under way.
    pub(crate) fn quiet(self) -> bool {
        self.started == self.finished
    }
}

impl Stamps {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn bucket(&self, key: &str) -> &Bucket {
        let hash = self.hasher.hash_one(key) as usize;
        &self.buckets[hash & (BUCKETS - 1)]
    }

    /// The bucket of `key` now.
    pub(crate) fn read(&self, key: &str) -> Stamp {
        let bucket = self.bucket(key);
        // `started` first: a write that starts between the two loads shows
        // as a change on the next read.
        let started = bucket.started.load(Ordering::SeqCst);
        let finished = bucket.finished.load(Ordering::SeqCst);
        Stamp { started, finished }
    }

    /// Starts a write of `key`; it ends when the guard is finished or
    /// dropped.
    pub(crate) fn start(&self, key: &str) -> Write {
        let bucket = self.bucket(key);
        let before = self.read(key);
        let started = bucket.started.fetch_add(1, Ordering::SeqCst) + 1;
        Write {
            stamps: self.clone(),
            key: key.to_owned(),
            // Alone so far if nothing was under way and no other write
            // started between the read and ours.
            alone: before.quiet() && started == before.started + 1,
            started,
            done: false,
        }
    }
}

/// A write under way; see [`Stamps::start`].
#[derive(Debug)]
pub(crate) struct Write {
    stamps: Stamps,
    key: String,
    alone: bool,
    started: u64,
    done: bool,
}

impl Write {
    /// Ends the write; `true` when no other write of the bucket
    /// overlapped it, so its near copy may stay.
    pub(crate) fn finish(mut self) -> bool {
        self.done = true;
        let bucket = self.stamps.bucket(&self.key);
        let finished = bucket.finished.fetch_add(1, Ordering::SeqCst) + 1;
        let started = bucket.started.load(Ordering::SeqCst);
        self.alone && started == self.started && finished == self.started
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        if !self.done {
            self.stamps
                .bucket(&self.key)
                .finished
                .fetch_add(1, Ordering::SeqCst);
        }
    }
}
