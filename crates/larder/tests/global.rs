//! The Django original's free functions on the global default cache. One test: the
//! global cache is installed once per process.

mod common;

use common::{HOUR, Product, product};
use larder::ErrorKind;
use larder_test_support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_functions_use_the_global_cache() {
    let err = larder::get::<Product>("product:1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotInitialized);
    assert!(err.to_string().contains("larder::init"), "{err}");

    let server = RedisServer::spawn();
    larder::init(common::redis_cache(&server, |b| b).await).unwrap();
    let again = larder::init(larder::Cache::in_memory()).unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyInitialized);

    larder::set("product:1", &product(1), HOUR).await.unwrap();
    larder::set_many(
        &[("product:2", product(2)), ("products:1", product(3))],
        HOUR,
    )
    .await
    .unwrap();
    let user: String =
        larder::get_or_compute("user:123:profile", HOUR, || async { "Ada".to_string() })
            .await
            .unwrap();
    assert_eq!(user, "Ada");
    let many: Vec<Option<Product>> = larder::get_many(&["product:1", "product:2"]).await.unwrap();
    assert_eq!(many, vec![Some(product(1)), Some(product(2))]);

    // The Django original's invalidation examples, as written.
    assert!(larder::delete_cached_data("product:1").await.unwrap());
    assert_eq!(
        larder::invalidate_cache_pattern("product:*").await.unwrap(),
        1
    );
    assert_eq!(
        larder::invalidate_cache_pattern("user:123:*")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        larder::get::<Product>("products:1").await.unwrap(),
        Some(product(3))
    );
}
