use std::convert::Infallible;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Cache;
use super::single_flight::{self, FlightState, Role};
use crate::envelope::{self, EnvelopeSettings};
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

    /// The read path every read-through caller shares: read, join the key's
    /// flight, compute once, fill, hand the value to the waiters.
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
        let physical = self.inner.keys.physical(key);
        if !options.refresh {
            let cached = self
                .fetch(key, &physical, options.fail_open)
                .await
                .map_err(ComputeError::Cache)?;
            self.count_read(key, cached.is_some());
            if let Some(value) = cached {
                return Ok(value);
            }
        }
        let metrics = &self.inner.metrics;
        // A refresh must recompute, not take the value of a read that began
        // earlier: refreshes share flights only with each other.
        let flight_key = if options.refresh {
            format!("{physical}\0refresh")
        } else {
            physical.clone()
        };
        let mut counted = false;
        loop {
            match self.inner.flights.join(&flight_key) {
                Role::Waiter(flight) => {
                    if !std::mem::replace(&mut counted, true) {
                        metrics.with(key, |m| m.coalesced.increment(1));
                    }
                    if let FlightState::Done(bytes) = single_flight::wait(flight).await
                        && let Some(value) = decode_shared(&bytes)
                    {
                        return Ok(value);
                    }
                    // Abandoned (or unreadable): try again; one caller leads.
                }
                Role::Leader(flight) => {
                    // A flight that ended between our read and our join may
                    // have filled the key: look once more before computing.
                    if !options.refresh
                        && let Some(value) = self
                            .fetch(key, &physical, options.fail_open)
                            .await
                            .map_err(ComputeError::Cache)?
                    {
                        return Ok(value);
                    }
                    let started = Instant::now();
                    // On `Err` (or a panic, or cancellation) the guard drops
                    // and releases the waiters.
                    let computed = compute()
                        .instrument(tracing::debug_span!("larder.compute", key))
                        .await
                        .map_err(ComputeError::Origin)?;
                    let elapsed = started.elapsed();
                    metrics.with(key, |m| m.compute.record(elapsed.as_secs_f64()));
                    let ttl = computed.ttl.unwrap_or(options.ttl);
                    self.fill(
                        key,
                        &physical,
                        &computed.value,
                        ttl,
                        elapsed,
                        flight,
                        options,
                    )
                    .await
                    .map_err(ComputeError::Cache)?;
                    return Ok(computed.value);
                }
            }
        }
    }

    /// Stores a freshly computed value and hands it to the flight's waiters.
    /// Store failures are absorbed unless a refresh runs fail-closed.
    #[allow(clippy::too_many_arguments)]
    async fn fill<T: Serialize>(
        &self,
        key: &str,
        physical: &str,
        value: &T,
        ttl: Duration,
        elapsed: Duration,
        flight: single_flight::LeaderGuard,
        options: ReadThrough,
    ) -> Result<()> {
        let compute_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        let (bytes, ttl) = match self.envelope_for(value, ttl, compute_ms) {
            Ok(encoded) => encoded,
            Err(err) => {
                tracing::warn!(key, error = %err, "larder: computed value not cached");
                return Ok(());
            }
        };
        let mut outcome = Ok(());
        if self.check_size(key, &bytes).is_ok() {
            let filled = Instant::now();
            let stored = self
                .call("SET", self.inner.store.set(physical, bytes.clone(), ttl))
                .await;
            match stored {
                Ok(()) => {
                    let filled = filled.elapsed().as_secs_f64();
                    self.inner.metrics.with(key, |m| m.fill.record(filled));
                }
                Err(err) if options.refresh && !options.fail_open => outcome = Err(err),
                Err(_) => {}
            }
        }
        flight.complete(bytes);
        outcome
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
