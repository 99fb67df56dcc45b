use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use moka::Expiry;
use tokio::sync::broadcast;

use super::{Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription};
use crate::key::glob_match;

/// The in-process store: a bounded moka cache with per-entry TTLs.
///
/// Clones share the same data, so two [`Cache`](crate::Cache)s built on one
/// `MemoryStore` see each other's writes, like two clients of one Redis.
#[derive(Clone)]
pub struct MemoryStore {
    entries: moka::sync::Cache<String, MemoryEntry>,
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<Bytes>>>>,
    /// Leases, stamps and waiter marks. Lease operations and removals take this lock, so
    /// each is atomic with respect to the others, as a Lua script is on Redis.
    leases: Arc<Mutex<Leases>>,
}

/// Tag indexes kept before they are all forgotten; stamps are bounded by
/// the store's capacity instead. Forgetting a stamp voids the leases
/// granted under it and makes the entries filled under a tag stamp misses;
/// forgetting an index only leaves invalidated entries to expire: both are
/// safe, and they bound the bookkeeping whatever number of namespaces and
/// tags passes through.
const MAX_STAMPS: usize = 4096;

struct Leases {
    /// Lease key → the holder.
    held: HashMap<String, Holder>,
    /// Stamp key → its random value.
    /// Bounded, least recently used first out: forgetting a stamp is safe
    /// (see `MAX_STAMPS`), so the bound can follow the store's capacity
    /// without ever wiping the stamps of the entries in use.
    stamps: moka::sync::Cache<String, u64>,
    /// Waiter keys → until when the mark holds.
    waiters: HashMap<String, Instant>,
    /// Tag indexes → the value keys that joined them.
    indexes: HashMap<String, std::collections::HashSet<String>>,
    /// Change markers → when each was set, and until when it holds. Kept
    /// here, not among the values, where eviction could drop one early.
    markers: HashMap<String, (Instant, Instant)>,
}

/// A granted lease: its token, the stamps it was granted under, its expiry.
struct Holder {
    token: u64,
    seen: Vec<u64>,
    expires: Instant,
}

impl Leases {
    /// Bookkeeping for a store of `capacity_bytes`: stamps may take an
    /// eighth of it.
    fn new(capacity_bytes: u64) -> Self {
        Self {
            held: HashMap::new(),
            stamps: moka::sync::Cache::builder()
                .max_capacity((capacity_bytes / 8).max(4096))
                .weigher(|key: &String, _: &u64| u32::try_from(key.len() + 48).unwrap_or(u32::MAX))
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            waiters: HashMap::new(),
            indexes: HashMap::new(),
            markers: HashMap::new(),
        }
    }

    /// The stamps' values; missing ones get a fresh random value when
    /// `create`, else void (`None`).
    fn seen(&mut self, stamps: &[String], create: bool) -> Option<Vec<u64>> {
        stamps
            .iter()
            .map(|stamp| match self.stamps.get(stamp) {
                Some(value) => Some(value),
                None if create => {
                    let value = (rand::random::<u64>() >> 1) | 1;
                    self.stamps.insert(stamp.clone(), value);
                    Some(value)
                }
                None => None,
            })
            .collect()
    }

    /// How long the live lease on `keys` has left, if there is one: granted
    /// under the stamps' current values and not expired.
    fn live(&mut self, keys: LeaseKeys<'_>) -> Option<Duration> {
        let seen = self.seen(keys.stamps, true)?;
        let holder = self.held.get(keys.lease)?;
        let left = holder.expires.checked_duration_since(Instant::now())?;
        (holder.seen == seen && !left.is_zero()).then_some(left)
    }

    fn grant(&mut self, keys: LeaseKeys<'_>, token: u64, ttl: Duration) -> Grant {
        let seen = self.seen(keys.stamps, true).unwrap_or_default();
        let now = Instant::now();
        if self.held.len() > 1024 {
            self.held.retain(|_, holder| holder.expires > now);
            self.waiters.retain(|_, until| *until > now);
            self.markers.retain(|_, (_, until)| *until > now);
        }
        self.held.insert(
            keys.lease.to_owned(),
            Holder {
                token,
                seen: seen.clone(),
                expires: now + ttl,
            },
        );
        Grant {
            lease: Lease { token },
            stamps: seen,
        }
    }

    /// Removes the lease if it is `token`'s.
    fn release(&mut self, lease_key: &str, token: u64) {
        if self.held.get(lease_key).is_some_and(|h| h.token == token) {
            self.held.remove(lease_key);
        }
    }

    /// Whether callers wait on `keys` (and forgets them: they are told now).
    fn take_waiters(&mut self, keys: LeaseKeys<'_>) -> bool {
        self.waiters
            .remove(keys.waiters)
            .is_some_and(|until| until > Instant::now())
    }
}

#[derive(Clone)]
struct MemoryEntry {
    value: Bytes,
    ttl: Duration,
}

struct EntryTtl;

impl Expiry<String, MemoryEntry> for EntryTtl {
    fn expire_after_create(&self, _: &String, entry: &MemoryEntry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &MemoryEntry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl MemoryStore {
    /// A store holding at most about `capacity_bytes` of keys and values;
    /// beyond that the least useful entries are evicted (TinyLFU).
    pub fn new(capacity_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, entry: &MemoryEntry| {
                u32::try_from(key.len() + entry.value.len() + 64).unwrap_or(u32::MAX)
            })
            .expire_after(EntryTtl)
            .build();
        Self {
            entries,
            channels: Arc::default(),
            leases: Arc::new(Mutex::new(Leases::new(capacity_bytes))),
        }
    }

    fn insert(&self, key: &str, value: Bytes, ttl: Duration) {
        self.entries
            .insert(key.to_owned(), MemoryEntry { value, ttl });
    }

    /// Adds `key` to each of `indexes`; members whose value is gone are
    /// pruned as an index grows, which bounds it by its live members.
    fn index(&self, leases: &mut Leases, key: &str, indexes: &[String]) {
        if !indexes.is_empty() && leases.indexes.len() >= MAX_STAMPS {
            // Indexes only speed up the removal of invalidated entries (a
            // read checks the tags' stamps), so forgetting them is safe: it
            // bounds the map whatever number of tags passes through.
            leases.indexes.clear();
        }
        for index in indexes {
            let members = leases.indexes.entry(index.clone()).or_default();
            if members.len() >= 1024 && members.len().is_power_of_two() {
                members.retain(|member| self.entries.contains_key(member));
            }
            members.insert(key.to_owned());
        }
    }

    /// Removes `key` — a value, a lease, a stamp or a waiter mark; whether
    /// it held a live one (an expired entry that moka has not evicted yet
    /// does not count, as in Redis).
    fn remove(&self, key: &str) -> bool {
        let mut leases = self.lock_leases();
        let lease = leases.held.remove(key).is_some()
            | leases.stamps.remove(key).is_some()
            | leases.waiters.remove(key).is_some()
            | leases.indexes.remove(key).is_some();
        let live = self.entries.contains_key(key);
        self.entries.invalidate(key);
        live || lease
    }

    /// What a `GET` of `key` returns: a value, or — as a string of digits,
    /// as on Redis — a stamp (tagged reads fetch the tags' stamps beside
    /// the value).
    fn read(&self, key: &str) -> Option<Bytes> {
        if let Some(entry) = self.entries.get(key) {
            return Some(entry.value);
        }
        let stamp = self.lock_leases().stamps.get(key)?;
        Some(Bytes::from(stamp.to_string()))
    }

    /// Tells the callers waiting on `keys`' lease, if any.
    fn announce(&self, keys: LeaseKeys<'_>, waiting: bool) {
        if waiting {
            self.send(keys.channel, Bytes::copy_from_slice(keys.value.as_bytes()));
        }
    }

    fn send(&self, channel: &str, message: Bytes) {
        let sender = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(channel)
            .cloned();
        if let Some(sender) = sender {
            // No receivers is not an error: nobody is listening.
            let _ = sender.send(message);
        }
    }

    fn lock_leases(&self) -> std::sync::MutexGuard<'_, Leases> {
        self.leases
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .field("weighted_bytes", &self.entries.weighted_size())
            .finish()
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn is_in_process(&self) -> bool {
        true
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        let value = self.read(key);
        async move { Ok(value) }.boxed()
    }

    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        let values = keys.iter().map(|k| self.read(k)).collect();
        async move { Ok(values) }.boxed()
    }

    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.insert(key, value, ttl);
        async { Ok(()) }.boxed()
    }

    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        let mut leases = self.lock_leases();
        for entry in entries {
            if let Some(lease) = &entry.void_lease {
                leases.held.remove(lease);
            }
            self.insert(&entry.key, entry.value.clone(), entry.ttl);
            self.index(&mut leases, &entry.key, &entry.indexes);
        }
        drop(leases);
        async { Ok(()) }.boxed()
    }

    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        let removed = keys.iter().filter(|k| self.remove(k)).count() as u64;
        async move { Ok(removed) }.boxed()
    }

    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        _batch: usize,
        _deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        let matching: Vec<Arc<String>> = self
            .entries
            .iter()
            .map(|(key, _)| key)
            .filter(|key| glob_match(pattern.as_bytes(), key.as_bytes()))
            .collect();
        let removed = matching.iter().filter(|k| self.remove(k)).count() as u64;
        async move { Ok(removed) }.boxed()
    }

    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        _batch: usize,
        _deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        let members = self.lock_leases().indexes.remove(index).unwrap_or_default();
        let removed = members.iter().filter(|key| self.remove(key)).count() as u64;
        async move { Ok(removed) }.boxed()
    }

    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        let mut leases = self.lock_leases();
        let read = if let Some(entry) = self.entries.get(keys.value) {
            LeaseRead::Hit {
                value: entry.value,
                stamps: leases.seen(keys.stamps, false),
            }
        } else if let Some(remaining) = leases.live(keys) {
            leases
                .waiters
                .insert(keys.waiters.to_owned(), Instant::now() + remaining);
            LeaseRead::Held { remaining }
        } else {
            LeaseRead::Granted(leases.grant(keys, token, ttl))
        };
        drop(leases);
        async move { Ok(read) }.boxed()
    }

    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        let mut leases = self.lock_leases();
        let taken = (force || leases.live(keys).is_none()).then(|| leases.grant(keys, token, ttl));
        drop(leases);
        async move { Ok(taken) }.boxed()
    }

    fn stamps<'a>(&'a self, stamps: &'a [String], _ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        let seen = self.lock_leases().seen(stamps, true).unwrap_or_default();
        async move { Ok(seen) }.boxed()
    }

    fn set_markers<'a>(&'a self, markers: &'a [String], ttl: Duration) -> StoreFuture<'a, ()> {
        let mut leases = self.lock_leases();
        let now = Instant::now();
        if leases.markers.len() > 4096 {
            leases.markers.retain(|_, (_, until)| *until > now);
        }
        for marker in markers {
            leases.markers.insert(marker.clone(), (now, now + ttl));
        }
        drop(leases);
        async { Ok(()) }.boxed()
    }

    fn stamps_unless<'a>(
        &'a self,
        stamps: &'a [String],
        markers: &'a [String],
        granted: super::Granted<'a>,
        _ttl: Duration,
    ) -> StoreFuture<'a, Option<Vec<u64>>> {
        let mut leases = self.lock_leases();
        let now = Instant::now();
        // The grant, dated from the lease's expiry; no lease, no fill.
        let since = leases
            .held
            .get(granted.lease)
            .and_then(|holder| holder.expires.checked_sub(granted.ttl));
        let fresh_enough =
            since.is_some_and(|since| now.saturating_duration_since(since) <= super::MARKERS_LAST);
        let unchanged = fresh_enough
            && since.is_some_and(|since| {
                markers.iter().all(|marker| {
                    leases
                        .markers
                        .get(marker)
                        .is_none_or(|(set, until)| *until <= now || *set < since)
                })
            });
        let seen = unchanged.then(|| leases.seen(stamps, true).unwrap_or_default());
        drop(leases);
        async move { Ok(seen) }.boxed()
    }

    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut leases = self.lock_leases();
        let seen = leases.seen(keys.stamps, false);
        let valid = leases.held.get(keys.lease).is_some_and(|holder| {
            holder.token == lease.token
                && holder.expires > Instant::now()
                && seen.as_ref() == Some(&holder.seen)
        });
        if valid {
            self.insert(keys.value, value, ttl);
            self.index(&mut leases, keys.value, keys.indexes);
        }
        leases.release(keys.lease, lease.token);
        let waiting = leases.take_waiters(keys);
        drop(leases);
        self.announce(keys, waiting);
        async move { Ok(valid) }.boxed()
    }

    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        let mut leases = self.lock_leases();
        leases.release(keys.lease, lease.token);
        let waiting = leases.take_waiters(keys);
        drop(leases);
        self.announce(keys, waiting);
        async { Ok(()) }.boxed()
    }

    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.send(channel, message);
        async { Ok(()) }.boxed()
    }

    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        let receiver = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe();
        let messages = futures::stream::unfold(receiver, |mut receiver| async move {
            // A subscriber that fell behind (`Lagged`) lost messages: the
            // stream ends so it treats everything as changed.
            let message = receiver.recv().await.ok()?;
            Some((message, receiver))
        });
        let subscription = Subscription::new(channel, Box::pin(messages));
        async move { Ok(subscription) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn values_expire_after_their_ttl() {
        let store = MemoryStore::new(1 << 20);
        store
            .set("short", "a".into(), Duration::from_millis(30))
            .await
            .unwrap();
        store
            .set("long", "b".into(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.get("short").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(store.get("short").await.unwrap().is_none());
        assert!(store.get("long").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn pattern_unlink_matches_like_redis() {
        let store = MemoryStore::new(1 << 20);
        for key in ["p:product:1", "p:product:2", "p:products:1", "p:productx"] {
            store
                .set(key, "v".into(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        let removed = store
            .unlink_pattern("p:product:*", 10, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(removed, 2);
        assert!(store.get("p:products:1").await.unwrap().is_some());
        assert!(store.get("p:productx").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn published_messages_reach_subscribers() {
        let store = MemoryStore::new(1 << 20);
        let mut sub = store.subscribe("inv").await.unwrap();
        store.publish("inv", "product:1".into()).await.unwrap();
        assert_eq!(sub.next().await.as_deref(), Some(&b"product:1"[..]));
    }
}
