//! Regressions from a review of leases, stale-while-revalidate and refresh
//! (each once a failing test, now fixed): flights that served a pre-write
//! value to callers arriving after another process's invalidation; voided
//! leases that still blocked readers; a grace-period refresher waiting on its
//! own lease; concurrent refreshes; leases leaked by cancellation or by
//! values too large to store; a write-through `set` overwritten by a stale
//! fill; `get_or_revalidate` without leases; `delete_cached_data` counting a
//! lease as an entry; a failed computation's lease given back too late.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use larder::store::MemoryStore;
use larder::{Cache, Config, config::ConfigBuilder};
use larder_test_support::RedisServer;
use tokio::sync::oneshot;

const HOUR: Duration = Duration::from_secs(3600);

enum Backend {
    Memory(Arc<MemoryStore>),
    Redis(RedisServer),
}

impl Backend {
    fn memory() -> Self {
        Backend::Memory(Arc::new(MemoryStore::new(1 << 20)))
    }
    async fn cache(&self, tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Cache {
        match self {
            Backend::Memory(store) => {
                Cache::with_store(tweak(Config::builder()).build().unwrap(), store.clone())
            }
            Backend::Redis(server) => common::redis_cache(server, tweak).await,
        }
    }
}

/// F1: process P1 has a flight whose computation began before a write; P2
/// writes and invalidates. A read in P1 that BEGINS after the invalidation
/// completed joins P1's old flight and gets the pre-write value.
async fn cross_process_flight_serves_stale(backend: Backend, by_pattern: bool) {
    let p1 = backend.cache(|b| b).await;
    let p2 = backend.cache(|b| b).await;
    let row = Arc::new(AtomicU64::new(1));
    let (read_tx, read_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let a = tokio::spawn({
        let (p1, row) = (p1.clone(), row.clone());
        async move {
            p1.get_or_compute("product:1", HOUR, || async move {
                let old = row.load(Ordering::SeqCst);
                read_tx.send(()).unwrap();
                go_rx.await.unwrap();
                old
            })
            .await
            .unwrap()
        }
    });
    read_rx.await.unwrap();
    row.store(2, Ordering::SeqCst); // the write
    if by_pattern {
        p2.invalidate_cache_pattern("product:*").await.unwrap();
    } else {
        p2.delete_cached_data("product:1").await.unwrap();
    }
    // Invalidation complete. A new read in P1 begins now.
    let b = tokio::spawn({
        let (p1, row) = (p1.clone(), row.clone());
        async move {
            p1.get_or_compute(
                "product:1",
                HOUR,
                || async move { row.load(Ordering::SeqCst) },
            )
            .await
            .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // b joins the flight
    go_tx.send(()).unwrap();
    assert_eq!(a.await.unwrap(), 1);
    assert_eq!(
        b.await.unwrap(),
        2,
        "a read that began after the invalidation returned the pre-write value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_memory_cross_process_flight_serves_stale_key() {
    cross_process_flight_serves_stale(Backend::memory(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_redis_cross_process_flight_serves_stale_pattern() {
    cross_process_flight_serves_stale(Backend::Redis(RedisServer::spawn()), true).await;
}

/// F2: a value in its grace period, read through get_or_compute: the
/// refresher takes the lease, drops it, then waits on its own lease for
/// ~1.25 x lease_ttl, and computes without filling.
async fn grace_refresh_via_get_or_compute(backend: Backend) {
    let lease_ttl = Duration::from_secs(1);
    let cache = backend
        .cache(|b| {
            b.ttl_jitter(0.0)
                .stale_grace(Duration::from_secs(60))
                .lease_ttl(lease_ttl)
        })
        .await;
    let ttl = Duration::from_millis(200);
    cache
        .get_or_compute("report:1", ttl, || async { "old".to_string() })
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let started = Instant::now();
    let got = cache
        .get_or_compute("report:1", HOUR, || async { "new".to_string() })
        .await
        .unwrap();
    let took = started.elapsed();
    let stored = cache.get::<String>("report:1").await.unwrap();
    println!("grace refresh: got {got:?} after {took:?}; stored {stored:?}");
    assert!(
        took < lease_ttl / 2,
        "refresher waited {took:?} on its own lease"
    );
    assert_eq!(stored.as_deref(), Some("new"), "refresh was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_memory_grace_refresh_via_get_or_compute() {
    grace_refresh_via_get_or_compute(Backend::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_redis_grace_refresh_via_get_or_compute() {
    grace_refresh_via_get_or_compute(Backend::Redis(RedisServer::spawn())).await;
}

/// F3: get_or_revalidate with leases off serves the stale value for the
/// whole grace period and never refreshes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_memory_revalidate_without_leases_never_refreshes() {
    let cache = Backend::memory()
        .cache(|b| {
            b.ttl_jitter(0.0)
                .leases(false)
                .stale_grace(Duration::from_secs(60))
        })
        .await;
    let ttl = Duration::from_millis(100);
    cache
        .get_or_revalidate("report:1", ttl, || async { "old".to_string() })
        .await
        .unwrap();
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    let computed = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let c = computed.clone();
        cache
            .get_or_revalidate("report:1", ttl, move || async move {
                c.fetch_add(1, Ordering::SeqCst);
                "new".to_string()
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(computed.load(Ordering::SeqCst) >= 1, "no refresh ever ran");
}

/// F4: two concurrent refresh() calls: the second force-takes the lease
/// (voiding the first's), then joins the first's flight; the first's fill is
/// rejected and the second's lease leaks, blocking readers elsewhere.
async fn concurrent_refresh(backend: Backend) {
    let lease_ttl = Duration::from_secs(1);
    let p1 = backend.cache(|b| b.lease_ttl(lease_ttl)).await;
    let p2 = backend.cache(|b| b.lease_ttl(lease_ttl)).await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let first = tokio::spawn({
        let p1 = p1.clone();
        async move {
            p1.refresh("report:1", HOUR, || async move {
                go_rx.await.unwrap();
                7_u32
            })
            .await
            .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = tokio::spawn({
        let p1 = p1.clone();
        async move {
            p1.refresh("report:1", HOUR, || async { 8_u32 })
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    go_tx.send(()).unwrap();
    let (a, b) = (first.await.unwrap(), second.await.unwrap());
    println!("refreshes returned {a} and {b}");
    let stored = p1.get::<u32>("report:1").await.unwrap();
    // Another process reading now: is it blocked by a leaked lease?
    let started = Instant::now();
    let _ = p2
        .get_or_compute("report:1", HOUR, || async { 9_u32 })
        .await
        .unwrap();
    let waited = started.elapsed();
    println!("after two refreshes: stored {stored:?}; another process waited {waited:?}");
    assert!(stored.is_some(), "neither refresh was stored");
    assert!(
        waited < lease_ttl / 2,
        "reader blocked by a leaked lease for {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_memory_concurrent_refresh() {
    concurrent_refresh(Backend::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_redis_concurrent_refresh() {
    concurrent_refresh(Backend::Redis(RedisServer::spawn())).await;
}

/// F5: a cancelled leader leaks its lease: the released waiters then wait
/// for that lease to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_memory_cancelled_leader_stalls_waiters_for_lease_ttl() {
    let lease_ttl = Duration::from_secs(1);
    let cache = Backend::memory().cache(|b| b.lease_ttl(lease_ttl)).await;
    let (started_tx, started_rx) = oneshot::channel();
    let leader = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute("report:1", HOUR, || async move {
                    started_tx.send(()).unwrap();
                    std::future::pending::<u32>().await
                })
                .await
        }
    });
    started_rx.await.unwrap();
    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute("report:1", HOUR, || async { 7_u32 })
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    leader.abort();
    assert_eq!(waiter.await.unwrap(), 7);
    let waited = started.elapsed();
    println!("waiter released after {waited:?}");
    assert!(
        waited < lease_ttl / 2,
        "waiter stalled {waited:?} on the leaked lease"
    );
}

/// F7: a write-through `set` after the write is overwritten by a leased
/// computation that read the old row (set does not void the lease).
async fn set_overwritten_by_stale_fill(backend: Backend) {
    let p1 = backend.cache(|b| b).await;
    let p2 = backend.cache(|b| b).await;
    let row = Arc::new(AtomicU64::new(1));
    let (read_tx, read_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let a = tokio::spawn({
        let (p1, row) = (p1.clone(), row.clone());
        async move {
            p1.get_or_compute("product:1", HOUR, || async move {
                let old = row.load(Ordering::SeqCst);
                read_tx.send(()).unwrap();
                go_rx.await.unwrap();
                old
            })
            .await
            .unwrap()
        }
    });
    read_rx.await.unwrap();
    row.store(2, Ordering::SeqCst);
    p2.set("product:1", &2_u64, HOUR).await.unwrap();
    go_tx.send(()).unwrap();
    a.await.unwrap();
    assert_eq!(
        p2.get::<u64>("product:1").await.unwrap(),
        Some(2),
        "the write-through value was overwritten by the stale fill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_memory_set_overwritten_by_stale_fill() {
    set_overwritten_by_stale_fill(Backend::memory()).await;
}

/// F8: an over-size (not storable) value leaks the lease: another process
/// missing on the key waits ~lease_ttl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_memory_oversize_value_leaks_lease() {
    let lease_ttl = Duration::from_secs(1);
    let backend = Backend::memory();
    let p1 = backend
        .cache(|b| b.lease_ttl(lease_ttl).max_value_bytes(64))
        .await;
    let p2 = backend
        .cache(|b| b.lease_ttl(lease_ttl).max_value_bytes(64))
        .await;
    let big = "x".repeat(1000);
    p1.get_or_compute("report:1", HOUR, || async { big.clone() })
        .await
        .unwrap();
    let started = Instant::now();
    p2.get_or_compute("report:1", HOUR, || async { big.clone() })
        .await
        .unwrap();
    let waited = started.elapsed();
    println!("p2 waited {waited:?}");
    assert!(
        waited < lease_ttl / 2,
        "p2 stalled {waited:?} on p1's leaked lease"
    );
}

/// A leased computation in p1 that is slow (started, waiting on `go`).
async fn slow_leased(
    p1: &Cache,
    key: &'static str,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<u64>) {
    let (read_tx, read_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let a = tokio::spawn({
        let p1 = p1.clone();
        async move {
            p1.get_or_compute(key, HOUR, || async move {
                read_tx.send(()).unwrap();
                go_rx.await.unwrap();
                1_u64
            })
            .await
            .unwrap()
        }
    });
    read_rx.await.unwrap();
    (go_tx, a)
}

/// F9: a fill rejected by a pattern invalidation (epoch moved) leaves the
/// dead lease in place: every reader after the invalidation waits ~lease_ttl.
async fn pattern_rejected_lease_blocks_readers(backend: Backend) {
    let lease_ttl = Duration::from_secs(1);
    let p1 = backend.cache(|b| b.lease_ttl(lease_ttl)).await;
    let p2 = backend.cache(|b| b.lease_ttl(lease_ttl)).await;
    let (go, a) = slow_leased(&p1, "product:1").await;
    p2.invalidate_cache_pattern("product:*").await.unwrap();
    go.send(()).unwrap();
    a.await.unwrap();
    let started = Instant::now();
    let v = p2
        .get_or_compute("product:1", HOUR, || async { 2_u64 })
        .await
        .unwrap();
    let waited = started.elapsed();
    println!("after pattern invalidation: got {v} after {waited:?}");
    assert!(
        waited < lease_ttl / 2,
        "reader waited {waited:?} on a voided lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_redis_pattern_rejected_lease_blocks_readers() {
    pattern_rejected_lease_blocks_readers(Backend::Redis(RedisServer::spawn())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_memory_pattern_rejected_lease_blocks_readers() {
    pattern_rejected_lease_blocks_readers(Backend::memory()).await;
}

/// F12: a failed computation gave its lease back only in the background
/// (on drop), so a caller right behind it found the lease still held and
/// waited, or was served a stale value instead of refreshing. Now the
/// lease is gone before the error reaches the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_redis_failed_computation_gives_the_lease_back_before_returning() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let mut raw = common::raw(&server).await;
    for i in 0..200 {
        let key = format!("report:{i}");
        let failed: Result<String, Box<dyn std::error::Error + Send + Sync>> = cache
            .try_get_or_compute(&key, HOUR, || async { Err("origin down".into()) })
            .await;
        assert_eq!(failed.unwrap_err().to_string(), "origin down");
        let leases: Vec<String> = redis::cmd("KEYS")
            .arg("*~lease:*")
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(leases.is_empty(), "call {i}: lease still held: {leases:?}");
    }
}

/// F11: delete_cached_data reports `true` when only a lease existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_memory_delete_reports_lease_as_entry() {
    let backend = Backend::memory();
    let p1 = backend.cache(|b| b).await;
    let p2 = backend.cache(|b| b).await;
    let (go, a) = slow_leased(&p1, "product:1").await;
    let existed = p2.delete_cached_data("product:1").await.unwrap();
    go.send(()).unwrap();
    a.await.unwrap();
    assert!(!existed, "nothing was cached, yet delete reported an entry");
}
