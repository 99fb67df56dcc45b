//! The [`Cache`]: every policy between callers and a [`Store`].
//!
//! A read builds the physical key, asks the store (bounded by the deadline
//! and the circuit breaker), decodes the envelope and returns the value; a
//! miss in [`Cache::get_or_compute`] joins the key's single flight, computes
//! once, stores the result with a jittered TTL and hands it to every waiter.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! struct Product { id: u64, name: String }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
//! let cache = larder::Cache::in_memory();
//! let product = cache
//!     .get_or_compute("product:1", Duration::from_secs(3600), || async {
//!         Product { id: 1, name: "Teapot".into() } // the database query
//!     })
//!     .await?;
//! assert_eq!(cache.get::<Product>("product:1").await?, Some(product));
//!
//! cache.delete_cached_data("product:1").await?;
//! assert_eq!(cache.get::<Product>("product:1").await?, None);
//! # Ok(()) }
//! ```

mod breaker;
mod budget;
mod fill;
mod flow;
mod invalidate;
mod lease;
mod local;
mod metrics;
mod model_load;
mod model_read;
mod model_write;
mod read;
mod read_through;
mod signals;
mod single_flight;
mod tiered;
mod write;
mod xfetch;

pub(crate) use read_through::{ComputeError, ReadThrough};
pub use read_through::{Computed, ReadFailure, Served, Sharing};
pub use tiered::{Fetched, Outcome, Tier};

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use self::breaker::{Admission, Breaker};
use self::budget::Budget;
use self::local::{Bounds, LocalTier};
use self::metrics::Metrics;
use self::signals::FillSignals;
use self::single_flight::SingleFlight;
use crate::config::{Config, FailMode};
use crate::envelope::EnvelopeSettings;
use crate::key::KeyScheme;
use crate::store::{MemoryStore, RedisStore, Store};
use crate::{Error, ErrorKind, Result};

/// A handle to one cache. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// `store.is_in_process()`, read once.
    in_process: bool,
    config: Config,
    keys: KeyScheme,
    envelope: EnvelopeSettings,
    breaker: Breaker,
    flights: SingleFlight,
    metrics: Metrics,
    /// Fill announcements for callers waiting on another process's lease
    /// (and the invalidations the local tier hears).
    signals: FillSignals,
    /// The in-process (L1) tier.
    local: Arc<LocalTier>,
}

/// The longest TTL Larder stores; longer ones (`Duration::MAX`, a huge
/// `Expiring::secs`) are cut to it. Ten years: far beyond any useful cache
/// lifetime, far below what Redis and `Duration` arithmetic can hold.
pub const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Turns a failed store call into "nothing" when failing open. Every error
/// of a store call counts, not only the known failure kinds: a custom store
/// may report anything, and failing open must hold whatever it reports.
fn absorb<T>(outcome: Result<T>, fail_open: bool) -> Result<Option<T>> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(_) if fail_open => Ok(None),
        Err(err) => Err(err),
    }
}

/// Reports a probe dropped before its outcome to the breaker.
struct PendingProbe<'a>(&'a Breaker);

impl Drop for PendingProbe<'_> {
    fn drop(&mut self) {
        self.0.on_probe_abandoned();
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store)
            .field("prefix", &self.inner.config.prefix)
            .field("version", &self.inner.config.version)
            .field("breaker_open", &self.inner.breaker.is_open())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A cache for `config`: Redis when it has a URL, else the in-process
    /// store (logged once, at info level).
    ///
    /// Connecting is lazy and fail-open: a Redis that is down now is picked up
    /// when it comes back, and meanwhile reads go to the origin. In
    /// [`FailMode::Closed`] an unreachable Redis is an error here instead.
    /// Waits for one connection attempt and one `PING`, each bounded by the
    /// connect timeout. A failed attempt is logged at WARN level with its
    /// cause (`cause=auth`, `unknown_database`, `unknown_host`, `refused`,
    /// `tls`, `timeout` or `other`), once: again only after Redis has
    /// answered in between. Must be called inside a Tokio runtime with time
    /// enabled.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an unusable URL; in fail-closed mode, the
    /// store error when the first `PING` fails: its message says why in
    /// words, its `is_*` helpers ([`Error::is_auth_failure`],
    /// [`Error::is_unknown_database`], [`Error::is_unknown_host`],
    /// [`Error::is_connection_refused`], [`Error::is_tls_failure`],
    /// [`Error::is_timeout`]) tell the cause, and its
    /// [`source`](std::error::Error::source) is the underlying error.
    pub async fn connect(config: Config) -> Result<Cache> {
        let store: Arc<dyn Store> = match config.redis_url.clone() {
            Some(url) => {
                let store = RedisStore::builder(&url)
                    .connect_timeout(config.connect_timeout)
                    .tcp_nodelay(config.tcp_nodelay)
                    .build()?;
                let ping = store.ping().await;
                let up = ping.is_ok();
                match (ping, config.fail_mode) {
                    (Ok(()), _) => tracing::info!(%url, "larder: using Redis"),
                    (Err(err), FailMode::Closed) => return Err(err),
                    // The store has logged the cause at WARN level.
                    (Err(err), FailMode::Open) => tracing::info!(
                        %url,
                        error = %err,
                        "larder: serving from the origin until Redis answers"
                    ),
                }
                let cache = Self::with_store(config, Arc::new(store));
                if up {
                    cache.until_listening().await;
                }
                return Ok(cache);
            }
            None => {
                tracing::info!(
                    capacity_bytes = config.memory_capacity_bytes,
                    "larder: no REDIS_URL set; using the in-process store"
                );
                Arc::new(MemoryStore::new(config.memory_capacity_bytes))
            }
        };
        let cache = Self::with_store(config, store);
        cache.until_listening().await;
        Ok(cache)
    }

    /// Waits (at most the connect timeout) for the cache's subscription,
    /// when something relies on it from the first call on: waiters on
    /// fill announcements (leases), and the local tier, which keeps
    /// nothing until it hears invalidations.
    async fn until_listening(&self) {
        let config = &self.inner.config;
        if config.leases || !config.local_ttl_by_namespace.is_empty() {
            let timeout = config.connect_timeout;
            self.inner.signals.until_listening(timeout).await;
        }
    }

    /// [`Cache::connect`] with [`Config::from_env`].
    ///
    /// # Errors
    /// As [`Config::from_env`] and [`Cache::connect`].
    pub async fn from_env() -> Result<Cache> {
        Self::connect(Config::from_env()?).await
    }

    /// A cache on a fresh in-process store with default settings.
    pub fn in_memory() -> Cache {
        let config = Config::default();
        let store = Arc::new(MemoryStore::new(config.memory_capacity_bytes));
        Self::with_store(config, store)
    }

    /// A cache on any [`Store`]; the config's `redis_url` is ignored.
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Cache {
        let keys = KeyScheme::new(&config.prefix, &config.version);
        let envelope = EnvelopeSettings {
            codec: config.codec,
            compression: config.compression,
            compression_threshold: config.compression_threshold,
            max_value_bytes: config.max_value_bytes,
        };
        let breaker = Breaker::new(config.breaker_failures, config.breaker_open_for);
        let local = Arc::new(LocalTier::new(
            Bounds {
                bytes: config.local_capacity_bytes,
                entries: config.local_max_entries,
            },
            config.local_ping_interval,
        ));
        let signals = FillSignals::start(
            Arc::clone(&store),
            keys.channel(),
            config.connect_timeout,
            Arc::clone(&local),
            config.local_ping_interval,
        );
        Cache {
            inner: Arc::new(Inner {
                in_process: store.is_in_process(),
                store,
                config,
                keys,
                envelope,
                breaker,
                flights: SingleFlight::default(),
                metrics: Metrics::default(),
                signals,
                local,
            }),
        }
    }

    /// The settings this cache runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The physical key of a logical key: `{prefix}:{version}:{logical}`.
    pub fn physical_key(&self, logical: &str) -> String {
        self.inner.keys.physical(logical)
    }

    /// Runs one store call under the circuit breaker and the deadline,
    /// counting failures.
    async fn call<T>(
        &self,
        op: &'static str,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.call_within(op, Some(self.inner.config.deadline), future)
            .await
    }

    /// [`Cache::call`] as one step of an operation: bounded by the
    /// operation's deadline (see `budget.rs`). Once a call has run out of
    /// it, the operation's later calls fail at once, without asking the
    /// store (nor counting against the breaker: the store has had its
    /// chance).
    async fn call_in<T>(
        &self,
        op: &'static str,
        budget: &Budget,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.inner.in_process {
            return future.await;
        }
        if budget.is_spent() {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "{op} skipped: this operation spent its {:?} deadline on earlier store calls",
                    self.inner.config.deadline
                ),
            ));
        }
        let outcome = self.call_until(op, Some(budget.deadline()), future).await;
        if outcome.as_ref().is_err_and(Error::is_timeout) {
            budget.spend();
        }
        outcome
    }

    /// [`Cache::call`] with an explicit deadline; `None` for calls that bound
    /// each of their own round trips (pattern invalidation).
    async fn call_within<T>(
        &self,
        op: &'static str,
        deadline: Option<Duration>,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.inner.in_process {
            return future.await;
        }
        let until = deadline.map(|deadline| tokio::time::Instant::now() + deadline);
        self.call_until(op, until, future).await
    }

    /// Runs one store call under the circuit breaker, bounded by `until`.
    async fn call_until<T>(
        &self,
        op: &'static str,
        until: Option<tokio::time::Instant>,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let inner = &*self.inner;
        if inner.in_process {
            return future.await;
        }
        let admission = inner.breaker.admit();
        if admission == Admission::Rejected {
            Metrics::breaker_rejection(inner.store.name());
            return Err(Error::new(
                ErrorKind::CircuitOpen,
                format!(
                    "{op} skipped: the {} store failed repeatedly; retrying after the breaker period",
                    inner.store.name()
                ),
            ));
        }
        // A call dropped before its outcome (its caller was cancelled) must
        // not leave the breaker waiting for a probe result forever.
        let pending = (admission == Admission::Probe).then_some(PendingProbe(&inner.breaker));
        let outcome = match until {
            None => future.await,
            Some(until) => match tokio::time::timeout_at(until, future).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{op} on the {} store exceeded the {:?} deadline",
                        inner.store.name(),
                        inner.config.deadline,
                    ),
                )),
            },
        };
        std::mem::forget(pending);
        match &outcome {
            // The store answered, if only to refuse this command: it is up.
            Ok(_) => inner.breaker.on_success(),
            Err(err) if err.kind() == ErrorKind::Rejected => {
                inner.breaker.on_success();
                Metrics::store_error(inner.store.name(), op);
                tracing::debug!(op, error = %err, "larder: store refused a command");
            }
            Err(err) => {
                if inner.breaker.on_failure() {
                    inner.store.reset();
                }
                Metrics::store_error(inner.store.name(), op);
                tracing::debug!(op, error = %err, "larder: store call failed");
            }
        }
        outcome
    }

    /// Turns a store failure into "nothing" in fail-open mode.
    fn absorb<T>(&self, outcome: Result<T>) -> Result<Option<T>> {
        absorb(outcome, self.fail_open())
    }

    fn fail_open(&self) -> bool {
        self.inner.config.fail_mode == FailMode::Open
    }

    /// `ttl` (at most [`MAX_TTL`]) spread by ± the configured jitter
    /// fraction; never below 1 ms.
    pub(crate) fn jittered(&self, ttl: Duration) -> Duration {
        let ttl = ttl.min(MAX_TTL);
        let jitter = self.inner.config.ttl_jitter;
        let spread = if jitter > 0.0 {
            ttl.mul_f64(1.0 + rand::rng().random_range(-jitter..=jitter))
        } else {
            ttl
        };
        spread.max(Duration::from_millis(1))
    }
}
