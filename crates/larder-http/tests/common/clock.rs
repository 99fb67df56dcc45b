//! Clocks of their own for the tests of one binary (tests run in parallel
//! and advance time): [`Clock::new`] hands out the next of 32.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static CLOCKS: [AtomicU64; 32] = [const { AtomicU64::new(1_000_000_000) }; 32];
static NEXT_CLOCK: AtomicUsize = AtomicUsize::new(0);

/// One `fn() -> u64` reading each clock (a layer's clock is a plain fn).
macro_rules! clock_fns {
    ($($i:literal),*) => { [$( { fn read() -> u64 { CLOCKS[$i].load(Ordering::SeqCst) } read as fn() -> u64 } ),*] };
}

/// A test's own clock, in milliseconds since the epoch.
///
/// ```ignore
/// let (clock, read) = Clock::new();
/// let layer = ResponseCacheLayer::new(cache).clock(read);
/// clock.advance_secs(61); // what `layer` stored a minute ago is now stale
/// ```
pub struct Clock(usize);

impl Clock {
    /// The next unused clock, and the function that reads it.
    pub fn new() -> (Clock, fn() -> u64) {
        let fns: [fn() -> u64; 32] = clock_fns!(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
            24, 25, 26, 27, 28, 29, 30, 31
        );
        let i = NEXT_CLOCK.fetch_add(1, Ordering::SeqCst);
        (Clock(i), fns[i])
    }

    /// Moves this clock `secs` seconds on.
    pub fn advance_secs(&self, secs: u64) {
        CLOCKS[self.0].fetch_add(secs * 1000, Ordering::SeqCst);
    }
}
