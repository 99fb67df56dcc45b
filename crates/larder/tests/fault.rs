//! Fault tests on private redis-servers that the tests kill, freeze and
//! restart themselves (never the shared one on 6379).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{HOUR, exists, raw, redis_cache};
use larder::{Cache, FailMode};
use larder_test_support::RedisServer;

const DEADLINE: Duration = Duration::from_millis(200);
/// A `get_or_compute` makes at most three store calls (read, re-read as
/// flight leader, fill); scheduling on a loaded 2-core machine gets a
/// generous margin on top. A hang would blow far past it.
const CALL_BOUND: Duration = Duration::from_millis(3 * 200 + 1_000);

/// The origin: user `id`'s data, counting every call.
#[derive(Clone, Default)]
struct Origin(Arc<AtomicUsize>);

impl Origin {
    async fn load(&self, cache: &Cache, id: u64) -> String {
        let started = Instant::now();
        let origin = self.clone();
        let value = cache
            .get_or_compute(&format!("user_data:{id}"), HOUR, || async move {
                origin.0.fetch_add(1, Ordering::SeqCst);
                format!("user {id}")
            })
            .await
            .expect("fail-open get_or_compute never errors");
        let elapsed = started.elapsed();
        assert!(
            elapsed < CALL_BOUND,
            "call took {elapsed:?}, deadline is {DEADLINE:?}"
        );
        assert_eq!(value, format!("user {id}"));
        value
    }

    fn calls(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

async fn fault_cache(server: &RedisServer) -> Cache {
    redis_cache(server, |b| {
        b.deadline(DEADLINE)
            .connect_timeout(DEADLINE)
            .breaker_failures(3)
            .breaker_open_for(Duration::from_millis(300))
    })
    .await
}

/// Calls until an entry is filled again (Redis gives no signal that a client
/// reconnected, so this polls, bounded).
async fn until_cached(cache: &Cache, origin: &Origin, server: &RedisServer) {
    let mut conn = raw(server).await;
    let physical = cache.physical_key("user_data:1");
    let give_up = Instant::now() + Duration::from_secs(15);
    while !exists(&mut conn, &physical).await {
        assert!(Instant::now() < give_up, "caching did not resume");
        origin.load(cache, 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_means_origin_answers_then_caching_resumes() {
    let mut server = RedisServer::spawn();
    let cache = fault_cache(&server).await;
    let origin = Origin::default();

    for id in 0..5 {
        origin.load(&cache, id).await;
    }
    for id in 0..5 {
        origin.load(&cache, id).await;
    }
    assert_eq!(origin.calls(), 5, "warm: the second round is all hits");

    server.kill();
    for round in 0..10 {
        for id in 0..5 {
            origin.load(&cache, id).await;
        }
        assert_eq!(
            origin.calls(),
            5 + 5 * (round + 1),
            "every call reaches the origin"
        );
    }

    server.restart();
    until_cached(&cache, &origin, &server).await;
    let before = origin.calls();
    origin.load(&cache, 1).await;
    assert_eq!(
        origin.calls(),
        before,
        "served from Redis again, same process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_at_most_the_deadline() {
    let mut server = RedisServer::spawn();
    let cache = fault_cache(&server).await;
    let origin = Origin::default();
    origin.load(&cache, 1).await;

    let pid = server.pid().expect("running").to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let frozen_at = origin.calls();
    for id in 0..20 {
        origin.load(&cache, id % 4).await; // each call asserts its bound
    }
    assert_eq!(
        origin.calls(),
        frozen_at + 20,
        "a frozen Redis answers nothing"
    );
    signal("-CONT");

    until_cached(&cache, &origin, &server).await;
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_mode_returns_store_errors() {
    let mut server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| {
        b.deadline(DEADLINE).fail_mode(FailMode::Closed)
    })
    .await;
    cache.set("product:1", &1_u32, HOUR).await.unwrap();
    server.kill();
    let err = cache.get::<u32>("product:1").await.unwrap_err();
    assert!(err.is_store_failure(), "{err}");
    let err = cache
        .get_or_compute("product:2", HOUR, || async { 2_u32 })
        .await
        .unwrap_err();
    assert!(err.is_store_failure(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_report_failures_even_when_failing_open() {
    let mut server = RedisServer::spawn();
    let cache = fault_cache(&server).await;
    server.kill();
    assert!(
        cache
            .delete_cached_data("product:1")
            .await
            .unwrap_err()
            .is_store_failure()
    );
    assert!(
        cache
            .invalidate_cache_pattern("product:*")
            .await
            .unwrap_err()
            .is_store_failure()
    );
    // Reads fail open.
    assert_eq!(cache.get::<u32>("product:1").await.unwrap(), None);
}
