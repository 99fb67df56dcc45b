//! The Django original's §1 examples (function caching) as `#[larder::cached]`
//! functions on the global cache, backed by a private redis-server: they
//! cache, expire, are invalidated, and take their TTL from the attribute, a
//! `ttl` argument or the data they load — as `PTTL` shows.
//!
//! One test owns the global cache (installed once per process); the other
//! checks that keys are the same in a child process.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use larder::Expiring;
use larder_test_support::RedisServer;
use serde::{Deserialize, Serialize};

// ---- the origin: a tiny "database" that counts its queries -------------

static QUERIES: AtomicUsize = AtomicUsize::new(0);

fn query<T>(result: T) -> T {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    result
}

fn queries() -> usize {
    QUERIES.load(Ordering::SeqCst)
}

/// A user row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserData {
    id: u64,
    name: String,
    email: String,
}

/// A product row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductData {
    id: u64,
    popularity: u8,
    price_cents: u64,
}

/// Aggregates over a user's activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMetrics {
    login_count: u64,
    avg_session_time: f64,
    purchase_total: u64,
}

/// Aggregates over jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatistics {
    total: u64,
    avg_pay: f64,
    total_hours: u64,
}

// ---- the Django original's §1, in Rust ---------------------------------------------

/// Get user data from the database.
#[larder::cached(namespace = "user_data", ttl = 3600)] // 1 hour cache
pub async fn get_user_data(user_id: u64) -> UserData {
    query(UserData {
        id: user_id,
        name: format!("User {user_id}"),
        email: format!("user{user_id}@example.com"),
    })
}

/// Get product data with dynamic TTL: high-traffic products get a shorter
/// TTL, low-traffic ones a longer one; a `ttl` argument wins.
#[larder::cached(namespace = "product_data")]
pub async fn get_product_data(product_id: u64, ttl: Option<Duration>) -> Expiring<ProductData> {
    let product = query(ProductData {
        id: product_id,
        popularity: (product_id % 10) as u8,
        price_cents: 1000 + product_id,
    });
    let ttl = ttl.unwrap_or_else(|| {
        Duration::from_secs(if product.popularity > 8 {
            300 // popular products change frequently: 5 minutes
        } else if product.popularity > 5 {
            1800 // medium popularity: 30 minutes
        } else {
            7200 // low popularity: 2 hours
        })
    });
    Expiring::new(product, ttl)
}

/// Calculate user metrics (expensive operation).
#[larder::cached(namespace = "analytics", ttl = 86400)] // 24 hours
pub async fn calculate_user_metrics(user_id: u64) -> UserMetrics {
    query(UserMetrics {
        login_count: user_id * 3,
        avg_session_time: 12.5,
        purchase_total: user_id * 100,
    })
}

/// Get job statistics with optional filtering (a sync aggregation).
#[larder::cached(namespace = "job_stats", ttl = 3600)]
pub fn get_job_statistics(job_type: Option<String>) -> JobStatistics {
    let jobs: BTreeMap<&str, (u64, u64)> = [("plumbing", (40, 10)), ("painting", (30, 5))].into();
    let (total_pay, total_hours, total) = jobs
        .iter()
        .filter(|(kind, _)| job_type.as_deref().is_none_or(|t| t == **kind))
        .fold((0, 0, 0), |(pay, hours, n), (_, (p, h))| {
            (pay + p * h, hours + h, n + 1)
        });
    query(JobStatistics {
        total,
        avg_pay: if total_hours == 0 {
            0.0
        } else {
            total_pay as f64 / total_hours as f64
        },
        total_hours,
    })
}

#[larder::cached(namespace = "session", ttl = 1)]
pub async fn short_lived(id: u64) -> u64 {
    query(id)
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Fails on its first call.
#[larder::cached(namespace = "flaky", ttl = 3600)]
pub async fn flaky(id: u64) -> Result<u64, String> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("database timeout".into())
    } else {
        Ok(id)
    }
}

#[larder::cached(namespace = "find_user", ttl = 3600)]
pub async fn find_user(id: u64) -> Option<u64> {
    query((id != 404).then_some(id))
}

#[larder::cached(
    namespace = "find_user_negative",
    ttl = 3600,
    cache_none = true,
    none_ttl = 30
)]
pub async fn find_user_negative(id: u64) -> Option<u64> {
    query((id != 404).then_some(id))
}

// ---- the tests ----------------------------------------------------------

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

fn assert_near(actual: f64, expected: f64) {
    assert!(
        (expected - 2.0..=expected).contains(&actual),
        "TTL {actual} s, expected {expected} s"
    );
}

#[test]
fn django_function_caching_examples() {
    let server = RedisServer::spawn();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = larder::Config::builder()
            .redis_url(server.url())
            .ttl_jitter(0.0) // exact TTLs to compare with PTTL
            .build()
            .unwrap();
        larder::init(larder::Cache::connect(config).await.unwrap()).unwrap();

        // get_user_data: cached for an hour, invalidated by companion and pattern.
        let before = queries();
        let user = get_user_data(42).await;
        assert_eq!(get_user_data(42).await, user);
        assert_eq!(queries() - before, 1, "the second call is a hit");
        assert_near(
            pttl_secs(&server, &get_user_data_key(42).unwrap()).await,
            3600.0,
        );
        assert!(get_user_data_invalidate(42).await.unwrap());
        get_user_data(42).await;
        assert_eq!(queries() - before, 2, "invalidated: queried again");
        assert_eq!(
            larder::invalidate_cache_pattern("user_data:*")
                .await
                .unwrap(),
            1
        );
        assert_eq!(get_user_data_peek(42).await.unwrap(), None);

        // get_product_data: TTL from popularity, or from the argument.
        for (id, ttl) in [(9, 300.0), (7, 1800.0), (3, 7200.0)] {
            let product = get_product_data(id, None).await;
            assert_eq!(product.id, id);
            let key = get_product_data_key(id).unwrap();
            assert_near(pttl_secs(&server, &key).await, ttl);
        }
        get_product_data_invalidate(3).await.unwrap();
        get_product_data(3, Some(Duration::from_secs(42))).await;
        assert_near(
            pttl_secs(&server, &get_product_data_key(3).unwrap()).await,
            42.0,
        );
        // The ttl argument is not part of the key: same entry.
        let before = queries();
        get_product_data(3, Some(Duration::from_secs(5))).await;
        assert_eq!(queries(), before);

        // calculate_user_metrics: a day.
        let metrics = calculate_user_metrics(7).await;
        assert_eq!(calculate_user_metrics_peek(7).await.unwrap(), Some(metrics));
        assert_near(
            pttl_secs(&server, &calculate_user_metrics_key(7).unwrap()).await,
            86400.0,
        );

        // Expiry: a one-second entry is gone after a second.
        let before = queries();
        short_lived(1).await;
        short_lived(1).await;
        assert_eq!(queries() - before, 1);
        tokio::time::sleep(Duration::from_millis(1300)).await; // time itself must pass
        short_lived(1).await;
        assert_eq!(queries() - before, 2, "expired: queried again");

        // Err is never cached.
        assert_eq!(flaky(1).await, Err("database timeout".to_string()));
        assert_eq!(flaky_peek(1).await.unwrap(), None);
        assert_eq!(flaky(1).await, Ok(1));
        assert_eq!(flaky_peek(1).await.unwrap(), Some(1));
        assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 2);

        // None is cached only when asked, with its own TTL.
        let before = queries();
        assert_eq!(find_user(404).await, None);
        assert_eq!(find_user(404).await, None);
        assert_eq!(queries() - before, 2, "None not cached by default");
        assert_eq!(find_user_negative(404).await, None);
        assert_eq!(find_user_negative(404).await, None);
        assert_eq!(queries() - before, 3, "None cached with cache_none");
        assert_eq!(find_user_negative_peek(404).await.unwrap(), Some(None));
        assert_near(
            pttl_secs(&server, &find_user_negative_key(404).unwrap()).await,
            30.0,
        );

        // prime and refresh.
        let fake = UserData {
            id: 1,
            name: "Primed".into(),
            email: "p@example.com".into(),
        };
        get_user_data_prime(1, fake.clone()).await.unwrap();
        assert_eq!(get_user_data(1).await, fake);
        assert_eq!(get_user_data_refresh(1).await.name, "User 1");
        assert_eq!(get_user_data(1).await.name, "User 1");
    });

    // get_job_statistics: a sync function, called from plain threads (no runtime).
    let before = queries();
    let all = get_job_statistics(None);
    let plumbing = get_job_statistics(Some("plumbing".into()));
    assert_eq!(all.total, 2);
    assert_eq!(plumbing.total, 1);
    assert_eq!(get_job_statistics(None), all);
    assert_eq!(get_job_statistics(Some("plumbing".into())), plumbing);
    assert_eq!(queries() - before, 2, "one query per filter");
    assert_ne!(
        get_job_statistics_key(None).unwrap(),
        get_job_statistics_key(Some("plumbing".into())).unwrap()
    );
    assert!(get_job_statistics_invalidate(None).unwrap());
    // …and from inside a runtime's async code, where it must neither panic nor deadlock.
    let inside = runtime.block_on(async { get_job_statistics(None) });
    assert_eq!(inside, all);
    let ttl = runtime.block_on(pttl_secs(&server, &get_job_statistics_key(None).unwrap()));
    assert_near(ttl, 3600.0);
}

#[test]
fn keys_are_the_same_in_another_process() {
    let keys = || {
        [
            get_user_data_key(42).unwrap(),
            get_product_data_key(9).unwrap(),
            calculate_user_metrics_key(7).unwrap(),
            get_job_statistics_key(Some("plumbing".into())).unwrap(),
            get_job_statistics_key(None).unwrap(),
        ]
        .join("\n")
    };
    if std::env::var_os("LARDER_KEYS_CHILD").is_some() {
        println!("KEYS-BEGIN\n{}\nKEYS-END", keys());
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "keys_are_the_same_in_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LARDER_KEYS_CHILD", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "child failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let child = stdout
        .split("KEYS-BEGIN\n")
        .nth(1)
        .and_then(|rest| rest.split("\nKEYS-END").next())
        .expect("the child printed its keys");
    assert_eq!(child, keys());
    assert!(child.starts_with("user_data:"), "{child}");
}
