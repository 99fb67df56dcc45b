//! The local (L1) tier against real redis-servers: what one instance holds
//! in memory never outlives an invalidation made by another.
//!
//! - Every kind of invalidation (key, `set`, pattern, model generation,
//!   tag) made by instance B reaches instance A's tier.
//! - Two OS processes: A keeps a key in its tier; B (a child process)
//!   invalidates it; A's next read does not come from its tier. The delay
//!   from B's call returning to A's entry being gone is measured over
//!   1,000 rounds per kind and printed (p50/p99).
//! - `CLIENT KILL` of A's subscriber empties A's tier; the subscription
//!   comes back and invalidations reach A again. A paused server (SIGSTOP)
//!   stops answering A's pings: A empties its tier.
//! - The in-flight race, by signals: an invalidation that lands between
//!   A's store read and its insert leaves nothing stale — and, with the
//!   guard turned off, the same sequence does.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, RedisStore, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, Outcome, Tier};
use larder_test_support::RedisServer;
use tokio::sync::oneshot;

const TTL: Duration = Duration::from_secs(600);
const CHILD: &str = "LARDER_L1_CHILD";
const URL: &str = "LARDER_L1_CHILD_URL";

fn config(url: &str) -> larder::config::ConfigBuilder {
    Config::builder()
        .redis_url(url)
        .deadline(Duration::from_secs(5))
        .local("user", Duration::from_secs(60))
        .local("product", Duration::from_secs(60))
}

async fn cache(url: &str) -> Cache {
    let cache = Cache::connect(config(url).build().unwrap()).await.unwrap();
    until_hearing(&cache).await;
    cache
}

/// Waits (on the tier's events, not by sleeping) until `cache`'s tier
/// hears invalidations.
async fn until_hearing(cache: &Cache) {
    until(cache, |cache| cache.local_tier_hearing()).await;
}

/// Waits on `cache`'s tier events until `done` holds; fails after 30 s.
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

/// Reads `key` until A's tier holds it: the first read fills the store and
/// the tier.
async fn held(cache: &Cache, key: &str, name: &str) {
    user(cache, key, name).await;
    let again = user(cache, key, name).await;
    assert_eq!(again.tier, Tier::Local, "{key} is served by the local tier");
    assert!(cache.local_tier_serves(key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_invalidation_by_one_instance_reaches_the_other() {
    let server = RedisServer::spawn();
    let (a, b) = (cache(&server.url()).await, cache(&server.url()).await);

    held(&a, "user:1", "ada").await;
    b.delete_cached_data("user:1").await.unwrap();
    until(&a, |a| !a.local_tier_serves("user:1")).await;
    let fresh = user(&a, "user:1", "ada v2").await;
    assert_eq!((fresh.value.as_str(), fresh.tier), ("ada v2", Tier::Origin));

    held(&a, "user:2", "bob").await;
    b.set("user:2", "bob v2", TTL).await.unwrap();
    until(&a, |a| !a.local_tier_serves("user:2")).await;
    let fresh = user(&a, "user:2", "unused").await;
    assert_eq!((fresh.value.as_str(), fresh.tier), ("bob v2", Tier::Redis));

    held(&a, "user:3", "cy").await;
    held(&a, "product:3", "teapot").await;
    b.invalidate_cache_pattern("user:*").await.unwrap();
    until(&a, |a| !a.local_tier_serves("user:3")).await;
    assert!(a.local_tier_serves("product:3"), "other namespaces stay");

    held(&a, "user:4", "dee").await;
    b.delete_many(&["user:9", "user:4"]).await.unwrap();
    until(&a, |a| !a.local_tier_serves("user:4")).await;

    // A model's generation: its pattern and its stamp.
    b.bump_model_generation::<Product>().await.unwrap();
    until(&a, |a| !a.local_tier_serves("product:3")).await;

    // The writer's own tier drops what it wrote at once.
    held(&b, "user:5", "eve").await;
    b.set("user:5", "eve v2", TTL).await.unwrap();
    assert!(!b.local_tier_serves("user:5"));
    assert_eq!(user(&b, "user:5", "x").await.value, "eve v2");
}

/// A model, for its generation bump.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Product {
    id: u64,
    name: String,
}

impl larder::CachedModel for Product {
    type Id = u64;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: larder::model::ModelOptions = larder::model::ModelOptions::new("product");
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(product: Self) -> Self {
        product
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_expires_from_the_tier_with_its_store_copy() {
    let server = RedisServer::spawn();
    let a = cache(&server.url()).await;
    let short = Duration::from_millis(300);
    let first = a
        .fetch_or_compute("user:7", short, || async { 1_u32 })
        .await
        .unwrap();
    assert_eq!(first.tier, Tier::Origin);
    let held = a
        .fetch_or_compute("user:7", short, || async { 2_u32 })
        .await
        .unwrap();
    assert_eq!(held.tier, Tier::Local);
    // Wait for the store copy to go (Redis's clock, not a sleep for a
    // signal): the tier must not serve past it.
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let physical = a.physical_key("user:7");
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&physical)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !exists {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = a
        .fetch_or_compute("user:7", short, || async { 3_u32 })
        .await
        .unwrap();
    assert_eq!((after.value, after.tier), (3, Tier::Origin));
}

/// B's side of the two-process test: reads commands from stdin, runs each
/// invalidation and prints when it returned (µs since the epoch).
fn invalidating_child(url: &str) {
    larder::block_on(async {
        let b = cache(url).await;
        println!("ready");
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line.unwrap();
            let (kind, key) = line.split_once(' ').unwrap();
            match kind {
                "delete" => drop(b.delete_cached_data(key).await.unwrap()),
                "set" => b.set(key, "written by B", TTL).await.unwrap(),
                "pattern" => drop(b.invalidate_cache_pattern(key).await.unwrap()),
                "bump" => b.bump_model_generation::<Product>().await.unwrap(),
                _ => panic!("unknown command {line}"),
            }
            println!("returned {}", micros_now());
            std::io::stdout().flush().unwrap();
        }
    });
}

fn micros_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

#[test]
fn another_process_invalidating_empties_this_ones_tier_in_milliseconds() {
    if let Ok(url) = std::env::var(URL)
        && std::env::var(CHILD).is_ok()
    {
        return invalidating_child(&url);
    }
    let server = RedisServer::spawn();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "another_process_invalidating_empties_this_ones_tier_in_milliseconds",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env(URL, server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut next_line = |marker: &str| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(from_child.read_line(&mut line).unwrap() > 0, "child ended");
            if let Some(at) = line.find(marker) {
                return line[at + marker.len()..].trim().to_owned();
            }
        }
    };
    next_line("ready");
    larder::block_on(async {
        let a = cache(&server.url()).await;
        let rounds = 1000;
        for (kind, keyed) in [
            ("delete", "user:{i}"),
            ("set", "user:{i}"),
            ("pattern", "user:{i}*"),
            ("bump", "product:{i}"),
        ] {
            let mut delays = Vec::with_capacity(rounds);
            for i in 0..rounds {
                let key = if kind == "bump" {
                    format!("product:{i}")
                } else {
                    format!("user:{i}")
                };
                held(&a, &key, "old").await;
                let mut events = a.local_tier_events();
                let argument = keyed.replace("{i}", &i.to_string());
                writeln!(to_child, "{kind} {argument}").unwrap();
                to_child.flush().unwrap();
                let gone = tokio::time::timeout(Duration::from_secs(30), async {
                    while a.local_tier_serves(&key) {
                        events.changed().await.unwrap();
                    }
                    micros_now()
                })
                .await
                .expect("B's invalidation reached A");
                let returned: i64 = next_line("returned ").parse().unwrap();
                delays.push((gone - returned).max(0));
                let next = user(&a, &key, "new").await;
                assert_ne!(next.tier, Tier::Local, "{kind} {key}: A's next read");
                assert_ne!(next.value, "old", "{kind} {key}: A's next read");
            }
            delays.sort_unstable();
            println!(
                "{kind}: B's call returned -> A's tier entry gone, over {rounds} rounds: \
                 p50 {} us, p99 {} us, max {} us",
                delays[rounds / 2],
                delays[rounds * 99 / 100],
                delays[rounds - 1]
            );
        }
    });
    drop(to_child);
    assert!(child.wait().unwrap().success());
}

async fn subscriber_ids(server: &RedisServer) -> Vec<String> {
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscriber_empties_the_tier_and_comes_back() {
    let server = RedisServer::spawn();
    let a = cache(&server.url()).await;
    held(&a, "user:1", "ada").await;
    let ids = subscriber_ids(&server).await;
    assert_eq!(ids.len(), 1, "one subscriber connection per cache");
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    until(&a, |a| !a.local_tier_serves("user:1")).await;
    assert_eq!(a.local_tier_usage().0, 0, "the whole tier was emptied");
    until_hearing(&a).await;
    let again = subscriber_ids(&server).await;
    assert_eq!(again.len(), 1);
    assert_ne!(again, ids, "a new subscription");
    // Invalidations reach A again.
    let b = cache(&server.url()).await;
    held(&a, "user:1", "ada").await;
    b.delete_cached_data("user:1").await.unwrap();
    until(&a, |a| !a.local_tier_serves("user:1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_is_noticed_by_its_unanswered_pings() {
    let server = RedisServer::spawn();
    let pid = server.pid().expect("the server runs").to_string();
    let config = config(&server.url()).local_ping_interval(Duration::from_millis(200));
    let a = Cache::connect(config.build().unwrap()).await.unwrap();
    until_hearing(&a).await;
    held(&a, "user:1", "ada").await;
    let stopped = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    until(&a, |a| !a.local_tier_hearing()).await;
    let noticed = stopped.elapsed();
    assert!(!a.local_tier_serves("user:1"));
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    println!("a paused server noticed after {noticed:?} (ping interval 200 ms)");
    until_hearing(&a).await;
}

/// A Redis store whose next GET, once armed, stops after reading until
/// released.
#[derive(Debug)]
struct HoldGet {
    inner: RedisStore,
    hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Store for HoldGet {
    fn name(&self) -> &'static str {
        "hold-get"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let read = self.inner.get(key).await;
            let hold = self.hold.lock().unwrap().take();
            if let Some((reached, release)) = hold {
                reached.send(()).unwrap();
                release.await.unwrap();
            }
            read
        })
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.inner.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.inner.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        self.inner.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        self.inner.unlink(keys)
    }
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        self.inner.unlink_entries(values, leases)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.inner.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        self.inner.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        self.inner.take_lease(keys, token, ttl, force)
    }
    fn stamps<'a>(&'a self, stamps: &'a [String], ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        self.inner.stamps(stamps, ttl)
    }
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.inner.fill_leased(keys, lease, value, ttl)
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        self.inner.release_lease(keys, lease)
    }
    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        self.inner.unlink_index(index, batch, deadline)
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        self.inner.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.inner.subscribe(channel)
    }
}

/// A reads `user:1` from the store; B deletes it while A's read is between
/// the store's answer and the tier insert. Returns whether A's tier serves
/// the old value afterwards.
async fn race(guard: bool) -> bool {
    let server = RedisServer::spawn();
    let url = larder::config::RedisUrl::parse(&server.url()).unwrap();
    let store = Arc::new(HoldGet {
        inner: RedisStore::new(&url, Duration::from_secs(1), None).unwrap(),
        hold: Mutex::new(None),
    });
    let a = Cache::with_store(config(&server.url()).build().unwrap(), store.clone());
    a.local_tier_guard(guard);
    until_hearing(&a).await;
    let b = cache(&server.url()).await;
    b.set("user:1", "old", TTL).await.unwrap();

    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    *store.hold.lock().unwrap() = Some((reached_tx, release_rx));
    let reader = tokio::spawn({
        let a = a.clone();
        async move { user(&a, "user:1", "computed").await }
    });
    reached_rx.await.unwrap(); // A has the store's answer, not yet kept
    let mut events = a.local_tier_events();
    let applied = *events.borrow_and_update();
    b.delete_cached_data("user:1").await.unwrap();
    // A hears of the deletion before its insert.
    while *events.borrow_and_update() == applied {
        events.changed().await.unwrap();
    }
    release_tx.send(()).unwrap();
    let read = reader.await.unwrap();
    assert_eq!((read.value.as_str(), read.tier), ("old", Tier::Redis));
    assert_eq!(read.outcome, Outcome::Hit);
    a.local_tier_serves("user:1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_read_keeps_its_value_out_of_the_tier() {
    assert!(!race(true).await, "no stale entry with the guard");
    // The same sequence without the guard leaves the deleted value in the
    // tier: the guard is what the first run relied on.
    assert!(race(false).await, "a stale entry without the guard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_django_tiered_example_reports_each_tier() {
    // core.redis's get_user_with_tiered_cache: local, then Redis, then the
    // database; it says which answered.
    let server = RedisServer::spawn();
    let (a, b) = (cache(&server.url()).await, cache(&server.url()).await);
    let get_user = |cache: Cache, id: u64| async move {
        let user = cache
            .fetch_or_compute(
                &format!("user:{id}"),
                Duration::from_secs(3600),
                || async move { format!("user {id} from the database") },
            )
            .await
            .unwrap();
        (user.value, user.tier.as_str())
    };
    let (_, tier) = get_user(a.clone(), 1).await;
    assert_eq!(tier, "database_miss");
    let (_, tier) = get_user(a.clone(), 1).await;
    assert_eq!(tier, "local_cache");
    let (value, tier) = get_user(b.clone(), 1).await;
    assert_eq!(
        (value.as_str(), tier),
        ("user 1 from the database", "redis_cache")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_key_is_computed_once_across_instances_with_the_tier_on() {
    let server = RedisServer::spawn();
    let (a, b) = (cache(&server.url()).await, cache(&server.url()).await);
    let computed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..40)
        .map(|i| {
            let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
            let computed = Arc::clone(&computed);
            let mut release = release_rx.clone();
            tokio::spawn(async move {
                cache
                    .fetch_or_compute("user:cold", TTL, || async move {
                        computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Held until every caller has asked.
                        let _ = release.wait_for(|go| *go).await;
                        String::from("computed once")
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Let every caller reach the cache before the computation may end.
    while computed.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    release_tx.send(true).unwrap();
    let mut tiers = std::collections::HashMap::new();
    for caller in callers {
        let fetched = caller.await.unwrap();
        assert_eq!(fetched.value, "computed once");
        *tiers.entry(fetched.tier).or_insert(0) += 1;
    }
    assert_eq!(
        computed.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{tiers:?}"
    );
    // Both instances keep it now.
    assert_eq!(user(&a, "user:cold", "x").await.tier, Tier::Local);
    assert_eq!(user(&b, "user:cold", "x").await.tier, Tier::Local);
}

mod models {
    use super::*;

    #[derive(Debug, Clone, PartialEq, larder::CachedModel)]
    #[larder(prefix = "shelf", local = 60)]
    struct Shelf {
        id: u64,
        name: String,
    }

    #[derive(Debug, Clone, PartialEq, larder::CachedModel)]
    #[larder(prefix = "jar", local = 60, related(shelf), exclude(note))]
    struct Jar {
        id: u64,
        name: String,
        shelf: Shelf,
        note: String,
    }

    fn jar(id: u64, name: &str) -> Jar {
        Jar {
            id,
            name: name.into(),
            shelf: Shelf {
                id: 7,
                name: "top".into(),
            },
            note: "not stored".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_read_through_the_tier_drops_on_another_instances_save_and_cascade() {
        let server = RedisServer::spawn();
        let (a, b) = (cache(&server.url()).await, cache(&server.url()).await);
        // A read that begins before A has heard of B's write keeps
        // nothing (its ticket is older than the write): wait for it.
        let mut events = a.local_tier_events();
        let before = *events.borrow_and_update();
        b.cache_model(&jar(1, "honey")).await.unwrap();
        while *events.borrow_and_update() == before {
            events.changed().await.unwrap();
        }
        let first = a.get_cached_model::<Jar>(1).await.unwrap().unwrap();
        assert_eq!(
            first.note, "",
            "what the store holds: excluded fields are default"
        );
        assert!(a.local_tier_serves("jar:1"), "kept after the store read");
        assert_eq!(a.get_cached_model::<Jar>(1).await.unwrap(), Some(first));

        // A save by B: A's copy goes.
        b.cache_model(&jar(1, "clover honey")).await.unwrap();
        until(&a, |a| !a.local_tier_serves("jar:1")).await;
        let saved = a.get_cached_model::<Jar>(1).await.unwrap().unwrap();
        assert_eq!(saved.name, "clover honey");

        // Invalidating the related shelf voids the jar that embeds it.
        assert!(a.local_tier_serves("jar:1"));
        b.invalidate_model_cache_id::<Shelf>(7).await.unwrap();
        until(&a, |a| !a.local_tier_serves("jar:1")).await;
        assert_eq!(a.get_cached_model::<Jar>(1).await.unwrap(), None);

        // Loaded through get_or_load_model: the stored form is kept, not
        // the loaded row (whose excluded field is set).
        let loaded = a
            .get_or_load_model::<Jar, larder::Error, _, _>(2, || async { Ok(Some(jar(2, "jam"))) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.note, "not stored", "the caller gets its row");
        assert!(a.local_tier_serves("jar:2"));
        let again = a
            .get_or_load_model::<Jar, larder::Error, _, _>(2, || async {
                unreachable!("a local hit")
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.note, "", "the tier holds what the store holds");
        b.invalidate_model_cache_id::<Jar>(2).await.unwrap();
        until(&a, |a| !a.local_tier_serves("jar:2")).await;
    }
}
