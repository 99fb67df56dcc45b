//! A circuit breaker: after N consecutive store failures, stop calling the
//! store for a while, then let exactly one probe through.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The breaker's answer to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: call the store.
    Closed,
    /// Open, and this caller is the one probe of this period.
    Probe,
    /// Open: do not call the store.
    Rejected,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    open_for_ms: u64,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls are refused; 0 = closed.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold,
            open_for_ms: u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 keeps "now" away from the 0 that means "closed".
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Whether a call may go to the store now. While open, only one caller
    /// per open period is admitted once the period has passed: the probe.
    pub(crate) fn admit(&self) -> Admission {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Closed;
        }
        if self.now_ms() < until {
            return Admission::Rejected;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::Rejected,
        }
    }

    pub(crate) fn on_success(&self) {
        // Loads first: the hot path (a healthy store) writes nothing shared.
        if self.failures.load(Ordering::Relaxed) == 0
            && self.open_until_ms.load(Ordering::Relaxed) == 0
        {
            return;
        }
        let was_open = self.open_until_ms.swap(0, Ordering::AcqRel) != 0;
        self.failures.store(0, Ordering::Release);
        self.probing.store(false, Ordering::Release);
        if was_open {
            tracing::info!("larder: the store answers again; circuit breaker closed");
        }
    }

    /// Counts a failure; returns whether this failure (re)opened the breaker.
    pub(crate) fn on_failure(&self) -> bool {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let open = self.open_until_ms.load(Ordering::Acquire) != 0;
        let opens =
            self.probing.swap(false, Ordering::AcqRel) || (!open && failures >= self.threshold);
        if opens {
            self.open_until_ms
                .store(self.now_ms() + self.open_for_ms, Ordering::Release);
            if !open {
                tracing::warn!(
                    failures,
                    open_for_ms = self.open_for_ms,
                    "larder: store keeps failing; circuit breaker open, serving from the origin"
                );
            }
        }
        opens
    }

    /// Gives up a probe that ended without an outcome (its caller was
    /// cancelled): the breaker stays open for another period, after which a
    /// new probe is admitted.
    pub(crate) fn on_probe_abandoned(&self) {
        if self.probing.swap(false, Ordering::AcqRel) {
            self.open_until_ms
                .store(self.now_ms() + self.open_for_ms, Ordering::Release);
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let breaker = Breaker::new(3, Duration::ZERO);
        for _ in 0..2 {
            assert_eq!(breaker.admit(), Admission::Closed);
            breaker.on_failure();
        }
        assert!(!breaker.is_open());
        breaker.on_failure();
        assert!(breaker.is_open());
        // open_for = 0: the period has passed; one probe, not two.
        assert_eq!(breaker.admit(), Admission::Probe);
        assert_eq!(breaker.admit(), Admission::Rejected);
        breaker.on_success();
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(), Admission::Closed);
    }

    #[test]
    fn failed_probe_reopens() {
        let breaker = Breaker::new(1, Duration::from_secs(3600));
        breaker.on_failure();
        assert_eq!(breaker.admit(), Admission::Rejected);
        let breaker = Breaker::new(1, Duration::ZERO);
        breaker.on_failure();
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.on_failure();
        assert!(breaker.is_open());
        assert_eq!(
            breaker.admit(),
            Admission::Probe,
            "a new period gives a new probe"
        );
    }

    #[test]
    fn an_abandoned_probe_lets_a_later_one_through() {
        let breaker = Breaker::new(1, Duration::ZERO);
        breaker.on_failure();
        assert_eq!(breaker.admit(), Admission::Probe);
        // The probing caller is cancelled: no success, no failure.
        breaker.on_probe_abandoned();
        assert_eq!(breaker.admit(), Admission::Probe);
    }
}
