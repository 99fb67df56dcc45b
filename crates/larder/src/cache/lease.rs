//! The lease protocol, the caller's side: which keys a lease touches,
//! taking one, waiting for another process's fill, giving one back.
//! The store's side (atomic scripts) is in `store::lease`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::Cache;
use super::budget::Budget;
use super::read_through::{ComputeError, ReadThrough};
use crate::Result;
use crate::envelope::now_ms;
use crate::key::namespace_of;
use crate::store::{Grant, Lease, LeaseKeys, LeaseRead, Store};

/// The keys one entry's lease operations touch (owned: a held lease keeps
/// them to give itself back from `Drop`).
#[derive(Debug)]
pub(super) struct LeaseKeyset {
    pub(super) value: String,
    lease: String,
    waiters: String,
    channel: String,
    /// The cache-wide stamp, the key's namespace stamp, its tags' stamps.
    stamps: Vec<String>,
    /// Its tags' indexes.
    indexes: Vec<String>,
}

impl LeaseKeyset {
    pub(super) fn keys(&self) -> LeaseKeys<'_> {
        LeaseKeys {
            value: &self.value,
            lease: &self.lease,
            waiters: &self.waiters,
            channel: &self.channel,
            stamps: &self.stamps,
            indexes: &self.indexes,
        }
    }
}

/// How a flight leader gets its lease.
pub(super) enum LeasePlan {
    /// Read once more, taking the lease atomically if there is no value.
    Acquire,
    /// Take it even if held (refresh: voids older computations' fills).
    Force,
    /// The caller holds it already (stale-while-revalidate).
    Held(HeldLease),
    /// Compute without one (leases off).
    Without,
}

/// What the flight leader found before computing.
pub(super) enum Acquired<T> {
    /// A fresh value (another process filled it) and its envelope.
    Value(T, Bytes),
    /// Compute, with this lease if any.
    Lease(Option<HeldLease>),
}

/// A lease this caller holds. Given back when dropped — however the
/// computation ended: error, panic, cancellation, a value too large to
/// store — unless the fill used it.
pub(super) struct HeldLease {
    store: Arc<dyn Store>,
    keys: Arc<LeaseKeyset>,
    pub(super) lease: Lease,
    /// The values of the keyset's stamps at the grant: the cache-wide and
    /// namespace stamps, then the tags'.
    pub(super) stamps: Vec<u64>,
    /// Filled (or voided): nothing to give back.
    pub(super) spent: bool,
}

impl HeldLease {
    /// The keys of the leased entry.
    pub(super) fn keys(&self) -> LeaseKeys<'_> {
        self.keys.keys()
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if self.spent {
            return;
        }
        let (store, keys, lease) = (Arc::clone(&self.store), Arc::clone(&self.keys), self.lease);
        // Drop cannot wait: the I/O runtime gives it back (best effort; the
        // lease TTL bounds a failure).
        crate::runtime::io().spawn(async move {
            let _ = store.release_lease(keys.keys(), lease).await;
        });
    }
}

impl Cache {
    /// The lease keys of the logical `key`, whose physical key is
    /// `physical`, filled under `tags`.
    pub(super) fn lease_keyset(
        &self,
        key: &str,
        physical: String,
        tags: &[String],
    ) -> Arc<LeaseKeyset> {
        let scheme = &self.inner.keys;
        let mut stamps = Vec::with_capacity(2 + tags.len());
        stamps.push(scheme.stamp().to_owned());
        stamps.push(scheme.namespace_stamp(namespace_of(key)));
        stamps.extend(tags.iter().map(|tag| scheme.tag_stamp(tag)));
        Arc::new(LeaseKeyset {
            value: physical,
            lease: scheme.lease(key),
            waiters: scheme.waiters(key),
            channel: scheme.channel().to_owned(),
            stamps,
            indexes: tags.iter().map(|tag| scheme.tag_index(tag)).collect(),
        })
    }

    /// The flight leader's lease step: a value that appeared meanwhile, or
    /// the lease (`None`: compute without one — leases off, the store
    /// failing, or another process's lease outlasting the wait).
    ///
    /// Waiting for another process: the store marks this caller as waiting
    /// when it finds the lease held, and the holder's fill is announced
    /// (see `signals.rs`); the watch is registered before the store call so
    /// that no announcement is missed. Without announcements (subscriber
    /// down) it polls with backoff. It waits at most 1.25 × the lease TTL.
    pub(super) async fn lease_or_value<T, E>(
        &self,
        key: &str,
        keyset: &Arc<LeaseKeyset>,
        options: ReadThrough<'_>,
        budget: &Budget,
    ) -> Result<Acquired<T>, ComputeError<E>>
    where
        T: DeserializeOwned,
    {
        let keys = keyset.keys();
        let metrics = &self.inner.metrics;
        if !self.inner.config.leases {
            // A flight that ended between our read and our join may have
            // filled the key: look once more before computing.
            let fetched = self
                .fetch_bytes(keys.value, options.tags, options.fail_open, budget)
                .await
                .map_err(ComputeError::Cache)?;
            if let Some((bytes, current)) = fetched
                && let Some(value) = self
                    .fresh(key, keys.value, &bytes, options, current.as_deref(), budget)
                    .await
            {
                return Ok(Acquired::Value(value, bytes));
            }
            return Ok(Acquired::Lease(None));
        }
        let lease_ttl = self.inner.config.lease_ttl;
        let give_up = Instant::now() + lease_ttl + lease_ttl / 4;
        let mut backoff = Duration::from_millis(5);
        let mut waited = false;
        let token = rand::random::<u64>();
        let signals = &self.inner.signals;
        if signals.starting() {
            // A new cache: its subscription is moments away. Polling now
            // would cost round trips; waiting costs at most the budget.
            signals
                .until_listening(budget.left().min(self.inner.config.connect_timeout))
                .await;
        }
        loop {
            let watch = signals.watch(keys.value);
            let read = self
                .call_in(
                    "get_or_lease",
                    budget,
                    self.inner.store.get_or_lease(keys, token, lease_ttl),
                )
                .await;
            let remaining = match read {
                Ok(LeaseRead::Granted(grant)) => {
                    metrics.with(key, |m| m.lease_wins.increment(1));
                    return Ok(Acquired::Lease(Some(self.held(keyset, grant))));
                }
                Ok(LeaseRead::Hit {
                    value: bytes,
                    stamps,
                }) => {
                    // The tags' stamps, after the cache-wide and namespace
                    // ones.
                    let tags = 2..2 + options.tags.len();
                    let current = stamps.as_deref().map(|s| s.get(tags).unwrap_or_default());
                    if let Some(value) = self
                        .fresh(key, keys.value, &bytes, options, current, budget)
                        .await
                    {
                        return Ok(Acquired::Value(value, bytes));
                    }
                    // Present but not fresh (in its grace period, or not
                    // decodable by this build): take the lease if it is free.
                    if let Ok(Some(held)) = self.take_lease(key, keyset, false, true, budget).await
                    {
                        return Ok(Acquired::Lease(Some(held)));
                    }
                    backoff
                }
                Ok(LeaseRead::Held { remaining }) => remaining,
                Err(err) if options.fail_open => {
                    tracing::debug!(key, error = %err, "larder: no lease (store failing); computing without a fill");
                    return Ok(Acquired::Lease(None));
                }
                Err(err) => return Err(ComputeError::Cache(err)),
            };
            if !std::mem::replace(&mut waited, true) {
                metrics.with(key, |m| m.lease_losses.increment(1));
            }
            let now = Instant::now();
            if now >= give_up {
                tracing::warn!(
                    key,
                    "larder: another process's lease outlasted the wait; computing without a fill"
                );
                return Ok(Acquired::Lease(None));
            }
            // Told of the fill: wait until the lease runs out (then it is
            // free). Not told: poll.
            let wait = if signals.listening() {
                remaining + Duration::from_millis(1)
            } else {
                backoff
            };
            // Waiting for another caller's computation is not store time.
            let waiting = budget.pause();
            watch.wait(wait.min(give_up - now)).await;
            drop(waiting);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    /// Takes the lease on `keyset` (see [`Store::take_lease`]); store
    /// failures are `Ok(None)` when failing open.
    pub(super) async fn take_lease(
        &self,
        key: &str,
        keyset: &Arc<LeaseKeyset>,
        force: bool,
        fail_open: bool,
        budget: &Budget,
    ) -> Result<Option<HeldLease>> {
        let taken = self
            .call_in(
                "take_lease",
                budget,
                self.inner.store.take_lease(
                    keyset.keys(),
                    rand::random::<u64>(),
                    self.inner.config.lease_ttl,
                    force,
                ),
            )
            .await;
        match taken {
            Ok(Some(grant)) => {
                self.inner.metrics.with(key, |m| m.lease_wins.increment(1));
                Ok(Some(self.held(keyset, grant)))
            }
            Ok(None) => Ok(None),
            Err(_) if fail_open => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Gives an unfilled lease back now, so that the next caller can take
    /// it at once (a dropped lease is given back in the background).
    pub(super) async fn give_back(&self, lease: Option<HeldLease>, budget: &Budget) {
        let Some(mut held) = lease else { return };
        held.spent = true;
        let released = self
            .call_in(
                "release_lease",
                budget,
                held.store.release_lease(held.keys.keys(), held.lease),
            )
            .await;
        if let Err(err) = released {
            // The lease TTL bounds how long it blocks others.
            tracing::debug!(error = %err, "larder: lease not given back");
        }
    }

    /// The value in `bytes` if it decodes (as `options.schema`), is fresh,
    /// was filled under the current stamps of `options.tags` (`current`)
    /// and every other stamp it recorded still holds; corrupt bytes are
    /// removed.
    pub(super) async fn fresh<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        bytes: &Bytes,
        options: ReadThrough<'_>,
        current: Option<&[u64]>,
        budget: &Budget,
    ) -> Option<T> {
        let entry = self
            .decode_or_discard::<T>(key, physical, bytes, options.schema, budget)
            .await?;
        if !(entry.is_fresh(now_ms()) && entry.tags_hold(options.tags, current)) {
            return None;
        }
        self.recorded_stamps_hold(entry, options.tags, budget)
            .await
            .ok()
            .flatten()
            .map(|entry| entry.value)
    }

    fn held(&self, keyset: &Arc<LeaseKeyset>, grant: Grant) -> HeldLease {
        HeldLease {
            store: Arc::clone(&self.inner.store),
            keys: Arc::clone(keyset),
            lease: grant.lease,
            stamps: grant.stamps,
            spent: false,
        }
    }
}
