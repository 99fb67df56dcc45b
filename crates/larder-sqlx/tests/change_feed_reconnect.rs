//! The change feed when its connection is killed, and for entries that
//! embed a changed row. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod change_feed_support;

use std::time::Duration;

use change_feed_support::*;
use larder_sqlx::change_feed::ChangeFeed;
use larder_test_support::RedisServer;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_reconnects_and_leaves_no_stale_entry() {
    let Some(url) = database_url("a_killed_listener_reconnects_and_leaves_no_stale_entry") else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(3, 100).await;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    // The feed connects as a role of its own, so the test can keep it from
    // reconnecting while rows change.
    let (role, feed_pool) = db.login_role().await;
    let application_name = db.schema.clone();
    let feed = ChangeFeed::builder(cache.clone(), feed_pool)
        .channel(db.channel())
        .application_name(&application_name)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .watch::<Product>("products")
        .watch::<Category>("categories")
        .start()
        .await
        .unwrap();
    let old_pids = listeners(&db, &application_name).await;
    assert_eq!(
        old_pids.len(),
        1,
        "the listener is named in pg_stat_activity"
    );

    let products = db.products().await;
    cache_all(&cache, &products).await;
    cache_all(&cache, &db.categories().await).await;
    let stats = feed.stats();

    // The listener's backend killed (the timeout makes it wait for the
    // exit), and no way back until the rows have changed.
    db.set_login(&role, false).await;
    let killed: bool = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&application_name)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(killed, "the listener's backend is terminated");
    assert!(listeners(&db, &application_name).await.is_empty());
    sqlx::query("UPDATE products SET price_cents = price_cents + 1 WHERE id <= 50")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE categories SET name = 'Renamed' WHERE id = 3")
        .execute(&db.pool)
        .await
        .unwrap();
    db.set_login(&role, true).await;

    // Caught up means reconnected and resynchronised: the marker can only
    // come back through a new connection.
    caught_up_within(&feed).await.unwrap();
    let now = feed.stats();
    eprintln!("after the reconnect: {now:?}");
    assert_eq!(now.reconnects, stats.reconnects + 1);
    assert!(
        now.connect_failures > stats.connect_failures,
        "logins were refused: {now:?}"
    );
    assert_eq!(
        now.invalidations, stats.invalidations,
        "the updates' notifications were lost with the connection"
    );
    assert!(
        now.generation_bumps >= stats.generation_bumps + 2,
        "both watched models were bumped on reconnect: {now:?}"
    );
    let new_pids = listeners(&db, &application_name).await;
    assert_eq!(new_pids.len(), 1, "listening again");
    assert_ne!(new_pids, old_pids);

    // No stale entry: every product and category read is a miss or the
    // database's row.
    let after = db.products().await;
    let ids: Vec<i64> = after.iter().map(|p| p.id).collect();
    let cached = cache.get_cached_models::<Product>(&ids).await.unwrap();
    for (cached, new) in cached.iter().zip(&after) {
        if let Some(cached) = cached {
            assert_eq!(cached, new, "a stale entry for product {}", new.id);
        }
    }
    assert!(cached[..50].iter().all(Option::is_none));
    assert_eq!(cache.get_cached_model::<Category>(3).await.unwrap(), None);

    // And the new connection carries changes again.
    cache_all(&cache, &after).await;
    sqlx::query("UPDATE products SET price_cents = 1 WHERE id = 77")
        .execute(&db.pool)
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(77).await.unwrap(), None);
    assert_eq!(
        cache
            .get_cached_model::<Product>(78)
            .await
            .unwrap()
            .as_ref(),
        Some(&after[77])
    );
    feed.shutdown().await;
}

/// The backends named `application_name`.
async fn listeners(db: &TestDb, application_name: &str) -> Vec<i32> {
    sqlx::query("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i32, _>("pid"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_updated_in_plain_sql_misses_the_products_embedding_it() {
    let Some(url) =
        database_url("a_category_updated_in_plain_sql_misses_the_products_embedding_it")
    else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(3, 30).await;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .watch::<Category>("categories")
        .start()
        .await
        .unwrap();
    let products = db.products().await;
    cache_all(&cache, &products).await;
    cache_all(&cache, &db.categories().await).await;

    sqlx::query("UPDATE categories SET name = 'Renamed' WHERE id = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();

    assert_eq!(cache.get_cached_model::<Category>(2).await.unwrap(), None);
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let cached = cache.get_cached_models::<Product>(&ids).await.unwrap();
    for (cached, product) in cached.iter().zip(&products) {
        if product.category.id == 2 {
            assert_eq!(cached, &None, "product {} embeds category 2", product.id);
        } else {
            assert_eq!(cached.as_ref(), Some(product), "product {}", product.id);
        }
    }
    assert!(products.iter().any(|p| p.category.id == 2));
    feed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_feed_stops_its_listener() {
    let Some(url) = database_url("dropping_the_feed_stops_its_listener") else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(1, 3).await;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .start()
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();
    let products = db.products().await;
    drop(feed);
    cache_all(&cache, &products).await;
    // Nobody listens any more: the entry outlives the update. (What the
    // reconnect bump exists for.)
    sqlx::query("UPDATE products SET price_cents = 1 WHERE id = 1")
        .execute(&db.pool)
        .await
        .unwrap();
    let second = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .resync_on_start(false)
        .start()
        .await
        .unwrap();
    caught_up_within(&second).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap().as_ref(),
        Some(&products[0]),
        "the update was missed by a feed that did not resynchronise"
    );
    drop(second);
    let third = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .start()
        .await
        .unwrap();
    assert_eq!(third.stats().generation_bumps, 1, "resynchronised on start");
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    third.shutdown().await;
}
