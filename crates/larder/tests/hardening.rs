//! Regressions from a review of the core: each test reproduces a defect
//! that was found (and fixed) — cancelled breaker probes, connection
//! attempts dropped with their runtime, refused commands tripping the
//! breaker, huge TTLs, unbounded SUBSCRIBE, cache errors from custom stores —
//! and asserts the correct behaviour.
#![allow(missing_debug_implementations)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, MemoryStore, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, Error, ErrorKind};
use larder_test_support::RedisServer;

const HOUR: Duration = Duration::from_secs(3600);

/// A network-like store: 0 = answers, 1 = fails, 2 = hangs forever.
#[derive(Debug, Default)]
struct Flaky {
    mode: AtomicU8,
    gets: AtomicUsize,
}

impl Store for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn get<'a>(&'a self, _key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            let mode = self.mode.load(Ordering::SeqCst);
            match mode {
                0 => Ok(None),
                1 => Err(Error::new(ErrorKind::Store, "down")),
                _ => futures::future::pending().await,
            }
        }
        .boxed()
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        async move { Ok(vec![None; keys.len()]) }.boxed()
    }
    fn set<'a>(&'a self, _: &'a str, _: Bytes, _: Duration) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn mset<'a>(&'a self, _: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn unlink<'a>(&'a self, _: &'a [String]) -> StoreFuture<'a, u64> {
        async { Ok(0) }.boxed()
    }
    fn unlink_pattern<'a>(&'a self, _: &'a str, _: usize, _: Duration) -> StoreFuture<'a, u64> {
        async { Ok(0) }.boxed()
    }
    fn publish<'a>(&'a self, _: &'a str, _: Bytes) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn get_or_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        token: u64,
        _: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        async move {
            self.gets.fetch_add(1, Ordering::SeqCst);
            match self.mode.load(Ordering::SeqCst) {
                0 => Ok(LeaseRead::Granted(Grant {
                    lease: Lease { token },
                    stamps: vec![0, 0],
                })),
                1 => Err(Error::new(ErrorKind::Store, "down")),
                _ => futures::future::pending().await,
            }
        }
        .boxed()
    }
    fn take_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
        _: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        async { Ok(None) }.boxed()
    }
    fn fill_leased<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: Lease,
        _: Bytes,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        async { Ok(true) }.boxed()
    }
    fn release_lease<'a>(&'a self, _: LeaseKeys<'a>, _: Lease) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn subscribe<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Subscription> {
        async { Err(Error::new(ErrorKind::Store, "no")) }.boxed()
    }
}

/// A probe whose caller is cancelled (client disconnect, tower timeout,
/// select!) leaves `probing = true`: the breaker never lets a call through
/// again, for the life of the process.
#[tokio::test]
async fn a_cancelled_probe_does_not_keep_the_breaker_open() {
    let store = Arc::new(Flaky::default());
    let config = Config::builder()
        .breaker_failures(1)
        .breaker_open_for(Duration::from_millis(50))
        .deadline(Duration::from_millis(500))
        .build()
        .unwrap();
    let cache = Cache::with_store(config, store.clone());
    store.mode.store(1, Ordering::SeqCst);
    assert_eq!(cache.get::<u32>("k:1").await.unwrap(), None); // opens
    tokio::time::sleep(Duration::from_millis(80)).await;
    store.mode.store(2, Ordering::SeqCst);
    // The probe: cancelled by the caller after 10 ms.
    let _ = tokio::time::timeout(Duration::from_millis(10), cache.get::<u32>("k:1")).await;
    store.mode.store(0, Ordering::SeqCst); // the store is healthy again
    let before = store.gets.load(Ordering::SeqCst);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = cache.get::<u32>("k:1").await;
    }
    let after = store.gets.load(Ordering::SeqCst);
    assert!(
        after > before,
        "breaker never probed again: store saw {before} -> {after} GETs in 1 s"
    );
}

/// Same on a real (frozen, then thawed) redis-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_probe_on_a_frozen_redis_recovers_after_thaw() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| {
        b.deadline(Duration::from_millis(200))
            .breaker_failures(1)
            .breaker_open_for(Duration::from_millis(100))
    })
    .await;
    cache.set("product:1", &1_u32, HOUR).await.unwrap();
    let pid = server.pid().unwrap().to_string();
    let sig = |s: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([s, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    sig("-STOP");
    assert_eq!(cache.get::<u32>("product:1").await.unwrap(), None); // times out, opens
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _ = tokio::time::timeout(Duration::from_millis(20), cache.get::<u32>("product:1")).await;
    sig("-CONT");
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        if cache.get::<u32>("product:1").await.unwrap() == Some(1) {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "Redis healthy for 5 s, cache still never reads it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis connection attempt that was pending when its runtime shut down
/// leaves `connecting = true`: no further attempt is ever made.
#[test]
fn a_runtime_shut_down_mid_reconnect_does_not_wedge_the_connection() {
    let mut server = RedisServer::spawn();
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_millis(300))
        .breaker_failures(1000)
        .build()
        .unwrap();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = first.block_on(async {
        let cache = Cache::connect(config).await.unwrap();
        cache.set("product:1", &1_u32, HOUR).await.unwrap();
        cache
    });
    server.kill();
    first.block_on(async {
        // Fails; a reconnect is left scheduled (after backoff) on `first`.
        for _ in 0..2 {
            assert_eq!(cache.get::<u32>("product:1").await.unwrap(), None);
        }
    });
    drop(first); // the scheduled attempt is dropped with its runtime
    server.restart();
    let second = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let give_up = Instant::now() + Duration::from_secs(6);
        loop {
            cache.set("product:1", &2_u32, HOUR).await.unwrap();
            if cache.get::<u32>("product:1").await.unwrap() == Some(2) {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "Redis back for 6 s; never reconnected"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// A key holding a non-string (another app, a stray HSET) is a refused
/// command, not a failing Redis: reads of it are misses (and it goes), and
/// the breaker stays closed for every other key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wrongtype_key_does_not_open_the_breaker() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| {
        b.breaker_failures(3)
            .breaker_open_for(Duration::from_secs(30))
    })
    .await;
    cache.set("product:2", &2_u32, HOUR).await.unwrap();
    let mut conn = common::raw(&server).await;
    let _: () = redis::cmd("HSET")
        .arg(cache.physical_key("product:1"))
        .arg("f")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(cache.get::<u32>("product:1").await.unwrap(), None);
    }
    assert_eq!(
        cache.get::<u32>("product:2").await.unwrap(),
        Some(2),
        "healthy Redis, unrelated key"
    );
}

/// `Duration::MAX` ("cache forever") is cut to `MAX_TTL`, never a panic in
/// the jitter arithmetic.
#[tokio::test]
async fn huge_ttls_are_clamped_not_a_panic() {
    let cache = Cache::in_memory();
    for i in 0..32 {
        let key = format!("k:{i}");
        let fut = std::panic::AssertUnwindSafe(cache.set(&key, &1_u32, Duration::MAX));
        let r = fut.catch_unwind().await;
        assert!(r.is_ok(), "set(.., Duration::MAX) panicked on try {i}");
    }
}

/// On Redis, a TTL beyond what `SET … PX` takes is cut to `MAX_TTL` and
/// stored, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_ttls_are_stored_on_redis() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| {
        b.ttl_jitter(0.0).fail_mode(larder::FailMode::Closed)
    })
    .await;
    let r = cache
        .set("k:1", &1_u32, Duration::from_secs(u64::MAX / 1000))
        .await;
    assert!(r.is_ok(), "{r:?}");
}

/// SUBSCRIBE to a frozen Redis gives up after the connect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_to_a_frozen_redis_is_bounded() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| {
        b.deadline(Duration::from_millis(200))
            .connect_timeout(Duration::from_millis(200))
    })
    .await;
    let pid = server.pid().unwrap().to_string();
    let sig = |s: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([s, &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    sig("-STOP");
    let r = tokio::time::timeout(
        Duration::from_secs(3),
        cache.store().subscribe("larder:inv"),
    )
    .await;
    sig("-CONT");
    assert!(
        r.is_ok(),
        "subscribe still pending after 3 s (connect_timeout 200 ms)"
    );
}

/// A TTL chosen from the data (`Expiring`) is clamped too.
#[tokio::test]
async fn expiring_with_a_huge_ttl_is_clamped() {
    let cache = Cache::in_memory();
    for i in 0..32 {
        let key = format!("product_data:{i}");
        let fut = std::panic::AssertUnwindSafe(cache.get_or_compute_expiring(&key, || async {
            larder::Expiring::secs(1_u32, u64::MAX) // e.g. "never expires" from a row
        }));
        assert!(fut.catch_unwind().await.is_ok(), "panicked on try {i}");
    }
}

/// A custom store may report any error kind; a `#[cached]` function still
/// fails open and runs its body.
#[derive(Debug, Default)]
struct OddStore;
impl Store for OddStore {
    fn name(&self) -> &'static str {
        "odd"
    }
    fn get<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        async { Err(Error::new(ErrorKind::Decode, "proxy returned garbage")) }.boxed()
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        async move { Ok(vec![None; keys.len()]) }.boxed()
    }
    fn set<'a>(&'a self, _: &'a str, _: Bytes, _: Duration) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn mset<'a>(&'a self, _: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn unlink<'a>(&'a self, _: &'a [String]) -> StoreFuture<'a, u64> {
        async { Ok(0) }.boxed()
    }
    fn unlink_pattern<'a>(&'a self, _: &'a str, _: usize, _: Duration) -> StoreFuture<'a, u64> {
        async { Ok(0) }.boxed()
    }
    fn publish<'a>(&'a self, _: &'a str, _: Bytes) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn get_or_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        async { Err(Error::new(ErrorKind::Decode, "proxy returned garbage")) }.boxed()
    }
    fn take_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
        _: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        async { Err(Error::new(ErrorKind::Decode, "proxy returned garbage")) }.boxed()
    }
    fn fill_leased<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: Lease,
        _: Bytes,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        async { Err(Error::new(ErrorKind::Decode, "proxy returned garbage")) }.boxed()
    }
    fn release_lease<'a>(&'a self, _: LeaseKeys<'a>, _: Lease) -> StoreFuture<'a, ()> {
        async { Ok(()) }.boxed()
    }
    fn subscribe<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Subscription> {
        async { Err(Error::new(ErrorKind::Store, "no")) }.boxed()
    }
}

struct OddRepository {
    cache: Cache,
}

impl OddRepository {
    #[larder::cached(namespace = "user_data", cache = self.cache, receiver = "skip")]
    async fn user(&self, id: u32) -> u32 {
        id
    }
}

#[tokio::test]
async fn cached_functions_fail_open_on_any_store_error() {
    let repository = OddRepository {
        cache: Cache::with_store(Config::default(), Arc::new(OddStore)),
    };
    let call = std::panic::AssertUnwindSafe(repository.user(7));
    assert_eq!(call.catch_unwind().await.ok(), Some(7), "the body answers");
}

#[tokio::test]
async fn deleting_an_expired_in_memory_entry_reports_nothing_removed() {
    let config = Config::builder().ttl_jitter(0.0).build().unwrap();
    let cache = Cache::with_store(config, Arc::new(MemoryStore::new(1 << 20)));
    cache
        .set("s:1", &1_u32, Duration::from_millis(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // time itself must pass
    assert!(
        !cache.delete_cached_data("s:1").await.unwrap(),
        "as in Redis: nothing was there"
    );
}
