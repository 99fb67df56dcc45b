//! Writes through a `CachedRepository`: the next read, here and in a
//! second process, is the new row; a write that committed but could not
//! invalidate says so; batched reads; the raw bytes of an entry.

mod common;

use common::models::{NOTES, Product, cached, category, product};
use common::{Fixture, TestDb, on_both_databases, read_line};
use futures::TryStreamExt;
use larder::model::model_key;

on_both_databases!(
    the_next_read_after_a_write_is_the_new_row_here_and_in_a_second_process,
    a_write_that_committed_but_could_not_invalidate_says_which_key_may_be_stale,
    get_many_reads_every_hit_in_one_round_trip_and_loads_only_the_misses,
    stream_all_yields_every_row,
    an_excluded_field_never_reaches_redis,
);

async fn the_next_read_after_a_write_is_the_new_row_here_and_in_a_second_process<DB: TestDb>(
    fx: Fixture<DB>,
) {
    const TEST: &str = "the_next_read_after_a_write_is_the_new_row_here_and_in_a_second_process";
    let mut teapot = product(1, 3);
    fx.seed(&[category(3)], &[teapot.clone()]).await;

    // Loaded (with its excluded field), then a hit (without).
    assert_eq!(fx.products.get(1).await.unwrap(), Some(teapot.clone()));
    assert_eq!(fx.products.get(1).await.unwrap(), Some(cached(&teapot)));
    assert_eq!(fx.product_loads(), 1);
    assert_eq!(
        fx.read_in_second_process(TEST, 1).await,
        read_line(Some(&teapot))
    );

    // Save: the very next read, from another process first, then here.
    teapot.price_cents = 2499;
    fx.products.save(&teapot).await.unwrap();
    assert_eq!(
        fx.read_in_second_process(TEST, 1).await,
        read_line(Some(&teapot))
    );
    assert_eq!(fx.products.get(1).await.unwrap().unwrap().price_cents, 2499);

    // Save again: this process reads first this time.
    teapot.price_cents = 2999;
    fx.products.save(&teapot).await.unwrap();
    assert_eq!(fx.products.get(1).await.unwrap().unwrap().price_cents, 2999);
    assert_eq!(
        fx.read_in_second_process(TEST, 1).await,
        read_line(Some(&teapot))
    );

    // Delete: `None` everywhere, and not cached as absent.
    assert!(fx.products.delete(1).await.unwrap());
    assert_eq!(fx.read_in_second_process(TEST, 1).await, "READ none");
    assert_eq!(fx.products.get(1).await.unwrap(), None);
    assert!(!fx.products.delete(1).await.unwrap());
    fx.products.save(&teapot).await.unwrap();
    assert_eq!(fx.products.get(1).await.unwrap(), Some(teapot));
}

async fn a_write_that_committed_but_could_not_invalidate_says_which_key_may_be_stale<DB: TestDb>(
    mut fx: Fixture<DB>,
) {
    let mut teapot = product(1, 3);
    fx.seed(&[category(3)], &[teapot.clone()]).await;
    fx.products.get(1).await.unwrap();

    fx.kill_redis();
    teapot.price_cents = 5;
    let error = fx.products.save(&teapot).await.unwrap_err();
    assert!(error.is_stale_after_commit(), "{error:?}");
    assert_eq!(error.stale_keys(), ["product:1"]);
    let text = error.to_string();
    assert!(text.contains("the write committed"), "{text}");
    assert!(text.contains("`product:1`"), "{text}");

    // It did commit: the database has the new row (the cache is down, so
    // a read is a miss that loads it).
    assert_eq!(fx.products.get(1).await.unwrap().unwrap().price_cents, 5);

    // A transaction's commit says the same for every key it wrote.
    let mut tx = fx.products.begin().await.unwrap();
    tx.save(&fx.categories, &category(3)).await.unwrap();
    tx.save(&fx.products, &teapot).await.unwrap();
    let error = tx.commit().await.unwrap_err();
    assert!(error.is_stale_after_commit(), "{error:?}");
    assert_eq!(error.stale_keys(), ["category:3", "product:1"]);
}

async fn get_many_reads_every_hit_in_one_round_trip_and_loads_only_the_misses<DB: TestDb>(
    fx: Fixture<DB>,
) {
    let products: Vec<Product> = (1..=6).map(|id| product(id, 1)).collect();
    fx.seed(&[category(1)], &products).await;
    for id in [2, 4] {
        fx.products.get(id).await.unwrap();
    }
    assert_eq!(fx.product_loads(), 2);

    let found = fx.products.get_many(&[4, 404, 1, 2, 3, 1]).await.unwrap();
    // Loaded rows carry their excluded field, hits do not: compare without it.
    let found: Vec<Option<Product>> = found.iter().map(|p| p.as_ref().map(cached)).collect();
    let expected = [Some(3), None, Some(0), Some(1), Some(2), Some(0)]
        .map(|at| at.map(|at: usize| cached(&products[at])));
    assert_eq!(found, expected);
    // 404, 1 and 3 missed; 1 twice, shared by single-flight or loaded
    // twice, but never more than once per asked position.
    let loads = fx.product_loads() - 2;
    assert!((3..=4).contains(&loads), "{loads} loads");

    // Now every existing one is a hit: nothing is loaded but the missing row.
    let before = fx.product_loads();
    let found = fx.products.get_many(&[1, 2, 3, 4, 404]).await.unwrap();
    assert_eq!(found.iter().filter(|p| p.is_some()).count(), 4);
    assert_eq!(fx.product_loads() - before, 1);
    assert!(fx.products.get_many(&[]).await.unwrap().is_empty());
}

async fn stream_all_yields_every_row<DB: TestDb>(fx: Fixture<DB>) {
    use larder_sqlx::Repository;
    let products: Vec<Product> = (1..=3).map(|id| product(id, 1)).collect();
    fx.seed(&[category(1)], &products).await;
    let mut conn = fx.pool.acquire().await.unwrap();
    let all: Vec<Product> = fx
        .products
        .repository()
        .stream_all(&mut conn)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, products);
}

async fn an_excluded_field_never_reaches_redis<DB: TestDb>(fx: Fixture<DB>) {
    let mut teapot = product(1, 3);
    teapot.name = "Teapot-VISIBLE-9931".into();
    fx.seed(&[category(3)], &[teapot.clone()]).await;
    assert_eq!(fx.products.get(1).await.unwrap(), Some(teapot));

    let physical = fx.cache.physical_key(&model_key::<Product>(&1).unwrap());
    let mut redis = fx.raw_redis().await;
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(&physical)
        .query_async(&mut redis)
        .await
        .unwrap();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The bytes are readable (the stored name is there), and the excluded
    // field's value is not.
    assert!(
        contains("Teapot-VISIBLE-9931"),
        "{physical} holds the entry"
    );
    assert!(!contains(NOTES), "the excluded field's value reached Redis");
    assert!(
        !contains("ZQX"),
        "part of the excluded field's value reached Redis"
    );
}

on_both_databases!(saving_a_category_invalidates_exactly_the_products_embedding_it);

/// 1,000 products in 50 categories, all cached; one category saved:
/// exactly its 20 products miss, the other 980 still hit.
async fn saving_a_category_invalidates_exactly_the_products_embedding_it<DB: TestDb>(
    fx: Fixture<DB>,
) {
    use common::models::Category;
    let categories: Vec<Category> = (1..=50).map(category).collect();
    let products: Vec<Product> = (1..=1000)
        .map(|id| product(id, (id - 1) % 50 + 1))
        .collect();
    fx.seed(&categories, &products).await;
    let ids: Vec<i64> = (1..=1000).collect();
    let loaded = fx.products.get_many(&ids).await.unwrap();
    assert!(loaded.iter().all(Option::is_some));
    let hits = fx.cache.get_cached_models::<Product>(&ids).await.unwrap();
    assert!(hits.iter().all(Option::is_some), "all 1,000 are cached");

    fx.categories
        .save(&Category {
            id: 7,
            name: "Cookware".into(),
        })
        .await
        .unwrap();

    let mut misses = Vec::new();
    for &id in &ids {
        match fx.cache.get_cached_model::<Product>(id).await.unwrap() {
            None => misses.push(id),
            Some(hit) => assert_eq!(hit, cached(&products[id as usize - 1])),
        }
    }
    let in_category_7: Vec<i64> = products
        .iter()
        .filter(|p| p.category.id == 7)
        .map(|p| p.id)
        .collect();
    assert_eq!(in_category_7.len(), 20);
    assert_eq!(misses, in_category_7);
    let reread = fx.products.get(in_category_7[0]).await.unwrap().unwrap();
    assert_eq!(reread.category.name, "Cookware");
}

on_both_databases!(ids_with_separators_and_globs_are_keys_of_their_own);

/// String ids the application does not control: each is its own key, a
/// write to one invalidates only it, and nothing panics.
async fn ids_with_separators_and_globs_are_keys_of_their_own<DB: TestDb>(fx: Fixture<DB>) {
    use common::models::Note;
    use larder_sqlx::CachedRepository;
    let notes: CachedRepository<DB::Notes> =
        CachedRepository::builder(fx.cache.clone(), fx.pool.clone(), Default::default())
            .concurrency(0) // taken as 1
            .build();
    let slugs: Vec<String> = ["a*", "ab", "a:b", "a%3Ab", "", "[x]", "a?", "é ☃\n"]
        .map(String::from)
        .to_vec();
    let note = |slug: &str, body: &str| Note {
        slug: slug.to_owned(),
        body: body.to_owned(),
    };
    for slug in &slugs {
        notes.save(&note(slug, &format!("{slug:?}"))).await.unwrap();
    }
    let all = notes.get_many(&slugs).await.unwrap();
    for (slug, found) in slugs.iter().zip(&all) {
        assert_eq!(found.as_ref(), Some(&note(slug, &format!("{slug:?}"))));
    }

    notes.save(&note("a*", "new")).await.unwrap();
    assert!(notes.delete("a:b".into()).await.unwrap());
    for slug in &slugs {
        let hit = fx
            .cache
            .get_cached_model::<Note>(slug.clone())
            .await
            .unwrap();
        match slug.as_str() {
            "a*" | "a:b" => assert_eq!(hit, None, "{slug:?} was written"),
            _ => assert!(hit.is_some(), "{slug:?} was not written, yet missed"),
        }
    }
    assert_eq!(notes.get("a*".into()).await.unwrap().unwrap().body, "new");
    assert_eq!(notes.get("a:b".into()).await.unwrap(), None);
}
