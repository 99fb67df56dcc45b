//! The read-through API: `get_or_compute` and its kin, and the types the
//! read path shares with the macros and the HTTP layer. The path itself is
//! in `flow.rs`; the lease protocol in `lease.rs`; the fill in `fill.rs`.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Cache;
use super::budget::Budget;
use super::lease::LeasePlan;
use super::single_flight::Role;
use crate::envelope::{NO_SCHEMA, now_ms};
use crate::model::DependencyTags;
use crate::{Error, ErrorKind, Expiring, Result};

/// A computed value and, if it chose one, its own TTL.
#[derive(Debug)]
#[doc(hidden)]
pub struct Computed<T> {
    /// The value.
    pub value: T,
    /// The TTL the value chose, if any.
    pub ttl: Option<Duration>,
    /// Tags learnt from the value (a model's related instances): their
    /// stamps are read after the computation and recorded beside those
    /// of [`ReadThrough::tags`].
    pub(crate) depends: DependencyTags,
}

impl<T> Computed<T> {
    /// A value without a TTL of its own.
    pub fn plain(value: T) -> Self {
        Self {
            value,
            ttl: None,
            depends: DependencyTags::default(),
        }
    }

    /// A value with its own TTL.
    pub fn expiring(value: T, ttl: Duration) -> Self {
        Self {
            ttl: Some(ttl),
            ..Self::plain(value)
        }
    }
}

impl<T> From<Expiring<T>> for Computed<T> {
    fn from(expiring: Expiring<T>) -> Self {
        Self::expiring(expiring.value, expiring.ttl)
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
    /// The tier that answered, how, and what the local tier needs.
    pub(crate) source: super::tiered::Source,
}

impl<T> Served<T> {
    /// The tier that answered.
    pub fn tier(&self) -> super::Tier {
        self.source.tier
    }

    /// How the answering tier got the value.
    pub fn outcome(&self) -> super::Outcome {
        self.source.outcome
    }
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
pub(crate) struct ReadThrough<'a> {
    /// TTL when the computed value picks none.
    pub(crate) ttl: Duration,
    /// Treat store failures as misses whatever the cache's fail mode.
    pub(crate) fail_open: bool,
    /// Skip the read: recompute and store (refresh).
    pub(crate) refresh: bool,
    /// Tags the filled entry joins (see [`Cache::invalidate_tag`]).
    pub(crate) tags: &'a [String],
    /// Entries may record stamps beyond `tags` (a model's related
    /// instances, learnt from the value): read them with the entry, in one
    /// round trip where the store can.
    pub(crate) stamped: bool,
    /// What the entry's envelope says it holds (see
    /// [`Cache::decode_entry`]): a model's fingerprint, or none.
    pub(crate) schema: u64,
    /// The value may be kept in the local tier: read the store's TTL with
    /// it.
    pub(crate) local: bool,
}

/// What callers waiting on a computation get when the origin fails.
///
/// The computing caller gets its own error. Waiters are released at once,
/// all of them: if `share` encodes the failure, each waiter gets what
/// `unshare` rebuilds from it; otherwise each calls the origin itself, in
/// parallel, uncached — never one after another.
#[doc(hidden)]
pub struct Sharing<'a, E> {
    /// Failures that only mean "not storable" (a response that sets a
    /// cookie): waiters compute their own at once.
    pub passes: &'a (dyn Fn(&E) -> bool + Sync),
    /// Encodes a failure for the waiters, if it can be shared.
    pub share: &'a (dyn Fn(&E) -> Option<Bytes> + Sync),
    /// Rebuilds a shared failure for one waiter.
    pub unshare: &'a (dyn Fn(&Bytes) -> Option<E> + Sync),
}

impl<E> std::fmt::Debug for Sharing<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharing").finish_non_exhaustive()
    }
}

impl<'a, E: 'a> Sharing<'a, E> {
    /// Nothing is shared: after a failure every waiter calls the origin
    /// itself, at once.
    pub fn none() -> Self {
        Sharing {
            passes: &|_| false,
            share: &|_| None,
            unshare: &|_| None,
        }
    }
}

impl Cache {
    /// The value under `key`; on a miss, computes it with `compute`, stores
    /// it for `ttl` (jittered) and returns it.
    ///
    /// Concurrent misses on one key in this process share one computation
    /// (single-flight), and across processes one caller computes while the
    /// others wait for its fill (leases). If the computing caller is
    /// cancelled or panics, the waiting callers are released and one of
    /// them computes instead. In fail-open mode (the default) a failing
    /// store only means every call computes; the value is always returned.
    /// A value over `max_value_bytes` is returned but not stored.
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get_or_compute<T, F, Fut>(&self, key: &str, ttl: Duration, compute: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.fetch_or_compute(key, ttl, compute)
            .await
            .map(|fetched| fetched.value)
    }

    /// [`Cache::get_or_compute`] where the computed value picks its own TTL
    /// ([`Expiring`]).
    ///
    /// # Errors
    /// Only in fail-closed mode: the store failure.
    pub async fn get_or_compute_expiring<T, F, Fut>(&self, key: &str, compute: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Expiring<T>>,
    {
        let compute = || async { Ok::<_, Infallible>(Computed::from(compute().await)) };
        let options = self.options(self.inner.config.default_ttl);
        let local = self.local_ttl(key);
        let served = self
            .read_tiered(key, options, local, &Sharing::none(), compute)
            .await;
        self.settle(key, served).map_err(never_origin)
    }

    /// [`Cache::get_or_compute`] for a fallible origin: only `Ok` values are
    /// cached; an `Err` is returned to its caller as is.
    ///
    /// When the computing caller gets an `Err`, the callers that waited on
    /// its computation are released at once, each with an error of kind
    /// [`ErrorKind::Origin`] converted by `E: From<larder::Error>` (the
    /// original error need not be `Clone`, so it stays with the caller that
    /// ran the origin). A failing origin is therefore called once per burst
    /// of concurrent callers, and nobody queues behind it.
    ///
    /// # Errors
    /// The origin's error (or, for waiters, [`ErrorKind::Origin`]); in
    /// fail-closed mode also the store failure, converted with
    /// `E: From<larder::Error>` (as `anyhow::Error` and `Box<dyn Error>`
    /// are).
    pub async fn try_get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let compute = || async { compute().await.map(Computed::plain) };
        let unshare = |_: &Bytes| {
            Some(E::from(Error::new(
                ErrorKind::Origin,
                format!(
                    "the origin failed computing `{key}` for a concurrent caller; \
                     this call waited for that computation"
                ),
            )))
        };
        let sharing = Sharing {
            passes: &|_| false,
            share: &|_| Some(Bytes::new()),
            unshare: &unshare,
        };
        let local = self.local_ttl(key);
        let served = self
            .read_tiered(key, self.options(ttl), local, &sharing, compute)
            .await;
        self.settle(key, served).map_err(|err| match err {
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
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let physical = self.inner.keys.physical(key);
        let budget = Budget::new(self.inner.config.deadline);
        let now = now_ms();
        let entry = self
            .fetch_entry::<T>(key, &physical, NO_SCHEMA, self.fail_open(), &budget)
            .await?;
        let Some(entry) = entry.filter(|e| now < e.expires_at_ms.saturating_add(self.grace_ms()))
        else {
            if budget.is_spent() {
                // The store used up the deadline: the origin answers,
                // uncached, rather than the store being asked again.
                return Ok(compute().await);
            }
            return self.get_or_compute(key, ttl, compute).await;
        };
        self.count_read(key, true);
        if entry.is_fresh(now) {
            return Ok(entry.value);
        }
        self.count_stale_serve(key);
        if !self.inner.config.leases {
            // No leases: one background refresh per process.
            let flight_key = format!("{physical}\0revalidate");
            if let Role::Leader(flight) = self.inner.flights.join(&flight_key, &[]) {
                let (cache, key) = (self.clone(), key.to_owned());
                tokio::spawn(async move {
                    let value = compute().await;
                    let _ = cache.set(&key, &value, ttl).await;
                    drop(flight);
                });
            }
            return Ok(entry.value);
        }
        let keys = self.lease_keyset(key, physical, &[]);
        if let Ok(Some(lease)) = self.take_lease(key, &keys, false, true, &budget).await {
            let (cache, key) = (self.clone(), key.to_owned());
            let options = self.options(ttl);
            tokio::spawn(async move {
                let compute = || async { Ok::<_, Infallible>(Computed::plain(compute().await)) };
                let budget = Budget::new(cache.inner.config.deadline);
                let _ = cache
                    .compute_and_fill(&key, &keys.value, options, Some(lease), &budget, compute)
                    .instrument(tracing::debug_span!("larder.revalidate"))
                    .await;
            });
        }
        Ok(entry.value)
    }

    /// Recomputes the value under `key` and stores it for `ttl`, whatever is
    /// cached now; returns it. Warming uses this.
    ///
    /// # Errors
    /// In fail-closed mode, the store failure of the fill; in every mode,
    /// a failure to announce the write to other instances' local tiers
    /// (the value is stored, but they may serve the old one until their
    /// local TTL ends).
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
        let value = self
            .read_through(key, options, &Sharing::none(), compute)
            .await
            .map_err(never_origin);
        // A write (or, after a failure, perhaps one): other instances'
        // local tiers drop what they hold. A failed announcement is
        // returned in every fail mode: the value is written, but another
        // instance may go on serving the old one until its local TTL.
        let announced = self.announce_written(key).await;
        let value = value?;
        announced?;
        Ok(value)
    }

    pub(crate) fn options(&self, ttl: Duration) -> ReadThrough<'static> {
        ReadThrough {
            ttl,
            fail_open: self.fail_open(),
            refresh: false,
            tags: &[],
            stamped: false,
            schema: NO_SCHEMA,
            local: false,
        }
    }

    /// Counts a value served stale.
    pub(crate) fn count_stale_serve(&self, key: &str) {
        self.inner
            .metrics
            .with(key, |m| m.stale_serves.increment(1));
    }

    pub(super) fn grace_ms(&self) -> u64 {
        u64::try_from(self.inner.config.stale_grace.as_millis()).unwrap_or(u64::MAX)
    }
}

/// How a refresh gets its lease.
pub(super) fn refresh_plan(leases: bool) -> LeasePlan {
    if leases {
        LeasePlan::Force
    } else {
        LeasePlan::Without
    }
}

fn never_origin(err: ComputeError<Infallible>) -> Error {
    match err {
        ComputeError::Cache(err) => err,
        ComputeError::Origin(never) => match never {},
    }
}
