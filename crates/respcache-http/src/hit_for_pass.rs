//! Hit-for-pass: the keys whose last response could not be stored. Their
//! requests go to the origin side by side, instead of queueing behind one
//! another for a response none of them could share (long polls, event
//! streams, personal pages).
//!
//! Memory is bounded twice over: at most `capacity` keys, the oldest
//! forgotten first, and each remembered by a 64-bit hash (a key may be
//! 64 KiB long). Two keys that share a hash share a memory, which only
//! costs the other one its coalescing for a while; the hash is keyed at
//! random per cache, so a client cannot aim a collision at a key.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::lock;

/// The keys remembered for hit-for-pass, until when.
#[derive(Debug, Default)]
pub(crate) struct HitForPass {
    hasher: RandomState,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    until: HashMap<u64, SystemTime>,
    /// Hashes in the order they were first remembered.
    order: VecDeque<u64>,
}

impl HitForPass {
    /// Remembers `key` until `until`, keeping at most `capacity` keys.
    pub(crate) fn remember(&self, key: &str, until: SystemTime, capacity: usize) {
        if capacity == 0 {
            return;
        }
        let hash = self.hasher.hash_one(key);
        let mut state = lock(&self.state);
        if let Some(at) = state.until.get_mut(&hash) {
            *at = until;
            return;
        }
        while state.order.len() >= capacity {
            if let Some(oldest) = state.order.pop_front() {
                state.until.remove(&oldest);
            }
        }
        state.order.push_back(hash);
        state.until.insert(hash, until);
    }

    /// Forgets `key`: its last response was stored.
    pub(crate) fn forget(&self, key: &str) {
        let hash = self.hasher.hash_one(key);
        let mut state = lock(&self.state);
        if state.until.remove(&hash).is_some() {
            state.order.retain(|remembered| *remembered != hash);
        }
    }

    /// Whether `key` is remembered at `now`.
    pub(crate) fn holds(&self, key: &str, now: SystemTime) -> bool {
        let hash = self.hasher.hash_one(key);
        lock(&self.state)
            .until
            .get(&hash)
            .is_some_and(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keys_are_held_until_their_time_and_the_oldest_go_first() {
        let memory = HitForPass::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let later = now + Duration::from_secs(60);
        memory.remember("a", later, 2);
        memory.remember("b", later, 2);
        assert!(memory.holds("a", now) && memory.holds("b", now));
        assert!(!memory.holds("a", later), "until, not including");
        memory.remember("c", later, 2);
        assert!(!memory.holds("a", now), "the oldest made room");
        assert!(memory.holds("b", now) && memory.holds("c", now));
        memory.forget("b");
        assert!(!memory.holds("b", now));
        memory.remember("d", later, 2);
        assert!(memory.holds("c", now) && memory.holds("d", now));
        let state = lock(&memory.state);
        assert!(state.order.len() <= 2 && state.until.len() <= 2);
    }

    #[test]
    fn a_capacity_of_zero_remembers_nothing() {
        let memory = HitForPass::default();
        let now = SystemTime::UNIX_EPOCH;
        memory.remember("a", now + Duration::from_secs(1), 0);
        assert!(!memory.holds("a", now));
    }
}
