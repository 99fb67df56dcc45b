//! A cache outlives the runtime that created it: connections live on
//! Larder's own I/O thread, so caches shared across runtimes — a global
//! cache used by several `#[tokio::test]`s, a service with two runtimes —
//! keep working when one of those runtimes shuts down.

mod common;

use common::{HOUR, Product, product};
use larder::{Config, FailMode};
use larder_test_support::RedisServer;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_cache_keeps_working_after_its_creating_runtime_is_gone() {
    let server = RedisServer::spawn();
    // Fail-closed, so a dead connection would show as an error, not a miss.
    let config = Config::builder()
        .redis_url(server.url())
        .fail_mode(FailMode::Closed)
        .build()
        .unwrap();
    let first = runtime();
    let cache = first.block_on(async {
        let cache = larder::Cache::connect(config).await.unwrap();
        cache.set("product:1", &product(1), HOUR).await.unwrap();
        cache
    });
    drop(first);

    for _ in 0..3 {
        let next = runtime();
        let got = next.block_on(cache.get::<Product>("product:1")).unwrap();
        assert_eq!(got, Some(product(1)));
        drop(next);
    }
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(async {
        let sub = cache.clone();
        let got = tokio::spawn(async move { sub.get::<Product>("product:1").await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, Some(product(1)));
    });
}

#[test]
fn blocking_calls_work_outside_and_inside_a_current_thread_runtime() {
    let server = RedisServer::spawn();
    let config = Config::builder()
        .redis_url(server.url())
        .fail_mode(FailMode::Closed)
        .build()
        .unwrap();
    // No runtime at all.
    let cache = larder::block_on(larder::Cache::connect(config)).unwrap();
    larder::block_on(cache.set("product:1", &product(1), HOUR)).unwrap();

    // A current-thread runtime whose only thread blocks: the blocking call
    // must not need that runtime to make progress.
    let runtime = runtime();
    let got = runtime.block_on(async {
        // The async connection is made on this runtime first...
        assert_eq!(
            cache.get::<Product>("product:1").await.unwrap(),
            Some(product(1))
        );
        // ...then its only thread blocks.
        larder::block_on(cache.get::<Product>("product:1"))
    });
    assert_eq!(got.unwrap(), Some(product(1)));
}
