//! Related models: an entry that embeds another model's instance is a miss
//! once that instance is invalidated — through the tag index, and through
//! the stamps checked on read when the index is lost. On both stores.

mod common;

use common::models::*;
use common::{Fixture, on_both_stores};

on_both_stores!(
    invalidating_a_category_misses_its_products_only,
    a_lost_index_does_not_save_a_stale_dependent,
    a_disabled_related_model_still_invalidates_its_dependents,
    a_generation_bump_misses_the_model_and_every_dependent,
);

async fn a_generation_bump_misses_the_model_and_every_dependent(fixture: Fixture) {
    let cache = fixture.cache().await;
    for id in 1..=3 {
        cache.cache_model(&category(id)).await.unwrap();
    }
    cache.cache_model(&product(10, 1)).await.unwrap();
    cache.cache_model(&product(11, 2)).await.unwrap();
    cache.cache_model(&Widget::new(7)).await.unwrap();

    cache.bump_model_generation::<Category>().await.unwrap();
    assert_eq!(
        cache
            .get_cached_models::<Category>(&[1, 2, 3])
            .await
            .unwrap(),
        [None, None, None]
    );
    // The dependents recorded the generation: misses, with no index at all.
    assert_eq!(
        cache.get_cached_models::<Product>(&[10, 11]).await.unwrap(),
        [None, None]
    );
    // Other models are untouched.
    assert_eq!(
        cache.get_cached_model::<Widget>(7).await.unwrap(),
        Some(Widget::new(7))
    );
    // Cached after the bump, a dependent is a hit again.
    cache.cache_model(&product(10, 1)).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(10).await.unwrap(),
        Some(cached(10, 1))
    );
}

async fn invalidating_a_category_misses_its_products_only(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&category(3)).await.unwrap();
    cache.cache_model(&product(1, 3)).await.unwrap();
    cache.cache_model(&product(2, 4)).await.unwrap();
    cache.cache_model(&product(5, 3)).await.unwrap();

    assert!(cache.invalidate_model_cache(&category(3)).await.unwrap());
    assert_eq!(cache.get_cached_model::<Category>(3).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_model::<Product>(2).await.unwrap(),
        Some(cached(2, 4))
    );
    // The index removed the dependents, too.
    assert!(raw_bytes(&cache, "product:1").await.is_none());
    assert!(raw_bytes(&cache, "product:5").await.is_none());

    // Recached after the change, a dependent is a hit again.
    cache.cache_model(&product(1, 3)).await.unwrap();
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[1, 2, 5])
            .await
            .unwrap(),
        [Some(cached(1, 3)), Some(cached(2, 4)), None]
    );
    // By id, without an instance at hand, and without an entry of its own.
    assert!(
        !cache
            .invalidate_model_cache_id::<Category>(4)
            .await
            .unwrap()
    );
    assert_eq!(
        cache.get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [Some(cached(1, 3)), None]
    );
}

async fn a_lost_index_does_not_save_a_stale_dependent(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    cache.cache_model(&product(2, 4)).await.unwrap();
    let index = tag_index(&cache, "model:category:3");
    // The index goes behind Larder's back (evicted, or deleted by hand).
    match fixture.server() {
        Some(server) => {
            let mut conn = common::raw(server).await;
            assert!(common::exists(&mut conn, &index).await);
            let removed: u64 = ::redis::cmd("UNLINK")
                .arg(&index)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(removed, 1);
        }
        None => assert_eq!(cache.store().unlink(&[index]).await.unwrap(), 1),
    }
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    // Nothing removed product 1's entry, but its stamp is gone: a miss.
    assert!(raw_bytes(&cache, "product:1").await.is_some());
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [None, Some(cached(2, 4))]
    );
    assert_eq!(
        cache.get_cached_model::<Product>(2).await.unwrap(),
        Some(cached(2, 4))
    );
}

async fn a_disabled_related_model_still_invalidates_its_dependents(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    // Category caching is off, but products embed categories.
    assert!(
        !cache
            .invalidate_model_cache(&DisabledCategory::new(3))
            .await
            .unwrap()
    );
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
}
