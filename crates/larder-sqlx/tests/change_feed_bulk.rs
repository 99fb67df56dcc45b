//! The change feed against a bulk write that bypasses every repository:
//! `UPDATE products SET price_cents = price_cents * 11 / 10` on 10,000
//! rows leaves no stale entry. Needs `DATABASE_URL` (PostgreSQL).

#![cfg(feature = "postgres")]

mod common;

use std::time::Instant;

use common::Fixture;
use common::feed::{cache_all, caught_up_within};
use common::models::{Product, cached};
use sqlx::Postgres;

const PRODUCTS: i64 = 10_000;

common::on_postgres!(
    a_bulk_update_of_10000_rows_in_plain_sql_leaves_no_stale_entry,
    ids_changed_deleted_inserted_or_truncated_are_invalidated,
);

/// Whether every product of `rows` is cached, as the cache holds it.
async fn all_cached(cache: &larder::Cache, rows: &[Product]) -> bool {
    let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
    let found = cache.get_cached_models::<Product>(&ids).await.unwrap();
    found
        .iter()
        .zip(rows)
        .all(|(found, row)| found.as_ref() == Some(&cached(row)))
}

async fn a_bulk_update_of_10000_rows_in_plain_sql_leaves_no_stale_entry(fx: Fixture<Postgres>) {
    fx.shop(10, PRODUCTS).await;
    let cache = fx.feed_cache().await;
    let feed = fx.shop_feed(&cache).start().await.expect("the feed starts");

    let before = fx.all_products().await;
    assert_eq!(before.len(), PRODUCTS as usize);
    cache_all(&cache, &before).await;
    assert!(
        all_cached(&cache, &before).await,
        "every product is cached before the update"
    );
    let ids: Vec<i64> = before.iter().map(|p| p.id).collect();
    let stats_before = feed.stats();

    // Outside any repository, as psql or another service would.
    let updated = sqlx::query("UPDATE products SET price_cents = price_cents * 11 / 10")
        .execute(&fx.pool)
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
    let after = fx.all_products().await;
    let found = cache.get_cached_models::<Product>(&ids).await.unwrap();
    let mut misses = 0;
    for ((found, old), new) in found.iter().zip(&before).zip(&after) {
        assert_eq!(new.price_cents, old.price_cents * 11 / 10);
        match found {
            None => misses += 1,
            Some(found) => assert_eq!(found, &cached(new), "a stale entry for product {}", old.id),
        }
    }
    assert_eq!(
        misses, PRODUCTS,
        "every updated product's entry was invalidated"
    );

    // Reloaded on the miss and cached again, the new rows are hits.
    cache_all(&cache, &after).await;
    assert!(all_cached(&cache, &after).await);
    feed.shutdown().await;
}

async fn ids_changed_deleted_inserted_or_truncated_are_invalidated(fx: Fixture<Postgres>) {
    fx.shop(2, 10).await;
    let cache = fx.feed_cache().await;
    let feed = fx.products_feed(&cache).start().await.unwrap();
    let products = fx.all_products().await;
    cache_all(&cache, &products).await;
    let stats = feed.stats();

    // An UPDATE that changes an id announces the old id as well as the new.
    fx.execute("UPDATE products SET id = 1001 WHERE id = 1")
        .await;
    fx.execute("DELETE FROM products WHERE id = 2").await;
    // An INSERT of an id that was cached (say, by a reader that loaded a
    // row since deleted and re-created).
    fx.execute("DELETE FROM products WHERE id = 3").await;
    cache.cache_model(&products[2]).await.unwrap();
    fx.execute("INSERT INTO products VALUES (3, 'Product 3 again', 1, 1, '')")
        .await;
    caught_up_within(&feed).await.unwrap();
    let found = cache
        .get_cached_models::<Product>(&[1, 2, 3, 4])
        .await
        .unwrap();
    assert_eq!(found[..3], [None, None, None]);
    assert_eq!(found[3], Some(cached(&products[3])), "untouched rows stay");
    // Old and new id of the UPDATE, the DELETEs, the INSERT.
    assert_eq!(feed.stats().invalidations - stats.invalidations, 5);

    // A TRUNCATE names no rows: the whole model goes.
    let bumps = feed.stats().generation_bumps;
    fx.execute("TRUNCATE products").await;
    caught_up_within(&feed).await.unwrap();
    assert_eq!(feed.stats().generation_bumps, bumps + 1);
    assert_eq!(cache.get_cached_model::<Product>(4).await.unwrap(), None);
    feed.shutdown().await;
}
