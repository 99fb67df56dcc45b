//! The change feed when its connection is killed, and for entries that
//! embed a changed row. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::Fixture;
use common::feed::{cache_all, caught_up_within};
use common::models::{Category, Product, cached};
use larder_sqlx::change_feed::ChangeFeed;
use sqlx::{Postgres, Row};

common::on_postgres!(
    a_killed_listener_reconnects_and_leaves_no_stale_entry,
    a_category_updated_in_plain_sql_misses_the_products_embedding_it,
    dropping_the_feed_stops_its_listener,
);

async fn a_killed_listener_reconnects_and_leaves_no_stale_entry(fx: Fixture<Postgres>) {
    fx.shop(3, 100).await;
    let cache = fx.feed_cache().await;
    // The feed connects as a role of its own, so the test can keep it from
    // reconnecting while rows change.
    let (role, feed_pool) = fx.login_role().await;
    let application_name = fx.channel().to_owned();
    let feed = ChangeFeed::builder(cache.clone(), feed_pool)
        .channel(fx.channel())
        .application_name(&application_name)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .watch::<Product>("products")
        .watch::<Category>("categories")
        .start()
        .await
        .unwrap();
    let old_pids = listeners(&fx, &application_name).await;
    assert_eq!(
        old_pids.len(),
        1,
        "the listener is named in pg_stat_activity"
    );

    let products = fx.all_products().await;
    cache_all(&cache, &products).await;
    cache_all(&cache, &fx.all_categories().await).await;
    let stats = feed.stats();

    // The listener's backend killed (the timeout makes it wait for the
    // exit), and no way back until the rows have changed.
    fx.set_login(&role, false).await;
    let killed: bool = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&application_name)
    .fetch_one(&fx.pool)
    .await
    .unwrap();
    assert!(killed, "the listener's backend is terminated");
    assert!(listeners(&fx, &application_name).await.is_empty());
    fx.execute("UPDATE products SET price_cents = price_cents + 1 WHERE id <= 50")
        .await;
    fx.execute("UPDATE categories SET name = 'Renamed' WHERE id = 3")
        .await;
    fx.set_login(&role, true).await;

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
    let new_pids = listeners(&fx, &application_name).await;
    assert_eq!(new_pids.len(), 1, "listening again");
    assert_ne!(new_pids, old_pids);

    // No stale entry: every product and category read is a miss or the
    // database's row.
    let after = fx.all_products().await;
    let ids: Vec<i64> = after.iter().map(|p| p.id).collect();
    let found = cache.get_cached_models::<Product>(&ids).await.unwrap();
    for (found, new) in found.iter().zip(&after) {
        if let Some(found) = found {
            assert_eq!(found, &cached(new), "a stale entry for product {}", new.id);
        }
    }
    assert!(found[..50].iter().all(Option::is_none));
    assert_eq!(cache.get_cached_model::<Category>(3).await.unwrap(), None);

    // And the new connection carries changes again.
    cache_all(&cache, &after).await;
    fx.execute("UPDATE products SET price_cents = 1 WHERE id = 77")
        .await;
    caught_up_within(&feed).await.unwrap();
    assert_eq!(cache.get_cached_model::<Product>(77).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_model::<Product>(78).await.unwrap(),
        Some(cached(&after[77]))
    );
    feed.shutdown().await;
}

/// The backends named `application_name`.
async fn listeners(fx: &Fixture<Postgres>, application_name: &str) -> Vec<i32> {
    sqlx::query("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(application_name)
        .fetch_all(&fx.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i32, _>("pid"))
        .collect()
}

async fn a_category_updated_in_plain_sql_misses_the_products_embedding_it(fx: Fixture<Postgres>) {
    fx.shop(3, 30).await;
    let cache = fx.feed_cache().await;
    let feed = fx.shop_feed(&cache).start().await.unwrap();
    let products = fx.all_products().await;
    cache_all(&cache, &products).await;
    cache_all(&cache, &fx.all_categories().await).await;

    fx.execute("UPDATE categories SET name = 'Renamed' WHERE id = 2")
        .await;
    caught_up_within(&feed).await.unwrap();

    assert_eq!(cache.get_cached_model::<Category>(2).await.unwrap(), None);
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let found = cache.get_cached_models::<Product>(&ids).await.unwrap();
    for (found, product) in found.iter().zip(&products) {
        if product.category.id == 2 {
            assert_eq!(found, &None, "product {} embeds category 2", product.id);
        } else {
            assert_eq!(found, &Some(cached(product)), "product {}", product.id);
        }
    }
    assert!(products.iter().any(|p| p.category.id == 2));
    feed.shutdown().await;
}

async fn dropping_the_feed_stops_its_listener(fx: Fixture<Postgres>) {
    fx.shop(1, 3).await;
    let cache = fx.feed_cache().await;
    let feed = fx.products_feed(&cache).start().await.unwrap();
    caught_up_within(&feed).await.unwrap();
    let products = fx.all_products().await;
    drop(feed);
    cache_all(&cache, &products).await;
    // Nobody listens any more: the entry outlives the update. (What the
    // reconnect bump exists for.)
    fx.execute("UPDATE products SET price_cents = 1 WHERE id = 1")
        .await;
    let second = fx
        .products_feed(&cache)
        .resync_on_start(false)
        .start()
        .await
        .unwrap();
    caught_up_within(&second).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(&products[0])),
        "the update was missed by a feed that did not resynchronise"
    );
    drop(second);
    let third = fx.products_feed(&cache).start().await.unwrap();
    assert_eq!(third.stats().generation_bumps, 1, "resynchronised on start");
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    third.shutdown().await;
}
