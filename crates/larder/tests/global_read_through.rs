//! The read-through and bulk free functions on the global cache —
//! `get_or_compute_expiring`, `get_or_revalidate`, `refresh`,
//! `delete_many` — against a private redis-server, and the error each
//! returns before `larder::init`. One test: the global cache is installed
//! once per process. (Called through `larder::global::`, where they are
//! defined; the crate root re-exports them.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::HOUR;
use larder::{ErrorKind, Expiring, global};
use larder_test_support::RedisServer;

async fn pttl_secs(server: &RedisServer, logical: &str) -> f64 {
    let cache = larder::global::global().unwrap();
    let mut conn = common::raw(server).await;
    let ms: i64 = redis::cmd("PTTL")
        .arg(cache.physical_key(logical))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ms > 0, "{logical} has no TTL ({ms})");
    ms as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_free_functions_use_the_global_cache() {
    // Before init: the same error as every other free function.
    let errors = [
        global::get_or_compute_expiring("product_data:1", || async { Expiring::secs(1, 300) })
            .await
            .map(drop)
            .unwrap_err(),
        global::get_or_revalidate("report:1", HOUR, || async { 1 })
            .await
            .map(drop)
            .unwrap_err(),
        global::refresh("product:1", HOUR, || async { 1 })
            .await
            .map(drop)
            .unwrap_err(),
        global::delete_many(&["product:1"])
            .await
            .map(drop)
            .unwrap_err(),
        larder::get::<u64>("product:1").await.map(drop).unwrap_err(),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::NotInitialized, "{err}");
        assert!(err.to_string().contains("larder::init"), "{err}");
    }

    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| {
        b.ttl_jitter(0.0).stale_grace(Duration::from_secs(60))
    })
    .await;
    larder::init(cache).unwrap();

    // The Django original's dynamic TTL: the value picks it.
    for (id, popularity, ttl) in [(1, 9, 300.0), (2, 3, 7200.0)] {
        let key = format!("product_data:{id}");
        let name: String = global::get_or_compute_expiring(&key, || async move {
            let secs = if popularity > 8 { 300 } else { 7200 };
            Expiring::secs(format!("product {id}"), secs)
        })
        .await
        .unwrap();
        assert_eq!(name, format!("product {id}"));
        let stored = pttl_secs(&server, &key).await;
        // The stored TTL adds the stale grace period.
        assert!((stored - (ttl + 60.0)).abs() < 5.0, "{key}: {stored}");
    }
    let cached: String = global::get_or_compute_expiring("product_data:1", || async {
        Expiring::secs("recomputed".to_string(), 300)
    })
    .await
    .unwrap();
    assert_eq!(cached, "product 1");

    // Refresh recomputes and stores whatever is cached.
    let refreshed: String =
        global::refresh("product_data:1", HOUR, || async { "warmed".to_string() })
            .await
            .unwrap();
    assert_eq!(refreshed, "warmed");
    assert_eq!(
        larder::get::<String>("product_data:1")
            .await
            .unwrap()
            .as_deref(),
        Some("warmed")
    );

    // Stale-while-revalidate: the first call computes, later ones read.
    let computed = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let computed = Arc::clone(&computed);
        let report: String = global::get_or_revalidate("report:1", HOUR, move || async move {
            computed.fetch_add(1, Ordering::SeqCst);
            "report 1".to_string()
        })
        .await
        .unwrap();
        assert_eq!(report, "report 1");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);

    // Several keys in one call; absent ones are not counted.
    assert_eq!(
        global::delete_many(&["product_data:1", "product_data:2", "report:1", "absent:1"])
            .await
            .unwrap(),
        3
    );
    assert_eq!(larder::get::<String>("report:1").await.unwrap(), None);
}
