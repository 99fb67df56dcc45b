//! Model caching (`larder::model`), run against both stores: a private
//! redis-server and the in-process `MemoryStore`. Round trips are counted
//! on the private server with `INFO commandstats`.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Fixture, on_both_stores};
use larder::model::{CachedModel, Dependency, ModelOptions, model_key};
use larder::{Cache, Codec, Compression};
use serde::{Deserialize, Serialize};

on_both_stores!(
    a_model_round_trips_under_the_django_key,
    excluded_fields_never_reach_the_store,
    get_cached_models_keeps_order_and_misses,
    a_version_bump_is_a_miss_that_keeps_the_old_entry,
    a_schema_change_is_a_miss_that_keeps_the_old_entry,
    plain_reads_and_model_reads_never_take_each_others_entries,
    invalidation_by_instance_and_by_id,
    invalidating_a_category_misses_its_products_only,
    a_lost_index_does_not_save_a_stale_dependent,
    a_disabled_model_passes_through,
    a_disabled_related_model_still_invalidates_its_dependents,
    corrupt_bytes_under_a_model_key_are_a_miss,
    a_bad_prefix_is_a_config_error,
    caching_a_model_voids_a_computation_in_flight,
    the_django_original_examples,
);

// ---------------------------------------------------------------- models

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Category {
    id: u64,
    name: String,
}

impl CachedModel for Category {
    type Id = u64;
    type Stored<'a> = &'a Self;
    type Loaded = Self;
    const OPTIONS: ModelOptions = ModelOptions::new("category");
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> &Self {
        self
    }
    fn from_loaded(loaded: Self) -> Self {
        loaded
    }
}

/// The Django original's `Product`: `redis_cache_related = ["category"]`,
/// `redis_cache_exclude = ["internal_notes"]`.
#[derive(Debug, Clone, PartialEq)]
struct Product {
    id: u64,
    name: String,
    price_cents: u64,
    category: Category,
    internal_notes: String,
}

#[derive(Serialize)]
struct StoredProduct<'a> {
    id: u64,
    name: &'a str,
    price_cents: u64,
    category: &'a Category,
}

#[derive(Deserialize)]
struct LoadedProduct {
    id: u64,
    name: String,
    price_cents: u64,
    category: Category,
}

impl CachedModel for Product {
    type Id = u64;
    type Stored<'a> = StoredProduct<'a>;
    type Loaded = LoadedProduct;
    const OPTIONS: ModelOptions = ModelOptions::new("product").related(&["category"]);
    fn id(&self) -> u64 {
        self.id
    }
    fn stored(&self) -> StoredProduct<'_> {
        StoredProduct {
            id: self.id,
            name: &self.name,
            price_cents: self.price_cents,
            category: &self.category,
        }
    }
    fn from_loaded(p: LoadedProduct) -> Self {
        Product {
            id: p.id,
            name: p.name,
            price_cents: p.price_cents,
            category: p.category,
            internal_notes: String::default(),
        }
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::on::<Category>(&self.category.id)]
    }
}

const NOTES: &str = "supplier owes us 300";

fn category(id: u64) -> Category {
    Category {
        id,
        name: format!("Category {id}"),
    }
}

/// Product `id`, in category `category_id`, as the database holds it.
fn product(id: u64, category_id: u64) -> Product {
    Product {
        id,
        name: format!("Product {id}"),
        price_cents: 999 + id,
        category: category(category_id),
        internal_notes: NOTES.into(),
    }
}

/// What the cache gives back for `product(id, category_id)`.
fn cached(id: u64, category_id: u64) -> Product {
    Product {
        internal_notes: String::new(),
        ..product(id, category_id)
    }
}

/// A model storing itself, with `options`.
macro_rules! widget {
    ($name:ident, $options:expr) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct $name {
            id: u64,
            name: String,
        }
        impl CachedModel for $name {
            type Id = u64;
            type Stored<'a> = &'a Self;
            type Loaded = Self;
            const OPTIONS: ModelOptions = $options;
            fn id(&self) -> u64 {
                self.id
            }
            fn stored(&self) -> &Self {
                self
            }
            fn from_loaded(loaded: Self) -> Self {
                loaded
            }
        }
        #[allow(dead_code)]
        impl $name {
            fn new(id: u64) -> Self {
                Self {
                    id,
                    name: format!("widget {id}"),
                }
            }
        }
    };
}

widget!(Widget, ModelOptions::new("widget"));
widget!(WidgetV1, ModelOptions::new("widget").version("1.0"));
widget!(WidgetV2, ModelOptions::new("widget").version("2.0"));
widget!(WidgetS1, ModelOptions::new("widget").schema(1));
widget!(WidgetS2, ModelOptions::new("widget").schema(2));
widget!(Disabled, ModelOptions::new("disabled").enabled(false));
widget!(BadPrefix, ModelOptions::new("bad:prefix"));
widget!(
    DisabledCategory,
    ModelOptions::new("category").enabled(false)
);

// ---------------------------------------------------------------- helpers

/// The raw bytes under the logical `key`, read from the store underneath.
async fn raw_bytes(cache: &Cache, key: &str) -> Option<Bytes> {
    cache.store().get(&cache.physical_key(key)).await.unwrap()
}

/// The payload of an uncompressed envelope (see `larder::envelope`'s
/// layout: a 32-byte head, the stamps, the payload length, the payload,
/// the checksum).
fn payload(envelope: &[u8]) -> &[u8] {
    let count = u16::from_le_bytes([envelope[32], envelope[33]]);
    let mut at = 34;
    for _ in 0..count {
        let len = usize::from(u16::from_le_bytes([envelope[at], envelope[at + 1]]));
        at += 2 + len + 8;
    }
    &envelope[at + 4..envelope.len() - 4]
}

/// The physical key of a tag's index, as the key scheme names it.
fn tag_index(cache: &Cache, tag: &str) -> String {
    let config = cache.config();
    format!("{}:{}~tag:{tag}", config.prefix(), config.version())
}

// ---------------------------------------------------------------- tests

async fn a_model_round_trips_under_the_django_key(fixture: Fixture) {
    let cache = fixture.cache_with(|b| b.prefix("shop").version("7")).await;
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    cache.cache_model(&product(1, 3)).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(1, 3))
    );
    assert_eq!(model_key::<Product>(&1).unwrap(), "product:1");
    assert_eq!(cache.physical_key("product:1"), "shop:7:product:1");
    assert!(raw_bytes(&cache, "product:1").await.is_some());
    if let Some(server) = fixture.server() {
        let mut conn = common::raw(server).await;
        assert!(common::exists(&mut conn, "shop:7:product:1").await);
        let ttl: i64 = ::redis::cmd("TTL")
            .arg("shop:7:product:1")
            .query_async(&mut conn)
            .await
            .unwrap();
        // One day, ± the 10% jitter.
        assert!((77_760..=95_040).contains(&ttl), "{ttl}");
    }
}

async fn excluded_fields_never_reach_the_store(fixture: Fixture) {
    let cache = fixture
        .cache_with(|b| b.codec(Codec::Json).compression(Compression::None))
        .await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    let bytes = raw_bytes(&cache, "product:1").await.unwrap();
    assert!(
        !bytes.windows(NOTES.len()).any(|w| w == NOTES.as_bytes()),
        "the excluded field reached the store"
    );
    let stored: serde_json::Value = serde_json::from_slice(payload(&bytes)).unwrap();
    let mut fields: Vec<&str> = stored
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["category", "id", "name", "price_cents"]);
    let back = cache.get_cached_model::<Product>(1).await.unwrap().unwrap();
    assert_eq!(back.internal_notes, String::default());
    assert_eq!(back, cached(1, 3));
}

async fn get_cached_models_keeps_order_and_misses(fixture: Fixture) {
    let cache = fixture.cache().await;
    for id in [1, 3] {
        cache.cache_model(&product(id, 3)).await.unwrap();
        cache.cache_model(&Widget::new(id)).await.unwrap();
    }
    let products = cache
        .get_cached_models::<Product>(&[3, 2, 1, 3])
        .await
        .unwrap();
    assert_eq!(
        products,
        [
            Some(cached(3, 3)),
            None,
            Some(cached(1, 3)),
            Some(cached(3, 3))
        ]
    );
    let widgets = cache.get_cached_models::<Widget>(&[2, 1]).await.unwrap();
    assert_eq!(widgets, [None, Some(Widget::new(1))]);
    assert!(
        cache
            .get_cached_models::<Widget>(&[])
            .await
            .unwrap()
            .is_empty()
    );

    let Some(server) = fixture.server() else {
        return;
    };
    // Round trips, counted by the server.
    let mut conn = common::raw(server).await;
    let commands = ["get", "mget", "evalsha", "eval", "set", "unlink", "sscan"];
    let mut before = Vec::new();
    for command in commands {
        before.push(common::command_calls(&mut conn, command).await);
    }
    let mut delta = async |conn: &mut ::redis::aio::MultiplexedConnection| {
        let mut out = HashMap::new();
        for (command, before) in commands.iter().zip(before.iter_mut()) {
            let now = common::command_calls(conn, command).await;
            out.insert(*command, now - *before);
            *before = now;
        }
        out
    };
    let ids: Vec<u64> = (1..=50).collect();
    // No dependencies: one MGET, nothing else.
    let widgets = cache.get_cached_models::<Widget>(&ids).await.unwrap();
    assert_eq!(widgets.iter().flatten().count(), 2);
    let d = delta(&mut conn).await;
    assert_eq!((d["mget"], d["get"], d["evalsha"] + d["eval"]), (1, 0, 0));
    // Dependencies: one MGET for the values, one for all their stamps.
    let products = cache.get_cached_models::<Product>(&ids).await.unwrap();
    assert_eq!(products.iter().flatten().count(), 2);
    let d = delta(&mut conn).await;
    assert_eq!((d["mget"], d["get"], d["evalsha"] + d["eval"]), (2, 0, 0));
    // One model without dependencies: one GET.
    assert!(cache.get_cached_model::<Widget>(1).await.unwrap().is_some());
    let d = delta(&mut conn).await;
    assert_eq!((d["get"], d["mget"]), (1, 0));
    // With dependencies: a GET and an MGET of the stamps.
    assert!(
        cache
            .get_cached_model::<Product>(1)
            .await
            .unwrap()
            .is_some()
    );
    let d = delta(&mut conn).await;
    assert_eq!((d["get"], d["mget"]), (1, 1));
    // Writing without dependencies: one pipeline with one SET; with
    // dependencies, the stamps script first.
    cache.cache_model(&Widget::new(9)).await.unwrap();
    let d = delta(&mut conn).await;
    assert_eq!((d["set"], d["evalsha"] + d["eval"]), (1, 0));
    cache.cache_model(&product(9, 3)).await.unwrap();
    let d = delta(&mut conn).await;
    assert_eq!((d["set"], d["evalsha"] + d["eval"]), (1, 1));
    // Invalidating an instance: its lease and value (one pipeline), its
    // tag's stamp, one SSCAN of its (here empty) index.
    cache.invalidate_model_cache_id::<Product>(9).await.unwrap();
    let d = delta(&mut conn).await;
    assert_eq!((d["unlink"], d["sscan"]), (3, 1));
}

async fn a_version_bump_is_a_miss_that_keeps_the_old_entry(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&WidgetV1::new(1)).await.unwrap();
    // The new build misses, without deleting the old build's entry.
    assert_eq!(cache.get_cached_model::<WidgetV2>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<WidgetV2>(&[1]).await.unwrap(),
        [None]
    );
    assert!(raw_bytes(&cache, "widget:1").await.is_some());
    // The old build still reads its own.
    assert_eq!(
        cache.get_cached_model::<WidgetV1>(1).await.unwrap(),
        Some(WidgetV1::new(1))
    );
    // The new build's write is its own; the last writer owns the key.
    cache.cache_model(&WidgetV2::new(1)).await.unwrap();
    assert_eq!(
        cache.get_cached_model::<WidgetV2>(1).await.unwrap(),
        Some(WidgetV2::new(1))
    );
    assert_eq!(cache.get_cached_model::<WidgetV1>(1).await.unwrap(), None);
}

async fn a_schema_change_is_a_miss_that_keeps_the_old_entry(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&WidgetS1::new(1)).await.unwrap();
    assert_eq!(cache.get_cached_model::<WidgetS2>(1).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Widget>(1).await.unwrap(), None);
    assert!(raw_bytes(&cache, "widget:1").await.is_some());
    assert_eq!(
        cache.get_cached_model::<WidgetS1>(1).await.unwrap(),
        Some(WidgetS1::new(1))
    );
}

async fn plain_reads_and_model_reads_never_take_each_others_entries(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&Widget::new(1)).await.unwrap();
    // Same bytes of payload, but a plain read is not the model's reader.
    assert_eq!(cache.get::<Widget>("widget:1").await.unwrap(), None);
    let plain: Vec<Option<Widget>> = cache.get_many(&["widget:1"]).await.unwrap();
    assert_eq!(plain, [None]);
    assert!(raw_bytes(&cache, "widget:1").await.is_some());
    cache
        .set("widget:2", &Widget::new(2), common::HOUR)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Widget>(2).await.unwrap(), None);
    assert!(cache.get_cached_model::<Widget>(1).await.unwrap().is_some());
}

async fn invalidation_by_instance_and_by_id(fixture: Fixture) {
    let cache = fixture.cache().await;
    for id in 1..=3 {
        cache.cache_model(&product(id, 3)).await.unwrap();
    }
    assert!(cache.invalidate_model_cache(&product(1, 3)).await.unwrap());
    assert!(cache.invalidate_model_cache_id::<Product>(2).await.unwrap());
    assert!(!cache.invalidate_model_cache_id::<Product>(2).await.unwrap());
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[1, 2, 3])
            .await
            .unwrap(),
        [None, None, Some(cached(3, 3))]
    );
    assert!(raw_bytes(&cache, "product:1").await.is_none());
}

async fn invalidating_a_category_misses_its_products_only(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&category(3)).await.unwrap();
    cache.cache_model(&product(1, 3)).await.unwrap();
    cache.cache_model(&product(2, 4)).await.unwrap();
    cache.cache_model(&product(5, 3)).await.unwrap();

    assert!(cache.invalidate_model_cache(&category(3)).await.unwrap());
    assert_eq!(cache.get_cached_model::<Category>(3).await.unwrap(), None);
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_model::<Product>(2).await.unwrap(),
        Some(cached(2, 4))
    );
    // The index removed the dependents, too.
    assert!(raw_bytes(&cache, "product:1").await.is_none());
    assert!(raw_bytes(&cache, "product:5").await.is_none());

    // Recached after the change, a dependent is a hit again.
    cache.cache_model(&product(1, 3)).await.unwrap();
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[1, 2, 5])
            .await
            .unwrap(),
        [Some(cached(1, 3)), Some(cached(2, 4)), None]
    );
    // By id, without an instance at hand, and without an entry of its own.
    assert!(
        !cache
            .invalidate_model_cache_id::<Category>(4)
            .await
            .unwrap()
    );
    assert_eq!(
        cache.get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [Some(cached(1, 3)), None]
    );
}

async fn a_lost_index_does_not_save_a_stale_dependent(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    cache.cache_model(&product(2, 4)).await.unwrap();
    let index = tag_index(&cache, "model:category:3");
    // The index goes behind Larder's back (evicted, or deleted by hand).
    match fixture.server() {
        Some(server) => {
            let mut conn = common::raw(server).await;
            assert!(common::exists(&mut conn, &index).await);
            let removed: u64 = ::redis::cmd("UNLINK")
                .arg(&index)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(removed, 1);
        }
        None => assert_eq!(cache.store().unlink(&[index]).await.unwrap(), 1),
    }
    cache
        .invalidate_model_cache_id::<Category>(3)
        .await
        .unwrap();
    // Nothing removed product 1's entry, but its stamp is gone: a miss.
    assert!(raw_bytes(&cache, "product:1").await.is_some());
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [None, Some(cached(2, 4))]
    );
    assert_eq!(
        cache.get_cached_model::<Product>(2).await.unwrap(),
        Some(cached(2, 4))
    );
}

async fn a_disabled_model_passes_through(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&Disabled::new(1)).await.unwrap();
    assert!(raw_bytes(&cache, "disabled:1").await.is_none());
    // Even an entry put there by other means is not read.
    cache
        .set("disabled:1", &Disabled::new(1), common::HOUR)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Disabled>(1).await.unwrap(), None);
    assert_eq!(
        cache.get_cached_models::<Disabled>(&[1, 2]).await.unwrap(),
        [None, None]
    );
    assert!(
        !cache
            .invalidate_model_cache(&Disabled::new(1))
            .await
            .unwrap()
    );
    assert!(
        !cache
            .invalidate_model_cache_id::<Disabled>(1)
            .await
            .unwrap()
    );
}

async fn a_disabled_related_model_still_invalidates_its_dependents(fixture: Fixture) {
    let cache = fixture.cache().await;
    cache.cache_model(&product(1, 3)).await.unwrap();
    // Category caching is off, but products embed categories.
    assert!(
        !cache
            .invalidate_model_cache(&DisabledCategory::new(3))
            .await
            .unwrap()
    );
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
}

async fn corrupt_bytes_under_a_model_key_are_a_miss(fixture: Fixture) {
    let cache = fixture.cache().await;
    for (key, bytes) in [
        ("product:1", &b"not an envelope"[..]),
        ("product:2", &b""[..]),
        ("widget:1", &b"LD\x02\x00garbage"[..]),
    ] {
        cache
            .store()
            .set(
                &cache.physical_key(key),
                Bytes::copy_from_slice(bytes),
                common::HOUR,
            )
            .await
            .unwrap();
    }
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
    assert_eq!(
        cache
            .get_cached_models::<Product>(&[1, 2, 3])
            .await
            .unwrap(),
        [None, None, None]
    );
    assert_eq!(cache.get_cached_model::<Widget>(1).await.unwrap(), None);
    // Removed, as any corrupt entry.
    for key in ["product:1", "product:2", "widget:1"] {
        assert!(raw_bytes(&cache, key).await.is_none(), "{key}");
    }
    // A flipped bit in a real entry: a miss too.
    cache.cache_model(&product(4, 3)).await.unwrap();
    let mut bytes = raw_bytes(&cache, "product:4").await.unwrap().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    cache
        .store()
        .set(&cache.physical_key("product:4"), bytes.into(), common::HOUR)
        .await
        .unwrap();
    assert_eq!(cache.get_cached_model::<Product>(4).await.unwrap(), None);
}

async fn a_bad_prefix_is_a_config_error(fixture: Fixture) {
    let cache = fixture.cache().await;
    let errors = [
        cache.cache_model(&BadPrefix::new(1)).await.unwrap_err(),
        cache.get_cached_model::<BadPrefix>(1).await.unwrap_err(),
        cache
            .get_cached_models::<BadPrefix>(&[1])
            .await
            .unwrap_err(),
        cache
            .invalidate_model_cache_id::<BadPrefix>(1)
            .await
            .unwrap_err(),
        model_key::<BadPrefix>(&1).unwrap_err(),
    ];
    for err in errors {
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains("\"bad:prefix\""), "{err}");
    }
}

async fn caching_a_model_voids_a_computation_in_flight(fixture: Fixture) {
    let holder = fixture.cache().await;
    let cache = fixture.cache().await;
    // A plain computation of `widget:1` began before the model was cached.
    let (holding, fill) = common::hold_a_computation(holder, "widget:1").await;
    cache.cache_model(&Widget::new(1)).await.unwrap();
    fill.send(()).unwrap();
    assert_eq!(holding.await.unwrap(), "report");
    // Its fill was refused: the model's entry stands.
    assert_eq!(
        cache.get_cached_model::<Widget>(1).await.unwrap(),
        Some(Widget::new(1))
    );
}

// ------------------------------------------- the Django original, §3 and §4

/// A database of products that counts its reads.
#[derive(Default)]
struct Database {
    products: Mutex<HashMap<u64, Product>>,
    reads: AtomicUsize,
}

impl Database {
    fn get(&self, id: u64) -> Option<Product> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.products.lock().unwrap().get(&id).cloned()
    }

    fn save(&self, product: Product) {
        self.products.lock().unwrap().insert(product.id, product);
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// `get_product_details(product_id)` of §3.
async fn get_product_details(cache: &Cache, db: &Database, id: u64) -> Option<Product> {
    if let Some(product) = cache.get_cached_model::<Product>(id).await.unwrap() {
        return Some(product);
    }
    let product = db.get(id)?;
    cache.cache_model(&product).await.unwrap();
    Some(product)
}

/// `update_product_price(product_id, new_price)` of §3.
async fn update_product_price(cache: &Cache, db: &Database, id: u64, price_cents: u64) -> bool {
    let Some(mut product) = db.get(id) else {
        return false;
    };
    product.price_cents = price_cents;
    db.save(product.clone());
    // After the write commits.
    cache.invalidate_model_cache(&product).await.unwrap();
    true
}

async fn the_django_original_examples(fixture: Fixture) {
    let cache = fixture.cache().await;
    let db = Database::default();
    db.save(product(1, 3));
    db.save(product(2, 3));

    // §3: a miss reads the database and caches; the next call does not.
    assert_eq!(
        get_product_details(&cache, &db, 1).await,
        Some(product(1, 3))
    );
    assert_eq!(db.reads(), 1);
    assert_eq!(
        get_product_details(&cache, &db, 1).await,
        Some(cached(1, 3))
    );
    assert_eq!(db.reads(), 1);

    // §3: an update invalidates; the next read sees the new price.
    assert!(update_product_price(&cache, &db, 1, 4999).await);
    assert_eq!(db.reads(), 2);
    let details = get_product_details(&cache, &db, 1).await.unwrap();
    assert_eq!((details.price_cents, db.reads()), (4999, 3));
    assert_eq!(
        get_product_details(&cache, &db, 1)
            .await
            .unwrap()
            .price_cents,
        4999
    );
    assert_eq!(db.reads(), 3);
    assert!(!update_product_price(&cache, &db, 404, 1).await);

    // §4: invalidate_model_cache(Product, 1).
    assert!(cache.invalidate_model_cache_id::<Product>(1).await.unwrap());
    get_product_details(&cache, &db, 1).await.unwrap();
    assert_eq!(db.reads(), 5);

    // §4: delete_cached_data("product:1").
    assert!(cache.delete_cached_data("product:1").await.unwrap());
    get_product_details(&cache, &db, 1).await.unwrap();
    assert_eq!(db.reads(), 6);

    // §4: invalidate_cache_pattern("product:*") removes every product.
    get_product_details(&cache, &db, 2).await.unwrap();
    assert_eq!(db.reads(), 7);
    assert_eq!(
        cache.invalidate_cache_pattern("product:*").await.unwrap(),
        2
    );
    get_product_details(&cache, &db, 1).await.unwrap();
    get_product_details(&cache, &db, 2).await.unwrap();
    assert_eq!(db.reads(), 9);

    // A missing row is not cached: each call asks the database.
    assert_eq!(get_product_details(&cache, &db, 404).await, None);
    assert_eq!(get_product_details(&cache, &db, 404).await, None);
    assert_eq!(db.reads(), 11);
}

/// The free functions on the global cache: the only test of this binary
/// that installs one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_functions_use_the_global_cache() {
    let server = larder_test_support::RedisServer::spawn();
    let cache = common::redis_cache(&server, |b| b).await;
    larder::init(cache.clone()).unwrap();

    larder::cache_model(&product(1, 3)).await.unwrap();
    larder::cache_model(&product(2, 4)).await.unwrap();
    assert_eq!(
        larder::get_cached_model::<Product>(1).await.unwrap(),
        Some(cached(1, 3))
    );
    assert_eq!(
        larder::get_cached_models::<Product>(&[2, 3]).await.unwrap(),
        [Some(cached(2, 4)), None]
    );
    assert!(
        larder::invalidate_model_cache(&product(1, 3))
            .await
            .unwrap()
    );
    assert!(
        larder::invalidate_model_cache_id::<Product>(2)
            .await
            .unwrap()
    );
    assert_eq!(
        larder::get_cached_models::<Product>(&[1, 2]).await.unwrap(),
        [None, None]
    );

    larder::cache_model(&product(1, 3)).await.unwrap();
    assert!(larder::delete_cached_data("product:1").await.unwrap());
    larder::cache_model(&product(1, 3)).await.unwrap();
    larder::cache_model(&product(2, 3)).await.unwrap();
    assert_eq!(
        larder::invalidate_cache_pattern("product:*").await.unwrap(),
        2
    );
    // The same entries through the handle that was installed.
    assert_eq!(cache.get_cached_model::<Product>(1).await.unwrap(), None);
}
