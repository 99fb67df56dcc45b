//! An in-process store that can fail on cue (Redis down, or one call
//! timing out), delegating to the memory store otherwise.
//!
//! ```ignore
//! let (cache, hooks) = Hooked::cache();
//! hooks.down.store(true, Ordering::SeqCst); // every call fails from here
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, MemoryStore, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, ErrorKind};

/// What the store does wrong next, and what it counts.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Every call fails (the store is down).
    pub down: AtomicBool,
    /// The next this many MGETs fail (a timeout, a dropped connection).
    pub fail_mgets: AtomicUsize,
    /// Store reads (GET, MGET) begun so far: a request's first lookup.
    pub reads: AtomicUsize,
    /// The next this many UNLINKs fail (a timeout, a dropped connection).
    pub fail_unlinks: AtomicUsize,
}

/// The memory store, failing as its [`Hooks`] say.
#[derive(Debug)]
pub struct Hooked {
    inner: MemoryStore,
    hooks: Arc<Hooks>,
}

fn failed<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(async { Err(larder::Error::new(ErrorKind::Store, "store down (hook)")) })
}

impl Hooked {
    /// A cache on a hooked store, and its hooks.
    pub fn cache() -> (Cache, Arc<Hooks>) {
        let hooks = Arc::new(Hooks::default());
        let store = Hooked {
            inner: MemoryStore::new(64 * 1024 * 1024),
            hooks: Arc::clone(&hooks),
        };
        let config = Config::builder().in_memory().build().unwrap();
        (Cache::with_store(config, Arc::new(store)), hooks)
    }

    fn down(&self) -> bool {
        self.hooks.down.load(Ordering::SeqCst)
    }

    fn unlink_fails(&self) -> bool {
        self.hooks
            .fail_unlinks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl Store for Hooked {
    fn name(&self) -> &'static str {
        "hooked-memory"
    }
    fn is_in_process(&self) -> bool {
        true
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.hooks.reads.fetch_add(1, Ordering::SeqCst);
        if self.down() {
            return failed();
        }
        self.inner.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.hooks.reads.fetch_add(1, Ordering::SeqCst);
        if self.down()
            || self
                .hooks
                .fail_mgets
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return failed();
        }
        self.inner.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        if self.down() || self.unlink_fails() {
            return failed();
        }
        self.inner.unlink(keys)
    }
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        if self.down() || self.unlink_fails() {
            return failed();
        }
        self.inner.unlink_entries(values, leases)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        if self.down() {
            return failed();
        }
        self.inner.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        if self.down() {
            return failed();
        }
        self.inner.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        if self.down() {
            return failed();
        }
        self.inner.take_lease(keys, token, ttl, force)
    }
    fn stamps<'a>(&'a self, stamps: &'a [String], ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        if self.down() {
            return failed();
        }
        self.inner.stamps(stamps, ttl)
    }
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        if self.down() {
            return failed();
        }
        self.inner.fill_leased(keys, lease, value, ttl)
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.release_lease(keys, lease)
    }
    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        if self.down() {
            return failed();
        }
        self.inner.unlink_index(index, batch, deadline)
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.inner.subscribe(channel)
    }
}
