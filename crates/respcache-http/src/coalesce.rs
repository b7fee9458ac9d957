//! Request coalescing: concurrent misses for one key make one origin
//! request.
//!
//! The first request for a key (the leader) goes to the origin; the ones
//! that arrive while it is out (the followers) wait for it. When the
//! leader's response is being stored, it is spooled (see `spool`) to the
//! leader and every follower as it arrives; when it is not, the followers
//! look the cache up again once the leader is done. A follower that waits
//! too long for a stalled leader replaces it, one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http_body::Body;
use tokio::sync::watch;

use crate::body::CacheBody;
use crate::lock;
use crate::spool::{self, Spool};

/// A key's flight: its number (so that a flight taken over is not removed
/// by the one it replaced) and how to follow it.
struct Entry<M> {
    number: u64,
    spool: watch::Receiver<Option<Arc<Spool<M>>>>,
}

struct Map<M> {
    flights: HashMap<String, Entry<M>>,
    next_number: u64,
}

impl<M> Default for Map<M> {
    fn default() -> Self {
        Self {
            flights: HashMap::new(),
            next_number: 0,
        }
    }
}

/// The keys with a request on its way to the origin. `M` is what a spool
/// tells followers about the response besides its body.
pub(crate) struct Flights<M> {
    map: Arc<Mutex<Map<M>>>,
}

impl<M> std::fmt::Debug for Flights<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = lock(&self.map).flights.len();
        f.debug_struct("Flights").field("keys", &keys).finish()
    }
}

impl<M> Default for Flights<M> {
    fn default() -> Self {
        Self {
            map: Arc::default(),
        }
    }
}

/// What a request for a key does: go to the origin, or wait for the
/// request that already went.
pub(crate) enum Role<M> {
    Leader(Flight<M>),
    Follower(Follower<M>),
}

impl<M> Flights<M> {
    /// Leads the request for `key`, or follows the one already out.
    pub(crate) fn join_or_lead(&self, key: &str) -> Role<M> {
        self.join_or_replace(key, None)
    }

    /// For a follower that waited too long for `stale`: leads a new
    /// request for `key` in its place, unless another follower did so
    /// already (then follows that one). So a stalled flight is replaced by
    /// one origin request at a time, not by one per waiting request.
    pub(crate) fn replace(&self, key: &str, stale: &Follower<M>) -> Role<M> {
        self.join_or_replace(key, Some(stale.number))
    }

    fn join_or_replace(&self, key: &str, stale: Option<u64>) -> Role<M> {
        let mut map = lock(&self.map);
        if let Some(entry) = map.flights.get(key)
            && Some(entry.number) != stale
        {
            return Role::Follower(Follower {
                number: entry.number,
                spool: entry.spool.clone(),
            });
        }
        let number = map.next_number;
        map.next_number += 1;
        let (spool, wait) = watch::channel(None);
        map.flights.insert(
            key.to_owned(),
            Entry {
                number,
                spool: wait,
            },
        );
        Role::Leader(Flight {
            key: key.to_owned(),
            number,
            map: Arc::downgrade(&self.map),
            spool,
        })
    }
}

/// The leader's hold on its key. Dropping it (the response is stored, or
/// turned out not to be storable, or failed) lets the followers go on.
pub(crate) struct Flight<M> {
    key: String,
    number: u64,
    map: Weak<Mutex<Map<M>>>,
    spool: watch::Sender<Option<Arc<Spool<M>>>>,
}

impl<M> Drop for Flight<M> {
    fn drop(&mut self) {
        if let Some(map) = self.map.upgrade() {
            let mut map = lock(&map);
            if map
                .flights
                .get(&self.key)
                .is_some_and(|entry| entry.number == self.number)
            {
                map.flights.remove(&self.key);
            }
        }
    }
}

impl<M: Send + Sync + 'static> Flight<M> {
    /// Spools `body` (the body being stored) to the leader and the
    /// followers, holding at most `limit` unread bytes and waiting at most
    /// `stall` for the slowest reader: returns the leader's body. The
    /// flight ends when the store does.
    pub(crate) fn spool(
        self,
        meta: M,
        body: CacheBody,
        limit: usize,
        stall: Duration,
    ) -> CacheBody {
        let (spool, leader) = Spool::new(meta, limit, body.size_hint().exact());
        self.spool.send_replace(Some(spool.clone()));
        // The flight ends when the pump drops it: once the store is done.
        tokio::spawn(spool::pump(spool, body, self, stall));
        crate::body::boxed(leader)
    }
}

/// A request waiting for the leader of its key.
pub(crate) struct Follower<M> {
    /// The flight it follows.
    number: u64,
    spool: watch::Receiver<Option<Arc<Spool<M>>>>,
}

impl<M> Follower<M> {
    /// The leader's spool, once its response is being stored; `None` when
    /// the leader finished without one.
    pub(crate) async fn spool(&mut self) -> Option<Arc<Spool<M>>> {
        let spool = self.spool.wait_for(Option::is_some).await.ok()?;
        spool.clone()
    }

    /// Waits until the leader is done: its response stored, or not.
    pub(crate) async fn done(&mut self) {
        while self.spool.changed().await.is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_flight_is_replaced_once_and_its_end_keeps_the_new_one() {
        let flights = Flights::<()>::default();
        let Role::Leader(stalled) = flights.join_or_lead("k") else {
            panic!("the first request leads");
        };
        let (Role::Follower(a), Role::Follower(b)) =
            (flights.join_or_lead("k"), flights.join_or_lead("k"))
        else {
            panic!("the others follow");
        };
        let Role::Leader(new) = flights.replace("k", &a) else {
            panic!("the first to give up leads anew");
        };
        let Role::Follower(b_again) = flights.replace("k", &b) else {
            panic!("the second follows the new leader, not a third request");
        };
        assert_eq!(b_again.number, new.number);
        drop(stalled);
        assert!(
            matches!(flights.join_or_lead("k"), Role::Follower(f) if f.number == new.number),
            "the old flight's end leaves the new one in place"
        );
        drop(new);
        assert!(matches!(flights.join_or_lead("k"), Role::Leader(_)));
    }
}
