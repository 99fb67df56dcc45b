//! Regressions from a hostile review of the hardened core (issue 9, "nobody
//! gets another caller's data"): each test reproduced one defect — a
//! receiver or type parameter left out of a key, a template that is not
//! injective, tag invalidation undone by an evicted or foreign index, a
//! value from before a delete handed to a caller that began after it,
//! unbounded bookkeeping, settings under which nothing is stored, a
//! percent-encoded password, a partially hanging store, another build's
//! large entry deleted, an ACL user without channel rights — and now
//! asserts the behaviour that replaced it. On a private redis-server (or
//! the in-process store), with signals (oneshot channels, Redis state,
//! metrics) rather than sleeps as synchronisation.
#![allow(missing_debug_implementations, missing_docs)]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use larder::__private::{self as support, Computed, Sharing};
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, ErrorKind};
use larder_test_support::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::oneshot;

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// Helpers.

/// The recorder of this test binary, installed once, before any cache
/// registers its metric handles.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

/// The value of the counter `name` for `namespace`.
fn counter(name: &str, namespace: &str) -> u64 {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == name)
        .filter(|(key, ..)| {
            key.key()
                .labels()
                .any(|l| l.key() == "namespace" && l.value() == namespace)
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

/// Waits (yielding, bounded) until `condition` holds.
async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    common::raw(server).await
}

// ---------------------------------------------------------------------------
// 1. A value that is not stored (over the size cap) still answers a waiter
//    that joined the flight *after* another cache's delete voided the
//    leader's lease: the waiter began after the write and gets the value
//    computed before it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_value_from_before_a_delete_answers_a_waiter_that_joined_after_it() {
    snapshotter();
    let server = RedisServer::spawn();
    let reader = common::redis_cache(&server, |b| b.max_value_bytes(64)).await;
    let writer = common::redis_cache(&server, |b| b.max_value_bytes(64)).await;
    let key = "rv1oversize:1";
    let (computing_tx, computing_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let leader = tokio::spawn({
        let reader = reader.clone();
        async move {
            reader
                .get_or_compute(key, HOUR, || async move {
                    computing_tx.send(()).unwrap(); // reads the old row
                    go_rx.await.unwrap();
                    format!("old {}", "x".repeat(200)) // over the cap
                })
                .await
                .unwrap()
        }
    });
    computing_rx.await.unwrap();
    // The write: another instance deletes the entry (and its lease) and
    // returns. Everything that starts from now on must see the new state.
    writer.delete_cached_data(key).await.unwrap();
    let late = tokio::spawn({
        let reader = reader.clone();
        async move {
            reader
                .get_or_compute(key, HOUR, || async { "new".to_string() })
                .await
                .unwrap()
        }
    });
    until("the late caller waits on the leader's flight", async || {
        counter("larder_coalesced_total", "rv1oversize") >= 1
    })
    .await;
    go_tx.send(()).unwrap();
    assert!(leader.await.unwrap().starts_with("old"));
    assert_eq!(
        late.await.unwrap(),
        "new",
        "a caller that began after the delete returned got the value computed before it"
    );
}

/// The same with a fill that fails on the store (here: a `fill_leased`
/// that errors): the value is handed to every waiter, including one that
/// joined after another cache's delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fill_from_before_a_delete_answers_a_waiter_that_joined_after_it() {
    snapshotter();
    let server = RedisServer::spawn();
    let store = Arc::new(FailingFill(common::redis_store(&server)));
    let config = Config::builder()
        .deadline(Duration::from_secs(2))
        .breaker_failures(1000)
        .build()
        .unwrap();
    let reader = Cache::with_store(config, store);
    let writer = common::redis_cache(&server, |b| b).await;
    let key = "rv1fill:1";
    let (computing_tx, computing_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let leader = tokio::spawn({
        let reader = reader.clone();
        async move {
            reader
                .get_or_compute(key, HOUR, || async move {
                    computing_tx.send(()).unwrap();
                    go_rx.await.unwrap();
                    "old".to_string()
                })
                .await
                .unwrap()
        }
    });
    computing_rx.await.unwrap();
    writer.delete_cached_data(key).await.unwrap();
    let late = tokio::spawn({
        let reader = reader.clone();
        async move {
            reader
                .get_or_compute(key, HOUR, || async { "new".to_string() })
                .await
                .unwrap()
        }
    });
    until("the late caller waits on the leader's flight", async || {
        counter("larder_coalesced_total", "rv1fill") >= 1
    })
    .await;
    go_tx.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), "old");
    assert_eq!(
        late.await.unwrap(),
        "new",
        "a caller that began after the delete returned got the value computed before it"
    );
}

/// The same on a real Redis that is out of memory (`maxmemory` with
/// `noeviction`): the lease cannot be taken, the leader computes without
/// one, and its value answers a caller that joined after another
/// instance's delete had returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unleased_value_from_before_a_delete_answers_a_waiter_that_joined_after_it() {
    snapshotter();
    let server = RedisServer::builder()
        .args(["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])
        .spawn();
    let reader = common::redis_cache(&server, |b| b.breaker_failures(1000)).await;
    let writer = common::redis_cache(&server, |b| b.breaker_failures(1000)).await;
    let mut conn = raw(&server).await;
    let filler = "f".repeat(4096);
    for i in 0.. {
        let stored: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("other:{i}"))
            .arg(&filler)
            .query_async(&mut conn)
            .await;
        if stored.is_err() {
            break; // OOM
        }
    }
    let key = "rv1oom:1";
    let (computing_tx, computing_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let leader = tokio::spawn({
        let reader = reader.clone();
        async move {
            reader
                .get_or_compute(key, HOUR, || async move {
                    computing_tx.send(()).unwrap();
                    go_rx.await.unwrap();
                    "old".to_string()
                })
                .await
                .unwrap()
        }
    });
    computing_rx.await.unwrap();
    writer.delete_cached_data(key).await.unwrap();
    let late = tokio::spawn({
        let reader = reader.clone();
        async move {
            reader
                .get_or_compute(key, HOUR, || async { "new".to_string() })
                .await
                .unwrap()
        }
    });
    until("the late caller waits on the leader's flight", async || {
        counter("larder_coalesced_total", "rv1oom") >= 1
    })
    .await;
    go_tx.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), "old");
    assert_eq!(
        late.await.unwrap(),
        "new",
        "a caller that began after the delete returned got the value computed before it"
    );
}

/// A Redis store whose leased fills fail (the store rejects the script).
#[derive(Debug)]
struct FailingFill(larder::store::RedisStore);

impl Store for FailingFill {
    fn name(&self) -> &'static str {
        "failing-fill"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.0.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.0.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.0.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.0.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        self.0.unlink(keys)
    }
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        self.0.unlink_entries(values, leases)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.0.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        self.0.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        self.0.take_lease(keys, token, ttl, force)
    }
    fn fill_leased<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: Lease,
        _: Bytes,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async {
            Err(larder::Error::new(
                ErrorKind::Rejected,
                "OOM command not allowed when used memory > 'maxmemory'",
            ))
        })
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        self.0.release_lease(keys, lease)
    }
    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.0.unlink_index(index, batch, deadline)
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.0.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.0.subscribe(channel)
    }
}

// ---------------------------------------------------------------------------
// 2. Extreme settings: `scan_batch` is only checked for > 0.

#[tokio::test]
async fn scan_batch_beyond_what_redis_accepts_is_refused_by_build() {
    let server = RedisServer::spawn();
    let built = Config::builder()
        .redis_url(server.url())
        .scan_batch(usize::MAX)
        .build();
    let Ok(config) = built else { return };
    // build() accepted it: every pattern invalidation now fails.
    let cache = Cache::connect(config).await.unwrap();
    cache.set("product:1", &1_u32, HOUR).await.unwrap();
    let outcome = cache.invalidate_cache_pattern("product:*").await;
    panic!(
        "build() accepted scan_batch = usize::MAX; invalidate_cache_pattern then gives {outcome:?} \
         and product:1 is still cached: {:?}",
        cache.get::<u32>("product:1").await
    );
}

// ---------------------------------------------------------------------------
// 3. Tag indexes: foreign bytes and loss.

async fn tagged(cache: &Cache, key: &str, tag: &str, value: &str) -> String {
    let tags = [tag.to_owned()];
    let value = value.to_owned();
    let served = support::cached_served_sharing::<String, (), _, _>(
        cache,
        key,
        HOUR,
        None,
        &tags,
        &Sharing::none(),
        || async move { Ok(Computed::plain(value)) },
    )
    .await
    .unwrap();
    served.value
}

/// Point 20 says foreign bytes in a tag index are repaired, never an
/// outage. A string where the index should be makes every invalidation of
/// the tag fail (WRONGTYPE from SSCAN) until a fill happens to repair it.
#[tokio::test]
async fn a_foreign_tag_index_makes_tag_invalidation_fail() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let mut conn = raw(&server).await;
    for (kind, write) in [
        ("string", vec!["SET", "larder:1~tag:t1", "junk"]),
        ("hash", vec!["HSET", "larder:1~tag:t1", "f", "v"]),
        ("list", vec!["RPUSH", "larder:1~tag:t1", "a"]),
        ("zset", vec!["ZADD", "larder:1~tag:t1", "1", "a"]),
    ] {
        let _: () = redis::cmd("DEL")
            .arg("larder:1~tag:t1")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut cmd = redis::cmd(write[0]);
        for arg in &write[1..] {
            cmd.arg(*arg);
        }
        let _: () = cmd.query_async(&mut conn).await.unwrap();
        let outcome = support::invalidate_tag(&cache, "t1").await;
        assert!(
            outcome.is_ok(),
            "a {kind} under the tag index made invalidate_tag fail: {outcome:?}"
        );
    }
}

/// An index lost (evicted under `allkeys-*`, deleted, a failover) leaves
/// every entry filled under the tag out of reach of its invalidation: the
/// entry survives `invalidate_tag` and is served until its TTL. Stamps
/// are safe under loss (a missing stamp voids); indexes are not.
#[tokio::test]
async fn a_lost_tag_index_lets_an_invalidated_entry_survive() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let mut conn = raw(&server).await;
    assert_eq!(tagged(&cache, "page:1", "path-1", "old").await, "old");
    assert_eq!(
        tagged(&cache, "page:1", "path-1", "unused").await,
        "old",
        "a hit"
    );
    // Redis loses the index (and only the index).
    let _: () = redis::cmd("DEL")
        .arg("larder:1~tag:path-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    // The write: the tag is invalidated.
    support::invalidate_tag(&cache, "path-1").await.unwrap();
    assert_eq!(
        tagged(&cache, "page:1", "path-1", "new").await,
        "new",
        "the entry survived the invalidation of its tag"
    );
}

/// The same loss by real eviction, under the most common cache setting,
/// `maxmemory-policy allkeys-lru`: an index is written when its entry is
/// filled and never read again, so it is the least recently used key and
/// goes before the hot values it indexes. (The sleep is not a
/// synchronisation: Redis's LRU clock ticks once a second, and the
/// indexes must be older than the reads of the values.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_of_tag_indexes_lets_invalidated_entries_survive() {
    let server = RedisServer::builder()
        .args(["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"])
        .args(["--maxmemory-samples", "10"])
        .spawn();
    let cache = common::redis_cache(&server, |b| b.breaker_failures(1000)).await;
    let mut conn = raw(&server).await;
    let pages = 300;
    for i in 0..pages {
        tagged(&cache, &format!("page:{i}"), &format!("path-{i}"), "old").await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The pages are hot: read again and again.
    for i in 0..pages {
        assert_eq!(
            tagged(&cache, &format!("page:{i}"), &format!("path-{i}"), "unused").await,
            "old"
        );
    }
    // Memory pressure from other keys: Redis evicts the least recently used.
    let filler = "f".repeat(1000);
    let mut i = 0;
    loop {
        let indexes: Vec<String> = redis::cmd("KEYS")
            .arg("larder:1~tag:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if indexes.len() < pages * 9 / 10 || i > 20_000 {
            break;
        }
        for _ in 0..50 {
            let _: () = redis::cmd("SET")
                .arg(format!("other:{i}"))
                .arg(&filler)
                .query_async(&mut conn)
                .await
                .unwrap();
            i += 1;
        }
    }
    // A write to every path invalidates its tag.
    for i in 0..pages {
        support::invalidate_tag(&cache, &format!("path-{i}"))
            .await
            .unwrap();
    }
    let mut survivors = Vec::new();
    for i in 0..pages {
        let got = tagged(&cache, &format!("page:{i}"), &format!("path-{i}"), "new").await;
        if got == "old" {
            survivors.push(i);
        }
    }
    assert!(
        survivors.is_empty(),
        "{} of {pages} pages survived the invalidation of their tag (index evicted): {:?}",
        survivors.len(),
        &survivors[..survivors.len().min(10)]
    );
}

// ---------------------------------------------------------------------------
// 4. The in-process store's bookkeeping (stamps, tag indexes) never
//    expires and is not bounded by `memory_capacity_bytes`.

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// 150,000 distinct keys without a `:` (each is its own namespace, so each
/// miss makes a namespace stamp) on an in-process store bounded to 1 MiB:
/// the process grows by far more than the bound, and never shrinks back.
#[tokio::test]
async fn memory_store_stamps_grow_without_bound() {
    let config = Config::builder()
        .memory_capacity_bytes(1 << 20)
        .ttl_jitter(0.0)
        .build()
        .unwrap();
    let cache = Cache::connect(config).await.unwrap();
    // Warm up allocator and moka to the bound.
    for i in 0..20_000_u32 {
        let _: u32 = cache
            .get_or_compute(
                &format!("warm{i}"),
                Duration::from_millis(50),
                || async move { i },
            )
            .await
            .unwrap();
    }
    // Control: 150,000 distinct keys in one namespace stay within bounds.
    let before = rss_bytes();
    for i in 0..150_000_u32 {
        let _: u32 = cache
            .get_or_compute(
                &format!("session:{i}"),
                Duration::from_millis(50),
                || async move { i },
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let control = rss_bytes().saturating_sub(before);
    assert!(control < 8 << 20, "control grew by {} MiB", control >> 20);
    eprintln!("control: one namespace, 150k keys: +{} KiB", control >> 10);
    let before = rss_bytes();
    for i in 0..150_000_u32 {
        let _: u32 = cache
            .get_or_compute(
                &format!("session{i}"),
                Duration::from_millis(50),
                || async move { i },
            )
            .await
            .unwrap();
    }
    // Every entry has expired (50 ms TTL); only bookkeeping can remain.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 8 << 20,
        "the in-process store (bounded to 1 MiB) grew the process by {} MiB for 150k expired keys",
        grown >> 20
    );
}

// ---------------------------------------------------------------------------
// 5. Passwords.

/// redis-rs reads `pass` from a unix URL's query after percent-decoding
/// the parameter's *name*: `p%61ss=` is the password too. Display must
/// not print it.
#[test]
fn a_percent_encoded_pass_parameter_is_redacted() {
    for url in [
        "unix:///run/redis.sock?p%61ss=s3cretpw",
        "redis+unix:///run/redis.sock?%70ass=s3cretpw",
        "unix:///run/redis.sock?db=1&pa%73s=s3cretpw",
    ] {
        let parsed = larder::config::RedisUrl::parse(url).unwrap();
        let shown = format!("{parsed} {parsed:?}");
        assert!(!shown.contains("s3cretpw"), "{url} is shown as {shown}");
        let config = Config::builder().redis_url(url).build().unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cretpw"), "{url}: config shows {shown}");
    }
}

// ---------------------------------------------------------------------------
// 6. The deadline and a partially hanging store.

/// A Redis store whose scripts and SUBSCRIBE never answer (GET does).
#[derive(Debug)]
struct ScriptsHang(larder::store::RedisStore);

fn hang<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(futures::future::pending())
}

impl Store for ScriptsHang {
    fn name(&self) -> &'static str {
        "scripts-hang"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.0.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.0.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.0.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.0.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        self.0.unlink(keys)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.0.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        hang()
    }
    fn take_lease<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: u64,
        _: Duration,
        _: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        hang()
    }
    fn fill_leased<'a>(
        &'a self,
        _: LeaseKeys<'a>,
        _: Lease,
        _: Bytes,
        _: Duration,
    ) -> StoreFuture<'a, bool> {
        hang()
    }
    fn release_lease<'a>(&'a self, _: LeaseKeys<'a>, _: Lease) -> StoreFuture<'a, ()> {
        hang()
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.0.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Subscription> {
        hang()
    }
}

/// Every miss against a store whose GET answers but whose scripts and
/// SUBSCRIBE hang costs two deadlines, not one: the wait for the
/// subscription (while its first attempt is "under way", i.e. forever) is
/// not counted against the operation's budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_on_a_partially_hanging_store_costs_one_deadline() {
    let server = RedisServer::spawn();
    let deadline = Duration::from_millis(300);
    let config = Config::builder()
        .deadline(deadline)
        .breaker_failures(1000)
        .build()
        .unwrap();
    let cache = Cache::with_store(config, Arc::new(ScriptsHang(common::redis_store(&server))));
    // Connect the GET path first (not part of what is measured).
    let _ = cache.get::<u32>("warm:0").await;
    for i in 0..3_u32 {
        let started = Instant::now();
        let value: u32 = cache
            .get_or_compute(&format!("product:{i}"), HOUR, || async move { i })
            .await
            .unwrap();
        assert_eq!(value, i);
        let took = started.elapsed();
        assert!(
            took < deadline + deadline / 2,
            "miss {i} took {took:?} with a {deadline:?} deadline"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. `#[cached]` methods: the receiver is not in the key.

/// A per-user handle whose method reads the user from `self`.
#[derive(serde::Serialize)]
struct Session {
    #[serde(skip)]
    cache: Cache,
    user: String,
}

impl Session {
    #[larder::cached(namespace = "account_page", cache = self.cache, receiver = "key")]
    async fn account_page(&self) -> String {
        format!("account page of {}", self.user)
    }

    #[larder::cached(namespace = "balance", cache = self.cache, receiver = "key")]
    fn balance(&self, currency: &str) -> String {
        format!("balance of {} in {currency}", self.user)
    }
}

/// DESIGN.md: "every input a handler or function can read is in the key
/// or makes the request bypass (… all arguments and the receiver)". The
/// macro digests every argument *except* `self`: two receivers share one
/// entry, and Bob is served Alice's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_method_never_answers_one_receiver_with_anothers_value() {
    let server = RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    let alice = Session {
        cache: cache.clone(),
        user: "alice".into(),
    };
    let bob = Session {
        cache: cache.clone(),
        user: "bob".into(),
    };
    assert_eq!(alice.account_page().await, "account page of alice");
    assert_eq!(
        bob.account_page().await,
        "account page of bob",
        "async method"
    );
    let balance = tokio::task::spawn_blocking(move || {
        assert_eq!(alice.balance("EUR"), "balance of alice in EUR");
        bob.balance("EUR")
    })
    .await
    .unwrap();
    assert_eq!(balance, "balance of bob in EUR", "sync method");
}

// ---------------------------------------------------------------------------
// 8. `#[cached(key = "…")]`: a readable key is not injective.

struct Documents {
    cache: Cache,
}

impl Documents {
    #[larder::cached(namespace = "doc", cache = self.cache, key = "{owner}:{name}", receiver = "skip")]
    async fn document(&self, owner: &str, name: &str) -> String {
        format!("document {name:?} of {owner:?}")
    }
}

/// DESIGN.md: "key encodings are injective". With `key = "{owner}:{name}"`
/// the arguments are pasted in as they are, so `("alice", "tax:2024")` and
/// `("alice:tax", "2024")` are one key: whoever may name an owner
/// `alice:tax` reads Alice's document.
#[tokio::test]
async fn a_readable_key_template_keeps_different_arguments_apart() {
    let server = RedisServer::spawn();
    let docs = Documents {
        cache: common::redis_cache(&server, |b| b).await,
    };
    assert_eq!(
        docs.document("alice", "tax:2024").await,
        "document \"tax:2024\" of \"alice\""
    );
    assert_eq!(
        docs.document("alice:tax", "2024").await,
        "document \"2024\" of \"alice:tax\"",
        "another owner's document was served"
    );
}

// ---------------------------------------------------------------------------
// 9. `#[cached]` generic functions: type parameters are not in the key.

trait Table: serde::Serialize + serde::de::DeserializeOwned + Send {
    fn load(id: u64) -> Self;
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Customer {
    id: u64,
    name: String,
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Employee {
    id: u64,
    name: String,
}

impl Table for Customer {
    fn load(id: u64) -> Self {
        Customer {
            id,
            name: format!("customer #{id}"),
        }
    }
}

impl Table for Employee {
    fn load(id: u64) -> Self {
        Employee {
            id,
            name: format!("employee #{id}"),
        }
    }
}

struct Rows {
    cache: Cache,
}

impl Rows {
    /// `SELECT * FROM {T's table} WHERE id = $1`.
    #[larder::cached(namespace = "row", cache = self.cache, receiver = "skip")]
    async fn row<T: Table>(&self, id: u64) -> T {
        T::load(id)
    }
}

/// The type parameter picks the table the body reads, but the key is
/// `row:{digest(id)}` for every `T`: employee 1 is served customer 1's row
/// (the shapes agree, so it even decodes).
#[tokio::test]
async fn a_generic_cached_function_keys_on_its_type_parameters() {
    let server = RedisServer::spawn();
    let rows = Rows {
        cache: common::redis_cache(&server, |b| b).await,
    };
    let customer: Customer = rows.row(1).await;
    assert_eq!(customer.name, "customer #1");
    let employee: Employee = rows.row(1).await;
    assert_eq!(
        employee.name, "employee #1",
        "another type's row was served"
    );
}

// ---------------------------------------------------------------------------
// 10. Rolling deploys: a value over this build's size cap is intact, not
//     corrupt, yet it is deleted.

/// Two builds on one Redis, the new one with a lower `max_value_bytes`:
/// the new build's read of an entry the old build wrote (within the old
/// cap) removes it as "corrupt", so the old build loses its entries — the
/// deletion point 21 meant to stop.
#[tokio::test]
async fn a_value_over_this_builds_cap_is_a_miss_that_is_kept() {
    let server = RedisServer::spawn();
    let old_build = common::redis_cache(&server, |b| b.max_value_bytes(1 << 20)).await;
    let new_build = common::redis_cache(&server, |b| b.max_value_bytes(1024)).await;
    old_build
        .set("page:1", &"x".repeat(10_000), HOUR)
        .await
        .unwrap();
    assert_eq!(new_build.get::<String>("page:1").await.unwrap(), None);
    assert!(
        old_build.get::<String>("page:1").await.unwrap().is_some(),
        "the new build deleted the old build's entry"
    );
}

// ---------------------------------------------------------------------------
// 11. A least-privilege ACL user (keys `~larder:*`; Redis 7's default
//     `acl-pubsub-default resetchannels` gives it no channel).

fn store_errors(op: &str) -> u64 {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "larder_store_errors_total")
        .filter(|(key, ..)| {
            let labels: Vec<_> = key.key().labels().collect();
            labels.iter().any(|l| l.key() == "op" && l.value() == op)
                && labels
                    .iter()
                    .any(|l| l.key() == "store" && l.value() == "redis")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum()
}

/// The fill script PUBLISHes to announce the fill; an ACL user without
/// channel permissions gets NOPERM *after* the script has stored the
/// value, so every contended fill is reported as a failed store call (and
/// SUBSCRIBE is refused, so cross-process waiters poll). "Redis AUTH/ACL
/// users are supported" (DESIGN.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scoped_acl_user_fills_without_store_errors() {
    snapshotter();
    let server = RedisServer::builder()
        .args(["--user", "app", "on", ">app-pw", "~larder:*", "+@all"])
        .spawn();
    let url = format!("redis://app:app-pw@127.0.0.1:{}/", server.port());
    let connect = || async {
        let config = Config::builder()
            .redis_url(url.clone())
            .deadline(Duration::from_secs(2))
            .build()
            .unwrap();
        Cache::connect(config).await.unwrap()
    };
    let holder = connect().await;
    let waiter = connect().await;
    let mut conn = raw(&server).await;
    let before = store_errors("fill_leased");
    let (holding, fill_tx) = common::hold_a_computation(holder, "aclreport:1").await;
    let waiting = common::wait_for(&waiter, "aclreport:1");
    until("the waiter is marked as waiting", async || {
        common::exists(&mut conn, "larder:1~wait:aclreport:1").await
    })
    .await;
    fill_tx.send(()).unwrap();
    assert_eq!(holding.await.unwrap(), "report");
    assert_eq!(waiting.await.unwrap(), "report");
    assert_eq!(
        waiter
            .get::<String>("aclreport:1")
            .await
            .unwrap()
            .as_deref(),
        Some("report")
    );
    assert_eq!(
        store_errors("fill_leased") - before,
        0,
        "a fill that stored its value was counted as a failed store call (NOPERM on the \
         script's PUBLISH)"
    );
}

// ---------------------------------------------------------------------------
// 12. Settings that build() accepts although no value can ever be stored.

/// Point 18: extreme settings are refused by `build()`. A lease of 1 ms,
/// a deadline of 1 µs or a connect timeout of 1 µs are accepted, and the
/// cache then silently stores nothing: every read-through is a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_under_which_nothing_is_ever_stored_are_refused() {
    let server = RedisServer::spawn();
    let mut accepted = Vec::new();
    for (name, tweak) in [
        (
            "lease_ttl = 1 ms",
            Box::new(|b: larder::config::ConfigBuilder| b.lease_ttl(Duration::from_millis(1)))
                as Box<dyn Fn(larder::config::ConfigBuilder) -> larder::config::ConfigBuilder>,
        ),
        (
            "deadline = 1 µs",
            Box::new(|b: larder::config::ConfigBuilder| b.deadline(Duration::from_micros(1))),
        ),
        (
            "connect_timeout = 1 µs",
            Box::new(|b: larder::config::ConfigBuilder| {
                b.connect_timeout(Duration::from_micros(1))
            }),
        ),
    ] {
        let built = tweak(Config::builder().redis_url(server.url())).build();
        let Ok(config) = built else { continue };
        let cache = Cache::connect(config).await.unwrap();
        let key = format!("tiny:{}", accepted.len());
        for _ in 0..3 {
            let _: u32 = cache
                .get_or_compute(&key, HOUR, || async {
                    tokio::time::sleep(Duration::from_millis(5)).await; // a fast query
                    7
                })
                .await
                .unwrap();
        }
        let stored = common::exists(&mut raw(&server).await, &format!("larder:1:{key}")).await;
        accepted.push(format!(
            "{name}: accepted; value stored after 3 misses: {stored}"
        ));
    }
    assert!(accepted.is_empty(), "{accepted:#?}");
}
