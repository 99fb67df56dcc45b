//! Review item 6 of the local tier, alone in its process: a cached value
//! whose `Drop` panics on the subscriber's thread. (Printing that panic's
//! backtrace can hold Larder's shared I/O runtime for longer than a ping
//! interval, which would stop every other test's tier in the process.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use larder::{Cache, Config, Tier};
use larder_test_support::RedisServer;

const TTL: Duration = Duration::from_secs(600);

async fn cache(url: &str) -> Cache {
    let config = Config::builder()
        .redis_url(url)
        .deadline(Duration::from_secs(5))
        .local("user", Duration::from_secs(60))
        .build()
        .unwrap();
    let cache = Cache::connect(config).await.unwrap();
    until(&cache, |c| c.local_tier_hearing()).await;
    cache
}

async fn until(cache: &Cache, done: impl Fn(&Cache) -> bool) {
    let mut events = cache.local_tier_events();
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        while !done(cache) {
            events.changed().await.unwrap();
        }
    })
    .await;
    assert!(waited.is_ok(), "the local tier never got there");
}

async fn user(cache: &Cache, key: &str, name: &str) -> larder::Fetched<String> {
    let name = name.to_owned();
    cache
        .fetch_or_compute(key, TTL, || async move { name })
        .await
        .unwrap()
}

async fn held(cache: &Cache, key: &str, name: &str) {
    user(cache, key, name).await;
    assert_eq!(user(cache, key, name).await.tier, Tier::Local);
}

// ---------------------------------------------------------------------
// 6. If the subscriber task dies (here: a value whose Drop panics is
//    dropped by the subscriber when it applies an invalidation), the tier
//    keeps `hearing` forever: nothing deafens it, nothing applies the
//    invalidations that follow.
// ---------------------------------------------------------------------
static PANIC_ON_DROP: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Touchy(String);

impl Drop for Touchy {
    fn drop(&mut self) {
        if self.0 == "touchy" && PANIC_ON_DROP.load(Ordering::SeqCst) && !std::thread::panicking() {
            panic!("Touchy dropped");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_subscriber_deafens_the_tier() {
    let server = RedisServer::spawn();
    let (a, b) = (cache(&server.url()).await, cache(&server.url()).await);
    for _ in 0..2 {
        let fetched = a
            .fetch_or_compute("user:t", TTL, || async { Touchy("touchy".into()) })
            .await
            .unwrap();
        drop(fetched); // the tier's copy is the last one
    }
    held(&a, "user:6", "old").await;
    PANIC_ON_DROP.store(true, Ordering::SeqCst);
    b.delete_cached_data("user:t").await.unwrap(); // A's subscriber drops the last Touchy
    until(&a, |a| !a.local_tier_serves("user:t")).await;
    PANIC_ON_DROP.store(false, Ordering::SeqCst);
    b.set("user:6", "new", TTL).await.unwrap();
    // Wait up to 5 ping intervals for A to notice anything.
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        until(&a, |a| !a.local_tier_serves("user:6")),
    )
    .await;
    let seen = user(&a, "user:6", "x").await;
    assert_eq!(
        seen.value,
        "new",
        "A serves {:?} from {:?}; hearing = {}",
        seen.value,
        seen.tier,
        a.local_tier_hearing()
    );
}
