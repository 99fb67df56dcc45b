//! The counters and histograms a service scrapes, checked against a
//! recording `metrics` recorder (installed once for this test binary).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{HOUR, Product, product};
use larder_test_support::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

fn counter(snapshot: &[(CompositeKey, DebugValue)], name: &str, labels: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(key, _)| key.kind() == MetricKind::Counter && key.key().name() == name)
        .filter(|(key, _)| {
            labels.iter().all(|(k, v)| {
                key.key()
                    .labels()
                    .any(|label| label.key() == *k && label.value() == *v)
            })
        })
        .map(|(_, value)| match value {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

fn histogram_samples(
    snapshot: &[(CompositeKey, DebugValue)],
    name: &str,
    namespace: &str,
) -> usize {
    snapshot
        .iter()
        .filter(|(key, _)| key.key().name() == name)
        .filter(|(key, _)| {
            key.key()
                .labels()
                .any(|l| l.key() == "namespace" && l.value() == namespace)
        })
        .map(|(_, value)| match value {
            DebugValue::Histogram(samples) => samples.len(),
            _ => 0,
        })
        .sum()
}

fn snapshot(snapshotter: &Snapshotter) -> Vec<(CompositeKey, DebugValue)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_computes_failures_and_corruption_are_counted_by_namespace() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let cache = larder::Cache::in_memory();
    assert_eq!(cache.get::<Product>("product:1").await.unwrap(), None);
    cache
        .get_or_compute("product:1", HOUR, || async { product(1) })
        .await
        .unwrap();
    cache.get::<Product>("product:1").await.unwrap();
    cache.get::<String>("user:7:profile").await.unwrap();
    cache
        .store()
        .set(
            &cache.physical_key("product:2"),
            Bytes::from_static(b"junk"),
            HOUR,
        )
        .await
        .unwrap();
    cache.get::<Product>("product:2").await.unwrap();

    let snap = snapshot(&snapshotter);
    let product_ns = [("namespace", "product")];
    assert_eq!(counter(&snap, "larder_hits_total", &product_ns), 1);
    // product:1 twice (plain get, then get_or_compute's read) and the junk.
    assert_eq!(counter(&snap, "larder_misses_total", &product_ns), 3);
    assert_eq!(
        counter(&snap, "larder_misses_total", &[("namespace", "user")]),
        1
    );
    assert_eq!(
        counter(&snap, "larder_decode_failures_total", &product_ns),
        1
    );
    assert_eq!(
        histogram_samples(&snap, "larder_compute_seconds", "product"),
        1
    );
    assert_eq!(
        histogram_samples(&snap, "larder_fill_seconds", "product"),
        1
    );

    // Store failures and breaker rejections, on a Redis that is gone.
    let mut server = RedisServer::spawn();
    let config = larder::Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_millis(200))
        .breaker_failures(2)
        .breaker_open_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let redis = larder::Cache::connect(config).await.unwrap();
    server.kill();
    for _ in 0..5 {
        assert_eq!(redis.get::<u32>("product:9").await.unwrap(), None);
    }
    let snap = snapshot(&snapshotter);
    assert_eq!(
        counter(
            &snap,
            "larder_store_errors_total",
            &[("store", "redis"), ("op", "GET")]
        ),
        2
    );
    assert_eq!(
        counter(
            &snap,
            "larder_breaker_rejections_total",
            &[("store", "redis")]
        ),
        3
    );
}
