//! The Django original's §3 and §4 model examples (seed
//! `000_0792b4c7094eaa77.txt`) with a database behind a `CachedRepository`:
//! `get_product_details`, `update_product_price`, automatic invalidation
//! on save, manual invalidation by instance, id, key and pattern, and the
//! global and per-model versions. (`larder`'s `models_django.rs` does
//! the cache's half without a database.)

mod common;

use common::models::{NOTES, Product, ProductV2, cached, category, product};
use common::repos::{Hooked, VersionTwo};
use common::{Fixture, TestDb, on_both_databases};
use larder_sqlx::{CachedRepository, Repository};

on_both_databases!(the_django_original_examples_with_a_repository);

/// §3 `get_product_details(product_id)`: the cache, else the database
/// (and cache it); `None` if there is no such product.
async fn get_product_details<R: Repository<Model = Product>>(
    products: &CachedRepository<R>,
    id: i64,
) -> Option<Product> {
    products.get(id).await.unwrap()
}

/// §3 `update_product_price(product_id, new_price)`: read the row (from
/// the database: a cached copy lacks `internal_notes`), change it, save;
/// the invalidation runs after the commit.
async fn update_product_price<R: Repository<Model = Product>>(
    products: &CachedRepository<R>,
    id: i64,
    price_cents: i64,
) -> bool {
    let mut tx = products.begin().await.unwrap();
    let Some(mut product) = tx.load(products, id).await.unwrap() else {
        return false;
    };
    product.price_cents = price_cents;
    tx.save(products, &product).await.unwrap();
    tx.commit().await.unwrap();
    true
}

async fn the_django_original_examples_with_a_repository<DB: TestDb>(fx: Fixture<DB>) {
    let products = &fx.products;
    let cache = &fx.cache;
    let loads = || fx.product_loads();
    fx.seed(&[category(3)], &[product(1, 3), product(2, 3)])
        .await;

    // §3: a miss reads the database and caches; the next call does not.
    assert_eq!(get_product_details(products, 1).await, Some(product(1, 3)));
    assert_eq!(loads(), 1);
    assert_eq!(
        get_product_details(products, 1).await,
        Some(cached(&product(1, 3)))
    );
    assert_eq!(loads(), 1);

    // §3 / §4 "automatic invalidation": the save invalidates; the next
    // read is the new price; the excluded field survived the update.
    assert!(update_product_price(products, 1, 4999).await);
    assert_eq!(loads(), 2);
    assert_eq!(
        get_product_details(products, 1).await.unwrap().price_cents,
        4999
    );
    assert_eq!(loads(), 3);
    assert_eq!(
        get_product_details(products, 1).await.unwrap().price_cents,
        4999
    );
    assert_eq!(loads(), 3);
    assert_eq!(
        products.load(1).await.unwrap().unwrap().internal_notes,
        NOTES
    );
    assert!(!update_product_price(products, 404, 1).await);
    // A missing row is not cached: each call asks the database.
    let before = loads();
    assert_eq!(get_product_details(products, 404).await, None);
    assert_eq!(get_product_details(products, 404).await, None);
    assert_eq!(loads() - before, 2);

    // §4: invalidate_model_cache(product) — by instance.
    let teapot = get_product_details(products, 1).await.unwrap();
    let before = loads();
    assert!(cache.invalidate_model_cache(&teapot).await.unwrap());
    get_product_details(products, 1).await.unwrap();
    assert_eq!(loads() - before, 1);

    // §4: invalidate_model_cache(Product, 1) — by id.
    assert!(products.invalidate(1).await.unwrap());
    get_product_details(products, 1).await.unwrap();
    assert_eq!(loads() - before, 2);

    // §4: delete_cached_data("product:1") — by key.
    assert!(cache.delete_cached_data("product:1").await.unwrap());
    get_product_details(products, 1).await.unwrap();
    assert_eq!(loads() - before, 3);

    // §4: invalidate_cache_pattern("product:*") — every product.
    get_product_details(products, 2).await.unwrap();
    assert_eq!(loads() - before, 4);
    assert_eq!(
        cache.invalidate_cache_pattern("product:*").await.unwrap(),
        2
    );
    get_product_details(products, 1).await.unwrap();
    get_product_details(products, 2).await.unwrap();
    assert_eq!(loads() - before, 6);

    // §4: invalidate_cache_pattern("user:123:*") — one user's caches, and
    // nothing else (the products stay cached).
    let hour = std::time::Duration::from_secs(3600);
    for key in ["user:123:profile", "user:123:orders", "user:1234:profile"] {
        cache.set(key, &key.to_owned(), hour).await.unwrap();
    }
    assert_eq!(
        cache.invalidate_cache_pattern("user:123:*").await.unwrap(),
        2
    );
    assert_eq!(cache.get::<String>("user:123:profile").await.unwrap(), None);
    assert!(
        cache
            .get::<String>("user:1234:profile")
            .await
            .unwrap()
            .is_some()
    );
    get_product_details(products, 1).await.unwrap();
    assert_eq!(loads() - before, 6);

    // §4: CACHE_VERSION = "1.1" — a deploy with another global version
    // reads none of the old entries, and leaves them to the old build.
    let v11 = fx.cache_with(|config| config.version("1.1")).await;
    let products_v11 = fx.products_on(&v11);
    assert_eq!(
        products_v11.get(1).await.unwrap(),
        Some(product(1, 3).with_price(4999))
    );
    assert_eq!(products_v11.repository().hooks().loads(), 1);
    assert!(products_v11.get(1).await.unwrap().is_some());
    assert_eq!(products_v11.repository().hooks().loads(), 1);
    get_product_details(products, 1).await.unwrap();
    assert_eq!(
        loads() - before,
        6,
        "the old version's entry is still served to the old build"
    );

    // §4: redis_cache_version = "2.0" — the model's version: the entry
    // under `product:1` written by version 1 is a miss for version 2.
    let products_v2 = CachedRepository::new(
        cache.clone(),
        fx.pool.clone(),
        VersionTwo(<DB::Products>::default()),
    );
    let v2: ProductV2 = products_v2.get(1).await.unwrap().unwrap();
    assert_eq!(v2.price_cents, 4999);
    assert_eq!(products_v2.repository().0.hooks().loads(), 1);
    products_v2.get(1).await.unwrap();
    assert_eq!(products_v2.repository().0.hooks().loads(), 1);

    // Every product at once, and what embeds them (the generation).
    products.invalidate_all().await.unwrap();
    assert_eq!(cache.get_cached_model::<ProductV2>(1).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Product>(2).await.unwrap(), None);
}
