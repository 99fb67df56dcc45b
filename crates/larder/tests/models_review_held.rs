//! Probes of the model-caching review that HELD (they pass): kept as
//! evidence beside `models_review.rs`, whose tests are the defects.
#![allow(missing_docs, missing_debug_implementations)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::models::*;
use common::{Fixture, on_both_stores};
use larder::model::{CachedModel, Dependency, ModelOptions, model_key};
use larder::store::{
    Grant, Lease, LeaseKeys, LeaseRead, Store, StoreEntry, StoreFuture, Subscription,
};
use larder::{Cache, Config, ErrorKind, FailMode};
use larder_test_support::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    pub id: String,
    pub v: u32,
}

impl CachedModel for Tagged {
    type Id = String;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions = ModelOptions::new("product").related(&["section"]);
    fn id(&self) -> String {
        self.id.clone()
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(loaded: Self) -> Self {
        loaded
    }
    fn dependencies(&self) -> Vec<Dependency> {
        // Short, whatever the id (long stamp keys are D3).
        let id: String = self.id.chars().take(100).collect();
        vec![Dependency::new("section", format!("s{id}"))]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SectionById {
    pub id: String,
}
impl CachedModel for SectionById {
    type Id = String;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions = ModelOptions::new("section");
    fn id(&self) -> String {
        self.id.clone()
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(loaded: Self) -> Self {
        loaded
    }
}

// A field renamed without a version bump.
macro_rules! shaped {
    ($name:ident { $($field:ident : $ty:ty),* }) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name { pub id: u64, $(pub $field: $ty),* }
        impl CachedModel for $name {
            type Id = u64;
            type Stored<'a> = &'a Self;
            type Loaded = Self;
            const OPTIONS: ModelOptions = ModelOptions::new("shaped");
            fn id(&self) -> u64 { self.id }
            fn stored(&self) -> &Self { self }
            fn from_loaded(loaded: Self) -> Self { loaded }
        }
    };
}
shaped!(ShapeA { price: u64, discount: Option<u32> });
shaped!(ShapeRenamed { cost: u64, discount: Option<u32> });
shaped!(ShapeOptRenamed { price: u64, rebate: Option<u32> });

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orphan {
    pub id: u64,
}
impl CachedModel for Orphan {
    type Id = u64;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions = ModelOptions::new("orphan");
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(loaded: Self) -> Self {
        loaded
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::new("category", 3)]
    }
}

on_both_stores!(
    odd_ids_round_trip_and_never_share_keys,
    plain_and_model_entries_under_one_key,
    batches_with_duplicates_empty_and_ten_thousand,
    glob_ids_in_dependencies_are_exact,
    foreign_bytes_in_a_stamp_are_a_miss,
    renamed_fields_without_a_version_bump,
    an_oversized_model_is_refused_and_a_missing_related_is_a_config_error,
);

async fn odd_ids_round_trip_and_never_share_keys(fixture: Fixture) {
    let cache = fixture.cache().await;
    let ids = [
        "1", "1:x", "a:b", "a%3Ab", "a%253Ab", "*", "?", "[a]", "\\", "~", "", "é", "e\u{301}",
        "\u{0}", "\n", "1%", "%",
    ];
    let long = "z".repeat(100_000);
    let mut all: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    all.push(long);
    let mut keys = std::collections::HashSet::new();
    for (v, id) in all.iter().enumerate() {
        assert!(keys.insert(model_key::<Tagged>(id).unwrap()), "{id:?}");
        cache
            .cache_model(&Tagged {
                id: id.clone(),
                v: v as u32,
            })
            .await
            .unwrap();
    }
    for (v, id) in all.iter().enumerate() {
        assert_eq!(
            cache.get_cached_model::<Tagged>(id.clone()).await.unwrap(),
            Some(Tagged {
                id: id.clone(),
                v: v as u32
            }),
            "{id:?}"
        );
    }
    // A pattern over the prefix takes them all, and only them.
    cache
        .set("productx:1", &1u32, Duration::from_secs(60))
        .await
        .unwrap();
    let removed = cache.invalidate_cache_pattern("product:*").await.unwrap();
    assert_eq!(removed as usize, all.len());
    assert_eq!(cache.get::<u32>("productx:1").await.unwrap(), Some(1));
}

async fn plain_and_model_entries_under_one_key(fixture: Fixture) {
    let cache = fixture.cache().await;
    let t = Tagged {
        id: "1".into(),
        v: 7,
    };
    cache
        .set("product:1", &t, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        cache.get_cached_model::<Tagged>("1".into()).await.unwrap(),
        None
    );
    assert_eq!(
        cache.get::<Tagged>("product:1").await.unwrap(),
        Some(t.clone())
    );
    cache.cache_model(&t).await.unwrap();
    assert_eq!(cache.get::<Tagged>("product:1").await.unwrap(), None);
    assert_eq!(
        cache.get_many::<Tagged, _>(&["product:1"]).await.unwrap(),
        [None]
    );
    let computed = cache
        .get_or_compute("product:1", Duration::from_secs(60), || async {
            Tagged {
                id: "1".into(),
                v: 99,
            }
        })
        .await
        .unwrap();
    assert_eq!(
        computed.v, 99,
        "a read-through took the model entry for its own"
    );
}

async fn batches_with_duplicates_empty_and_ten_thousand(fixture: Fixture) {
    let cache = fixture.cache().await;
    assert!(
        cache
            .get_cached_models::<Product>(&[])
            .await
            .unwrap()
            .is_empty()
    );
    cache.cache_model(&product(9_999, 3)).await.unwrap();
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[9_999, 9_999, 2, 9_999])
            .await
            .unwrap(),
        [
            Some(cached(9_999, 3)),
            Some(cached(9_999, 3)),
            None,
            Some(cached(9_999, 3))
        ]
    );
    for id in 0..200 {
        cache.cache_model(&product(id, id % 7)).await.unwrap();
    }
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    let ids: Vec<u64> = (0..10_000).collect();
    let found = cache.get_cached_models::<Product>(&ids).await.unwrap();
    for (id, got) in ids.iter().zip(found) {
        let expected = (*id < 200 && id % 7 != 3).then(|| cached(*id, id % 7));
        assert_eq!(got, expected, "{id}");
    }
    // Observed, harmless: a product moved out of a category stays in the
    // old category's index, so invalidating the old category also removes
    // its current entry (a miss, never a stale hit).
    cache.cache_model(&product(1, 3)).await.unwrap();
    cache.cache_model(&product(1, 4)).await.unwrap();
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
}

async fn glob_ids_in_dependencies_are_exact(fixture: Fixture) {
    let cache = fixture.cache().await;
    for id in ["*", "a", "?", "[a]"] {
        cache
            .cache_model(&Tagged {
                id: id.into(),
                v: 1,
            })
            .await
            .unwrap();
    }
    // Section `s*` changes: only the model depending on `s*` goes.
    cache
        .invalidate_model_cache_id::<SectionById>("s*".into())
        .await
        .unwrap();
    let got = cache
        .get_cached_models::<Tagged>(&["*".into(), "a".into(), "?".into(), "[a]".into()])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, true, true, true]
    );
}

async fn foreign_bytes_in_a_stamp_are_a_miss(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    let config = cache.config();
    let stamp = format!(
        "{}:{}~tagstamp:model:category:3",
        config.prefix(),
        config.version()
    );
    match fixture.server() {
        Some(server) => {
            let mut conn = common::raw(server).await;
            for foreign in ["not a number", "", "99999999999999999999999", "-1"] {
                let _: () = ::redis::cmd("SET")
                    .arg(&stamp)
                    .arg(foreign)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
                cache.cache_model(&product(1, 3)).await.unwrap();
                assert_eq!(
                    cache.get_cached_model::<Product>(1).await.unwrap(),
                    Some(cached(1, 3))
                );
            }
            let _: () = ::redis::cmd("DEL")
                .arg(&stamp)
                .query_async(&mut conn)
                .await
                .unwrap();
            let _: () = ::redis::cmd("SADD")
                .arg(&stamp)
                .arg("x")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
            cache.cache_model(&product(1, 3)).await.unwrap();
            assert_eq!(
                cache.get_cached_model::<Product>(1).await.unwrap(),
                Some(cached(1, 3))
            );
        }
        None => {
            cache.store().unlink(&[stamp]).await.unwrap();
            assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
        }
    }
}

async fn renamed_fields_without_a_version_bump(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache
        .cache_model(&ShapeA {
            id: 1,
            price: 5,
            discount: Some(10),
        })
        .await
        .unwrap();
    // A required field renamed: a kept miss.
    assert_eq!(
        cache.get_cached_model::<ShapeRenamed>(1).await.unwrap(),
        None
    );
    assert!(raw_bytes(&cache, "shaped:1").await.is_some());
    // An optional field renamed: serde fills the new name with None — a
    // hit with a value the row never had (serde's, not Larder's doing).
    assert_eq!(
        cache.get_cached_model::<ShapeOptRenamed>(1).await.unwrap(),
        Some(ShapeOptRenamed {
            id: 1,
            price: 5,
            rebate: None
        })
    );
}

async fn an_oversized_model_is_refused_and_a_missing_related_is_a_config_error(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.max_value_bytes(1024)).await;
    let big = Tagged {
        id: "x".repeat(5000),
        v: 1,
    };
    let err = cache.cache_model(&big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(
        raw_bytes(&cache, &model_key::<Tagged>(&big.id).unwrap())
            .await
            .is_none()
    );
    let err = cache.cache_model(&Orphan { id: 1 }).await.unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(raw_bytes(&cache, "orphan:1").await.is_none());
}

// ---------------------------------------------------------------------------
// Redis killed during model operations.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_for_reads_and_writes_and_loud_for_invalidations() {
    let mut server = RedisServer::spawn();
    let open = common::redis_cache(&server, |b| b.deadline(Duration::from_millis(500))).await;
    let closed = common::redis_cache(&server, |b| {
        b.deadline(Duration::from_millis(500))
            .fail_mode(FailMode::Closed)
    })
    .await;
    open.cache_model(&product(1, 3)).await.unwrap();
    server.kill();
    assert_eq!(open.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        open.get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [None, None]
    );
    open.cache_model(&product(2, 3)).await.unwrap();
    assert!(open.invalidate_model_cache_id::<Category>(3).await.is_err());
    assert!(closed.get_cached_model::<Product>(1).await.is_err());
    assert!(closed.cache_model(&product(2, 3)).await.is_err());
    server.restart();
    // Nothing persisted: after a restart the stamps are gone with the data.
    let fresh = common::redis_cache(&server, |b| b).await;
    assert_eq!(fresh.get_cached_model::<Product>(1).await.unwrap(), None);
}

// ---------------------------------------------------------------------------
// A category invalidated while a product of it is being cached: between
// the stamp read and the SET (held by a store hook, released by a signal).

#[derive(Debug)]
struct HoldMset {
    inner: larder::store::RedisStore,
    hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Store for HoldMset {
    fn name(&self) -> &'static str {
        "hold-mset"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.inner.get(key)
    }
    fn mget<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        self.inner.mget(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Bytes, ttl: Duration) -> StoreFuture<'a, ()> {
        self.inner.set(key, value, ttl)
    }
    fn mset<'a>(&'a self, entries: &'a [StoreEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let hold = self.hold.lock().unwrap().take();
            if let Some((reached, release)) = hold {
                reached.send(()).unwrap();
                release.await.unwrap();
            }
            self.inner.mset(entries).await
        })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_invalidated_between_the_stamp_read_and_the_set_is_caught() {
    let server = RedisServer::spawn();
    let url = larder::config::RedisUrl::parse(&server.url()).unwrap();
    let store = Arc::new(HoldMset {
        inner: larder::store::RedisStore::new(&url, Duration::from_secs(1), None).unwrap(),
        hold: Mutex::new(None),
    });
    let config = Config::builder()
        .redis_url(server.url())
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap();
    let cache = Cache::with_store(config, store.clone());
    let (reached_tx, reached_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    *store.hold.lock().unwrap() = Some((reached_tx, release_rx));
    let writer = tokio::spawn({
        let cache = cache.clone();
        async move { cache.cache_model(&product(1, 3)).await }
    });
    reached_rx.await.unwrap(); // stamps read, SET not yet sent
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    // Another product of the category recreates its stamp meanwhile.
    cache.cache_model(&product(2, 3)).await.unwrap();
    release_tx.send(()).unwrap();
    writer.await.unwrap().unwrap();
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [None, Some(cached(2, 3))]
    );
}
