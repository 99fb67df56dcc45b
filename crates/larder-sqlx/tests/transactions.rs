//! Transactions: invalidation after the commit only, nothing on rollback
//! or drop, and a transaction that wrote reads its own rows.

mod common;

use common::models::{Product, cached, category, product};
use common::{Fixture, TestDb, on_both_databases};
use larder_sqlx::Repository;

on_both_databases!(
    a_rolled_back_or_dropped_transaction_leaves_the_cache_alone,
    a_transaction_that_wrote_reads_its_own_rows_never_cached_ones,
    reads_before_a_write_use_the_cache_but_never_fill_it,
);

/// Product `id` as the database holds it now (no cache, no transaction).
async fn in_database<DB: TestDb>(fx: &Fixture<DB>, id: i64) -> Option<Product> {
    let mut conn = fx.pool.acquire().await.unwrap();
    fx.products.repository().load(&mut conn, &id).await.unwrap()
}

async fn cached_now<DB: TestDb>(fx: &Fixture<DB>, id: i64) -> Option<Product> {
    fx.cache.get_cached_model::<Product>(id).await.unwrap()
}

async fn a_rolled_back_or_dropped_transaction_leaves_the_cache_alone<DB: TestDb>(fx: Fixture<DB>) {
    let teapot = product(1, 3);
    let kettle = product(2, 3);
    fx.seed(&[category(3)], &[teapot.clone(), kettle.clone()])
        .await;
    fx.products.get_many(&[1, 2]).await.unwrap();
    let loads = fx.product_loads();

    // Rolled back.
    let mut tx = fx.products.begin().await.unwrap();
    tx.save(
        &fx.products,
        &Product {
            price_cents: 1,
            ..teapot.clone()
        },
    )
    .await
    .unwrap();
    assert!(tx.delete(&fx.products, 2).await.unwrap());
    tx.save(&fx.categories, &category(3)).await.unwrap();
    assert_eq!(
        tx.pending_invalidations(),
        ["product:1", "product:2", "category:3"]
    );
    tx.rollback().await.unwrap();
    assert_eq!(cached_now(&fx, 1).await, Some(cached(&teapot)));
    assert_eq!(cached_now(&fx, 2).await, Some(cached(&kettle)));

    // Dropped uncommitted (an early return, a `?`, a panic).
    {
        let mut tx = fx.products.begin().await.unwrap();
        tx.save(
            &fx.products,
            &Product {
                price_cents: 2,
                ..teapot.clone()
            },
        )
        .await
        .unwrap();
        assert!(tx.delete(&fx.products, 2).await.unwrap());
    }
    assert_eq!(cached_now(&fx, 1).await, Some(cached(&teapot)));
    assert_eq!(cached_now(&fx, 2).await, Some(cached(&kettle)));

    // Nothing reached the database either, and reads are still hits.
    assert_eq!(in_database(&fx, 1).await, Some(teapot.clone()));
    assert_eq!(in_database(&fx, 2).await, Some(kettle));
    assert_eq!(fx.products.get(1).await.unwrap(), Some(cached(&teapot)));
    assert_eq!(
        fx.product_loads() - loads,
        2,
        "only the two direct loads above"
    );
}

async fn a_transaction_that_wrote_reads_its_own_rows_never_cached_ones<DB: TestDb>(
    fx: Fixture<DB>,
) {
    let teapot = product(1, 3);
    let kettle = product(2, 3);
    fx.seed(&[category(3)], &[teapot.clone(), kettle.clone()])
        .await;
    fx.products.get_many(&[1, 2]).await.unwrap();

    let mut tx = fx.products.begin().await.unwrap();
    let repriced = Product {
        price_cents: 300,
        ..teapot.clone()
    };
    tx.save(&fx.products, &repriced).await.unwrap();
    assert!(tx.has_written());

    // Its own row, not the cached one, which stays until the commit.
    assert_eq!(
        tx.get(&fx.products, 1).await.unwrap(),
        Some(repriced.clone())
    );
    assert_eq!(cached_now(&fx, 1).await, Some(cached(&teapot)));
    assert_eq!(fx.products.get(1).await.unwrap(), Some(cached(&teapot)));

    // A row it did not write is read from the database too (it carries
    // the excluded field, which no cached row has).
    assert_eq!(tx.get(&fx.products, 2).await.unwrap(), Some(kettle.clone()));
    assert!(tx.delete(&fx.products, 2).await.unwrap());
    assert_eq!(tx.get(&fx.products, 2).await.unwrap(), None);
    assert_eq!(cached_now(&fx, 2).await, Some(cached(&kettle)));
    assert_eq!(
        tx.get_many(&fx.products, &[2, 1, 404, 1]).await.unwrap(),
        vec![None, Some(repriced.clone()), None, Some(repriced.clone())]
    );

    // A category renamed in the same transaction: its products are read
    // with the new name inside, and invalidated after the commit.
    let renamed = common::models::Category {
        name: "Cookware".into(),
        ..category(3)
    };
    tx.save(&fx.categories, &renamed).await.unwrap();
    assert_eq!(
        tx.get(&fx.products, 1).await.unwrap().unwrap().category,
        renamed
    );

    tx.commit().await.unwrap();
    assert_eq!(cached_now(&fx, 1).await, None);
    assert_eq!(cached_now(&fx, 2).await, None);
    let after = fx.products.get(1).await.unwrap().unwrap();
    assert_eq!(
        (after.price_cents, after.category.name.as_str()),
        (300, "Cookware")
    );
    assert_eq!(fx.products.get(2).await.unwrap(), None);
}

async fn reads_before_a_write_use_the_cache_but_never_fill_it<DB: TestDb>(fx: Fixture<DB>) {
    let teapot = product(1, 3);
    let kettle = product(2, 3);
    fx.seed(&[category(3)], &[teapot.clone(), kettle.clone()])
        .await;
    fx.products.get(1).await.unwrap();
    let loads = fx.product_loads();

    let mut tx = fx.products.begin().await.unwrap();
    // A hit: no load.
    assert_eq!(
        tx.get(&fx.products, 1).await.unwrap(),
        Some(cached(&teapot))
    );
    assert_eq!(fx.product_loads(), loads);
    // A miss: read in the transaction, not stored (its snapshot may be
    // older than the latest invalidation).
    assert_eq!(tx.get(&fx.products, 2).await.unwrap(), Some(kettle.clone()));
    assert_eq!(fx.product_loads(), loads + 1);
    assert_eq!(cached_now(&fx, 2).await, None);
    assert_eq!(
        tx.get_many(&fx.products, &[1, 2]).await.unwrap(),
        vec![Some(cached(&teapot)), Some(kettle)]
    );
    assert_eq!(cached_now(&fx, 2).await, None);
    assert!(!tx.has_written());
    tx.commit().await.unwrap();
    assert_eq!(cached_now(&fx, 1).await, Some(cached(&teapot)));
}

on_both_databases!(every_future_is_send_so_a_handler_can_spawn_it);

/// What a web handler does, on a spawned task: every future is `Send`.
async fn every_future_is_send_so_a_handler_can_spawn_it<DB: TestDb>(fx: Fixture<DB>) {
    let (products, categories) = (fx.products.clone(), fx.categories.clone());
    tokio::spawn(async move {
        let mut tx = products.begin().await.unwrap();
        tx.save(&categories, &category(3)).await.unwrap();
        tx.save(&products, &product(1, 3)).await.unwrap();
        assert!(tx.get(&products, 1).await.unwrap().is_some());
        assert_eq!(tx.get_many(&products, &[1]).await.unwrap().len(), 1);
        assert!(tx.load(&products, 1).await.unwrap().is_some());
        tx.commit().await.unwrap();
        assert!(products.get(1).await.unwrap().is_some());
        assert_eq!(products.get_many(&[1, 2]).await.unwrap().len(), 2);
        assert!(products.load(1).await.unwrap().is_some());
        products.save(&product(1, 3)).await.unwrap();
        products.invalidate(1).await.unwrap();
        products.invalidate_all().await.unwrap();
        assert!(products.delete(1).await.unwrap());
        products.begin().await.unwrap().rollback().await.unwrap();
    })
    .await
    .unwrap();
}
