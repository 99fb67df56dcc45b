use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::Cache;
use super::single_flight::{self, FlightState, Role};
use crate::envelope::{self, EnvelopeSettings};
use crate::{Error, Result};

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
        self.try_get_or_compute(key, ttl, || async { Ok::<T, Error>(compute().await) })
            .await
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
        let physical = self.inner.keys.physical(key);
        let cached = self.fetch(key, &physical).await?;
        self.count_read(key, cached.is_some());
        if let Some(value) = cached {
            return Ok(value);
        }
        let metrics = &self.inner.metrics;
        loop {
            match self.inner.flights.join(&physical) {
                Role::Waiter(flight) => {
                    metrics.with(key, |m| m.coalesced.increment(1));
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
                    if let Some(value) = self.fetch(key, &physical).await? {
                        return Ok(value);
                    }
                    let started = Instant::now();
                    // On `Err` (or a panic, or cancellation) the guard drops
                    // and releases the waiters.
                    let value = compute()
                        .instrument(tracing::debug_span!("larder.compute", key))
                        .await?;
                    let elapsed = started.elapsed();
                    metrics.with(key, |m| m.compute.record(elapsed.as_secs_f64()));
                    let compute_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
                    match self.envelope_for(&value, ttl, compute_ms) {
                        Ok((bytes, ttl)) => {
                            if self.check_size(key, &bytes).is_ok() {
                                let filled = Instant::now();
                                let stored = self
                                    .call(
                                        "SET",
                                        self.inner.store.set(&physical, bytes.clone(), ttl),
                                    )
                                    .await;
                                if stored.is_ok() {
                                    let filled = filled.elapsed().as_secs_f64();
                                    metrics.with(key, |m| m.fill.record(filled));
                                }
                            }
                            flight.complete(bytes);
                        }
                        Err(err) => {
                            tracing::warn!(key, error = %err, "larder: computed value not cached");
                        }
                    }
                    return Ok(value);
                }
            }
        }
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
    async fn leader_stops(stop: impl FnOnce(tokio::task::JoinHandle<Result<u32>>)) {
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
        stop(leader);
        drop(release_tx);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap().unwrap(), 7);
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        assert_eq!(cache.inner.flights.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panicking_leader_releases_waiters() {
        leader_stops(|leader| {
            tokio::spawn(async move { assert!(leader.await.unwrap_err().is_panic()) });
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_leader_releases_waiters() {
        leader_stops(|leader| leader.abort()).await;
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
