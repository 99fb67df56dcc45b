use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

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
        if let Some(value) = self.read_through(key).await? {
            return Ok(value);
        }
        let physical = self.inner.keys.physical(key);
        let metrics = self.inner.metrics.for_key(key);
        loop {
            match self.inner.flights.join(&physical) {
                Role::Waiter(flight) => {
                    metrics.coalesced.increment(1);
                    if let FlightState::Done(bytes) = single_flight::wait(flight).await {
                        if let Some(value) = decode_shared(&bytes) {
                            return Ok(value);
                        }
                    }
                    // Abandoned (or unreadable): try again; one caller leads.
                }
                Role::Leader(flight) => {
                    // A flight that ended between our read and our join may
                    // have filled the key: look once more before computing.
                    if let Some(value) = self.read_through(key).await? {
                        return Ok(value);
                    }
                    let started = Instant::now();
                    // On `Err` (or a panic, or cancellation) the guard drops
                    // and releases the waiters.
                    let value = compute().await?;
                    let elapsed = started.elapsed();
                    metrics.compute.record(elapsed.as_secs_f64());
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
                                    metrics.fill.record(filled.elapsed().as_secs_f64());
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

    /// A plain read that also applies the fail mode.
    async fn read_through<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get(key).await
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
