//! Regressions from a second hostile review of the core (issue 9): a tag
//! invalidation that left in-process flights attached (a caller that began
//! after it got the value from before it), `get_or_revalidate` costing two
//! deadlines, a password with an `@` in a query printed, a stamp of too
//! many digits never repaired, a custom store's short `MGET` answer
//! panicking a tagged read. Each failed before its fix. On private
//! redis-servers, with signals (oneshot channels, store hooks) rather
//! than sleeps as synchronisation.
#![allow(missing_debug_implementations, missing_docs)]

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use larder::__private::{self as support, Computed, Sharing};
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config};
use larder_test_support::RedisServer;
use tokio::sync::oneshot;

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// Helpers.

fn redis_store(server: &RedisServer) -> larder::store::RedisStore {
    let url = larder::config::RedisUrl::parse(&server.url()).unwrap();
    larder::store::RedisStore::new(&url, Duration::from_secs(1), None).unwrap()
}

/// A tagged read-through, as the HTTP layer makes one.
async fn tagged_read(
    cache: &Cache,
    key: &str,
    tags: &[String],
    compute: impl Future<Output = String>,
) -> String {
    let sharing = Sharing::<Infallible>::none();
    match support::cached_served_sharing(cache, key, HOUR, None, tags, &sharing, || async move {
        Ok::<_, Infallible>(Computed::plain(compute.await))
    })
    .await
    {
        Ok(served) => served.value,
        Err((never, _)) => match never {},
    }
}

/// A Redis store with hooks: `GET` can be made to hang, and the next
/// leased fill can be held after it has landed in Redis (before its
/// caller hears of it).
#[derive(Debug)]
struct Hooked {
    inner: larder::store::RedisStore,
    hang_gets: AtomicBool,
    /// (told when a fill has landed, released by)
    hold_fill: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Hooked {
    fn new(server: &RedisServer) -> Self {
        Self {
            inner: redis_store(server),
            hang_gets: AtomicBool::new(false),
            hold_fill: Mutex::new(None),
        }
    }
}

impl Store for Hooked {
    fn name(&self) -> &'static str {
        "hooked"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        if self.hang_gets.load(Ordering::SeqCst) {
            return Box::pin(futures::future::pending());
        }
        self.inner.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        if self.hang_gets.load(Ordering::SeqCst) {
            return Box::pin(futures::future::pending());
        }
        self.inner.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.inner.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.inner.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        self.inner.unlink(keys)
    }
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        self.inner.unlink_entries(values, leases)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.inner.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        self.inner.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        self.inner.take_lease(keys, token, ttl, force)
    }
    fn stamps<'a>(&'a self, stamps: &'a [String], ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        self.inner.stamps(stamps, ttl)
    }
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let filled = self.inner.fill_leased(keys, lease, value, ttl).await;
            let hold = self.hold_fill.lock().unwrap().take();
            if let Some((landed, release)) = hold {
                landed.send(()).unwrap();
                let _ = release.await;
            }
            filled
        })
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        self.inner.release_lease(keys, lease)
    }
    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.inner.unlink_index(index, batch, deadline)
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.inner.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.inner.subscribe(channel)
    }
}

// ---------------------------------------------------------------------------
// 1. Tag invalidation does not detach in-process flights, and a *stored*
//    value is handed to every waiter — also to one that joined after the
//    invalidation returned. With leases off the window is the whole
//    computation (the fill is a plain SET, accepted whatever happened).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_off_a_tag_invalidation_during_a_computation_still_hands_its_value_to_later_callers()
{
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b.leases(false)).await;
    let key = "r2offtag:1";
    let tags = vec!["r2offtag-page".to_owned()];
    let (computing_tx, computing_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let leader = tokio::spawn({
        let (cache, tags) = (cache.clone(), tags.clone());
        async move {
            tagged_read(&cache, key, &tags, async move {
                computing_tx.send(()).unwrap(); // reads the old row
                go_rx.await.unwrap();
                "old".to_owned()
            })
            .await
        }
    });
    computing_rx.await.unwrap();
    // The write has committed; its invalidation returns. Whatever starts
    // from now on must see the new row.
    support::invalidate_tag(&cache, "r2offtag-page")
        .await
        .unwrap();
    let late = tokio::spawn({
        let (cache, tags) = (cache.clone(), tags.clone());
        async move { tagged_read(&cache, key, &tags, async { "new".to_owned() }).await }
    });
    // It must not join the leader's flight (detached by the tag's
    // invalidation): it reads afresh and computes on its own.
    let late = late.await.unwrap();
    go_tx.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), "old");
    assert_eq!(
        late, "new",
        "a caller that began after invalidate_tag returned got the value computed before it"
    );
}

/// The same with leases on: the leader's fill lands, the tag is
/// invalidated (value and stamp gone), a new caller misses and joins the
/// leader's flight before the leader has heard back from its fill — and
/// gets the value from before the invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_landed_before_a_tag_invalidation_answers_a_caller_that_began_after_it() {
    let server = RedisServer::spawn();
    let store = Arc::new(Hooked::new(&server));
    let config = Config::builder()
        .deadline(Duration::from_secs(2))
        .breaker_failures(1000)
        .build()
        .unwrap();
    let cache = Cache::with_store(config, store.clone());
    let key = "r2ontag:1";
    let tags = vec!["r2ontag-page".to_owned()];
    let (landed_tx, landed_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    *store.hold_fill.lock().unwrap() = Some((landed_tx, release_rx));
    let leader = tokio::spawn({
        let (cache, tags) = (cache.clone(), tags.clone());
        async move { tagged_read(&cache, key, &tags, async { "old".to_owned() }).await }
    });
    landed_rx.await.unwrap(); // the fill is in Redis
    // A write commits and invalidates the tag: the entry and the stamp go.
    support::invalidate_tag(&cache, "r2ontag-page")
        .await
        .unwrap();
    assert_eq!(
        support::get_tagged::<String>(&cache, key, &tags)
            .await
            .unwrap(),
        None,
        "the invalidation removed the entry"
    );
    let late = tokio::spawn({
        let (cache, tags) = (cache.clone(), tags.clone());
        async move { tagged_read(&cache, key, &tags, async { "new".to_owned() }).await }
    });
    // It must not join the leader's flight (detached by the tag's
    // invalidation): it reads afresh and computes on its own.
    let late = late.await.unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), "old");
    assert_eq!(
        late, "new",
        "a caller that began after invalidate_tag returned got the value filled before it"
    );
}

// ---------------------------------------------------------------------------
// 2. The deadline: `get_or_revalidate` reads once under one budget, then
//    on a miss calls `get_or_compute`, which starts a second budget and
//    reads again: a miss on a hanging store costs two deadlines.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_revalidate_on_a_hanging_store_costs_one_deadline() {
    let server = RedisServer::spawn();
    let store = Arc::new(Hooked::new(&server));
    let deadline = Duration::from_millis(400);
    let config = Config::builder()
        .deadline(deadline)
        .breaker_failures(1000)
        .stale_grace(Duration::from_secs(10))
        .build()
        .unwrap();
    let cache = Cache::with_store(config, store.clone());
    // Connected (the lease scripts answer; only reads hang from now on).
    let _: u32 = cache
        .get_or_compute("warm:0", HOUR, || async { 0 })
        .await
        .unwrap();
    store.hang_gets.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let value: u32 = cache
        .get_or_revalidate("report:1", HOUR, || async { 7 })
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(value, 7);
    assert!(
        took < deadline + deadline / 2,
        "a get_or_revalidate miss took {took:?} against a hanging store with a {deadline:?} deadline"
    );
}

// ---------------------------------------------------------------------------
// 3. Foreign bytes in a stamp: the lease scripts accept any string of
//    digits, the client parses a u64. A stamp of more digits than a u64
//    holds is neither repaired nor read: every lease grant "fails" after
//    the lease was set in Redis, so nothing is ever stored under the
//    namespace, and every other miss waits out a whole lease TTL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stamp_of_too_many_digits_is_repaired_not_a_permanent_failure() {
    let server = RedisServer::spawn();
    let lease_ttl = Duration::from_secs(1);
    let cache =
        common::redis_cache(&server, |b| b.lease_ttl(lease_ttl).breaker_failures(1000)).await;
    let mut conn = common::raw(&server).await;
    // Larder's own namespace stamp, with bytes it did not write.
    let _: () = redis::cmd("SET")
        .arg("larder:1~stamp:r2stamp")
        .arg("99999999999999999999999")
        .query_async(&mut conn)
        .await
        .unwrap();
    let first: u32 = cache
        .get_or_compute("r2stamp:1", HOUR, || async { 1 })
        .await
        .unwrap();
    assert_eq!(first, 1);
    let started = Instant::now();
    let second: u32 = cache
        .get_or_compute("r2stamp:1", HOUR, || async { 2 })
        .await
        .unwrap();
    let took = started.elapsed();
    let stored = cache.get::<u32>("r2stamp:1").await.unwrap();
    assert!(
        stored.is_some() && second == 1,
        "nothing is ever stored under a namespace whose stamp holds foreign digits \
         (second call computed {second} after waiting {took:?} for a lease nobody holds; \
         stored: {stored:?})"
    );
}

// ---------------------------------------------------------------------------
// 4. Redaction: the user-info is taken up to the last `@` of the whole
//    URL, query included; a password parameter holding `@` prints what
//    follows its last `@`.

#[test]
fn a_password_parameter_holding_an_at_sign_is_not_printed() {
    let url =
        larder::config::RedisUrl::parse("unix:///run/redis.sock?db=1&pass=hunter2@Zq9xSecretTail")
            .unwrap();
    for printed in [url.to_string(), format!("{url:?}")] {
        assert!(
            !printed.contains("Zq9xSecretTail") && !printed.contains("hunter2"),
            "the password is printed: {printed}"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. A custom store's short MGET answer: failing open is meant to hold
//    "whatever a custom store reports", but a tagged read indexes the
//    answer (`drain(1..)`) and panics on an empty one.

#[derive(Debug)]
struct ShortMget(larder::store::MemoryStore);

impl Store for ShortMget {
    fn name(&self) -> &'static str {
        "short-mget"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.0.get(key)
    }
    fn mget<'a>(&'a self, _: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.0.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.0.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        self.0.unlink(keys)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.0.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        self.0.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        self.0.take_lease(keys, token, ttl, force)
    }
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.0.fill_leased(keys, lease, value, ttl)
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        self.0.release_lease(keys, lease)
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.0.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.0.subscribe(channel)
    }
}

#[tokio::test]
async fn a_short_mget_answer_from_a_custom_store_is_a_miss_not_a_panic() {
    let store = Arc::new(ShortMget(larder::store::MemoryStore::new(1 << 20)));
    let cache = Cache::with_store(Config::default(), store);
    let tags = vec!["page".to_owned()];
    let read =
        tokio::spawn(async move { support::get_tagged::<String>(&cache, "page:1", &tags).await })
            .await;
    assert!(
        matches!(read, Ok(Ok(None))),
        "a tagged read on a store whose MGET answered no values: {:?}",
        read.map_err(|e| if e.is_panic() {
            "panicked"
        } else {
            "cancelled"
        })
    );
}
