//! The deadline of one operation, shared by all its store calls.
//!
//! A user reads "deadline" as the most the cache adds to a call. A
//! read-through miss makes several store calls — the read, the lease, the
//! fill, perhaps the removal of a corrupt entry — so they share one
//! deadline rather than each having its own: against a Redis that accepts
//! and then hangs, a miss waits one deadline in all, then computes without
//! the cache. Time spent in the origin, or waiting for another caller's
//! computation, is not the cache's: the deadline moves on by that much
//! ([`Budget::pause`]).
//!
//! A hit reads the clock once, as a per-call timeout would: the deadline
//! is an instant, fixed at the first store call, and each store call's
//! timer is set to it. An in-process store never reads it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What is left of an operation's store time.
#[derive(Debug)]
pub(crate) struct Budget {
    /// When the first store call began.
    started: OnceLock<Instant>,
    /// The deadline, in nanoseconds after `started` (an atomic so that a
    /// `&Budget` is `Send`).
    deadline_ns: AtomicU64,
    /// A call ran out of time: the operation asks the store nothing more.
    spent: AtomicBool,
}

impl Budget {
    pub(crate) fn new(deadline: Duration) -> Self {
        Self {
            started: OnceLock::new(),
            deadline_ns: AtomicU64::new(nanos(deadline)),
            spent: AtomicBool::new(false),
        }
    }

    /// Notes that a call ran out of time.
    pub(crate) fn spend(&self) {
        self.spent.store(true, Ordering::Relaxed);
    }

    /// Whether a call ran out of time.
    pub(crate) fn is_spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }

    /// The instant the operation's store calls must be done by.
    pub(crate) fn deadline(&self) -> Instant {
        let started = *self.started.get_or_init(Instant::now);
        started + Duration::from_nanos(self.deadline_ns.load(Ordering::Relaxed))
    }

    /// The store time left.
    pub(crate) fn left(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Stops the clock until the returned guard is dropped: time spent in
    /// the origin or waiting for another caller does not count.
    pub(crate) fn pause(&self) -> Paused<'_> {
        self.deadline(); // the clock starts, if it had not
        Paused {
            budget: self,
            since: Instant::now(),
        }
    }
}

/// A paused [`Budget`]; dropping it moves the deadline on by the pause.
#[derive(Debug)]
pub(crate) struct Paused<'a> {
    budget: &'a Budget,
    since: Instant,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let paused = nanos(self.since.elapsed());
        self.budget.deadline_ns.fetch_add(paused, Ordering::Relaxed);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_move_the_deadline_on() {
        let budget = Budget::new(Duration::from_millis(10));
        budget.deadline(); // the first store call
        tokio::time::sleep(Duration::from_millis(4)).await;
        assert_eq!(budget.left(), Duration::from_millis(6));
        {
            let _computing = budget.pause();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        assert_eq!(budget.left(), Duration::from_millis(6));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(budget.left(), Duration::ZERO);
    }
}
