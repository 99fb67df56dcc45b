//! Stale data on purpose: stale-while-revalidate, stale-on-error, and XFetch
//! refreshing a value before it expires — on both stores.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use larder::store::MemoryStore;
use larder::{Cache, Config, config::ConfigBuilder};
use larder_test_support::RedisServer;
use tokio::sync::{Notify, oneshot};

enum Backend {
    Memory,
    Redis(RedisServer),
}

impl Backend {
    async fn cache(&self, tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Cache {
        match self {
            Backend::Memory => Cache::with_store(
                tweak(Config::builder()).build().unwrap(),
                Arc::new(MemoryStore::new(1 << 20)),
            ),
            Backend::Redis(server) => common::redis_cache(server, tweak).await,
        }
    }
}

const TTL: Duration = Duration::from_millis(200);

/// Inside the grace period every caller gets the old value at once, while
/// exactly one refresh runs (in the background).
async fn stale_while_revalidate(backend: Backend) {
    let cache = backend
        .cache(|b| b.ttl_jitter(0.0).stale_grace(Duration::from_secs(60)))
        .await;
    let old = cache
        .get_or_revalidate("report:1", TTL, || async { "old".to_string() })
        .await
        .unwrap();
    assert_eq!(old, "old");
    tokio::time::sleep(TTL + Duration::from_millis(100)).await; // let it expire

    let refreshes = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (done_tx, done_rx) = oneshot::channel();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (cache, refreshes, release, done_tx) = (
                cache.clone(),
                refreshes.clone(),
                release.clone(),
                done_tx.clone(),
            );
            tokio::spawn(async move {
                cache
                    .get_or_revalidate("report:1", TTL * 100, || async move {
                        refreshes.fetch_add(1, Ordering::SeqCst);
                        release.notified().await; // still refreshing while callers return
                        if let Some(done) = done_tx.lock().unwrap().take() {
                            let _ = done.send(());
                        }
                        "new".to_string()
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(
            caller.await.unwrap(),
            "old",
            "served at once, refresh still running"
        );
    }
    release.notify_one();
    done_rx.await.unwrap();
    // The refresh's fill lands right after it computes; wait for it to show.
    let mut seen = String::new();
    for _ in 0..100 {
        seen = cache
            .get::<String>("report:1")
            .await
            .unwrap()
            .unwrap_or_default();
        if seen == "new" {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, "new");
    assert_eq!(refreshes.load(Ordering::SeqCst), 1, "exactly one refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stale_while_revalidate() {
    stale_while_revalidate(Backend::Redis(RedisServer::spawn())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stale_while_revalidate() {
    stale_while_revalidate(Backend::Memory).await;
}

/// With stale-on-error, a failing origin is answered by the value in its
/// grace period; without it, the error reaches the caller.
async fn stale_on_error(backend: Backend) {
    for serve_stale in [true, false] {
        let cache = backend
            .cache(|b| {
                b.ttl_jitter(0.0)
                    .stale_grace(Duration::from_secs(60))
                    .stale_if_error(serve_stale)
                    .prefix(if serve_stale { "on" } else { "off" })
            })
            .await;
        cache
            .get_or_compute("user_data:1", TTL, || async { "last good".to_string() })
            .await
            .unwrap();
        tokio::time::sleep(TTL + Duration::from_millis(100)).await; // let it expire
        let answer = cache
            .try_get_or_compute("user_data:1", TTL, || async {
                Err::<String, larder::Error>(larder::Error::new(
                    larder::ErrorKind::Store,
                    "database down",
                ))
            })
            .await;
        if serve_stale {
            assert_eq!(answer.unwrap(), "last good");
        } else {
            assert!(answer.is_err());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stale_on_error() {
    stale_on_error(Backend::Redis(RedisServer::spawn())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stale_on_error() {
    stale_on_error(Backend::Memory).await;
}

/// XFetch: a value that takes long to compute, relative to its TTL, is
/// recomputed by one reader before it expires; readers never miss.
async fn xfetch_refreshes_early(backend: Backend) {
    let cache = backend
        .cache(|b| b.ttl_jitter(0.0).xfetch_beta_for("report", 20.0))
        .await;
    let ttl = Duration::from_millis(1500);
    let computations = Arc::new(AtomicUsize::new(0));
    let compute = |computations: Arc<AtomicUsize>| async move {
        let n = computations.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(100)).await; // delta: the recorded compute time
        n
    };
    assert_eq!(
        cache
            .get_or_compute("report:1", ttl, || compute(computations.clone()))
            .await
            .unwrap(),
        1
    );
    // Read for a while, well before expiry: with delta 100 ms and beta 20,
    // a reader 1.2 s before expiry refreshes with probability ~0.55.
    let mut early = None;
    for _ in 0..40 {
        let value = cache
            .get_or_compute("report:1", ttl, || compute(computations.clone()))
            .await
            .unwrap();
        if value == 2 {
            early = Some(value);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(early, Some(2), "no early refresh within 40 reads");
    assert_eq!(computations.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_xfetch_refreshes_early() {
    xfetch_refreshes_early(Backend::Redis(RedisServer::spawn())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_xfetch_refreshes_early() {
    xfetch_refreshes_early(Backend::Memory).await;
}
