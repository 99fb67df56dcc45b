//! The change feed while Redis is down: the invalidations it cannot apply
//! turn into generation bumps it retries, and `caught_up` says so until
//! they land. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod change_feed_support;

use std::time::{Duration, Instant};

use change_feed_support::*;
use larder::{Cache, Config};
use larder_sqlx::change_feed::ChangeFeed;
use larder_test_support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_the_cache_missed_are_bumped_once_redis_is_back() {
    let Some(url) = database_url("changes_the_cache_missed_are_bumped_once_redis_is_back") else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(1, 5).await;
    let mut server = RedisServer::spawn();
    // No circuit breaker in the way: every call reaches the server.
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_secs(2))
        .breaker_failures(u32::MAX)
        .build()
        .unwrap();
    let cache = Cache::connect(config).await.unwrap();
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .resync_on_start(false)
        .start()
        .await
        .unwrap();
    let products = db.products().await;
    cache_all(&cache, &products).await;

    tokio::task::block_in_place(|| server.kill());
    sqlx::query("UPDATE products SET price_cents = 1 WHERE id = 1")
        .execute(&db.pool)
        .await
        .unwrap();
    let missed = caught_up_within(&feed).await.unwrap_err();
    assert!(missed.is_cache(), "{missed}");
    assert!(feed.stats().cache_failures >= 2, "{:?}", feed.stats());

    // Redis is back (empty); an old row is cached again meanwhile, as a
    // reader that loaded it before the update could do.
    tokio::task::block_in_place(|| server.restart());
    // The cache reconnects in the background, with no signal to wait on:
    // poll it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.delete_cached_data("probe").await.is_err() {
        assert!(Instant::now() < deadline, "the cache did not reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cache.cache_model(&products[0]).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap().as_ref(),
        Some(&products[0]),
        "a stale entry is back"
    );
    // The bump still owed is retried on the next marker: nothing stale.
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert!(feed.stats().generation_bumps >= 1);
    feed.shutdown().await;
}
