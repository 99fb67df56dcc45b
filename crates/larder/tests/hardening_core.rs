//! Regressions from the second review of the core (issue 9): each test
//! reproduces a defect found against `d427450` — serialised waiters, leaked
//! passwords, lost lease epochs, pattern invalidation under `noeviction`,
//! the size cap, unvalidated prefixes, bit flips, extreme settings, foreign
//! bytes in bookkeeping keys, rolling deploys, the per-call deadline, an
//! unbounded `set_many`, immortal bookkeeping keys, polling waiters and a
//! two-round-trip delete — and asserts the behaviour that replaced it.
#![allow(missing_debug_implementations)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, ErrorKind};
use larder_test_support::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::{Barrier, oneshot};

const HOUR: Duration = Duration::from_secs(3600);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every key of the default prefix and version that is not a value:
/// Larder's own bookkeeping.
async fn bookkeeping_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("larder:1~*")
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys
}

// ---------------------------------------------------------------------------
// Point 7: waiters served one at a time.

/// 30 concurrent callers on a failing 50 ms origin: the origin runs once,
/// and every waiter is released with the error at once — not retried one
/// at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p07_failing_origin_releases_all_waiters_at_once() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(30));
    let started = Instant::now();
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (cache, calls, barrier) = (cache.clone(), calls.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let result = cache
                    .try_get_or_compute("report:1", HOUR, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await; // the origin's work
                        Err::<u32, BoxError>("database down".into())
                    })
                    .await;
                (result, started.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for task in tasks {
        let (result, elapsed) = task.await.unwrap();
        assert!(result.is_err());
        slowest = slowest.max(elapsed);
    }
    eprintln!("p07: 30 callers on a failing 50 ms origin: slowest finished after {slowest:?}");
    // Callers that raced the leader's failure start a flight of their own;
    // none waits for a queue of retries.
    let calls = calls.load(Ordering::SeqCst);
    assert!(
        calls <= 3,
        "the failing origin ran {calls} times for 30 callers"
    );
}

/// A `#[cached]`-style origin whose error cannot be shared: the waiters
/// retry at once, in parallel — never one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p07_unshareable_failures_retry_in_parallel() {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    #[larder::cached(cache = CACHE.get().unwrap(), namespace = "flaky", ttl = 3600)]
    async fn flaky(id: u32, #[larder(skip)] running: &Running) -> Result<u32, String> {
        let now = running.now.fetch_add(1, Ordering::SeqCst) + 1;
        running.peak.fetch_max(now, Ordering::SeqCst);
        running.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.now.fetch_sub(1, Ordering::SeqCst);
        Err(format!("origin down for {id}"))
    }
    let server = RedisServer::spawn();
    CACHE
        .set(common::redis_cache(&server, |b| b).await)
        .unwrap();
    let running = Arc::new(Running::default());
    let barrier = Arc::new(Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (running, barrier) = (running.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                flaky(7, &running).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), "origin down for 7");
    }
    let peak = running.peak.load(Ordering::SeqCst);
    let calls = running.calls.load(Ordering::SeqCst);
    // One at a time would be a peak of 1 over 30 calls.
    assert!(
        peak > 1 || calls <= 2,
        "{calls} calls ran one at a time (peak {peak})"
    );
}

#[derive(Debug, Default)]
struct Running {
    now: AtomicUsize,
    peak: AtomicUsize,
    calls: AtomicUsize,
}

/// 30 readers of a hot key while pattern invalidations of another
/// namespace run every 10 ms: the value is stored, the origin runs a
/// handful of times at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p07_unrelated_pattern_invalidations_do_not_void_hot_fills() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let invalidator = common::redis_cache(&server, |b| b).await;
    let stop = Arc::new(AtomicBool::new(false));
    let churn = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut rounds = 0_u32;
            while !stop.load(Ordering::SeqCst) {
                invalidator
                    .invalidate_cache_pattern("orders:*")
                    .await
                    .unwrap();
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(10)).await; // the churn's pace
            }
            rounds
        }
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let mut rounds_of_readers = 0;
    for _ in 0..10 {
        let readers: Vec<_> = (0..30)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_compute("product:1", HOUR, || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(30)).await; // the origin
                            42_u32
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap(), 42);
        }
        rounds_of_readers += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let churned = churn.await.unwrap();
    assert!(churned > 0);
    assert_eq!(
        cache.get::<u32>("product:1").await.unwrap(),
        Some(42),
        "the hot value was never stored"
    );
    let calls = calls.load(Ordering::SeqCst);
    eprintln!(
        "p07: {rounds_of_readers} rounds of 30 readers, {churned} unrelated invalidations, {calls} origin calls"
    );
    assert!(calls <= 3, "the origin ran {calls} times");
}

// ---------------------------------------------------------------------------
// Point 8: passwords leak.

const PASSWORDS: &[&str] = &[
    "s3cret",
    "ab/cd+ef==",
    "pa?ss=word",
    "pa#ss",
    "p@ss@word",
    "pass:word",
    "p%2Fss",
    "Zm9vYmFyL2Jheg/==",
];

#[test]
fn p08_no_password_in_any_debug_display_or_error() {
    for password in PASSWORDS {
        for url in [
            format!("redis://app:{password}@cache.internal:6380/2"),
            format!("redis://:{password}@cache.internal/"),
            format!("redis://{password}@cache.internal/"),
            format!("rediss://app:{password}@cache.internal:6380"),
            format!("redis://app:{password}@[::1]:6380/0"),
            format!("redis://app:{password}@cache.internal:port/0"),
            format!("unix:///run/redis.sock?db=1&pass={password}"),
        ] {
            let builder = Config::builder().redis_url(&url);
            let printed = format!("{builder:?}");
            assert!(!printed.contains(password), "builder Debug: {printed}");
            match builder.build() {
                Ok(config) => {
                    let printed = format!("{config:?} {:?}", config.redis_url());
                    assert!(!printed.contains(password), "config Debug: {printed}");
                    if let Some(url) = config.redis_url() {
                        let shown = url.to_string();
                        assert!(!shown.contains(password), "Display: {shown}");
                    }
                }
                Err(err) => {
                    let printed = format!("{err} {err:?} {}", error_chain(&err));
                    assert!(!printed.contains(password), "error: {printed}");
                }
            }
        }
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut source = err.source();
    while let Some(err) = source {
        out.push_str(&format!(" / {err} {err:?}"));
        source = err.source();
    }
    out
}

/// A fail-closed start-up against a server that refuses the password: the
/// error names the server, never the password.
#[tokio::test]
async fn p08_no_password_in_connection_errors() {
    let server = RedisServer::builder()
        .args(["--requirepass", "right-one"])
        .spawn();
    for password in PASSWORDS {
        let url = format!("redis://default:{password}@127.0.0.1:{}/0", server.port());
        let config = Config::builder()
            .redis_url(&url)
            .fail_mode(larder::FailMode::Closed)
            .build();
        let err = match config {
            Ok(config) => match Cache::connect(config).await {
                Ok(_) => panic!("a wrong password connected"),
                Err(err) => err,
            },
            Err(err) => err,
        };
        let printed = format!("{err} {err:?} {}", error_chain(&err));
        assert!(!printed.contains(password), "{printed}");
    }
}

// ---------------------------------------------------------------------------
// Point 9: a lost epoch key must not revive old leases.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p09_losing_the_epoch_key_never_accepts_a_stale_fill() {
    let server = RedisServer::spawn();
    let reader = common::redis_cache(&server, |b| b).await;
    let writer = common::redis_cache(&server, |b| b).await;
    let mut conn = common::raw(&server).await;
    let (read_tx, read_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let fill = tokio::spawn(async move {
        reader
            .get_or_compute("product:1", HOUR, || async move {
                read_tx.send(()).unwrap(); // read the old row
                go_rx.await.unwrap();
                "old".to_string()
            })
            .await
            .unwrap();
        reader
    });
    read_rx.await.unwrap();
    writer.invalidate_cache_pattern("product:*").await.unwrap();
    // Redis loses the bookkeeping keys (eviction, a FLUSH of them, a
    // failover to a replica that never had them) — but not the lease.
    for key in bookkeeping_keys(&mut conn).await {
        if !key.contains("~lease:") {
            redis::cmd("DEL")
                .arg(&key)
                .exec_async(&mut conn)
                .await
                .unwrap();
        }
    }
    go_tx.send(()).unwrap();
    let reader = fill.await.unwrap();
    assert_eq!(
        reader.get::<String>("product:1").await.unwrap(),
        None,
        "a fill from before the invalidation was stored"
    );
}

// ---------------------------------------------------------------------------
// Point 10: pattern invalidation under maxmemory + noeviction.

#[tokio::test]
async fn p10_pattern_invalidation_deletes_under_noeviction_oom() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b.breaker_failures(1000)).await;
    let mut conn = common::raw(&server).await;
    for id in 0..200 {
        cache
            .set(&format!("product:{id}"), &"x".repeat(512), HOUR)
            .await
            .unwrap();
    }
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .exec_async(&mut conn)
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used.saturating_sub(64 * 1024).to_string())
        .exec_async(&mut conn)
        .await
        .unwrap();
    let oom: redis::RedisResult<()> = redis::cmd("SET")
        .arg("probe")
        .arg("x")
        .exec_async(&mut conn)
        .await;
    assert!(oom.is_err(), "the server is not out of memory yet");
    let removed = cache.invalidate_cache_pattern("product:*").await.unwrap();
    assert_eq!(removed, 200);
    assert_eq!(cache.get::<String>("product:7").await.unwrap(), None);
}

// ---------------------------------------------------------------------------
// Point 11: one size rule for writes and reads.

#[tokio::test]
async fn p11_a_compressible_value_over_the_cap_is_never_reported_cached() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b.max_value_bytes(1000)).await;
    let big = "a".repeat(5000); // compresses far below 1000 bytes
    let err = cache.set("blob:1", &big, HOUR).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    let computed = AtomicUsize::new(0);
    for _ in 0..5 {
        let value = cache
            .get_or_compute("blob:2", HOUR, || async {
                computed.fetch_add(1, Ordering::SeqCst);
                big.clone()
            })
            .await
            .unwrap();
        assert_eq!(value, big);
    }
    assert_eq!(computed.load(Ordering::SeqCst), 5);
    let mut conn = common::raw(&server).await;
    assert!(!common::exists(&mut conn, "larder:1:blob:2").await);
    // Under the cap, compressed or not, it is stored and read back.
    let small = "a".repeat(900);
    cache.set("blob:3", &small, HOUR).await.unwrap();
    assert_eq!(cache.get::<String>("blob:3").await.unwrap(), Some(small));
}

// ---------------------------------------------------------------------------
// Point 12: prefix and version are validated.

#[test]
fn p12_prefix_and_version_cannot_alias_other_caches() {
    for prefix in ["a:b", "a~b", "a*", "a b", "a\nb", "{a}", "ä"] {
        let err = Config::builder().prefix(prefix).build().unwrap_err();
        assert!(err.is_config(), "{prefix:?}: {err}");
        assert!(err.to_string().contains("prefix"), "{err}");
    }
    for version in ["1:2", "1~lease", "v*", "1 2", ""] {
        let err = Config::builder().version(version).build().unwrap_err();
        assert!(err.is_config(), "{version:?}: {err}");
        assert!(err.to_string().contains("version"), "{err}");
    }
    for (prefix, version) in [("shop", "1.1"), ("my_app-2", "2.0"), ("larder", "v3")] {
        Config::builder()
            .prefix(prefix)
            .version(version)
            .build()
            .unwrap();
    }
}

// ---------------------------------------------------------------------------
// Point 17: bit flips never decode to another value.

#[tokio::test]
async fn p17_no_single_bit_flip_decodes_to_a_different_value() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Account {
        id: u64,
        owner: String,
        balance_cents: i64,
        admin: bool,
    }
    let cache = Cache::in_memory();
    let account = Account {
        id: 7,
        owner: "alice".into(),
        balance_cents: 1234,
        admin: false,
    };
    cache.set("account:7", &account, HOUR).await.unwrap();
    let physical = cache.physical_key("account:7");
    let original = cache.store().get(&physical).await.unwrap().unwrap();
    let mut wrong = 0;
    let mut flips = 0;
    for byte in 0..original.len() {
        for bit in 0..8 {
            let mut flipped = original.to_vec();
            flipped[byte] ^= 1 << bit;
            cache
                .store()
                .set(&physical, Bytes::from(flipped), HOUR)
                .await
                .unwrap();
            flips += 1;
            if let Some(read) = cache.get::<Account>("account:7").await.unwrap()
                && read != account
            {
                wrong += 1;
            }
        }
    }
    assert_eq!(
        wrong, 0,
        "{wrong} of {flips} single-bit flips decoded to another value"
    );
}

// ---------------------------------------------------------------------------
// Point 18: extreme settings are refused by build(), not found by a panic.

#[test]
fn p18_extreme_durations_are_refused_with_a_clear_error() {
    let cases: Vec<(&str, larder::config::ConfigBuilder)> = vec![
        ("stale_grace", Config::builder().stale_grace(Duration::MAX)),
        ("default_ttl", Config::builder().default_ttl(Duration::MAX)),
        ("lease_ttl", Config::builder().lease_ttl(Duration::MAX)),
        ("deadline", Config::builder().deadline(Duration::MAX)),
        (
            "connect_timeout",
            Config::builder().connect_timeout(Duration::MAX),
        ),
        (
            "breaker_open_for",
            Config::builder().breaker_open_for(Duration::MAX),
        ),
    ];
    for (name, builder) in cases {
        let err = builder.build().unwrap_err();
        assert!(err.is_config(), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[tokio::test]
async fn p18_the_largest_accepted_grace_still_stores() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| {
        b.stale_grace(Duration::from_secs(10 * 365 * 24 * 3600))
            .fail_mode(larder::FailMode::Closed)
    })
    .await;
    cache.set("k:1", &1_u32, larder::MAX_TTL).await.unwrap();
    assert_eq!(cache.get::<u32>("k:1").await.unwrap(), Some(1));
}

// ---------------------------------------------------------------------------
// Point 20: foreign bytes in bookkeeping keys.

#[tokio::test]
async fn p20_foreign_bookkeeping_keys_are_repaired_not_an_outage() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b.breaker_failures(2)).await;
    let mut conn = common::raw(&server).await;
    // Create the bookkeeping keys: a miss, then a pattern invalidation.
    let _: u32 = cache
        .get_or_compute("product:1", HOUR, || async { 1 })
        .await
        .unwrap();
    cache.invalidate_cache_pattern("product:*").await.unwrap();
    let _: u32 = cache
        .get_or_compute("product:2", HOUR, || async { 2 })
        .await
        .unwrap();
    let keys = bookkeeping_keys(&mut conn).await;
    assert!(!keys.is_empty());
    for (i, key) in keys.iter().enumerate() {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if i % 2 == 0 {
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg("\u{1F4A5} not ours")
                .query_async(&mut conn)
                .await
                .unwrap();
        } else {
            let _: () = redis::cmd("HSET")
                .arg(key)
                .arg("f")
                .arg("v")
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    for id in 3..10_u32 {
        let value = cache
            .get_or_compute(&format!("product:{id}"), HOUR, || async move { id })
            .await
            .unwrap();
        assert_eq!(value, id);
        assert_eq!(
            cache.get::<u32>(&format!("product:{id}")).await.unwrap(),
            Some(id),
            "product:{id} was not cached"
        );
    }
    assert!(!format!("{cache:?}").contains("breaker_open: true"));
}

/// A lease key without a TTL (written by hand, or by a bug elsewhere)
/// must not block its key forever.
#[tokio::test]
async fn p20_an_immortal_lease_does_not_block_its_key() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b.lease_ttl(Duration::from_millis(200))).await;
    let mut conn = common::raw(&server).await;
    for held in ["1:0", "1|0|0", "1"] {
        let _: () = redis::cmd("SET")
            .arg("larder:1~lease:product:1")
            .arg(held)
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: u32 = cache
            .get_or_compute("product:1", HOUR, || async { 1 })
            .await
            .unwrap();
        assert_eq!(
            cache.get::<u32>("product:1").await.unwrap(),
            Some(1),
            "a lease `{held}` without TTL blocked the fill"
        );
        cache.delete_cached_data("product:1").await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Point 21: rolling deploys.

#[tokio::test]
async fn p21_two_builds_with_different_shapes_do_not_delete_each_other() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ProductV1 {
        id: u64,
        name: String,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ProductV2 {
        id: u64,
        name: String,
        sku: String, // new, required
    }
    let server = RedisServer::spawn();
    let old_build = common::redis_cache(&server, |b| b).await;
    let new_build = common::redis_cache(&server, |b| b).await;
    let v1 = ProductV1 {
        id: 1,
        name: "Teapot".into(),
    };
    old_build.set("product:1", &v1, HOUR).await.unwrap();
    for _ in 0..3 {
        assert_eq!(new_build.get::<ProductV2>("product:1").await.unwrap(), None);
    }
    assert_eq!(
        old_build.get::<ProductV1>("product:1").await.unwrap(),
        Some(v1),
        "the new build deleted the old build's entry"
    );
}

// ---------------------------------------------------------------------------
// Point 22: the deadline bounds the whole operation.

/// A store that accepts every call and never answers.
#[derive(Debug, Default)]
struct Hanging {
    calls: AtomicUsize,
}

impl Hanging {
    fn hang<'a, T: Send + 'a>(&'a self) -> StoreFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(futures::future::pending())
    }
}

impl Store for Hanging {
    fn name(&self) -> &'static str {
        "hanging"
    }
    fn get<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.hang()
    }
    fn mget<'a>(&'a self, _: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.hang()
    }
    fn set<'a>(&'a self, _: &'a str, _: Bytes, _: Duration) -> StoreFuture<'a, ()> {
        self.hang()
    }
    fn mset<'a>(&'a self, _: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.hang()
    }
    fn unlink<'a>(&'a self, _: &'a [String]) -> StoreFuture<'a, u64> {
        self.hang()
    }
    fn unlink_pattern<'a>(&'a self, _: &'a str, _: usize, _: Duration) -> StoreFuture<'a, u64> {
        self.hang()
    }
    fn get_or_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        self.hang()
    }
    fn take_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
        _: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        self.hang()
    }
    fn fill_leased<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: Lease,
        _: Bytes,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        self.hang()
    }
    fn release_lease<'a>(&'a self, _: LeaseKeys<'a>, _: Lease) -> StoreFuture<'a, ()> {
        self.hang()
    }
    fn publish<'a>(&'a self, _: &'a str, _: Bytes) -> StoreFuture<'a, ()> {
        self.hang()
    }
    fn subscribe<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Subscription> {
        self.hang()
    }
}

/// On a store that hangs, a miss costs the caller one deadline in all —
/// the read, the lease and the fill share it — not one per store call.
#[tokio::test(start_paused = true)]
async fn p22_a_miss_on_a_hanging_store_costs_one_deadline() {
    let store = Arc::new(Hanging::default());
    let deadline = Duration::from_millis(250);
    let config = Config::builder()
        .deadline(deadline)
        .breaker_failures(1000)
        .build()
        .unwrap();
    let cache = Cache::with_store(config, store.clone());
    let started = tokio::time::Instant::now();
    let value = cache
        .get_or_compute("product:1", HOUR, || async { 5_u32 })
        .await
        .unwrap();
    assert_eq!(value, 5);
    let added = started.elapsed();
    assert!(
        added <= deadline,
        "the cache added {added:?} to a miss with a {deadline:?} deadline ({} store calls)",
        store.calls.load(Ordering::SeqCst)
    );
    let started = tokio::time::Instant::now();
    cache.set("product:2", &1_u32, HOUR).await.unwrap();
    assert!(started.elapsed() <= deadline);
}

// ---------------------------------------------------------------------------
// Point 23: set_many never blocks Redis.

/// 5,000 entries go as plain O(1) commands, not as one script: nothing in
/// the batch can hold Redis for long, whatever its size. (The slow log is
/// checked for multi-key commands rather than for time alone: on a loaded
/// machine even a `SET` can be descheduled past any threshold.)
#[tokio::test]
async fn p23_a_large_set_many_runs_no_slow_command() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let mut conn = common::raw(&server).await;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg("3000") // µs
        .exec_async(&mut conn)
        .await
        .unwrap();
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let entries: Vec<(String, common::Product)> = (0..5000)
        .map(|id| (format!("product:{id}"), common::product(id)))
        .collect();
    cache.set_many(&entries, HOUR).await.unwrap();
    let slow: Vec<(u64, u64, u64, Vec<Vec<u8>>)> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100)
        .query_async::<Vec<redis::Value>>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| {
            let redis::Value::Array(fields) = entry else {
                panic!("slow log entry {entry:?}")
            };
            let mut fields = fields.into_iter();
            let id = redis::from_redis_value(fields.next().unwrap()).unwrap();
            let at = redis::from_redis_value(fields.next().unwrap()).unwrap();
            let micros = redis::from_redis_value(fields.next().unwrap()).unwrap();
            let args = redis::from_redis_value(fields.next().unwrap()).unwrap();
            (id, at, micros, args)
        })
        .collect();
    for (_, _, micros, args) in &slow {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        assert!(
            name == "SET" || name == "DEL",
            "{name} with {} arguments ran {micros} µs",
            args.len()
        );
    }
    for script in ["evalsha", "eval"] {
        assert_eq!(
            common::command_calls(&mut conn, script).await,
            0,
            "{script}"
        );
    }
    assert!(common::command_calls(&mut conn, "set").await >= 5000);
    let values = cache
        .get_many::<common::Product, _>(&["product:0", "product:4999"])
        .await
        .unwrap();
    assert_eq!(
        values,
        vec![Some(common::product(0)), Some(common::product(4999))]
    );
}

// ---------------------------------------------------------------------------
// Point 24: bookkeeping keys expire.

#[tokio::test]
async fn p24_every_bookkeeping_key_has_a_ttl() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let mut conn = common::raw(&server).await;
    let _: u32 = cache
        .get_or_compute("product:1", HOUR, || async { 1 })
        .await
        .unwrap();
    cache.invalidate_cache_pattern("product:*").await.unwrap();
    cache.invalidate_cache_pattern("*").await.unwrap();
    let _: u32 = cache
        .get_or_compute("product:2", HOUR, || async { 2 })
        .await
        .unwrap();
    let keys = bookkeeping_keys(&mut conn).await;
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} never expires (PTTL {ttl})");
    }
}

// ---------------------------------------------------------------------------
// Points 25 and 26: store calls counted per method.

/// A store that counts the calls it forwards.
#[derive(Debug)]
struct Counting<S> {
    inner: S,
    calls: Mutex<HashMap<&'static str, usize>>,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            calls: Mutex::default(),
        }
    }
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }
    fn calls(&self, op: &str) -> usize {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }
    fn total(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }
}

impl<S: Store> Store for Counting<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.count("get");
        self.inner.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.count("mget");
        self.inner.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.count("set");
        self.inner.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.count("mset");
        self.inner.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        self.count("unlink");
        self.inner.unlink(keys)
    }
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        self.count("unlink_entries");
        self.inner.unlink_entries(values, leases)
    }
    fn unlink_entries_and_publish<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
        channel: &'a str,
        message: Bytes,
    ) -> StoreFuture<'a, u64> {
        self.count("unlink_entries_and_publish");
        self.inner
            .unlink_entries_and_publish(values, leases, channel, message)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.count("unlink_pattern");
        self.inner.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        self.count("get_or_lease");
        self.inner.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        self.count("take_lease");
        self.inner.take_lease(keys, token, ttl, force)
    }
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.count("fill_leased");
        self.inner.fill_leased(keys, lease, value, ttl)
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        self.count("release_lease");
        self.inner.release_lease(keys, lease)
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.count("publish");
        self.inner.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.count("subscribe");
        self.inner.subscribe(channel)
    }
}

/// A waiter in another process learns of the fill when it happens: while
/// the holder computes for 300 ms it makes at most two lease round trips
/// (the one that found the lease held, the one that found the value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p25_a_cross_process_waiter_is_told_of_the_fill() {
    let server = RedisServer::spawn();
    let holder = common::redis_cache(&server, |b| b).await;
    let counted = Arc::new(Counting::new(common::redis_store(&server)));
    let config = Config::builder()
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let waiter = Cache::with_store(config, counted.clone());
    let (holding, fill_tx) = common::hold_a_computation(holder, "report:1").await;
    let waiting = common::wait_for(&waiter, "report:1");
    // Time passes while the holder computes: a polling waiter would ask
    // again and again meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_fill = Instant::now();
    fill_tx.send(()).unwrap();
    assert_eq!(holding.await.unwrap(), "report");
    assert_eq!(waiting.await.unwrap(), "report");
    eprintln!(
        "p25: the waiter had the value {:?} after the fill; store calls {:?}",
        before_fill.elapsed(),
        counted.calls.lock().unwrap()
    );
    let lease_calls = counted.calls("get_or_lease");
    assert!(
        lease_calls <= 2,
        "the waiter asked {lease_calls} times while the holder computed"
    );
}

/// `delete_cached_data` is one round trip: the lease and the value go in
/// one call.
#[tokio::test]
async fn p26_delete_is_one_round_trip() {
    let server = RedisServer::spawn();
    let counted = Arc::new(Counting::new(common::redis_store(&server)));
    let cache = Cache::with_store(Config::default(), counted.clone());
    cache.set("product:1", &1_u32, HOUR).await.unwrap();
    let before = counted.total();
    assert!(cache.delete_cached_data("product:1").await.unwrap());
    assert_eq!(
        counted.total() - before,
        1,
        "{:?}",
        counted.calls.lock().unwrap()
    );
    assert!(!cache.delete_cached_data("product:1").await.unwrap());
    assert_eq!(cache.get::<u32>("product:1").await.unwrap(), None);
}
