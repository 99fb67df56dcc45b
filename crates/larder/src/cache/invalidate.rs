use bytes::Bytes;
use tracing::Instrument;

use super::Cache;
use super::local::message::Invalidation;
use crate::Result;
use crate::key::{glob_match, namespace_of_pattern};

use super::single_flight::flight_of;

impl Cache {
    /// Removes the entry under the logical `key` (the Django original's
    /// `delete_cached_data("product:1")`) and its lease, in one round trip;
    /// returns whether it existed.
    ///
    /// Invalidations report store failures in every fail mode: a silently
    /// skipped invalidation would leave stale data behind once Redis is back.
    ///
    /// # Errors
    /// The store failure.
    pub async fn delete_cached_data(&self, key: &str) -> Result<bool> {
        self.delete_many(&[key]).await.map(|removed| removed > 0)
    }

    /// Removes the entries under every logical key in `keys` (and their
    /// leases) in one round trip; returns how many existed.
    ///
    /// # Errors
    /// The store failure.
    pub async fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64> {
        let physical: Vec<String> = keys
            .iter()
            .map(|k| self.inner.keys.physical(k.as_ref()))
            .collect();
        let is_deleted = |flight: &str| physical.iter().any(|p| p == flight_of(flight));
        self.detach_flights(is_deleted);
        let leases: Vec<String> = keys
            .iter()
            .map(|k| self.inner.keys.lease(k.as_ref()))
            .collect();
        // The leases go first, in the same round trip: a computation that
        // began before this call can no longer fill, not even between the
        // two removals.
        // Every instance's local tier hears of it in the same round trip.
        let invalidation = Invalidation::Keys(physical.clone());
        let message = Bytes::from(invalidation.encode());
        let removed = self
            .call(
                "UNLINK",
                self.inner.store.unlink_entries_and_publish(
                    &physical,
                    &leases,
                    self.inner.keys.channel(),
                    message,
                ),
            )
            .await?;
        // Flights that began while the removals ran are older than the write.
        self.detach_flights(is_deleted);
        self.inner.local.apply(&invalidation);
        Ok(removed)
    }

    /// Removes every entry whose logical key matches the glob `pattern` (the
    /// Django original's `invalidate_cache_pattern("product:*")`); returns
    /// how many went.
    ///
    /// The pattern is a Redis glob over logical keys of this cache's prefix
    /// and version only. Build patterns from user input with
    /// [`escape_glob`](crate::key::escape_glob). On Redis this is `SCAN MATCH`
    /// with `UNLINK` in pipelined batches of `scan_batch` keys, each round
    /// trip bounded by the deadline; `KEYS` is never used. Every step is a
    /// deletion, so it works on a Redis that is out of memory
    /// (`maxmemory` with `noeviction`), exactly when deletions matter.
    ///
    /// Before scanning it voids the leases of every computation that might
    /// fill a matching key: when the pattern's first segment is literal
    /// (`product:*`, `user:123:*`), those of that namespace; otherwise
    /// (`prod*`, `*`), all of the cache's. Their computations return their
    /// values to their callers but do not store them. Leases of keys
    /// without a value cannot be found by a scan, so this is the price of
    /// never letting a computation that began before the invalidation fill
    /// after it.
    ///
    /// # Errors
    /// The store failure; keys removed before it stay removed.
    pub async fn invalidate_cache_pattern(&self, pattern: &str) -> Result<u64> {
        let physical = self.inner.keys.pattern(pattern);
        let config = &self.inner.config;
        // Deleting the stamp voids every lease granted under it (a missing
        // stamp voids too, so an evicted one cannot revive old leases).
        let stamp = match namespace_of_pattern(pattern) {
            Some(namespace) => self.inner.keys.namespace_stamp(namespace),
            None => self.inner.keys.stamp().to_owned(),
        };
        self.call("UNLINK", self.inner.store.unlink(&[stamp]))
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
            .await;
        self.detach_flights(|flight| glob_match(physical.as_bytes(), flight_of(flight).as_bytes()));
        // Announced whatever the outcome: keys removed before a failure
        // stay removed, and no local tier may keep serving them.
        let announced = self.announce(Invalidation::Pattern(physical)).await;
        let removed = removed?;
        announced?;
        span.record("removed", removed);
        Ok(removed)
    }

    /// Removes every entry filled under `tag` (see
    /// [`ReadThrough::tags`](super::ReadThrough)), and voids the leases of
    /// entries being computed under it: their computations return their
    /// values but do not store them. Costs in proportion to the tag's
    /// entries, never to the keyspace: the store keeps an index per tag.
    ///
    /// In-process flights filled under the tag are detached: callers that
    /// arrive after this call start afresh.
    ///
    /// # Errors
    /// The store failure; entries removed before it stay removed.
    pub(crate) async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        self.invalidate_tags(&[tag.to_owned()]).await
    }

    /// [`Cache::invalidate_tag`] of many tags: their stamps in one round
    /// trip per 1,000, then their indexes, up to 64 scans in flight.
    pub(crate) async fn invalidate_tags(&self, tags: &[String]) -> Result<u64> {
        use futures::StreamExt as _;

        let keys = &self.inner.keys;
        let detach = || {
            for tag in tags {
                self.inner.flights.detach_tagged(tag);
            }
        };
        detach();
        let mut unlinked = Ok(0);
        for chunk in tags.chunks(1000) {
            let stamps: Vec<String> = chunk.iter().map(|tag| keys.tag_stamp(tag)).collect();
            unlinked = self.call("UNLINK", self.inner.store.unlink(&stamps)).await;
            if unlinked.is_err() {
                break;
            }
        }
        // Flights that began while the stamps went are older than the write.
        detach();
        // Entries recording these stamps are misses in the store from now
        // on; in every local tier too — announced even after a failure,
        // since stamps removed before it stay removed.
        let announced = self.announce(Invalidation::Tags(tags.to_vec())).await;
        unlinked?;
        announced?;
        let config = &self.inner.config;
        let indexes: Vec<String> = tags.iter().map(|tag| keys.tag_index(tag)).collect();
        let mut scans = futures::stream::iter(indexes)
            .map(|index: String| async move {
                self.call_within(
                    "SSCAN/UNLINK",
                    None,
                    self.inner
                        .store
                        .unlink_index(&index, config.scan_batch, config.deadline),
                )
                .await
            })
            .buffer_unordered(64);
        let mut removed = 0;
        while let Some(scanned) = scans.next().await {
            removed += scanned?;
        }
        Ok(removed)
    }

    fn detach_flights(&self, matches: impl Fn(&str) -> bool) {
        self.inner.flights.detach(matches);
    }
}
