//! `get_or_load_model`: the guarded read-through for models. A load that
//! read a row before a committed write (and its invalidation) never leaves
//! the old row cached — the model's own row, and a related row it embeds —
//! and with leases off (no guards) the same race does leave it, so these
//! tests can fail. The "database" is a map; the races are held open with
//! signals, never sleeps. On both stores.

mod common;

use std::sync::atomic::Ordering;

use common::catalog::{Db, held_load, load};
use common::models::*;
use common::{Fixture, on_both_stores};
use larder::{Cache, Error, ErrorKind};

on_both_stores!(
    a_load_fills_and_the_next_read_is_a_hit,
    an_absent_row_is_not_cached,
    a_failed_load_reaches_its_caller_and_is_not_cached,
    a_load_that_raced_a_save_of_its_row_is_not_stored,
    a_load_that_raced_a_save_of_its_row_is_stored_with_leases_off,
    a_load_that_raced_a_save_of_an_embedded_row_is_not_stored,
    a_load_that_raced_a_save_of_an_embedded_row_is_stored_with_leases_off,
    a_save_of_an_unrelated_row_does_not_cost_the_fill,
);

async fn a_load_fills_and_the_next_read_is_a_hit(fixture: Fixture) {
    let cache = fixture.cache().await;
    let db = Db::with(&[(1, 3)]);
    assert_eq!(load(&cache, &db, 1).await, db.product(1));
    let loads = db.loads.load(Ordering::SeqCst);
    // The excluded field was not stored; the rest comes back from the cache.
    assert_eq!(load(&cache, &db, 1).await, Some(cached(1, 3)));
    assert_eq!(db.loads.load(Ordering::SeqCst), loads);
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(1, 3))
    );
    // Invalidating the embedded category misses it; the next read loads.
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    assert_eq!(load(&cache, &db, 1).await, db.product(1));
    assert_eq!(db.loads.load(Ordering::SeqCst), loads + 2);
}

async fn an_absent_row_is_not_cached(fixture: Fixture) {
    let cache = fixture.cache().await;
    let db = Db::default();
    assert_eq!(load(&cache, &db, 7).await, None);
    assert_eq!(load(&cache, &db, 7).await, None);
    assert_eq!(db.loads.load(Ordering::SeqCst), 2);
    assert!(raw_bytes(&cache, "product:7").await.is_none());
}

async fn a_failed_load_reaches_its_caller_and_is_not_cached(fixture: Fixture) {
    let cache = fixture.cache().await;
    let err = cache
        .get_or_load_model::<Product, Error, _, _>(1, || async {
            Err(Error::new(ErrorKind::Origin, "database down"))
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("database down"), "{err}");
    let db = Db::with(&[(1, 3)]);
    assert_eq!(load(&cache, &db, 1).await, db.product(1));
}

/// The race on the product's own row: its load reads the old row, the row
/// is saved and invalidated (after commit), then the load finishes.
async fn race_on_own_row(cache: &Cache) -> Option<Product> {
    let db = Db::with(&[(1, 3)]);
    let (read, release, task) = held_load(cache, &db, 1);
    read.await.unwrap();
    db.rename_product(1, "Renamed");
    cache.invalidate_model_cache_id::<Product>(1).await.unwrap();
    release.send(()).unwrap();
    // The caller gets what it read.
    assert_eq!(task.await.unwrap().unwrap().name, "Product 1");
    cache.get_cached_model::<Product>(1).await.unwrap()
}

async fn a_load_that_raced_a_save_of_its_row_is_not_stored(fixture: Fixture) {
    let cache = fixture.cache().await;
    assert_eq!(race_on_own_row(&cache).await, None);
}

async fn a_load_that_raced_a_save_of_its_row_is_stored_with_leases_off(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.leases(false)).await;
    let stale = race_on_own_row(&cache).await.expect("no guard: stored");
    assert_eq!(stale.name, "Product 1");
}

/// The race on an embedded row: a product's load reads its category, the
/// category is saved and invalidated, then the load finishes.
async fn race_on_embedded_row(cache: &Cache) -> Option<Product> {
    let db = Db::with(&[(1, 3)]);
    let (read, release, task) = held_load(cache, &db, 1);
    read.await.unwrap();
    db.rename_category(3, "Renamed");
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    release.send(()).unwrap();
    assert_eq!(task.await.unwrap().unwrap().category.name, "Category 3");
    cache.get_cached_model::<Product>(1).await.unwrap()
}

async fn a_load_that_raced_a_save_of_an_embedded_row_is_not_stored(fixture: Fixture) {
    let cache = fixture.cache().await;
    assert_eq!(race_on_embedded_row(&cache).await, None);
    // A load that begins after the invalidation stores the new row. (One
    // that begins within the millisecond the invalidation was in may not:
    // Redis dates the grant to the millisecond, erring on the safe side.)
    let db = Db::with(&[(1, 3)]);
    db.rename_category(3, "Renamed");
    for _ in 0..10_000 {
        assert_eq!(load(&cache, &db, 1).await.unwrap().category.name, "Renamed");
        if raw_bytes(&cache, "product:1").await.is_some() {
            break;
        }
    }
    assert_eq!(
        cache
            .get_cached_model::<Product>(1)
            .await
            .unwrap()
            .unwrap()
            .category
            .name,
        "Renamed"
    );
}

async fn a_load_that_raced_a_save_of_an_embedded_row_is_stored_with_leases_off(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.leases(false)).await;
    let stale = race_on_embedded_row(&cache)
        .await
        .expect("no guard: stored");
    assert_eq!(stale.category.name, "Category 3");
}

async fn a_save_of_an_unrelated_row_does_not_cost_the_fill(fixture: Fixture) {
    let cache = fixture.cache().await;
    let db = Db::with(&[(1, 3), (2, 4)]);
    let (read, release, task) = held_load(&cache, &db, 1);
    read.await.unwrap();
    // Another product: neither this key's lease nor a related guard.
    cache.invalidate_model_cache_id::<Product>(2).await.unwrap();
    release.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(1, 3))
    );
}

/// Round trips of a hit and of a miss, counted by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_costs_what_get_cached_model_costs() {
    let fixture = Fixture::redis();
    let server = fixture.server().unwrap();
    let cache = fixture.cache().await;
    let db = Db::with(&[(1, 3)]);
    load(&cache, &db, 1).await;
    load(&cache, &db, 1).await; // the script is loaded
    let mut conn = common::raw(server).await;
    let calls = async |conn: &mut ::redis::aio::MultiplexedConnection| {
        let mut out = Vec::new();
        for command in ["get", "mget", "evalsha", "eval"] {
            out.push(common::command_calls(conn, command).await);
        }
        out
    };
    let before = calls(&mut conn).await;
    assert_eq!(load(&cache, &db, 1).await, Some(cached(1, 3)));
    let after = calls(&mut conn).await;
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // One round trip: the script that reads the entry and its stamps (its
    // three GETs inside count as GETs), no MGET.
    assert_eq!(delta, [3, 0, 1, 0]);
}
