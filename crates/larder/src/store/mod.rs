//! Stores: where envelopes live. Bytes in, bytes out.
//!
//! A [`Store`] is deliberately small and holds no policy: keys, envelopes,
//! TTL jitter, single-flight, deadlines and the circuit breaker all live in
//! [`Cache`](crate::Cache), so every feature works the same on every store.
//!
//! - [`MemoryStore`]: in-process (moka), the embedded default when no
//!   `REDIS_URL` is configured. A real store with real expiry, not a mock.
//! - [`RedisStore`]: Redis standalone through one reconnecting, multiplexed
//!   connection, made on Larder's own I/O thread.
//!
//! Atomic multi-key operations are named methods, not raw Lua: `RedisStore`
//! implements them with Lua scripts, `MemoryStore` natively, so that nothing
//! above this trait is Redis-only.
//!
//! ```
//! use std::time::Duration;
//! use larder::store::{MemoryStore, Store};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> larder::Result<()> {
//! let store = MemoryStore::new(1 << 20);
//! store.set("k", "v".into(), Duration::from_secs(60)).await?;
//! assert_eq!(store.get("k").await?.as_deref(), Some(&b"v"[..]));
//! # Ok(()) }
//! ```

mod lease;
mod memory;
mod redis;
mod subscription;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use self::lease::{Grant, Lease, LeaseKeys, LeaseRead};
pub use self::memory::MemoryStore;
pub use self::redis::{RedisStore, RedisStoreBuilder};
pub use self::subscription::Subscription;

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, crate::Result<T>>;

/// One entry of [`Store::mset`].
#[derive(Clone)]
pub struct StoreEntry {
    /// Physical key.
    pub key: String,
    /// Envelope bytes.
    pub value: Bytes,
    /// Time to live (already jittered).
    pub ttl: Duration,
    /// A lease to void in the same atomic step (a write must not be
    /// overwritten by a computation that began before it).
    pub void_lease: Option<String>,
    /// Tag indexes the key joins (see [`Store::unlink_index`]).
    pub indexes: Vec<String>,
}

impl fmt::Debug for StoreEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print cached bytes: they may hold personal data.
        f.debug_struct("StoreEntry")
            .field("key", &self.key)
            .field("value_len", &self.value.len())
            .field("ttl", &self.ttl)
            .field("indexes", &self.indexes)
            .finish()
    }
}

/// The shortest life of a change marker (see [`Store::set_markers`]): a
/// fill whose lease was granted longer ago than this cannot rely on the
/// markers of invalidations since, and [`Store::stamps_unless`] refuses it.
pub const MARKERS_LAST: Duration = Duration::from_secs(30);

/// A fill's lease, so that a store can date its grant (see
/// [`Store::stamps_unless`]).
#[derive(Debug, Clone, Copy)]
pub struct Granted<'a> {
    /// The lease's key.
    pub lease: &'a str,
    /// The TTL it was granted for.
    pub ttl: Duration,
}

/// Microseconds since the Unix epoch, by this machine's clock.
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, micros)
}

pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Whether every marker in `found` is absent or was set before `since`
/// (µs); one that is not a time counts as set now.
pub(crate) fn markers_before(found: &[Option<Bytes>], since: u64) -> bool {
    found
        .iter()
        .flatten()
        .all(|set| decimal(set).is_some_and(|set| set < since))
}

/// A stamp's or a marker's value, as the store keeps it: decimal digits.
/// Anything else is `None` (foreign bytes at a bookkeeping key).
pub(crate) fn decimal(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A value and, if the store read them with it, the current values of the
/// stamps its envelope records (see [`Store::get_stamped`]).
pub type Stamped = (Bytes, Option<Vec<Option<Bytes>>>);

/// A key-value store for envelopes. Implementations must be cheap to share
/// (`Arc` inside) and safe to call concurrently.
///
/// Keys are physical keys; patterns are Redis globs with Redis's exact
/// semantics (`* ? [..] \`).
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics (`memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Whether calls complete in this process without I/O. The cache skips
    /// deadlines and the circuit breaker for such stores: they cannot hang
    /// or go away, and a timer per call would be most of a hit's cost.
    fn is_in_process(&self) -> bool {
        false
    }

    /// Drops the connection(s) so that the next call connects afresh. The
    /// cache calls this when its circuit breaker opens: a Redis that stopped
    /// answering may have left a connection that never will.
    fn reset(&self) {}

    /// The value under `key`, if any.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>>;

    /// The value under `key`, if any, and — in the same round trip, where
    /// the store can tell — how much longer the store keeps it (`PTTL`;
    /// `None`: unknown, or no expiry). The local tier's entries must not
    /// outlive their store copy, whatever the clock of the host that wrote
    /// the envelope says. The default is a plain [`Store::get`] with no
    /// TTL.
    fn get_with_ttl<'a>(
        &'a self,
        key: &'a str,
    ) -> StoreFuture<'a, Option<(Bytes, Option<Duration>)>> {
        Box::pin(async move { Ok(self.get(key).await?.map(|bytes| (bytes, None))) })
    }

    /// The value under `key`, if any, and — in the same round trip, where
    /// the store can — the current values of the stamps its envelope
    /// records, each read under `stamp_prefix` followed by the recorded
    /// tag, in the envelope's order (`None` for a missing stamp). The
    /// stamps are `None` as a whole when the store does not read them this
    /// way or cannot read the envelope; the caller then reads them itself.
    /// The default is a plain [`Store::get`].
    fn get_stamped<'a>(
        &'a self,
        key: &'a str,
        stamp_prefix: &'a str,
    ) -> StoreFuture<'a, Option<Stamped>> {
        let _ = stamp_prefix;
        Box::pin(async move { Ok(self.get(key).await?.map(|value| (value, None))) })
    }

    /// The values under `keys`, in order, in one round trip.
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>>;

    /// Stores `value` under `key` for `ttl`.
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()>;

    /// Stores every entry, each with its own TTL, in one round trip. Each
    /// entry's `void_lease` is removed before the entry is written, so no
    /// computation that began before the write can fill over it. Entries
    /// are not atomic as a group; no single command may block the store for
    /// long whatever the batch size (the cache hands over bounded batches).
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()>;

    /// [`Store::mset`], then `message` published on `channel` (the
    /// written keys, for every instance's local tier), in one round trip
    /// where the store can.
    fn mset_and_publish<'a>(
        &'a self,
        entries: &'a [StoreEntry],
        channel: &'a str,
        message: Bytes,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.mset(entries).await?;
            self.publish(channel, message).await
        })
    }

    /// Removes `keys`; returns how many existed.
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64>;

    /// Removes `leases`, then `values`, in one round trip; returns how many
    /// of `values` existed. The leases go first: a computation that began
    /// before this call can no longer fill, not even between the two.
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            self.unlink(leases).await?;
            self.unlink(values).await
        })
    }

    /// [`Store::unlink_entries`], then `message` published on `channel`
    /// (an invalidation, for every instance's local tier), in one round
    /// trip where the store can.
    fn unlink_entries_and_publish<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
        channel: &'a str,
        message: Bytes,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let removed = self.unlink_entries(values, leases).await?;
            self.publish(channel, message).await?;
            Ok(removed)
        })
    }

    /// Removes every key matching `pattern`, `batch` keys per round trip, each
    /// round trip bounded by `deadline`; returns how many went.
    ///
    /// On Redis this is `SCAN MATCH` + `UNLINK`, pipelined — never `KEYS`.
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64>;

    /// Reads `keys.value`; if it is absent, grants the lease on it to
    /// `token` for `ttl` under `keys.stamps` unless another caller holds a
    /// live lease — atomically. A caller that finds the lease held is
    /// marked as waiting (see [`LeaseKeys::waiters`]).
    ///
    /// Bytes that are not Larder's in the lease, waiter or stamp keys are
    /// repaired (overwritten), never an error; a lease without an expiry is
    /// not live.
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead>;

    /// Takes the lease on `keys.value` for `token` whether or not the value
    /// exists: only if nobody holds a live one, or — `force` — voiding the
    /// holder's token. `None` when held and not forced.
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>>;

    /// The values of `stamps`, each created (a fresh random value) if it is
    /// missing or foreign, and each kept for at least `ttl` (an entry
    /// recorded under a stamp must not outlive it): what a write that
    /// records stamps without a lease reads first. Stores that keep no
    /// stamps refuse it; tagged values are then not stored with leases off.
    fn stamps<'a>(&'a self, stamps: &'a [String], ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        let _ = (stamps, ttl);
        Box::pin(async move {
            Err(crate::Error::new(
                crate::ErrorKind::Rejected,
                format!("the {} store keeps no stamps", self.name()),
            ))
        })
    }

    /// Sets the change markers `markers` for `ttl`, each holding when it
    /// was set, in microseconds since the Unix epoch by the store's clock
    /// (see [`Store::stamps_unless`]). The default writes the caller's
    /// clock with [`Store::mset`].
    fn set_markers<'a>(&'a self, markers: &'a [String], ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = Bytes::from(unix_micros().to_string());
            let entries: Vec<StoreEntry> = markers
                .iter()
                .map(|key| StoreEntry {
                    key: key.clone(),
                    value: now.clone(),
                    ttl,
                    void_lease: None,
                    indexes: Vec::new(),
                })
                .collect();
            self.mset(&entries).await
        })
    }

    /// [`Store::stamps`] — unless one of `markers` was set at or after the
    /// lease `granted` was granted (or cannot be read as a time), or the
    /// lease was granted over [`MARKERS_LAST`] ago (a marker may have
    /// expired since): then `None`. A fill that learns its tags only once computed (a model's
    /// related instances) reads their stamps so: a tag invalidated since
    /// its lease was granted may have been read before the write. The
    /// default reads the stamps, then the markers, and counts every marker
    /// set within the lease's TTL before now (it cannot tell when the lease
    /// was granted); a store may date the grant, and do both at once.
    fn stamps_unless<'a>(
        &'a self,
        stamps: &'a [String],
        markers: &'a [String],
        granted: Granted<'a>,
        ttl: Duration,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        Box::pin(async move {
            let values = self.stamps(stamps, ttl).await?;
            if markers.is_empty() {
                return Ok(Some(values));
            }
            if granted.ttl > MARKERS_LAST {
                // The grant cannot be dated: it may be older than a marker
                // lives.
                return Ok(None);
            }
            let found = self.mget(markers).await?;
            let since = unix_micros().saturating_sub(micros(granted.ttl));
            Ok(markers_before(&found, since).then_some(values))
        })
    }

    /// Stores `value` for `ttl` if `lease` is still the key's lease and
    /// every stamp still holds what it held at the grant; releases the
    /// lease either way, and announces the outcome to waiters. Returns
    /// whether it stored.
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Gives `lease` back if it is still the key's lease (its computation
    /// failed), so that the next caller need not wait for it to expire, and
    /// tells waiters.
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()>;

    /// Removes every member of the tag index `index` (value keys that
    /// joined it when filled), `batch` per round trip, each round trip
    /// bounded by `deadline`; returns how many values existed. Members are
    /// taken out of the index as they go, so keys that join it meanwhile
    /// stay indexed for the next invalidation. Costs in proportion to the
    /// index, never to the keyspace.
    ///
    /// Stores without sets refuse it ([`ErrorKind::Rejected`](crate::ErrorKind::Rejected)).
    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        let _ = (index, batch, deadline);
        Box::pin(async move {
            Err(crate::Error::new(
                crate::ErrorKind::Rejected,
                format!("the {} store keeps no tag indexes", self.name()),
            ))
        })
    }

    /// Publishes `message` on `channel`.
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()>;

    /// Subscribes to `channel`. The stream ends when the connection is lost;
    /// subscribers treat that as "anything may have changed".
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription>;
}
