//! The deadline of one operation, shared by all its store calls.
//!
//! A user reads "deadline" as the most the cache adds to a call. A
//! read-through miss makes several store calls — the read, the lease, the
//! fill, perhaps the removal of a corrupt entry — so each call gets what the
//! earlier ones left, not a deadline of its own: against a Redis that
//! accepts and then hangs, a miss waits one deadline in all, then computes
//! without the cache. Time spent in the origin, or waiting for another
//! caller's computation, is not store time and is not counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What is left of an operation's store time.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Nanoseconds left (an atomic so that a `&Budget` is `Send`).
    left_ns: AtomicU64,
}

impl Budget {
    pub(crate) fn new(deadline: Duration) -> Self {
        Self {
            left_ns: AtomicU64::new(nanos(deadline)),
        }
    }

    /// The store time left.
    pub(crate) fn left(&self) -> Duration {
        Duration::from_nanos(self.left_ns.load(Ordering::Relaxed))
    }

    /// Counts `spent` against the budget.
    pub(crate) fn spend(&self, spent: Duration) {
        let spent = nanos(spent);
        let _ = self
            .left_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(spent))
            });
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_never_goes_below_zero() {
        let budget = Budget::new(Duration::from_millis(10));
        budget.spend(Duration::from_millis(4));
        assert_eq!(budget.left(), Duration::from_millis(6));
        budget.spend(Duration::from_secs(1));
        assert_eq!(budget.left(), Duration::ZERO);
    }
}
