use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use moka::Expiry;
use tokio::sync::broadcast;

use super::{Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription};
use crate::key::glob_match;

/// The in-process store: a bounded moka cache with per-entry TTLs.
///
/// Clones share the same data, so two [`Cache`](crate::Cache)s built on one
/// `MemoryStore` see each other's writes, like two clients of one Redis.
#[derive(Clone)]
pub struct MemoryStore {
    entries: moka::sync::Cache<String, MemoryEntry>,
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<Bytes>>>>,
    /// Leases and epochs. Lease operations and removals take this lock, so
    /// each is atomic with respect to the others, as a Lua script is on Redis.
    leases: Arc<Mutex<Leases>>,
}

#[derive(Default)]
struct Leases {
    /// Lease key → (`token:epoch`, expiry).
    held: HashMap<String, (String, Instant)>,
    epochs: HashMap<String, u64>,
}

impl Leases {
    fn epoch(&self, key: &str) -> u64 {
        self.epochs.get(key).copied().unwrap_or(0)
    }

    /// Held: granted, not expired, and not voided by a newer epoch.
    fn is_held(&self, keys: LeaseKeys<'_>) -> bool {
        let epoch = self.epoch(keys.epoch);
        self.held.get(keys.lease).is_some_and(|(held, expires)| {
            *expires > Instant::now()
                && held.rsplit_once(':').and_then(|(_, e)| e.parse().ok()) == Some(epoch)
        })
    }

    fn grant(&mut self, keys: LeaseKeys<'_>, token: u64, ttl: Duration) -> Lease {
        let epoch = self.epoch(keys.epoch);
        if self.held.len() > 1024 {
            let now = Instant::now();
            self.held.retain(|_, (_, expires)| *expires > now);
        }
        self.held.insert(
            keys.lease.to_owned(),
            (Lease::encoded(token, epoch), Instant::now() + ttl),
        );
        Lease { token, epoch }
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
            leases: Arc::default(),
        }
    }

    fn insert(&self, key: &str, value: Bytes, ttl: Duration) {
        self.entries
            .insert(key.to_owned(), MemoryEntry { value, ttl });
    }

    /// Removes `key` — a value or a lease; whether it held a live one (an
    /// expired entry that moka has not evicted yet does not count, as in
    /// Redis).
    fn remove(&self, key: &str) -> bool {
        let mut leases = self.lock_leases();
        let lease = leases.held.remove(key).is_some();
        let live = self.entries.contains_key(key);
        self.entries.invalidate(key);
        live || lease
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
        let value = self.entries.get(key).map(|e| e.value);
        async move { Ok(value) }.boxed()
    }

    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        let values = keys
            .iter()
            .map(|k| self.entries.get(k).map(|e| e.value))
            .collect();
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

    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        let mut leases = self.lock_leases();
        let read = if let Some(entry) = self.entries.get(keys.value) {
            LeaseRead::Hit(entry.value)
        } else if leases.is_held(keys) {
            LeaseRead::Held
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
    ) -> StoreFuture<'a, Option<Lease>> {
        let mut leases = self.lock_leases();
        let taken = (force || !leases.is_held(keys)).then(|| leases.grant(keys, token, ttl));
        drop(leases);
        async move { Ok(taken) }.boxed()
    }

    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let mut leases = self.lock_leases();
        let expected = Lease::encoded(lease.token, lease.epoch);
        let valid = leases
            .held
            .get(keys.lease)
            .is_some_and(|(held, expires)| *held == expected && *expires > Instant::now())
            && leases.epoch(keys.epoch) == lease.epoch;
        if valid {
            leases.held.remove(keys.lease);
            self.insert(keys.value, value, ttl);
        }
        drop(leases);
        async move { Ok(valid) }.boxed()
    }

    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        let mut leases = self.lock_leases();
        let expected = Lease::encoded(lease.token, lease.epoch);
        if leases
            .held
            .get(keys.lease)
            .is_some_and(|(held, _)| *held == expected)
        {
            leases.held.remove(keys.lease);
        }
        drop(leases);
        async { Ok(()) }.boxed()
    }

    fn bump_epoch<'a>(&'a self, epoch_key: &'a str) -> StoreFuture<'a, ()> {
        *self
            .lock_leases()
            .epochs
            .entry(epoch_key.to_owned())
            .or_insert(0) += 1;
        async { Ok(()) }.boxed()
    }

    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
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
