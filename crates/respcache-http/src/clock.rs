//! The engine's clock: every freshness, age and revalidation decision
//! asks it for the time, so tests can move time instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where the engine reads the time of day.
///
/// The default is [`SystemClock`]. Tests (the engine's own, and those of
/// an application around it) hand [`Options::clock`](crate::Options::clock)
/// a [`ManualClock`] and advance it, so that an entry goes stale without
/// anyone waiting for it. Timeouts that only bound how long something
/// waits (coalescing, the origin) run on tokio's timer, not on this clock.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; clones share one time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use respcache_http::{Clock, ManualClock};
///
/// let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock standing at `time`.
    pub fn at(time: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(time)))
    }

    /// A clock standing at the current wall-clock time, so that the dates
    /// a real origin sends agree with it.
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut time = crate::lock(&self.0);
        *time = time.checked_add(by).unwrap_or(*time);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *crate::lock(&self.0)
    }
}
