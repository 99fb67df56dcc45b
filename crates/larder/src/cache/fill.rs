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
use crate::envelope;
use crate::store::StoreEntry;

/// What became of a computed value.
pub(super) enum Filled {
    /// Stored, or left unstored for a reason that does not concern the
    /// value (no lease, the store failing, over the size cap): its envelope,
    /// for in-process waiters.
    Shared(Bytes),
    /// An invalidation voided the lease: not stored. The envelope still
    /// answers callers that were waiting before that invalidation.
    Rejected(Bytes),
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
        let started = Instant::now();
        let computed = match compute()
            .instrument(tracing::debug_span!("larder.compute", key))
            .await
        {
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
        let encoded = match self.envelope_for(&computed.value, ttl, compute_ms) {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::warn!(key, error = %err, "larder: computed value not cached");
                self.give_back(lease, budget).await;
                return Ok((computed.value, Filled::Unencodable));
            }
        };
        if self.check_size(key, &encoded).is_err() {
            self.give_back(lease, budget).await;
            return Ok((computed.value, Filled::Shared(encoded.bytes)));
        }
        let (bytes, ttl) = (encoded.bytes, encoded.ttl);
        let filling = Instant::now();
        let stored = match lease.as_mut() {
            Some(held) => {
                let filled = self
                    .call_in(
                        "fill_leased",
                        budget,
                        self.inner
                            .store
                            .fill_leased(held.keys(), held.lease, bytes.clone(), ttl),
                    )
                    .await;
                if filled.is_ok() {
                    held.spent = true; // filled, or voided: nothing to give back
                }
                filled
            }
            None if !self.inner.config.leases => {
                let entry = [StoreEntry {
                    key: physical.to_owned(),
                    value: bytes.clone(),
                    ttl,
                    void_lease: None,
                    indexes: options
                        .tags
                        .iter()
                        .map(|tag| self.inner.keys.tag_index(tag))
                        .collect(),
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
                return Ok((computed.value, Filled::Rejected(bytes)));
            }
            Ok(false) => {}
            Err(err) if options.refresh && !options.fail_open => {
                return Err(ComputeError::Cache(err));
            }
            Err(_) => {}
        }
        Ok((computed.value, Filled::Shared(bytes)))
    }
}

/// Decodes an envelope handed over by the flight leader: trusted bytes, so
/// no size cap and no expiry check (a very short TTL must not turn the
/// leader's fresh value into a miss for its waiters).
pub(super) fn decode_shared<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let (header, payload) = envelope::parse(bytes, usize::MAX).ok()?;
    envelope::decode_payload(&header, payload).ok()
}
