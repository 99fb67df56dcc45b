//! The change feed against a bulk write that bypasses every repository:
//! `UPDATE products SET price_cents = price_cents * 11 / 10` on 10,000
//! rows leaves no stale entry. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod change_feed_support;

use std::time::Instant;

use change_feed_support::*;
use larder_sqlx::change_feed::ChangeFeed;
use larder_test_support::RedisServer;

const PRODUCTS: i64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_update_of_10000_rows_in_plain_sql_leaves_no_stale_entry() {
    let Some(url) = database_url("a_bulk_update_of_10000_rows_in_plain_sql_leaves_no_stale_entry")
    else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(10, PRODUCTS).await;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .watch::<Category>("categories")
        .start()
        .await
        .expect("the feed starts");

    let before = db.products().await;
    assert_eq!(before.len(), PRODUCTS as usize);
    cache_all(&cache, &before).await;
    let ids: Vec<i64> = before.iter().map(|p| p.id).collect();
    let cached = cache.get_cached_models::<Product>(&ids).await.unwrap();
    assert!(
        cached
            .iter()
            .zip(&before)
            .all(|(c, b)| c.as_ref() == Some(b)),
        "every product is cached before the update"
    );
    let stats_before = feed.stats();

    // Outside any repository, as psql or another service would.
    let updated = sqlx::query("UPDATE products SET price_cents = price_cents * 11 / 10")
        .execute(&db.pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, PRODUCTS as u64);
    let started = Instant::now();
    caught_up_within(&feed).await.expect("the feed catches up");
    let took = started.elapsed();
    let stats = feed.stats();
    eprintln!(
        "invalidating {PRODUCTS} products through the change feed took {took:?} \
         ({} notifications, {} invalidations)",
        stats.notifications - stats_before.notifications,
        stats.invalidations - stats_before.invalidations,
    );
    assert!(stats.invalidations - stats_before.invalidations >= PRODUCTS as u64);

    // Every read afterwards sees the new price: a miss (loaded from the
    // database on the next read) or the new row — never the old one.
    let after = db.products().await;
    let cached = cache.get_cached_models::<Product>(&ids).await.unwrap();
    let mut misses = 0;
    for ((cached, old), new) in cached.iter().zip(&before).zip(&after) {
        assert_eq!(new.price_cents, old.price_cents * 11 / 10);
        match cached {
            None => misses += 1,
            Some(cached) => assert_eq!(cached, new, "a stale entry for product {}", old.id),
        }
    }
    assert_eq!(
        misses, PRODUCTS,
        "every updated product's entry was invalidated"
    );

    // Reloaded on the miss and cached again, the new rows are hits.
    cache_all(&cache, &after).await;
    let cached = cache.get_cached_models::<Product>(&ids).await.unwrap();
    assert!(
        cached
            .iter()
            .zip(&after)
            .all(|(c, a)| c.as_ref() == Some(a))
    );
    feed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_changed_deleted_inserted_or_truncated_are_invalidated() {
    let Some(url) = database_url("ids_changed_deleted_inserted_or_truncated_are_invalidated")
    else {
        return;
    };
    let db = TestDb::create(&url).await;
    db.shop(2, 10).await;
    let server = RedisServer::spawn();
    let cache = redis_cache(&server).await;
    let feed = ChangeFeed::builder(cache.clone(), db.pool.clone())
        .channel(db.channel())
        .watch::<Product>("products")
        .start()
        .await
        .unwrap();
    let products = db.products().await;
    cache_all(&cache, &products).await;
    let stats = feed.stats();

    // An UPDATE that changes an id announces the old id as well as the new.
    sqlx::query("UPDATE products SET id = 1001 WHERE id = 1")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM products WHERE id = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    // An INSERT of an id that was cached (say, by a reader that loaded a
    // row since deleted and re-created).
    sqlx::query("DELETE FROM products WHERE id = 3")
        .execute(&db.pool)
        .await
        .unwrap();
    cache.cache_model(&products[2]).await.unwrap();
    sqlx::query("INSERT INTO products VALUES (3, 'Product 3 again', 1, 1)")
        .execute(&db.pool)
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();
    let cached = cache
        .get_cached_models::<Product>(&[1, 2, 3, 4])
        .await
        .unwrap();
    assert_eq!(cached[..3], [None, None, None]);
    assert_eq!(
        cached[3].as_ref(),
        Some(&products[3]),
        "untouched rows stay"
    );
    // Old and new id of the UPDATE, the DELETEs, the INSERT.
    assert_eq!(feed.stats().invalidations - stats.invalidations, 5);

    // A TRUNCATE names no rows: the whole model goes.
    let bumps = feed.stats().generation_bumps;
    sqlx::query("TRUNCATE products")
        .execute(&db.pool)
        .await
        .unwrap();
    caught_up_within(&feed).await.unwrap();
    assert_eq!(feed.stats().generation_bumps, bumps + 1);
    assert_eq!(cache.get_cached_model::<Product>(4).await.unwrap(), None);
    feed.shutdown().await;
}
