//! Write invalidations that failed and are being retried.
//!
//! A write's response has gone out by the time its invalidation runs; if
//! Redis could not take the invalidation (down, paused, out of reach), the
//! old page would be served again as soon as Redis is back. (So would
//! content a shared-mode revalidation found withdrawn, if its stored copy
//! could not be dropped: that is owed the same way.) So a failed
//! invalidation is owed: every request for that path in this process
//! bypasses the cache, and one background worker per layer retries what is
//! owed, with backoff, until it lands or the longest a stored response can
//! live has passed (then nothing stored before the write is left). Other
//! processes serve what Redis holds until the retry lands (they did not see
//! the write).
//!
//! Each failure is numbered; an entry is settled only by an attempt that
//! began after its latest failure, so a second write's failure is never
//! swallowed by a retry of the first one. Beyond [`MAX_OWED`] paths the
//! whole route is owed instead (one pattern invalidation settles it), so an
//! outage costs bounded memory and one task however many paths are written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::Cache;
use tokio::time::Instant;

/// Paths owed one by one; beyond it, the whole route.
const MAX_OWED: usize = 10_000;

/// Tags (paths) whose invalidation is still owed. Shared by every clone of
/// a layer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pending {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Something is owed: lets the hot path skip the lock.
    any: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Numbers the failures.
    sequence: u64,
    /// Owed paths: the number of their latest failure, and when to give up.
    tags: HashMap<String, Owed>,
    /// The whole route is owed (too many paths): its latest failure.
    route: Option<Owed>,
    /// Whether the retry worker runs.
    working: bool,
}

#[derive(Debug, Clone, Copy)]
struct Owed {
    failure: u64,
    give_up: Option<Instant>,
}

/// What a retry needs of the layer.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) cache: Cache,
    /// The pattern of every stored response of the route.
    pub(crate) pattern: String,
    /// The longest a stored response can live.
    pub(crate) lifetime: Duration,
}

impl Pending {
    /// Whether `tag`'s invalidation is still owed.
    pub(crate) fn contains(&self, tag: &str) -> bool {
        if !self.inner.any.load(Ordering::Acquire) {
            return false;
        }
        let state = self.lock();
        state.route.is_some() || state.tags.contains_key(tag)
    }

    /// Owes the invalidation of `tag` (it just failed) and makes sure the
    /// worker retries it.
    pub(crate) fn owe(&self, route: &Route, tag: String) {
        let mut state = self.lock();
        state.sequence += 1;
        let owed = Owed {
            failure: state.sequence,
            give_up: Instant::now().checked_add(route.lifetime),
        };
        if state.route.is_some() || state.tags.len() >= MAX_OWED {
            state.tags.clear();
            state.route = Some(owed);
        } else {
            state.tags.insert(tag, owed);
        }
        self.inner.any.store(true, Ordering::Release);
        if !std::mem::replace(&mut state.working, true) {
            tokio::spawn(work(self.clone(), route.clone()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Settles what an attempt begun after failure `began_after` covered:
    /// `tag` (or the route, for `None`), unless it failed again since.
    fn settle(&self, tag: Option<&str>, began_after: u64) {
        let mut state = self.lock();
        match tag {
            Some(tag) => {
                if state
                    .tags
                    .get(tag)
                    .is_some_and(|o| o.failure <= began_after)
                {
                    state.tags.remove(tag);
                }
            }
            None => {
                if state.route.is_some_and(|o| o.failure <= began_after) {
                    state.route = None;
                }
            }
        }
    }
}

/// The worker: retries everything owed, with backoff, until nothing is.
async fn work(pending: Pending, route: Route) {
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::time::sleep(backoff).await;
        let (began_after, whole_route, tags) = {
            let mut state = pending.lock();
            let now = Instant::now();
            let expired = |owed: &Owed| owed.give_up.is_some_and(|at| now >= at);
            // Everything stored before these writes has expired by now.
            state.tags.retain(|_, owed| !expired(owed));
            if state.route.as_ref().is_some_and(expired) {
                state.route = None;
            }
            if state.tags.is_empty() && state.route.is_none() {
                state.working = false;
                pending.inner.any.store(false, Ordering::Release);
                return;
            }
            let tags: Vec<String> = state.tags.keys().cloned().collect();
            (state.sequence, state.route.is_some(), tags)
        };
        let mut failed = false;
        if whole_route {
            match route.cache.invalidate_cache_pattern(&route.pattern).await {
                Ok(_) => pending.settle(None, began_after),
                Err(_) => failed = true,
            }
        }
        for tag in tags {
            if failed {
                break;
            }
            match larder::__private::invalidate_tag(&route.cache, &tag).await {
                Ok(_) => pending.settle(Some(&tag), began_after),
                Err(_) => failed = true,
            }
        }
        backoff = if failed {
            (backoff * 2).min(Duration::from_secs(2))
        } else {
            Duration::from_millis(50)
        };
    }
}
