//! Running the origin and storing what it computed.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Cache;
use super::budget::Budget;
use super::lease::HeldLease;
use super::read_through::{ComputeError, Computed, ReadThrough};
use crate::envelope::{self, Stamp};
use crate::store::{Granted, StoreEntry};

/// What became of a computed value.
pub(super) enum Filled {
    /// Stored: its envelope answers every waiter.
    Stored(Bytes),
    /// Not stored — an invalidation voided the lease, or there was none
    /// (the store failing), or the fill failed, or the value is over the
    /// size cap. Nothing says no write came after the computation began,
    /// so the envelope answers only callers that were waiting before the
    /// leader began (see `single_flight.rs`).
    Unstored(Bytes),
    /// The value could not be encoded: waiters compute their own.
    Unencodable,
}

impl Cache {
    /// Runs the origin and stores the result — with the lease if there is
    /// one (a voided lease rejects the fill), plainly under `physical` if
    /// leases are off, not at all if leases are on but this caller has
    /// none.
    pub(super) async fn compute_and_fill<T, E, F, Fut>(
        &self,
        key: &str,
        physical: &str,
        options: ReadThrough<'_>,
        mut lease: Option<HeldLease>,
        budget: &Budget,
        compute: F,
    ) -> Result<(T, Filled), ComputeError<E>>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let metrics = &self.inner.metrics;
        // The tags' stamps as they were before the computation began: a
        // tag invalidated while it runs makes the entry a miss on read.
        let stamps = match lease.as_ref() {
            Some(held) => Some(tag_stamps(options.tags, held.stamps.get(2..))),
            None if self.inner.config.leases || options.tags.is_empty() => Some(Vec::new()),
            None => {
                let keys: Vec<String> = options
                    .tags
                    .iter()
                    .map(|tag| self.inner.keys.tag_stamp(tag))
                    .collect();
                let ttl = self.longest_kept(options.ttl);
                self.call_in("stamps", budget, self.inner.store.stamps(&keys, ttl))
                    .await
                    .ok()
                    .map(|values| tag_stamps(options.tags, Some(&values)))
            }
        };
        let started = Instant::now();
        // The origin's time is not the cache's.
        let computing = budget.pause();
        let computed = compute()
            .instrument(tracing::debug_span!("larder.compute", key))
            .await;
        drop(computing);
        let computed = match computed {
            Ok(computed) => computed,
            Err(err) => {
                self.give_back(lease, budget).await;
                return Err(ComputeError::Origin(err));
            }
        };
        let elapsed = started.elapsed();
        metrics.with(key, |m| m.compute.record(elapsed.as_secs_f64()));
        let ttl = computed.ttl.unwrap_or(options.ttl);
        let compute_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        // Tags learnt from the value (a model's related instances): their
        // stamps now, recorded beside the others. With a lease, unless one
        // of them was invalidated since the computation may have read its
        // data — its change marker is set (see `Cache::change_markers`) —
        // and then the fill is refused: an invalidation after this read
        // deletes a stamp recorded here, one before it left the marker.
        let mut storable = stamps.is_some();
        let mut recorded = stamps.unwrap_or_default();
        let mut late_indexes = Vec::new();
        if !computed.depends.is_empty() {
            let kept = self.longest_kept(ttl);
            let tags = &computed.depends.recorded;
            let found = if let Some(held) = &lease {
                let granted = Granted {
                    lease: held.keys().lease,
                    ttl: self.inner.config.lease_ttl,
                };
                self.unchanged_stamps(tags, granted, kept, budget).await
            } else {
                self.dependency_stamps(tags, kept, budget).await.map(Some)
            };
            match found {
                Ok(Some(found)) => {
                    recorded.extend(found);
                    late_indexes = (computed.depends.indexed.iter())
                        .map(|tag| self.inner.keys.tag_index(tag))
                        .collect();
                }
                Ok(None) => {
                    metrics.with(key, |m| m.fills_rejected.increment(1));
                    tracing::debug!(
                        key,
                        "larder: fill rejected: a dependency was invalidated during the computation"
                    );
                    storable = false;
                }
                Err(err) if options.refresh && !options.fail_open => {
                    self.give_back(lease, budget).await;
                    return Err(ComputeError::Cache(err));
                }
                // Without them the entry could not be checked on read.
                Err(_) => storable = false,
            }
        }
        let encoded =
            match self.envelope_for(&computed.value, ttl, compute_ms, recorded, options.schema) {
                Ok(encoded) => encoded,
                Err(err) => {
                    tracing::warn!(key, error = %err, "larder: computed value not cached");
                    self.give_back(lease, budget).await;
                    return Ok((computed.value, Filled::Unencodable));
                }
            };
        if !storable && lease.is_some() {
            self.give_back(lease, budget).await;
            return Ok((computed.value, Filled::Unstored(encoded.bytes)));
        }
        if self.check_size(key, &encoded).is_err() {
            self.give_back(lease, budget).await;
            return Ok((computed.value, Filled::Unstored(encoded.bytes)));
        }
        let (bytes, ttl) = (encoded.bytes, encoded.ttl);
        let filling = Instant::now();
        let stored = match lease.as_mut() {
            Some(held) => {
                let mut keys = held.keys();
                let indexes;
                if !late_indexes.is_empty() {
                    indexes = [keys.indexes, &late_indexes].concat();
                    keys.indexes = &indexes;
                }
                let filled = self
                    .call_in(
                        "fill_leased",
                        budget,
                        self.inner
                            .store
                            .fill_leased(keys, held.lease, bytes.clone(), ttl),
                    )
                    .await;
                if filled.is_ok() {
                    held.spent = true; // filled, or voided: nothing to give back
                }
                filled
            }
            // Without the tags' stamps the entry could not be checked.
            None if !self.inner.config.leases && storable => {
                let mut indexes: Vec<String> = (options.tags.iter())
                    .map(|tag| self.inner.keys.tag_index(tag))
                    .collect();
                indexes.extend(late_indexes);
                let entry = [StoreEntry {
                    key: physical.to_owned(),
                    value: bytes.clone(),
                    ttl,
                    void_lease: None,
                    indexes,
                }];
                self.call_in("SET", budget, self.inner.store.mset(&entry))
                    .await
                    .map(|()| true)
            }
            None => Ok(false),
        };
        match stored {
            Ok(true) => {
                let filled = filling.elapsed().as_secs_f64();
                metrics.with(key, |m| m.fill.record(filled));
            }
            Ok(false) if lease.is_some() => {
                metrics.with(key, |m| m.fills_rejected.increment(1));
                tracing::debug!(
                    key,
                    "larder: fill rejected: the lease was voided by an invalidation"
                );
                return Ok((computed.value, Filled::Unstored(bytes)));
            }
            Ok(false) => return Ok((computed.value, Filled::Unstored(bytes))),
            Err(err) if options.refresh && !options.fail_open => {
                return Err(ComputeError::Cache(err));
            }
            Err(_) => return Ok((computed.value, Filled::Unstored(bytes))),
        }
        Ok((computed.value, Filled::Stored(bytes)))
    }
}

impl Filled {
    /// What the local tier needs to keep the value: only a stored one.
    pub(super) fn keep(&self) -> Option<super::tiered::Keep> {
        match self {
            Filled::Stored(bytes) => super::tiered::Keep::of_envelope(bytes),
            Filled::Unstored(_) | Filled::Unencodable => None,
        }
    }
}

/// The stamps to record for `tags`: their values at the grant, in order.
fn tag_stamps(tags: &[String], values: Option<&[u64]>) -> Vec<Stamp> {
    tags.iter()
        .zip(values.unwrap_or_default())
        .map(|(tag, value)| Stamp {
            key: tag.clone(),
            value: *value,
        })
        .collect()
}

/// Decodes an envelope handed over by the flight leader: trusted bytes, so
/// no size cap and no expiry check (a very short TTL must not turn the
/// leader's fresh value into a miss for its waiters).
pub(super) fn decode_shared<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let (header, payload) = envelope::parse(bytes, usize::MAX).ok()?;
    envelope::decode_payload(&header, payload).ok()
}
