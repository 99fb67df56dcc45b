//! Write invalidations that failed and are being retried.
//!
//! A write's response has gone out by the time its invalidation runs; if
//! Redis could not take the invalidation (down, paused, out of reach), the
//! old page would be served again as soon as Redis is back. So a failed
//! invalidation is retried in the background, with backoff, until it
//! succeeds or the longest a stored response can live (the route's TTL
//! plus the cache's stale grace) has passed; meanwhile every request for
//! that path in this process bypasses the cache. Other processes serve
//! what Redis holds until the retry lands (they did not see the write).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::Cache;

/// Tags (paths) whose invalidation is still owed. Shared by every clone of
/// a layer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pending {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// How many tags are owed: lets the hot path skip the lock.
    count: AtomicUsize,
    tags: Mutex<HashSet<String>>,
}

impl Pending {
    /// Whether `tag`'s invalidation is still owed.
    pub(crate) fn contains(&self, tag: &str) -> bool {
        self.inner.count.load(Ordering::Acquire) > 0 && self.lock().contains(tag)
    }

    /// Retries the invalidation of `tag` in the background until it lands
    /// or `lifetime` (the longest a stored response lives) has passed.
    pub(crate) fn retry(&self, cache: &Cache, tag: String, lifetime: Duration) {
        if !self.lock().insert(tag.clone()) {
            return; // a retry for it runs already
        }
        self.inner.count.fetch_add(1, Ordering::AcqRel);
        let (pending, cache) = (self.clone(), cache.clone());
        tokio::spawn(async move {
            let give_up = tokio::time::Instant::now() + lifetime;
            let mut backoff = Duration::from_millis(50);
            let landed = loop {
                tokio::time::sleep(backoff).await;
                if larder::__private::invalidate_tag(&cache, &tag)
                    .await
                    .is_ok()
                {
                    break true;
                }
                if tokio::time::Instant::now() >= give_up {
                    break false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            };
            if !landed {
                // Everything stored before the write has expired by now.
                tracing::warn!(
                    tag,
                    "larder-http: gave up an invalidation: its entries have expired"
                );
            }
            pending.lock().remove(&tag);
            pending.inner.count.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner
            .tags
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
