//! The stale-set race, made deterministic with signals: a read-through
//! whose load read the old row is held after its query while a save
//! commits and invalidates, then released. With the cache's guards (a
//! lease and the related rows' stamps taken before the load) the old row
//! is never left cached; with them off (`leases(false)`) it is, which is
//! what shows these tests can fail.

mod common;

use common::models::{Category, Product, cached, category, product};
use common::{Fixture, TestDb, on_both_databases};
use larder::Cache;

on_both_databases!(
    a_fill_that_read_the_old_row_is_never_left_cached,
    without_the_guard_a_fill_that_read_the_old_row_is_left_cached,
    a_fill_that_embedded_the_old_category_is_never_left_cached,
    without_the_guard_a_fill_that_embedded_the_old_category_is_left_cached,
);

async fn cache<DB: TestDb>(fx: &Fixture<DB>, guarded: bool) -> Cache {
    if guarded {
        fx.cache.clone()
    } else {
        fx.cache_with(|config| config.leases(false)).await
    }
}

/// Product 1's load reads its row, is held while `write` commits (and
/// invalidates), then finishes; returns what is cached afterwards.
async fn race<DB, W>(fx: &Fixture<DB>, cache: &Cache, write: W) -> Option<Product>
where
    DB: TestDb,
    W: AsyncFnOnce(),
{
    let teapot = product(1, 3);
    fx.seed(&[category(3)], std::slice::from_ref(&teapot)).await;
    let products = fx.products_on(cache);
    let held = common::repos::Hooked::hooks(products.repository()).hold_next_load();
    let reader = tokio::spawn({
        let products = products.clone();
        async move { products.get(1).await.unwrap() }
    });
    held.loaded.await.unwrap(); // the load has read the old row
    write().await; // committed and invalidated meanwhile
    held.release.send(()).unwrap();
    // The reader returns what it read: the old row was current when it began.
    assert_eq!(reader.await.unwrap(), Some(teapot));
    cache.get_cached_model::<Product>(1).await.unwrap()
}

async fn reprice<DB: TestDb>(fx: &Fixture<DB>, guarded: bool) -> Option<Product> {
    let cache = cache(fx, guarded).await;
    let products = fx.products_on(&cache);
    race(fx, &cache, async || {
        products
            .save(&Product {
                price_cents: 2499,
                ..product(1, 3)
            })
            .await
            .unwrap();
    })
    .await
}

async fn rename_category<DB: TestDb>(fx: &Fixture<DB>, guarded: bool) -> Option<Product> {
    let cache = cache(fx, guarded).await;
    let categories = fx.categories_on(&cache);
    race(fx, &cache, async || {
        categories
            .save(&Category {
                id: 3,
                name: "Cookware".into(),
            })
            .await
            .unwrap();
    })
    .await
}

async fn a_fill_that_read_the_old_row_is_never_left_cached<DB: TestDb>(fx: Fixture<DB>) {
    assert_eq!(reprice(&fx, true).await, None);
    let now = fx.products.get(1).await.unwrap().unwrap();
    assert_eq!(now.price_cents, 2499);
}

async fn without_the_guard_a_fill_that_read_the_old_row_is_left_cached<DB: TestDb>(
    fx: Fixture<DB>,
) {
    assert_eq!(reprice(&fx, false).await, Some(cached(&product(1, 3))));
}

async fn a_fill_that_embedded_the_old_category_is_never_left_cached<DB: TestDb>(fx: Fixture<DB>) {
    assert_eq!(rename_category(&fx, true).await, None);
    let now = fx.products.get(1).await.unwrap().unwrap();
    assert_eq!(now.category.name, "Cookware");
}

async fn without_the_guard_a_fill_that_embedded_the_old_category_is_left_cached<DB: TestDb>(
    fx: Fixture<DB>,
) {
    let stale = rename_category(&fx, false).await.expect("the stale fill");
    assert_eq!(stale.category.name, "Category 3");
}
