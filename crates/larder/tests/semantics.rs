//! The Cache's contract, run against both stores: a private redis-server and
//! the in-process `MemoryStore`. Every test here runs twice.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Fixture, HOUR, Product, on_both_stores, product};
use larder::key::escape_glob;

on_both_stores!(
    a_struct_round_trips,
    entries_expire_after_their_ttl,
    get_many_and_set_many_keep_order,
    delete_removes_exactly_that_entry,
    pattern_invalidation_removes_exactly_the_matches,
    escaped_ids_touch_only_their_own_keys,
    a_version_change_turns_old_entries_into_misses,
    corrupt_bytes_are_a_miss_and_are_removed,
    oversized_values_are_returned_but_not_cached,
    concurrent_cold_misses_compute_once,
    json_codec_and_compression_round_trip,
);

async fn a_struct_round_trips(fixture: Fixture) {
    let cache = fixture.cache().await;
    assert_eq!(cache.get::<Product>("product:1").await.unwrap(), None);
    cache.set("product:1", &product(1), HOUR).await.unwrap();
    assert_eq!(
        cache.get::<Product>("product:1").await.unwrap(),
        Some(product(1))
    );
}

async fn entries_expire_after_their_ttl(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.ttl_jitter(0.0)).await;
    cache
        .set("session:1", &"short", Duration::from_millis(200))
        .await
        .unwrap();
    cache.set("session:2", &"long", HOUR).await.unwrap();
    assert!(cache.get::<String>("session:1").await.unwrap().is_some());
    // Waiting for time itself to pass: nothing else can signal an expiry.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get::<String>("session:1").await.unwrap(), None);
    assert_eq!(
        cache.get::<String>("session:2").await.unwrap().as_deref(),
        Some("long")
    );
}

async fn get_many_and_set_many_keep_order(fixture: Fixture) {
    let cache = fixture.cache().await;
    let entries: Vec<(String, Product)> = (1..=3)
        .map(|id| (format!("product:{id}"), product(id)))
        .collect();
    cache.set_many(&entries, HOUR).await.unwrap();
    let got: Vec<Option<Product>> = cache
        .get_many(&["product:3", "product:404", "product:1"])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(product(3)), None, Some(product(1))]);
    let none: Vec<Option<Product>> = cache.get_many::<Product, &str>(&[]).await.unwrap();
    assert!(none.is_empty());
}

async fn delete_removes_exactly_that_entry(fixture: Fixture) {
    let cache = fixture.cache().await;
    for key in ["product:1", "product:10", "product:1:reviews", "products:1"] {
        cache.set(key, &key, HOUR).await.unwrap();
    }
    assert!(cache.delete_cached_data("product:1").await.unwrap());
    assert!(!cache.delete_cached_data("product:1").await.unwrap());
    assert_eq!(cache.get::<String>("product:1").await.unwrap(), None);
    for key in ["product:10", "product:1:reviews", "products:1"] {
        assert_eq!(
            cache.get::<String>(key).await.unwrap().as_deref(),
            Some(key),
            "{key} must survive"
        );
    }
}

async fn pattern_invalidation_removes_exactly_the_matches(fixture: Fixture) {
    const N: u64 = 100_000;
    let cache = fixture.cache().await;
    for chunk in (0..N).collect::<Vec<_>>().chunks(5_000) {
        let entries: Vec<(String, u64)> =
            chunk.iter().map(|i| (format!("product:{i}"), *i)).collect();
        cache.set_many(&entries, HOUR).await.unwrap();
    }
    let survivors = ["products:1", "productx", "user:123:profile", "product"];
    for key in survivors {
        cache.set(key, &0_u64, HOUR).await.unwrap();
    }
    assert_eq!(
        cache.invalidate_cache_pattern("product:*").await.unwrap(),
        N
    );
    for probe in [0, 1, N / 2, N - 1] {
        assert_eq!(
            cache.get::<u64>(&format!("product:{probe}")).await.unwrap(),
            None
        );
    }
    for key in survivors {
        assert_eq!(
            cache.get::<u64>(key).await.unwrap(),
            Some(0),
            "{key} must survive"
        );
    }
    assert_eq!(
        cache.invalidate_cache_pattern("product:*").await.unwrap(),
        0
    );
}

async fn escaped_ids_touch_only_their_own_keys(fixture: Fixture) {
    let cache = fixture.cache().await;
    let keys = [
        "user:a*:profile",
        "user:a*:orders",
        "user:ab:profile",
        "user:a:profile",
        "user:a]:x",
    ];
    for key in keys {
        cache.set(key, &key, HOUR).await.unwrap();
    }
    let hostile_id = "a*"; // e.g. from a request path
    let pattern = format!("user:{}:*", escape_glob(hostile_id));
    assert_eq!(cache.invalidate_cache_pattern(&pattern).await.unwrap(), 2);
    for key in ["user:ab:profile", "user:a:profile", "user:a]:x"] {
        assert!(
            cache.get::<String>(key).await.unwrap().is_some(),
            "{key} must survive"
        );
    }
}

async fn a_version_change_turns_old_entries_into_misses(fixture: Fixture) {
    let v1 = fixture.cache_with(|b| b.version("1.0")).await;
    v1.set("product:1", &product(1), HOUR).await.unwrap();
    let v2 = fixture.cache_with(|b| b.version("1.1")).await;
    assert_eq!(v2.get::<Product>("product:1").await.unwrap(), None);
    v2.set("product:1", &product(2), HOUR).await.unwrap();
    // Builds on either version read only their own entries during a deploy.
    assert_eq!(
        v1.get::<Product>("product:1").await.unwrap(),
        Some(product(1))
    );
    assert_eq!(
        v2.get::<Product>("product:1").await.unwrap(),
        Some(product(2))
    );
    // Invalidation is scoped to the version too.
    assert_eq!(v2.invalidate_cache_pattern("product:*").await.unwrap(), 1);
    assert_eq!(
        v1.get::<Product>("product:1").await.unwrap(),
        Some(product(1))
    );
}

async fn corrupt_bytes_are_a_miss_and_are_removed(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.set("product:1", &product(1), HOUR).await.unwrap();
    let physical = cache.physical_key("product:1");
    let good = cache.store().get(&physical).await.unwrap().unwrap();
    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let garbage: Vec<Bytes> = vec![
        Bytes::from_static(b"not an envelope"),
        Bytes::new(),
        good.slice(..good.len() / 2),
        Bytes::from(flipped),
    ];
    for bytes in garbage {
        cache.store().set(&physical, bytes, HOUR).await.unwrap();
        assert_eq!(cache.get::<Product>("product:1").await.unwrap(), None);
        assert_eq!(
            cache.store().get(&physical).await.unwrap(),
            None,
            "corrupt entry must be removed"
        );
    }
    // A valid envelope of another type (another build's, say) is a miss
    // too, but it is left for the reader it fits.
    cache.set("product:1", &"a string", HOUR).await.unwrap();
    assert_eq!(cache.get::<Product>("product:1").await.unwrap(), None);
    assert_eq!(
        cache.get::<String>("product:1").await.unwrap().as_deref(),
        Some("a string")
    );
    // The read path recovers: the origin answers and refills.
    let value = cache
        .get_or_compute("product:1", HOUR, || async { product(1) })
        .await
        .unwrap();
    assert_eq!(value, product(1));
    assert_eq!(
        cache.get::<Product>("product:1").await.unwrap(),
        Some(product(1))
    );
}

async fn oversized_values_are_returned_but_not_cached(fixture: Fixture) {
    let cache = fixture
        .cache_with(|b| {
            b.max_value_bytes(1024)
                .compression(larder::Compression::None)
        })
        .await;
    let big = "x".repeat(10_000);
    let value = cache
        .get_or_compute("report:big", HOUR, || async { big.clone() })
        .await
        .unwrap();
    assert_eq!(value, big);
    assert_eq!(
        cache
            .store()
            .get(&cache.physical_key("report:big"))
            .await
            .unwrap(),
        None
    );
    let err = cache.set("report:big", &big, HOUR).await.unwrap_err();
    assert!(err.is_too_large(), "{err}");
    assert!(err.to_string().contains("report:big"), "{err}");
    // Small values still go in.
    cache.set("report:small", &"ok", HOUR).await.unwrap();
    assert!(cache.get::<String>("report:small").await.unwrap().is_some());
}

async fn concurrent_cold_misses_compute_once(fixture: Fixture) {
    let cache = fixture.cache().await;
    let computed = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..500)
        .map(|_| {
            let cache = cache.clone();
            let computed = Arc::clone(&computed);
            tokio::spawn(async move {
                cache
                    .get_or_compute("expensive_report:1", HOUR, || async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        product(1)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), product(1));
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
}

async fn json_codec_and_compression_round_trip(fixture: Fixture) {
    let json = fixture
        .cache_with(|b| b.codec(larder::Codec::Json).prefix("json"))
        .await;
    let mut big = product(7);
    big.tags = vec!["tag".repeat(50); 100];
    json.set("product:7", &big, HOUR).await.unwrap();
    assert_eq!(
        json.get::<Product>("product:7").await.unwrap(),
        Some(big.clone())
    );
    let raw = json
        .store()
        .get(&json.physical_key("product:7"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        raw.len() < 5_000,
        "large payloads are compressed: {} bytes",
        raw.len()
    );
}
