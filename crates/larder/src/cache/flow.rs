//! The read path every read-through caller shares.
//!
//! 1. Read. A fresh value is returned — unless XFetch picks this reader to
//!    refresh it early, in which case it takes the lease (if free),
//!    recomputes and fills. A value in its stale grace period is returned
//!    at once to everyone but the one caller that takes the lease and
//!    refreshes it.
//! 2. On a miss, join this process's flight for the key: one caller leads,
//!    the rest wait for its result.
//! 3. The leader takes the key's lease (atomically with a second read); if
//!    another process holds it, the leader waits for that process's fill
//!    (announced when it happens; at most 1.25 × the lease TTL), and
//!    computes itself only as a last resort (then without filling).
//! 4. Compute, fill if the lease is still ours (an invalidation voids it),
//!    hand the value to the flight's waiters — when it was not stored (a
//!    voided lease, no lease, a failed fill, over the size cap), only to
//!    those that joined before the leader began (see `single_flight.rs`).
//!
//! Every store call of one operation shares one deadline (`budget.rs`). On
//! an origin failure the waiters are released at once (see [`Sharing`]);
//! the stale value is served instead when the cache is configured with
//! `stale_if_error`.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Cache;
use super::budget::Budget;
use super::fill::{Filled, decode_shared};
use super::lease::{Acquired, LeaseKeyset, LeasePlan};
use super::read_through::{
    ComputeError, Computed, ReadFailure, ReadThrough, Served, Sharing, refresh_plan,
};
use super::single_flight::{self, FlightState, Role};
use super::tiered::{Keep, Outcome, Source, Tier};
use super::xfetch;
use crate::envelope::now_ms;

impl Cache {
    /// [`Cache::read_through_served`] that serves the stale value on an
    /// origin failure when the cache has `stale_if_error`.
    pub(crate) async fn read_through<T, E, F, Fut>(
        &self,
        key: &str,
        options: ReadThrough<'_>,
        sharing: &Sharing<'_, E>,
        compute: F,
    ) -> Result<T, ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let served = self
            .read_through_served(key, options, sharing, compute)
            .await;
        self.settle(key, served)
    }

    /// A read's value, or its failure — or the stale value on an origin
    /// failure when the cache has `stale_if_error`.
    pub(crate) fn settle<T, E>(
        &self,
        key: &str,
        served: Result<Served<T>, ReadFailure<T, E>>,
    ) -> Result<T, ComputeError<E>> {
        match served {
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

    /// The read path (module docs), saying whether the value was served
    /// stale and leaving the choice of serving it on an origin failure to
    /// the caller.
    pub(crate) async fn read_through_served<T, E, F, Fut>(
        &self,
        key: &str,
        options: ReadThrough<'_>,
        sharing: &Sharing<'_, E>,
        compute: F,
    ) -> Result<Served<T>, ReadFailure<T, E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let fresh = |(value, source)| Served {
            value,
            stale: false,
            source,
        };
        let budget = Budget::new(self.inner.config.deadline);
        let physical = self.inner.keys.physical(key);
        let leases = self.inner.config.leases;
        if options.refresh {
            let flight_key = format!("{physical}\0refresh");
            let keyset = self.lease_keyset(key, physical, options.tags);
            let plan = refresh_plan(leases);
            return self
                .compute_in_flight(
                    key,
                    &keyset,
                    &flight_key,
                    sharing,
                    options,
                    plan,
                    &budget,
                    compute,
                )
                .await
                .map(fresh)
                .map_err(|err| failure(err, None));
        }
        let now = now_ms();
        let entry = self
            .fetch_tagged_entry::<T>(key, &physical, options, &budget)
            .await
            .map_err(ReadFailure::Cache)?;
        let mut stale = None;
        let mut plan = LeasePlan::Acquire;
        let mut keyset = None;
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
                {
                    let early = self.lease_keyset(key, physical, options.tags);
                    if let Ok(Some(held)) = self.take_lease(key, &early, false, true, &budget).await
                    {
                        self.inner
                            .metrics
                            .with(key, |m| m.early_refreshes.increment(1));
                        let refreshed = self
                            .compute_and_fill(
                                key,
                                &early.value,
                                options,
                                Some(held),
                                &budget,
                                compute,
                            )
                            .await;
                        return match refreshed {
                            Ok((value, filled)) => Ok(fresh((
                                value,
                                Source::new(Tier::Origin, Outcome::Computed, filled.keep()),
                            ))),
                            // The refresh was early: the value read is
                            // still fresh, and serves.
                            Err(ComputeError::Origin(_)) => {
                                tracing::warn!(
                                    key,
                                    "larder: an early refresh failed; serving the fresh value"
                                );
                                self.count_read(key, true);
                                let source = Source::new(Tier::Redis, Outcome::Hit, None);
                                Ok(fresh((entry.value, source)))
                            }
                            Err(err) => Err(failure(err, None)),
                        };
                    }
                }
                self.count_read(key, true);
                let keep = Keep::of_entry(&entry, self.grace_ms());
                let source = Source::new(Tier::Redis, Outcome::Hit, Some(keep));
                return Ok(fresh((entry.value, source)));
            }
            Some(entry) if now < entry.expires_at_ms.saturating_add(self.grace_ms()) => {
                // Stale-while-revalidate: one caller refreshes (with the
                // lease it just took), the others get the old value at once.
                if leases {
                    let grace = self.lease_keyset(key, physical.clone(), options.tags);
                    match self.take_lease(key, &grace, false, true, &budget).await {
                        Ok(Some(held)) => plan = LeasePlan::Held(held),
                        _ => {
                            self.count_stale_serve(key);
                            self.count_read(key, true);
                            return Ok(Served {
                                value: entry.value,
                                stale: true,
                                source: Source::new(Tier::Redis, Outcome::Stale, None),
                            });
                        }
                    }
                    keyset = Some(grace);
                }
                stale = Some(entry.value);
            }
            _ => {}
        }
        self.count_read(key, false);
        let keyset = keyset.unwrap_or_else(|| self.lease_keyset(key, physical, options.tags));
        let flight_key = keyset.value.clone();
        self.compute_in_flight(
            key,
            &keyset,
            &flight_key,
            sharing,
            options,
            plan,
            &budget,
            compute,
        )
        .await
        .map(fresh)
        .map_err(|err| failure(err, stale))
    }

    /// Steps 2–4 of the read path: the flight, the lease, the computation;
    /// `plan` says how the flight leader gets its lease.
    #[allow(clippy::too_many_arguments)]
    async fn compute_in_flight<T, E, F, Fut>(
        &self,
        key: &str,
        keyset: &std::sync::Arc<LeaseKeyset>,
        flight_key: &str,
        sharing: &Sharing<'_, E>,
        options: ReadThrough<'_>,
        mut plan: LeasePlan,
        budget: &Budget,
        compute: F,
    ) -> Result<(T, Source), ComputeError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Computed<T>, E>>,
    {
        let waited = |value| (value, Source::new(Tier::Origin, Outcome::Waited, None));
        let metrics = &self.inner.metrics;
        let mut counted = false;
        loop {
            match self.inner.flights.join(flight_key, options.tags) {
                Role::Waiter(flight) => {
                    if !std::mem::replace(&mut counted, true) {
                        metrics.with(key, |m| m.coalesced.increment(1));
                    }
                    if let LeasePlan::Held(_) = plan {
                        // Another caller here computes: give the lease back
                        // (dropping it releases it).
                        plan = LeasePlan::Acquire;
                    }
                    // Waiting for the leader is not store time.
                    let waiting = budget.pause();
                    let state = single_flight::wait(flight).await;
                    drop(waiting);
                    match state {
                        FlightState::Done(bytes) => {
                            if let Some(value) = decode_shared(&bytes) {
                                return Ok(waited(value));
                            }
                        }
                        FlightState::Failed(failure) => {
                            if let Some(err) = (sharing.unshare)(&failure) {
                                return Err(ComputeError::Origin(err));
                            }
                            return own_computation(compute).await;
                        }
                        FlightState::Passed => return own_computation(compute).await,
                        FlightState::Running
                        | FlightState::Voided { .. }
                        | FlightState::Abandoned => {}
                    }
                    // Abandoned (or unreadable): try again; one caller leads.
                }
                Role::Leader(mut flight) => {
                    let lease = match plan {
                        LeasePlan::Held(held) => Some(held),
                        LeasePlan::Without => None,
                        LeasePlan::Force => self
                            .take_lease(key, keyset, true, options.fail_open, budget)
                            .await
                            .map_err(ComputeError::Cache)?,
                        LeasePlan::Acquire => {
                            match self.lease_or_value(key, keyset, options, budget).await? {
                                Acquired::Value(value, bytes) => {
                                    let keep = Keep::of_envelope(&bytes);
                                    flight.complete(bytes);
                                    let source = Source::new(Tier::Redis, Outcome::Waited, keep);
                                    return Ok((value, source));
                                }
                                Acquired::Lease(lease) => lease,
                            }
                        }
                    };
                    flight.granted();
                    let computed = self
                        .compute_and_fill(key, &keyset.value, options, lease, budget, compute)
                        .await;
                    let (value, filled) = match computed {
                        Ok(computed) => computed,
                        Err(ComputeError::Origin(err)) => {
                            let shared = if (sharing.passes)(&err) {
                                None
                            } else {
                                (sharing.share)(&err)
                            };
                            match shared {
                                Some(failure) => flight.fail(failure),
                                None => flight.pass(),
                            }
                            return Err(ComputeError::Origin(err));
                        }
                        Err(err) => return Err(err),
                    };
                    let source = Source::new(Tier::Origin, Outcome::Computed, filled.keep());
                    match filled {
                        Filled::Stored(bytes) => flight.complete(bytes),
                        Filled::Unstored(bytes) => flight.complete_voided(bytes),
                        Filled::Unencodable => flight.pass(),
                    }
                    return Ok((value, source));
                }
            }
        }
    }
}

/// A waiter's own call of the origin, uncached: the leader's result may not
/// be shared.
async fn own_computation<T, E, F, Fut>(compute: F) -> Result<(T, Source), ComputeError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Computed<T>, E>>,
{
    compute()
        .await
        .map(|computed| {
            let source = Source::new(Tier::Origin, Outcome::Computed, None);
            (computed.value, source)
        })
        .map_err(ComputeError::Origin)
}

/// A read-through failure with the stale value it may fall back on.
fn failure<T, E>(err: ComputeError<E>, stale: Option<T>) -> ReadFailure<T, E> {
    match err {
        ComputeError::Cache(err) => ReadFailure::Cache(err),
        ComputeError::Origin(error) => ReadFailure::Origin { error, stale },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::oneshot;

    use std::time::Duration;

    use super::*;
    use crate::Result;

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
