//! `#[cached(ttl = …)]` and `none_ttl = …` written as constants — a
//! `const` item, arithmetic, an associated constant — store entries for
//! exactly that many seconds, as `PTTL` on a private redis-server shows.

mod common;

use std::sync::OnceLock;

use larder::Cache;
use larder_test_support::RedisServer;

const ONE_HOUR: u64 = 60 * 60;

mod settings {
    /// How long "no such user" is remembered.
    pub const NEGATIVE_TTL: u64 = 30;
}

static CACHE: OnceLock<Cache> = OnceLock::new();

fn cache() -> &'static Cache {
    CACHE.get().expect("the test installs the cache first")
}

#[larder::cached(namespace = "user_data", ttl = ONE_HOUR, cache = cache())]
async fn get_user_data(user_id: u64) -> String {
    format!("User {user_id}")
}

#[larder::cached(namespace = "analytics", ttl = 24 * ONE_HOUR, cache = cache())]
async fn calculate_user_metrics(user_id: u64) -> u64 {
    user_id * 3
}

#[larder::cached(
    namespace = "user",
    ttl = ONE_HOUR,
    cache_none = true,
    none_ttl = settings::NEGATIVE_TTL,
    cache = cache()
)]
async fn find_user(user_id: u64) -> Option<String> {
    (user_id != 0).then(|| format!("User {user_id}"))
}

struct Reports;

impl Reports {
    const TTL: u64 = 15 * 60;

    #[larder::cached(namespace = "report", ttl = Self::TTL, cache = cache(), receiver = "skip")]
    async fn report(&self, id: u64) -> String {
        format!("report {id}")
    }
}

async fn pttl_secs(server: &RedisServer, logical: &str) -> f64 {
    let mut conn = common::raw(server).await;
    let ms: i64 = redis::cmd("PTTL")
        .arg(cache().physical_key(logical))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ms > 0, "{logical} has no TTL ({ms})");
    ms as f64 / 1000.0
}

fn assert_near(key: &str, actual: f64, expected: u64) {
    let expected = expected as f64;
    assert!(
        (actual - expected).abs() < 5.0,
        "{key}: stored for {actual} s, expected {expected} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_ttls_are_the_stored_ttls() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b.ttl_jitter(0.0)).await;
    assert!(CACHE.set(cache).is_ok());

    get_user_data(42).await;
    let key = get_user_data_key(42).unwrap();
    assert_near(&key, pttl_secs(&server, &key).await, ONE_HOUR);

    calculate_user_metrics(7).await;
    let key = calculate_user_metrics_key(7).unwrap();
    assert_near(&key, pttl_secs(&server, &key).await, 24 * ONE_HOUR);

    assert_eq!(find_user(0).await, None);
    let key = find_user_key(0).unwrap();
    assert_near(&key, pttl_secs(&server, &key).await, settings::NEGATIVE_TTL);
    find_user(1).await;
    let key = find_user_key(1).unwrap();
    assert_near(&key, pttl_secs(&server, &key).await, ONE_HOUR);

    Reports.report(3).await;
    let key = Reports::report_key(3).unwrap();
    assert_near(&key, pttl_secs(&server, &key).await, Reports::TTL);
}
