//! Regressions from a second hostile review of the HTTP layer (issue 9):
//! path tags, write invalidations retried in the background with the path
//! bypassed meanwhile (a second failure swallowed, a cancelled write, a
//! retry that gave up early or panicked on a long TTL, a task per path),
//! invalidation under leases off, the in-process store wiping its stamps.
//! Each failed before its fix. On private
//! redis-servers, through `oneshot`; store hooks (a wrapper around the
//! Redis store) stand for Redis being slow or down at a chosen moment and
//! give the signals the tests wait on.
#![allow(missing_docs, missing_debug_implementations)]

#[macro_use]
#[allow(unused_macros)]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use common::{Client, Transport, eventually};
use larder::config::ConfigBuilder;
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, ErrorKind};
use larder_http::ResponseCacheLayer;
use larder_test_support::RedisServer;
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------
// The application: a product row with a version, a page that shows it, a
// write that changes it. The page reads the row first, then may be held
// (a slow render) by a gate.

type Gate = Arc<Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>>;

#[derive(Clone, Default)]
struct Db {
    row: Arc<AtomicUsize>,
    /// The next page render: (told it read the row, released by).
    gate: Gate,
}

impl Db {
    fn new() -> Self {
        let db = Db::default();
        db.row.store(1, Ordering::SeqCst);
        db
    }

    /// Holds the next render after it has read the row.
    fn hold_next_render(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (read_tx, read_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.gate.lock().unwrap() = Some((read_tx, release_rx));
        (read_rx, release_tx)
    }

    fn page(&self, row: usize) -> String {
        format!("product 1, row {row}")
    }

    fn current(&self) -> String {
        self.page(self.row.load(Ordering::SeqCst))
    }
}

async fn show(Path(id): Path<u32>, State(db): State<Db>) -> String {
    let row = db.row.load(Ordering::SeqCst);
    let gate = db.gate.lock().unwrap().take();
    if let Some((read, release)) = gate {
        read.send(()).unwrap();
        let _ = release.await;
    }
    format!("product {id}, row {row}")
}

async fn update(State(db): State<Db>) -> StatusCode {
    db.row.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

fn app(layer: ResponseCacheLayer, db: &Db) -> Router {
    Router::new()
        .route("/products/{id}", get(show).post(update))
        .layer(layer)
        .with_state(db.clone())
}

async fn client(layer: ResponseCacheLayer, db: &Db) -> Arc<Client> {
    Arc::new(Client::new(app(layer, db), Transport::Oneshot).await)
}

async fn redis_cache(
    server: &RedisServer,
    tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Cache {
    let config = tweak(
        Config::builder()
            .redis_url(server.url())
            .deadline(Duration::from_secs(2)),
    )
    .build()
    .unwrap();
    Cache::connect(config).await.unwrap()
}

fn redis_store(server: &RedisServer) -> larder::store::RedisStore {
    let url = larder::config::RedisUrl::parse(&server.url()).unwrap();
    larder::store::RedisStore::new(&url, Duration::from_secs(1), None).unwrap()
}

// ---------------------------------------------------------------------------
// Store hooks.

#[derive(Debug, Default)]
struct Hooks {
    /// Every call fails at once (Redis down).
    down: AtomicBool,
    /// The next this many UNLINKs fail at once.
    fail_unlinks: AtomicUsize,
    /// The next UNLINK says so and never answers.
    hang_unlink: Mutex<Option<oneshot::Sender<()>>>,
    /// The next index removal runs, then says so and waits to be released.
    hold_unlink_index: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// The next MGET says when it has answered.
    mget_answered: Mutex<Option<oneshot::Sender<()>>>,
}

#[derive(Debug)]
struct Hooked {
    inner: larder::store::RedisStore,
    hooks: Arc<Hooks>,
}

fn failed<'a, T: Send + 'a>() -> StoreFuture<'a, T> {
    Box::pin(async {
        Err(larder::Error::new(
            ErrorKind::Store,
            "connection refused (hook)",
        ))
    })
}

impl Hooked {
    fn cache(
        server: &RedisServer,
        tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> (Cache, Arc<Hooks>) {
        let hooks = Arc::new(Hooks::default());
        let store = Hooked {
            inner: redis_store(server),
            hooks: Arc::clone(&hooks),
        };
        let config = tweak(
            Config::builder()
                .deadline(Duration::from_secs(2))
                .breaker_failures(1_000_000),
        )
        .build()
        .unwrap();
        (Cache::with_store(config, Arc::new(store)), hooks)
    }

    fn down(&self) -> bool {
        self.hooks.down.load(Ordering::SeqCst)
    }
}

impl Store for Hooked {
    fn name(&self) -> &'static str {
        "hooked"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        if self.down() {
            return failed();
        }
        self.inner.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        if self.down() {
            return failed();
        }
        Box::pin(async move {
            let answer = self.inner.mget(keys).await;
            let tell = self.hooks.mget_answered.lock().unwrap().take();
            if let Some(tell) = tell {
                let _ = tell.send(());
            }
            answer
        })
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.mset(entries)
    }
    fn unlink<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, u64> {
        if self.down() {
            return failed();
        }
        if self
            .hooks
            .fail_unlinks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return failed();
        }
        let hang = self.hooks.hang_unlink.lock().unwrap().take();
        if let Some(tell) = hang {
            let _ = tell.send(());
            return Box::pin(futures::future::pending());
        }
        self.inner.unlink(keys)
    }
    fn unlink_entries<'a>(
        &'a self,
        values: &'a [String],
        leases: &'a [String],
    ) -> StoreFuture<'a, u64> {
        if self.down() {
            return failed();
        }
        self.inner.unlink_entries(values, leases)
    }
    fn unlink_pattern<'a>(
        &'a self,
        pattern: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        if self.down() {
            return failed();
        }
        self.inner.unlink_pattern(pattern, batch, deadline)
    }
    fn get_or_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseRead> {
        if self.down() {
            return failed();
        }
        self.inner.get_or_lease(keys, token, ttl)
    }
    fn take_lease<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        token: u64,
        ttl: Duration,
        force: bool,
    ) -> StoreFuture<'a, Option<Grant>> {
        if self.down() {
            return failed();
        }
        self.inner.take_lease(keys, token, ttl, force)
    }
    fn stamps<'a>(&'a self, stamps: &'a [String], ttl: Duration) -> StoreFuture<'a, Vec<u64>> {
        if self.down() {
            return failed();
        }
        self.inner.stamps(stamps, ttl)
    }
    fn fill_leased<'a>(
        &'a self,
        keys: LeaseKeys<'a>,
        lease: Lease,
        value: Bytes,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        if self.down() {
            return failed();
        }
        self.inner.fill_leased(keys, lease, value, ttl)
    }
    fn release_lease<'a>(&'a self, keys: LeaseKeys<'a>, lease: Lease) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.release_lease(keys, lease)
    }
    fn unlink_index<'a>(
        &'a self,
        index: &'a str,
        batch: usize,
        deadline: Duration,
    ) -> StoreFuture<'a, u64> {
        if self.down() {
            return failed();
        }
        Box::pin(async move {
            let removed = self.inner.unlink_index(index, batch, deadline).await;
            let hold = self.hooks.hold_unlink_index.lock().unwrap().take();
            if let Some((tell, release)) = hold {
                let _ = tell.send(());
                let _ = release.await;
            }
            removed
        })
    }
    fn publish<'a>(&'a self, channel: &'a str, message: Bytes) -> StoreFuture<'a, ()> {
        if self.down() {
            return failed();
        }
        self.inner.publish(channel, message)
    }
    fn subscribe<'a>(&'a self, channel: &'a str) -> StoreFuture<'a, Subscription> {
        self.inner.subscribe(channel)
    }
}

// ---------------------------------------------------------------------------
// 1. Leases off: a path's tag is invalidated by a write while a request
//    renders the old row; a request that arrives after the write has
//    answered joins that render and gets the old page. (The stamps make
//    the *stored* copy a miss, but in-process waiters are handed the
//    value because the plain SET "stored" it.)

#[tokio::test(flavor = "current_thread")]
async fn leases_off_a_request_after_a_write_is_answered_with_the_page_rendered_before_it() {
    let server = RedisServer::spawn();
    let (cache, hooks) = Hooked::cache(&server, |b| b.leases(false));
    let db = Db::new();
    let layer = ResponseCacheLayer::new(cache)
        .namespace("products")
        .invalidate_on_write(true);
    let client = client(layer, &db).await;
    let (read, release) = db.hold_next_render();
    let first = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.get("/products/1").await }
    });
    read.await.unwrap(); // the first request has read row 1
    let written = client.send("POST", "/products/1", &[]).await;
    assert_eq!(written.status, StatusCode::NO_CONTENT);
    // The write has answered. A new request arrives: its read misses, and
    // (single-threaded runtime) it is parked on the flight by the time
    // this task runs again.
    let (answered_tx, answered_rx) = oneshot::channel();
    *hooks.mget_answered.lock().unwrap() = Some(answered_tx);
    let second = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.get("/products/1").await }
    });
    answered_rx.await.unwrap();
    tokio::task::yield_now().await;
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().body, db.page(1));
    let second = second.await.unwrap();
    assert_eq!(
        second.body,
        db.current(),
        "a request that began after the write answered got the page rendered before it \
         (X-Cache: {})",
        second.x_cache
    );
}

// ---------------------------------------------------------------------------
// 2. Leases off: `invalidate_request` (like `invalidate_route`) deletes the
//    entry, but a render that began before it fills with a plain SET
//    afterwards — under the path tag's stamp, which nothing moved — and
//    the old page is served to everyone until its TTL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_off_a_render_from_before_invalidate_request_is_stored_after_it() {
    let server = RedisServer::spawn();
    let cache = redis_cache(&server, |b| b.leases(false)).await;
    let db = Db::new();
    let layer = ResponseCacheLayer::new(cache).namespace("products");
    let client = client(layer.clone(), &db).await;
    let (read, release) = db.hold_next_render();
    let first = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.get("/products/1").await }
    });
    read.await.unwrap(); // renders row 1
    // The write commits, then invalidates the one stored response.
    db.row.fetch_add(1, Ordering::SeqCst);
    let request = axum::http::Request::get("/products/1").body(()).unwrap();
    layer.invalidate_request(&request).await.unwrap();
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().body, db.page(1));
    let after = client.get("/products/1").await;
    assert_eq!(
        after.body,
        db.current(),
        "the page rendered before invalidate_request was stored after it (X-Cache: {})",
        after.x_cache
    );
}

// ---------------------------------------------------------------------------
// 3. A write whose response future is dropped while its invalidation is
//    under way (the client went away, an outer timeout fired) loses the
//    invalidation: it is neither finished nor retried, and the old page
//    stays.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cancelled_during_its_invalidation_leaves_the_old_page_behind() {
    let server = RedisServer::spawn();
    let (cache, hooks) = Hooked::cache(&server, |b| b);
    let db = Db::new();
    let layer = ResponseCacheLayer::new(cache)
        .namespace("products")
        .invalidate_on_write(true);
    let client = client(layer, &db).await;
    assert_eq!(client.get("/products/1").await.x_cache, "MISS");
    assert_eq!(client.get("/products/1").await.x_cache, "HIT");
    // Redis is slow to take the invalidation; the caller gives up on the
    // response meanwhile (the write itself has committed).
    let (slow_tx, slow_rx) = oneshot::channel();
    *hooks.hang_unlink.lock().unwrap() = Some(slow_tx);
    let write = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.send("POST", "/products/1", &[]).await }
    });
    slow_rx.await.unwrap();
    write.abort();
    match write.await {
        Err(err) => assert!(err.is_cancelled()),
        Ok(reply) => panic!("the write answered first ({})", reply.status),
    }
    assert_eq!(db.row.load(Ordering::SeqCst), 2, "the write committed");
    // Redis is fine again; give a retry every chance to land.
    eventually(
        "the page from before the committed write is still served (no retry was scheduled)",
        Duration::from_secs(5),
        async || client.get("/products/1").await.body == db.current(),
    )
    .await;
}

// ---------------------------------------------------------------------------
// 4. A route cached "forever" (`ttl(Duration::MAX)`, which the core cuts to
//    MAX_TTL): the retry of a failed write invalidation computes its
//    give-up instant as now + TTL and panics, so it never runs; the path's
//    entry survives the write in every other process (and this one
//    bypasses the path for good).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_invalidation_on_a_route_cached_forever_is_retried() {
    let server = RedisServer::spawn();
    let (cache, hooks) = Hooked::cache(&server, |b| b);
    let other = redis_cache(&server, |b| b).await; // another instance
    let db = Db::new();
    let here = client(
        ResponseCacheLayer::new(cache)
            .namespace("products")
            .ttl(Duration::MAX)
            .invalidate_on_write(true),
        &db,
    )
    .await;
    let there = client(ResponseCacheLayer::new(other).namespace("products"), &db).await;
    assert_eq!(there.get("/products/1").await.x_cache, "MISS");
    assert_eq!(there.get("/products/1").await.x_cache, "HIT");
    // The write's invalidation fails once (Redis blinked).
    hooks.fail_unlinks.store(1, Ordering::SeqCst);
    let written = here.send("POST", "/products/1", &[]).await;
    assert_eq!(written.status, StatusCode::NO_CONTENT);
    eventually(
        "the failed invalidation was never retried: the other instance still serves the \
         page from before the write",
        Duration::from_secs(5),
        async || there.get("/products/1").await.body == db.current(),
    )
    .await;
}

// ---------------------------------------------------------------------------
// 5. The retry gives up after "the longest a stored response can live",
//    taken as TTL + stale grace; but TTLs are jittered upwards (by up to
//    `ttl_jitter`, 10% by default, 99% at most). An entry stored just
//    before the write outlives the give-up; once Redis is back, this very
//    process serves it as a HIT.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_given_up_while_redis_is_down_does_not_leave_a_live_old_page() {
    let server = RedisServer::spawn();
    let (cache, hooks) = Hooked::cache(&server, |b| b.ttl_jitter(0.9));
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl = Duration::from_secs(3);
    let db = Db::new();
    let layer = ResponseCacheLayer::new(cache)
        .namespace("products")
        .ttl(ttl)
        .invalidate_on_write(true);
    let client = client(layer.clone(), &db).await;
    // An entry whose jittered TTL is well past the route's TTL (about one
    // in eight with this jitter; with the default 10% the window is up to
    // a tenth of the TTL, less the retry's backoff).
    let mut lifetime = Duration::ZERO;
    for _ in 0..500 {
        assert_eq!(client.get("/products/1").await.x_cache, "MISS");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("larder:1:products:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let pttl: u64 = redis::cmd("PTTL")
            .arg(&keys[0])
            .query_async(&mut conn)
            .await
            .unwrap();
        lifetime = Duration::from_millis(pttl);
        if lifetime > ttl + Duration::from_millis(2000) {
            break;
        }
        layer.invalidate_path("/products/1").await.unwrap();
    }
    assert!(lifetime > ttl + Duration::from_millis(2000));
    // Redis goes down; a write commits and its invalidation fails.
    hooks.down.store(true, Ordering::SeqCst);
    let written_at = Instant::now();
    let written = client.send("POST", "/products/1", &[]).await;
    assert_eq!(written.status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/products/1").await.x_cache, "BYPASS");
    // The retry gives up (the path stops being bypassed).
    eventually(
        "the retry never gave up",
        Duration::from_secs(15),
        async || client.get("/products/1").await.x_cache != "BYPASS",
    )
    .await;
    let gave_up = written_at.elapsed();
    // Redis is back, with what it held.
    hooks.down.store(false, Ordering::SeqCst);
    let after = client.get("/products/1").await;
    assert_eq!(
        after.body,
        db.current(),
        "{:?} after a write whose invalidation was given up {gave_up:?} after it, the page \
         from before the write is served (X-Cache: {}; the entry's jittered lifetime was \
         {lifetime:?} against a TTL of {ttl:?})",
        written_at.elapsed(),
        after.x_cache
    );
}

// ---------------------------------------------------------------------------
// 6. One retry per path: a second write whose invalidation fails while the
//    first write's retry is already under way is dropped ("a retry for it
//    runs already") — but that retry's invalidation began before the
//    second write. When it lands it clears the path: the page rendered
//    between the two writes stays, in Redis and in this process.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_failed_invalidation_is_not_swallowed_by_a_retry_already_under_way() {
    let server = RedisServer::spawn();
    let (cache, hooks) = Hooked::cache(&server, |b| b);
    let other = redis_cache(&server, |b| b).await; // another instance
    let db = Db::new();
    let here = client(
        ResponseCacheLayer::new(cache)
            .namespace("products")
            .invalidate_on_write(true),
        &db,
    )
    .await;
    let there = client(ResponseCacheLayer::new(other).namespace("products"), &db).await;
    assert_eq!(there.get("/products/1").await.body, db.page(1));
    // Write 1 (row 2): its invalidation fails; the retry starts. Its
    // first attempt deletes the stamp and the index's members, then
    // Redis is slow to answer the last round trip.
    hooks.fail_unlinks.store(1, Ordering::SeqCst);
    let (in_retry_tx, in_retry_rx) = oneshot::channel();
    let (finish_tx, finish_rx) = oneshot::channel();
    *hooks.hold_unlink_index.lock().unwrap() = Some((in_retry_tx, finish_rx));
    assert_eq!(
        here.send("POST", "/products/1", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    in_retry_rx.await.unwrap();
    // Meanwhile the other instance renders row 2 and stores it.
    assert_eq!(there.get("/products/1").await.body, db.page(2));
    // Write 2 (row 3): its invalidation fails too.
    hooks.fail_unlinks.store(1, Ordering::SeqCst);
    assert_eq!(
        here.send("POST", "/products/1", &[]).await.status,
        StatusCode::NO_CONTENT
    );
    // Write 1's retry lands.
    finish_tx.send(()).unwrap();
    eventually(
        "the path is bypassed for good",
        Duration::from_secs(5),
        async || here.get("/products/1").await.x_cache != "BYPASS",
    )
    .await;
    let here_after = here.get("/products/1").await;
    let there_after = there.get("/products/1").await;
    assert_eq!(
        (here_after.body.as_str(), there_after.body.as_str()),
        (db.current().as_str(), db.current().as_str()),
        "after both writes answered and every retry ended, the page rendered between them is \
         served (X-Cache here: {}, there: {})",
        here_after.x_cache,
        there_after.x_cache
    );
}

// ---------------------------------------------------------------------------
// 7. While Redis is down, every write to a distinct path starts a retry
//    task of its own (and a bypass entry) that lives for the route's TTL,
//    each waking every 2 s: writes to many paths during an outage (a bulk
//    import, a crawler POSTing to an endpoint that answers 2xx) grow the
//    process's tasks and bookkeeping without bound.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_an_outage_do_not_grow_retry_tasks_without_bound() {
    let server = RedisServer::spawn();
    let (cache, hooks) = Hooked::cache(&server, |b| b);
    let db = Db::new();
    let client = client(
        ResponseCacheLayer::new(cache)
            .namespace("products")
            .ttl(Duration::from_secs(3600))
            .invalidate_on_write(true),
        &db,
    )
    .await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    hooks.down.store(true, Ordering::SeqCst);
    for id in 0..5_000_u32 {
        let written = client.send("POST", &format!("/products/{id}"), &[]).await;
        assert_eq!(written.status, StatusCode::NO_CONTENT);
    }
    let grown = metrics.num_alive_tasks().saturating_sub(before);
    assert!(
        grown < 100,
        "5,000 writes to distinct paths while Redis was down left {grown} background tasks \
         alive (each retrying for the route's 1 h TTL)"
    );
}

// ---------------------------------------------------------------------------
// 8. The in-process store (the embedded default) bounds its stamps by
//    forgetting *all* of them once 4,096 exist. Every path is a tag with a
//    stamp of its own, so a site with a few thousand pages wipes its whole
//    response cache every few thousand misses, however much memory the
//    store has: pages cached a moment ago are misses again.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_thousand_cached_paths_on_the_in_process_store_do_not_wipe_each_other() {
    let cache = Cache::in_memory(); // 64 MiB
    let db = Db::new();
    let client = client(
        ResponseCacheLayer::new(cache)
            .namespace("products")
            .ttl(Duration::from_secs(3600)),
        &db,
    )
    .await;
    for id in 0..4_200_u32 {
        assert_eq!(client.get(&format!("/products/{id}")).await.x_cache, "MISS");
    }
    let mut lost = Vec::new();
    for id in 4_190..4_200_u32 {
        // Cached a moment ago.
        let again = client.get(&format!("/products/{id}")).await;
        if again.x_cache != "HIT" {
            lost.push(id);
        }
    }
    let mut early = 0;
    for id in 0..100_u32 {
        if client.get(&format!("/products/{id}")).await.x_cache != "HIT" {
            early += 1;
        }
    }
    assert!(
        lost.is_empty() && early == 0,
        "4,200 small pages on a 64 MiB in-process store: {early} of the first 100 and \
         {} of the last 10 ({lost:?}) are misses again",
        lost.len()
    );
}
