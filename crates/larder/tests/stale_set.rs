//! The stale-set race: a reader misses and computes from the old source
//! row; a writer updates the row and invalidates; the reader's fill arrives
//! late. With leases the fill is rejected — the cache never holds the old
//! value after the invalidation — on both stores, for key and pattern
//! invalidation. A randomized soak checks the same property under load, and
//! shows that its checker does catch violations when leases are off.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use larder::store::MemoryStore;
use larder::{Cache, Config};
use larder_test_support::RedisServer;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

const HOUR: Duration = Duration::from_secs(3600);

enum Backend {
    Memory(Arc<MemoryStore>),
    Redis(RedisServer),
}

impl Backend {
    /// A cache on the backend (several share it, like processes).
    async fn cache(&self, leases: bool) -> Cache {
        match self {
            Backend::Memory(store) => {
                let config = Config::builder().leases(leases).build().unwrap();
                Cache::with_store(config, store.clone())
            }
            Backend::Redis(server) => common::redis_cache(server, |b| b.leases(leases)).await,
        }
    }
}

/// The deterministic race, with signals at each step (no sleeps).
async fn stale_fill_is_rejected(backend: Backend, by_pattern: bool) {
    let reader_cache = backend.cache(true).await;
    let writer_cache = backend.cache(true).await;
    let row = Arc::new(AtomicU64::new(1)); // the source of truth
    let (read_tx, read_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();

    let reader = tokio::spawn({
        let row = Arc::clone(&row);
        async move {
            reader_cache
                .get_or_compute("product:1", HOUR, || async move {
                    let old = row.load(Ordering::SeqCst); // reads the old row
                    read_tx.send(()).unwrap();
                    go_rx.await.unwrap(); // ...and is slow to fill
                    old
                })
                .await
                .unwrap()
        }
    });
    read_rx.await.unwrap();
    row.store(2, Ordering::SeqCst); // the write
    if by_pattern {
        writer_cache
            .invalidate_cache_pattern("product:*")
            .await
            .unwrap();
    } else {
        writer_cache.delete_cached_data("product:1").await.unwrap();
    }
    go_tx.send(()).unwrap(); // the late fill
    assert_eq!(
        reader.await.unwrap(),
        1,
        "the reader began before the write"
    );

    assert_eq!(
        writer_cache.get::<u64>("product:1").await.unwrap(),
        None,
        "the stale fill was rejected"
    );
    let fresh = writer_cache
        .get_or_compute("product:1", HOUR, || async { row.load(Ordering::SeqCst) })
        .await
        .unwrap();
    assert_eq!(fresh, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_key_invalidation_rejects_the_stale_fill() {
    stale_fill_is_rejected(Backend::Redis(RedisServer::spawn()), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pattern_invalidation_rejects_the_stale_fill() {
    stale_fill_is_rejected(Backend::Redis(RedisServer::spawn()), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_key_invalidation_rejects_the_stale_fill() {
    stale_fill_is_rejected(Backend::Memory(Arc::new(MemoryStore::new(1 << 20))), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pattern_invalidation_rejects_the_stale_fill() {
    stale_fill_is_rejected(Backend::Memory(Arc::new(MemoryStore::new(1 << 20))), true).await;
}

const KEYS: usize = 4;
const TASKS: usize = 8;
const OPS_PER_TASK: usize = 2_500; // 20,000 in all

/// The soak: 8 tasks (each its own `Cache`, like 8 processes) do random
/// reads, writes and invalidations. A read that begins after a write's
/// invalidation completed must not return a value older than that write.
/// Returns the number of reads that did.
async fn soak(server: &RedisServer, leases: bool, seed: u64) -> usize {
    let source: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    // The newest write per key whose invalidation has completed.
    let invalidated: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let violations = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let cache = common::redis_cache(server, |b| b.leases(leases).prefix("soak")).await;
        let (source, invalidated, violations) = (
            Arc::clone(&source),
            Arc::clone(&invalidated),
            Arc::clone(&violations),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed + task as u64);
            for _ in 0..OPS_PER_TASK {
                let k = rng.random_range(0..KEYS);
                let key = format!("product:{k}");
                match rng.random_range(0..10) {
                    // 70% reads.
                    0..7 => {
                        let floor = invalidated[k].load(Ordering::SeqCst);
                        let source = Arc::clone(&source);
                        let yields = rng.random_range(0..4);
                        let got = cache
                            .get_or_compute(&key, HOUR, || async move {
                                let value = source[k].load(Ordering::SeqCst);
                                for _ in 0..yields {
                                    tokio::task::yield_now().await; // origin latency
                                }
                                value
                            })
                            .await
                            .unwrap();
                        if got < floor {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // 30% writes, each followed by its invalidation.
                    _ => {
                        let written = source[k].fetch_add(1, Ordering::SeqCst) + 1;
                        if rng.random_range(0..5) == 0 {
                            cache.invalidate_cache_pattern(&key).await.unwrap();
                        } else {
                            cache.delete_cached_data(&key).await.unwrap();
                        }
                        invalidated[k].fetch_max(written, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    violations.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_soak_finds_no_stale_read_with_leases_and_some_without() {
    let server = RedisServer::spawn();
    let with_leases = soak(&server, true, 1).await;
    let mut conn = common::raw(&server).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let without_leases = soak(&server, false, 1).await;
    println!(
        "stale-set soak, {} ops: {with_leases} violations with leases, {without_leases} without",
        TASKS * OPS_PER_TASK
    );
    assert_eq!(with_leases, 0);
    assert!(without_leases > 0, "the checker must be able to fail");
}
