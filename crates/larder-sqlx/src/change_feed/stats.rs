//! [`ChangeFeedStats`]: what a feed has done so far.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a feed's counters, from [`ChangeFeed::stats`](super::ChangeFeed::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeFeedStats {
    /// Notifications received on the channel, markers included.
    pub notifications: u64,
    /// Ids whose entries were invalidated.
    pub invalidations: u64,
    /// Generation bumps of a watched model: on every (re)connect, for a
    /// `TRUNCATE`, for a payload that could not be read, and after a
    /// failed invalidation.
    pub generation_bumps: u64,
    /// Times the listener lost its connection and listened again.
    pub reconnects: u64,
    /// Failed attempts to connect or to `LISTEN`.
    pub connect_failures: u64,
    /// Payloads that were not the trigger's (or held an id that did not
    /// parse): each made its model's generation move, failing closed.
    pub unreadable_payloads: u64,
    /// Invalidations or bumps the cache failed; the bump is retried until
    /// it succeeds.
    pub cache_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) notifications: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) generation_bumps: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) unreadable_payloads: AtomicU64,
    pub(crate) cache_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ChangeFeedStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ChangeFeedStats {
            notifications: get(&self.notifications),
            invalidations: get(&self.invalidations),
            generation_bumps: get(&self.generation_bumps),
            reconnects: get(&self.reconnects),
            connect_failures: get(&self.connect_failures),
            unreadable_payloads: get(&self.unreadable_payloads),
            cache_failures: get(&self.cache_failures),
        }
    }
}
