use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Cache;
use super::read::Entry;
use super::single_flight::{self, FlightState, Role};
use super::xfetch;
use crate::envelope::{self, EnvelopeSettings, now_ms};
use crate::store::{Lease, LeaseKeys, LeaseRead};
use crate::{Error, Expiring, Result};

/// A computed value and, if it chose one, its own TTL.
#[derive(Debug)]
#[doc(hidden)]
pub struct Computed<T> {
    /// The value.
    pub value: T,
    /// The TTL the value chose, if any.
    pub ttl: Option<Duration>,
}

impl<T> Computed<T> {
    /// A value without a TTL of its own.
    pub fn plain(value: T) -> Self {
        Self { value, ttl: None }
    }
}

impl<T> From<Expiring<T>> for Computed<T> {
    fn from(expiring: Expiring<T>) -> Self {
        Self {
            value: expiring.value,
            ttl: Some(expiring.ttl),
        }
    }
}

/// Why a read-through call failed: the cache (fail-closed only) or the
/// origin.
#[derive(Debug)]
pub(crate) enum ComputeError<E> {
    Cache(Error),
    Origin(E),
}

/// A read-through value, and whether it is an expired one served from its
/// stale grace period.
#[derive(Debug)]
#[doc(hidden)]
pub struct Served<T> {
    /// The value.
    pub value: T,
    /// Served after its TTL, inside the stale grace period.
    pub stale: bool,
}

/// Why a read-through call failed, with the stale value (inside its grace
/// period) the caller may fall back on.
#[derive(Debug)]
#[doc(hidden)]
pub enum ReadFailure<T, E> {
    /// The store failed (fail-closed only).
    Cache(Error),
    /// The origin failed.
    Origin {
        /// Its error.
        error: E,
        /// The expired value still inside its grace period, if any.
        stale: Option<T>,
    },
}

/// How a read-through call behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadThrough {
    /// TTL when the computed value picks none.
    pub(crate) ttl: Duration,
    /// Treat store failures as misses whatever the cache's fail mode.
    pub(crate) fail_open: bool,
    /// Skip the read: recompute and store (refresh).
    pub(crate) refresh: bool,
}

impl Cache {
    /// The value under `key`; on a miss, computes it with `compute`, stores
    /// it for `ttl` (jittered) and returns it.
    ///
    /// Concurrent misses on one key in this process share one computation
    /// (single-flight). If the computing caller is cancelled or panics, the
    /// waiting callers are released and one of them computes instead. In
    /// fail-open mode (the default) a failing store only means every call
    /// computes; the value is always returned. A value over
    /// `max_value_bytes` is returned but not stored.
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get_or_compute<T, F, Fut>(&self, key: &str, ttl: Duration, compute: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let compute = || async { Ok::<_, Infallible>(Computed::plain(compute().await)) };
        self.read_through(key, self.options(ttl), compute)
            .await
            .map_err(never_origin)
    }

    /// [`Cache::get_or_compute`] where the computed value picks its own TTL
    /// ([`Expiring`]).
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get_or_compute_expiring<T, F, Fut>(&self, key: &str, compute: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Expiring<T>>,
    {
        let compute = || async { Ok::<_, Infallible>(Computed::from(compute().await)) };
        let options = self.options(self.inner.config.default_ttl);
        self.read_through(key, options, compute)
            .await
            .map_err(never_origin)
    }

    /// [`Cache::get_or_compute`] for a fallible origin: only `Ok` values are
    /// cached; an `Err` is returned to its caller as is.
    ///
    /// When the computing caller gets an `Err`, callers that were waiting on
    /// it do not share the error (it need not be `Clone`): they retry, one at
    /// a time, so a failing origin sees one call at a time per key.
    ///
    /// # Errors
    /// The origin's error; in fail-closed mode also the store failure,
    /// converted with `E: From<larder::Error>` (as `anyhow::Error` and
    /// `Box<dyn Error>` are).
    pub async fn try_get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let compute = || async { compute().await.map(Computed::plain) };
        self.read_through(key, self.options(ttl), compute)
            .await
            .map_err(|err| match err {
                ComputeError::Cache(err) => E::from(err),
                ComputeError::Origin(err) => err,
            })
    }

    /// [`Cache::get_or_compute`] with stale-while-revalidate for every
    /// caller: inside the stale grace period
    /// ([`ConfigBuilder::stale_grace`](crate::config::ConfigBuilder::stale_grace))
    /// every caller gets the old value at once, and exactly one — across
    /// processes, by lease — starts a refresh in the background. The
    /// computation must therefore be `Send + 'static`.
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get_or_revalidate<T, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let physical = self.inner.keys.physical(key);
        let now = now_ms();
        let entry: Option<Entry<T>> = self.fetch_entry(key, &physical, self.fail_open()).await?;
        if let Some(entry) = entry
            && now < entry.expires_at_ms.saturating_add(self.grace_ms())
        {
            self.count_read(key, true);
            if entry.is_fresh(now) {
                return Ok(entry.value);
            }
            self.count_stale_serve(key);
            if !self.inner.config.leases {
                // No leases: one background refresh per process.
                let flight_key = format!("{physical}\0revalidate");
                if let Role::Leader(flight) = self.inner.flights.join(&flight_key) {
                    let (cache, key) = (self.clone(), key.to_owned());
                    tokio::spawn(async move {
                        let value = compute().await;
                        let _ = cache.set(&key, &value, ttl).await;
                        drop(flight);
                    });
                }
                return Ok(entry.value);
            }
            let lease_key = self.inner.keys.lease(key);
            let keys = LeaseKeys {
                value: &physical,
                lease: &lease_key,
                epoch: self.inner.keys.epoch(),
            };
            if let Ok(Some(lease)) = self.take_lease(key, keys, false, true).await {
                let (cache, key) = (self.clone(), key.to_owned());
                let options = self.options(ttl);
                tokio::spawn(async move {
                    let physical = cache.inner.keys.physical(&key);
                    let lease_key = cache.inner.keys.lease(&key);
                    let keys = LeaseKeys {
                        value: &physical,
                        lease: &lease_key,
                        epoch: cache.inner.keys.epoch(),
                    };
                    let compute =
                        || async { Ok::<_, Infallible>(Computed::plain(compute().await)) };
                    let _ = cache
                        .compute_and_fill(&key, keys, options, Some(lease), compute)
                        .instrument(tracing::debug_span!("larder.revalidate"))
                        .await;
                });
            }
            return Ok(entry.value);
        }
        self.get_or_compute(key, ttl, compute).await
    }

    /// Recomputes the value under `key` and stores it for `ttl`, whatever is
    /// cached now; returns it. Warming uses this.
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure of the fill.
    pub async fn refresh<T, F, Fut>(&self, key: &str, ttl: Duration, compute: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let compute = || async { Ok::<_, Infallible>(Computed::plain(compute().await)) };
        let options = ReadThrough {
            refresh: true,
            ..self.options(ttl)
        };
        self.read_through(key, options, compute)
            .await
            .map_err(never_origin)
    }

    fn options(&self, ttl: Duration) -> ReadThrough {
        ReadThrough {
            ttl,
            fail_open: self.fail_open(),
            refresh: false,
        }
    }

    /// The read path every read-through caller shares.
    ///
    /// 1. Read. A fresh value is returned — unless XFetch picks this reader
    ///    to refresh it early, in which case it takes the lease (if free),
    ///    recomputes and fills. A value in its stale grace period is returned
    ///    at once to everyone but the one caller that takes the lease and
    ///    refreshes it.
    /// 2. On a miss, join this process's flight for the key: one caller
    ///    leads, the rest wait for its result.
    /// 3. The leader takes the key's lease (atomically with a second read);
    ///    if another process holds it, the leader waits — with backoff, at
    ///    most the lease TTL — for that process's fill, and computes itself
    ///    only as a last resort (then without filling).
    /// 4. Compute, fill if the lease is still ours (an invalidation voids
    ///    it), hand the value to the flight's waiters.
    ///
    /// On an origin failure the stale value is served instead when the
    /// cache is configured with `stale_if_error`.
    pub(crate) async fn read_through<T, E, F, Fut>(
        &self,
        key: &str,
        options: ReadThrough,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        match self
            .read_through_served(key, options, &|_| false, compute)
            .await
        {
            Ok(served) => Ok(served.value),
            Err(ReadFailure::Origin {
                stale: Some(value), ..
            }) if self.inner.config.stale_if_error => {
                self.count_stale_serve(key);
                tracing::debug!(key, "larder: origin failed; serving the stale value");
                Ok(value)
            }
            Err(ReadFailure::Origin { error, .. }) => Err(ComputeError::Origin(error)),
            Err(ReadFailure::Cache(err)) => Err(ComputeError::Cache(err)),
        }
    }

    /// Counts a value served stale.
    pub(crate) fn count_stale_serve(&self, key: &str) {
        self.inner
            .metrics
            .with(key, |m| m.stale_serves.increment(1));
    }

    /// [`Cache::read_through`] that says whether the value was served stale
    /// and leaves the choice of serving it on an origin failure to the
    /// caller.
    ///
    /// `passes` picks the origin failures that only mean "not storable" (a
    /// response that sets a cookie, say) rather than "failing": callers
    /// waiting on such a computation each compute their own at once,
    /// instead of retrying one at a time as after a failure.
    pub(crate) async fn read_through_served<T, E, F, Fut>(
        &self,
        key: &str,
        options: ReadThrough,
        passes: &(dyn Fn(&E) -> bool + Sync),
        compute: F,
    ) -> Result<Served<T>, ReadFailure<T, E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let fresh = |value| Served {
            value,
            stale: false,
        };
        let physical = self.inner.keys.physical(key);
        let lease_key = self.inner.keys.lease(key);
        let keys = LeaseKeys {
            value: &physical,
            lease: &lease_key,
            epoch: self.inner.keys.epoch(),
        };
        let leases = self.inner.config.leases;
        if options.refresh {
            let plan = if leases {
                LeasePlan::Force
            } else {
                LeasePlan::Without
            };
            let flight_key = format!("{physical}\0refresh");
            return self
                .compute_in_flight(
                    key,
                    keys,
                    Flight {
                        key: &flight_key,
                        passes,
                    },
                    options,
                    plan,
                    compute,
                )
                .await
                .map(fresh)
                .map_err(|err| failure(err, None));
        }
        let now = now_ms();
        let entry: Option<Entry<T>> = self
            .fetch_entry(key, &physical, options.fail_open)
            .await
            .map_err(ReadFailure::Cache)?;
        let mut stale = None;
        let mut plan = LeasePlan::Acquire;
        match entry {
            Some(entry) if entry.is_fresh(now) => {
                let beta = self
                    .inner
                    .config
                    .xfetch_beta(super::metrics::namespace_of(key));
                // Sample only when early refresh is possible at all: this
                // runs on every read-through hit.
                if leases
                    && entry.compute_ms > 0
                    && beta > 0.0
                    && xfetch::should_refresh(
                        now,
                        entry.expires_at_ms,
                        entry.compute_ms,
                        beta,
                        xfetch::sample(),
                    )
                    && let Ok(Some(held)) = self.take_lease(key, keys, false, true).await
                {
                    self.inner
                        .metrics
                        .with(key, |m| m.early_refreshes.increment(1));
                    return self
                        .compute_and_fill(key, keys, options, Some(held), compute)
                        .await
                        .map(|(value, _)| fresh(value))
                        .map_err(|err| failure(err, None));
                }
                self.count_read(key, true);
                return Ok(fresh(entry.value));
            }
            Some(entry) if now < entry.expires_at_ms.saturating_add(self.grace_ms()) => {
                // Stale-while-revalidate: one caller refreshes (with the
                // lease it just took), the others get the old value at once.
                if leases {
                    match self.take_lease(key, keys, false, true).await {
                        Ok(Some(held)) => plan = LeasePlan::Held(held),
                        _ => {
                            self.count_stale_serve(key);
                            self.count_read(key, true);
                            return Ok(Served {
                                value: entry.value,
                                stale: true,
                            });
                        }
                    }
                }
                stale = Some(entry.value);
            }
            _ => {}
        }
        self.count_read(key, false);
        let flight = Flight {
            key: &physical,
            passes,
        };
        self.compute_in_flight(key, keys, flight, options, plan, compute)
            .await
            .map(fresh)
            .map_err(|err| failure(err, stale))
    }

    /// Steps 2–4 of [`Cache::read_through`]: the flight, the lease, the
    /// computation; `plan` says how the flight leader gets its lease.
    async fn compute_in_flight<T, E, F, Fut>(
        &self,
        key: &str,
        keys: LeaseKeys<'_>,
        joining: Flight<'_, E>,
        options: ReadThrough,
        mut plan: LeasePlan,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let metrics = &self.inner.metrics;
        let mut counted = false;
        loop {
            match self.inner.flights.join(joining.key) {
                Role::Waiter(flight) => {
                    if !std::mem::replace(&mut counted, true) {
                        metrics.with(key, |m| m.coalesced.increment(1));
                    }
                    if let LeasePlan::Held(_) = plan {
                        // Another caller here computes: give the lease back
                        // (dropping it releases it).
                        plan = LeasePlan::Acquire;
                    }
                    match single_flight::wait(flight).await {
                        FlightState::Done(bytes) => {
                            if let Some(value) = decode_shared(&bytes) {
                                return Ok(value);
                            }
                        }
                        FlightState::Passed => {
                            return compute()
                                .await
                                .map(|computed| computed.value)
                                .map_err(ComputeError::Origin);
                        }
                        FlightState::Running | FlightState::Abandoned => {}
                    }
                    // Abandoned (or unreadable): try again; one caller leads.
                }
                Role::Leader(flight) => {
                    let lease = match plan {
                        LeasePlan::Held(held) => Some(held),
                        LeasePlan::Without => None,
                        LeasePlan::Force => self
                            .take_lease(key, keys, true, options.fail_open)
                            .await
                            .map_err(ComputeError::Cache)?,
                        LeasePlan::Acquire => {
                            match self.lease_or_value(key, keys, options).await? {
                                Acquired::Value(value, bytes) => {
                                    flight.complete(bytes);
                                    return Ok(value);
                                }
                                Acquired::Lease(lease) => lease,
                            }
                        }
                    };
                    let (value, bytes) = match self
                        .compute_and_fill(key, keys, options, lease, compute)
                        .await
                    {
                        Ok(computed) => computed,
                        Err(ComputeError::Origin(err)) if (joining.passes)(&err) => {
                            flight.pass();
                            return Err(ComputeError::Origin(err));
                        }
                        Err(err) => return Err(err),
                    };
                    // A fill that an invalidation rejected must not reach
                    // callers who joined after that invalidation: they read
                    // again instead.
                    match bytes {
                        Some(bytes) => flight.complete(bytes),
                        None => drop(flight),
                    }
                    return Ok(value);
                }
            }
        }
    }

    /// The flight leader's step 3: a value that appeared meanwhile, or the
    /// lease (`None`: compute without one — leases off, the store failing,
    /// or another process's lease outlasting the wait).
    async fn lease_or_value<T, E>(
        &self,
        key: &str,
        keys: LeaseKeys<'_>,
        options: ReadThrough,
    ) -> Result<Acquired<T>, ComputeError<E>>
    where
        T: DeserializeOwned,
    {
        let metrics = &self.inner.metrics;
        if !self.inner.config.leases {
            // A flight that ended between our read and our join may have
            // filled the key: look once more before computing.
            let fetched = self.fetch_bytes(keys.value, options.fail_open).await?;
            if let Some(bytes) = fetched
                && let Some(value) = self.fresh(key, keys.value, &bytes).await
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
        loop {
            let read = self
                .call(
                    "get_or_lease",
                    self.inner.store.get_or_lease(keys, token, lease_ttl),
                )
                .await;
            match read {
                Ok(LeaseRead::Granted(lease)) => {
                    metrics.with(key, |m| m.lease_wins.increment(1));
                    return Ok(Acquired::Lease(Some(self.held(keys, lease))));
                }
                Ok(LeaseRead::Hit(bytes)) => {
                    if let Some(value) = self.fresh(key, keys.value, &bytes).await {
                        return Ok(Acquired::Value(value, bytes));
                    }
                    // Present but not fresh (in its grace period, or just
                    // removed as undecodable): take the lease if it is free.
                    if let Ok(Some(held)) = self.take_lease(key, keys, false, true).await {
                        return Ok(Acquired::Lease(Some(held)));
                    }
                }
                Ok(LeaseRead::Held) => {}
                Err(err) if options.fail_open => {
                    tracing::debug!(key, error = %err, "larder: no lease (store failing); computing without a fill");
                    return Ok(Acquired::Lease(None));
                }
                Err(err) => return Err(ComputeError::Cache(err)),
            }
            if !std::mem::replace(&mut waited, true) {
                metrics.with(key, |m| m.lease_losses.increment(1));
            }
            if Instant::now() >= give_up {
                tracing::warn!(
                    key,
                    "larder: another process's lease outlasted the wait; computing without a fill"
                );
                return Ok(Acquired::Lease(None));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    /// Runs the origin and stores the result — with the lease if there is
    /// one (a voided lease rejects the fill), plainly if leases are off, not
    /// at all if leases are on but this caller has none. Returns the value
    /// and its envelope for in-process waiters.
    async fn compute_and_fill<T, E, F, Fut>(
        &self,
        key: &str,
        keys: LeaseKeys<'_>,
        options: ReadThrough,
        mut lease: Option<HeldLease>,
        compute: F,
    ) -> Result<(T, Option<Bytes>), ComputeError<E>>
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
                self.give_back(lease).await;
                return Err(ComputeError::Origin(err));
            }
        };
        let elapsed = started.elapsed();
        metrics.with(key, |m| m.compute.record(elapsed.as_secs_f64()));
        let ttl = computed.ttl.unwrap_or(options.ttl);
        let compute_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        let (bytes, ttl) = match self.envelope_for(&computed.value, ttl, compute_ms) {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::warn!(key, error = %err, "larder: computed value not cached");
                self.give_back(lease).await;
                return Ok((computed.value, None));
            }
        };
        if self.check_size(key, &bytes).is_err() {
            self.give_back(lease).await;
        } else {
            let filled = Instant::now();
            let stored = match lease.as_mut() {
                Some(held) => {
                    let filled = self
                        .call(
                            "fill_leased",
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
                None if !self.inner.config.leases => self
                    .call("SET", self.inner.store.set(keys.value, bytes.clone(), ttl))
                    .await
                    .map(|()| true),
                None => Ok(false),
            };
            match stored {
                Ok(true) => {
                    let filled = filled.elapsed().as_secs_f64();
                    metrics.with(key, |m| m.fill.record(filled));
                }
                Ok(false) if lease.is_some() => {
                    metrics.with(key, |m| m.fills_rejected.increment(1));
                    tracing::debug!(
                        key,
                        "larder: fill rejected: the lease was voided by an invalidation"
                    );
                    return Ok((computed.value, None));
                }
                Ok(false) => {}
                Err(err) if options.refresh && !options.fail_open => {
                    return Err(ComputeError::Cache(err));
                }
                Err(_) => {}
            }
        }
        Ok((computed.value, Some(bytes)))
    }

    /// Gives an unfilled lease back now, so that the next caller can take
    /// it at once (a dropped lease is given back in the background).
    async fn give_back(&self, lease: Option<HeldLease>) {
        let Some(mut held) = lease else { return };
        held.spent = true;
        let keys = LeaseKeys {
            value: &held.value_key,
            lease: &held.lease_key,
            epoch: &held.epoch_key,
        };
        let released = self
            .call("release_lease", held.store.release_lease(keys, held.lease))
            .await;
        if let Err(err) = released {
            // The lease TTL bounds how long it blocks others.
            tracing::debug!(error = %err, "larder: lease not given back");
        }
    }

    /// Takes the lease on `keys` (see [`Store::take_lease`]); store failures
    /// are `Ok(None)` when failing open.
    async fn take_lease(
        &self,
        key: &str,
        keys: LeaseKeys<'_>,
        force: bool,
        fail_open: bool,
    ) -> Result<Option<HeldLease>> {
        let taken = self
            .call(
                "take_lease",
                self.inner.store.take_lease(
                    keys,
                    rand::random::<u64>(),
                    self.inner.config.lease_ttl,
                    force,
                ),
            )
            .await;
        match taken {
            Ok(Some(lease)) => {
                self.inner.metrics.with(key, |m| m.lease_wins.increment(1));
                Ok(Some(self.held(keys, lease)))
            }
            Ok(None) => Ok(None),
            Err(_) if fail_open => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn fetch_bytes<E>(
        &self,
        physical: &str,
        fail_open: bool,
    ) -> Result<Option<Bytes>, ComputeError<E>> {
        let fetched = self.call("GET", self.inner.store.get(physical)).await;
        match fetched {
            Ok(bytes) => Ok(bytes),
            Err(_) if fail_open => Ok(None),
            Err(err) => Err(ComputeError::Cache(err)),
        }
    }

    /// The value in `bytes` if it decodes and is fresh; undecodable bytes
    /// are removed.
    async fn fresh<T: DeserializeOwned>(
        &self,
        key: &str,
        physical: &str,
        bytes: &Bytes,
    ) -> Option<T> {
        let entry = self.decode_or_discard::<T>(key, physical, bytes).await?;
        entry.is_fresh(now_ms()).then_some(entry.value)
    }

    fn held(&self, keys: LeaseKeys<'_>, lease: Lease) -> HeldLease {
        HeldLease {
            store: Arc::clone(&self.inner.store),
            lease_key: keys.lease.to_owned(),
            value_key: keys.value.to_owned(),
            epoch_key: keys.epoch.to_owned(),
            lease,
            spent: false,
        }
    }

    fn grace_ms(&self) -> u64 {
        u64::try_from(self.inner.config.stale_grace.as_millis()).unwrap_or(u64::MAX)
    }
}

/// What the flight leader found before computing.
enum Acquired<T> {
    /// A fresh value (another process filled it) and its envelope.
    Value(T, Bytes),
    /// Compute, with this lease if any.
    Lease(Option<HeldLease>),
}

/// How a flight leader gets its lease.
enum LeasePlan {
    /// Read once more, taking the lease atomically if there is no value.
    Acquire,
    /// Take it even if held (refresh: voids older computations' fills).
    Force,
    /// The caller holds it already (stale-while-revalidate).
    Held(HeldLease),
    /// Compute without one (leases off).
    Without,
}

/// A lease this caller holds. Given back when dropped — however the
/// computation ended: error, panic, cancellation, a value too large to
/// store — unless the fill used it.
pub(super) struct HeldLease {
    store: Arc<dyn crate::store::Store>,
    lease_key: String,
    value_key: String,
    epoch_key: String,
    lease: Lease,
    spent: bool,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if self.spent {
            return;
        }
        let (store, lease) = (Arc::clone(&self.store), self.lease);
        let (lease_key, value_key, epoch_key) = (
            std::mem::take(&mut self.lease_key),
            std::mem::take(&mut self.value_key),
            std::mem::take(&mut self.epoch_key),
        );
        // Drop cannot wait: the I/O runtime gives it back (best effort; the
        // lease TTL bounds a failure).
        crate::runtime::io().spawn(async move {
            let keys = LeaseKeys {
                value: &value_key,
                lease: &lease_key,
                epoch: &epoch_key,
            };
            let _ = store.release_lease(keys, lease).await;
        });
    }
}

/// The in-process flight a read-through call joins.
struct Flight<'a, E> {
    /// Its key: the physical key, or that with a suffix.
    key: &'a str,
    /// The origin failures that mean "not storable" (see
    /// [`Cache::read_through_served`]).
    passes: &'a (dyn Fn(&E) -> bool + Sync),
}

/// A read-through failure with the stale value it may fall back on.
fn failure<T, E>(err: ComputeError<E>, stale: Option<T>) -> ReadFailure<T, E> {
    match err {
        ComputeError::Cache(err) => ReadFailure::Cache(err),
        ComputeError::Origin(error) => ReadFailure::Origin { error, stale },
    }
}

fn never_origin(err: ComputeError<Infallible>) -> Error {
    match err {
        ComputeError::Cache(err) => err,
        ComputeError::Origin(never) => match never {},
    }
}

/// Decodes an envelope handed over by the flight leader: trusted bytes, so
/// no size cap and no expiry check (a very short TTL must not turn the
/// leader's fresh value into a miss for its waiters).
fn decode_shared<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let (header, payload) = envelope::parse(bytes).ok()?;
    let settings = EnvelopeSettings {
        max_value_bytes: usize::MAX,
        ..EnvelopeSettings::default()
    };
    envelope::decode_payload(&header, payload, &settings).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::oneshot;

    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    /// Waits until `n` callers wait on `key`'s flight.
    async fn until_waiting(cache: &Cache, key: &str, n: usize) {
        let physical = cache.physical_key(key);
        while cache.inner.flights.waiters(&physical) < n {
            tokio::task::yield_now().await;
        }
    }

    /// A leader that stops (by `stop`) mid-computation releases its waiters,
    /// and exactly one of them computes.
    async fn leader_stops<S, Fut>(stop: S)
    where
        S: FnOnce(tokio::task::JoinHandle<Result<u32>>, oneshot::Sender<()>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let cache = Cache::in_memory();
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let leader = tokio::spawn({
            let cache = cache.clone();
            async move {
                cache
                    .get_or_compute("report:1", TTL, || async move {
                        started_tx.send(()).unwrap();
                        let _ = release_rx.await;
                        panic!("origin failed");
                    })
                    .await
            }
        });
        started_rx.await.unwrap();
        let computed = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let cache = cache.clone();
                let computed = Arc::clone(&computed);
                tokio::spawn(async move {
                    cache
                        .get_or_compute("report:1", TTL, || async move {
                            computed.fetch_add(1, Ordering::SeqCst);
                            7_u32
                        })
                        .await
                })
            })
            .collect();
        until_waiting(&cache, "report:1", 3).await;
        stop(leader, release_tx).await;
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap().unwrap(), 7);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        assert_eq!(cache.inner.flights.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panicking_leader_releases_waiters() {
        leader_stops(|leader, release| async move {
            drop(release); // the origin goes on, and panics
            assert!(leader.await.unwrap_err().is_panic());
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_leader_releases_waiters() {
        leader_stops(|leader, release| async move {
            leader.abort(); // cancelled while the origin still waits
            assert!(leader.await.unwrap_err().is_cancelled());
            drop(release);
        })
        .await;
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_reach_their_caller() {
        let cache = Cache::in_memory();
        let err = cache
            .try_get_or_compute("user:1", TTL, || async {
                Err::<u32, Box<dyn std::error::Error + Send + Sync>>("database down".into())
            })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "database down");
        assert_eq!(cache.get::<u32>("user:1").await.unwrap(), None);
        let ok = cache
            .try_get_or_compute("user:1", TTL, || async {
                Ok::<u32, Box<dyn std::error::Error + Send + Sync>>(5)
            })
            .await
            .unwrap();
        assert_eq!(ok, 5);
        assert_eq!(cache.get::<u32>("user:1").await.unwrap(), Some(5));
    }
}
