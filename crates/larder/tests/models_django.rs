//! The Django original's §3 and §4 model examples, on both stores, with a
//! small in-memory database that counts its reads.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::models::*;
use common::{Fixture, on_both_stores};
use larder::Cache;

on_both_stores!(the_django_original_examples,);

/// A database of products that counts its reads.
#[derive(Default)]
struct Database {
    products: Mutex<HashMap<u64, Product>>,
    reads: AtomicUsize,
}

impl Database {
    fn get(&self, id: u64) -> Option<Product> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.products.lock().unwrap().get(&id).cloned()
    }

    fn save(&self, product: Product) {
        self.products.lock().unwrap().insert(product.id, product);
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// `get_product_details(product_id)` of §3.
async fn get_product_details(cache: &Cache, db: &Database, id: u64) -> Option<Product> {
    if let Some(product) = cache.get_cached_model::<Product>(id).await.unwrap() {
        return Some(product);
    }
    let product = db.get(id)?;
    cache.cache_model(&product).await.unwrap();
    Some(product)
}

/// `update_product_price(product_id, new_price)` of §3.
async fn update_product_price(cache: &Cache, db: &Database, id: u64, price_cents: u64) -> bool {
    let Some(mut product) = db.get(id) else {
        return false;
    };
    product.price_cents = price_cents;
    db.save(product.clone());
    // After the write commits.
    cache.invalidate_model_cache(&product).await.unwrap();
    true
}

async fn the_django_original_examples(fixture: Fixture) {
    let cache = fixture.cache().await;
    let db = Database::default();
    db.save(product(1, 3));
    db.save(product(2, 3));

    // §3: a miss reads the database and caches; the next call does not.
    assert_eq!(
        get_product_details(&cache, &db, 1).await,
        Some(product(1, 3))
    );
    assert_eq!(db.reads(), 1);
    assert_eq!(
        get_product_details(&cache, &db, 1).await,
        Some(cached(1, 3))
    );
    assert_eq!(db.reads(), 1);

    // §3: an update invalidates; the next read sees the new price.
    assert!(update_product_price(&cache, &db, 1, 4999).await);
    assert_eq!(db.reads(), 2);
    let details = get_product_details(&cache, &db, 1).await.unwrap();
    assert_eq!((details.price_cents, db.reads()), (4999, 3));
    assert_eq!(
        get_product_details(&cache, &db, 1)
            .await
            .unwrap()
            .price_cents,
        4999
    );
    assert_eq!(db.reads(), 3);
    assert!(!update_product_price(&cache, &db, 404, 1).await);

    // §4: invalidate_model_cache(Product, 1).
    assert!(cache.invalidate_model_cache_id::<Product>(1).await.unwrap());
    get_product_details(&cache, &db, 1).await.unwrap();
    assert_eq!(db.reads(), 5);

    // §4: delete_cached_data("product:1").
    assert!(cache.delete_cached_data("product:1").await.unwrap());
    get_product_details(&cache, &db, 1).await.unwrap();
    assert_eq!(db.reads(), 6);

    // §4: invalidate_cache_pattern("product:*") removes every product.
    get_product_details(&cache, &db, 2).await.unwrap();
    assert_eq!(db.reads(), 7);
    assert_eq!(
        cache.invalidate_cache_pattern("product:*").await.unwrap(),
        2
    );
    get_product_details(&cache, &db, 1).await.unwrap();
    get_product_details(&cache, &db, 2).await.unwrap();
    assert_eq!(db.reads(), 9);

    // A missing row is not cached: each call asks the database.
    assert_eq!(get_product_details(&cache, &db, 404).await, None);
    assert_eq!(get_product_details(&cache, &db, 404).await, None);
    assert_eq!(db.reads(), 11);
}
