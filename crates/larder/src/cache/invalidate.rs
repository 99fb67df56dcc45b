use tracing::Instrument;

use super::Cache;
use crate::Result;
use crate::key::glob_match;

use super::single_flight::flight_of;

impl Cache {
    /// Removes the entry under the logical `key` (the seed's
    /// `delete_cached_data("product:1")`); returns whether it existed.
    ///
    /// Invalidations report store failures in every fail mode: a silently
    /// skipped invalidation would leave stale data behind once Redis is back.
    ///
    /// # Errors
    /// The store failure.
    pub async fn delete_cached_data(&self, key: &str) -> Result<bool> {
        let physical = self.inner.keys.physical(key);
        self.detach_flights(|flight| flight_of(flight) == physical);
        // The lease goes first: a computation that began before this call
        // can no longer fill, not even between the two removals.
        self.call(
            "UNLINK",
            self.inner.store.unlink(&[self.inner.keys.lease(key)]),
        )
        .await?;
        let keys = [physical];
        let removed = self.call("UNLINK", self.inner.store.unlink(&keys)).await?;
        // Flights that began while the removals ran are older than the write.
        self.detach_flights(|flight| flight_of(flight) == keys[0]);
        Ok(removed > 0)
    }

    /// Removes the entries under every logical key in `keys` (and their
    /// leases); returns how many existed.
    ///
    /// # Errors
    /// The store failure.
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        let physical: Vec<String> = keys
            .iter()
            .map(|k| self.inner.keys.physical(k.as_ref()))
            .collect();
        self.detach_flights(|flight| physical.iter().any(|p| p == flight_of(flight)));
        let leases: Vec<String> = keys
            .iter()
            .map(|k| self.inner.keys.lease(k.as_ref()))
            .collect();
        self.call("UNLINK", self.inner.store.unlink(&leases))
            .await?;
        let removed = self
            .call("UNLINK", self.inner.store.unlink(&physical))
            .await?;
        self.detach_flights(|flight| physical.iter().any(|p| p == flight_of(flight)));
        Ok(removed)
    }

    /// Removes every entry whose logical key matches the glob `pattern` (the
    /// seed's `invalidate_cache_pattern("product:*")`); returns how many
    /// went.
    ///
    /// The pattern is a Redis glob over logical keys of this cache's prefix
    /// and version only. Build patterns from user input with
    /// [`escape_glob`](crate::key::escape_glob). On Redis this is `SCAN MATCH`
    /// with `UNLINK` in pipelined batches of `scan_batch` keys, each round
    /// trip bounded by the deadline; `KEYS` is never used.
    ///
    /// Before scanning it moves the cache's lease epoch, which voids every
    /// lease outstanding at that moment — also those of keys the pattern does
    /// not match (their computations return their values but do not store
    /// them; the next read computes again). Leases of keys without a value
    /// cannot be found by a scan, so this is the price of never letting a
    /// computation that began before the invalidation fill after it.
    ///
    /// # Errors
    /// The store failure; keys removed before it stay removed.
    pub async fn invalidate_cache_pattern(&self, pattern: &str) -> Result<u64> {
        let physical = self.inner.keys.pattern(pattern);
        let config = &self.inner.config;
        // Leases of keys that have no value yet cannot be found by a scan:
        // bumping the epoch voids them all, first, so that no computation
        // that began before this call can fill once it returns.
        self.call("INCR", self.inner.store.bump_epoch(self.inner.keys.epoch()))
            .await?;
        self.detach_flights(|flight| glob_match(physical.as_bytes(), flight_of(flight).as_bytes()));
        let span = tracing::debug_span!(
            "larder.invalidate_pattern",
            pattern,
            removed = tracing::field::Empty
        );
        let removed = self
            .call_within(
                "SCAN/UNLINK",
                None,
                self.inner
                    .store
                    .unlink_pattern(&physical, config.scan_batch, config.deadline),
            )
            .instrument(span.clone())
            .await?;
        self.detach_flights(|flight| glob_match(physical.as_bytes(), flight_of(flight).as_bytes()));
        span.record("removed", removed);
        Ok(removed)
    }

    fn detach_flights(&self, matches: impl Fn(&str) -> bool) {
        self.inner.flights.detach(matches);
    }
}
