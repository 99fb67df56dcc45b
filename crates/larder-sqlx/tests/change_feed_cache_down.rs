//! The change feed while Redis is down: the invalidations it cannot apply
//! turn into generation bumps it retries, and `caught_up` says so until
//! they land. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod common;

use std::time::{Duration, Instant};

use common::Fixture;
use common::feed::{cache_all, caught_up_within};
use common::models::{Product, cached};
use sqlx::Postgres;

common::on_postgres!(changes_the_cache_missed_are_bumped_once_redis_is_back);

async fn changes_the_cache_missed_are_bumped_once_redis_is_back(mut fx: Fixture<Postgres>) {
    fx.shop(1, 5).await;
    // No circuit breaker in the way: every call reaches the server.
    let cache = fx
        .cache_with(|config| config.breaker_failures(u32::MAX))
        .await;
    let feed = fx
        .products_feed(&cache)
        .resync_on_start(false)
        .start()
        .await
        .unwrap();
    let products = fx.all_products().await;
    cache_all(&cache, &products).await;

    tokio::task::block_in_place(|| fx.kill_redis());
    fx.execute("UPDATE products SET price_cents = 1 WHERE id = 1")
        .await;
    let missed = caught_up_within(&feed).await.unwrap_err();
    assert!(missed.is_cache(), "{missed}");
    assert!(feed.stats().cache_failures >= 2, "{:?}", feed.stats());

    // Redis is back (empty); an old row is cached again meanwhile, as a
    // reader that loaded it before the update could do.
    tokio::task::block_in_place(|| fx.restart_redis());
    // The cache reconnects in the background, with no signal to wait on:
    // poll it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.delete_cached_data("probe").await.is_err() {
        assert!(Instant::now() < deadline, "the cache did not reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cache.cache_model(&products[0]).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(&products[0])),
        "a stale entry is back"
    );
    // The bump still owed is retried on the next marker: nothing stale.
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert!(feed.stats().generation_bumps >= 1);
    feed.shutdown().await;
}
