//! Counters of what the engine did, for a metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by every clone of a cache.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    revalidations: AtomicU64,
    not_modified: AtomicU64,
    coalesced: AtomicU64,
    stores: AtomicU64,
    errors: AtomicU64,
}

/// A reading of the engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Responses served from storage, fresh.
    pub hits: u64,
    /// Requests the origin answered (misses, bypasses, unsafe methods).
    pub misses: u64,
    /// Stale responses served (`stale-while-revalidate`, `stale-if-error`).
    pub stale: u64,
    /// Revalidations sent to the origin.
    pub revalidations: u64,
    /// Revalidations answered `304 Not Modified`.
    pub not_modified: u64,
    /// Requests that waited for another's origin response.
    pub coalesced: u64,
    /// Responses handed to the backend to store.
    pub stores: u64,
    /// Cache failures that fell back to the origin.
    pub errors: u64,
}

macro_rules! counters {
    ($($name:ident => $field:ident),*) => {
        impl Metrics {
            $(pub(crate) fn $name(&self) {
                self.$field.fetch_add(1, Ordering::Relaxed);
            })*

            pub(crate) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($field: self.$field.load(Ordering::Relaxed)),* }
            }
        }
    };
}

counters!(
    hit => hits,
    miss => misses,
    stale => stale,
    revalidation => revalidations,
    not_modified => not_modified,
    coalesced => coalesced,
    store => stores,
    error => errors
);
